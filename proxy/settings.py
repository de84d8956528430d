"""Process-level settings: where the policy is, where to listen, where state lives."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

PACKAGE_POLICIES = Path(__file__).resolve().parent.parent / "policies"  # examples, in a checkout
DEFAULT_POLICY = Path(__file__).resolve().parent / "policies" / "default.yaml"  # package data: in every install


@dataclass(frozen=True)
class Settings:
    policy_path: Path = DEFAULT_POLICY
    host: str = "127.0.0.1"
    port: int = 8080
    home: Path = field(default_factory=lambda: Path("~/.chaperone").expanduser())
    reload_interval_s: float = 1.0
    shutdown_timeout_s: float = 30.0
    tracer_provider: TracerProvider | None = None
    clock: Callable[[], float] = time.time  # wall time for the store and virtual keys; tests inject a fake
    workers: int = 1  # serving processes on the port (`serve --workers N`); 1 = this process serves

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"CHAPERONE_WORKERS must be at least 1, got {self.workers}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults, overridden by CHAPERONE_POLICY, CHAPERONE_HOST, CHAPERONE_PORT, CHAPERONE_HOME, …"""
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            policy_path=Path(env.get("CHAPERONE_POLICY") or defaults.policy_path),
            host=env.get("CHAPERONE_HOST") or defaults.host,
            port=int(env.get("CHAPERONE_PORT") or defaults.port),
            home=Path(env.get("CHAPERONE_HOME") or defaults.home).expanduser(),
            reload_interval_s=float(env.get("CHAPERONE_RELOAD_INTERVAL_S") or defaults.reload_interval_s),
            shutdown_timeout_s=float(env.get("CHAPERONE_SHUTDOWN_TIMEOUT_S") or defaults.shutdown_timeout_s),
            workers=int(env.get("CHAPERONE_WORKERS") or defaults.workers),
        )


SETTINGS = web.AppKey("settings", Settings)
