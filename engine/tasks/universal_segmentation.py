"""Universal segmentation with Mask2Former: panoptic, instance or semantic, one model family.

    task = load_task("universal-segmentation")        # facebook/mask2former-swin-tiny-coco-panoptic
    result = task(frame_rgb, UniversalSegmentationOptions(mode="panoptic"))
    result.segment_map, result.segments                # (H, W) ids; id, label, score, area, is_thing

    preprocess   as the checkpoint's preprocessor_config.json says (engine.processors.image,
                 Pillow-exact): the short side to 384 (COCO) or 512 (ADE), sides rounded up to
                 multiples of 32, ImageNet mean/std
    model        engine.models.mask2former: Swin backbone -> pixel decoder (multi-scale deformable
                 attention) -> Transformer decoder with masked attention -> per object query class
                 logits and mask logits at 1/4 of the input
    postprocess  identical to transformers' Mask2FormerImageProcessor post_process_panoptic_segmentation /
                 post_process_instance_segmentation / post_process_semantic_segmentation with
                 target_sizes=[(H, W)]: the same thresholds, overlap rule and label fusion (the
                 mask logits first resized to 384x384, as there), the per-query loops vectorised;
                 panoptic: only the kept queries resized, a few at a time, bit for bit the values
                 transformers compares (scaled_masks), with a running first-maximum argmax
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..errors import InputError
from ..lazy import lazy
from ..types.vision import (UNIVERSAL_MODES, Segment, UniversalInternals, UniversalSegmentationOptions,
                            UniversalSegmentationResult)
from .base import Progress, StageClock, Task, expect_architecture

if TYPE_CHECKING:
    from ..device import Placement

torch = lazy("torch")
F = lazy("torch.nn.functional")

log = logging.getLogger(__name__)

#: transformers' post-processing resizes every query's mask logits to this first
POST_SIZE = (384, 384)
#: COCO panoptic's 133 classes: the first 80 are things, the rest stuff
COCO_PANOPTIC_THINGS = 80


def _m2f(variant: str, dataset: str, mb: int, note: str) -> ModelEntry:
    return ModelEntry(f"facebook/mask2former-swin-{variant}-{dataset}", mb, "other", note)


class UniversalSegmentation(Task):
    name = "universal-segmentation"
    title = "Universal segmentation"
    domain = "vision"
    summary = ("Panoptic, instance and semantic segmentation with Mask2Former (Swin backbone): learned object "
               "queries each predict a mask and a class.")
    options_type = UniversalSegmentationOptions
    result_type = UniversalSegmentationResult
    models = (
        _m2f("tiny", "coco-panoptic", 190, "Swin-T, COCO panoptic (133 classes); fastest"),
        _m2f("small", "coco-panoptic", 275, "Swin-S, COCO panoptic"),
        _m2f("base-IN21k", "coco-panoptic", 430, "Swin-B (ImageNet-21k), COCO panoptic"),
        _m2f("tiny", "coco-instance", 190, "Swin-T, COCO instances (80 classes)"),
        _m2f("small", "coco-instance", 275, "Swin-S, COCO instances"),
        _m2f("tiny", "ade-semantic", 190, "Swin-T, ADE20K semantic (150 classes)"),
        _m2f("small", "ade-semantic", 275, "Swin-S, ADE20K semantic"),
        _m2f("base-IN21k", "ade-semantic", 430, "Swin-B (ImageNet-21k), ADE20K semantic"),
    )
    # no command of its own: `segment --model <a Mask2Former> --mode ...` runs it (SemanticSegmentation.cli_task)
    bench = "benchmarks.universal_segmentation"
    bench_models = "Mask2Former"

    def __init__(self, model_ref: str, folder: Path, placement: Placement, model, processor) -> None:
        super().__init__(model_ref, folder, placement)
        self.model = model
        self.processor = processor
        config = model.config
        self.num_labels = int(config.num_labels)
        self.class_names = tuple(config.id2label.get(i, f"LABEL_{i}") for i in range(self.num_labels))
        from ..io.colormap import label_colors
        self.colors = label_colors(self.num_labels)
        #: the mode the checkpoint was trained for, from its name (panoptic when it does not say)
        self.suggested_mode = trained_mode(model_ref)

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> UniversalSegmentation:
        from ..device import unmeasured
        from ..models import mask2former
        from ..processors.image import ImageProcessor
        expect_architecture(folder, model_ref, cls.name, ("mask2former",), ("ForUniversalSegmentation",))
        placement, notice = unmeasured(placement, "Mask2Former")  # 'fast' runs exact, and says so
        model = mask2former.from_checkpoint(folder, placement)
        processor = ImageProcessor.from_folder(folder, "Mask2FormerImageProcessor")
        task = cls(model_ref, folder, placement, model, processor)
        task.precision_notice = notice
        return task

    # ------------------------------------------------------------------ run

    def is_thing(self, label_id: int, mode: str) -> bool | None:
        if mode == "instance":
            return True
        if mode == "panoptic" and self.num_labels == 133 and self.class_names[0] == "person":
            return label_id < COCO_PANOPTIC_THINGS
        return None

    def run(self, inputs: np.ndarray, options: UniversalSegmentationOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> UniversalSegmentationResult:
        """One (H, W, 3) uint8 RGB image (grayscale / RGBA converted) -> its segments at its size."""
        from ..io.image import to_rgb
        opts = self._options(options)
        image = to_rgb(inputs)
        size = (int(image.shape[0]), int(image.shape[1]))
        clock = StageClock(self._sync())
        with torch.inference_mode():
            with clock.stage("preprocess"):
                pixels, _ = self.processor([image], self.placement.device, self.placement.dtype)  # (1, 3, h, w)
            check(cancel)
            with clock.stage("model"):
                out = self.model(pixels, want_masks=opts.internals)
            check(cancel)
            with clock.stage("postprocess"):
                class_logits, mask_logits = out.class_logits[0], out.mask_logits[0]  # (Q, L+1), (Q, h/4, w/4)
                if opts.mode == "panoptic":
                    segment_map, segs = panoptic(class_logits, mask_logits, size, opts)
                elif opts.mode == "instance":
                    segment_map, segs = instance(class_logits, mask_logits, size, opts)
                else:
                    segment_map, segs = semantic(class_logits, mask_logits, size)
                areas = np.bincount((segment_map.ravel() + 1).astype(np.int64),
                                    minlength=int(segment_map.max()) + 2 if segment_map.size else 1)
                seen: set[int] = set()  # a fused label's later queries repeat its id: one segment per id
                segments = tuple(Segment(sid, lab, self.class_names[lab], score,
                                         int(areas[sid + 1]) if sid + 1 < len(areas) else 0,
                                         self.is_thing(lab, opts.mode), fused)
                                 for sid, lab, score, fused in segs if not (sid in seen or seen.add(sid)))
                internals = None
                if opts.internals:
                    h, w = int(pixels.shape[2]), int(pixels.shape[3])
                    internals = UniversalInternals(
                        mask_logits=mask_logits.float().cpu().numpy(),
                        class_scores=class_logits.float().softmax(-1).cpu().numpy(),
                        attention_masks=tuple(m[0].cpu().numpy() for m in out.attention_masks),
                        input_size=(h, w), valid_size=(h, w))
        if progress is not None:
            progress(1.0, None)
        return UniversalSegmentationResult(opts.mode, segment_map, segments, self.class_names, self.colors, size,
                                           segment_map if opts.mode == "semantic" else None, clock.timings(),
                                           internals)

    # ------------------------------------------------------------------ CLI

    @classmethod
    def cli_options(cls, args) -> UniversalSegmentationOptions:
        """``segment``'s arguments (add_mask2former_arguments; None = transformers' default)."""
        d = UniversalSegmentationOptions()
        fuse = None
        if args.fuse:
            try:
                fuse = tuple(int(v) for v in args.fuse.split(",") if v.strip())
            except ValueError:
                raise InputError(f"--fuse takes comma-separated label ids, got {args.fuse!r}.") from None
        opts = UniversalSegmentationOptions(
            mode=args.mode or trained_mode(args.model or ""),
            threshold=d.threshold if args.threshold is None else args.threshold,
            mask_threshold=d.mask_threshold if args.mask_threshold is None else args.mask_threshold,
            overlap_mask_area_threshold=d.overlap_mask_area_threshold if args.overlap is None else args.overlap,
            label_ids_to_fuse=fuse)
        opts.check()
        return opts

    @classmethod
    def cli_inputs(cls, args) -> list[tuple[str, Any]]:
        from ..io.dense import LABEL_SUFFIXES
        from .semantic_segmentation import plan_outputs, read_images
        from ..io.dense import PICTURE_SUFFIXES
        args.dense_outputs = plan_outputs(args.image, {"out": (args.out, LABEL_SUFFIXES, "--out"),
                                                       "overlay": (args.overlay, PICTURE_SUFFIXES, "--overlay"),
                                                       "masks": (args.masks, (".npz",), "--masks")})
        return read_images(args)

    def cli_results(self, inputs: list[Any], options: UniversalSegmentationOptions, args) -> list[Any]:
        out: list[Any] = []
        for image, targets in zip(inputs, args.dense_good_outputs):
            try:
                result = self(image, options)
                for path in write_outputs(result, targets, image):
                    print(f"Wrote {path}", file=sys.stderr)
                out.append(result)
            except InputError as exc:
                out.append(exc)
        return out

    @classmethod
    def cli_print(cls, name: str, result: UniversalSegmentationResult, args) -> str:
        h, w = result.image_size
        total = max(1, h * w)
        lines = [f"{name} ({w}x{h}), {result.mode}: {len(result)} segments, {result.timings.total_ms:.0f} ms"]
        for s in result.segments:
            kind = {True: "thing", False: "stuff", None: ""}[s.is_thing]
            lines.append(f"  #{s.id:<3} {s.score:.3f}  {100.0 * s.area / total:5.1f}%  {s.label} {kind}".rstrip())
        return "\n".join(lines)

    @classmethod
    def cli_json(cls, name: str, result: UniversalSegmentationResult, task) -> dict:
        return {"file": name, "model": task.model_ref, "mode": result.mode,
                "size": [result.image_size[1], result.image_size[0]], **result.to_json(),
                "timings_ms": result.timings}


def trained_mode(model_ref: str) -> str:
    """The mode a Mask2Former checkpoint was trained for, from its name (panoptic when it does not say)."""
    ref = str(model_ref).lower()
    return next((m for m in UNIVERSAL_MODES if m in ref), "panoptic")


def model_for_mode(mode: str) -> str:
    """The catalog's first (smallest) checkpoint trained for ``mode``."""
    return next(e.id for e in UniversalSegmentation.models if trained_mode(e.id) == mode)


def add_mask2former_arguments(parser) -> None:
    """The options only Mask2Former takes, for ``segment`` (None: transformers' default)."""
    g = parser.add_argument_group("Mask2Former (a --model of that family, or --mode)")
    d = UniversalSegmentationOptions()
    g.add_argument("--mode", choices=UNIVERSAL_MODES, default=None, help=(
        "panoptic (things and stuff, each instance its own segment), instance (things only) or semantic (one "
        "segment per class); default: the mode the checkpoint was trained for. Without --model: "
        f"{model_for_mode('panoptic')} and its instance / ADE semantic siblings"))
    g.add_argument("--threshold", type=float, default=None, help=f"a query's score must pass this (default {d.threshold})")
    g.add_argument("--mask-threshold", type=float, default=None, help=f"default {d.mask_threshold}")
    g.add_argument("--overlap", type=float, default=None,
                   help=f"panoptic: visible / whole mask area a segment must keep (default {d.overlap_mask_area_threshold})")
    g.add_argument("--fuse", metavar="IDS", help="panoptic: label ids (comma-separated) whose segments merge")
    g.add_argument("--masks", metavar="FILE", help="write one boolean mask per segment, keyed by id (.npz)")


#: what add_mask2former_arguments adds, as args attribute -> option (refused for SegFormer)
MASK2FORMER_ONLY = {"threshold": "--threshold", "mask_threshold": "--mask-threshold", "overlap": "--overlap",
                    "fuse": "--fuse", "masks": "--masks"}


def overlay_segments(image: np.ndarray, result: UniversalSegmentationResult, alpha: float = 0.5) -> np.ndarray:
    """Each segment's colour (result.segment_colors) blended over the image; pixels of no segment unchanged."""
    from ..io import dense as dense_io
    index = np.zeros(result.segment_map.shape, np.int32)  # 0: no segment, i + 1: the i-th segment
    for i, s in enumerate(result.segments):
        index[result.segment_map == s.id] = i + 1
    palette = np.concatenate([np.zeros((1, 3), np.uint8), result.segment_colors()])
    out = dense_io.overlay(image, index, palette, alpha)
    none = index == 0
    out[none] = image[..., :3][none]
    return out


def write_outputs(result: UniversalSegmentationResult, targets: dict, image: np.ndarray | None = None) -> list[Path]:
    from ..io import dense as dense_io
    written = []
    if targets.get("out"):
        path = Path(targets["out"])
        if path.suffix.lower() == ".npy":
            written.append(dense_io.write_labels(path, result.segment_map.astype(np.int32)))
        else:
            shifted = result.segment_map if result.mode == "semantic" else result.segment_map + 1
            written.append(dense_io.write_labels(path, np.clip(shifted, 0, 65535).astype(np.uint16)))
    if targets.get("masks"):
        import io
        buf = io.BytesIO()
        np.savez_compressed(buf, **{str(s.id): result.mask(s.id) for s in result.segments})
        path = Path(targets["masks"])
        try:
            path.write_bytes(buf.getvalue())
        except OSError as exc:
            raise InputError(f"Cannot write {path}: {exc.strerror or exc}.") from None
        written.append(path)
    if targets.get("overlay") and image is not None:
        written.append(dense_io.write_picture(targets["overlay"], overlay_segments(image, result)))
    return written


# ----------------------------------------------------------------------------- the three post-processings

def _resized(mask_logits, size):
    """(Q, h, w) -> (Q, *size) bilinear, as transformers' post-processing resizes."""
    return F.interpolate(mask_logits[None].float(), size=size, mode="bilinear", align_corners=False)[0]


#: queries resized together in the panoptic post-processing (a few MB per chunk instead of the whole
#: (K, H, W) stack, which at 640x480 is 120 MB per pass)
CHUNK = 8


def _chunks(k: int) -> list[tuple[int, int]]:
    """[start, end) ranges over k queries, each of CHUNK queries or of 4 to CHUNK + 3 (a remainder
    under 4 joins the range before it): torch's CPU bilinear resize of 3 channels (at 1 thread)
    takes another code path, whose results differ in the last bit from those of the same channels
    resized with others, so a range of 1-3 queries is used only when k itself is that small (when
    transformers' call on the k queries takes the same path)."""
    if k <= CHUNK + 3:
        return [(0, k)]
    starts = list(range(0, k, CHUNK))
    if k - starts[-1] < 4:
        starts.pop()
    return [(s, e) for s, e in zip(starts, starts[1:] + [k])]


def scaled_masks(mask_logits, kept, scores, size: tuple[int, int]):
    """The kept queries' mask probabilities at ``size`` times their scores, as transformers' panoptic
    post-processing computes them (all Q masks resized to 384x384, sigmoid, the kept ones resized to
    the target size, times the scores), bit for bit, a few queries at a time: yields (start, (c, H, W))
    for the kept queries start .. start + c. mask_logits (Q, h, w), kept (K,) their indices, scores (K,)."""
    logits = mask_logits.float()
    k = kept.numel()
    for start, end in _chunks(k):
        rows, pick = kept[start:end], slice(0, end - start)
        if end - start < 4:  # all of k < 4 kept queries; theirs resizes all Q to 384x384: as many channels
            q = logits.shape[0]
            rows, pick = (torch.arange(q), kept) if q < 4 else (torch.cat([rows, torch.arange(4)])[:4], pick)
        probs = _resized(logits[rows.to(logits.device)], POST_SIZE).sigmoid_()[pick]  # (c, 384, 384)
        yield start, _resized(probs, size).mul_(scores[start:end].view(-1, 1, 1))  # (c, H, W)


def panoptic(class_logits, mask_logits, size: tuple[int, int], opts: UniversalSegmentationOptions):
    """transformers' post_process_panoptic_segmentation for one image -> (segment map (H, W) int32,
    [(id, label_id, score, was_fused)]).

    Bit for bit the same arithmetic, reordered: only the kept queries' masks are resized (theirs
    resizes all, then keeps; resizing is per channel) and they go through both resizes, the score
    product, the mask-threshold count and the per-pixel argmax (first maximum wins, as
    torch.argmax) a few queries at a time (:func:`scaled_masks`)."""
    num_labels = class_logits.shape[-1] - 1
    scores, labels = class_logits.float().softmax(-1).max(-1)  # (Q,)
    keep = labels.ne(num_labels) & (scores > opts.threshold)
    if not bool(keep.any()):
        return np.full(size, -1, np.int32), []
    scores, labels = scores[keep], labels[keep]
    kept = torch.nonzero(keep).flatten()
    k = kept.numel()
    dev = mask_logits.device
    original = torch.empty(k, dtype=torch.int32, device=dev)  # (K,) pixels of each query's own mask
    best = owner = None  # (H, W): the highest score so far, and the query it belongs to
    for start, probs in scaled_masks(mask_logits, kept, scores, size):
        c = probs.shape[0]
        original[start:start + c] = (probs >= opts.mask_threshold).view(c, -1).sum(1, dtype=torch.int32)
        top = probs.amax(0)  # (H, W)
        # the first query reaching it, as torch.argmax picks: the highest of c - j where query j does
        rank = torch.arange(c, 0, -1, dtype=torch.uint8, device=dev).view(-1, 1, 1)
        arg = (start + c) - (probs == top).to(torch.uint8).mul_(rank).amax(0).to(torch.int32)  # (H, W)
        if best is None:
            best, owner = top, arg
        else:
            better = top > best  # an earlier chunk keeps a tie
            best = torch.maximum(best, top)
            owner = torch.where(better, arg, owner)
    area = torch.bincount(owner.flatten(), minlength=k)  # (K,) pixels each query won
    ratio = area / original.clamp(min=1)
    exists = ((area > 0) & (original > 0) & (ratio > opts.overlap_mask_area_threshold)).tolist()
    fuse = set(opts.label_ids_to_fuse or ())
    ids = [0] * k
    segments, stuff, current = [], {}, 0
    labels_l, scores_l = labels.tolist(), scores.tolist()
    for q in range(k):
        if not exists[q]:
            continue
        lab = labels_l[q]
        if lab in stuff:
            current = stuff[lab]  # (as transformers: the running id jumps back to the fused one)
        else:
            current += 1
        ids[q] = current
        segments.append((current, lab, round(scores_l[q], 6), lab in fuse))
        if lab in fuse:
            stuff[lab] = current
    lut = torch.tensor(ids, dtype=torch.int32, device=owner.device)
    return lut[owner].cpu().numpy(), segments


def instance(class_logits, mask_logits, size: tuple[int, int], opts: UniversalSegmentationOptions):
    """transformers' post_process_instance_segmentation for one image -> (segment map (H, W) int32, ids
    from 0, -1 background; [(id, label_id, score, False)])."""
    masks = _resized(mask_logits, POST_SIZE)  # (Q, 384, 384)
    q, c1 = class_logits.shape
    c = c1 - 1
    scores = class_logits.float().softmax(-1)[:, :-1]  # (Q, C)
    labels = torch.arange(c, device=scores.device).unsqueeze(0).repeat(q, 1).flatten(0, 1)
    top, index = scores.flatten(0, 1).topk(q, sorted=False)  # the Q best (query, class) pairs
    labels = labels[index]
    masks = masks[torch.div(index, c, rounding_mode="floor")]
    binary = (masks > 0).float()
    mask_scores = (masks.sigmoid().flatten(1) * binary.flatten(1)).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    final = top * mask_scores  # (Q,)
    passing = [j for j, s in enumerate(final.tolist()) if s >= opts.threshold]
    segment_map = torch.full(size, -1, dtype=torch.int32)
    segments: list[tuple] = []
    if passing:
        sel = torch.tensor(passing, device=masks.device)
        resized = F.interpolate(binary[sel][None], size=size, mode="nearest")[0] > 0.5  # (K, H, W)
        nonempty = resized.flatten(1).any(1).tolist()
        kept = [i for i, ok in enumerate(nonempty) if ok]
        if kept:
            stack = resized[kept]  # (K', H, W), painted in order: a later instance wins a pixel
            rank = torch.arange(1, len(kept) + 1, dtype=torch.int32, device=stack.device)
            segment_map = ((stack.to(torch.int32) * rank.view(-1, 1, 1)).amax(0) - 1).cpu()
            labels_l, final_l = labels.tolist(), final.tolist()
            segments = [(n, labels_l[passing[i]], round(final_l[passing[i]], 6), False) for n, i in enumerate(kept)]
    return segment_map.numpy(), segments


def semantic(class_logits, mask_logits, size: tuple[int, int]):
    """transformers' post_process_semantic_segmentation for one image -> (label map (H, W) int32,
    [(label_id, label_id, mean class score over its pixels, False)] per label present, most pixels first)."""
    probs = _resized(mask_logits, POST_SIZE).sigmoid()  # (Q, 384, 384)
    classes = class_logits.float().softmax(-1)[:, :-1]  # (Q, C)
    seg = torch.einsum("qc,qhw->chw", classes, probs)  # (C, 384, 384)
    seg = F.interpolate(seg[None], size=size, mode="bilinear", align_corners=False)[0]  # (C, H, W)
    label_map = seg.argmax(0)  # (H, W)
    best = seg.gather(0, label_map[None])[0]  # (H, W)
    c = seg.shape[0]
    counts = torch.bincount(label_map.flatten(), minlength=c)
    sums = torch.bincount(label_map.flatten(), weights=best.flatten().double(), minlength=c)
    present = torch.nonzero(counts).flatten().tolist()
    present.sort(key=lambda i: -int(counts[i]))
    segments = [(i, i, round(float(sums[i] / counts[i]), 6), False) for i in present]
    return label_map.to(torch.int32).cpu().numpy(), segments
