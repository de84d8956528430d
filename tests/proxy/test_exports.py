"""``proxy`` re-exports exactly the plugin-facing API, in a sorted ``__all__``."""

from __future__ import annotations

from types import ModuleType

import proxy


def test_all_is_sorted() -> None:
    assert proxy.__all__ == sorted(proxy.__all__)


def test_every_exported_name_resolves() -> None:
    for name in proxy.__all__:
        assert getattr(proxy, name) is not None, name


def test_nothing_public_is_missing_from_all() -> None:
    public = {
        name
        for name, value in vars(proxy).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)  # submodules appear once imported
    }
    assert public == set(proxy.__all__)


def test_exported_names_have_no_duplicates() -> None:
    assert len(proxy.__all__) == len(set(proxy.__all__))
