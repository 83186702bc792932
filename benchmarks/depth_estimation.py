"""`python main.py bench depth-estimation`: our GLPN vs transformers', same checkpoint, same frame, one
process.

Ours: engine.load_task("depth-estimation") (Pillow-exact resize, packed GEMMs, BatchNorm folded,
convolution + ReLU fused, channels-last). Theirs: GLPNImageProcessorPil + GLPNForDepthEstimation +
post_process_depth_estimation(target_sizes=[(480, 640)]). Both run interleaved; medians over
``--repeats`` after 2 warm-ups; the depth maps are compared (largest difference, in metres and as a
fraction of max_depth). Without ``--model``: vinvino02/glpn-nyu when downloaded, else a random-weight
checkpoint of its shape (MiT-b4 encoder, decoder 64, max depth 10 m) built locally.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from benchmarks.semantic_segmentation import checkpoint, frame, interleaved, pil_processor, spread_weights

DEFAULT_MODEL = "vinvino02/glpn-nyu"
RANDOM_DIR = Path(os.path.expanduser("~/.cache/taskscope/bench/glpn-nyu-random"))
RANDOM_VERSION = 1  # bump to rebuild the cached random checkpoint
#: "same answers": depths within this fraction of max_depth (the tests' bound)
SAME_FRACTION = 1e-4


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="ID|DIR", help=f"hub id or checkpoint folder (default {DEFAULT_MODEL} if "
                   "downloaded, else a random-weight one of its shape built locally)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N, mps")
    p.add_argument("--precision", choices=("exact", "fast", "both"), default="exact")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per implementation (after 2 warm-ups)")
    p.add_argument("--size", default="640x480", help="the frame's WIDTHxHEIGHT (default 640x480)")
    p.add_argument("--no-transformers", action="store_true", help="time only our engine")


def build_random_checkpoint(folder: Path = RANDOM_DIR) -> Path:
    """A random-weight GLPN with vinvino02/glpn-nyu's dimensions and its hub preprocessor_config.json."""
    cfg_path = folder / "config.json"
    if cfg_path.exists() and json.loads(cfg_path.read_text()).get("taskscope_random_weights") == RANDOM_VERSION:
        return folder
    import torch
    from transformers import GLPNConfig, GLPNForDepthEstimation
    torch.manual_seed(0)
    model = GLPNForDepthEstimation(GLPNConfig(
        hidden_sizes=[64, 128, 320, 512], depths=[3, 8, 27, 3], num_attention_heads=[1, 2, 5, 8],
        sr_ratios=[8, 4, 2, 1], decoder_hidden_size=64, max_depth=10, head_in_index=-1)).eval()
    spread_weights(model, 1)
    with torch.no_grad():
        model.head.head[2].weight.mul_(0.3)  # keep the sigmoid from saturating
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    cfg = json.loads(cfg_path.read_text())
    cfg.update({"architectures": ["GLPNForDepthEstimation"], "taskscope_random_weights": RANDOM_VERSION})
    cfg_path.write_text(json.dumps(cfg, indent=1))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_rescale": True, "do_resize": True, "feature_extractor_type": "GLPNFeatureExtractor", "resample": 2,
        "size_divisor": 32}, indent=1))
    return folder


def run(args) -> int:
    import numpy as np
    import torch

    from benchmarks.floor import count_flops, cpu_name, print_floor
    from engine import EngineError, load_task

    image = frame(args.size)
    h, w = image.shape[:2]
    repeats = max(1, args.repeats)
    name, folder, random_weights = checkpoint(args.model, DEFAULT_MODEL, build_random_checkpoint)
    print(f"image: synthetic {w}x{h} RGB; CPU {cpu_name()}; torch threads {torch.get_num_threads()}; "
          f"repeats {repeats} after 2 warm-ups (medians)")
    print(f"\n== {name}  [{folder}]")
    theirs = None
    if not args.no_transformers:
        from transformers import GLPNForDepthEstimation
        theirs = (pil_processor(folder, "GLPN"), GLPNForDepthEstimation.from_pretrained(folder).eval())
    for precision in (("exact", "fast") if args.precision == "both" else (args.precision,)):
        try:
            task = load_task("depth-estimation", str(folder), device=args.device, precision=precision)
        except EngineError as exc:
            print(f"[{precision}] not run: {exc}")
            continue
        dev = task.placement.device
        outs: dict[str, np.ndarray] = {}

        def ours():
            outs["ours"] = task(image).depth

        def hf():
            processor, model = theirs
            with torch.inference_mode():
                inputs = processor(images=image, return_tensors="pt").to(dev)
                out = model(**inputs)
                outs["transformers"] = processor.post_process_depth_estimation(
                    out, target_sizes=[(h, w)])[0]["predicted_depth"].float().cpu().numpy()

        fns = {"ours": ours}
        if theirs is not None:
            theirs[1].to(dev)
            fns["transformers"] = hf
        med = interleaved(fns, repeats)
        print(f"[{precision}] {task.placement.describe()}")
        for k, v in med.items():
            print(f"  {k:<14} end to end {v:8.1f} ms")
        if "transformers" in med:
            diff = float(np.abs(outs["ours"] - outs["transformers"]).max())
            same = diff <= SAME_FRACTION * task.max_depth
            print(f"  speed-up transformers / ours: {med['transformers'] / med['ours']:.2f}x; largest depth "
                  f"difference {diff:.2e} m = {diff / task.max_depth:.1e} of max_depth "
                  f"({'same answers' if same else 'DIFFERENT'}: bound {SAME_FRACTION:g})")
        pixels, _ = task.processor([image], dev, task.placement.dtype)
        flops = count_flops(lambda: task.model(pixels))
        dtype_name = str(task.placement.dtype).removeprefix("torch.")
        print_floor(flops, {f"ours {precision}": med["ours"],
                            **({"transformers fp32": med["transformers"]} if "transformers" in med else {})},
                    dtype_name, dev.type if dev.type != "cpu" else "cpu")
    if random_weights:
        print("  (random weights: timings are representative, depths are not meaningful)")
    return 0
