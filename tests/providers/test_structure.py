"""The dependency runs one way: ``backends/`` imports ``proxy/``; ``proxy/`` reaches ``backends/`` only at the edge."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EDGE = {"proxy/server.py", "proxy/cli.py"}  # where the concrete backends are wired in (backends.wiring)


def _imports_backends(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "backends" or name.startswith("backends.") for name in names):
            lines.append(node.lineno)
    return lines


def test_no_core_module_imports_backends_except_the_edge() -> None:
    offenders = {}
    for path in sorted((ROOT / "proxy").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in EDGE:
            continue
        lines = _imports_backends(path)
        if lines:
            offenders[relative] = lines
    assert offenders == {}, f"proxy/ modules importing backends/ (wire them in backends/wiring.py): {offenders}"


def test_the_edge_modules_do_import_backends() -> None:
    # If this fails the EDGE list above is stale: shrink it rather than letting it allow more than it must.
    assert all(_imports_backends(ROOT / name) for name in EDGE)


def test_importing_the_core_loads_no_backend_module() -> None:
    core = [
        p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        for p in sorted((ROOT / "proxy").rglob("*.py"))
        if p.relative_to(ROOT).as_posix() not in EDGE and p.name != "__main__.py"
    ]
    core = [m.removesuffix(".__init__") for m in core]
    script = (
        "import importlib, sys\n"
        f"for m in {core!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m == 'backends' or m.startswith('backends.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_every_backend_type_is_built_by_the_default_wiring() -> None:
    from backends.wiring import default
    from proxy.backend import Backend

    wiring = default()
    assert "openai" in wiring.types()
    for factory in wiring.factories.values():
        assert callable(factory)
    assert {"mock"} <= set(wiring.builtins)
    assert Backend.__module__ == "proxy.backend"
