"""One stream's pass through the chain's chunk hooks (``proxy.chain.Chain.process_stream`` drives it).

Parsing, the hooks in reverse policy order, re-encoding in the stream's own framing, the read-only
passthrough when every hook only observes, and the cut of the usage a plugin asked for and the client
did not (``proxy.pricing.ask_stream_usage``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy import sse
from proxy.exchange import Exchange
from proxy.pricing import take_stream_usage

_NULL_USAGE = (b',"usage":null', b', "usage": null')  # compact and spaced; bare quotes: a key, never in a string
_USAGE = b'"usage":'


def _cut_null_usage(data: bytes) -> bytes:
    for null in _NULL_USAGE:
        data = data.replace(null, b"")
    return data


def seen_block(exchange: Exchange, observers: tuple[Callable[[Exchange, bytes], None], ...], out: list[bytes]) -> bytes:
    """The block about to go out, shown to the ``observe_bytes`` hooks; ``out`` is emptied for the next one."""
    data = b"".join(out)
    out.clear()
    for hook in observers:
        hook(exchange, data)
    return data


class StreamRun:
    """One stream's pass through the chunk hooks: which steps see which chunk, and the end hooks, once.

    Re-encoding keeps the stream's framing: when its events are named (``event: <type>`` lines, as the
    Responses and Messages APIs send them) each chunk is named by its ``type`` again, and chunks that
    carry a ``sequence_number`` are renumbered in the order they go out, so the numbers stay contiguous
    when a plugin adds or drops events. When every hook only observes (``observe_chunk``) and no step
    has an ``on_stream_end``, nothing can change, so each event's own bytes go out (``passthrough``).
    """

    __slots__ = ("ended", "ends", "exchange", "hooks", "named", "passthrough", "sequence", "strip_usage")

    def __init__(
        self,
        exchange: Exchange,
        hooks: list[tuple[int, Callable[..., Any], bool]],
        ends: list[tuple[int, Callable[..., Any]]],
        *,
        strip_usage: bool = False,
    ) -> None:
        self.exchange = exchange
        self.hooks = hooks
        self.ends = ends
        self.ended = False
        self.named = False
        self.sequence = 0
        self.passthrough = not ends and all(observe for _, _, observe in hooks)
        self.strip_usage = strip_usage

    async def block(self, block: bytes, out: list[bytes]) -> None:
        if self.passthrough:
            self.observe(block, out)
            return
        for event in sse.split_events(block):
            chunk = sse.decode_data(event)
            if chunk is None:  # [DONE], comments, non-JSON events pass unchanged
                if sse.is_done(event):
                    await self.end(out)
                out.append(event)
                continue
            if event.startswith(b"event:"):
                self.named = True
            await self.chunk(chunk, None, out)

    def observe(self, block: bytes, out: list[bytes]) -> None:
        """The passthrough path: observers see each chunk, and each event's own bytes go on (less the usage
        the client did not ask for). No ``on_stream_end`` here, so ``[DONE]`` has nothing to run."""
        hooks, strip = self.hooks, self.strip_usage
        if not hooks:
            if strip:  # only the usage to cut: OpenAI's "usage": null on every chunk goes in one pass
                block = _cut_null_usage(block)
            if not (strip and _USAGE in block):
                out.append(block)  # nothing (more) to see or cut: the block goes on as one piece
                return
        exchange = self.exchange
        for event in sse.split_events(block):
            if not hooks and _USAGE not in event:  # parse only the event that carries the usage
                out.append(event)
                continue
            chunk = sse.decode_data(event)
            if chunk is None:
                out.append(event)
                continue
            for _, hook, _ in hooks:
                hook(exchange, chunk)
            if not (strip and "usage" in chunk):
                out.append(event)
                continue
            cut = _cut_null_usage(event) if chunk["usage"] is None else event
            if len(cut) < len(event):  # usage: null on every chunk but the last: cut, not re-encoded
                out.append(cut)
            else:
                self.emit(chunk, out)

    async def chunk(self, chunk: dict[str, Any], below: int | None, out: list[bytes], start: int = 0) -> None:
        """Run ``chunk`` through the chunk hooks (of steps before ``below``, when given), innermost first.

        A hook may return a list of chunks: each goes on through the hooks after it, in order.
        """
        hooks = self.hooks
        for position in range(start, len(hooks)):
            index, hook, observe = hooks[position]
            if below is not None and index >= below:
                continue
            if observe:
                hook(self.exchange, chunk)
                continue
            result = await hook(self.exchange, chunk)
            if result is None:
                return
            if isinstance(result, list):
                for item in result:
                    await self.chunk(item, below, out, position + 1)
                return
            chunk = result
        self.emit(chunk, out)

    def emit(self, chunk: dict[str, Any], out: list[bytes]) -> None:
        """Encode a chunk the hooks are done with, without the usage the client did not ask for (kept in
        ``exchange.usage``)."""
        if self.strip_usage and "usage" in chunk:
            kept = take_stream_usage(self.exchange, chunk)
            if kept is None:
                return
            chunk = kept
        out.append(self.encode(chunk))

    def encode(self, chunk: dict[str, Any]) -> bytes:
        if "sequence_number" in chunk:
            chunk["sequence_number"] = self.sequence
            self.sequence += 1
        data = sse.encode_data(chunk)
        kind = chunk.get("type")
        if self.named and isinstance(kind, str):
            return b"event: " + kind.encode() + b"\n" + data
        return data

    async def end(self, out: list[bytes]) -> None:
        if self.ended:
            return
        self.ended = True
        for index, hook in self.ends:
            extra = await hook(self.exchange)
            for chunk in extra or ():
                await self.chunk(chunk, index, out)
