"""Semantic segmentation with SegFormer: a class for every pixel of the image.

    task = load_task("semantic-segmentation")        # nvidia/segformer-b0-finetuned-ade-512-512
    result = task(frame_rgb)                          # result.label_map: (H, W) label ids

    preprocess   as the checkpoint's preprocessor_config.json says (engine.processors.image,
                 Pillow-exact): warp to 512x512 (ADE) or 1024x1024 (Cityscapes), ImageNet mean/std
    model        engine.models.segformer: the Mix Transformer encoder's four scales -> the all-MLP
                 decode head -> logits at 1/4 of the input
    postprocess  the label map at the IMAGE's size, identical to transformers'
                 post_process_semantic_segmentation(outputs, target_sizes=[(H, W)]) (bilinear
                 upsampling of the logits, then argmax), computed only where two classes may meet
                 (engine.processors.dense: bounded memory at any image size); the labels present
                 with their pixel counts; the top class's probability at the logits' resolution;
                 with ``internals``: the encoder's scales and the per-cell entropy ("uncertainty")
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..errors import EngineError, InputError
from ..lazy import lazy
from ..types.vision import DenseInternals, SegmentationOptions, SegmentationResult
from .base import Progress, StageClock, Task, expect_architecture

if TYPE_CHECKING:
    from ..device import Placement

torch = lazy("torch")
dense = lazy("engine.processors.dense")

log = logging.getLogger(__name__)

_NVIDIA = "other"  # NVIDIA's SegFormer licence: research / non-commercial use


def _ade(b: int, side: int, mb: int, note: str) -> ModelEntry:
    return ModelEntry(f"nvidia/segformer-b{b}-finetuned-ade-{side}-{side}", mb, _NVIDIA,
                      f"SegFormer-B{b}, ADE20K 150 classes, {side} px{note}")


def _cityscapes(b: int, mb: int) -> ModelEntry:
    return ModelEntry(f"nvidia/segformer-b{b}-finetuned-cityscapes-1024-1024", mb, _NVIDIA,
                      f"SegFormer-B{b}, Cityscapes 19 classes (street scenes), 1024 px")


class SemanticSegmentation(Task):
    name = "semantic-segmentation"
    title = "Semantic segmentation"
    domain = "vision"
    summary = ("Label every pixel of an image with SegFormer (a Mix Transformer encoder and an all-MLP "
               "decoder): ADE20K's 150 classes or Cityscapes' 19.")
    options_type = SegmentationOptions
    result_type = SegmentationResult
    models = (
        _ade(0, 512, 15, "; fastest"),
        _ade(1, 512, 55, ""),
        _ade(2, 512, 110, ""),
        _ade(3, 512, 189, ""),
        _ade(4, 512, 256, ""),
        _ade(5, 640, 339, "; most accurate"),
        *(_cityscapes(b, mb) for b, mb in ((0, 15), (1, 55), (2, 110), (3, 189), (4, 256), (5, 339))),
    )
    command = "segment"
    command_help = "label every pixel of images (SegFormer), or their panoptic / instance / semantic segments (Mask2Former)"
    cli_model_help = ("hub model id or local checkpoint folder: SegFormer (nvidia/segformer-b0 ... b5, ADE20K or "
                      "Cityscapes; default nvidia/segformer-b0-finetuned-ade-512-512) or Mask2Former "
                      "(facebook/mask2former-swin-tiny|small|base-IN21k-coco-panoptic|coco-instance|ade-semantic); "
                      "`python main.py models` lists them")
    bench = "benchmarks.semantic_segmentation"
    bench_models = "SegFormer"

    def __init__(self, model_ref: str, folder: Path, placement: Placement, model, processor) -> None:
        super().__init__(model_ref, folder, placement)
        self.model = model
        self.processor = processor
        config = model.config
        self.num_labels = int(config.num_labels)
        self.class_names = tuple(config.id2label.get(i, f"LABEL_{i}") for i in range(self.num_labels))
        from ..io.colormap import label_colors
        self.colors = label_colors(self.num_labels)

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> SemanticSegmentation:
        from ..device import unmeasured
        from ..models import segformer
        from ..processors.image import ImageProcessor
        expect_architecture(folder, model_ref, cls.name, ("segformer",), ("ForSemanticSegmentation",))
        placement, notice = unmeasured(placement, "SegFormer")  # 'fast' runs exact, and says so
        model = segformer.from_checkpoint(folder, placement)
        processor = ImageProcessor.from_folder(folder, "SegformerImageProcessor")
        log.info("Loaded SegFormer %s (%d labels) on %s", model_ref, model.config.num_labels, placement.describe())
        task = cls(model_ref, folder, placement, model, processor)
        task.precision_notice = notice
        return task

    # ------------------------------------------------------------------ run

    def run(self, inputs: np.ndarray, options: SegmentationOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> SegmentationResult:
        """One (H, W, 3) uint8 RGB image (grayscale / RGBA are converted) -> a label for every pixel."""
        from ..io.image import to_rgb
        opts = self._options(options)
        image = to_rgb(inputs)
        height, width = int(image.shape[0]), int(image.shape[1])
        clock = StageClock(self._sync())
        with torch.inference_mode():
            with clock.stage("preprocess"):
                pixels, _ = self.processor([image], self.placement.device, self.placement.dtype)  # (1, 3, h, w)
            check(cancel)
            with clock.stage("model"):
                if opts.internals:
                    logits, scales = self.model.forward_with_internals(pixels)  # (1, L, h/4, w/4), 4 maps
                else:
                    logits, scales = self.model(pixels), None
            check(cancel)
            with clock.stage("postprocess"):
                logits = logits[0].float()  # (L, h, w)
                label_map = dense.upsample_argmax(logits, (height, width))  # (H, W) as transformers' post-processing
                probs = logits.softmax(0)  # (L, h, w)
                confidence = probs.amax(0).cpu().numpy().astype(np.float32)  # (h, w)
                internals = None
                if opts.internals:
                    entropy = -(probs * logits.log_softmax(0)).sum(0)  # (h, w) nats
                    internals = DenseInternals(
                        scales=tuple(scale_norms(scales)),
                        maps={"uncertainty": entropy.cpu().numpy().astype(np.float32)},
                        input_size=(int(pixels.shape[2]), int(pixels.shape[3])))
                ids, counts = dense.label_counts(label_map, self.num_labels)
        if progress is not None:
            progress(1.0, None)
        return SegmentationResult(label_map, self.class_names, self.colors, ids, counts, confidence,
                                  (height, width), clock.timings(), internals)

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_arguments(cls, parser) -> None:
        from ..cliargs import input_file
        from .universal_segmentation import add_mask2former_arguments
        parser.add_argument("image", type=input_file, nargs="+", metavar="FILE")
        parser.add_argument("--out", metavar="FILE", help=(
            "write the label ids at the image's size: .png (8-bit, 16-bit beyond 256 labels) or .npy; Mask2Former "
            "panoptic / instance: the segment ids (.npy: int32, -1 = no segment, as transformers' 'segmentation'; "
            ".png: 16-bit, the ids + 1, 0 = no segment). With several FILEs, each gets its own: '-<its name>' is "
            "added before the suffix (labels.png -> labels-photo.png), or put {stem} where its name goes "
            "(out/{stem}.png)"))
        parser.add_argument("--overlay", metavar="FILE", help=(
            "write the image with each class's (Mask2Former: segment's) colour blended over it (.png or .jpg; "
            "several FILEs: as --out)"))
        parser.add_argument("--json", action="store_true", help=(
            "print JSON: per file, the labels present (id, name, pixels), most pixels first; Mask2Former: "
            '{"segments": [{"id", "label_id", "label", "score", "area", "is_thing"}]}'))
        add_mask2former_arguments(parser)
        parser.epilog = ("With a Mask2Former --model, or --mode without --model, the image's panoptic, instance or "
                         "semantic segments instead: each with its class, score and mask.")

    @classmethod
    def cli_task(cls, args) -> type[Task]:
        """Mask2Former's task for a Mask2Former --model (or --mode without --model: the checkpoint
        trained for that mode); this one (SegFormer) otherwise, refusing Mask2Former's options."""
        from .universal_segmentation import MASK2FORMER_ONLY, UniversalSegmentation, model_for_mode
        family = model_family(args.model)
        if family is None and not args.model and args.mode is not None:
            family = "mask2former"
            args.model = model_for_mode(args.mode)
        if family == "mask2former":
            return UniversalSegmentation
        if args.mode not in (None, "semantic"):
            raise InputError(f"--mode {args.mode} needs a Mask2Former model (--model "
                             f"{model_for_mode(args.mode)}, or leave out --model); SegFormer labels every "
                             "pixel (semantic).")
        given = [option for attr, option in MASK2FORMER_ONLY.items() if getattr(args, attr, None) is not None]
        if given:
            raise InputError(f"{', '.join(given)}: for Mask2Former models (--mode panoptic|instance|semantic); "
                             "SegFormer gives a label per pixel (--out, --overlay).")
        return cls

    @classmethod
    def cli_inputs(cls, args) -> list[tuple[str, Any]]:
        from ..io.dense import LABEL_SUFFIXES, PICTURE_SUFFIXES
        args.dense_outputs = plan_outputs(args.image, {"out": (args.out, LABEL_SUFFIXES, "--out"),
                                                       "overlay": (args.overlay, PICTURE_SUFFIXES, "--overlay")})
        return read_images(args)

    def cli_results(self, inputs: list[Any], options: SegmentationOptions, args) -> list[Any]:
        from ..io import dense as dense_io
        out: list[Any] = []
        for image, targets in zip(inputs, args.dense_good_outputs):
            try:
                result = self(image, options)
                written = []
                if targets.get("out"):
                    written.append(dense_io.write_labels(targets["out"], result.label_map))
                if targets.get("overlay"):
                    written.append(dense_io.write_picture(
                        targets["overlay"], dense_io.overlay(image, result.label_map, result.colors)))
                for path in written:
                    print(f"Wrote {path}", file=sys.stderr)
                out.append(result)
            except InputError as exc:  # one bad image (or file that cannot be written) does not stop the others
                out.append(exc)
        return out

    @classmethod
    def cli_print(cls, name: str, result: SegmentationResult, args) -> str:
        h, w = result.image_size
        total = max(1, h * w)
        lines = [f"{name} ({w}x{h}), {len(result.label_ids)} classes, {result.timings.total_ms:.0f} ms:"]
        lines += [f"  {100.0 * n / total:5.1f}%  {label}" for label, n in zip(result.labels, result.pixel_counts)]
        return "\n".join(lines)

    @classmethod
    def cli_json(cls, name: str, result: SegmentationResult, task) -> dict:
        return {"file": name, "model": task.model_ref, "size": [result.image_size[1], result.image_size[0]],
                **result.to_json(), "timings_ms": result.timings}


def model_family(ref: str | None) -> str | None:
    """"mask2former", "segformer" or None (not known before loading), from what needs no download:
    the catalogs, a local folder's or cached snapshot's config.json, else the name."""
    if not ref:
        return None
    from .universal_segmentation import UniversalSegmentation
    if any(e.id == ref for e in UniversalSegmentation.models):
        return "mask2former"
    if any(e.id == ref for e in SemanticSegmentation.models):
        return "segformer"
    from ..hub import read_json, resolve
    try:
        kind = read_json(resolve(ref, offline=True), "config.json").get("model_type")
    except EngineError:  # not downloaded, or no readable config: the load says what is wrong
        kind = None
    if kind in ("mask2former", "segformer"):
        return kind
    return "mask2former" if kind is None and "mask2former" in str(ref).lower() else None


def scale_norms(scales) -> list[np.ndarray]:
    """The encoder's (1, C_i, h_i, w_i) scales -> one (h_i, w_i) float32 map each: the L2 norm over channels."""
    return [torch.linalg.vector_norm(s[0].float(), dim=0).cpu().numpy().astype(np.float32) for s in scales]


def plan_outputs(paths, wanted: dict[str, tuple[Any, tuple[str, ...], str]]) -> list[dict[str, Path]]:
    """Per input path, the output files to write: ``wanted`` maps a key to (the option's value or None,
    its suffixes, the option's name). Every path is checked BEFORE anything runs (InputError: one line);
    several inputs get one file each (engine.io.dense.per_input), and two that would write the same
    file are refused."""
    from ..io.dense import check_output, per_input
    several = len(paths) > 1
    plans: list[dict[str, Path]] = [{} for _ in paths]
    for key, (value, suffixes, option) in wanted.items():
        if not value:
            continue
        base = check_output(value, suffixes, f"{option} file")
        seen: dict[Path, str] = {}
        for plan, path in zip(plans, paths):
            target = per_input(base, Path(path).stem, several)
            resolved = target.resolve()
            if resolved in seen:
                raise InputError(f"{option} {value}: {seen[resolved]} and {path} would both write {target}; put "
                                 f"{{stem}} in the name or give files with different names.")
            seen[resolved] = str(path)
            plan[key] = target
    return plans


def read_images(args) -> list[tuple[str, Any]]:
    """(name, image or the EngineError that reading it raised) per FILE, and ``args.dense_good_outputs``:
    the output plans of the readable ones, in order (cli_results receives only those)."""
    from .image_classification import _read_images
    pairs = _read_images(args.image)
    args.dense_good_outputs = [plan for plan, (_, x) in zip(args.dense_outputs, pairs)
                               if not isinstance(x, EngineError)]
    return pairs
