"""`python main.py bench image-classification`: our ViT and ConvNeXT vs transformers', same checkpoint,
same image, one process.

Ours: engine.load_task("image-classification") (Pillow-exact resize in numpy/torch, SDPA, folding).
Theirs: the checkpoint's image processor (the PIL one) + *ForImageClassification + softmax top-k.
Both run interleaved; medians over ``--repeats`` after 2 warm-ups. Without ``--model`` both default
architectures run: the real checkpoints when downloaded, else random-weight ones of the same shape
built locally (timings representative, labels meaningless).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

RANDOM_ROOT = Path(os.path.expanduser("~/.cache/taskscope/bench"))
DEFAULTS = ("google/vit-base-patch16-224", "facebook/convnext-tiny-224")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="ID|DIR", action="append",
                   help="hub id or checkpoint folder (repeatable; default: ViT-B/16 and ConvNeXT-tiny)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N, mps")
    p.add_argument("--precision", choices=("exact", "fast", "both"), default="exact")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per implementation (after 2 warm-ups)")
    p.add_argument("--no-transformers", action="store_true", help="time only our engine")


def _build_random(kind: str) -> Path:
    """A random-weight checkpoint with the real default checkpoint's shape and preprocessing files."""
    import torch
    folder = RANDOM_ROOT / f"{kind}-random"
    if (folder / "config.json").exists():
        return folder
    torch.manual_seed(0)
    labels = {i: f"class {i}" for i in range(1000)}
    if kind == "vit":
        from transformers import ViTConfig, ViTForImageClassification
        model = ViTForImageClassification(ViTConfig(image_size=224, patch_size=16, id2label=labels,
                                                    label2id={v: k for k, v in labels.items()}))
        pre = {"image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 224, "width": 224},
               "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
               "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    else:
        from transformers import ConvNextConfig, ConvNextForImageClassification
        model = ConvNextForImageClassification(ConvNextConfig(id2label=labels,
                                                              label2id={v: k for k, v in labels.items()}))
        pre = {"image_processor_type": "ConvNextImageProcessor", "do_resize": True, "size": {"shortest_edge": 224},
               "crop_pct": 0.875, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255,
               "do_normalize": True, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    with torch.no_grad():  # spread the logits so the top-k is well separated
        model.classifier.weight.normal_(0, 0.2)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["taskscope_random_weights"] = True
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    (folder / "preprocessor_config.json").write_text(json.dumps(pre, indent=1))
    return folder


def _checkpoints(models: list[str] | None) -> list[tuple[str, Path, bool]]:
    from engine import hub
    out = []
    for ref in models or DEFAULTS:
        if models is None and not hub.is_cached(ref):
            kind = "vit" if "vit" in ref else "convnext"
            out.append((f"{ref} shape (RANDOM weights)", _build_random(kind), True))
        else:
            out.append((ref, hub.resolve(ref), False))
    return out


def photo_like(h: int = 480, w: int = 640):
    """A deterministic camera-sized RGB frame with smooth gradients and edges."""
    import numpy as np
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(x / 37.0), 128 + 90 * np.cos(y / 23.0), (x + y) / (h + w) * 255], -1)
    img[h // 4: h // 2, w // 3: w // 2] = (230, 40, 40)
    return np.clip(img, 0, 255).astype(np.uint8)


def _processor(folder: Path):
    import transformers
    pre = json.loads((folder / "preprocessor_config.json").read_text())
    name = pre.get("image_processor_type", "ViTImageProcessor").replace("Fast", "")
    cls = getattr(transformers, name + "Pil", None) or getattr(transformers, name)
    return cls.from_pretrained(folder)


def _median(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def run(args) -> int:
    import torch
    from transformers import AutoModelForImageClassification

    from benchmarks.floor import count_flops, cpu_name, print_floor
    from engine import EngineError, load_task

    frame = photo_like()
    repeats = max(1, args.repeats)
    print(f"image: synthetic 640x480 RGB; CPU {cpu_name()}; torch threads {torch.get_num_threads()}; "
          f"repeats {repeats} after 2 warm-ups (medians)")
    for name, folder, random_weights in _checkpoints(args.model):
        print(f"\n== {name}  [{folder}]")
        theirs = None
        if not args.no_transformers:
            processor = _processor(folder)
            cfg = json.loads((folder / "config.json").read_text())
            extra = {"attn_implementation": "sdpa"} if cfg.get("model_type") == "vit" else {}
            model = AutoModelForImageClassification.from_pretrained(folder, **extra).eval()
            theirs = (processor, model)
        for precision in (("exact", "fast") if args.precision == "both" else (args.precision,)):
            try:
                task = load_task("image-classification", str(folder), device=args.device, precision=precision)
            except EngineError as exc:
                print(f"[{precision}] not run: {exc}")
                continue
            dev = task.placement.device
            times: dict[str, list[float]] = {"ours": [], "transformers": []}
            outs: dict[str, tuple] = {}

            def ours():
                t0 = time.perf_counter()
                r = task(frame)
                times["ours"].append(time.perf_counter() - t0)
                outs["ours"] = tuple(int(i) for i in r.label_ids)

            def hf():
                processor, model = theirs
                t0 = time.perf_counter()
                with torch.inference_mode():
                    inputs = processor(images=frame, return_tensors="pt").to(dev)
                    p = model(**inputs).logits.float().softmax(-1)[0]
                    top = tuple(int(i) for i in p.topk(5).indices)
                times["transformers"].append(time.perf_counter() - t0)
                outs["transformers"] = top

            if theirs is not None:
                theirs[1].to(dev)
            for i in range(repeats + 2):
                ours()
                if theirs is not None:
                    hf()
                if i == 1:
                    times = {k: [] for k in times}
            med = {k: _median(v) for k, v in times.items() if v}
            print(f"[{precision}] {task.placement.describe()}")
            for k, v in med.items():
                print(f"  {k:<14} end to end {v:8.1f} ms")
            if "transformers" in med:
                same = outs["ours"] == outs["transformers"]
                print(f"  speed-up transformers / ours: {med['transformers'] / med['ours']:.2f}x; top-5 identical: "
                      f"{'yes' if same else 'NO ' + str(outs)}")
            pixels, _ = task.processor([frame], dev, task.placement.dtype, channels_last=task.channels_last)
            flops = count_flops(lambda: task.model(pixels))
            dtype_name = str(task.placement.dtype).removeprefix("torch.")
            print_floor(flops, {f"ours {precision}": med["ours"],
                                **({"transformers fp32": med["transformers"]} if "transformers" in med else {})},
                        dtype_name, dev.type if dev.type != "cpu" else "cpu")
        if random_weights:
            print("  (random weights: timings are representative, labels are not meaningful)")
    return 0
