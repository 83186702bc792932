"""`python main.py bench TASK`: our engine vs transformers on the same checkpoint, in one run."""
from __future__ import annotations

import argparse
import logging
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python main.py bench", description=(
        "Time our engine against transformers on the same checkpoint and input, in one run, and print the "
        "ratio. Without --model, the default model is used if it is downloaded; otherwise a random-weight "
        "checkpoint of the same size is built locally (needs transformers: pip install -e '.[dev]')."))
    sub = p.add_subparsers(dest="task", metavar="TASK", required=True)
    from . import detection, speech, ui
    d = sub.add_parser("detection", help="object detection (DETR)")
    detection.add_arguments(d)
    d.set_defaults(func=detection.run)
    r = sub.add_parser("speech-recognition", help="speech recognition (Wav2Vec2 CTC)")
    speech.add_arguments(r)
    r.set_defaults(func=speech.run_recognition)
    c = sub.add_parser("audio-classification", help="audio classification (Wav2Vec2)")
    speech.add_arguments(c)
    c.set_defaults(func=speech.run_classification)
    u = sub.add_parser("ui", help="UI event-loop stalls while DETR runs live in the real window")
    ui.add_arguments(u)
    u.set_defaults(func=ui.run)
    return p


def main(argv: list[str], offline: bool = False) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    args = build_parser().parse_args(argv)
    from engine.errors import EngineError
    try:
        return args.func(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
