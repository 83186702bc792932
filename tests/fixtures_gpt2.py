"""A small random-weight GPT-2 checkpoint, built once per session with transformers (the oracle) and
saved in the REAL layout of openai-community/gpt2 and distilbert/distilgpt2:

* ``gpt2_checkpoint`` — ``model.safetensors`` with keys WITHOUT the ``transformer.`` prefix, WITH the
  legacy ``h.N.attn.bias`` (the (1, 1, n_positions, n_positions) causal mask) and
  ``h.N.attn.masked_bias`` buffers, no ``lm_head.weight`` (tied); ``vocab.json`` + ``merges.txt``
  (a byte-level BPE trained here on a few English and non-English sentences), no tokenizer.json;
  config.json as the hub's (``architectures: ["GPT2LMHeadModel"]``, ``task_specific_params``).
* ``gpt2_native`` — the same weights as transformers 5 saves them, which the oracle loads.

Weights are randomised so that next-token distributions are peaked but not one-hot (greedy and beam
search have clear winners; sampling still varies): width 32, 4 heads, 2 layers, 128 positions.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

CORPUS = """The quick brown fox jumps over the lazy dog. Once upon a time there was a little house by the river.
Hello, world! The city of Paris is the capital of France. People lived there many years ago.
Le café est très bon. Über den Wolken muss die Freiheit wohl grenzenlos sein. こんにちは世界 🙂
In the beginning was the word, and the word was with the model. Numbers: 1 2 3 10 100 2026.""".split("\n")

TINY_GPT2 = dict(n_embd=32, n_layer=2, n_head=4, n_positions=128, resid_pdrop=0.0, embd_pdrop=0.0,
                 attn_pdrop=0.0)


def _tokenizer_files(folder: Path) -> int:
    """Train a byte-level BPE here and write vocab.json + merges.txt; returns the vocabulary size."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(CORPUS * 20, vocab_size=420, min_frequency=1, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    tok.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    # GPT-2 has <|endoftext|> last; ours is id 0 as trained: keep as is, the config says which
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"model_max_length": TINY_GPT2["n_positions"], "add_prefix_space": False,
         "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}),
        encoding="utf-8")
    return len(vocab)


def randomise(model, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln_" in name and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif name.endswith("wte.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.6)
            elif name.endswith("wpe.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            else:  # Conv1D (in, out)
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / p.shape[0] ** 0.5))


def make_gpt2(folder: Path, native_folder: Path, seed: int = 7) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _tokenizer_files(folder)
    eos = 0  # <|endoftext|>, the trainer's first special token
    config = GPT2Config(vocab_size=vocab_size, bos_token_id=eos, eos_token_id=eos, **TINY_GPT2)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    randomise(model, seed)
    model.save_pretrained(native_folder)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        (native_folder / name).write_bytes((folder / name).read_bytes())
    # the hub layout: no prefix, the legacy buffers, no lm_head
    n = TINY_GPT2["n_positions"]
    state = {}
    for key, value in model.state_dict().items():
        if key == "lm_head.weight":
            continue
        state[key.removeprefix("transformer.")] = value.contiguous().clone()
    for i in range(TINY_GPT2["n_layer"]):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n, dtype=torch.uint8)).view(1, 1, n, n).bool()
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    hub_config = json.loads((native_folder / "config.json").read_text())
    hub_config.pop("transformers_version", None)
    hub_config.update(architectures=["GPT2LMHeadModel"],
                      task_specific_params={"text-generation": {"do_sample": True, "max_length": 50}})
    (folder / "config.json").write_text(json.dumps(hub_config, indent=2))


@pytest.fixture(scope="session")
def gpt2_pair(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gpt2")
    make_gpt2(root / "gpt2", root / "gpt2-native")
    return root / "gpt2", root / "gpt2-native"


@pytest.fixture(scope="session")
def gpt2_checkpoint(gpt2_pair) -> Path:
    return gpt2_pair[0]


@pytest.fixture(scope="session")
def gpt2_native(gpt2_pair) -> Path:
    return gpt2_pair[1]
