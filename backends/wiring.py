"""The concrete backends, wired for the core: one ``proxy.backend.Wiring`` the edge hands to the runtime.

Add a provider adapter or an engine here (its ``type:`` name and factory) and in its own module under
``backends/``; nothing in ``proxy/`` changes.
"""

from __future__ import annotations

from backends.anthropic import AnthropicBackend
from backends.launch.backend import Engines, LaunchedBackend
from backends.mock import create_app
from backends.pool import build_backend
from backends.router import make_terminal
from proxy.backend import Backend, BackendFactory, Wiring
from proxy.policyfile import BackendConfig

FACTORIES: dict[str, BackendFactory] = {
    "openai": build_backend,  # [balance] a ReplicaPool for several urls, else an OpenAIBackend
    "anthropic": AnthropicBackend,
}


def default() -> Wiring:
    """The built-in backend types (openai, anthropic), the router's terminal, the bundled mock, and the
    engine launcher (``launch:`` backends; its engines outlive a reload that keeps their block)."""
    engines = Engines()

    def launched(name: str, config: BackendConfig, url: str | None) -> Backend:
        return LaunchedBackend(name, config, engines)

    return Wiring(
        factories=dict(FACTORIES),
        terminal=make_terminal,
        builtins={"mock": create_app},
        launch=launched,
        close=engines.close,
    )
