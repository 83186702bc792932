"""Vision options and results: object detection, image classification (torch-free)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from . import Timings


# ------------------------------------------------------------------------------ object detection

@dataclass(frozen=True)
class DetectionOptions:
    threshold: float = 0.7  # score above which a query's box counts as a detection
    shortest_edge: int = 800  # resize so the short side is this (the checkpoints' 800; lower is faster)
    longest_edge: int = 1333
    internals: bool = False  # also return the decoder's cross-attention per query

    def check(self) -> None:
        import math

        from ..errors import InputError
        if not (0.0 <= self.threshold < 1.0) or math.isnan(self.threshold):
            raise InputError(f"Detection threshold must be in [0, 1), got {self.threshold}.")
        if self.shortest_edge < 32 or self.longest_edge < self.shortest_edge:
            raise InputError(f"Resize sizes must satisfy 32 <= shortest_edge <= longest_edge "
                             f"(got {self.shortest_edge}, {self.longest_edge}).")


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
        return replace(self, boxes=self.boxes[keep], scores=self.scores[keep], label_ids=self.label_ids[keep],
                       labels=tuple(l for l, k in zip(self.labels, keep) if k), threshold=threshold,
                       query_ids=self.query_ids[keep] if len(self.query_ids) else self.query_ids)

    def to_json(self) -> list[dict]:
        return [{"label": l, "label_id": int(i), "score": round(float(s), 4),
                 "box": [round(float(v), 1) for v in b]}
                for l, i, s, b in zip(self.labels, self.label_ids, self.scores, self.boxes)]




# ------------------------------------------------------------------------------ image classification

@dataclass(frozen=True)
class ClassificationOptions:
    top_k: int = 5  # how many labels to return, best first
    internals: bool = False  # also return what the model looked at (ViT attention, ConvNeXT class map)

    def check(self) -> None:
        from ..errors import InputError
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise InputError(f"top-k must be a whole number of at least 1, got {self.top_k!r}.")


@dataclass(frozen=True)
class ClassificationInternals:
    """Where the classifier looked, as maps over its patch grid / last feature map (rows, cols).

    ViT: ``maps`` holds "rollout" (attention rollout of the [CLS] token through all layers),
    "mean" (the last layer's [CLS] attention averaged over heads) and "head 1".."head H" (each
    head of the last layer). ConvNeXT: "class map" (the head applied at every position of the
    last feature map, for the top class). Each map is float32, normalised to sum to 1 except the
    class map, which holds the logits."""

    kind: str  # "attention" (ViT) or "class-map" (ConvNeXT)
    maps: dict[str, np.ndarray]  # name -> (rows, cols) float32
    grid: tuple[int, int]  # (rows, cols) of the patch grid / feature map
    input_size: tuple[int, int]  # (height, width) the model saw, after resize / crop
    crop_box: tuple[float, float, float, float]  # (x0, y0, x1, y1) of that input in the original image, pixels


@dataclass(frozen=True)
class ClassificationResult:
    """The top-k labels of one image, best first, with softmax probabilities."""

    labels: tuple[str, ...]
    label_ids: np.ndarray  # (k,) int64
    scores: np.ndarray  # (k,) float32
    image_size: tuple[int, int]  # (height, width) of the input image
    timings: Timings = Timings()
    internals: ClassificationInternals | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def to_json(self) -> list[dict]:
        return [{"label": l, "label_id": int(i), "score": round(float(s), 6)}
                for l, i, s in zip(self.labels, self.label_ids, self.scores)]
