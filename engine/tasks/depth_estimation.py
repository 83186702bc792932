"""Monocular depth estimation with GLPN: metres for every pixel of the image.

    task = load_task("depth-estimation")              # vinvino02/glpn-nyu (indoor, up to 10 m)
    result = task(frame_rgb)                           # result.depth: (H, W) float32 metres

    preprocess   as GLPNImageProcessor: the sides rounded DOWN to multiples of 32 (Pillow-exact
                 bilinear resize), rescaled to [0, 1], no normalisation. GLPN has no fixed input
                 size, so its cost grows with the image: an image of more than
                 ``DepthOptions.max_pixels`` (default 2.1 megapixels, a 1080p frame) is first
                 scaled down to fit (aspect kept, sides multiples of 32). The depth still comes
                 back at the image's own size.
    model        engine.models.glpn: the Mix Transformer encoder (global path), the decoder with
                 Selective Feature Fusion of each scale (local path), the depth head
    postprocess  bicubic upsampling to the image's size, as transformers'
                 post_process_depth_estimation(outputs, target_sizes=[(H, W)]); with
                 ``internals``: the encoder's scales and the fusion attention maps
"""
from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..errors import InputError
from ..lazy import lazy
from ..types.vision import DenseInternals, DepthOptions, DepthResult
from .base import Progress, StageClock, Task, expect_architecture

if TYPE_CHECKING:
    from ..device import Placement

torch = lazy("torch")
dense = lazy("engine.processors.dense")
image_processing = lazy("engine.processors.image")

log = logging.getLogger(__name__)

#: activation memory of a GLPN forward pass per input pixel, float32 (see DepthEstimation._check_memory)
BYTES_PER_PIXEL = 2000


def capped_size(height: int, width: int, max_pixels: int, divisor: int = 32) -> tuple[int, int] | None:
    """(h, w) to scale an image of (height, width) down to before GLPN sees it: at most ``max_pixels``,
    the aspect kept, the sides multiples of ``divisor`` (what GLPN's processor would round them to
    anyway), at least one multiple each; None when the image fits as it is."""
    if height * width <= max_pixels:
        return None
    s = math.sqrt(max_pixels / (height * width))
    h = max(divisor, int(height * s) // divisor * divisor)
    w = max(divisor, int(width * s) // divisor * divisor)
    if h * w > max_pixels:  # a very thin image: one side held at one multiple, the other gives way
        if w == divisor:
            h = max(divisor, max_pixels // w // divisor * divisor)
        else:
            w = max(divisor, max_pixels // h // divisor * divisor)
    return h, w


class DepthEstimation(Task):
    name = "depth-estimation"
    title = "Depth estimation"
    domain = "vision"
    summary = ("Estimate the depth of every pixel of an image, in metres, with GLPN (a Mix Transformer "
               "encoder and a decoder with selective feature fusion). Images of more than "
               "2.1 megapixels are scaled down for the model (--max-pixels); the depth map comes back at the "
               "image's size.")
    options_type = DepthOptions
    result_type = DepthResult
    models = (
        ModelEntry("vinvino02/glpn-nyu", 245, "apache-2.0", "GLPN, NYU Depth v2: indoor scenes, up to 10 m"),
        ModelEntry("vinvino02/glpn-kitti", 245, "apache-2.0", "GLPN, KITTI: street scenes, up to 80 m"),
    )
    command = "depth"
    command_help = "estimate depth in metres for images (GLPN)"
    bench = "benchmarks.depth_estimation"

    def __init__(self, model_ref: str, folder: Path, placement: Placement, model, processor) -> None:
        super().__init__(model_ref, folder, placement)
        self.model = model
        self.processor = processor
        self.max_depth = float(model.config.max_depth)
        self.divisor = int(processor.config.size_divisor or 32)

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> DepthEstimation:
        from ..device import unmeasured
        from ..models import glpn
        expect_architecture(folder, model_ref, cls.name, ("glpn",), ("ForDepthEstimation",))
        placement, notice = unmeasured(placement, "GLPN")  # 'fast' runs exact, and says so
        model = glpn.from_checkpoint(folder, placement)
        processor = image_processing.ImageProcessor.from_folder(folder, "GLPNImageProcessor")
        log.info("Loaded GLPN %s (max depth %g m) on %s", model_ref, model.config.max_depth, placement.describe())
        task = cls(model_ref, folder, placement, model, processor)
        task.precision_notice = notice
        return task

    # ------------------------------------------------------------------ stages

    def model_input(self, image: np.ndarray, options: DepthOptions) -> np.ndarray:
        """The (h, w, 3) uint8 image GLPN is given: the image itself, or scaled down (Pillow-exact
        bilinear, to multiples of 32) when it has more than ``options.max_pixels`` pixels."""
        c = self.processor.config
        target = capped_size(image.shape[0], image.shape[1], options.max_pixels, self.divisor) if c.do_resize else None
        if target is None:
            return image
        log.info("Depth: %dx%d image scaled to %dx%d for the model (max_pixels %d)", image.shape[1], image.shape[0],
                 target[1], target[0], options.max_pixels)
        return image_processing.resize(image, target, c.resample)

    def _check_memory(self, size: tuple[int, int]) -> None:
        """Refuse an input whose activations would not fit, before allocating them. The decoder and head
        run at the input's full size with ``decoder_hidden_size`` channels; measured on a glpn-nyu-shaped
        model (float32, CPU): the resident peak grew by ~1,100 bytes per input pixel at 640x480 and 1024x768;
        2,000 leaves room for what that hides and for the allocator."""
        from ..device import check_fits
        per_pixel = BYTES_PER_PIXEL * torch.finfo(self.placement.dtype).bits / 32
        check_fits(size[0] * size[1] * per_pixel, self.placement.device,
                   f"Estimating depth at {size[1]}x{size[0]}", "lower max_pixels (--max-pixels).")

    def run(self, inputs: np.ndarray, options: DepthOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> DepthResult:
        """One (H, W, 3) uint8 RGB image (grayscale / RGBA are converted) -> (H, W) depth in metres."""
        from ..io.image import to_rgb
        opts = self._options(options)
        image = to_rgb(inputs)
        height, width = int(image.shape[0]), int(image.shape[1])
        clock = StageClock(self._sync())
        with torch.inference_mode():
            with clock.stage("preprocess"):
                small = self.model_input(image, opts)
                self._check_memory(self.processor.output_size(small.shape[0], small.shape[1]))
                pixels, _ = self.processor([small], self.placement.device, self.placement.dtype)  # (1, 3, h, w)
            check(cancel)
            with clock.stage("model"):
                if opts.internals:
                    depth, scales, fusion = self.model.forward_with_internals(pixels)  # (1, h, w), ...
                else:
                    depth, scales, fusion = self.model(pixels), None, None
            check(cancel)
            with clock.stage("postprocess"):
                metres = dense.resize_depth(depth[0], (height, width))  # (H, W) float32, as transformers'
                internals = None
                if opts.internals:
                    from .semantic_segmentation import scale_norms
                    ih = int(pixels.shape[2])
                    maps = {}
                    for attn in fusion:  # (1, 2, h, w) at 1/16, 1/8, 1/4
                        a = attn[0].float().cpu().numpy().astype(np.float32)
                        ratio = max(1, round(ih / attn.shape[2]))
                        maps[f"fusion 1/{ratio} local"] = a[0]
                        maps[f"fusion 1/{ratio} global"] = a[1]
                    internals = DenseInternals(scales=tuple(scale_norms(scales)), maps=maps,
                                               input_size=(ih, int(pixels.shape[3])))
        if progress is not None:
            progress(1.0, None)
        return DepthResult(metres, self.max_depth, (height, width), clock.timings(), internals)

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_arguments(cls, parser) -> None:
        from ..cliargs import input_file, positive_int
        from ..io.colormap import COLORMAPS, DEFAULT
        parser.add_argument("image", type=input_file, nargs="+", metavar="FILE")
        parser.add_argument("--out", metavar="FILE", help=(
            "write the depth at the image's size: .npy (float32 metres) or .png (16-bit, metres x 256, the "
            "KITTI convention, clipped to 65535). With several FILEs, each gets its own: '-<its name>' is "
            "added before the suffix (depth.npy -> depth-photo.npy), or put {stem} where its name goes"))
        parser.add_argument("--preview", metavar="FILE",
                            help="write a coloured picture of the depth (.png or .jpg; near is bright)")
        parser.add_argument("--colormap", choices=COLORMAPS, default=None,
                            help=f"the --preview's colours (default {DEFAULT})")
        parser.add_argument("--max-pixels", type=positive_int, default=DepthOptions().max_pixels, help=(
            f"scale larger images down to this many pixels for the model (default {DepthOptions().max_pixels}); "
            "the depth map is still at the image's size"))
        parser.add_argument("--json", action="store_true", help="print JSON: per file, min / max / mean depth")

    @classmethod
    def cli_inputs(cls, args) -> list[tuple[str, Any]]:
        from ..io.dense import DEPTH_SUFFIXES, PICTURE_SUFFIXES
        from .semantic_segmentation import plan_outputs, read_images
        if args.colormap and not args.preview:
            raise InputError("--colormap colours the --preview picture; give --preview FILE too.")
        args.dense_outputs = plan_outputs(args.image, {"out": (args.out, DEPTH_SUFFIXES, "--out"),
                                                       "preview": (args.preview, PICTURE_SUFFIXES, "--preview")})
        return read_images(args)

    @classmethod
    def cli_options(cls, args) -> DepthOptions:
        return DepthOptions(max_pixels=args.max_pixels)

    def cli_results(self, inputs: list[Any], options: DepthOptions, args) -> list[Any]:
        from ..io import colormap
        from ..io import dense as dense_io
        out: list[Any] = []
        for image, targets in zip(inputs, args.dense_good_outputs):
            try:
                result = self(image, options)
                written = []
                if targets.get("out"):
                    written.append(dense_io.write_depth(targets["out"], result.depth))
                if targets.get("preview"):
                    picture = colormap.apply(result.depth, args.colormap or colormap.DEFAULT, reverse=True)
                    written.append(dense_io.write_picture(targets["preview"], picture))
                for path in written:
                    print(f"Wrote {path}", file=sys.stderr)
                out.append(result)
            except InputError as exc:  # one bad image (or file that cannot be written) does not stop the others
                out.append(exc)
        return out

    @classmethod
    def cli_print(cls, name: str, result: DepthResult, args) -> str:
        h, w = result.image_size
        d = result.to_json()
        return (f"{name} ({w}x{h}), {result.timings.total_ms:.0f} ms: depth {d['min']:.2f} .. {d['max']:.2f} m, "
                f"mean {d['mean']:.2f} m (model range 0 .. {result.max_depth:g} m)")

    @classmethod
    def cli_json(cls, name: str, result: DepthResult, task) -> dict:
        return {"file": name, "model": task.model_ref, **result.to_json(), "timings_ms": result.timings}
