"""A TranscriptionResult as plain text, SubRip (.srt), WebVTT (.vtt) or JSON. No torch.

Subtitle cues group consecutive words into lines of at most ``max_chars`` characters and
``max_s`` seconds, and start a new cue after a pause longer than ``max_gap_s``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .results import Span, TranscriptionResult

FORMATS = ("txt", "srt", "vtt", "json")
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
    span = lambda s: {"text": s.text, "start": round(s.start, 3), "end": round(s.end, 3)}  # noqa: E731
    return json.dumps({"text": result.text, "duration_s": round(result.duration_s, 3),
                       "words": [span(w) for w in result.words], "chars": [span(c) for c in result.chars]},
                      ensure_ascii=False, indent=1) + "\n"


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
