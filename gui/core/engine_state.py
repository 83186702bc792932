"""State the engine client, its worker and its loader share: the queues, the loaded-model cache
and its limit, guarded by one condition variable."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


from engine.cancel import CancelToken

log = logging.getLogger(__name__)

PROGRESS_RATE_HZ = 20.0
#: default limit of the loaded-model cache (parameter + buffer bytes of the loaded models)
DEFAULT_MEMORY_LIMIT = 4 * 1024 ** 3
#: ``Request.progress`` fraction when the task cannot tell how far it got
UNKNOWN_FRACTION = -1.0
#: after a long job's step of T seconds, live streams with work may run for up to LIVE_SHARE * T
#: before the next step (at least one item per stream always): live keeps >= 2/3 of the thread
LIVE_SHARE = 2.0

Key = tuple  # (task, model_ref, device, precision): one entry of the loaded-model cache


@dataclass(eq=False)
class _Item:
    rid: int
    stream: str
    task: str
    inputs: Any
    options: Any
    item_id: int
    meta: Any
    submitted_at: float
    long: bool = False
    token: CancelToken = field(default_factory=CancelToken)
    gpu_retried: bool = False  # rerun once on the CPU after a GPU failure (never a second time)


@dataclass(eq=False)
class _LongJob:
    item: _Item
    steps: Iterator
    task: Any = None  # the engine Task its steps run on (where it is placed: the GPU fallback)
    last: Any = None
    has_last: bool = False
    last_progress: float = 0.0


@dataclass(eq=False)
class _Load:
    task: str
    model: str | None
    token: CancelToken = field(default_factory=CancelToken)


@dataclass(eq=False)
class _Entry:
    task: Any  # the engine Task
    model: str
    nbytes: int
    description: str


class _Shared:
    """State shared by the UI thread, the worker and the loader, guarded by one condition variable."""

    def __init__(self, memory_limit: int) -> None:
        self.cond = threading.Condition()
        self.stop = False
        self.pending: OrderedDict[str, deque[_Item]] = OrderedDict()  # stream -> items not started
        self.long: deque[_LongJob] = deque()  # long jobs started, one step at a time
        self.loads: OrderedDict[str, _Load] = OrderedDict()  # task -> newest load request
        self.running_item: _Item | None = None
        self.running_load: _Load | None = None
        self.cache: OrderedDict[Key, _Entry] = OrderedDict()  # least recently used first
        self.active: dict[str, Key] = {}  # task -> the cache entry its items run on
        self.choice: dict[str, str | None] = {}  # task -> model chosen by the last load()
        self.failed: dict[str, tuple] = {}  # task -> (model, device, precision) whose load failed
        self.failed_message: dict[str, str] = {}  # task -> why its load failed ("" or absent: cancelled)
        # task -> the notice of its GPU failure: it runs on the CPU (exact) until the settings change
        self.fallback: dict[str, str] = {}
        self._device = "auto"
        self._precision = "exact"
        self.offline: bool | None = None
        self.limit = int(memory_limit)

    # the device settings: a change ends every CPU fallback (the new settings are tried as chosen)

    @property
    def device(self) -> str:
        return self._device

    @device.setter
    def device(self, value: str) -> None:
        if value != self._device:
            self.fallback.clear()
        self._device = value

    @property
    def precision(self) -> str:
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value != self._precision:
            self.fallback.clear()
        self._precision = value

    # the methods below are called with the lock held

    def settings_for(self, task: str) -> tuple[str, str]:
        """(device, precision) ``task`` loads with: the CPU, exact, after a GPU failure; else the settings."""
        if task in self.fallback:
            return CPU_FALLBACK
        return self._device, self._precision

    def wanted(self, task: str) -> tuple:
        return (self.choice.get(task), *self.settings_for(task))

    def queue_load(self, task: str, model: str | None) -> None:
        self.loads.pop(task, None)
        self.loads[task] = _Load(task, model)

    def loading(self, task: str) -> bool:
        return task in self.loads or (self.running_load is not None and self.running_load.task == task
                                      and not self.running_load.token.cancelled)

    def evict(self, keep: Key | None) -> list[_Entry]:
        """Drop least recently used entries (never ``keep``) until the cache fits the limit."""
        out = []
        total = sum(e.nbytes for e in self.cache.values())
        for key in list(self.cache):
            if total <= self.limit:
                break
            if key == keep:
                continue
            entry = self.cache.pop(key)
            total -= entry.nbytes
            out.append(entry)
            if self.active.get(key[0]) == key:
                del self.active[key[0]]
            log.info("model cache over %.0f MB: unloaded %s (%.0f MB)", self.limit / 2 ** 20, entry.description,
                     entry.nbytes / 2 ** 20)
        return out


def _memory_bytes(task: Any) -> int:
    size = getattr(task, "memory_bytes", None)
    try:
        return max(0, int(size())) if callable(size) else 0
    except Exception:  # noqa: BLE001 - a size we cannot tell counts as nothing
        log.exception("memory_bytes() failed for %r", task)
        return 0


def _unexpected(task: str, exc: BaseException) -> str:
    return f"Unexpected error in {task}: {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------- GPU fallback
# gui/ never imports torch: a GPU failure is told by the exception's type NAME and its message.

#: where a task that failed on the GPU runs from then on
CPU_FALLBACK = ("cpu", "exact")
_GPU_WORDS = ("cuda", "cudnn", "cublas", "cufft", "cusolver", "cusparse", "nccl", "hip error", "mps backend")


def gpu_failure(exc: BaseException) -> str:
    """"out of memory" or "error" when ``exc`` looks like a GPU out-of-memory or driver error
    (torch.cuda.OutOfMemoryError, torch.AcceleratorError, a RuntimeError naming CUDA/cuDNN/cuBLAS...
    or saying "out of memory", not the CPU allocator's); "" otherwise."""
    name = type(exc).__name__
    text = str(exc).lower()
    gpu_words = any(w in text for w in _GPU_WORDS)
    if name == "OutOfMemoryError" or ("out of memory" in text and "cpu" not in text):
        return "out of memory"
    if gpu_words or name == "AcceleratorError":
        return "out of memory" if ("out of memory" in text or "alloc_failed" in text) else "error"
    return ""


def placed_on_gpu(task: Any) -> bool:
    """True when the engine Task runs on a device other than the CPU (``task.placement.device``:
    a torch.device, or anything whose ``type`` or text names the device)."""
    device = getattr(getattr(task, "placement", None), "device", None)
    if device is None:
        return False
    kind = getattr(device, "type", None) or str(device).split(":", 1)[0]
    return str(kind).strip().lower() not in ("", "cpu")


def fallback_notice(task: str, exc: BaseException) -> str:
    """What the window shows once when ``task`` moves to the CPU after ``exc``."""
    if gpu_failure(exc) == "out of memory":
        return f"GPU out of memory: running {task} on the CPU"
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return f"GPU error ({detail}): running {task} on the CPU"
