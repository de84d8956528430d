"""Find plugin classes by their policy name: built-ins and the ``chaperone`` entry-point group."""

from __future__ import annotations

import importlib
from typing import Any

import pluggy
from pydantic import BaseModel

from proxy import hookspecs

DEFAULT_PLUGINS: tuple[str, ...] = (
    "plugins.budget",
    "plugins.capture",
    "plugins.cache",
    "plugins.cost",
    "plugins.headers",
    "plugins.injection",
    "plugins.judge",
    "plugins.params",
    "plugins.pii",
    "plugins.retry",
    "plugins.schema",
)
ENTRY_POINT_GROUP = "chaperone"


class PluginRegistry:
    """Plugin classes by name; handed to ``register_plugins`` hooks as the ``register`` callable."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Any]] = {}
        self._origins: dict[str, str] = {}
        self.origin = "built-in"

    def __call__(self, cls: type[Any]) -> None:
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"plugin class {cls.__qualname__} needs a class attribute 'name' (an identifier)")
        config = getattr(cls, "Config", None)
        if not (isinstance(config, type) and issubclass(config, BaseModel)):
            raise TypeError(f"plugin {name!r} needs a class attribute 'Config' (a pydantic model)")
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"plugin name {name!r} registered twice: by {self._origins[name]} and by {self.origin}")
        self._classes[name] = cls
        self._origins[name] = self.origin

    def get(self, name: str) -> type[Any] | None:
        return self._classes.get(name)

    def names(self) -> list[str]:
        return sorted(self._classes)


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh manager that knows the hookspecs (used for discovery and, per policy, for checking)."""
    pm = pluggy.PluginManager("chaperone")
    pm.add_hookspecs(hookspecs)
    return pm


def build_registry(
    *, entry_points: bool = True, modules: tuple[str, ...] = DEFAULT_PLUGINS, extra: tuple[str, ...] = ()
) -> PluginRegistry:
    """Import the built-in plugin modules, ``extra`` modules by import path, and (unless disabled) the
    ``chaperone`` entry-point group, and collect the plugin classes their ``register_plugins`` hooks name."""
    pm = make_plugin_manager()
    for module_name in (*modules, *extra):
        pm.register(importlib.import_module(module_name), name=module_name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    registry = PluginRegistry()
    for impl in pm.hook.register_plugins.get_hookimpls():  # registration order
        registry.origin = pm.get_name(impl.plugin) or repr(impl.plugin)
        impl.function(register=registry)
    registry.origin = "built-in"
    return registry


def extra_modules_from_env(value: str | None) -> tuple[str, ...]:
    """``CHAPERONE_PLUGINS=pkg.mod,other.mod``: plugin modules to load without packaging them."""
    return tuple(name.strip() for name in (value or "").split(",") if name.strip())
