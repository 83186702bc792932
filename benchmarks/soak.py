"""`python main.py bench soak --minutes N`: does the app's memory stay flat over a long live session?

The real main window (offscreen unless a display is there) runs, together on its one engine:

- live object detection on a generated 640x480 video played as the camera (Vision tab), and
- live speech recognition on a WAV played as the microphone in real time, looping (Speech tab,
  an ``AudioFileSource`` as ``set_source`` takes it: espeak-ng speech when installed, else a
  synthetic voiced signal, with pauses so that utterances end and finals come),

switching the visible tab every ``--switch`` seconds so that both get painted. The resident memory
(VmRSS of /proc/self/status) is sampled every ``--interval`` seconds. Reported: the RSS curve, and
after the warm-up (models loaded, first results in, then ``--warmup`` seconds) its first, min, max
and last value, the drift (last - first), the medians of 2-minute windows (the level: the allocator's
trims make a sawtooth of tens of MB between single samples) and whether the level stays within
+-50 MB (first to last window, and every window within the 100 MB band), plus the results each
stream got (so a stalled stream does not pass for a flat curve).

Checkpoints as `bench detection` / `bench speech-recognition` choose them: the real defaults when
cached, else random-weight ones with the real dimensions built locally (needs transformers).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from .floor import cpu_name

LIMIT_MB = 50.0
#: the level of the curve is the median over windows of this many seconds
WINDOW_S = 120.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=30.0, help="total run time, warm-up included (default 30)")
    p.add_argument("--warmup", type=float, default=60.0,
                   help="seconds after both streams' first results before the drift is measured (default 60)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    p.add_argument("--switch", type=float, default=30.0, help="seconds between visible-tab switches (default 30)")
    p.add_argument("--detr-model", metavar="ID|DIR", help="DETR checkpoint (default: facebook/detr-resnet-50 if "
                   "downloaded, else the random-weight one `bench detection` builds)")
    p.add_argument("--asr-model", metavar="ID|DIR", help="speech recognition checkpoint (default: "
                   "facebook/wav2vec2-base-960h if downloaded, else a random-weight one with its dimensions)")
    p.add_argument("--size", type=int, default=384, choices=(384, 512, 800), help="DETR input size (default 384)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N, mps")
    p.add_argument("--csv", type=Path, help="also write the samples (seconds, RSS MB) to this CSV file")


def rss_mb() -> float:
    """Resident memory of this process in MB (VmRSS), NaN where /proc is not there."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


def _write_wav(path: Path, seconds: float = 12.0) -> tuple[Path, str]:
    """Speech with pauses: the bench clip in ~3 s pieces, 1 s of silence after each."""
    import numpy as np
    import soundfile as sf

    from .speech import _clip
    speech, what = _clip(seconds)
    sr = 16000
    parts = []
    for start in range(0, len(speech), 3 * sr):
        parts += [0.8 * speech[start:start + 3 * sr], np.zeros(sr, np.float32)]
    sf.write(str(path), np.concatenate(parts).astype(np.float32), sr)
    return path, what


def _spin(app, until, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.005)  # a benchmark's wait loop (tests never sleep)
    return True


class _Counts:
    """Results (and errors) per engine stream, from every request the window submits."""

    def __init__(self, client) -> None:
        self.results: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.last_error = ""
        real = client.submit

        def submit(stream, *a, **kw):
            request = real(stream, *a, **kw)
            request.result.connect(lambda _o, s=stream: self._bump(self.results, s))
            request.error.connect(lambda m, s=stream: self._error(s, m))
            return request
        client.submit = submit

    @staticmethod
    def _bump(d: dict, key: str) -> None:
        d[key] = d.get(key, 0) + 1

    def _error(self, stream: str, message: str) -> None:
        self._bump(self.errors, stream)
        self.last_error = message

    def total(self, prefix: str) -> int:
        return sum(n for s, n in self.results.items() if s.startswith(prefix))


def run(args) -> int:
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="taskscope-bench-soak-"))
    os.environ["TASKSCOPE_SETTINGS_DIR"] = str(tmp / "settings")

    from . import detection, speech
    from .ui import _make_video
    detr = detection.checkpoint(args.detr_model)
    asr_label, asr_folder, _random = speech._checkpoint(SimpleNamespace(model=args.asr_model), "speech-recognition")
    video = _make_video(tmp / "live.mp4")
    wav, wav_what = _write_wav(tmp / "mic.wav")

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from engine import memory
    from gui.app import MainWindow, make_settings
    from gui.sources.audio_file import AudioFileSource

    app = QApplication.instance() or QApplication([])
    window = MainWindow(make_settings(), device=args.device, precision="exact", offline=True)
    window.resize(1280, 800)
    window.show()
    counts = _Counts(window.engine)
    vision, speech_tab = window.vision_tab, window.speech_tab
    vision.set_task("object-detection")
    vision.model_picker.set_model(detr, emit=True)
    sizes = vision.presenter().size_combo
    sizes.setCurrentIndex(max(0, sizes.findData(args.size)))
    speech_tab.asr_picker.set_model(str(asr_folder))
    speech_tab.set_mode("transcribe")

    t_start = time.monotonic()
    samples: list[tuple[float, float]] = [(0.0, rss_mb())]
    heap: list[tuple[float, float] | None] = [memory.heap_mb()]  # malloc's (in use, free kept), with each sample

    def sample() -> None:
        samples.append((time.monotonic() - t_start, rss_mb()))
        heap.append(memory.heap_mb())
    vision.start_camera(str(video))
    speech_tab.set_source(AudioFileSource(wav, loop=True, tail_s=0.0))
    if not speech_tab.start():
        print(f"error: the speech tab did not start: {window.last_error!r}")
        return 2
    sampler = QTimer()
    sampler.setInterval(int(args.interval * 1000))
    sampler.timeout.connect(sample)
    sampler.start()
    switcher = QTimer()
    switcher.setInterval(int(args.switch * 1000))
    switcher.timeout.connect(lambda: window.tabs.setCurrentIndex(1 - window.tabs.currentIndex()))
    switcher.start()
    window.tabs.setCurrentIndex(0)

    # warm-up: both models loaded and both streams giving results
    total_s = args.minutes * 60.0
    ok = _spin(app, lambda: vision.results_received > 0 and counts.total("speech") > 0, max(60.0, total_s))
    t_ready = time.monotonic() - t_start
    if not ok:
        print(f"error: no results from both streams within {max(60.0, total_s):.0f} s (vision "
              f"{vision.results_received}, speech {counts.total('speech')}; last error {counts.last_error!r})")
        return 2
    t_warm = t_ready + args.warmup
    v0, s0 = vision.results_received, counts.total("speech")
    left_s = max(0.0, total_s - (time.monotonic() - t_start))

    def finish() -> None:  # the last sample before quitting: on quit the engine lets its models go
        sampler.stop()
        switcher.stop()
        sample()
        app.quit()
    QTimer.singleShot(int(left_s * 1000), finish)
    app.exec()
    t_end = time.monotonic() - t_start
    vision_n, speech_n = vision.results_received - v0, counts.total("speech") - s0
    segments = len(speech_tab.segments)
    vision.stop()
    speech_tab.stop()
    window.close()

    if args.csv:
        args.csv.write_text("seconds,rss_mb,malloc_in_use_mb,malloc_free_mb\n" + "".join(
            f"{t:.1f},{m:.1f},{h[0] if h else float('nan'):.1f},{h[1] if h else float('nan'):.1f}\n"
            for (t, m), h in zip(samples, heap)))
    measured = [(t, m) for t, m in samples if t >= t_warm]
    print(f"soak: {t_end / 60:.1f} min of live DETR ({detr}, {args.size} px) on a 640x480 video as the camera and "
          f"live speech recognition ({asr_label}) on a looping WAV ({wav_what}) as the microphone, in the real "
          f"window ({os.environ.get('QT_QPA_PLATFORM') or 'default'} Qt platform), device {args.device}; "
          f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    print(f"  both streams giving results after {t_ready:.0f} s; warm-up until {t_warm:.0f} s")
    print(f"  results after that: detection {vision_n} ({vision_n / max(1e-9, t_end - t_ready):.2f}/s), speech "
          f"{speech_n} (partials and finals; {segments} utterances in the transcript); errors "
          f"{sum(counts.errors.values())}{' — last: ' + counts.last_error if counts.last_error else ''}")
    step = max(1, len(samples) // 24)
    curve = "  ".join(f"{t:.0f}s:{m:.0f}" for t, m in samples[::step])
    print(f"  RSS MB every {args.interval:g} s (every {step}. shown): {curve}")
    if len(measured) < 2:
        print(f"  too short to measure a drift: run longer than the warm-up ({t_warm:.0f} s)")
        return 0
    mbs = [m for _, m in measured]
    first, last = mbs[0], mbs[-1]
    drift = last - first
    t = [x for x, _ in measured]
    mean_t, mean_m = sum(t) / len(t), sum(mbs) / len(mbs)
    var = sum((x - mean_t) ** 2 for x in t)
    slope = (sum((x - mean_t) * (m - mean_m) for x, m in measured) / var * 60.0) if var else 0.0
    print(f"  after warm-up ({len(measured)} samples, {measured[0][0]:.0f}-{measured[-1][0]:.0f} s): first "
          f"{first:.0f} MB   min {min(mbs):.0f}   max {max(mbs):.0f}   last {last:.0f}   drift {drift:+.1f} MB "
          f"(trend {slope:+.2f} MB/min)")
    # the level, not single samples: the allocator's trims make a sawtooth of tens of MB between frames
    window = max(1, int(round(WINDOW_S / args.interval)))
    # whole windows back from the end (the last one is the last minutes), the first from the warm-up's end
    starts = sorted({0, *range(len(mbs) - window, 0, -window)}) if len(mbs) > window else [0]
    windows = [statistics.median(mbs[i:i + window]) for i in starts]
    head, tail = windows[0], windows[-1]
    print(f"  medians of {WINDOW_S / 60:g}-minute windows after warm-up: "
          + ", ".join(f"{m:.0f}" for m in windows) + f" MB; first window -> last: {tail - head:+.1f} MB")
    measured_heap = [h for (x, _), h in zip(samples, heap) if x >= t_warm and h is not None]
    if len(measured_heap) == len(mbs):  # where the RSS goes: malloc's live blocks, or its free ones kept
        used = [statistics.median(h[0] for h in measured_heap[i:i + window]) for i in starts]
        kept = [statistics.median(h[1] for h in measured_heap[i:i + window]) for i in starts]
        print("  of which malloc's blocks in use (window medians): " + ", ".join(f"{m:.0f}" for m in used)
              + f" MB ({used[-1] - used[0]:+.1f}); free but kept: " + ", ".join(f"{m:.0f}" for m in kept)
              + f" MB ({kept[-1] - kept[0]:+.1f})")
    within = abs(tail - head) <= LIMIT_MB and max(windows) - min(windows) <= 2 * LIMIT_MB
    print(f"  goal: flat within +-{LIMIT_MB:.0f} MB (first to last window median, and no window further from "
          f"another than the band): {'met' if within else 'NOT met'}; single samples: drift {drift:+.1f} MB, spread "
          f"{max(mbs) - min(mbs):.0f} MB (the allocator's ups and downs between frames)")
    return 0


__all__ = ["add_arguments", "rss_mb", "run"]
