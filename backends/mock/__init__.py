"""A deterministic OpenAI-compatible mock upstream, with latency and fault injection, for tests and benchmarks.

Use ``create_app(MockConfig(...))`` in-process, or ``chaperone mock-backend --port P`` from the CLI.
Fault syntax: see :mod:`backends.mock.faults`; answer rules: see :mod:`backends.mock.content`.
"""

from .app import create_app
from .cli import register_cli
from .config import MockConfig
from .faults import FaultSpec, FaultSpecError, parse_fault

__all__ = ["FaultSpec", "FaultSpecError", "MockConfig", "create_app", "parse_fault", "register_cli"]
