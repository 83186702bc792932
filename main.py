"""Taskscope: `python main.py` opens the app; `python main.py COMMAND ...` runs a task headless.

Run `python main.py --help` for the commands. The first word decides: a command runs headless;
no word (or files to open) opens the app; anything else is a usage error (exit 2) — never the
app by accident.
"""
from __future__ import annotations

import os
import sys

#: options the app itself takes before any file (see gui.app.parse_args); value-taking ones listed
APP_OPTIONS_WITH_VALUE = ("--device", "--precision", "--model-dir")
APP_FLAGS = ("--offline", "-v", "--verbose")


def _first_word(argv: list[str]) -> tuple[int | None, str | None]:
    """(index, word) of the first argument that is not an app option, or an unknown option."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in APP_FLAGS:
            i += 1
        elif a in APP_OPTIONS_WITH_VALUE:
            i += 2
        elif any(a.startswith(o + "=") for o in APP_OPTIONS_WITH_VALUE):
            i += 1
        else:
            return i, a
    return None, None


def _usage_error(message: str) -> int:
    print("usage: python main.py [COMMAND] ...  (python main.py --help lists the commands)", file=sys.stderr)
    print(f"python main.py: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from engine.cli import command_names
    commands = command_names()
    index, word = _first_word(argv)
    if word in ("-h", "--help"):
        from engine.cli import main as cli_main
        return cli_main(["--help"])
    if word == "bench":
        from benchmarks.cli import main as bench_main
        return bench_main(argv[index + 1:], offline="--offline" in argv[:index])
    if word in commands:
        from engine.cli import main as cli_main
        return cli_main(argv)
    if word is not None and word.startswith("-"):
        return _usage_error(f"unknown option {word!r} before the command; command options go after it "
                            f"(e.g. python main.py detect photo.jpg --threshold 0.5)")
    if word is not None and not os.path.exists(word):
        import difflib
        close = difflib.get_close_matches(word, commands, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else f"; the commands are: {', '.join(commands)}"
        return _usage_error(f"{word!r} is neither a command nor a file to open{hint}")
    from gui.app import run_app
    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
