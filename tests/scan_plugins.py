"""Fake guard plugins that implement the scan protocol, for the `chaperone scan` tests.

Load them with ``CHAPERONE_PLUGINS=tests.scan_plugins`` (or ``build_registry(extra=...)``):
``spotter`` finds configured words as entities, ``scorer`` scores texts and can wait for another
input (to prove inputs run concurrently), ``lifecycle`` has no ``scan`` but records its startup
and shutdown in the state directory.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from proxy import ApiRequest, Exchange, PluginRegistry, hookimpl
from proxy.runtime import Resources
from proxy.textview import request_texts


class SpotterConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    words: dict[str, str] = Field(default_factory=dict, description="Word → entity type to report.")
    block: list[str] = Field(default_factory=list, description="Entity types that make the action 'block'.")


class Spotter:
    name = "spotter"
    Config = SpotterConfig

    def __init__(self, config: SpotterConfig) -> None:
        self.config = config
        self.started = False

    @hookimpl
    async def on_startup(self, resources: Resources) -> None:
        await resources.store.ping()
        self.started = True

    async def scan(self, request: ApiRequest) -> dict[str, Any] | None:
        assert self.started, "scan before on_startup"
        entities = []
        for ref in request_texts(request):
            for word, kind in self.config.words.items():
                for match in re.finditer(re.escape(word), ref.text):
                    entities.append(
                        {"type": kind, "start": match.start(), "end": match.end(), "score": 1.0, "path": ref.path}
                    )
        if not entities:
            return None
        block = any(e["type"] in self.config.block for e in entities)
        return {"entities": entities, "action": "block" if block else "pseudonymize"}


class ScorerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    threshold: float = Field(default=0.5, description="Scores at or above this block.")


class Scorer:
    """``score=0.7`` in a text sets the score; ``wait`` waits for a ``release`` input; ``boom`` raises."""

    name = "scorer"
    Config = ScorerConfig

    def __init__(self, config: ScorerConfig) -> None:
        self.config = config
        self.released = asyncio.Event()

    async def scan(self, request: ApiRequest) -> dict[str, Any] | None:
        text = " ".join(ref.text for ref in request_texts(request))
        if "boom" in text:
            raise RuntimeError("the classifier fell over")
        if "wait" in text:
            await asyncio.wait_for(self.released.wait(), 10)
        if "release" in text:
            self.released.set()
        found = re.search(r"score=([0-9.]+)", text)
        score = float(found[1]) if found else 0.0
        action = "block" if score >= self.config.threshold else "allow"
        return {"score": score, "categories": ["override"] if found else [], "action": action}


class LifecycleConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Lifecycle:
    name = "lifecycle"
    Config = LifecycleConfig

    def __init__(self, config: LifecycleConfig) -> None:
        self.home: Path | None = None

    @hookimpl
    async def on_startup(self, resources: Resources) -> None:
        self.home = resources.home
        (resources.home / "lifecycle-started").write_text("yes")

    @hookimpl
    async def on_request(self, exchange: Exchange) -> None:
        raise AssertionError("a scan must never run on_request")

    @hookimpl
    async def on_shutdown(self) -> None:
        assert self.home is not None
        (self.home / "lifecycle-stopped").write_text("yes")


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Spotter)
    register(Scorer)
    register(Lifecycle)
