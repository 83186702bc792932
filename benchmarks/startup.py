"""`python main.py bench startup`: time from launch to the window's first paint.

Runs ``python main.py`` in a subprocess several times, with ``TASKSCOPE_EXIT_AFTER_FIRST_PAINT=1``
(the window quits right after its first paint and prints the seconds since its process started) and
fresh settings; Qt's offscreen platform unless a display is there (``--platform`` to choose). The
goal: the window on screen within 1 s of launch, which needs the UI thread never to import torch
(the device list comes from a worker thread).

Two figures per run: the app's own (process start -> first paint done, from /proc, 10 ms
resolution) and the launcher's (just before the subprocess starts -> the line read, which adds
the fork/exec). The first run may pay for a cold disk cache; ``--warmup`` runs are not counted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .floor import cpu_name

ROOT = Path(__file__).resolve().parents[1]
MARK = "first-paint-s="


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=7, help="timed launches (default 7)")
    p.add_argument("--warmup", type=int, default=1, help="launches before those, not counted (default 1)")
    p.add_argument("--platform", help="QT_QPA_PLATFORM for the app (default: offscreen without a display)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds one launch may take (default 120)")


def launch_once(env: dict[str, str], timeout: float) -> tuple[float, float]:
    """One launch: (seconds the app reports, seconds the launcher saw until the line)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py")], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    app_s = seen_s = float("nan")
    try:
        for line in proc.stdout:
            if line.startswith(MARK):
                seen_s = time.perf_counter() - t0
                app_s = float(line[len(MARK):].strip())
                break
        _out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        raise RuntimeError(f"the app did not exit within {timeout:.0f} s") from None
    if proc.returncode != 0 or seen_s != seen_s:
        raise RuntimeError(f"the app exited with {proc.returncode} without a first paint:\n{err[-2000:]}")
    return app_s, seen_s


def run(args) -> int:
    env = dict(os.environ)
    env["TASKSCOPE_EXIT_AFTER_FIRST_PAINT"] = "1"
    if args.platform:
        env["QT_QPA_PLATFORM"] = args.platform
    elif not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("HF_HUB_OFFLINE", "1")
    results: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="taskscope-bench-startup-") as tmp:
        env["TASKSCOPE_SETTINGS_DIR"] = str(Path(tmp) / "settings")  # a first launch's settings
        for i in range(args.warmup + args.runs):
            try:
                app_s, seen_s = launch_once(env, args.timeout)
            except RuntimeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if i >= args.warmup:
                results.append((app_s, seen_s))
    app = [a for a, _ in results]
    seen = [s for _, s in results]
    print(f"time to first paint of `python main.py` ({env.get('QT_QPA_PLATFORM') or 'default'} Qt platform, "
          f"CPU: {cpu_name()}, {os.cpu_count()} cores), {len(results)} launches after {args.warmup} warm-up:")
    print(f"  app (process start -> first paint): median {statistics.median(app):.3f} s   min {min(app):.3f}   "
          f"max {max(app):.3f}")
    print(f"  launcher (spawn -> line read):      median {statistics.median(seen):.3f} s   min {min(seen):.3f}   "
          f"max {max(seen):.3f}")
    ok = statistics.median(app) < 1.0
    print(f"  goal median < 1 s: {'met' if ok else 'NOT met'}")
    return 0


__all__ = ["add_arguments", "launch_once", "run"]
