"""`python main.py bench semantic-segmentation`: our SegFormer vs transformers', same checkpoint, same
frame, one process.

Ours: engine.load_task("semantic-segmentation") (Pillow-exact resize in numpy/torch, packed GEMMs, the
decode head folded, labels upsampled only where two classes may meet: engine.processors.dense).
Theirs: SegformerImageProcessorPil + SegformerForSemanticSegmentation +
post_process_semantic_segmentation(target_sizes=[(480, 640)]) (every class's logits upsampled, argmax).
Both run interleaved; medians over ``--repeats`` after 2 warm-ups; the label maps are compared pixel
for pixel. The post-processing alone is timed too, both ways, on the same logits. Without ``--model``:
nvidia/segformer-b0-finetuned-ade-512-512 when downloaded, else a random-weight checkpoint of its
shape (150 classes, 512x512) built locally, its weights spread so that the logits vary across the
image (timings representative, labels meaningless).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

DEFAULT_MODEL = "nvidia/segformer-b0-finetuned-ade-512-512"
RANDOM_DIR = Path(os.path.expanduser("~/.cache/taskscope/bench/segformer-b0-ade-random"))
RANDOM_VERSION = 1  # bump to rebuild the cached random checkpoint


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="ID|DIR", help=f"hub id or checkpoint folder (default {DEFAULT_MODEL} if "
                   "downloaded, else a random-weight one of its shape built locally)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N, mps")
    p.add_argument("--precision", choices=("exact", "fast", "both"), default="exact")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per implementation (after 2 warm-ups)")
    p.add_argument("--size", default="640x480", help="the frame's WIDTHxHEIGHT (default 640x480)")
    p.add_argument("--no-transformers", action="store_true", help="time only our engine")


def spread_weights(model, seed: int) -> None:
    """Random weights with a spread that keeps activations O(1) and makes the output vary across the
    image (a plain initialisation gives nearly the same logits everywhere: one label, no boundaries)."""
    import math

    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            else:
                scale = 2.5 if any(s in name for s in (".query.", ".key.")) else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * scale / math.sqrt(math.prod(p.shape[1:])))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def build_random_checkpoint(folder: Path = RANDOM_DIR) -> Path:
    """A random-weight SegFormer with nvidia/segformer-b0-finetuned-ade-512-512's dimensions (MiT-b0,
    decoder 256, 150 labels) and its hub preprocessor_config.json."""
    cfg_path = folder / "config.json"
    if cfg_path.exists() and json.loads(cfg_path.read_text()).get("taskscope_random_weights") == RANDOM_VERSION:
        return folder
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    torch.manual_seed(0)
    labels = {i: f"class {i}" for i in range(150)}
    model = SegformerForSemanticSegmentation(SegformerConfig(
        hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2], num_attention_heads=[1, 2, 5, 8],
        sr_ratios=[8, 4, 2, 1], decoder_hidden_size=256, id2label=labels,
        label2id={v: k for k, v in labels.items()})).eval()
    spread_weights(model, 1)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    cfg = json.loads(cfg_path.read_text())
    cfg.update({"architectures": ["SegformerForSemanticSegmentation"], "taskscope_random_weights": RANDOM_VERSION})
    cfg_path.write_text(json.dumps(cfg, indent=1))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_resize": True, "feature_extractor_type": "SegformerFeatureExtractor",
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "reduce_labels": True,
        "resample": 2, "size": 512}, indent=1))
    return folder


def checkpoint(model: str | None, default: str, build) -> tuple[str, Path, bool]:
    """(name, folder, random weights?) of what to time: ``model``, else ``default`` when downloaded, else
    ``build()``'s random-weight one."""
    from engine import hub
    if model:
        return model, hub.resolve(model), False
    if hub.is_cached(default):
        return default, hub.resolve(default), False
    return f"{default} shape (RANDOM weights)", build(), True


def frame(size: str):
    from benchmarks.image_classification import photo_like
    w, h = (int(v) for v in size.lower().split("x"))
    return photo_like(h, w)


def pil_processor(folder: Path, kind: str):
    import transformers
    return getattr(transformers, f"{kind}ImageProcessorPil").from_pretrained(folder)


def median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Run each function ``repeats + 2`` times, interleaved; the medians (ms) of the last ``repeats``."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeats + 2):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if i >= 2:
                times[k].append(time.perf_counter() - t0)
    return {k: median_ms(v) for k, v in times.items()}


def run(args) -> int:
    import numpy as np
    import torch

    from benchmarks.floor import count_flops, cpu_name, print_floor
    from engine import EngineError, load_task
    from engine.processors import dense

    image = frame(args.size)
    h, w = image.shape[:2]
    repeats = max(1, args.repeats)
    name, folder, random_weights = checkpoint(args.model, DEFAULT_MODEL, build_random_checkpoint)
    print(f"image: synthetic {w}x{h} RGB; CPU {cpu_name()}; torch threads {torch.get_num_threads()}; "
          f"repeats {repeats} after 2 warm-ups (medians)")
    print(f"\n== {name}  [{folder}]")
    theirs = None
    if not args.no_transformers:
        from transformers import SegformerForSemanticSegmentation
        theirs = (pil_processor(folder, "Segformer"), SegformerForSemanticSegmentation.from_pretrained(folder).eval())
    for precision in (("exact", "fast") if args.precision == "both" else (args.precision,)):
        try:
            task = load_task("semantic-segmentation", str(folder), device=args.device, precision=precision)
        except EngineError as exc:
            print(f"[{precision}] not run: {exc}")
            continue
        dev = task.placement.device
        outs: dict[str, np.ndarray] = {}

        def ours():
            outs["ours"] = task(image).label_map

        def hf():
            processor, model = theirs
            with torch.inference_mode():
                inputs = processor(images=image, return_tensors="pt").to(dev)
                out = model(**inputs)
                outs["transformers"] = processor.post_process_semantic_segmentation(
                    out, target_sizes=[(h, w)])[0].cpu().numpy()

        fns = {"ours": ours}
        if theirs is not None:
            theirs[1].to(dev)
            fns["transformers"] = hf
        med = interleaved(fns, repeats)
        print(f"[{precision}] {task.placement.describe()}")
        for k, v in med.items():
            print(f"  {k:<14} end to end {v:8.1f} ms")
        if "transformers" in med:
            differ = int((outs["ours"] != outs["transformers"]).sum())
            print(f"  speed-up transformers / ours: {med['transformers'] / med['ours']:.2f}x; label maps identical: "
                  f"{'yes' if differ == 0 else f'NO ({differ} of {h * w} pixels differ)'}")
        # the post-processing alone, on the same logits
        pixels, _ = task.processor([image], dev, task.placement.dtype)
        with torch.inference_mode():
            logits = task.model(pixels)  # (1, L, h/4, w/4)
        import torch.nn.functional as F

        def theirs_post():
            with torch.inference_mode():
                up = F.interpolate(logits[0].float().contiguous()[None], size=(h, w), mode="bilinear",
                                   align_corners=False)
                outs["post theirs"] = up[0].argmax(0).cpu().numpy()

        def ours_post():
            outs["post ours"] = dense.upsample_argmax(logits[0], (h, w))

        post = interleaved({"ours": ours_post, "transformers": theirs_post}, repeats)
        same = np.array_equal(outs["post ours"], outs["post theirs"])
        print(f"  post-processing only ({logits.shape[1]} classes, {logits.shape[2]}x{logits.shape[3]} -> {w}x{h}): "
              f"ours {post['ours']:.1f} ms, transformers' {post['transformers']:.1f} ms "
              f"({post['transformers'] / post['ours']:.1f}x); identical: {'yes' if same else 'NO'}")
        flops = count_flops(lambda: task.model(pixels))
        dtype_name = str(task.placement.dtype).removeprefix("torch.")
        print_floor(flops, {f"ours {precision}": med["ours"],
                            **({"transformers fp32": med["transformers"]} if "transformers" in med else {})},
                    dtype_name, dev.type if dev.type != "cpu" else "cpu")
    if random_weights:
        print("  (random weights: timings are representative, labels are not meaningful)")
    return 0
