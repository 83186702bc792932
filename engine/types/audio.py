"""Audio options and results: speech recognition, audio classification (torch-free)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import Timings

@dataclass(frozen=True)
class TranscriptionOptions:
    chunk_s: float = 20.0  # audio longer than this is decoded in overlapping chunks
    stride_s: float = 2.5  # overlap kept on each side of a chunk boundary
    internals: bool = False  # also return CTC emissions


@dataclass(frozen=True)
class Span:
    """A word or character with its start and end time in seconds."""

    text: str
    start: float
    end: float

    def to_json(self) -> dict:
        return {"text": self.text, "start": round(self.start, 3), "end": round(self.end, 3)}


@dataclass(frozen=True)
class CTCInternals:
    """Per-frame CTC emissions (20 ms frames): what the model heard when."""

    frame_s: float  # seconds per frame
    top_ids: np.ndarray  # (T,) argmax token per frame
    top_probs: np.ndarray  # (T,) its probability
    blank_prob: np.ndarray  # (T,) probability of the CTC blank (pad) token
    vocab: tuple[str, ...]


@dataclass(frozen=True)
class TranscriptionResult:
    text: str
    words: tuple[Span, ...]
    chars: tuple[Span, ...]
    duration_s: float
    timings: Timings = Timings()
    internals: CTCInternals | None = None

    def to_json(self) -> dict:
        return {"text": self.text, "duration_s": round(self.duration_s, 3),
                "words": list(self.words), "chars": list(self.chars)}


@dataclass(frozen=True)
class AudioClassificationOptions:
    top_k: int = 5

    def check(self) -> None:
        from ..errors import InputError
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise InputError(f"top-k must be a whole number of at least 1, got {self.top_k!r}.")


@dataclass(frozen=True)
class AudioClassificationResult:
    labels: tuple[str, ...]  # best first
    scores: np.ndarray  # (k,) softmax probabilities
    duration_s: float
    timings: Timings = Timings()

    def to_json(self) -> list[dict]:
        return [{"label": l, "score": round(float(s), 4)} for l, s in zip(self.labels, self.scores)]
