"""Cooperative cancellation: a flag that long work checks between steps."""
from __future__ import annotations

import threading

from .errors import Cancelled


class CancelToken:
    """Set from any thread with ``cancel()``; the worker calls ``check()`` between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was asked for."""
        if self._event.is_set():
            raise Cancelled()


def check(token: CancelToken | None) -> None:
    """``token.check()`` that accepts ``None``."""
    if token is not None:
        token.check()
