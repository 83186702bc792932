"""One presenter per text task, found by the task's name: ``fill-mask`` is
``gui.text.presenters.fill_mask.Presenter``. Adding a task adds a file here; nothing else in the
tab changes. Tasks that share a module name it in SHARED (summarization and translation: seq2seq)."""
from __future__ import annotations

import importlib

#: task -> (module, class) for presenters that share a module
SHARED = {"summarization": ("seq2seq", "SummarizationPresenter"),
          "translation": ("seq2seq", "TranslationPresenter")}


def presenter_class(task: str):
    """The Presenter class of ``task``, or None when this tab has none for it."""
    module_name, class_name = SHARED.get(task, (task.replace("-", "_"), "Presenter"))
    full = f"{__name__}.{module_name}"
    try:
        module = importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name != full:  # the module exists but something it imports is missing: say so
            raise
        return None
    return getattr(module, class_name, None)
