"""Submodules that load on first attribute access (PEP 562), for the packages of labkit."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

__all__ = ["lazy_submodules"]


def lazy_submodules(package: str, names: set[str]) -> Callable[[str], ModuleType]:
    """Return a module ``__getattr__`` that imports ``package.<name>`` for each of ``names``.

    ``lk.data.text`` then works without an explicit import, and a package does not pay for
    (or import TensorFlow through) a submodule nobody uses.
    """

    def __getattr__(name: str) -> ModuleType:
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
