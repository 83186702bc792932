"""Image classification, the seed's two ways: ViT (attention over image patches, the final [CLS]
state classified) and ConvNeXT (a modernised convnet, the pooled last feature map classified).

    task = load_task("image-classification")          # google/vit-base-patch16-224
    result = task(frame_rgb)                           # top-5 labels, best first, softmax scores

    preprocess   as the checkpoint's preprocessor_config.json says (engine.processors.image,
                 Pillow-exact): ViT warps to 224x224; ConvNeXT resizes the shortest edge to
                 224 / crop_pct (BICUBIC) and centre-crops 224
    model        engine.models.vit or engine.models.convnext, chosen by config.json's model_type
    postprocess  softmax over the labels, top-k; with ``internals``: ViT's [CLS] attention over
                 the patch grid (last layer per head, averaged, and attention rollout), or
                 ConvNeXT's head applied at every position of its last feature map (a class map)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..errors import EngineError, InputError
from ..lazy import lazy
from ..types.vision import ClassificationInternals, ClassificationOptions, ClassificationResult
from .base import Progress, StageClock, Task, expect_architecture

if TYPE_CHECKING:
    from ..device import Placement

torch = lazy("torch")

log = logging.getLogger(__name__)

#: config.json model_type -> the model file that runs it
ARCHITECTURES = {"vit": "engine.models.vit", "convnext": "engine.models.convnext"}


class ImageClassification(Task):
    name = "image-classification"
    title = "Image classification"
    domain = "vision"
    summary = "Classify images with ViT (attention over patches) or ConvNeXT (a modern convnet)."
    options_type = ClassificationOptions
    result_type = ClassificationResult
    models = (
        ModelEntry("google/vit-base-patch16-224", 346, "apache-2.0", "ViT-B/16, ImageNet-1k, 224 px"),
        ModelEntry("facebook/convnext-tiny-224", 114, "apache-2.0", "ConvNeXT tiny, ImageNet-1k, 224 px"),
        ModelEntry("google/vit-base-patch32-384", 353, "apache-2.0", "ViT-B/32, ImageNet-1k, 384 px"),
        ModelEntry("facebook/convnext-base-384", 354, "apache-2.0", "ConvNeXT base, ImageNet-1k, 384 px"),
    )
    command = "classify-image"
    command_help = "classify images (ViT, ConvNeXT)"
    bench = "benchmarks.image_classification"

    def __init__(self, model_ref: str, folder: Path, placement: Placement, model, kind: str, processor) -> None:
        super().__init__(model_ref, folder, placement)
        self.model = model
        self.kind = kind  # "vit" or "convnext"
        self.processor = processor
        id2label = model.config.id2label
        self.labels = tuple(id2label.get(i, f"LABEL_{i}") for i in range(model.config.num_labels))
        self.channels_last = kind == "convnext" and placement.device.type in ("cpu", "cuda")

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> ImageClassification:
        import importlib

        from ..processors.image import ImageProcessor
        config = expect_architecture(folder, model_ref, cls.name, tuple(ARCHITECTURES), ("ForImageClassification",))
        kind = config["model_type"]
        module = importlib.import_module(ARCHITECTURES[kind])
        model = module.from_checkpoint(folder, placement)
        processor = ImageProcessor.from_folder(folder, "ViTImageProcessor" if kind == "vit" else "ConvNextImageProcessor")
        log.info("Loaded %s %s (%d labels) on %s", kind, model_ref, model.config.num_labels, placement.describe())
        return cls(model_ref, folder, placement, model, kind, processor)

    # ------------------------------------------------------------------ run

    def run(self, inputs: np.ndarray, options: ClassificationOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> ClassificationResult:
        """One (H, W, 3) uint8 RGB image (grayscale / RGBA are converted) -> the top-k labels."""
        from ..io.image import to_rgb
        opts = self._options(options)
        image = to_rgb(inputs)
        clock = StageClock(self._sync())
        with torch.inference_mode():
            with clock.stage("preprocess"):
                pixels, _ = self.processor([image], self.placement.device, self.placement.dtype,
                                           channels_last=self.channels_last)  # (1, 3, h, w)
            check(cancel)
            with clock.stage("model"):
                if self.kind == "vit":
                    out = self.model(pixels, want_attention=opts.internals)
                else:
                    out = self.model(pixels, want_features=opts.internals)
            check(cancel)
            with clock.stage("postprocess"):
                probs = out.logits[0].float().softmax(-1)  # (num_labels,)
                k = min(opts.top_k, probs.shape[0])
                scores, ids = probs.topk(k)  # best first; ties keep the lower id first, as torch.topk
                internals = self._internals(out, int(ids[0]), image.shape[:2], tuple(pixels.shape[2:])) \
                    if opts.internals else None
                scores, ids = scores.cpu().numpy().astype(np.float32), ids.cpu().numpy().astype(np.int64)
        if progress is not None:
            progress(1.0, None)
        return ClassificationResult(tuple(self.labels[i] for i in ids), ids, scores,
                                    (int(image.shape[0]), int(image.shape[1])), clock.timings(), internals)

    def _internals(self, out, top_id: int, image_hw: tuple[int, int],
                   input_hw: tuple[int, int]) -> ClassificationInternals:
        """What the app shows inside the model, as (rows, cols) float32 maps."""
        if self.kind == "vit":
            from ..models import vit
            rows, cols = out.grid
            rollout = vit.attention_rollout(out.attentions)[0, 1:].float()  # (patches,) [CLS] row, patches only
            last = out.attentions[-1][0, :, 0, 1:].float()  # (heads, patches): last layer, [CLS] -> patches
            maps = {"rollout": _normalised(rollout.reshape(rows, cols)),
                    "mean": _normalised(last.mean(0).reshape(rows, cols))}
            for h in range(last.shape[0]):
                maps[f"head {h + 1}"] = _normalised(last[h].reshape(rows, cols))
            kind, grid = "attention", (rows, cols)
        else:
            cam = self.model.class_map(out.features, top_id)[0].float()  # (h, w) logits of the top class
            maps = {"class map": cam.cpu().numpy().astype(np.float32)}
            kind, grid = "class-map", (int(cam.shape[0]), int(cam.shape[1]))
        return ClassificationInternals(kind, maps, grid, (int(input_hw[0]), int(input_hw[1])),
                                       self.processor.crop_box(*image_hw))

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_arguments(cls, parser) -> None:
        from ..cliargs import input_file, positive_int
        parser.add_argument("image", type=input_file, nargs="+", metavar="FILE")
        parser.add_argument("--top-k", type=positive_int, default=5, help="how many labels (default 5)")
        parser.add_argument("--json", action="store_true", help="print JSON: per file, the top-k labels best first")

    @classmethod
    def cli_inputs(cls, args) -> list[tuple[str, Any]]:
        return _read_images(args.image)

    @classmethod
    def cli_options(cls, args) -> ClassificationOptions:
        return ClassificationOptions(top_k=args.top_k)

    def cli_results(self, inputs: list[Any], options: ClassificationOptions, args) -> list[Any]:
        out: list[Any] = []
        for image in inputs:
            try:
                out.append(self(image, options))
            except InputError as exc:  # one bad image does not stop the others
                out.append(exc)
        return out

    @classmethod
    def cli_print(cls, name: str, result: ClassificationResult, args) -> str:
        lines = [f"{name} ({result.image_size[1]}x{result.image_size[0]}), {result.timings.total_ms:.0f} ms:"]
        lines += [f"  {score:6.3f}  {label}" for label, score in zip(result.labels, result.scores)]
        return "\n".join(lines)

    @classmethod
    def cli_json(cls, name: str, result: ClassificationResult, task) -> dict:
        return {"file": name, "model": task.model_ref, "labels": result.to_json(), "timings_ms": result.timings}


def _normalised(m) -> np.ndarray:
    m = m.clamp_min(0)
    total = float(m.sum())
    return (m / total if total > 0 else m).cpu().numpy().astype(np.float32)


def _read_images(paths) -> list[tuple[str, Any]]:
    """(name, image or the InputError that reading it raised) per path."""
    from ..io.image import read_image
    pairs: list[tuple[str, Any]] = []
    for path in paths:
        try:
            pairs.append((str(path), read_image(path)))
        except EngineError as exc:
            pairs.append((str(path), exc))
    return pairs


