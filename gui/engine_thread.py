"""The engine thread: one QThread that owns the loaded tasks and runs them off the UI thread.

The UI thread talks to :class:`EngineClient` only. ``submit`` never blocks: each stream
("vision", "speech", ...) has at most one pending item — a newer submit replaces the older
one, which is counted as dropped (latest wins) — unless ``keep_all=True`` asks for a queue
(file transcription, where nothing may be skipped). Results, errors and progress come back as
queued Qt signals. Models load on the same thread: explicitly through ``load`` or lazily when
an item arrives for a task that is not loaded yet.

Never imports torch: the engine's public API does that inside the worker thread.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

import engine
from engine.cancel import CancelToken
from engine.errors import Cancelled, EngineError

log = logging.getLogger(__name__)

#: cross-thread progress updates per stream / per load are limited to this many per second
PROGRESS_RATE_HZ = 20.0


_LOAD_CANCELLED = "The model for {task} is not loaded (loading was cancelled)."


def load_cancelled_message(task: str) -> str:
    """The errorOccurred message for an item skipped because its model's loading was cancelled."""
    return _LOAD_CANCELLED.format(task=task)


def is_load_cancelled_message(message: str) -> bool:
    """True for :func:`load_cancelled_message` texts: the user cancelled the load, so a window
    may leave them out of its error display (modelFailed("") already said so); a tab waiting
    for the item still learns that it will not come."""
    head, tail = _LOAD_CANCELLED.split("{task}")
    return message.startswith(head) and message.endswith(tail)


@dataclass(frozen=True)
class Outcome:
    """One finished item, as ``EngineClient.resultReady`` delivers it."""

    stream: str
    task: str
    item_id: int
    result: object
    meta: object
    submitted_at: float  # time.monotonic() when submit() was called
    finished_at: float  # time.monotonic() when the task returned

    @property
    def latency_s(self) -> float:
        return self.finished_at - self.submitted_at


@dataclass
class _Item:
    stream: str
    task: str
    inputs: Any
    options: Any
    item_id: int
    meta: Any
    submitted_at: float
    token: CancelToken = field(default_factory=CancelToken)
    user_cancelled: bool = False  # cancelled through EngineClient.cancel(stream): stays quiet


@dataclass
class _Load:
    task: str
    model: str | None
    token: CancelToken = field(default_factory=CancelToken)


class _Shared:
    """State shared by the UI thread and the worker, guarded by one condition variable."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.stop = False
        self.pending: OrderedDict[str, deque[_Item]] = OrderedDict()  # stream -> items, round robin
        self.loads: OrderedDict[str, _Load] = OrderedDict()  # task -> newest load request
        self.running_item: _Item | None = None
        self.running_load: _Load | None = None
        self.choice: dict[str, str | None] = {}  # task -> model chosen by the last load()
        self.loaded: dict[str, str] = {}  # task -> model ref loaded
        self.failed: dict[str, tuple] = {}  # task -> (model, device, precision) whose load failed
        self.failed_message: dict[str, str] = {}  # task -> why its load failed ("" or absent: cancelled)
        self.device = "auto"
        self.precision = "exact"
        self.offline: bool | None = None


class _Worker(QObject):
    """Lives in the engine thread; ``run`` is its loop until asked to stop."""

    resultReady = Signal(object)
    errorOccurred = Signal(str, str)
    progressChanged = Signal(str, float, object)
    modelLoading = Signal(str, str, object, object)
    modelLoaded = Signal(str, str)
    modelFailed = Signal(str, str)

    def __init__(self, shared: _Shared) -> None:
        super().__init__()
        self._s = shared
        self._tasks: dict[str, Any] = {}  # task name -> engine Task (only touched in this thread)

    @Slot()
    def run(self) -> None:
        log.debug("engine thread started")
        while True:
            with self._s.cond:
                while not self._s.stop and not self._s.loads and not self._s.pending:
                    self._s.cond.wait()
                if self._s.stop:
                    break
                job: _Load | _Item
                if self._s.loads:  # loads first: items wait for the model they need
                    _, job = self._s.loads.popitem(last=False)
                    self._s.running_load = job
                else:
                    stream, items = next(iter(self._s.pending.items()))
                    job = items.popleft()
                    del self._s.pending[stream]
                    if items:  # keep_all queue: the stream goes to the back of the round
                        self._s.pending[stream] = items
                    self._s.running_item = job
            try:
                if isinstance(job, _Load):
                    self._load(job)
                else:
                    self._run_item(job)
            except Exception:  # noqa: BLE001 - last line of defence: the thread must not die
                log.exception("engine worker: unhandled error")
            finally:
                with self._s.cond:
                    self._s.running_load = None
                    self._s.running_item = None
        self._tasks.clear()
        log.debug("engine thread stopping")
        thread = QThread.currentThread()
        if thread is not None:
            thread.quit()

    # ------------------------------------------------------------------ loading

    def _load(self, job: _Load) -> bool:
        """Load ``job.task``; emits modelLoading / modelLoaded or modelFailed. True on success."""
        with self._s.cond:
            device, precision, offline = self._s.device, self._s.precision, self._s.offline
        model = job.model
        try:
            model = model or engine.default_model(job.task)
        except EngineError as exc:
            self._fail(job.task, str(exc), (job.model, device, precision))
            return False
        self.modelLoading.emit(job.task, model, None, None)
        last = [0.0]

        def progress(done: int, total: int, _filename: str = "") -> None:
            now = time.monotonic()
            if now - last[0] >= 1.0 / PROGRESS_RATE_HZ or (total and done >= total):
                last[0] = now
                self.modelLoading.emit(job.task, model, int(done), int(total) if total else None)

        try:
            old = self._tasks.pop(job.task, None)
            del old  # free the previous model's memory before loading the next
            with self._s.cond:
                self._s.loaded.pop(job.task, None)
            task = engine.load_task(job.task, model, device=device, precision=precision,
                                    progress=progress, cancel=job.token, offline=offline)
        except Cancelled:
            log.info("loading %s (%s) cancelled", job.task, model)
            self.modelFailed.emit(job.task, "")  # empty message: cancelled, nothing to report
            return False
        except EngineError as exc:
            self._fail(job.task, str(exc), (job.model, device, precision))
            return False
        except Exception as exc:  # noqa: BLE001
            log.exception("loading %s (%s) failed", job.task, model)
            self._fail(job.task, f"Unexpected error in {job.task}: {type(exc).__name__}: {exc}",
                       (job.model, device, precision))
            return False
        self._tasks[job.task] = task
        with self._s.cond:
            self._s.loaded[job.task] = model
            self._s.failed.pop(job.task, None)
            self._s.failed_message.pop(job.task, None)
        try:
            description = task.describe()
        except Exception:  # noqa: BLE001
            description = f"{job.task} · {model}"
        log.info("loaded %s", description)
        self.modelLoaded.emit(job.task, description)
        return True

    def _fail(self, task: str, message: str, key: tuple) -> None:
        with self._s.cond:
            self._s.failed[task] = key
            self._s.failed_message[task] = message
        log.warning("model for %s failed to load: %s", task, message)
        self.modelFailed.emit(task, message)

    # ------------------------------------------------------------------ items

    def _skipped(self, item: _Item) -> None:
        """``item`` cannot run because its model is not loaded: tell whoever waits for it, unless
        the user cancelled the stream (the caller knows) or the engine is shutting down."""
        with self._s.cond:
            if item.user_cancelled or self._s.stop:
                return
            message = self._s.failed_message.get(item.task, "")
        if not message:
            message = load_cancelled_message(item.task)
        self.errorOccurred.emit(item.stream, message)

    def _run_item(self, item: _Item) -> None:
        if item.token.cancelled:
            return
        task = self._tasks.get(item.task)
        if task is None:
            with self._s.cond:
                model = self._s.choice.get(item.task)
                key = (model, self._s.device, self._s.precision)
                failed = self._s.failed.get(item.task) == key
            if failed:  # already reported; retry only after load() or configure()
                self._skipped(item)
                return
            if not self._load(_Load(item.task, model, token=item.token)):
                self._skipped(item)
                return
            task = self._tasks[item.task]
        last = [0.0]

        def progress(fraction: float, partial: Any = None) -> None:
            now = time.monotonic()
            if now - last[0] >= 1.0 / PROGRESS_RATE_HZ or fraction >= 1.0:
                last[0] = now
                self.progressChanged.emit(item.stream, float(fraction), partial)

        try:
            result = task(item.inputs, item.options, cancel=item.token, progress=progress)
        except Cancelled:
            return
        except EngineError as exc:
            self.errorOccurred.emit(item.stream, str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            log.exception("task %s failed on item %s of stream %s", item.task, item.item_id, item.stream)
            self.errorOccurred.emit(item.stream, f"Unexpected error in {item.task}: {type(exc).__name__}: {exc}")
            return
        if item.token.cancelled:
            return
        self.resultReady.emit(Outcome(item.stream, item.task, item.item_id, result, item.meta,
                                      item.submitted_at, time.monotonic()))


class EngineClient(QObject):
    """The UI thread's handle on the engine thread. Create on the UI thread; call shutdown()."""

    resultReady = Signal(object)  # Outcome
    errorOccurred = Signal(str, str)  # (stream or task, user-facing message)
    progressChanged = Signal(str, float, object)  # (stream, fraction 0..1, partial result or None)
    modelLoading = Signal(str, str, object, object)  # (task, model_ref, done_bytes|None, total_bytes|None)
    modelLoaded = Signal(str, str)  # (task, description)
    modelFailed = Signal(str, str)  # (task, message); "" when the load was cancelled
    droppedChanged = Signal(str, int)  # (stream, total dropped so far)

    _ids = itertools.count(1)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._s = _Shared()
        self._dropped: dict[str, int] = {}
        self._closed = False
        self._thread = QThread()
        self._thread.setObjectName(f"taskscope-engine-{next(self._ids)}")
        self._worker = _Worker(self._s)
        self._worker.moveToThread(self._thread)
        for name in ("resultReady", "errorOccurred", "progressChanged", "modelLoading", "modelLoaded",
                     "modelFailed"):
            getattr(self._worker, name).connect(getattr(self, name))  # queued: worker emits in its thread
        self._thread.started.connect(self._worker.run)
        self._thread.start()
        app = QCoreApplication.instance()
        if app is not None:  # safety net: never leave the thread running when the app quits
            app.aboutToQuit.connect(self.shutdown)

    # ------------------------------------------------------------------ models

    def configure(self, device: str, precision: str, offline: bool | None = None) -> None:
        """Device ("auto", "cpu", "cuda:0", ...) and precision ("exact"/"fast") for later loads.
        Tasks already loaded are reloaded with the new settings. ``offline`` None: HF_HUB_OFFLINE."""
        with self._s.cond:
            changed = (device, precision) != (self._s.device, self._s.precision)
            self._s.device, self._s.precision = device or "auto", precision or "exact"
            if offline is not None:
                self._s.offline = offline
            self._s.failed.clear()
            self._s.failed_message.clear()
            self._s.failed_message.clear()
            if changed:
                for task, model in list(self._s.loaded.items()):
                    self._queue_load(task, self._s.choice.get(task, model))
                if self._s.running_load is not None:  # a load with the old settings: redo it
                    running = self._s.running_load
                    running.token.cancel()
                    self._queue_load(running.task, running.model)
            self._s.cond.notify_all()

    def set_offline(self, offline: bool | None) -> None:
        """True: never download (cached or local models only). None: follow HF_HUB_OFFLINE."""
        with self._s.cond:
            self._s.offline = offline
            self._s.failed.clear()
            self._s.failed_message.clear()

    def load(self, task: str, model: str | None) -> None:
        """Load ``model`` (repo id, folder, or None for the catalog default) for ``task``, async."""
        with self._s.cond:
            self._s.choice[task] = model
            self._s.failed.pop(task, None)
            self._s.failed_message.pop(task, None)
            running = self._s.running_load
            if running is not None and running.task == task and running.model != model:
                running.token.cancel()
            self._queue_load(task, model)
            self._s.cond.notify_all()

    def _queue_load(self, task: str, model: str | None) -> None:  # caller holds the lock
        self._s.loads.pop(task, None)
        self._s.loads[task] = _Load(task, model)

    def loaded_model(self, task: str) -> str | None:
        with self._s.cond:
            return self._s.loaded.get(task)

    def cancel_loading(self) -> None:
        """Cancel the download/load in progress and the loads waiting behind it. The task is not
        loaded again on its own (by a later submit) until load() or configure() is called."""
        with self._s.cond:
            self._s.loads.clear()
            key = lambda t: (self._s.choice.get(t), self._s.device, self._s.precision)  # noqa: E731
            if self._s.running_load is not None:
                self._s.running_load.token.cancel()
                self._s.failed[self._s.running_load.task] = key(self._s.running_load.task)
                self._s.failed_message.pop(self._s.running_load.task, None)
            item = self._s.running_item
            if item is not None and item.task not in self._s.loaded:  # a lazy load for this item
                item.token.cancel()
                self._s.failed[item.task] = key(item.task)
                self._s.failed_message.pop(item.task, None)

    # ------------------------------------------------------------------ items

    def submit(self, stream: str, task: str, inputs: Any, options: Any = None, item_id: int = 0,
               meta: Any = None, keep_all: bool = False) -> None:
        """Queue ``inputs`` for ``task`` on ``stream``. Latest wins unless ``keep_all``."""
        if self._closed:
            return
        item = _Item(stream, task, inputs, options, int(item_id), meta, time.monotonic())
        dropped = 0
        with self._s.cond:
            queue = self._s.pending.get(stream)
            if queue is None:
                queue = self._s.pending[stream] = deque()
            if not keep_all:
                dropped = len(queue)
                queue.clear()
            queue.append(item)
            self._s.cond.notify_all()
        if dropped:
            self._dropped[stream] = self._dropped.get(stream, 0) + dropped
            self.droppedChanged.emit(stream, self._dropped[stream])

    def dropped(self, stream: str) -> int:
        return self._dropped.get(stream, 0)

    def reset_dropped(self, stream: str) -> None:
        self._dropped[stream] = 0
        self.droppedChanged.emit(stream, 0)

    def cancel(self, stream: str) -> None:
        """Cancel the running item of ``stream`` and drop what is pending for it."""
        with self._s.cond:
            self._s.pending.pop(stream, None)
            item = self._s.running_item
            if item is not None and item.stream == stream:
                item.user_cancelled = True
                item.token.cancel()

    def is_busy(self) -> bool:
        with self._s.cond:
            return bool(self._s.running_item or self._s.running_load or self._s.pending or self._s.loads)

    # ------------------------------------------------------------------ lifetime

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Ask the worker to stop (cancelling what runs), quit the thread and wait for it.
        Returns True when the thread has finished. Never terminates the thread."""
        self._closed = True
        with self._s.cond:
            self._s.stop = True
            self._s.pending.clear()
            self._s.loads.clear()
            for job in (self._s.running_item, self._s.running_load):
                if job is not None:
                    job.token.cancel()
            self._s.cond.notify_all()
        if not self._thread.isRunning():
            return True
        self._thread.quit()
        ok = bool(self._thread.wait(max(0, int(timeout_ms))))
        if not ok:
            log.warning("engine thread did not stop within %d ms (a model call is still running)", timeout_ms)
        return ok
