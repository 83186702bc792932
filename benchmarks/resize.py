"""`python main.py bench resize`: our Pillow-exact resize (engine.processors.image.resize) against
Pillow itself and OpenCV, on the resizes the app's models do, with a check that our bytes equal
Pillow's.

Pillow is timed the way transformers' image processors use it from a numpy frame
(``fromarray`` -> ``resize`` -> ``np.asarray``). OpenCV is the speed reference, not an equal: its
INTER_LINEAR / INTER_CUBIC do not widen the filter when downscaling (no antialiasing) and round
differently, so its bytes differ from Pillow's.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from .floor import cpu_name

#: (name, (in_h, in_w), (out_h, out_w), filter); the output of "shortest edge" cases as the
#: processors compute it
CASES = [
    ("1920x1080 -> 224x224 (ViT)", (1080, 1920), (224, 224), "bilinear"),
    ("640x480 -> 1066x800 (DETR)", (480, 640), (800, 1066), "bilinear"),
    ("1280x720 -> 455x256 (ConvNeXT)", (720, 1280), (256, 455), "bicubic"),
    ("640x480 -> 512x512 (SegFormer)", (480, 640), (512, 512), "bilinear"),
    ("640x480 -> 224x224 nearest", (480, 640), (224, 224), "nearest"),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeat", type=int, default=20, metavar="N", help="timed runs per implementation (median)")


def _frame(h: int, w: int) -> np.ndarray:
    """A photo-like (H, W, 3) uint8 frame: gradients plus noise (content does not change timings)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([255 * xx / w, 255 * yy / h, 127 + 100 * np.sin(xx / 40 + yy / 60)], axis=-1)
    return (base * 0.8 + rng.integers(0, 50, (h, w, 3))).clip(0, 255).astype(np.uint8)


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm-up: tables are built and cached on the first call
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def run(argv=None) -> int:
    """Time the cases and print the table. ``argv``: a list of command-line arguments
    (``["--repeat", "50"]``), or the Namespace that ``python main.py bench resize`` parsed."""
    if isinstance(argv, argparse.Namespace):
        args = argv
    else:
        parser = argparse.ArgumentParser(prog="python main.py bench resize", description=__doc__.split("\n\n")[0])
        add_arguments(parser)
        args = parser.parse_args(list(argv or []))

    import cv2

    from engine.processors.image import resize
    try:
        import PIL
        from PIL import Image
    except ImportError:  # Pillow is a dev dependency only
        Image = None
    codes = {"nearest": 0, "bilinear": 2, "bicubic": 3}
    cv2_flags = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}

    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores); numpy {np.__version__}, "
          f"OpenCV {cv2.__version__}" + (f", Pillow {PIL.__version__}" if Image else ", Pillow not installed"))
    print(f"median of {args.repeat} runs, ms; uint8 RGB in and out\n")
    header = f"{'case':<34}{'ours':>8}{'Pillow':>8}{'cv2':>8}{'ours/Pillow':>13}{'ours/cv2':>10}  identical to Pillow"
    print(header)
    print("-" * len(header))
    all_identical = True
    for name, (h, w), (oh, ow), flt in CASES:
        frame = _frame(h, w)
        ours_ms = _median_ms(lambda: resize(frame, (oh, ow), flt), args.repeat)
        cv_ms = _median_ms(lambda: cv2.resize(frame, (ow, oh), interpolation=cv2_flags[flt]), args.repeat)
        if Image is not None:
            pil_ms = _median_ms(lambda: np.asarray(Image.fromarray(frame).resize((ow, oh), codes[flt])), args.repeat)
            same = np.array_equal(resize(frame, (oh, ow), flt),
                                  np.asarray(Image.fromarray(frame).resize((ow, oh), codes[flt])))
            all_identical &= same
            pil_col, ratio_pil, same_col = f"{pil_ms:8.2f}", f"{ours_ms / pil_ms:12.2f}x", "yes" if same else "NO"
        else:
            pil_col, ratio_pil, same_col = f"{'n/a':>8}", f"{'n/a':>13}", "n/a (no Pillow)"
        print(f"{name:<34}{ours_ms:8.2f}{pil_col}{cv_ms:8.2f}{ratio_pil}{ours_ms / cv_ms:9.1f}x  {same_col}")
    print("\ncv2 does not antialias when downscaling (its bytes differ from Pillow's); ours and Pillow's do.")
    return 0 if all_identical else 1
