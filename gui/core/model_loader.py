"""The loader thread: loads one model at a time into the engine client's cache, with progress."""
from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, QThread, Signal, Slot

import engine
from engine.errors import Cancelled, EngineError

from gui.core.engine_state import (PROGRESS_RATE_HZ, Key, _Entry, _Load, _memory_bytes, _Shared, _unexpected,
                                   fallback_notice, gpu_failure)

log = logging.getLogger(__name__)


class _Loader(QObject):
    """Lives in the loader thread: loads one model at a time into the cache."""

    modelLoading = Signal(str, str, object, object)
    modelLoaded = Signal(str, str)
    modelFailed = Signal(str, str)
    #: (task, notice): it failed on the GPU and now loads on the CPU, or it runs in another precision
    #: than the one asked for (Task.precision_notice)
    deviceFallback = Signal(str, str)

    def __init__(self, shared: _Shared) -> None:
        super().__init__()
        self._s = shared

    @Slot()
    def run(self) -> None:
        s = self._s
        while True:
            with s.cond:
                while not s.stop and not s.loads:
                    s.cond.wait()
                if s.stop:
                    break
                _, job = s.loads.popitem(last=False)
                s.running_load = job
            try:
                self._load(job)
            except Exception:  # noqa: BLE001 - the loader must not die either
                log.exception("engine loader: unhandled error")
            finally:
                with s.cond:
                    s.running_load = None
                    s.cond.notify_all()  # items waiting for this model run (or fail) now
        thread = QThread.currentThread()
        if thread is not None:
            thread.quit()

    def _load(self, job: _Load) -> None:
        s = self._s
        with s.cond:  # the CPU, exact, for a task that failed on the GPU (s.fallback)
            (device, precision), offline = s.settings_for(job.task), s.offline
        fail_key = (job.model, device, precision)
        try:
            model = job.model or engine.default_model(job.task)
        except EngineError as exc:
            self._fail(job.task, str(exc), fail_key)
            return
        key: Key = (job.task, model, device, precision)
        with s.cond:
            entry = s.cache.get(key)
            if entry is not None and not job.token.cancelled:  # loaded before: switch to it at once
                self._install(key, entry)
                return
        self.modelLoading.emit(job.task, model, None, None)
        last = [0.0]

        def progress(done: int, total: int, _filename: str = "") -> None:
            now = time.monotonic()
            if now - last[0] >= 1.0 / PROGRESS_RATE_HZ or (total and done >= total):
                last[0] = now
                self.modelLoading.emit(job.task, model, int(done), int(total) if total else None)

        try:  # the model this one replaces keeps serving its task meanwhile
            task = engine.load_task(job.task, model, device=device, precision=precision,
                                    progress=progress, cancel=job.token, offline=offline)
        except Cancelled:
            log.info("loading %s (%s) cancelled", job.task, model)
            self.modelFailed.emit(job.task, "")  # empty message: cancelled, nothing to report
            return
        except EngineError as exc:
            self._fail(job.task, str(exc), fail_key)
            return
        except Exception as exc:  # noqa: BLE001
            if self._fall_back(job, device, exc):
                return
            log.exception("loading %s (%s) failed", job.task, model)
            self._fail(job.task, _unexpected(job.task, exc), fail_key)
            return
        notice = getattr(task, "precision_notice", None)  # 'fast' asked for, 'exact' runs: say why
        try:
            description = task.describe()
        except Exception:  # noqa: BLE001
            description = f"{job.task} · {model}"
        entry = _Entry(task, model, _memory_bytes(task), description)
        del task
        with s.cond:
            if s.stop:
                return
            evicted = self._install(key, entry)
        log.info("loaded %s (%.0f MB)", description, entry.nbytes / 2 ** 20)
        if notice:
            self.deviceFallback.emit(job.task, notice)
        del evicted  # the memory of evicted models goes here, outside the lock

    def _install(self, key: Key, entry: _Entry) -> list[_Entry]:
        """Make ``entry`` the model of its task (lock held); modelLoaded is posted before any item
        can run on it, so a tab hears of the model before its first result."""
        s = self._s
        task = key[0]
        s.cache[key] = entry
        s.cache.move_to_end(key)
        s.active[task] = key
        s.failed.pop(task, None)
        s.failed_message.pop(task, None)
        stale = [k for k in s.cache if k[0] == task and k != key and k[2:] != s.settings_for(task)]
        evicted = [s.cache.pop(k) for k in stale]  # built with settings no longer in use (or the GPU's)
        evicted += s.evict(keep=key)
        self.modelLoaded.emit(task, entry.description)
        s.cond.notify_all()
        return evicted

    def _fall_back(self, job: _Load, device: str, exc: Exception) -> bool:
        """Loading on a GPU ran out of its memory (or hit a driver error): load the same model on
        the CPU, exact, instead (queued now; the items of the task wait for it) and say so once."""
        s = self._s
        if str(device).lower() == "cpu" or not gpu_failure(exc):
            return False
        notice = fallback_notice(job.task, exc)
        with s.cond:
            if s.stop or job.task in s.fallback or job.token.cancelled:
                return False
            s.fallback[job.task] = notice
            if job.task not in s.loads:  # a newer choice queued meanwhile loads on the CPU anyway
                s.queue_load(job.task, job.model)
            s.cond.notify_all()
        log.warning("loading %s on %s failed (%s: %s): loading it on the CPU", job.task, device,
                    type(exc).__name__, exc)
        self.deviceFallback.emit(job.task, notice)
        return True

    def _fail(self, task: str, message: str, key: tuple) -> None:
        s = self._s
        with s.cond:
            s.failed[task] = key
            s.failed_message[task] = message
            s.active.pop(task, None)  # a failed switch leaves the task without a model, as before
            log.warning("model for %s failed to load: %s", task, message)
            self.modelFailed.emit(task, message)
            s.cond.notify_all()


# ---------------------------------------------------------------------------------- the client
