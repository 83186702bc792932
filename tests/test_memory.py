"""engine.memory: freed memory given back to the system, at most every TRIM_INTERVAL_S."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from engine import memory


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux") or memory._malloc_trim() is None, reason="glibc only")
def test_trim_returns_freed_heap_memory():
    """Blocks below the mmap threshold stay in malloc's heap when freed; a trim returns them."""
    keep = []
    blocks = [np.ones(8 * 1024, np.float64) for _ in range(4000)]  # 64 kB each: from the heap, ~256 MB
    for i, b in enumerate(blocks):  # keep every 50th alive so that the heap cannot shrink from its top
        if i % 50 == 49:
            keep.append(b)
    del b
    before = _rss_mb()
    blocks.clear()
    kept = _rss_mb()
    assert memory.trim()
    after = _rss_mb()
    assert kept - after > 100, (before, kept, after)  # most of the ~250 MB freed goes back
    assert len(keep) == 80


def test_trim_if_due_is_rate_limited(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "trim", lambda: calls.append(1) or True)
    monkeypatch.setattr(memory, "_last", [float("-inf")])
    assert memory.trim_if_due(2.0, now=100.0)
    assert not memory.trim_if_due(2.0, now=101.0)
    assert not memory.trim_if_due(2.0, now=101.99)
    assert memory.trim_if_due(2.0, now=102.0)
    assert len(calls) == 2


def test_importing_the_engine_bounds_onednn_primitive_cache_unless_the_user_set_it():
    import os
    import subprocess
    import sys
    code = "import os, engine; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(memory.ONEDNN_CACHE_CAPACITY)
    out = subprocess.run([sys.executable, "-c", code], env={**env, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1000"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1000"


@pytest.mark.skipif(memory.heap_mb() is None, reason="glibc >= 2.33 only")
def test_heap_mb_counts_what_malloc_holds():
    import numpy as np
    before, _ = memory.heap_mb()
    block = np.ones(64 * 2**20 // 8)  # 64 MB from malloc (mmapped: numpy allocates through it)
    during, _ = memory.heap_mb()
    del block
    after, _ = memory.heap_mb()
    assert during - before > 60
    assert during - after > 60
