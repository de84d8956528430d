"""GC tuning of a serving process: frozen startup objects, raised thresholds, an override to leave it alone."""

from __future__ import annotations

import subprocess
import sys

PROBE = (
    "import gc, sys; from proxy import gctune; "
    "t = gctune.tune(sys.argv[1]); print(t, gc.get_threshold(), gc.get_freeze_count() > 0)"
)


def probe(setting: str) -> str:
    command = [sys.executable, "-c", PROBE, setting]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip() + result.stderr.strip()


def test_serving_processes_freeze_startup_objects_and_raise_thresholds() -> None:
    assert probe("") == "(20000, 20, 40) (20000, 20, 40) True"
    assert probe("5000,10,10") == "(5000, 10, 10) (5000, 10, 10) True"


def test_default_leaves_cpython_alone_and_bad_values_are_reported() -> None:
    assert probe("default") == "None (700, 10, 10) False"
    bad = probe("lots")
    assert bad.startswith("(20000, 20, 40) (20000, 20, 40) True") and "CHAPERONE_GC='lots'" in bad
