"""Paths to bundled assets that work both from a source checkout and a PyInstaller bundle."""
from __future__ import annotations

import sys
from pathlib import Path


def base_dir() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)
    return Path(frozen) if frozen else Path(__file__).resolve().parent.parent


def asset(*parts: str) -> Path:
    """``asset("icons", "taskscope.svg")`` -> the file in assets/."""
    return base_dir().joinpath("assets", *parts)
