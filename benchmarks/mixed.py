"""`python main.py bench mixed`: live DETR keeps running while a long file transcribes.

One EngineClient (the app's engine thread) gets a generated video-like frame sequence at the camera
rate on stream "vision" (latest wins, as the Vision tab submits) while a long audio clip (espeak-ng
speech repeated to length, else a synthetic voiced signal) is transcribed as a long job
(``submit(..., long=True)``, as the Speech tab's file transcription submits it). Reported:

- live DETR results per second alone (before and after) vs during the transcription (target:
  keeps >= half), its time per frame, and the longest wait for a new result;
- the transcription's progress events over time (it keeps progressing), and its time alone;
- UI event-loop stalls (a 5 ms QTimer probe on the UI thread, as `bench ui` measures them).

Checkpoints as `bench detection` / `bench speech-recognition` choose them: the real defaults when
cached, else random-weight ones with the real dimensions built locally with transformers.
"""
from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detr-model", metavar="ID|DIR", help="DETR checkpoint (default: facebook/detr-resnet-50 if "
                   "downloaded, else the random-weight one `bench detection` builds)")
    p.add_argument("--asr-model", metavar="ID|DIR", help="speech recognition checkpoint (default: "
                   "facebook/wav2vec2-base-960h if downloaded, else a random-weight one with its dimensions)")
    p.add_argument("--audio-seconds", type=float, default=60.0, help="length of the transcribed clip (default 60)")
    p.add_argument("--live-seconds", type=float, default=20.0, help="live DETR alone, measured (default 20)")
    p.add_argument("--fps", type=float, default=25.0, help="camera rate of the submitted frames (default 25)")
    p.add_argument("--size", type=int, default=512, choices=(384, 512, 800), help="DETR input size (default 512)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N, mps")
    p.add_argument("--precision", choices=("exact", "fast"), default="exact")


def _frames(n: int = 50):
    """``n`` 640x480 RGB frames: the bench's synthetic scene with a box moving across it."""
    import cv2

    from .detection import synthetic_frame
    base = synthetic_frame()
    h, w = base.shape[:2]
    out = []
    for i in range(n):
        frame = base.copy()
        x = int((i * 11) % (w - 120))
        cv2.rectangle(frame, (x, 300), (x + 120, 420), (30, 200, 40), -1)
        out.append(frame)
    return out


class _Stalls:
    """A 5 ms PreciseTimer on the UI thread; a stall is how late a tick arrives."""

    interval_ms = 5

    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, Qt, QTimer
        self.lateness: list[tuple[float, float]] = []  # (time.monotonic(), ms late)
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(self.interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last = 0

    def start(self) -> None:
        self._clock.start()
        self._last = self._clock.nsecsElapsed()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = self._clock.nsecsElapsed()
        self.lateness.append((time.monotonic(), max(0.0, (now - self._last) / 1e6 - self.interval_ms)))
        self._last = now

    def between(self, t0: float, t1: float):
        import numpy as np
        return np.array([ms for t, ms in self.lateness if t0 <= t < t1] or [0.0])


class _Live:
    """Submits a frame every 1/fps s on stream "vision" (latest wins) and records result times."""

    def __init__(self, client, frames, options, fps: float) -> None:
        from PySide6.QtCore import Qt, QTimer
        self.client, self.frames, self.options = client, frames, options
        self.results: list[float] = []  # time.monotonic() of each result
        self.latency: list[tuple[float, float]] = []  # (time, latency s)
        self.work: list[tuple[float, float]] = []  # (time, ms the task spent on the frame)
        self.errors: list[str] = []
        self._i = 0
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(max(1, int(round(1000.0 / fps))))
        self._timer.timeout.connect(self._submit)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self.client.cancel("vision")

    def _submit(self) -> None:
        frame = self.frames[self._i % len(self.frames)]
        req = self.client.submit("vision", "object-detection", frame, self.options, item_id=self._i)
        req.result.connect(self._on_result)
        req.error.connect(self.errors.append)
        self._i += 1

    def _on_result(self, outcome) -> None:
        now = time.monotonic()
        self.results.append(now)
        self.latency.append((now, outcome.latency_s))
        timings = getattr(outcome.result, "timings", None)
        self.work.append((now, timings.total_ms if timings is not None else float("nan")))

    def rate(self, t0: float, t1: float) -> float:
        n = sum(1 for t in self.results if t0 <= t < t1)
        return n / max(1e-9, t1 - t0)

    def latencies(self, t0: float, t1: float):
        import numpy as np
        return np.array([lat for t, lat in self.latency if t0 <= t < t1] or [float("nan")])

    def work_ms(self, t0: float, t1: float) -> float:
        import numpy as np
        return float(np.nanmedian([ms for t, ms in self.work if t0 <= t < t1] or [float("nan")]))

    def longest_gap(self, t0: float, t1: float) -> float:
        """Longest time in [t0, t1) without a new result (what a viewer sees as a frozen overlay)."""
        times = [t0] + [t for t in self.results if t0 <= t < t1] + [t1]
        return max(b - a for a, b in zip(times, times[1:]))


class _Job:
    """One long transcription: progress events and the end."""

    def __init__(self, client, samples, options) -> None:
        self.t0 = time.monotonic()
        self.events: list[tuple[float, float, int]] = []  # (s since start, fraction, transcript length)
        self.end: float | None = None
        self.error = ""
        self.words = 0
        req = self.request = client.submit("speech-file", "speech-recognition", samples, options,
                                           keep_all=True, long=True)
        req.progress.connect(self._on_progress)
        req.result.connect(self._on_result)
        req.error.connect(self._on_error)

    def _on_progress(self, fraction: float, partial) -> None:
        self.events.append((time.monotonic() - self.t0, fraction, len(getattr(partial, "text", "") or "")))

    def _on_result(self, outcome) -> None:
        self.end = time.monotonic()
        self.words = len(outcome.result.words)

    def _on_error(self, message: str) -> None:
        self.end, self.error = time.monotonic(), message

    @property
    def seconds(self) -> float:
        return (self.end or time.monotonic()) - self.t0


def _spin(app, until, timeout_s: float) -> bool:
    """Run the event loop until ``until()`` or the timeout; True if ``until()`` became true."""
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.002)  # a benchmark's wait loop (tests never sleep)
    return True


def _load(app, client, task: str, model: str) -> str:
    got: dict[str, str] = {}
    client.modelLoaded.connect(lambda t, d: got.__setitem__(t, d) if t == task else None)
    client.modelFailed.connect(lambda t, m: got.__setitem__(t, "FAILED: " + m) if t == task else None)
    client.load(task, model)
    if not _spin(app, lambda: task in got, 600):
        return "FAILED: not loaded within 10 minutes"
    return got[task]


def run(argv=None) -> int:
    """``argv``: a list of command-line words, or an argparse Namespace from `main.py bench mixed`."""
    if isinstance(argv, argparse.Namespace):
        args = argv
    else:
        p = argparse.ArgumentParser(prog="taskscope bench mixed", description=__doc__.splitlines()[0])
        add_arguments(p)
        args = p.parse_args(list(argv or []))
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    from PySide6.QtWidgets import QApplication

    from engine import DetectionOptions, TranscriptionOptions
    from gui.core.engine_client import EngineClient

    from . import detection, speech

    detr = detection.checkpoint(args.detr_model)
    asr_label, asr_folder, _random = speech._checkpoint(SimpleNamespace(model=args.asr_model), "speech-recognition")
    samples, source = speech._clip(args.audio_seconds)
    frames = _frames()

    app = QApplication.instance() or QApplication([])
    client = EngineClient()
    client.configure(args.device, args.precision, offline=True)
    try:
        for task, model in (("object-detection", detr), ("speech-recognition", str(asr_folder))):
            description = _load(app, client, task, model)
            print(f"{task}: {description}")
            if description.startswith("FAILED"):
                return 2
        # warm both models outside the measured windows
        warm = _Job(client, samples[: 16000 * 3], TranscriptionOptions())
        if not _spin(app, lambda: warm.end is not None, 300) or warm.error:
            print(f"error: the speech model did not run: {warm.error or 'timeout'}")
            return 2
        options = DetectionOptions(threshold=0.5, shortest_edge=args.size)
        live = _Live(client, frames, options, args.fps)
        stalls = _Stalls()
        stalls.start()

        # 1. the transcription alone
        alone_job = _Job(client, samples, TranscriptionOptions())
        if not _spin(app, lambda: alone_job.end is not None, 1800):
            print("error: the transcription did not finish within 30 minutes")
            return 2
        t_job_alone = alone_job.seconds

        # 2. live DETR alone (after its first result)
        live.start()
        if not _spin(app, lambda: len(live.results) >= 2, 300):
            print(f"error: no detection result within 5 minutes {live.errors[:1]}")
            return 2
        a0 = time.monotonic()
        _spin(app, lambda: False, args.live_seconds)
        a1 = time.monotonic()

        # 3. live DETR while the clip transcribes as a long job
        job = _Job(client, samples, TranscriptionOptions())
        b0 = job.t0
        _spin(app, lambda: job.end is not None, 1800)
        b1 = time.monotonic()

        # 4. live DETR alone again (the machine's speed drifts: the mean of both is the reference)
        _spin(app, lambda: False, 0.5)  # the frame in flight when the job ended
        c0 = time.monotonic()
        _spin(app, lambda: False, args.live_seconds)
        c1 = time.monotonic()
        live.stop()
        stalls.stop()
        _spin(app, lambda: not client.is_busy(), 60)
    finally:
        client.shutdown(10_000)

    before, after, during = live.rate(a0, a1), live.rate(c0, c1), live.rate(b0, b1)
    alone = (before + after) / 2
    share = during / alone if alone else float("nan")
    print(f"\nlive DETR ({detr}, input {args.size} px, {args.precision}) at {args.fps:.0f} fps, latest wins, "
          f"while {args.audio_seconds:.0f} s of {source} transcribe as a long job ({asr_label}), device "
          f"{args.device}:")
    print(f"  DETR results/s alone {alone:.2f} (before {before:.2f}, after {after:.2f}; median latency "
          f"{np.nanmedian(live.latencies(a0, a1)) * 1000:.0f} ms)   during the transcription {during:.2f} "
          f"(median latency "
          f"{np.nanmedian(live.latencies(b0, b1)) * 1000:.0f} ms, max "
          f"{np.nanmax(live.latencies(b0, b1)) * 1000:.0f} ms)")
    print(f"  DETR time per frame (median) alone {live.work_ms(a0, a1):.0f}/{live.work_ms(c0, c1):.0f} ms, during "
          f"{live.work_ms(b0, b1):.0f} ms; longest wait for a new result alone {live.longest_gap(a0, a1):.2f} s, "
          f"during {live.longest_gap(b0, b1):.2f} s")
    print(f"  kept {share * 100:.0f}% of its rate (target >= 50%: {'met' if share >= 0.5 else 'NOT met'})")
    print(f"  transcription: alone {t_job_alone:.1f} s, during live DETR {job.seconds:.1f} s"
          f"{' — error: ' + job.error if job.error else f', {job.words} words'}")
    shown = ", ".join(f"{t:.1f} s" + (f" ({f * 100:.0f}%)" if f >= 0 else "") for t, f, _ in job.events)
    gaps = np.diff([0.0] + [t for t, _, _ in job.events] + [job.seconds])
    print(f"  progress events during it: {len(job.events)} at {shown or 'none'}; longest gap {gaps.max():.1f} s")
    for name, (t0, t1) in (("alone", (a0, a1)), ("during", (b0, b1)), ("after", (c0, c1))):
        s = stalls.between(t0, t1)
        print(f"  UI stalls {name:6s}: median {np.median(s):.2f} ms   p95 {np.percentile(s, 95):.2f}   "
              f"p99 {np.percentile(s, 99):.2f}   max {s.max():.2f} (goal p99 < 20 ms: "
              f"{'met' if np.percentile(s, 99) < 20 else 'NOT met'})")
    return 0


__all__ = ["add_arguments", "run"]
