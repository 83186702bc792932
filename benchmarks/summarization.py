"""`python main.py bench summarization`: our summarization task (BART or T5 + engine.generation, end to
end: tokenizing, the encoder once, beam search with the KV cache, decoding the text) vs transformers'
tokenizer + ``BartForConditionalGeneration.generate`` (``T5ForConditionalGeneration`` for a T5 folder)
+ decode on the same checkpoint, the same article and the same settings (those our task decodes with:
the checkpoint's generation_config.json / config.json, T5's task_specific_params["summarization"] over
them; ``--num-beams`` / ``--max-length`` / ``--min-length`` override both, and are passed to generate
explicitly with everything else), batch 1, one process, interleaved runs (the order alternating);
medians over ``--repeats`` after a warm-up. The output ids are compared (exact precision: they must be
identical, else exit 1).

A decoding step at batch 1 (one row per beam) reads every decoder weight it uses and the LM head
once, so its floor is memory bandwidth: those bytes (the decoder's weights less the cross-attention
key / value projections, which ran once over the encoder's output, and one row of BART's learned
positions; the LM head) over this machine's read bandwidth measured now (benchmarks.floor); "×
floor" is the time per step (end to end over the decoding steps, so the encoder's one pass is in it)
over that. The FLOP floor of one step is beside it. On a machine other work shares, torch's threads
wait for each other at every operation while the other work holds a core (on 2 shared cores the
default threads ran 4x slower than ``--threads 1``): the ratio ours / transformers is the figure, and
``--threads 1`` measures more steadily.

Without ``--model``: sshleifer/distilbart-cnn-12-6 when it is in the cache, else a random-weight
checkpoint of its shape in its hub layout (BartForConditionalGeneration, 12 encoder + 6 decoder
layers, 1024 wide, 16 heads, 50,264 embedding rows, its config.json's generation settings: 4 beams,
length penalty 2, 56 to 142 tokens, no repeated 3-grams, early stopping, forced BOS / EOS; built once
under ~/.cache/taskscope/bench with a small made-up byte-level BPE tokenizer). Random weights rarely
write EOS, so that model runs to its max length: without ``--max-length`` the bench caps it at 64
(said in the output), which keeps the whole bench near 2.5 minutes on 2 cores (the checkpoint's own
142, ``--max-length 142``, about twice that); its output ids lie mostly beyond the small tokenizer's
vocabulary and decode to little or no text.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.text_generation import RANDOM_ROOT

DEFAULT = "sshleifer/distilbart-cnn-12-6"
#: the random-weight checkpoint's max length when none is given (its own 142 doubles the bench's time)
RANDOM_MAX_LENGTH = 64
CUT = " (cut at the model's max length)"
TEXT = (
    "The city council voted on Tuesday to close the old harbour bridge to cars from next spring, ending "
    "more than sixty years of traffic on one of the busiest crossings in the region. The decision follows "
    "an engineering report published last month, which found that parts of the steel frame had corroded "
    "faster than expected and that the bridge could no longer safely carry heavy lorries. Council members "
    "said the crossing would remain open to pedestrians and cyclists while a new road bridge is built a "
    "few hundred metres upstream. Construction is expected to take four years and to cost about 180 "
    "million pounds, most of it paid for by the national government. Local businesses on both sides of "
    "the river warned that the closure would lengthen delivery times and drive customers away, and a "
    "group of shop owners has asked the council to run a free shuttle bus across the river until the new "
    "bridge opens. The council's transport director said buses would be added on the two nearest "
    "crossings and that traffic lights on the ring road would be retimed to cope with the extra cars. "
    "Residents who live near the bridge welcomed the vote, saying the noise and pollution from traffic had "
    "grown worse every year. A public meeting on the plans for the new bridge will be held next week at "
    "the town hall, where engineers will present three possible designs and answer questions.")

#: sshleifer/distilbart-cnn-12-6's config.json (the keys Taskscope and transformers read, as the hub has them)
DISTILBART_CONFIG = {
    "_num_labels": 3, "activation_dropout": 0.0, "activation_function": "gelu", "add_bias_logits": False,
    "add_final_layer_norm": False, "architectures": ["BartForConditionalGeneration"], "attention_dropout": 0.0,
    "bos_token_id": 0, "classif_dropout": 0.0, "d_model": 1024, "decoder_attention_heads": 16,
    "decoder_ffn_dim": 4096, "decoder_layerdrop": 0.0, "decoder_layers": 6, "decoder_start_token_id": 2,
    "dropout": 0.1, "early_stopping": True, "encoder_attention_heads": 16, "encoder_ffn_dim": 4096,
    "encoder_layerdrop": 0.0, "encoder_layers": 12, "eos_token_id": 2, "extra_pos_embeddings": 2,
    "force_bos_token_to_be_generated": True, "forced_bos_token_id": 0, "forced_eos_token_id": 2,
    "id2label": {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}, "init_std": 0.02, "is_encoder_decoder": True,
    "label2id": {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}, "length_penalty": 2.0, "max_length": 142,
    "max_position_embeddings": 1024, "min_length": 56, "model_type": "bart", "no_repeat_ngram_size": 3,
    "normalize_before": False, "normalize_embedding": True, "num_beams": 4, "num_hidden_layers": 12,
    "output_past": True, "pad_token_id": 1, "prefix": " ", "scale_embedding": False,
    "static_position_embeddings": False,
    "task_specific_params": {"summarization": {"early_stopping": True, "length_penalty": 2.0, "max_length": 142,
                                               "min_length": 56, "no_repeat_ngram_size": 3, "num_beams": 4}},
    "vocab_size": 50264,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="ID|DIR", help="hub id or BART / T5 checkpoint folder")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N")
    p.add_argument("--precision", choices=("exact", "fast"), default="exact")
    p.add_argument("--text", default=TEXT, help="the article to summarize (default: a made-up news story)")
    p.add_argument("--num-beams", type=int, default=None, metavar="K",
                   help="default: the checkpoint's (distilbart: 4)")
    p.add_argument("--max-length", type=int, default=None, metavar="N",
                   help=f"default: the checkpoint's (distilbart: 142; its random stand-in: {RANDOM_MAX_LENGTH})")
    p.add_argument("--min-length", type=int, default=None, metavar="N",
                   help="default: the checkpoint's (distilbart: 56)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per implementation (after 1 warm-up)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for both")


def _tokenizer_files(folder: Path) -> None:
    """A small made-up byte-level BPE (vocab.json + merges.txt, BART's special tokens first; the
    timings do not depend on it) and tokenizer_config.json."""
    from tokenizers import ByteLevelBPETokenizer
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator([TEXT] * 20, vocab_size=1000, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    tok.save_model(str(folder))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 1024}))


def build_random() -> Path:
    """A random-weight BART of distilbart-cnn-12-6's shape in its hub layout: pytorch_model.bin with
    ``model.shared.weight`` and its ``model.encoder.embed_tokens`` / ``model.decoder.embed_tokens``
    copies (one storage), ``final_logits_bias``, no ``lm_head.weight`` (tied); its config.json (the
    generation settings at the top level, no generation_config.json); vocab.json + merges.txt."""
    folder = RANDOM_ROOT / "distilbart-cnn-12-6-random"
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import BartConfig, BartForConditionalGeneration
    folder.mkdir(parents=True, exist_ok=True)
    _tokenizer_files(folder)
    torch.manual_seed(0)
    shape = {k: v for k, v in DISTILBART_CONFIG.items()
             if k in ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                      "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "max_position_embeddings",
                      "activation_function", "pad_token_id", "bos_token_id", "eos_token_id",
                      "decoder_start_token_id", "forced_eos_token_id")}
    model = BartForConditionalGeneration(BartConfig(**shape)).eval()
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    shared = model.model.shared.weight.data
    for key in ("model.shared.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"):
        state[key] = shared  # one storage, three names (as the hub's file)
    torch.save(state, folder / "pytorch_model.bin.part")
    (folder / "pytorch_model.bin.part").rename(folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(DISTILBART_CONFIG, indent=2))  # last: the folder is complete
    return folder


def _checkpoint(model: str | None) -> tuple[str, Path, bool]:
    """(what to call it, its folder, whether it is the random-weight stand-in)."""
    from engine import hub
    if model:
        return model, hub.resolve(model), False
    if hub.is_cached(DEFAULT):
        return DEFAULT, hub.resolve(DEFAULT), False
    return f"{DEFAULT} shape (RANDOM weights)", build_random(), True


def step_bytes(model, kind: str, rows: int = 1) -> int:
    """The weight bytes one decoding step of ``rows`` rows (beams) reads: the decoder's (less the
    cross-attention key / value projections, which ran once over the encoder's output; one row of
    BART's learned positions) and the LM head (the tied shared embeddings; or a separate lm_head and
    ``rows`` rows of the embeddings; BART's final_logits_bias)."""
    from benchmarks.floor import weight_bytes, weight_names
    cross_kv = (".encoder_attn.k_proj.", ".encoder_attn.v_proj.") if kind == "bart" else \
        (".EncDecAttention.k.", ".EncDecAttention.v.")
    partial = {name: 0 for name in weight_names(model)
               if name.startswith("encoder.") or any(s in name for s in cross_kv)}
    if kind == "bart":
        partial["decoder.embed_positions.weight"] = 1
    if model.lm_head is not None or model.packed_head is not None:
        partial["shared.weight"] = rows  # the head is another matrix: the embeddings are only looked up
    total = weight_bytes(model, partial)
    bias = getattr(model, "final_logits_bias", None)
    if bias is not None and model.packed_head is None:  # else the packed head's bias
        total += bias.numel() * bias.element_size()
    return total


def run(args) -> int:
    import torch
    from transformers import AutoTokenizer, BartForConditionalGeneration, T5ForConditionalGeneration

    from benchmarks.floor import count_flops, cpu_name, flop_floor_ms, gemm_gflops, memory_floor_ms, peak_rss_mb, \
        read_bandwidth_gbs
    from engine import SummarizationOptions, load_task

    if args.threads:
        torch.set_num_threads(args.threads)
    ref, folder, random_weights = _checkpoint(args.model)
    max_length = args.max_length
    if max_length is None and random_weights:
        max_length = RANDOM_MAX_LENGTH
    task = load_task("summarization", str(folder), device=args.device, precision=args.precision)
    if task.precision_notice:
        print(f"note: {task.precision_notice}")
    device = task.placement.device
    kind = task.kind
    oracle = T5ForConditionalGeneration if kind == "t5" else BartForConditionalGeneration
    theirs = oracle.from_pretrained(folder).eval().to(device)
    tok = AutoTokenizer.from_pretrained(folder)
    opts = SummarizationOptions(num_beams=args.num_beams, max_length=max_length, min_length=args.min_length)
    prefix, params = task._plan(opts)
    settings, start = task._decode_settings(opts, params)  # exactly what our task decodes with
    kwargs = dict(max_length=settings.max_new_tokens + 1, min_length=settings.min_length, num_beams=settings.num_beams,
                  length_penalty=settings.length_penalty, no_repeat_ngram_size=settings.no_repeat_ngram_size,
                  early_stopping=settings.early_stopping, forced_bos_token_id=settings.forced_bos_token_id,
                  forced_eos_token_id=settings.forced_eos_token_id, eos_token_id=list(settings.eos_token_ids),
                  pad_token_id=settings.pad_token_id, decoder_start_token_id=start, do_sample=False)
    own = task._decode_settings(SummarizationOptions(), params)[0]
    overridden = [f"{k} {getattr(settings, k)} (the checkpoint's {getattr(own, k)})"
                  for k in ("num_beams", "min_length") if getattr(settings, k) != getattr(own, k)]
    if settings.max_new_tokens != own.max_new_tokens:
        why = " (the random-weight stand-in's cap; --max-length N to change)" if args.max_length is None else ""
        overridden.append(f"max_length {settings.max_new_tokens + 1}{why} (the checkpoint's {own.max_new_tokens + 1})")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run_ours():
        r = task(args.text, opts)
        return r.output_ids.tolist(), r.summary_text, r.step, r.input_ids.tolist(), r.truncated

    def run_theirs():
        ids = tok(prefix + args.text, return_tensors="pt", truncation=True, max_length=task.max_source + 2 -
                  (task.bos_id is None))["input_ids"].to(device)
        with torch.inference_mode():
            out = theirs.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
        out = out[0].tolist()
        return out, tok.decode(out, skip_special_tokens=True), None, ids[0].tolist(), None

    times: dict[str, list[float]] = {"ours": [], "transformers": []}
    outputs = {}
    fns = {"ours": run_ours, "transformers": run_theirs}
    for i in range(args.repeats + 1):
        for name in (("ours", "transformers") if i % 2 == 0 else ("transformers", "ours")):
            sync()
            t0 = time.perf_counter()
            outputs[name] = fns[name]()
            sync()
            if i:
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    ours_ids, ours_text, steps, ours_src, cut = outputs["ours"]
    their_ids, their_text, _, their_src, _ = outputs["transformers"]
    same = ours_ids == their_ids and ours_text == their_text
    differ = sum(a != b for a, b in zip(ours_ids, their_ids)) + abs(len(ours_ids) - len(their_ids))

    model = task.model
    beams = settings.num_beams
    nbytes = step_bytes(model, kind, beams)
    bw = read_bandwidth_gbs(str(device))
    floor_ms = memory_floor_ms(nbytes, bw)
    src = torch.tensor([ours_src], device=device)
    step, _ = task.arch.stepper(model, src)
    first = torch.full((beams, 1), start, dtype=torch.long, device=device)
    step(first)
    flops = count_flops(lambda: step(first))
    rate = gemm_gflops("float32", str(device), again=True)
    flop_ms = flop_floor_ms(flops, rate)
    mode = "greedy" if beams == 1 else f"beam search, {beams} beams"
    print(f"summarization: {ref} on {task.placement.describe()} ({cpu_name() if device.type == 'cpu' else device}), "
          f"torch threads {torch.get_num_threads()}, {mode}, source {len(ours_src)} tokens"
          f"{CUT if cut else ''}, {len(ours_ids)} output "
          f"tokens, {steps} decoding steps, medians of {args.repeats}")
    print(f"  settings (both): max_length {kwargs['max_length']}, min_length {kwargs['min_length']}, length_penalty "
          f"{kwargs['length_penalty']}, no_repeat_ngram_size {kwargs['no_repeat_ngram_size']}, early_stopping "
          f"{kwargs['early_stopping']}, forced BOS {kwargs['forced_bos_token_id']} / EOS "
          f"{kwargs['forced_eos_token_id']}, decoder start {start}"
          + (f"; OVERRIDDEN: {', '.join(overridden)}" if overridden else "; the checkpoint's own"))
    for name in ("ours", "transformers"):
        per_step = med[name] / max(steps, 1) * 1e3
        print(f"  {name:<13} {med[name] * 1e3:8.1f} ms end to end  {per_step:6.2f} ms/step"
              f" = {per_step / floor_ms:5.2f}x bandwidth floor, {per_step / flop_ms:6.1f}x FLOP floor")
    print(f"  speed-up: {med['transformers'] / med['ours']:.2f}x transformers (end to end)")
    print(f"bandwidth floor: {nbytes / 1e6:.0f} MB of decoder and LM-head weights a step at {bw:.1f} GB/s "
          f"(read, measured now) = {floor_ms:.2f} ms/step")
    print(f"FLOP floor: {flops / 1e9:.3f} GFLOP a step ({beams} rows) at {rate:.0f} GFLOP/s = {flop_ms:.3f} ms/step")
    if ours_src != their_src:
        print(f"source ids DIFFER: ours {len(ours_src)} tokens, transformers' tokenizer {len(their_src)}")
    note = " (random weights: ids beyond the made-up tokenizer's vocabulary)" if random_weights else ""
    print(f"tokens: {'identical' if same else f'{differ} of {len(their_ids)} differ'}; text: {ours_text[:60]!r}{note}")
    if not same:
        print(f"  ours:         {ours_ids}\n  transformers: {their_ids}")
    print(f"peak resident memory of this process: {peak_rss_mb():.0f} MB")
    return 0 if (same or args.precision == "fast") else 1
