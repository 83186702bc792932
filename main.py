"""Taskscope: `python main.py` opens the app; `python main.py COMMAND ...` runs a task headless.

Run `python main.py --help` for the commands.
"""
from __future__ import annotations

import sys

COMMANDS = ("detect", "transcribe", "classify-audio", "models", "download")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    words = [a for a in argv if not a.startswith("-")]
    first = words[0] if words else None
    if first == "bench":
        from benchmarks.cli import main as bench_main
        return bench_main(argv[argv.index("bench") + 1:], offline="--offline" in argv[:argv.index("bench")])
    if first in COMMANDS or (first is None and any(a in ("-h", "--help") for a in argv)):
        from engine.cli import main as cli_main
        return cli_main(argv)
    from gui.app import run_app
    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
