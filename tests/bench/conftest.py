"""Fixtures for ``chaperone bench`` tests: the bundled mock and a Chaperone proxy, each its own process.

Both run in their own processes (real sockets, their own event loops), so the load generator's
timings are not disturbed by the server sharing its loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest


def spawn(argv: list[str], banner: bytes, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m proxy.cli ARGV`` and return it with the URL its first banner line ends with."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHAPERONE_"))}
    full.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(banner):
        proc.kill()
        raise AssertionError(f"{argv[0]} did not start: {line!r} {proc.stdout.read()[:2000]!r}")
    return proc, line.split()[-1].decode()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdout is not None:
        proc.stdout.close()
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    """The mock backend's ``…/v1`` URL (one process for the module)."""
    proc, url = spawn(["mock-backend", "--port", "0"], b"mock backend listening on ")
    yield url
    stop(proc)


POLICY = """
backends:
  mock: {{url: "{upstream}", timeout_s: 30}}
models:
  "*": {{backend: mock}}
chains:
  default:
    - params: {{defaults: {{temperature: 0.5}}}}
    - headers: {{response: {{set: {{x-bench: "1"}}}}}}
    - injection: {{}}
    - cache: {{mode: exact}}
metrics: {{plugin_timing: true}}
"""


@pytest.fixture(scope="module")
def proxy_url(mock_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Chaperone (params, headers, injection, exact cache; plugin timing on) in front of the mock; ``…/v1``."""
    home = tmp_path_factory.mktemp("chaperone")
    policy = home / "policy.yaml"
    policy.write_text(textwrap.dedent(POLICY.format(upstream=mock_url)))
    env = {"CHAPERONE_HOME": str(home), "CHAPERONE_RELOAD_INTERVAL_S": "0", "CHAPERONE_LOG_LEVEL": "WARNING"}
    proc, url = spawn(["serve", "--policy", str(policy), "--port", "0"], b"chaperone listening on ", env)
    yield url
    stop(proc)


def read_json(path: Path) -> object:
    import json

    return json.loads(path.read_text())
