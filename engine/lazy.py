"""Modules imported on first use, so that importing a task module (to read what it declares:
name, checkpoints, CLI command) costs nothing: torch and the model files load only when a task
actually runs. The app's UI thread imports task declarations and must never import torch.

    torch = lazy("torch")            # at the top of a task module
    ...
    with torch.inference_mode():     # the real import happens here, on first attribute access
"""
from __future__ import annotations

import importlib
import types


class _LazyModule(types.ModuleType):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_target"] = None

    def _load(self) -> types.ModuleType:
        target = self.__dict__["_lazy_target"]
        if target is None:
            target = self.__dict__["_lazy_target"] = importlib.import_module(self.__name__)
        return target

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __dir__(self):
        return dir(self._load())

    def __repr__(self) -> str:
        state = "loaded" if self.__dict__["_lazy_target"] is not None else "not loaded yet"
        return f"<lazy module {self.__name__!r} ({state})>"


def lazy(name: str) -> types.ModuleType:
    """A stand-in for ``import name`` that imports the module on first attribute access."""
    return _LazyModule(name)
