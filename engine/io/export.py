"""Every export, torch-free: the one JSON writer for all results (CLI --json, snapshots, exports),
and a TranscriptionResult as plain text, SubRip (.srt), WebVTT (.vtt) or JSON.

Subtitle cues group consecutive words into lines of at most ``max_chars`` characters and
``max_s`` seconds, and start a new cue after a pause longer than ``max_gap_s``.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..types.audio import Span, TranscriptionResult

FORMATS = ("txt", "srt", "vtt", "json")


# ------------------------------------------------------------------------------ JSON, for every result

def to_jsonable(value: Any) -> Any:
    """Plain JSON values for a result, options or any nesting of them: an object with its own
    ``to_json()`` gives that; other dataclasses their fields; numpy arrays and scalars lists and
    numbers; floats that are not finite become None (JSON has no NaN)."""
    if hasattr(value, "to_json") and not isinstance(value, type):
        return to_jsonable(value.to_json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    """``value`` as JSON text (UTF-8 characters kept as they are)."""
    return json.dumps(to_jsonable(value), indent=indent, ensure_ascii=False)


def write_json(value: Any, path: str | Path) -> Path:
    """Write ``value`` as JSON to ``path``; OSError when it cannot be written."""
    p = Path(path)
    p.write_text(dumps(value) + "\n", encoding="utf-8")
    return p


# ------------------------------------------------------------------------------ transcripts
MAX_CHARS = 42
MAX_SECONDS = 5.0
MAX_GAP_S = 1.0


def cues(result: TranscriptionResult, max_chars: int = MAX_CHARS, max_s: float = MAX_SECONDS,
         max_gap_s: float = MAX_GAP_S) -> list[Span]:
    """Words grouped into subtitle lines: Span(text, start of first word, end of last word)."""
    out: list[Span] = []
    line: list[Span] = []

    def flush() -> None:
        if line:
            out.append(Span(" ".join(w.text for w in line), line[0].start, line[-1].end))
            line.clear()

    for w in result.words:
        if line:
            too_long = len(" ".join(x.text for x in line)) + 1 + len(w.text) > max_chars
            too_slow = w.end - line[0].start > max_s
            if too_long or too_slow or w.start - line[-1].end > max_gap_s:
                flush()
        line.append(w)
    flush()
    if not out and result.text.strip():  # text without word timings: one cue for the whole clip
        out.append(Span(result.text.strip(), 0.0, result.duration_s))
    return out


def timestamp(seconds: float, sep: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SRT; ``sep="."`` for WebVTT)."""
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_txt(result: TranscriptionResult) -> str:
    return result.text.strip() + "\n"


def to_srt(result: TranscriptionResult, **kw) -> str:
    blocks = [f"{i}\n{timestamp(c.start)} --> {timestamp(max(c.end, c.start + 0.001))}\n{c.text}\n"
              for i, c in enumerate(cues(result, **kw), 1)]
    return "\n".join(blocks)


def to_vtt(result: TranscriptionResult, **kw) -> str:
    blocks = [f"{timestamp(c.start, '.')} --> {timestamp(max(c.end, c.start + 0.001), '.')}\n{c.text}\n"
              for c in cues(result, **kw)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_json(result: TranscriptionResult) -> str:
    return dumps(result, indent=1) + "\n"


def export(result: TranscriptionResult, fmt: str) -> str:
    """The result in ``fmt`` ("txt", "srt", "vtt" or "json")."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"Unknown transcript format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    return {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "json": to_json}[fmt](result)


def save(result: TranscriptionResult, path: str | Path) -> Path:
    """Write the result to ``path``; the format comes from the extension."""
    p = Path(path)
    p.write_text(export(result, p.suffix or "txt"), encoding="utf-8")
    return p
