"""Options and results that cross from the engine to the app: frozen dataclasses of numpy
arrays and plain Python values, never tensors. This module imports no torch, so the GUI can
use it freely."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent in each stage of one task call."""

    preprocess_ms: float = 0.0
    model_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.model_ms + self.postprocess_ms


# ------------------------------------------------------------------------------ object detection

@dataclass(frozen=True)
class DetectionOptions:
    threshold: float = 0.7  # score above which a query's box counts as a detection
    shortest_edge: int = 800  # resize so the short side is this (the checkpoints' 800; lower is faster)
    longest_edge: int = 1333
    internals: bool = False  # also return the decoder's cross-attention per query


@dataclass(frozen=True)
class DetectionInternals:
    """What DETR looked at: the last decoder layer's cross-attention of every object query
    over the encoder's feature map (mean over heads)."""

    cross_attention: np.ndarray  # (num_queries, h, w) float32, each map sums to 1
    feature_size: tuple[int, int]  # (h, w) of the backbone feature map
    query_scores: np.ndarray  # (num_queries,) best non-"no object" probability per query


@dataclass(frozen=True)
class DetectionResult:
    """Detections above ``threshold``, best first; boxes are (x0, y0, x1, y1) in pixels."""

    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    label_ids: np.ndarray  # (N,) int64
    labels: tuple[str, ...]
    image_size: tuple[int, int]  # (height, width)
    threshold: float
    query_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (N,) which object query
    timings: Timings = Timings()
    internals: DetectionInternals | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def above(self, threshold: float) -> DetectionResult:
        """The detections with score > ``threshold`` (only meaningful for a threshold >= self.threshold)."""
        keep = self.scores > threshold
        return DetectionResult(self.boxes[keep], self.scores[keep], self.label_ids[keep],
                               tuple(l for l, k in zip(self.labels, keep) if k), self.image_size, threshold,
                               self.query_ids[keep] if len(self.query_ids) else self.query_ids,
                               self.timings, self.internals)

    def to_json(self) -> list[dict]:
        return [{"label": l, "label_id": int(i), "score": round(float(s), 4),
                 "box": [round(float(v), 1) for v in b]}
                for l, i, s, b in zip(self.labels, self.label_ids, self.scores, self.boxes)]


# ------------------------------------------------------------------------------ speech

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


@dataclass(frozen=True)
class AudioClassificationOptions:
    top_k: int = 5


@dataclass(frozen=True)
class AudioClassificationResult:
    labels: tuple[str, ...]  # best first
    scores: np.ndarray  # (k,) softmax probabilities
    duration_s: float
    timings: Timings = Timings()
