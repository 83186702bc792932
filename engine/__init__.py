"""Taskscope engine: our own PyTorch models behind a small task facade.

    from engine import load_task
    task = load_task("object-detection")        # default checkpoint, best device
    result = task(frame_rgb)                     # numpy (H, W, 3) uint8 -> DetectionResult

Importing this package is cheap: torch and the models load on first use. See engine/README.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .cancel import CancelToken
from .memory import limit_primitive_cache
from .catalog import ModelEntry, catalog, default_model, models_for
from .errors import Cancelled, CheckpointError, EngineError, InputError, ModelNotAvailable
from .tasks import all_tasks, task_class, task_names, tasks_for_domain
from .types import Timings
from .types.audio import *  # noqa: F401,F403 - the option and result dataclasses are public API
from .types.vision import *  # noqa: F401,F403
from .types.text import *  # noqa: F401,F403

limit_primitive_cache()  # before any model runs (engine.memory says why)

if TYPE_CHECKING:
    from .device import DeviceInfo
    from .hub import DownloadProgress
    from .tasks.base import Task



def load_task(name: str, model: str | None = None, device: str | None = None, precision: str = "exact", *,
              progress: DownloadProgress | None = None, cancel: CancelToken | None = None,
              offline: bool | None = None) -> Task:
    """Resolve ``model`` (repo id or folder; default from the catalog), load it and return the task."""
    from . import device as _device, hub

    cls = task_class(name)
    ref = model or default_model(name)
    placement = _device.resolve(device, precision)
    folder = hub.resolve(ref, progress=progress, cancel=cancel, offline=offline)
    return cls.load(ref, folder, placement)


def available_devices() -> list[DeviceInfo]:
    from .device import available_devices as _available
    return _available()


def is_cached(model: str) -> bool:
    from .hub import is_cached as _is_cached
    return _is_cached(model)
