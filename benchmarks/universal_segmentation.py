"""`python main.py bench universal-segmentation`: our Mask2Former vs transformers', same checkpoint, same
frame, one process.

Ours: engine.load_task("universal-segmentation") (Pillow-exact resize; Swin with its windows gathered
by one index each way and the linear layers packed and fused; the pixel decoder's deformable attention
as one weighted gather; masked attention through SDPA, its regions from only the pixels the resize
reads; the panoptic post-processing a few queries at a time). Theirs: Mask2FormerImageProcessorPil +
Mask2FormerForUniversalSegmentation + post_process_panoptic_segmentation(target_sizes=[(480, 640)]).
Interleaved; medians over ``--repeats`` after 2 warm-ups; the segment maps and segment lists compared,
and where pixels differ, why (explain_differences). Without ``--model``:
facebook/mask2former-swin-tiny-coco-panoptic when downloaded, else a random-weight checkpoint of its
shape (Swin-T, 100 queries, 133 classes, short side 384) built locally (timings representative,
segments meaningless).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from benchmarks.semantic_segmentation import checkpoint, frame, interleaved

DEFAULT_MODEL = "facebook/mask2former-swin-tiny-coco-panoptic"
RANDOM_DIR = Path(os.path.expanduser("~/.cache/taskscope/bench/mask2former-swin-tiny-coco-panoptic-random"))
RANDOM_VERSION = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="ID|DIR", help=f"hub id or checkpoint folder (default {DEFAULT_MODEL} if "
                   "downloaded, else a random-weight one of its shape built locally)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N, mps")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per implementation (after 2 warm-ups)")
    p.add_argument("--size", default="640x480", help="the frame's WIDTHxHEIGHT (default 640x480)")
    p.add_argument("--threshold", type=float, default=0.5, help="panoptic score threshold (both sides)")
    p.add_argument("--no-transformers", action="store_true", help="time only our engine")


def spread_weights(model, seed: int) -> None:
    """Random weights with a spread: activations O(1), attention peaked, and the class head and mask
    embedder scaled up so that some queries are confident (segments to post-process, as a trained model has)."""
    import math

    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif any(s in name for s in ("relative_position_bias_table", "level_embed", "queries_")):
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                scale = 12.0 if "class_predictor" in name else 2.0 if any(
                    s in name for s in ("mask_embedder", "q_proj", "k_proj")) else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * scale / math.sqrt(math.prod(p.shape[1:])))


def build_random_checkpoint(folder: Path = RANDOM_DIR) -> Path:
    cfg_path = folder / "config.json"
    if cfg_path.exists() and json.loads(cfg_path.read_text()).get("taskscope_random_weights") == RANDOM_VERSION:
        return folder
    import torch
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    torch.manual_seed(0)
    labels = {i: f"class {i}" for i in range(133)}
    backbone = SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    model = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(
        backbone_config=backbone, id2label=labels, label2id={v: k for k, v in labels.items()})).eval()
    spread_weights(model, 1)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    cfg = json.loads(cfg_path.read_text())
    cfg["taskscope_random_weights"] = RANDOM_VERSION
    cfg_path.write_text(json.dumps(cfg, indent=1))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_resize": True, "ignore_index": 255, "image_processor_type": "Mask2FormerImageProcessor",
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "num_labels": 133,
        "reduce_labels": False, "resample": 2, "size": {"shortest_edge": 384, "longest_edge": 1333},
        "size_divisor": 32}, indent=1))
    return folder


def explain_differences(theirs_logits, differ, size, opts, their_map) -> str:
    """Why segment maps differ: our post-processing run on transformers' own outputs (equal or not),
    and at the differing pixels, how close the two best queries' scores are in transformers'
    computation (a tie within float rounding moves with any change of summation order: transformers
    itself, at 1 and 2 threads, moves a few such pixels)."""
    import numpy as np
    import torch

    from engine.tasks.universal_segmentation import panoptic, scaled_masks
    cls, masks = theirs_logits
    own_map, _ = panoptic(cls, masks, size, opts)
    scores, labels = cls.float().softmax(-1).max(-1)
    keep = labels.ne(cls.shape[-1] - 1) & (scores > opts.threshold)
    at = torch.from_numpy(np.flatnonzero(differ))
    values = torch.cat([p.flatten(1)[:, at] for _, p in scaled_masks(masks, torch.nonzero(keep).flatten(),
                                                                     scores[keep], size)])  # (K, n)
    margin = 0.0
    if values.shape[0] >= 2:
        top2 = values.topk(2, dim=0).values  # (2, n)
        margin = float(((top2[0] - top2[1]) / top2[0].clamp(min=1e-30)).max())
    same = "identical" if np.array_equal(own_map, their_map) else "NOT identical"
    return (f"(our post-processing on transformers' outputs: {same}; the {int(differ.sum())} pixels are where "
            f"transformers' two best queries tie within {margin:.1e} relative: float rounding of the two models)")


def run(args) -> int:
    import numpy as np
    import torch

    from benchmarks.floor import count_flops, cpu_name, print_floor
    from engine import load_task
    from engine.types.vision import UniversalSegmentationOptions

    image = frame(args.size)
    h, w = image.shape[:2]
    repeats = max(1, args.repeats)
    name, folder, random_weights = checkpoint(args.model, DEFAULT_MODEL, build_random_checkpoint)
    print(f"image: synthetic {w}x{h} RGB; CPU {cpu_name()}; torch threads {torch.get_num_threads()}; "
          f"repeats {repeats} after 2 warm-ups (medians)")
    print(f"\n== {name}  [{folder}]")
    task = load_task("universal-segmentation", str(folder), device=args.device)
    dev = task.placement.device
    opts = UniversalSegmentationOptions(mode="panoptic", threshold=args.threshold)
    outs: dict = {}

    def ours():
        r = task(image, opts)
        outs["ours"] = (r.segment_map, [(s.id, s.label_id, s.score) for s in r.segments])

    fns = {"ours": ours}
    if not args.no_transformers:
        from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil
        processor = Mask2FormerImageProcessorPil.from_pretrained(folder)
        model = Mask2FormerForUniversalSegmentation.from_pretrained(folder).eval().to(dev)

        def hf():
            with torch.inference_mode():
                inputs = processor(images=image, return_tensors="pt").to(dev)
                out = model(**inputs)
                r = processor.post_process_panoptic_segmentation(out, threshold=args.threshold, target_sizes=[(h, w)])[0]
                seen, segs = set(), []
                for s in r["segments_info"]:  # one entry per id, as ours
                    if s["id"] not in seen:
                        seen.add(s["id"])
                        segs.append((s["id"], s["label_id"], s["score"]))
                outs["transformers"] = (r["segmentation"].cpu().numpy().astype(np.int32), segs)
                outs["transformers logits"] = (out.class_queries_logits[0], out.masks_queries_logits[0])
        fns["transformers"] = hf
    med = interleaved(fns, repeats)
    print(f"[exact] {task.placement.describe()}")
    for k, v in med.items():
        print(f"  {k:<14} end to end {v:8.1f} ms")
    if "transformers" in med:
        (m1, s1), (m2, s2) = outs["ours"], outs["transformers"]
        differ = int((m1 != m2).sum())
        same_segments = len(s1) == len(s2) and all(
            a[:2] == b[:2] and abs(a[2] - b[2]) < 1e-4 for a, b in zip(s1, s2))
        print(f"  speed-up transformers / ours: {med['transformers'] / med['ours']:.2f}x; {len(s1)} segments; "
              f"identical: {'yes' if differ == 0 and same_segments else f'NO ({differ} pixels differ)'}")
        if differ:
            print("  " + explain_differences(outs["transformers logits"], m1 != m2, (h, w), opts, m2))
    pixels, _ = task.processor([image], dev, task.placement.dtype)
    flops = count_flops(lambda: task.model(pixels))
    print_floor(flops, {"ours exact": med["ours"],
                        **({"transformers fp32": med["transformers"]} if "transformers" in med else {})},
                "float32", dev.type if dev.type != "cpu" else "cpu")
    if random_weights:
        print("  (random weights: timings are representative, segments are not meaningful)")
    return 0
