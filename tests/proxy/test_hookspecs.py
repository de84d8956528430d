"""The plugin contract stays honest: every hook is documented and has its own test."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy import hookspecs
from proxy.chain import _SPEC_ARGS

TESTS = Path(__file__).resolve().parent.parent
SPEC_MARK = "chaperone_spec"


def all_hookspecs() -> dict[str, Callable[..., Any]]:
    return {name: fn for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, SPEC_MARK)}


def test_the_contract_has_the_documented_hooks() -> None:
    assert set(all_hookspecs()) == {
        "register_plugins",
        "on_startup",
        "on_shutdown",
        "on_request",
        "wrap_call",
        "on_response",
        "on_chunk",
        "observe_chunk",
        "observe_bytes",
        "on_stream_end",
        "on_complete",
    }
    assert set(hookspecs.HOOKS_REQUEST_TIME) | set(hookspecs.HOOKS_LIFECYCLE) == set(all_hookspecs()) - {
        "register_plugins"
    }


@pytest.mark.parametrize("name", sorted(all_hookspecs()))
def test_every_hook_documents_its_contract(name: str) -> None:
    doc = inspect.getdoc(all_hookspecs()[name]) or ""
    for section in ("Runs:", "May mutate:", "Returns:"):
        assert section in doc, f"hookspec {name} has no {section!r} in its docstring"
    for arg in inspect.signature(all_hookspecs()[name]).parameters:
        assert f":param {arg}:" in doc, f"hookspec {name} does not document its argument {arg!r}"


@pytest.mark.parametrize("name", sorted(all_hookspecs()))
def test_every_hook_has_a_test(name: str) -> None:
    pattern = re.compile(rf"^(async )?def test_hook_{name}\(", re.MULTILINE)
    found = [p for p in TESTS.rglob("test_*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert found, f"no test named test_hook_{name} under {TESTS}"


@pytest.mark.parametrize("name", sorted(_SPEC_ARGS))
def test_the_chain_binds_hooks_with_the_spec_arguments(name: str) -> None:
    # The runner adapts impls that take fewer arguments by position; it must agree with the spec.
    assert _SPEC_ARGS[name] == tuple(inspect.signature(all_hookspecs()[name]).parameters)


def test_hooks_are_async_but_register_plugins_and_the_observers() -> None:
    for name, fn in all_hookspecs().items():
        assert inspect.iscoroutinefunction(fn) == (name not in hookspecs.HOOKS_SYNC), name
