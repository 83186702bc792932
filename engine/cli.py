"""Headless commands: one subcommand per task (declared by the task module itself), plus
`models` and `download`. `python main.py bench ...` lives in the benchmarks package (it imports
transformers).

A command reads and checks its inputs and options BEFORE the model loads, so a typo costs no
download; every error is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .catalog import catalog as model_catalog, default_model  # not `from . import catalog`: engine's
# own `catalog` (the function, exported by engine/__init__) hides the module of that name
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
    ref = args.model or default_model(task)
    return load_task(task, ref, device=args.device, precision=args.precision,
                     progress=_progress_printer(f"Downloading {ref}"), offline=args.offline or None)


def _common(p: argparse.ArgumentParser, task_cls) -> None:
    ids = ", ".join(e.id for e in task_cls.models)
    p.add_argument("--model", metavar="ID|DIR", help=task_cls.cli_model_help or
                   f"hub model id or local checkpoint folder (known: {ids})")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", choices=("exact", "fast"), default="exact",
                   help="exact = float32; fast = bf16/fp16 where the hardware supports it")
    p.add_argument("--offline", action="store_true", default=argparse.SUPPRESS,
                   help="never download; use cached models and local folders only")


def run_task_command(task_cls, args) -> int:
    """Inputs and options first (errors before any loading), then the model, then each result:
    as text, or with --json one JSON object per input (a list when there are several)."""
    from .io.export import dumps
    task_cls = task_cls.cli_task(args)
    pairs = task_cls.cli_inputs(args)
    options = task_cls.cli_options(args)
    check = getattr(options, "check", None)
    if check is not None:
        check()
    good = [(name, x) for name, x in pairs if not isinstance(x, EngineError)]
    if not good:  # nothing readable: report the first problem (each, if several)
        for name, x in pairs:
            print(f"error: {x}", file=sys.stderr)
        return 2
    task = _load(args, task_cls.name)
    results = iter(task.cli_results([x for _, x in good], options, args))
    as_json = getattr(args, "json", False)
    failed = 0
    blocks = []
    for name, x in pairs:
        # an input that could not be read, or whose run failed, is reported on its own
        outcome = x if isinstance(x, EngineError) else next(results)
        if isinstance(outcome, EngineError):
            failed += 1
            message = str(outcome) if outcome is x or name in str(outcome) else f"{name}: {outcome}"
            print(f"error: {message}", file=sys.stderr)
            if as_json:
                blocks.append({"input": name, "error": str(outcome)})
        elif as_json:
            blocks.append(task_cls.cli_json(name, outcome, task))
        else:
            text = task_cls.cli_print(name, outcome, args)
            if text:
                print(text)
    if as_json:
        print(dumps(blocks if len(blocks) > 1 else blocks[0]))
    return 2 if failed else 0


def cmd_models(args) -> int:
    from .hub import is_cached
    everything = model_catalog()
    for task in ([args.task] if args.task else list(everything)):
        print(task)
        for i, e in enumerate(everything[task]):
            state = "downloaded" if is_cached(e.id) else "not downloaded"
            print(f"  {'*' if i == 0 else ' '} {e.id:<58} {e.size_mb:>5} MB  {e.licence:<11} {state:<15} {e.note}")
    return 0


def cmd_download(args) -> int:
    from .hub import resolve
    if args.offline:
        raise EngineError("download needs the network, but --offline was given.")
    for ref in args.models:
        folder = resolve(ref, progress=_progress_printer(ref), offline=False)
        print(f"{ref}: {folder}")
    return 0


def command_names() -> tuple[str, ...]:
    """Every first word the CLI accepts (task commands and command groups, models, download, bench)."""
    from .tasks import all_tasks
    words = (c.command_group or c.command for c in all_tasks().values() if c.command)
    return tuple(dict.fromkeys(words)) + ("models", "download", "bench")


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's, but lines never break inside a hyphenated word: command names stay whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap
        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)


def build_parser() -> argparse.ArgumentParser:
    from .tasks import all_tasks
    p = argparse.ArgumentParser(prog="python main.py", formatter_class=_HelpFormatter, description=(
        "Taskscope: see how Transformer models solve tasks. Without a command the desktop app opens "
        "(python main.py [--offline] [--device D] [--precision P] [FILE])."))
    p.add_argument("--offline", action="store_true", help="never download; use cached models and local folders only")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for cls in all_tasks().values():
        if not cls.command:
            continue
        parent = sub
        if cls.command_group:  # `python main.py GROUP TASK ...`: one command holding the group's tasks
            if cls.command_group not in groups:
                members = [c.command for c in all_tasks().values()
                           if c.command and c.command_group == cls.command_group]
                g = sub.add_parser(cls.command_group, help=f"{cls.command_group} tasks: {', '.join(members)}",
                                   description=f"{cls.command_group} tasks; `{cls.command_group} TASK --help` "
                                               "for each one's arguments")
                groups[cls.command_group] = g.add_subparsers(dest="task_command", metavar="TASK", required=True)
            parent = groups[cls.command_group]
        doc = (cls.__doc__ or "").strip().split("\n\n")[0]
        t = parent.add_parser(cls.command, help=cls.command_help, description=cls.summary or doc)
        cls.add_arguments(t)
        _common(t, cls)
        t.set_defaults(func=lambda args, cls=cls: run_task_command(cls, args))

    m = sub.add_parser("models", help="list the models of each task and whether they are downloaded")
    m.add_argument("task", nargs="?", choices=sorted(all_tasks()))
    m.set_defaults(func=cmd_models)

    dl = sub.add_parser("download", help="download models now, for offline use later")
    dl.add_argument("models", nargs="+", metavar="ID")
    dl.add_argument("--offline", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
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
    try:
        return args.func(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
