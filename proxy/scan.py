"""``chaperone scan``: dry-run a policy's request-side guards over a JSONL file of prompts.

Each input line is ``{"id", "text"}`` (one user message) or ``{"id", "messages"}`` (a chat as-is).
Every step of the chosen chain whose plugin implements the *scan protocol* (``async def
scan(self, request) -> dict | None``, see ``proxy.hookspecs``) says what it would find or do for
that request, without changing it and without a network call. One JSON line per input goes out,
in input order, while a bounded number of inputs are scanned at once; a summary
(``proxy.scanreport``) goes to stderr at the end. Nothing is sent to a backend.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from proxy import validate
from proxy.chain import Chain
from proxy.errors import InvalidRequest
from proxy.exchange import ApiRequest
from proxy.policy import Policy, PolicyError, load_policy
from proxy.registry import PluginRegistry
from proxy.runtime import Resources
from proxy.scanreport import Progress, Summary, make_progress
from proxy.store import open_store

__all__ = ["FAIL_ON", "ScanFailed", "ScanOptions", "ScanTarget", "parse_line", "run", "scan_targets"]

ScanFn = Callable[[ApiRequest], Awaitable[Any]]
FAIL_ON = ("block", "flag", "error")
_ORJSON_WHERE = re.compile(r"line 1 column (\d+) \(char \d+\)")  # one JSONL line is one JSON line
_READ_HINT = 1 << 16  # bytes per read from the input (one thread hop per batch of lines)


class ScanFailed(Exception):
    """The scan cannot start: a bad chain name, an unreadable file, a plugin that will not start."""


@dataclass(frozen=True)
class ScanOptions:
    """What ``chaperone scan`` was asked to do (``proxy.cli`` builds it from the arguments)."""

    policy: Path
    input: str  # a path, or "-" for stdin
    home: Path
    chain: str | None = None
    model: str | None = None
    out: Path | None = None
    concurrency: int = 8
    summary_json: Path | None = None
    fail_on: frozenset[str] = frozenset()
    progress: str = "auto"  # auto (bar on a terminal, else plain lines), bar, plain, none
    progress_interval_s: float = 10.0


@dataclass(frozen=True, slots=True)
class ScanTarget:
    """One chain step that implements ``scan``; ``key`` is its name, ``name#2`` for a second use."""

    key: str
    name: str
    scan: ScanFn


@dataclass(slots=True)
class _Streams:
    stdin: IO[bytes]
    stdout: IO[str]
    stderr: IO[str]
    owned: list[IO[Any]] = field(default_factory=list)


def scan_targets(chain: Chain) -> tuple[list[ScanTarget], list[str]]:
    """The chain's steps that can be scanned, in order, and the keys of those that cannot.

    Raises ``ScanFailed`` when a plugin's ``scan`` is not an ``async def``.
    """
    seen: dict[str, int] = {}
    targets: list[ScanTarget] = []
    skipped: list[str] = []
    for step in chain.steps:
        seen[step.name] = seen.get(step.name, 0) + 1
        key = step.name if seen[step.name] == 1 else f"{step.name}#{seen[step.name]}"
        fn = getattr(step.plugin, "scan", None)
        if fn is None:
            skipped.append(key)
        elif not asyncio.iscoroutinefunction(fn):
            raise ScanFailed(f"plugin {step.name!r}: scan must be 'async def scan(self, request)'")
        else:
            targets.append(ScanTarget(key, step.name, fn))
    return targets, skipped


def parse_line(raw: bytes, number: int, model: str) -> tuple[Any, ApiRequest | str]:
    """The input's id and its chat request, or its id and what is wrong with the line."""
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"line {number}: not JSON: {_ORJSON_WHERE.sub(_column, str(exc))}"
    if not isinstance(item, dict):
        return None, f"line {number}: expected a JSON object with 'text' or 'messages'"
    ident = item.get("id")
    if ident is not None and (isinstance(ident, bool) or not isinstance(ident, str | int)):
        return None, f"line {number}: 'id' must be a string or an integer"
    text, messages = item.get("text"), item.get("messages")
    if text is not None and messages is not None:
        return ident, f"line {number}: give 'text' or 'messages', not both"
    if text is not None:
        if not isinstance(text, str):
            return ident, f"line {number}: 'text' must be a string"
        messages = [{"role": "user", "content": text}]
    elif messages is None:
        return ident, f"line {number}: needs 'text' (a string) or 'messages' (an array of chat messages)"
    body = {"model": model, "messages": messages}
    try:
        validate.chat(body)
    except InvalidRequest as exc:
        return ident, f"line {number}: {exc.message}"
    return ident, ApiRequest("chat", "/chat/completions", body)


def _copy(request: ApiRequest) -> ApiRequest:
    """A copy a step may not share with the next (the body is JSON: orjson copies it ~10x faster than deepcopy)."""
    return ApiRequest(request.endpoint, request.path, orjson.loads(orjson.dumps(request.body)))


@dataclass(slots=True)
class _Outcome:
    """One input's result line, with what the summary needs to count it."""

    line: dict[str, Any]
    failed: list[str] | None = None  # keys of the steps whose scan failed; None for a bad line
    seconds: dict[str, float] = field(default_factory=dict)


async def _scan_request(targets: Sequence[ScanTarget], request: ApiRequest, outcome: _Outcome) -> None:
    """Every target's report for one request, into ``outcome``.

    Each target sees the request as the client sent it (a copy), not as earlier steps would leave it.
    """
    reports: dict[str, Any] = {}
    failed: list[str] = []
    for target in targets:
        started = time.perf_counter()
        report: Any
        try:
            report = await target.scan(_copy(request))
            if report is not None and not isinstance(report, dict):
                report = {"error": f"scan returned {type(report).__name__}, not a dict or None"}
                failed.append(target.key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a dry run reports a failing guard and goes on
            report = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(target.key)
        outcome.seconds[target.key] = time.perf_counter() - started
        reports[target.key] = report
    outcome.line["steps"] = reports
    outcome.failed = failed


async def _batches(stream: IO[bytes], size: int = _READ_HINT) -> AsyncIterator[list[bytes]]:
    """The input's lines, a batch per read: what is there is scanned now, even from a slow pipe."""
    read = getattr(stream, "read1", stream.read)  # read1: whatever is available, up to the size
    pending: list[bytes] = []  # the start of a line longer than one read
    while chunk := await asyncio.to_thread(read, size):
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            pending.append(chunk)
            continue
        if pending:
            lines[0] = b"".join((*pending, lines[0]))
            pending.clear()
        if last := lines.pop():
            pending.append(last)
        yield lines
    if pending:
        yield [b"".join(pending)]


def _column(match: re.Match[str]) -> str:
    return f"column {match[1]}"


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=_jsonable).decode() + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)  # a plugin's odd value still shows up, instead of ending the run


class _Scanner:
    """One run over the input: bounded concurrency, output in input order."""

    def __init__(
        self, targets: Sequence[ScanTarget], model: str, summary: Summary, progress: Progress, out: IO[str], limit: int
    ) -> None:
        self.targets = targets
        self.model = model
        self.summary = summary
        self.progress = progress
        self.out = out
        self.limit = max(1, limit)
        self.running = asyncio.Semaphore(self.limit)
        self.failure: Exception | None = None  # the first failed write; reading stops

    async def one(self, raw: bytes, number: int) -> _Outcome:
        ident, parsed = parse_line(raw, number, self.model)
        if isinstance(parsed, str):
            return _Outcome({"id": ident, "line": number, "error": parsed})
        outcome = _Outcome({"id": ident, "line": number})
        async with self.running:
            await _scan_request(self.targets, parsed, outcome)
        return outcome

    def emit(self, outcome: _Outcome) -> None:
        """Write one result and count it (here, in input order: the summary matches what was written)."""
        with self.progress.writing(self.out):
            self.out.write(_dumps(outcome.line))
        if outcome.failed is None:
            self.summary.add_error(outcome.line["line"])
        else:
            self.summary.add_input(outcome.line["steps"], outcome.failed, outcome.seconds)
        self.progress.advance(self.summary)

    async def run(self, stream: IO[bytes]) -> None:
        """Read and start inputs here; a writer task puts results out in order as they are ready."""
        queue: asyncio.Queue[asyncio.Task[_Outcome] | None] = asyncio.Queue(4 * self.limit)  # bounds memory
        writer = asyncio.create_task(self._write(queue))
        number = 0
        try:
            async for batch in _batches(stream):
                for raw in batch:
                    number += 1
                    if self.failure is not None:
                        break
                    if raw.strip():
                        await queue.put(asyncio.ensure_future(self.one(raw, number)))
                if self.failure is not None:
                    break
            await queue.put(None)
            await writer
        finally:
            if not writer.done():
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
            while not queue.empty():
                if (task := queue.get_nowait()) is not None:
                    task.cancel()
        if self.failure is not None:
            raise self.failure

    async def _write(self, queue: asyncio.Queue[asyncio.Task[_Outcome] | None]) -> None:
        """Write results in input order; after a failed write (a closed pipe) only drain the queue."""
        while (task := await queue.get()) is not None:
            if self.failure is not None:
                task.cancel()
                continue
            try:
                self.emit(await task)
                if queue.empty():  # caught up with the input: let a reader of a slow pipe see it now
                    self.out.flush()
            except Exception as exc:
                self.failure = exc


def _pick_chain(policy: Policy, name: str | None) -> Chain:
    chain = policy.default_chain if name is None else policy.chains.get(name)
    if chain is None:
        raise ScanFailed(f"no chain named {name!r} in {policy.source} (chains: {', '.join(policy.chains) or 'none'})")
    return chain


def _count_lines(path: str) -> int | None:
    """Lines in a regular file (for the progress bar's total); None for pipes and stdin."""
    if path == "-":
        return None
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        count, last = 0, b"\n"
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                count += block.count(b"\n")
                last = block[-1:]
        return count + (last != b"\n")
    except OSError:
        return None


def _open_streams(options: ScanOptions, stdin: IO[bytes], stdout: IO[str], stderr: IO[str]) -> _Streams:
    streams = _Streams(stdin, stdout, stderr)
    try:
        if options.input != "-":
            streams.stdin = open(options.input, "rb")  # closed by _close
            streams.owned.append(streams.stdin)
        if options.out is not None:
            streams.stdout = open(options.out, "w", encoding="utf-8")  # closed by _close
            streams.owned.append(streams.stdout)
    except OSError as exc:
        _close(streams)
        raise ScanFailed(f"cannot open {exc.filename}: {exc.strerror or exc}") from None
    return streams


def _close(streams: _Streams) -> None:
    for f in streams.owned:
        f.close()


async def _scan(policy: Policy, chain: Chain, options: ScanOptions, streams: _Streams, summary: Summary) -> None:
    targets, skipped = scan_targets(chain)
    summary.set_steps([t.key for t in targets], skipped)
    model = options.model or next(iter(policy.routes), "*")
    total = _count_lines(options.input) if options.progress != "none" else None
    progress = make_progress(options.progress, streams.stderr, total, options.progress_interval_s)
    try:
        options.home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScanFailed(f"cannot create the state directory {options.home}: {exc.strerror or exc}") from None
    store = open_store(policy.store, options.home)
    try:
        try:
            await chain.startup(Resources(store=store, home=options.home))
        except Exception as exc:
            await chain.shutdown()
            raise ScanFailed(f"chain {chain.name!r} did not start: {type(exc).__name__}: {exc}") from None
        complete = False
        try:
            await _Scanner(targets, model, summary, progress, streams.stdout, options.concurrency).run(streams.stdin)
            complete = True
        finally:
            progress.close(complete)
            await chain.shutdown()
    finally:
        await store.close()


def _discard_stdout() -> None:
    """Point fd 1 at /dev/null, so the interpreter's own flush at exit does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (tests pass a buffer)
        pass


def run(
    options: ScanOptions,
    registry: PluginRegistry,
    *,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> int:
    """Run a scan; 0, 1 when a ``fail_on`` condition held, 2 when it could not run, 130 when interrupted.

    Messages for the operator (errors, progress, the summary) go to ``stderr``, results to ``stdout``
    (or ``options.out``).
    """
    err = stderr or sys.stderr
    try:
        policy = load_policy(options.policy, registry)
    except PolicyError as exc:
        print(exc.report(), file=err)
        return 2
    summary = Summary(policy.source)
    try:
        chain = _pick_chain(policy, options.chain)
        summary.chain = chain.name
        streams = _open_streams(options, stdin or sys.stdin.buffer, stdout or sys.stdout, err)
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(_scan(policy, chain, options, streams, summary))
            streams.stdout.flush()
        finally:
            _close(streams)
    except ScanFailed as exc:
        print(f"chaperone scan: {exc}", file=err)
        return 2
    except BrokenPipeError:  # `chaperone scan … | head`: the reader has what it wanted
        if options.out is None:
            _discard_stdout()
        print(summary.render(), file=err)
        print("chaperone scan: the output was closed, stopped reading", file=err)
        return 141  # as a shell reports a command ended by SIGPIPE
    except KeyboardInterrupt:
        print(summary.render(), file=err)
        print("chaperone scan: interrupted", file=err)
        return 130
    failed = summary.failed(options.fail_on)
    print(summary.render(failed), file=err)
    if options.summary_json is not None:
        try:
            options.summary_json.write_text(_dumps(summary.to_json(failed)), encoding="utf-8")
        except OSError as exc:
            print(f"chaperone scan: cannot write {options.summary_json}: {exc.strerror or exc}", file=err)
            return 2
    return 1 if failed else 0
