"""Vision options and results: object detection, image classification, semantic segmentation,
depth estimation (torch-free)."""
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


# ------------------------------------------------------------------------------ dense predictions

@dataclass(frozen=True)
class DenseInternals:
    """Inside a SegFormer / GLPN: what the Vision tab's "inside the model" view shows.

    ``scales``: the Mix Transformer encoder's four feature maps (1/4, 1/8, 1/16, 1/32 of the input),
    each reduced to one (h_i, w_i) float32 map: the L2 norm over its channels.
    ``maps``: name -> (h, w) float32 map. SegFormer: "uncertainty" (per-pixel entropy of the class
    probabilities at the logits' resolution, in nats). GLPN: the Selective Feature Fusion
    attention maps, "fusion 1/8 local", "fusion 1/8 global", ... (each in [0, 1]).
    ``input_size``: (height, width) the model saw, after resizing."""

    scales: tuple[np.ndarray, ...]
    maps: dict[str, np.ndarray]
    input_size: tuple[int, int]


@dataclass(frozen=True)
class SegmentationOptions:
    internals: bool = False  # also return the encoder scales and the uncertainty map

    def check(self) -> None:
        pass


@dataclass(frozen=True)
class SegmentationResult:
    """A label for every pixel of the image, as transformers' post_process_semantic_segmentation
    with target_sizes gives it (logits upsampled bilinearly to the image's size, then argmax)."""

    label_map: np.ndarray  # (H, W) uint8 (<= 256 labels) or uint16: the label id of every pixel
    class_names: tuple[str, ...]  # the model's labels, by id
    colors: np.ndarray  # (num_labels, 3) uint8: a fixed colour per class (engine.io.colormap.label_colors)
    label_ids: np.ndarray  # (K,) int64: the labels present, most pixels first
    pixel_counts: np.ndarray  # (K,) int64: their pixel counts
    confidence: np.ndarray  # (h, w) float32: the top class's probability at the logits' resolution
    image_size: tuple[int, int]  # (height, width)
    timings: Timings = Timings()
    internals: DenseInternals | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The names of the labels present, most pixels first."""
        return tuple(self.class_names[int(i)] for i in self.label_ids)

    def label_at(self, x: int, y: int) -> tuple[int, float]:
        """(label id, probability) at image pixel (x, y); the probability is the nearest logit cell's."""
        h, w = self.image_size
        x, y = min(max(int(x), 0), w - 1), min(max(int(y), 0), h - 1)
        ch, cw = self.confidence.shape
        return int(self.label_map[y, x]), float(self.confidence[min(y * ch // h, ch - 1), min(x * cw // w, cw - 1)])

    def to_json(self) -> dict:
        return {"labels": [{"label_id": int(i), "label": self.class_names[int(i)], "pixels": int(n)}
                           for i, n in zip(self.label_ids, self.pixel_counts)]}


@dataclass(frozen=True)
class DepthOptions:
    internals: bool = False  # also return the encoder scales and the fusion attention maps
    #: GLPN takes the image at its own size (sides rounded down to multiples of 32), so its time and
    #: memory grow with it: an image with more pixels than this is scaled down for the model (aspect
    #: kept); the depth map still comes back at the image's size. Default: a 1080p frame fits.
    max_pixels: int = 1920 * 1088

    def check(self) -> None:
        from ..errors import InputError
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 32 * 32:
            raise InputError(f"max_pixels must be a whole number of at least {32 * 32} (32x32), "
                             f"got {self.max_pixels!r}.")


@dataclass(frozen=True)
class DepthResult:
    """Depth in metres for every pixel of the image, as transformers' post_process_depth_estimation
    with target_sizes gives it."""

    depth: np.ndarray  # (H, W) float32, metres
    max_depth: float  # the model's range (config.max_depth), metres
    image_size: tuple[int, int]  # (height, width)
    timings: Timings = Timings()
    internals: DenseInternals | None = None

    def depth_at(self, x: int, y: int) -> float:
        h, w = self.image_size
        return float(self.depth[min(max(int(y), 0), h - 1), min(max(int(x), 0), w - 1)])

    def to_json(self) -> dict:
        d = self.depth
        return {"min": round(float(d.min()), 4), "max": round(float(d.max()), 4), "mean": round(float(d.mean()), 4),
                "max_depth": float(self.max_depth), "size": [int(self.image_size[1]), int(self.image_size[0])]}


# ------------------------------------------------------------------------------ universal segmentation (Mask2Former)

UNIVERSAL_MODES = ("panoptic", "instance", "semantic")


@dataclass(frozen=True)
class UniversalSegmentationOptions:
    """The settings of transformers' Mask2FormerImageProcessor post_process_{panoptic,instance,semantic}_segmentation
    (their defaults; ``threshold`` is 0.5 in both modes in transformers 5)."""

    mode: str = "panoptic"  # panoptic | instance | semantic
    threshold: float = 0.5  # a query's score (class probability; instance: times mask score) must pass this
    mask_threshold: float = 0.5  # panoptic: a pixel belongs to a query's mask at score * sigmoid >= this
    overlap_mask_area_threshold: float = 0.8  # panoptic: visible / whole mask area a segment must keep
    label_ids_to_fuse: tuple[int, ...] | None = None  # panoptic: classes whose segments merge into one (stuff)
    internals: bool = False  # also return every query's mask, class scores and masked-attention regions

    def check(self) -> None:
        import math

        from ..errors import InputError
        if self.mode not in UNIVERSAL_MODES:
            raise InputError(f"Segmentation mode must be one of {', '.join(UNIVERSAL_MODES)}, got {self.mode!r}.")
        for name in ("threshold", "mask_threshold", "overlap_mask_area_threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or not 0.0 <= v <= 1.0:
                raise InputError(f"{name} must be a number in [0, 1], got {v!r}.")
        if self.label_ids_to_fuse is not None and not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in self.label_ids_to_fuse):
            raise InputError(f"label_ids_to_fuse must be label ids (whole numbers >= 0), got {self.label_ids_to_fuse!r}.")


@dataclass(frozen=True)
class Segment:
    id: int  # the value of its pixels in segment_map (semantic mode: its label id)
    label_id: int
    label: str
    score: float  # panoptic / instance: transformers' score (rounded to 6 digits); semantic: mean class score
    area: int  # pixels of segment_map (semantic: label_map) with this id, at the image's size
    is_thing: bool | None  # a countable object (True) or "stuff" (False); None where the checkpoint does not say
    was_fused: bool = False  # panoptic: several queries of a label in label_ids_to_fuse merged into it

    def to_json(self) -> dict:
        return {"id": self.id, "label_id": self.label_id, "label": self.label, "score": self.score,
                "area": self.area, "is_thing": self.is_thing}


@dataclass(frozen=True)
class UniversalInternals:
    """Inside Mask2Former: every object query's mask and class, and where its masked attention looked."""

    mask_logits: np.ndarray  # (Q, h, w) float32: each query's mask logits at 1/4 of the model's input
    class_scores: np.ndarray  # (Q, num_labels + 1) float32: softmax over the classes, the last "no object"
    attention_masks: tuple[np.ndarray, ...]  # per decoder layer (Q, h_l, w_l) bool: pixels its cross-attention saw
    input_size: tuple[int, int]  # (height, width) of the model's input (resized, padded)
    valid_size: tuple[int, int]  # (height, width) of the image inside that input (the rest is padding)


@dataclass(frozen=True)
class UniversalSegmentationResult:
    """Segments of the image at its size, as transformers' post_process_*_segmentation with target_sizes.

    ``segment_map`` is transformers' ``segmentation``: panoptic: ids from 1, 0 for pixels no segment
    kept (and -1 everywhere when no query passed the threshold); instance: ids from 0, -1 for
    background; semantic: the label map (as int32). A pixel belongs to a segment iff its value is
    one of ``segments``' ids."""

    mode: str
    segment_map: np.ndarray  # (H, W) int32
    segments: tuple[Segment, ...]
    class_names: tuple[str, ...]  # the model's labels, by id
    colors: np.ndarray  # (num_labels, 3) uint8: a colour per class (engine.io.colormap.label_colors)
    image_size: tuple[int, int]  # (height, width)
    label_map: np.ndarray | None = None  # semantic mode: (H, W) int32 label ids (the same array as segment_map)
    timings: Timings = Timings()
    internals: UniversalInternals | None = None

    def __len__(self) -> int:
        return len(self.segments)

    def segment_colors(self) -> np.ndarray:
        """(N, 3) uint8 per segment: its class's colour, lightened a little per further instance of a class."""
        out = np.zeros((len(self.segments), 3), np.uint8)
        seen: dict[int, int] = {}
        for i, s in enumerate(self.segments):
            k = seen.get(s.label_id, 0)
            seen[s.label_id] = k + 1
            base = self.colors[s.label_id % len(self.colors)].astype(np.float32) if len(self.colors) else np.zeros(3)
            out[i] = np.clip(base + (255 - base) * min(0.6, 0.2 * k), 0, 255).astype(np.uint8)
        return out

    def mask(self, segment_id: int) -> np.ndarray:
        """(H, W) bool: the pixels of one segment."""
        return self.segment_map == segment_id

    def segment_at(self, x: int, y: int) -> Segment | None:
        h, w = self.image_size
        v = int(self.segment_map[min(max(int(y), 0), h - 1), min(max(int(x), 0), w - 1)])
        return next((s for s in self.segments if s.id == v), None)

    def to_json(self) -> dict:
        return {"segments": [s.to_json() for s in self.segments]}
