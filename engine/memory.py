"""Giving freed memory back to the operating system, for a long-running app; bounding oneDNN's cache.

glibc's malloc keeps the memory of freed blocks for reuse instead of returning it; a model whose
input length changes on every call (live speech partials, text as it is typed) frees and allocates
activations of ever-different sizes, and the holes left between them are kept: measured, wav2vec2
on 240 different lengths grew 815 -> 1228 MB; with ``malloc_trim`` after each call, 693 -> 739 MB.
:func:`trim_if_due` does that at most every ``interval`` seconds (the app's engine thread calls it
between jobs); elsewhere than glibc it does nothing.

oneDNN (PyTorch's CPU convolutions and packed GEMMs) keeps every primitive it created, with its
buffers, in an LRU cache of 1024 by default: inputs of many shapes (speech utterances of every
length, at bucketed row counts) fill it slowly over a long session. :func:`limit_primitive_cache`
sets a smaller capacity (unless the user set one) before any primitive exists; measured on
wav2vec2 over 480 lengths with the trims: 690 -> 744 MB at 1024, 676 -> 701 MB at 256, 657 -> 682 MB
at 64, while DETR and wav2vec2 alternating ran no slower at 64 than at 1024 (822 vs 870 ms and 333
vs 349 ms per second of audio, 1 thread, AMD EPYC Zen 3). Torch-free.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
import threading
import time

#: oneDNN primitives kept (its default 1024); 256 leaves room for the distinct layers of the largest
#: models here (Mask2Former, DETR) to stay cached between frames
ONEDNN_CACHE_CAPACITY = 256

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


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.cache
def _mallinfo2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2  # glibc >= 2.33
    except (OSError, AttributeError):
        return None
    fn.argtypes = []
    fn.restype = _MallInfo2
    return fn


def heap_mb() -> tuple[float, float] | None:
    """(in use, free but kept) by malloc, in MB, over all its arenas and mmapped blocks; None where
    glibc's mallinfo2 is not there. Tells a leak (in use grows) from fragmentation (free kept grows)
    when the resident size creeps up; memory that is not malloc's (Python's own arenas are, torch's
    CPU tensors are) does not show."""
    fn = _mallinfo2()
    if fn is None:
        return None
    info = fn()
    return (info.uordblks + info.hblkhd) / 2**20, info.fordblks / 2**20


def limit_primitive_cache(capacity: int = ONEDNN_CACHE_CAPACITY) -> str:
    """Set oneDNN's primitive cache capacity for this process (read when its first primitive is
    made, so call it before any model runs); a value the user set in ONEDNN_PRIMITIVE_CACHE_CAPACITY
    wins. Returns the value in force."""
    return os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(int(capacity)))
