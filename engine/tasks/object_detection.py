"""Object detection with DETR: RGB frame -> boxes, labels, scores (and what the queries looked at).

    preprocess   engine.processors.image, as DetrImageProcessor: resize (shortest edge, capped
                 longest edge) with Pillow's exact bilinear arithmetic, ImageNet mean/std, and for
                 batches bottom-right zero padding with a pixel mask
    model        engine.models.detr: backbone -> encoder -> decoder with object queries -> heads
    postprocess  softmax, drop "no object", keep score > threshold, boxes to pixels of the
                 ORIGINAL image (as post_process_object_detection), best first

Batches (:meth:`ObjectDetection.run_batch`): each image is resized on its own, then all are padded
bottom-right with zeros to the largest height and width, with a pixel mask, as DetrImageProcessor
does. Boxes are NOT corrected for the padding: the model (masked positions and attention) predicts
them relative to each image's real extent, and transformers' post_process_object_detection simply
multiplies them by each image's original size; we do the same (checked against it in the tests).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..errors import InputError
from ..hub import read_json
from ..io.image import to_rgb
from ..lazy import lazy
from ..types.vision import DetectionInternals, DetectionOptions, DetectionResult
from .base import Progress, StageClock, Task, expect_architecture

if TYPE_CHECKING:
    from ..device import Placement

torch = lazy("torch")
detr = lazy("engine.models.detr")
image_processing = lazy("engine.processors.image")

log = logging.getLogger(__name__)

#: the largest shortest edge the CLI accepts (the checkpoints use 800; 2000 is ~6x the pixels)
MAX_SHORTEST_EDGE = 2000
#: activation memory of a DETR forward pass per input pixel, float32 (see ObjectDetection._check_memory)
BYTES_PER_PIXEL = 320

def resize_output_size(height: int, width: int, shortest_edge: int, longest_edge: int | None) -> tuple[int, int]:
    """(new_h, new_w): the short side becomes ``shortest_edge`` unless the long side would then
    exceed ``longest_edge``; rounding exactly as transformers' DetrImageProcessor does (the rule
    lives in :func:`engine.processors.image.shortest_longest_size`)."""
    return image_processing.shortest_longest_size(height, width, shortest_edge, longest_edge)


def checkpoint_resize(pre: dict) -> tuple[int, int] | None:
    """(shortest_edge, longest_edge) from preprocessor_config.json, in either of its layouts: the
    hub's DETR repos have the legacy ``"size": 800, "max_size": 1333``; newer files write
    ``"size": {"shortest_edge": 800, "longest_edge": 1333}``. None when it names neither."""
    if not pre or pre.get("size") is None:
        return None
    size = image_processing.ImageProcessorConfig.from_hf(pre, default_type="DetrImageProcessor").size or {}
    if "shortest_edge" not in size:
        return None
    return int(size["shortest_edge"]), int(size.get("longest_edge") or pre.get("max_size") or 1333)


class ObjectDetection(Task):
    name = "object-detection"
    title = "Object detection"
    domain = "vision"
    summary = ("Detect objects in images with DETR. Several images run as one batch (padded to a common "
               "size, with a pixel mask).")
    options_type = DetectionOptions
    result_type = DetectionResult
    models = (
        ModelEntry("facebook/detr-resnet-50", 167, "apache-2.0", "DETR, ResNet-50 backbone, COCO 91 ids"),
        ModelEntry("facebook/detr-resnet-101", 243, "apache-2.0", "DETR, ResNet-101 backbone, more accurate"),
    )
    command = "detect"
    command_help = "detect objects in images (DETR)"
    bench = "benchmarks.detection"

    @classmethod
    def add_arguments(cls, parser) -> None:
        from ..cliargs import bounded_int, fraction, input_file
        parser.add_argument("image", type=input_file, nargs="+", metavar="IMAGE")
        parser.add_argument("--threshold", type=fraction, default=0.7, help="minimum score (default 0.7)")
        parser.add_argument("--size", type=bounded_int(32, MAX_SHORTEST_EDGE), default=800,
                            help=f"shortest image edge fed to the model, 32..{MAX_SHORTEST_EDGE} (default 800)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    @classmethod
    def cli_inputs(cls, args) -> list[tuple[str, Any]]:
        from .image_classification import _read_images
        return _read_images(args.image)

    @classmethod
    def cli_options(cls, args) -> DetectionOptions:
        return DetectionOptions(threshold=args.threshold, shortest_edge=args.size,
                                longest_edge=max(args.size, 1333))

    def cli_results(self, inputs: list[Any], options: DetectionOptions, args) -> list[Any]:
        # several images: one padded batch, each result timed with an even share of the batch
        return self.run_batch(inputs, options) if len(inputs) > 1 else [self(inputs[0], options)]

    @classmethod
    def cli_print(cls, name: str, result: DetectionResult, args) -> str:
        lines = [f"{len(result)} objects in {name} ({result.image_size[1]}x{result.image_size[0]}), "
                 f"threshold {result.threshold}, {result.timings.total_ms:.0f} ms"]
        for d in result.to_json():
            x0, y0, x1, y1 = d["box"]
            lines.append(f"  {d['label']:<20} {d['score']:.3f}  box ({x0:.0f}, {y0:.0f}) – ({x1:.0f}, {y1:.0f})")
        return "\n".join(lines)

    @classmethod
    def cli_json(cls, name: str, result: DetectionResult, task) -> dict:
        return {"image": name, "model": task.model_ref, "size": list(result.image_size),
                "detections": result.to_json(), "timings_ms": result.timings}

    def __init__(self, model_ref: str, folder: Path, placement: Placement, model: detr.DetrForObjectDetection,
                 processor) -> None:
        super().__init__(model_ref, folder, placement)
        self.model = model
        self.processor = processor
        self.id2label = model.config.id2label
        self.channels_last = placement.device.type in ("cpu", "cuda")  # as detr.from_checkpoint placed it
        self.input_dtype = model.input_dtype  # the pixels' dtype: float32 under the fast plan (detr.FAST_PLAN)
        self.precision_notice: str | None = None  # why 'fast' was asked for and 'exact' runs, if it was
        self.default_options = DetectionOptions()

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> ObjectDetection:
        expect_architecture(folder, model_ref, cls.name, ("detr",), ("ForObjectDetection",))
        pre = read_json(folder, "preprocessor_config.json", required=False)
        # DetrImageProcessor's steps as the file says; batches are always padded (with a mask) and
        # the resize comes from DetectionOptions (the checkpoint's by default, see below)
        processing = image_processing.ImageProcessorConfig.from_hf(pre, default_type="DetrImageProcessor")
        processing = dataclasses.replace(processing, do_resize=True, do_pad=True)
        # 'fast' keeps the answers only in float16 (GPUs): elsewhere DETR runs exact, with a notice
        placement, notice = detr.fast_placement(placement)
        model = detr.from_checkpoint(folder, placement)
        log.info("Loaded DETR %s (%d queries, %d labels) on %s", model_ref, model.config.num_queries,
                 model.config.num_labels, placement.describe())
        task = cls(model_ref, folder, placement, model, image_processing.ImageProcessor.from_config(processing))
        task.precision_notice = notice
        resize = checkpoint_resize(pre)
        if resize is not None:  # the checkpoint's own resize, used when no options are given
            task.default_options = DetectionOptions(shortest_edge=resize[0], longest_edge=resize[1])
        return task

    # ------------------------------------------------------------------ stages

    def preprocess(self, image: np.ndarray, options: DetectionOptions) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (1, 3, h, w) normalised pixels on the device, model dtype."""
        return self.preprocess_batch([image], options)[0]

    def preprocess_batch(self, images: list[np.ndarray],
                         options: DetectionOptions) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(H_i, W_i, 3) uint8 RGB frames -> (B, 3, H, W) normalised pixels and the (B, H, W) int64
        pixel mask (1 = real pixel, 0 = padding), or None when no image needed padding.

        As DetrImageProcessor (engine.processors.image gives its values exactly): each frame resized
        on its own (shortest / longest edge from the options), rescaled, normalised, then padded
        bottom-right with zeros to the batch's largest height and width."""
        size = {"shortest_edge": int(options.shortest_edge), "longest_edge": int(options.longest_edge)}
        return self.processor(images, self.placement.device, self.input_dtype, channels_last=self.channels_last,
                         size_override=size)  # (B, 3, H, W), (B, H, W) or None

    def _check_memory(self, frames: list[np.ndarray], options: DetectionOptions) -> None:
        """Refuse a batch whose activations would not fit, before allocating any of it. The backbone's
        stride-4 stage dominates. Measured on DETR-R50 (AMD EPYC, float32): the resident peak grew by
        ~110 bytes per input pixel at 1500x2000 beyond the loading peak; 320 leaves room for what that
        hides and for the allocator."""
        from ..device import check_fits
        sizes = [self.processor.output_size(*f.shape[:2], size_override={
            "shortest_edge": options.shortest_edge, "longest_edge": options.longest_edge}) for f in frames]
        padded = len(frames) * max(h for h, _ in sizes) * max(w for _, w in sizes)
        per_pixel = BYTES_PER_PIXEL * torch.finfo(self.placement.dtype).bits / 32
        check_fits(padded * per_pixel, self.placement.device, f"Detecting objects in {len(frames)} image(s) at "
                   f"shortest edge {options.shortest_edge}", "use a smaller size or fewer images at once.")

    def postprocess(self, out: detr.DetrOutput, image_size: tuple[int, int], options: DetectionOptions,
                    index: int = 0):
        """Raw set prediction of batch item ``index`` -> arrays of the kept detections, best first
        (all fp32, on the CPU); ``image_size`` is that image's ORIGINAL (height, width)."""
        # one transfer to the CPU (tiny: Q x (L+1) and Q x 4); thresholding and sorting there
        probs = out.logits[index].float().cpu().softmax(-1)  # (Q, L+1)
        scores, labels = probs[:, :-1].max(-1)  # (Q,), (Q,) - the last class is "no object"
        cx, cy, bw, bh = out.boxes[index].float().cpu().unbind(-1)  # (Q,) each, relative to the real image
        h, w = image_size
        boxes = torch.stack([(cx - 0.5 * bw) * w, (cy - 0.5 * bh) * h,
                             (cx + 0.5 * bw) * w, (cy + 0.5 * bh) * h], dim=-1)  # (Q, 4) x0, y0, x1, y1
        keep = torch.nonzero(scores > options.threshold).flatten()
        order = keep[torch.argsort(scores[keep], descending=True, stable=True)]
        internals = None
        if options.internals and out.cross_attention is not None:
            attn = out.cross_attention[index].float()  # (Q, h, w)
            if out.feature_mask is not None:  # padded: keep the image's own cells (the rest get 0)
                real = out.feature_mask[index]  # (h, w), a top-left rectangle
                attn = attn[:, : int(real[:, 0].sum()), : int(real[0, :].sum())]  # (Q, h_i, w_i)
            internals = DetectionInternals(
                cross_attention=attn.cpu().numpy(),
                feature_size=(int(attn.shape[1]), int(attn.shape[2])), query_scores=scores.numpy())
        return (boxes[order].numpy().astype(np.float32), scores[order].numpy().astype(np.float32),
                labels[order].numpy().astype(np.int64), order.numpy().astype(np.int64), internals)

    def run(self, inputs: np.ndarray, options: DetectionOptions | None = None, *, cancel: CancelToken | None = None,
            progress: Progress | None = None) -> DetectionResult:
        """Detect objects in one (H, W, 3) uint8 RGB frame (grayscale / RGBA are converted)."""
        if not isinstance(inputs, np.ndarray):
            raise InputError(f"An image must be a numpy array, not {type(inputs).__name__}.")
        result = self.run_batch([inputs], options, cancel)[0]  # one frame: no padding, no mask
        if progress is not None:
            progress(1.0, None)
        return result

    def run_batch(self, images: list[np.ndarray], options: DetectionOptions | None = None,
                  cancel: CancelToken | None = None) -> list[DetectionResult]:
        """Detect objects in several RGB frames of any sizes with ONE forward pass -> one result
        per frame, in order, each with boxes in pixels of its own original frame.

        Frames are padded to a common size with a pixel mask (:meth:`preprocess_batch`); the
        model ignores the padding. Timings: the batch's time of each stage split evenly over the
        frames, so the results' ``total_ms`` add up to the batch's. One frame gives what
        :meth:`run` gives.
        """
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise InputError("run_batch takes a list of images (or a (B, H, W, 3) array); use run() for one.")
        options = self._options(self.default_options if options is None else options)
        frames = [to_rgb(image) for image in images]
        if not frames:
            return []
        self._check_memory(frames, options)
        clock = StageClock(self._sync())
        with torch.inference_mode():
            with clock.stage("preprocess"):
                pixels, mask = self.preprocess_batch(frames, options)  # (B, 3, H, W), (B, H, W) or None
            check(cancel)
            with clock.stage("model"):
                out = self.model(pixels, pixel_mask=mask, want_attention=options.internals)
            check(cancel)
            with clock.stage("postprocess"):
                kept = [self.postprocess(out, frame.shape[:2], options, index=i) for i, frame in enumerate(frames)]
        n = len(frames)
        total = clock.timings()
        share = total.split(n)
        results = []
        for frame, (boxes, scores, label_ids, query_ids, internals) in zip(frames, kept):
            labels = tuple(self.id2label.get(int(i), str(int(i))) for i in label_ids)
            results.append(DetectionResult(boxes, scores, label_ids, labels, (int(frame.shape[0]), int(frame.shape[1])),
                                           float(options.threshold), query_ids, share, internals))
        return results
