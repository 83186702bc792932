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


@dataclass(eq=False)
class _LongJob:
    item: _Item
    steps: Iterator
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
        self.device = "auto"
        self.precision = "exact"
        self.offline: bool | None = None
        self.limit = int(memory_limit)

    # the methods below are called with the lock held

    def wanted(self, task: str) -> tuple:
        return self.choice.get(task), self.device, self.precision

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
