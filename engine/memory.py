"""Giving freed memory back to the operating system, for a long-running app.

glibc's malloc keeps the memory of freed blocks for reuse instead of returning it; a model whose
input length changes on every call (live speech partials, text as it is typed) frees and allocates
activations of ever-different sizes, and the holes left between them are kept: measured, wav2vec2
on 240 different lengths grew 815 -> 1228 MB; with ``malloc_trim`` after each call, 693 -> 739 MB.
:func:`trim_if_due` does that at most every ``interval`` seconds (the app's engine thread calls it
between jobs); elsewhere than glibc it does nothing. Torch-free.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import threading
import time

#: seconds between two trims at most (a trim costs a few ms: the pages it returns are faulted in again)
TRIM_INTERVAL_S = 2.0

_lock = threading.Lock()
_last = [float("-inf")]


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def trim() -> bool:
    """Return the allocator's free memory to the system now; False where that is not possible."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


def trim_if_due(interval: float = TRIM_INTERVAL_S, now: float | None = None) -> bool:
    """:func:`trim` if the last one was at least ``interval`` seconds ago; True if it trimmed."""
    now = time.monotonic() if now is None else now
    with _lock:
        if now - _last[0] < interval:
            return False
        _last[0] = now
    return trim()
