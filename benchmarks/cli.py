"""`python main.py bench NAME`: our engine vs transformers on the same checkpoint, in one run.

Each task declares its benchmark (``Task.bench``: a module here with ``add_arguments(parser)`` and
``run(args)``, or ``module:name`` for ``run_<name>``); the benchmarks that belong to no single task
are listed below."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

#: benchmarks that are not one task's: name -> (module[:name], help)
EXTRA = {
    "ui": ("benchmarks.ui", "UI event-loop stalls while DETR runs live in the real window"),
    "mixed": ("benchmarks.mixed", "live DETR while a long audio file transcribes on the same engine"),
    "resize": ("benchmarks.resize", "our Pillow-exact resize vs Pillow and OpenCV"),
    "startup": ("benchmarks.startup", "time from `python main.py` to the window's first paint (goal < 1 s)"),
    "text-typing": ("benchmarks.text_typing", "Text tab: last keystroke to the result on screen (goal < 100 ms)"),
    "soak": ("benchmarks.soak", "live detection + live speech in the real window for N minutes: RSS drift"),
}
#: older names still accepted
ALIASES = {"detection": "object-detection"}


def _entry(target: str):
    module_name, _, name = target.partition(":")
    module = importlib.import_module(module_name)
    return module, getattr(module, f"run_{name}" if name else "run")


def _models(cls) -> str:
    """The models a task's benchmark compares: its ``bench_models``, else the last parentheses of its help."""
    if cls.bench_models:
        return cls.bench_models
    help_text = cls.command_help
    return help_text[help_text.rfind("(") + 1:help_text.rfind(")")] if "(" in help_text else cls.name


def benches() -> dict[str, tuple[str, str]]:
    from engine.tasks import all_tasks
    out = {cls.name: (cls.bench, f"{cls.title.lower()} ({_models(cls)})") for cls in all_tasks().values() if cls.bench}
    out.update(EXTRA)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python main.py bench", description=(
        "Time our engine against transformers on the same checkpoint and input, in one run, and print the "
        "ratio and each one's distance from this machine's floor (FLOPs / measured GEMM rate). Without "
        "--model, the default model is used if it is downloaded; otherwise a random-weight checkpoint of the "
        "same size is built locally (needs transformers: pip install -e '.[dev]')."))
    sub = p.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, (target, help_text) in benches().items():
        module_name = target.partition(":")[0]
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # a benchmark whose module is missing is simply not offered
            continue
        b = sub.add_parser(name, help=help_text, aliases=[a for a, n in ALIASES.items() if n == name])
        module.add_arguments(b)
        b.set_defaults(target=target)
    return p


#: benchmarks that print no FLOP floor (no need to measure the GEMM rate first)
NO_FLOOR = ("benchmarks.soak", "benchmarks.ui", "benchmarks.startup", "benchmarks.mixed", "benchmarks.resize",
            "benchmarks.text_typing")


def main(argv: list[str], offline: bool = False) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    args = build_parser().parse_args(argv)
    from engine.errors import EngineError
    try:
        _, run = _entry(args.target)
        if getattr(args, "device", "cpu") == "cpu" and args.target.partition(":")[0] not in NO_FLOOR:
            from benchmarks.floor import gemm_gflops
            gemm_gflops("float32", "cpu")  # the rate when the bench starts; its floor takes the better one
        return run(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
