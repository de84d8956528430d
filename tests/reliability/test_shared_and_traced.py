"""Circuits shared by two proxies on one Redis, and the attempt history on the trace (with no key in it)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import MockUpstream, ProxyFactory, RunningProxy
from tests.reliability.test_faults_e2e import attempts, chat, no_leaks

__all__ = ["no_leaks"]


def redis_policy(url: str, redis_url: str, chain: str = "[]") -> str:
    return textwrap.dedent(f"""
    backends:
      primary: {{url: "{url}", headers: {{x-mock-fault: "status=500"}}, circuit: {{failures: 2, cooldown_s: 60}}}}
      backup: {{url: "{url}", api_key: sk-secret-backup-key}}
    models:
      gpt: {{backend: primary, model: up-primary, fallback: [spare]}}
      spare: {{backend: backup, model: up-spare}}
    chains:
      default: {chain}
    store: {{backend: redis, url: "{redis_url}"}}
    """)


async def test_a_circuit_one_replica_opened_holds_for_the_other(
    no_leaks: None,
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    tmp_path: Path,
    clean_redis_url: str,
) -> None:
    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(redis_policy(mock_upstream.url, clean_redis_url))
        paths.append(path)
    one: RunningProxy = await start_proxy(paths[0])
    for _ in range(2):
        assert (await chat(one)).headers["x-chaperone-backend"] == "backup"
    assert await attempts(mock_upstream, "up-primary") == 2  # the circuit is open now
    other: RunningProxy = await start_proxy(paths[1])  # its own process state; the same Redis
    for _ in range(3):
        assert (await chat(other)).headers["x-chaperone-backend"] == "backup"
    assert await attempts(mock_upstream, "up-primary") == 2  # the second replica never tried it
    circuits = other.runtime.in_force().circuits
    assert circuits is not None and circuits.breakers["primary"].state == "open"


async def test_the_trace_lists_every_attempt_and_no_key(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    clean_redis_url: str,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    chain = "[{retry: {attempts: 2, backoff_s: 0}}]"
    proxy = await start_proxy(
        write_policy(redis_policy(mock_upstream.url, clean_redis_url, chain)), tracer_provider=provider
    )
    await chat(proxy)
    spans = exporter.get_finished_spans()
    server = next(span for span in spans if span.name == "chat gpt")
    attrs = dict(server.attributes or {})
    assert list(attrs["chaperone.attempt.backends"]) == ["primary", "primary", "backup"]  # type: ignore[arg-type]
    assert list(attrs["chaperone.attempt.outcomes"]) == ["500", "500", "200"]  # type: ignore[arg-type]
    assert attrs["chaperone.backend"] == "backup"
    upstream = [span.name for span in spans if span.name.startswith("upstream ")]
    assert upstream == ["upstream primary", "upstream primary", "upstream backup"]
    everything = repr(
        [(span.name, dict(span.attributes or {}), [(e.name, e.attributes) for e in span.events]) for span in spans]
    )
    assert "sk-secret-backup-key" not in everything
    assert "chaperone.fallback" in everything and "chaperone.retry" in everything  # the retry plugin's span events
