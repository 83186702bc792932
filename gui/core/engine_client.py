"""The engine thread: the QThread that runs every model, off the UI thread, for many requests.

The UI thread talks to :class:`EngineClient` only. ``submit`` never blocks and returns a
:class:`Request`, a handle on the UI thread whose own signals (``result``, ``progress``,
``error``, ``finished``) belong to that request alone; nothing is broadcast to every tab.

- Latest wins per stream ("vision", "speech-partial", ...): a newer submit on a stream replaces
  its pending item, which finishes with ``dropped`` set (no error) and is counted
  (``droppedChanged``), unless ``keep_all=True`` asks for a queue.
- Streams take turns (round robin). A ``long=True`` request (a file transcription) advances in
  steps (``Task.steps``, one ``next()`` at a time); between two of its steps every stream with a
  pending item runs one, and live streams that keep having work may go on for up to LIVE_SHARE
  times the step's duration, so a long job never stalls live video or speech (and still advances).
- Models load on a second thread, the loader, into an LRU cache of loaded tasks, one entry per
  (task, model, device, precision), limited in bytes (``set_memory_limit``; the least recently
  used is evicted, never the one just used). While a new model loads, items of its task still
  run on the model it replaces; the switch happens when the new one is ready. A load belongs to
  the loader: cancelling a stream never cancels it; ``cancel_loading`` or a newer choice does.
  A model that failed to load is not retried by later items until ``load``/``configure``.
- A GPU out-of-memory or driver error (told by the exception's type name and message: no torch
  here) moves that task to the CPU: the loader loads the same model there, exact precision, and
  the item runs again on it; ``deviceFallback(task, notice)`` says so once. Changing the device
  or precision (``configure``) tries the GPU again.

Never imports torch: the engine's public API does that in the worker threads.
"""
from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from engine.errors import Cancelled, EngineError
from engine.memory import trim_if_due

from gui.core.engine_state import (DEFAULT_MEMORY_LIMIT, LIVE_SHARE, PROGRESS_RATE_HZ, UNKNOWN_FRACTION, _Item,
                                   _LongJob, _Shared, _unexpected, fallback_notice, gpu_failure, placed_on_gpu)
from gui.core.model_loader import _Loader
from gui.core.qt_fixes import guard_emit_refcount
from gui.core.requests import Outcome, Request, is_load_cancelled_message, load_cancelled_message

# what the tabs import from here
__all__ = ["DEFAULT_MEMORY_LIMIT", "UNKNOWN_FRACTION", "EngineClient", "Outcome", "Request", "guard_emit_refcount",
           "is_load_cancelled_message", "load_cancelled_message"]

log = logging.getLogger(__name__)


def _one_step(task: Any, item: _Item) -> Iterator[tuple[float, Any]]:
    yield 1.0, task(item.inputs, item.options, cancel=item.token)


# ---------------------------------------------------------------------------------- the worker

class _Worker(QObject):
    """Lives in the engine thread; ``run`` is its loop until asked to stop. Reports go to the
    client as ``report(request_id, kind, payload)``: kind "progress" ((fraction, partial)),
    "result" (Outcome), "error" (message) or "cancelled" (None); all but "progress" end the request."""

    report = Signal(int, str, object)
    deviceFallback = Signal(str, str)  # (task, notice): it failed on the GPU and reruns on the CPU

    def __init__(self, shared: _Shared) -> None:
        super().__init__()
        self._s = shared
        self._round: deque[str] = deque()  # streams still to get a turn before the next long step
        self._refill = False  # a long step ran: every stream with a pending item gets a turn now
        self._live_until = 0.0  # time.monotonic() until which live rounds go before the next long step

    @Slot()
    def run(self) -> None:
        log.debug("engine thread started")
        s = self._s
        while True:
            with s.cond:
                job = None
                while not s.stop:
                    job = self._pick()
                    if job is not None:
                        break
                    s.cond.wait()
                if s.stop:
                    break
                s.running_item = job[1] if job[0] == "item" else job[1].item if job[0] == "step" else None
            try:
                if job[0] == "item":
                    self._run_item(job[1], job[2])
                elif job[0] == "step":
                    self._step(job[1])
                else:
                    self._skip(job[1], job[2])
            except Exception:  # noqa: BLE001 - last line of defence: the thread must not die
                log.exception("engine worker: unhandled error")
            finally:
                with s.cond:
                    s.running_item = None
                trim_if_due()  # freed activations back to the system: memory stays flat live
        with s.cond:
            jobs = list(s.long)
            s.long.clear()
        for j in jobs:
            self._close(j)
        log.debug("engine thread stopping")
        thread = QThread.currentThread()
        if thread is not None:
            thread.quit()

    # ------------------------------------------------------------------ scheduling (lock held)

    def _pick(self):
        """The next job: ("item", item, task), ("step", long_job) or ("skip", item, message); None: idle."""
        s = self._s
        if self._refill:
            self._refill = False
            self._round = deque(self._streams())
        for attempt in range(2):
            job = self._from_round()
            if job is not None:
                return job
            if s.long and (attempt == 1 or time.monotonic() >= self._live_until):
                # one step of the next long job, then a turn for every stream with a pending item
                long_job = s.long[0]
                s.long.rotate(-1)
                self._refill = True
                return "step", long_job
            if attempt == 0:  # a new round: every stream with a pending item
                self._round = deque(self._streams())
        return None

    def _streams(self) -> list[str]:
        busy = {j.item.stream for j in self._s.long}
        return [stream for stream in self._s.pending if stream not in busy]

    def _from_round(self):
        while self._round:
            job = self._take(self._round.popleft())
            if job is not None:
                return job
        return None

    def _take(self, stream: str):
        s = self._s
        items = s.pending.get(stream)
        if not items or any(j.item.stream == stream for j in s.long):
            return None
        item = items[0]
        state, value = self._model_for(item.task)
        if state == "wait":
            return None
        items.popleft()
        if items:
            s.pending.move_to_end(stream)
        else:
            del s.pending[stream]
        if state == "failed":
            return "skip", item, value
        task = value.task
        if item.long:  # started now; it advances one step per round from here on
            steps = getattr(task, "steps", None)
            it = steps(item.inputs, item.options, cancel=item.token) if steps is not None else _one_step(task, item)
            s.long.append(_LongJob(item, it, task))
            return None
        return "item", item, task

    def _model_for(self, task: str):
        """("ready", entry) | ("wait", None) | ("failed", message); queues a lazy load if needed."""
        s = self._s
        key = s.active.get(task)
        entry = s.cache.get(key) if key is not None else None
        if entry is not None:
            s.cache.move_to_end(key)  # most recently used
            return "ready", entry
        if s.failed.get(task) == s.wanted(task):  # already reported; retried only after load()/configure()
            return "failed", s.failed_message.get(task) or load_cancelled_message(task)
        if not s.loading(task):
            s.queue_load(task, s.choice.get(task))
            s.cond.notify_all()
        return "wait", None

    # ------------------------------------------------------------------ running (lock not held)

    def _skip(self, item: _Item, message: str) -> None:
        with self._s.cond:
            quiet = self._s.stop or item.token.cancelled
        self.report.emit(item.rid, "cancelled" if quiet else "error", None if quiet else message)

    def _run_item(self, item: _Item, task: Any) -> None:
        if item.token.cancelled:
            self.report.emit(item.rid, "cancelled", None)
            return
        last = [0.0]

        def progress(fraction: float, partial: Any = None) -> None:
            now = time.monotonic()
            if now - last[0] >= 1.0 / PROGRESS_RATE_HZ or fraction >= 1.0:
                last[0] = now
                self.report.emit(item.rid, "progress", (float(fraction), partial))

        try:
            result = task(item.inputs, item.options, cancel=item.token, progress=progress)
        except Cancelled:
            self.report.emit(item.rid, "cancelled", None)
            return
        except EngineError as exc:
            self.report.emit(item.rid, "error", str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            if self._fall_back(item, task, exc):
                return
            log.exception("task %s failed on item %s of stream %s (request %d)", item.task, item.item_id,
                          item.stream, item.rid)
            self.report.emit(item.rid, "error", _unexpected(item.task, exc))
            return
        self._done(item, result)

    def _fall_back(self, item: _Item, task: Any, exc: Exception) -> bool:
        """A GPU out-of-memory or driver error: the task's model is loaded again on the CPU (same
        model, exact precision) by the loader, and ``item`` runs again on it, first of its stream;
        the GPU model leaves the cache now (its memory is what ran out). The notice goes out once
        per fallback. False: not a GPU failure (or the item already had its rerun)."""
        s = self._s
        if item.gpu_retried or not placed_on_gpu(task) or not gpu_failure(exc):
            return False
        notice = fallback_notice(item.task, exc)
        log.warning("%s failed on the GPU (%s: %s): running it on the CPU", item.task, type(exc).__name__, exc)
        freed = None
        with s.cond:
            if s.stop or item.token.cancelled:
                quiet = True
            else:
                quiet = False
                item.gpu_retried = True
                first = item.task not in s.fallback
                s.fallback.setdefault(item.task, notice)
                key = s.active.get(item.task)
                if key is not None and key[2:] != s.settings_for(item.task):  # its items wait for the CPU model
                    del s.active[item.task]
                    freed = s.cache.pop(key, None)
                running = s.running_load
                if first and running is not None and running.task == item.task and not running.token.cancelled:
                    running.token.cancel()  # a load for the GPU settings: the CPU load replaces it
                if first or not s.loading(item.task):
                    s.queue_load(item.task, s.choice.get(item.task))
                queue = s.pending.get(item.stream)
                if queue is None:
                    queue = s.pending[item.stream] = deque()
                queue.appendleft(item)  # it runs again before anything submitted after it on its stream
                s.cond.notify_all()
        del freed  # the GPU model's memory goes here, outside the lock
        if quiet:
            self.report.emit(item.rid, "cancelled", None)
        elif first:
            self.deviceFallback.emit(item.task, notice)
        return True

    def _done(self, item: _Item, result: Any) -> None:
        if item.token.cancelled:
            self.report.emit(item.rid, "cancelled", None)
        else:
            self.report.emit(item.rid, "result", Outcome(item.stream, item.task, item.item_id, result, item.meta,
                                                         item.submitted_at, time.monotonic(), item.rid))

    def _step(self, job: _LongJob) -> None:
        item = job.item
        if item.token.cancelled:
            self._end(job)
            self.report.emit(item.rid, "cancelled", None)
            return
        t0 = time.monotonic()
        try:
            fraction, value = next(job.steps)
        except StopIteration:
            self._end(job)
            if job.has_last:
                self._done(item, job.last)
            else:
                self.report.emit(item.rid, "error", f"{item.task} gave no result.")
            return
        except Cancelled:
            self._end(job)
            self.report.emit(item.rid, "cancelled", None)
            return
        except EngineError as exc:
            self._end(job)
            self.report.emit(item.rid, "error", str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            self._end(job)
            if self._fall_back(item, job.task, exc):  # started again from its beginning on the CPU
                return
            log.exception("long job %s failed on item %s of stream %s (request %d)", item.task, item.item_id,
                          item.stream, item.rid)
            self.report.emit(item.rid, "error", _unexpected(item.task, exc))
            return
        if fraction is not None and fraction >= 1.0:
            self._end(job)
            self._done(item, value)
            return
        job.last, job.has_last = value, True
        now = time.monotonic()
        self._live_until = now + LIVE_SHARE * (now - t0)
        if now - job.last_progress >= 1.0 / PROGRESS_RATE_HZ:
            job.last_progress = now
            f = UNKNOWN_FRACTION if fraction is None else float(fraction)
            self.report.emit(item.rid, "progress", (f, value))

    def _end(self, job: _LongJob) -> None:
        with self._s.cond:
            try:
                self._s.long.remove(job)
            except ValueError:
                pass
        self._close(job)

    @staticmethod
    def _close(job: _LongJob) -> None:
        close = getattr(job.steps, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001
                log.exception("closing a long job")


# ---------------------------------------------------------------------------------- the loader


class EngineClient(QObject):
    """The UI thread's handle on the engine. Create on the UI thread; call shutdown()."""

    modelLoading = Signal(str, str, object, object)  # (task, model_ref, done_bytes|None, total_bytes|None)
    modelLoaded = Signal(str, str)  # (task, description)
    modelFailed = Signal(str, str)  # (task, message); "" when the load was cancelled
    droppedChanged = Signal(str, int)  # (stream, total dropped so far)
    deviceFallback = Signal(str, str)  # (task, notice): a GPU failure; the task runs on the CPU from now on

    _post = Signal(int, str)  # a report made on the UI thread (dropped/cancelled), delivered later

    _ids = itertools.count(1)

    def __init__(self, parent: QObject | None = None, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        super().__init__(parent)
        guard_emit_refcount()
        self._s = _Shared(memory_limit)
        self._dropped: dict[str, int] = {}
        self._requests: dict[int, Request] = {}  # not finished yet; the workers know only the ids
        self._rids = itertools.count(1)
        self._closed = False
        n = next(self._ids)
        self._thread, self._loader_thread = QThread(), QThread()
        self._thread.setObjectName(f"taskscope-engine-{n}")
        self._loader_thread.setObjectName(f"taskscope-loader-{n}")
        self._worker = _Worker(self._s)
        self._worker.moveToThread(self._thread)
        self._loader = _Loader(self._s)
        self._loader.moveToThread(self._loader_thread)
        self._worker.report.connect(self._on_report)  # queued: the worker emits in its thread
        self._post.connect(self._on_posted, Qt.ConnectionType.QueuedConnection)
        for name in ("modelLoading", "modelLoaded", "modelFailed", "deviceFallback"):
            getattr(self._loader, name).connect(getattr(self, name))
        self._worker.deviceFallback.connect(self.deviceFallback)
        self._thread.started.connect(self._worker.run)
        self._loader_thread.started.connect(self._loader.run)
        self._thread.start()
        self._loader_thread.start()
        app = QCoreApplication.instance()
        if app is not None:  # safety net: never leave the threads running when the app quits
            app.aboutToQuit.connect(self.shutdown)

    # ------------------------------------------------------------------ models

    def configure(self, device: str, precision: str, offline: bool | None = None) -> None:
        """Device ("auto", "cpu", "cuda:0", ...) and precision ("exact"/"fast") for later loads.
        Loaded tasks are loaded again with the new settings (the old ones serve until then).
        ``offline`` None: HF_HUB_OFFLINE."""
        with self._s.cond:
            s = self._s
            changed = (device or "auto", precision or "exact") != (s.device, s.precision)
            s.device, s.precision = device or "auto", precision or "exact"
            if offline is not None:
                s.offline = offline
            s.failed.clear()
            s.failed_message.clear()
            if changed:
                for task in list(s.active):
                    s.queue_load(task, s.choice.get(task))
                if s.running_load is not None:  # a load with the old settings: redo it
                    running = s.running_load
                    running.token.cancel()
                    if running.task not in s.loads:
                        s.queue_load(running.task, running.model)
            in_use = set(s.active.values())
            stale = [k for k in s.cache if k[2:] != (s.device, s.precision) and k not in in_use]
            dropped = [s.cache.pop(k) for k in stale]  # built with other settings and serving no task
            s.cond.notify_all()
        del dropped  # their memory goes here, outside the lock

    def set_offline(self, offline: bool | None) -> None:
        """True: never download (cached or local models only). None: follow HF_HUB_OFFLINE."""
        with self._s.cond:
            self._s.offline = offline
            self._s.failed.clear()
            self._s.failed_message.clear()

    def load(self, task: str, model: str | None) -> None:
        """Load ``model`` (repo id, folder, or None for the catalog default) for ``task``, async.
        The task's current model serves its items until the new one is ready."""
        with self._s.cond:
            s = self._s
            s.choice[task] = model
            s.failed.pop(task, None)
            s.failed_message.pop(task, None)
            running = s.running_load
            if running is not None and running.task == task and not running.token.cancelled:
                if running.model == model:  # already on its way
                    s.loads.pop(task, None)
                    return
                running.token.cancel()
            s.queue_load(task, model)
            s.cond.notify_all()

    def loaded_model(self, task: str) -> str | None:
        """The model ``task``'s items run on now (None: none loaded)."""
        with self._s.cond:
            key = self._s.active.get(task)
            return key[1] if key is not None and key in self._s.cache else None

    def cancel_loading(self) -> None:
        """Cancel the download/load in progress and the loads waiting behind it. Those tasks are
        not loaded again on their own (by a later submit) until load() or configure() is called;
        a task that still has its previous model keeps running on it."""
        with self._s.cond:
            s = self._s
            tasks = list(s.loads)
            s.loads.clear()
            if s.running_load is not None and not s.running_load.token.cancelled:
                s.running_load.token.cancel()
                tasks.append(s.running_load.task)
            for task in tasks:
                s.failed[task] = s.wanted(task)
                s.failed_message.pop(task, None)
            s.cond.notify_all()  # items waiting for those models are told now

    def set_memory_limit(self, nbytes: int) -> None:
        """Limit of the loaded-model cache in bytes; least recently used models are unloaded
        above it (never the one used last)."""
        with self._s.cond:
            self._s.limit = max(0, int(nbytes))
            keep = next(reversed(self._s.cache), None)
            evicted = self._s.evict(keep)
        del evicted

    def memory_limit(self) -> int:
        with self._s.cond:
            return self._s.limit

    def memory_used(self) -> int:
        """Bytes of the models in the cache."""
        with self._s.cond:
            return sum(e.nbytes for e in self._s.cache.values())

    def cached_models(self) -> list[tuple[str, str]]:
        """(task, model) of every loaded model, least recently used first."""
        with self._s.cond:
            return [(k[0], k[1]) for k in self._s.cache]

    # ------------------------------------------------------------------ items

    def submit(self, stream: str, task: str, inputs: Any, options: Any = None, item_id: int = 0,
               meta: Any = None, keep_all: bool = False, long: bool = False) -> Request:
        """Queue ``inputs`` for ``task`` on ``stream`` and return its handle. Latest wins unless
        ``keep_all``. ``long``: a job that runs in steps, with live items between them."""
        rid = next(self._rids)
        now = time.monotonic()
        req = Request(rid, stream, task, int(item_id), meta, now, keep_all=keep_all, long=long)
        self._requests[rid] = req
        if self._closed:
            self._post.emit(rid, "cancelled")
            return req
        item = _Item(rid, stream, task, inputs, options, int(item_id), meta, now, long=long)
        with self._s.cond:
            queue = self._s.pending.get(stream)
            if queue is None:
                queue = self._s.pending[stream] = deque()
            dropped: list[_Item] = []
            if not keep_all:
                dropped = list(queue)
                queue.clear()
            queue.append(item)
            self._s.cond.notify_all()
        for old in dropped:
            self._post.emit(old.rid, "dropped")
        if dropped:
            self._dropped[stream] = self._dropped.get(stream, 0) + len(dropped)
            self.droppedChanged.emit(stream, self._dropped[stream])
        return req

    @Slot(int, str)
    def _on_posted(self, rid: int, kind: str) -> None:
        self._on_report(rid, kind, None)

    @Slot(int, str, object)
    def _on_report(self, rid: int, kind: str, payload: object) -> None:
        req = self._requests.get(rid)
        if req is None:  # shut down meanwhile
            return
        if kind == "progress":
            req.progress.emit(*payload)
            return
        del self._requests[rid]
        if kind == "error":
            log.info("%s: %s", req.describe(), payload)
        req._finish(kind, payload)

    def dropped(self, stream: str) -> int:
        return self._dropped.get(stream, 0)

    def reset_dropped(self, stream: str) -> None:
        self._dropped[stream] = 0
        self.droppedChanged.emit(stream, 0)

    def cancel(self, stream: str) -> None:
        """Cancel the running item (or long job) of ``stream`` and drop what is pending for it;
        their requests finish with ``cancelled`` set. A model load they wait for goes on."""
        with self._s.cond:
            items = list(self._s.pending.pop(stream, ()))
            running = self._s.running_item
            if running is not None and running.stream == stream:
                running.token.cancel()
            for job in self._s.long:
                if job.item.stream == stream:
                    job.item.token.cancel()
            for item in items:
                item.token.cancel()
            self._s.cond.notify_all()
        for item in items:
            self._post.emit(item.rid, "cancelled")

    def is_busy(self) -> bool:
        with self._s.cond:
            s = self._s
            return bool(s.running_item or s.running_load or s.pending or s.loads or s.long)

    def open_requests(self) -> int:
        """Requests submitted and not finished yet."""
        return len(self._requests)

    # ------------------------------------------------------------------ lifetime

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Ask the worker and the loader to stop (cancelling what runs), quit their threads and
        wait for them, ``timeout_ms`` in all. True when both have finished. Never terminates."""
        self._closed = True
        with self._s.cond:
            s = self._s
            s.stop = True
            s.pending.clear()
            s.loads.clear()
            for job in (s.running_item, s.running_load):
                if job is not None:
                    job.token.cancel()
            for long_job in s.long:
                long_job.item.token.cancel()
            s.cond.notify_all()
        self._requests.clear()
        deadline = time.monotonic() + max(0, int(timeout_ms)) / 1000.0
        ok = True
        for thread in (self._thread, self._loader_thread):
            if thread.isRunning():
                thread.quit()
                left = max(0, int((deadline - time.monotonic()) * 1000))
                ok = bool(thread.wait(left)) and ok
        if ok:
            with self._s.cond:  # the models go with the threads that ran them
                self._s.cache.clear()
                self._s.active.clear()
        else:
            # Never let a running QThread be destroyed (Qt aborts the process: "QThread: Destroyed
            # while thread is still running") and never terminate it: the threads, their workers and
            # the state they use stay referenced for the rest of the process; each thread ends by
            # itself when its call returns (stop is set). An app that exits meanwhile ends the process
            # without destructors (gui.app.run_app).
            if not any(kept[0] is self._thread for kept in _UNFINISHED):
                _UNFINISHED.append((self._thread, self._loader_thread, self._worker, self._loader, self._s))
            log.warning("engine threads did not stop within %d ms (a model call is still running)", timeout_ms)
        return ok


#: (thread, loader thread, worker, loader, shared state) of every client whose threads outlived
#: shutdown's wait: kept alive until the process ends (see EngineClient.shutdown)
_UNFINISHED: list[tuple] = []
