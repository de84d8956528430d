"""Garbage-collector settings for a long-running proxy process.

Measured: with CPython's defaults (thresholds 700/10/10) the collector cost the empty chain about
a quarter of its CPU per request — young collections every ~17 requests, and full collections that
walk every object the process loaded at startup (aiohttp, pydantic models, the compiled policy).
After startup ``tune()`` moves everything alive into the permanent generation (``gc.freeze``: never
scanned again) and raises the young-generation threshold, so short-lived request objects mostly die
before a collection looks at them. Reference cycles are still collected.

``CHAPERONE_GC`` overrides: ``default`` (leave CPython's settings), or ``G0,G1,G2`` thresholds.
"""

from __future__ import annotations

import gc
import logging
import os

log = logging.getLogger(__name__)

THRESHOLDS = (20_000, 20, 40)


def tune(env: str | None = None) -> tuple[int, int, int] | None:
    """Freeze what startup allocated and set the thresholds; the thresholds in force, or None if left alone."""
    setting = (os.environ.get("CHAPERONE_GC", "") if env is None else env).strip()
    if setting == "default":
        return None
    thresholds = THRESHOLDS
    if setting:
        try:
            parts = tuple(int(p) for p in setting.split(","))
            if len(parts) != 3 or min(parts) < 1:
                raise ValueError
            thresholds = (parts[0], parts[1], parts[2])
        except ValueError:
            log.warning("CHAPERONE_GC=%r is not 'default' or three positive integers; using %s", setting, THRESHOLDS)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    return thresholds
