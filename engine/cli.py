"""Headless commands: `python main.py detect|transcribe|classify-audio|models|download ...`.

`python main.py bench ...` lives in the benchmarks package (it imports transformers).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import catalog
from .errors import EngineError

log = logging.getLogger("taskscope")


def _progress_printer(label: str):
    last = [-1]

    def progress(done: int, total: int, name: str) -> None:
        pct = int(100 * done / total) if total else 0
        if pct != last[0]:
            last[0] = pct
            print(f"\r{label}: {name} {done / 1e6:7.1f} / {total / 1e6:.1f} MB ({pct}%)", end="", file=sys.stderr,
                  flush=True)
            if done >= total:
                print(file=sys.stderr)
    return progress


def _load(args, task: str):
    from . import load_task
    ref = args.model or catalog.default_model(task)
    return load_task(task, ref, device=args.device, precision=args.precision,
                     progress=_progress_printer(f"Downloading {ref}"), offline=args.offline or None)


def _common(p: argparse.ArgumentParser, task: str) -> None:
    ids = ", ".join(e.id for e in catalog.models_for(task))
    p.add_argument("--model", metavar="ID|DIR", help=f"hub model id or local checkpoint folder (known: {ids})")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", choices=("exact", "fast"), default="exact",
                   help="exact = float32; fast = bf16/fp16 where the hardware supports it")


def cmd_detect(args) -> int:
    from .imageio import read_image
    from .results import DetectionOptions
    images = [read_image(path) for path in args.image]
    task = _load(args, "object-detection")
    opts = DetectionOptions(threshold=args.threshold, shortest_edge=args.size, longest_edge=max(args.size, 1333))
    # several images: one padded batch, each result timed with an even share of the batch
    results = task.run_batch(images, opts) if len(images) > 1 else [task(images[0], opts)]
    if args.json:
        blocks = [{"image": str(path), "model": task.model_ref, "size": list(result.image_size),
                   "detections": result.to_json(),
                   "timings_ms": {"preprocess": round(result.timings.preprocess_ms, 1),
                                  "model": round(result.timings.model_ms, 1),
                                  "postprocess": round(result.timings.postprocess_ms, 1)}}
                  for path, result in zip(args.image, results)]
        print(json.dumps(blocks if len(blocks) > 1 else blocks[0], indent=2))
        return 0
    for path, result in zip(args.image, results):
        print(f"{len(result)} objects in {path} ({result.image_size[1]}x{result.image_size[0]}), "
              f"threshold {args.threshold}, {result.timings.total_ms:.0f} ms on {task.placement.describe()}")
        for d in result.to_json():
            x0, y0, x1, y1 = d["box"]
            print(f"  {d['label']:<20} {d['score']:.3f}  box ({x0:.0f}, {y0:.0f}) – ({x1:.0f}, {y1:.0f})")
    return 0


def cmd_transcribe(args) -> int:
    from . import export
    from .audio import load_audio
    from .results import TranscriptionOptions
    audio, _duration = load_audio(args.file)
    task = _load(args, "speech-recognition")

    def progress(fraction: float, partial) -> None:
        print(f"\rTranscribing… {int(fraction * 100):3d}%", end="", file=sys.stderr, flush=True)

    result = task(audio, TranscriptionOptions(), progress=progress)
    print("\r", end="", file=sys.stderr)
    text = {"txt": export.to_txt, "srt": export.to_srt, "vtt": export.to_vtt, "json": export.to_json}[args.format](result)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"Wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_classify_audio(args) -> int:
    from .audio import load_audio
    from .results import AudioClassificationOptions
    audio, _duration = load_audio(args.file)
    task = _load(args, "audio-classification")
    result = task(audio, AudioClassificationOptions(top_k=args.top_k))
    if args.json:
        print(json.dumps([{"label": l, "score": round(float(s), 4)} for l, s in zip(result.labels, result.scores)],
                         indent=2))
    else:
        for label, score in zip(result.labels, result.scores):
            print(f"  {label:<24} {score:.3f}")
    return 0


def cmd_models(args) -> int:
    from .hub import is_cached
    tasks = [args.task] if args.task else list(catalog.CATALOG)
    for task in tasks:
        print(task)
        for i, e in enumerate(catalog.models_for(task)):
            state = "downloaded" if is_cached(e.id) else "not downloaded"
            print(f"  {'*' if i == 0 else ' '} {e.id:<42} {e.size_mb:>5} MB  {e.licence:<11} {state:<15} {e.note}")
    return 0


def cmd_download(args) -> int:
    from .hub import resolve
    for ref in args.models:
        folder = resolve(ref, progress=_progress_printer(ref), offline=False)
        print(f"{ref}: {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python main.py", description=(
        "Taskscope: see how Transformer models solve tasks. Without a command the desktop app opens."))
    p.add_argument("--offline", action="store_true", help="never download; use cached models and local folders only")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("detect", help="detect objects in images (DETR)",
                       description="Detect objects in images with DETR and print them. Several images run "
                                   "as one batch (padded to a common size, with a pixel mask).")
    d.add_argument("image", type=Path, nargs="+", metavar="IMAGE")
    _common(d, "object-detection")
    d.add_argument("--threshold", type=float, default=0.7, help="minimum score (default 0.7)")
    d.add_argument("--size", type=int, default=800, help="shortest image edge fed to the model (default 800)")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.set_defaults(func=cmd_detect)

    t = sub.add_parser("transcribe", help="transcribe an audio file (Wav2Vec2)",
                       description="Transcribe speech in an audio file (wav, flac, ogg, mp3).")
    t.add_argument("file", type=Path)
    _common(t, "speech-recognition")
    t.add_argument("--format", choices=("txt", "srt", "vtt", "json"), default="txt")
    t.add_argument("-o", "--output", type=Path, help="write to this file instead of standard output")
    t.set_defaults(func=cmd_transcribe)

    c = sub.add_parser("classify-audio", help="classify an audio clip (Wav2Vec2)",
                       description="Classify an audio clip (keywords, emotions, … depending on the model).")
    c.add_argument("file", type=Path)
    _common(c, "audio-classification")
    c.add_argument("--top-k", type=int, default=5)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_classify_audio)

    m = sub.add_parser("models", help="list the models of each task and whether they are downloaded")
    m.add_argument("task", nargs="?", choices=sorted(catalog.CATALOG))
    m.set_defaults(func=cmd_models)

    dl = sub.add_parser("download", help="download models now, for offline use later")
    dl.add_argument("models", nargs="+", metavar="ID")
    dl.set_defaults(func=cmd_download)

    sub.add_parser("bench", help="benchmark our engine against transformers (see `bench --help`)", add_help=False)
    return p


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if args.offline:
        import os
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        return args.func(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
