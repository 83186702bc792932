"""One task per file; this list is the registry: one line per task module. Each module defines
one :class:`engine.tasks.base.Task` subclass that declares its name, types, checkpoints, CLI
command and benchmark. Task modules are cheap to import (torch loads lazily), so reading the
declarations costs nothing."""
from __future__ import annotations

import functools
import importlib
import inspect

TASK_MODULES: tuple[str, ...] = (
    "engine.tasks.object_detection",
    "engine.tasks.image_classification",
    "engine.tasks.speech_recognition",
    "engine.tasks.audio_classification",
    "engine.tasks.semantic_segmentation",
    "engine.tasks.universal_segmentation",
    "engine.tasks.depth_estimation",
    "engine.tasks.text_classification",
    "engine.tasks.token_classification",
    "engine.tasks.question_answering",
    "engine.tasks.fill_mask",
    "engine.tasks.sentence_similarity",
    "engine.tasks.text_generation",
    "engine.tasks.summarization",
    "engine.tasks.translation",
)


@functools.cache
def all_tasks() -> dict:
    """Task name -> Task subclass, in registry order."""
    from .base import Task
    found = {}
    for module_name in TASK_MODULES:
        module = importlib.import_module(module_name)
        classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
                   if issubclass(c, Task) and c.__module__ == module_name and c.name]
        if len(classes) != 1:
            raise RuntimeError(f"{module_name} must define exactly one Task subclass with a name, found {classes}")
        found[classes[0].name] = classes[0]
    return found


def task_names() -> tuple[str, ...]:
    return tuple(all_tasks())


def task_class(name: str):
    from ..errors import EngineError
    tasks = all_tasks()
    try:
        return tasks[name]
    except KeyError:
        raise EngineError(f"Unknown task {name!r}; known tasks: {', '.join(sorted(tasks))}.") from None


def tasks_for_domain(domain: str) -> list:
    """The task classes of one tab ("vision", "audio", "text"), in registry order."""
    return [cls for cls in all_tasks().values() if cls.domain == domain]
