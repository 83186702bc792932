"""Which checkpoints each task offers: the default first, then alternatives. Each task module
declares its own entries (``Task.models``); this module only reads them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelEntry:
    id: str  # Hugging Face repo id
    size_mb: int  # download size of the weights, approximately
    licence: str
    note: str = ""


def catalog() -> dict[str, tuple[ModelEntry, ...]]:
    """Task name -> its checkpoints, default first, for every registered task."""
    from .tasks import all_tasks
    return {name: cls.models for name, cls in all_tasks().items()}


def models_for(task: str) -> tuple[ModelEntry, ...]:
    from .tasks import all_tasks
    cls = all_tasks().get(task)
    return cls.models if cls is not None else ()


def default_model(task: str) -> str:
    entries = models_for(task)
    if not entries:
        from .errors import EngineError
        raise EngineError(f"No default model for task {task!r}.")
    return entries[0].id
