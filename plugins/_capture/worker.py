"""What runs where the capture store lives: a separate process (default) or one thread of the proxy.

Masking is presidio's pure-Python regex work and the SQLite writes are Python too: in a thread of the
proxy they hold the GIL the event loop needs, and every answer in flight waits for it (measured in
``benchmarks/capture_overhead.py``). In their own process they cost the proxy nothing but pickling the
snapshots. The functions below are what the writer submits; each store is opened once, by ``init``, in
the process (or thread) that then owns it, and is found again by the writer's key.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from plugins._capture.mask import Masker, Pending
from plugins._capture.store import CaptureStore

log = logging.getLogger(__name__)

_OPEN: dict[str, tuple[CaptureStore, Masker]] = {}  # writer key -> its store and masker, in the owning process


def init(key: str, path: str, detector: dict[str, Any], nice: int = 0) -> None:
    """Open the store and build the recognizers (presidio) for one writer; ``nice`` lowers the process's priority
    (its own process only: under CPU contention the proxy's answers go first, the writer catches up later).
    Writers have keys of their own: after a policy reload the old and the new writer of one file coexist."""
    if key in _OPEN:
        return
    if nice:
        os.nice(nice)
    from plugins._pii.config import DetectorConfig
    from plugins._pii.detect import PiiDetector

    found = PiiDetector(DetectorConfig.model_validate(detector))
    found.analyze("warm up: build the engines now, not on the first record")
    _OPEN[key] = (CaptureStore(Path(path)), Masker(found))


def write(key: str, items: list[Pending]) -> int:
    """Mask and insert a batch; a record that fails to mask is logged and left out (never stored unmasked)."""
    store, masker = _OPEN[key]
    rows = []
    for pending in items:
        try:
            rows.append(masker.row(pending))
        except Exception:
            log.exception("capture: record %s not stored", pending.meta.get("request_id"))
    return store.insert_many(rows)


def key_of(key: str, request_id: str) -> str | None:
    return _OPEN[key][0].key_of(request_id)


def feedback(key: str, request_id: str, author: str, values: dict[str, Any]) -> None:
    """Mask the comment and correction with capture's recognizers, then store the feedback."""
    store, masker = _OPEN[key]
    comment, correction = values.get("comment"), values.get("correction")
    masked_comment, masked_correction = masker.mask_free_text([comment or "", correction or ""])
    store.set_feedback(
        request_id, author=author, good=values.get("good"), score=values.get("score"),
        comment=masked_comment if comment else None,
        correction={"role": "assistant", "content": masked_correction} if correction else None,
    )  # fmt: skip


def close(key: str) -> None:
    opened = _OPEN.pop(key, None)
    if opened is not None:
        opened[0].close()
