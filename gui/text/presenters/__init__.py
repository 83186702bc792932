"""One presenter per text task, found by the task's name: ``fill-mask`` is
``gui.text.presenters.fill_mask.Presenter``. Adding a task adds a file here; nothing else in the
tab changes."""
from __future__ import annotations

import importlib


def presenter_class(task: str):
    """The Presenter class of ``task``, or None when this tab has none for it."""
    try:
        module = importlib.import_module(f"{__name__}.{task.replace('-', '_')}")
    except ModuleNotFoundError:
        return None
    return getattr(module, "Presenter", None)
