"""Text in: reading .txt files and checking typed or pasted text, with errors a person can act on.
No torch here: the GUI uses this module too (dropped files, the editor).

    text = read_text_file(path)       # UTF-8 (a BOM is dropped), InputError otherwise
    check_text(text)                  # not empty, not binary, not longer than MAX_CHARS

Offsets that tasks return index the text exactly as it was given (nothing is normalised here).
"""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from ..errors import InputError

#: the most characters a text task takes (about 25 pages; question answering splits it into windows)
MAX_CHARS = 100_000
#: a file larger than this cannot hold MAX_CHARS characters of UTF-8 text worth reading
MAX_FILE_BYTES = 4 * MAX_CHARS
MAX_QUESTION_CHARS = 2_000
MAX_CANDIDATES = 256
#: control characters that belong in text
_TEXT_CONTROLS = {"\t", "\n", "\r", "\f", "\v"}


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def check_text(text, what: str = "The text", max_chars: int = MAX_CHARS) -> str:
    """``text`` when a text task can take it; InputError (worded for the user) when it is not a
    string, is empty or only spaces, is longer than ``max_chars``, or looks binary (NUL bytes or
    mostly control characters)."""
    if not isinstance(text, str):
        raise InputError(f"{what} must be a string, got {type(text).__name__}.")
    if not text.strip():
        raise InputError(f"{what} is empty: type or paste some words.")
    if len(text) > max_chars:
        raise InputError(f"{what} is {len(text):,} characters long; text tasks take up to {max_chars:,}. "
                         "Use a shorter passage.")
    if "\x00" in text:
        raise InputError(f"{what} holds NUL characters: it looks like a binary file, not text.")
    controls = sum(1 for c in text if c not in _TEXT_CONTROLS and unicodedata.category(c) == "Cc")
    if controls > max(8, len(text) // 20):
        raise InputError(f"{what} is mostly control characters: it looks like a binary file, not text.")
    return text


def read_text_file(path: str | os.PathLike) -> str:
    """A .txt file's text. UTF-8 only (a UTF-8 BOM is dropped); InputError when the file is missing,
    a folder, too large, binary or not UTF-8, or when its text fails :func:`check_text`."""
    p = Path(path).expanduser()
    name = p.name or str(p)
    if not p.exists():
        raise InputError(f"No such file: {p}")
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a text file.")
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"{name} is {_size(size)}; text tasks take up to {MAX_CHARS:,} characters "
                             f"(a text file of at most {_size(MAX_FILE_BYTES)}). Use a shorter passage.")
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"Cannot read {name}: {exc.strerror or exc}.") from exc
    if b"\x00" in data:
        raise InputError(f"{name} is not a text file (it holds NUL bytes: binary data).")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start} "
                         "cannot be read); save it as UTF-8 and try again.") from None
    return check_text(text, name)
