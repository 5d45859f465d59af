"""SDK modules imported on first use, so that reading a config (every ``ha`` command) does not
pay for pyVmomi, pywinrm or requests. Attribute access loads the module; what it returns is the
real object, so ``isinstance`` and ``except`` clauses work unchanged."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """``LazyModule("pyVim.connect")``, or ``LazyModule("pyVmomi", "vim")`` for a namespace
    that a package builds as an attribute rather than a module."""

    def __init__(self, name: str, attribute: str | None = None) -> None:
        self._name = name
        self._attribute = attribute
        self._target: ModuleType | Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._target is None:
            module = importlib.import_module(self._name)
            self._target = getattr(module, self._attribute) if self._attribute else module
        return getattr(self._target, attribute)

    def __repr__(self) -> str:
        return f"<lazy {self._name}{'.' + self._attribute if self._attribute else ''}>"
