"""What a submit returns: a Request handle on the UI thread, and the Outcome it delivers."""
from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

from PySide6.QtCore import QObject, Signal


log = logging.getLogger(__name__)


_LOAD_CANCELLED = "The model for {task} is not loaded (loading was cancelled)."


def load_cancelled_message(task: str) -> str:
    """The ``Request.error`` message for an item skipped because its model's loading was cancelled."""
    return _LOAD_CANCELLED.format(task=task)


def is_load_cancelled_message(message: str) -> bool:
    """True for :func:`load_cancelled_message` texts: the user cancelled the load, so a window
    may leave them out of its error display (modelFailed("") already said so); a tab waiting
    for the item still learns that it will not come."""
    head, tail = _LOAD_CANCELLED.split("{task}")
    return message.startswith(head) and message.endswith(tail)


@dataclass(frozen=True)
class Outcome:
    """One finished item, as ``Request.result`` delivers it."""

    stream: str
    task: str
    item_id: int
    result: object
    meta: object
    submitted_at: float  # time.monotonic() when submit() was called
    finished_at: float  # time.monotonic() when the task returned
    request_id: int = 0

    @property
    def latency_s(self) -> float:
        return self.finished_at - self.submitted_at


class Request(QObject):
    """One submitted item, on the UI thread. Its signals concern this request only; exactly one
    ``finished`` ends it, after ``result`` or ``error`` or neither (``dropped``: replaced by a newer
    item of its stream; ``cancelled``: ``EngineClient.cancel``/shutdown). The client lets go of it
    when it finishes: keep a reference only as long as you need it, and do not connect a slot
    that refers to the request itself (connect the tab's methods; the Outcome says what it is)."""

    result = Signal(object)  # Outcome
    progress = Signal(float, object)  # (fraction 0..1, or UNKNOWN_FRACTION; partial result or None)
    error = Signal(str)  # a user-facing message
    finished = Signal()

    _alive: ClassVar[weakref.WeakSet] = weakref.WeakSet()

    def __init__(self, request_id: int, stream: str, task: str, item_id: int, meta: Any, submitted_at: float,
                 keep_all: bool = False, long: bool = False) -> None:
        super().__init__()
        self.id, self.stream, self.task, self.item_id, self.meta = request_id, stream, task, item_id, meta
        self.submitted_at, self.keep_all, self.long = submitted_at, keep_all, long
        self.done = False
        self.dropped = False
        self.cancelled = False
        self.error_message = ""
        self.outcome: Outcome | None = None
        Request._alive.add(self)

    @classmethod
    def alive(cls) -> int:
        """How many Request objects exist now (finished ones go once nobody holds them)."""
        return len(cls._alive)

    def describe(self) -> str:
        return f"request {self.id} ({self.task} on {self.stream!r}, item {self.item_id})"

    def __repr__(self) -> str:
        state = ("dropped" if self.dropped else "cancelled" if self.cancelled else "failed" if self.error_message
                 else "done" if self.done else "pending")
        return f"<Request {self.id} {self.task} stream={self.stream!r} item={self.item_id} {state}>"

    def _finish(self, kind: str, payload: Any) -> None:
        self.done = True
        if kind == "result":
            self.outcome = payload
            self.result.emit(payload)
        elif kind == "error":
            self.error_message = str(payload)
            self.error.emit(self.error_message)
        elif kind == "dropped":
            self.dropped = True
        else:
            self.cancelled = True
        self.finished.emit()
