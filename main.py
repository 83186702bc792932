"""Taskscope: `python main.py` opens the app; `python main.py COMMAND ...` runs a task headless.

Run `python main.py --help` for the commands.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("gui", "app") or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        from gui.app import run_app
        return run_app(argv[1:] if argv and argv[0] in ("gui", "app") else argv)
    from engine.cli import main as cli_main
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
