"""GPT-2 (and DistilGPT2): a Transformer *decoder* that reads byte-level BPE tokens and predicts the
next one, as in the seed's walk-through ("How 🤗 Transformers solve tasks", GPT-2).

1. Each token id becomes its *token embedding* (``wte``) plus a learned *position embedding*
   (``wpe``; GPT-2 reads at most ``n_positions`` = 1024 tokens).
2. ``n_layer`` pre-LN blocks: LayerNorm, *masked* (causal) multi-head self-attention — token i sees
   tokens 0..i only, so the model cannot peek at what it is asked to predict — added to its input;
   LayerNorm, a feed-forward network (GELU, tanh approximation: ``gelu_new``) added likewise.
3. A final LayerNorm (``ln_f``) and the *LM head*: a linear map to the vocabulary whose weights are
   the token embeddings themselves (tied), giving the next token's logits at every position.

Generation (engine/generation.py) calls the model once on the prompt and then once per new token;
the keys and values every layer computed for earlier tokens are kept in a :class:`KVCache`, so a
step computes one token's row only.

Checkpoint layouts read (:func:`remap`): the hub's openai-community/gpt2 and distilbert/distilgpt2
(keys without the ``transformer.`` prefix, the legacy ``attn.bias`` causal-mask and
``attn.masked_bias`` buffers present, no ``lm_head`` weight since it is tied), and what
transformers 5 writes (``transformer.`` prefix). OpenAI's ``Conv1D`` layers store their weights as
(in, out): they are transposed here into ``nn.Linear``'s (out, in).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..device import Placement
from ..errors import CheckpointError, InputError
from .common import drop_legacy_buffers, load_strict, require
from .optimize import place

log = logging.getLogger(__name__)

#: activation_function -> F.gelu's ``approximate`` (or "relu")
ACTIVATIONS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none", "relu": "relu"}


@dataclass(frozen=True)
class GPT2Config:
    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    n_inner: int
    activation_function: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    scale_attn_weights: bool = True
    scale_by_layer: bool = False  # scale_attn_by_inverse_layer_idx
    tie_word_embeddings: bool = True
    bos_token_id: int | None = 50256
    eos_token_id: int | None = 50256
    pad_token_id: int | None = None

    REQUIRED = ("vocab_size", "n_embd", "n_layer", "n_head")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_hf(cls, cfg: Mapping) -> GPT2Config:
        if cfg.get("model_type") != "gpt2":
            raise CheckpointError(f"config.json model_type is {cfg.get('model_type')!r}, not 'gpt2'.")
        require(cfg, cls.REQUIRED, "this GPT-2 checkpoint")
        act = str(cfg.get("activation_function", "gelu_new"))
        if act not in ACTIVATIONS:
            raise CheckpointError(f"GPT-2 activation {act!r} is not supported ({', '.join(ACTIVATIONS)}).")
        if cfg.get("add_cross_attention"):
            raise CheckpointError("This GPT-2 has cross-attention layers (add_cross_attention); Taskscope runs "
                                  "GPT-2 as a plain language model.")
        d = int(cfg["n_embd"])
        config = cls(int(cfg["vocab_size"]), int(cfg.get("n_positions", 1024)), d, int(cfg["n_layer"]),
                     int(cfg["n_head"]), int(cfg.get("n_inner") or 4 * d), act,
                     float(cfg.get("layer_norm_epsilon", 1e-5)), bool(cfg.get("scale_attn_weights", True)),
                     bool(cfg.get("scale_attn_by_inverse_layer_idx", False)),
                     bool(cfg.get("tie_word_embeddings", True)),
                     _token(cfg.get("bos_token_id")), _token(cfg.get("eos_token_id")),
                     _token(cfg.get("pad_token_id")))
        if d % config.n_head:
            raise CheckpointError(f"config.json: n_embd {d} is not a multiple of {config.n_head} heads.")
        return config


def _token(value) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else int(value)


class KVCache:
    """Every layer's keys and values for the tokens read so far: per layer (B, heads, T, head_dim)."""

    def __init__(self, n_layer: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else int(self.keys[0].shape[2])

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep batch rows ``rows`` (B',) (beam search: each new beam's parent)."""
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            if k is not None:
                self.keys[i], self.values[i] = k.index_select(0, rows), v.index_select(0, rows)


@dataclass
class GPT2Output:
    logits: torch.Tensor  # (B, T, vocab) float32 (or (B, 1, vocab) when only the last is asked)
    cache: KVCache | None
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, heads, T, T_total) float32


class Attention(nn.Module):
    def __init__(self, config: GPT2Config, layer: int) -> None:
        super().__init__()
        d = config.n_embd
        self.heads, self.head_dim = config.n_head, config.head_dim
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        scale = self.head_dim ** -0.5 if config.scale_attn_weights else 1.0
        if config.scale_by_layer:
            scale /= float(layer + 1)
        self.scale = scale

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int, past: int,
                want_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, D) after ``past`` cached tokens -> (B, T, D); the new keys / values appended to ``cache``."""
        b, t, d = x.shape
        q, k, v = self.c_attn(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x (B, h, T, hd)
        if cache is not None:
            k, v = cache.append(layer, k, v)
        total = k.shape[2]
        mask = None
        causal = False
        if t > 1:
            if past == 0:
                causal = True
            else:  # new rows i see the past and new tokens up to themselves
                mask = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(diagonal=past)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=self.scale)
        weights = None
        if want_weights:
            scores = (q.float() @ k.float().transpose(-2, -1)) * self.scale  # (B, h, T, total)
            allowed = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(diagonal=past)
            weights = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        return self.c_proj(out.transpose(1, 2).reshape(b, t, d)), weights


class MLP(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.n_inner)
        self.c_proj = nn.Linear(config.n_inner, config.n_embd)
        self.act = config.activation_function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        h = F.relu(h) if self.act == "relu" else F.gelu(h, approximate=ACTIVATIONS[self.act])
        return self.c_proj(h)


class Block(nn.Module):
    def __init__(self, config: GPT2Config, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = Attention(config, layer)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x, cache, past, want_weights=False):
        a, w = self.attn(self.ln_1(x), cache, self.layer, past, want_weights)
        x = x + a
        return x + self.mlp(self.ln_2(x)), w


class GPT2(nn.Module):
    """GPT2LMHeadModel: token ids -> next-token logits, with a KV cache."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.h = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.lm_head = None if config.tie_word_embeddings else nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layer)

    def forward(self, input_ids: torch.Tensor, cache: KVCache | None = None, last_only: bool = False,
                want_attention: bool = False) -> GPT2Output:
        """input_ids (B, T) (the tokens after those already in ``cache``) -> GPT2Output; the cache is
        updated in place. ``last_only``: the logits of the last position only (generation)."""
        if input_ids.dim() != 2 or input_ids.shape[1] < 1:
            raise InputError(f"GPT-2 takes token ids (B, T) with T >= 1; got shape {tuple(input_ids.shape)}.")
        past = 0 if cache is None else cache.length
        t = input_ids.shape[1]
        if past + t > self.config.n_positions:
            raise InputError(f"The text is {past + t} tokens long; this model reads at most "
                             f"{self.config.n_positions}.")
        x = self.wte(input_ids) + self.wpe.weight[past: past + t]  # (B, T, D)
        attentions = []
        for block in self.h:
            x, w = block(x, cache, past, want_attention)
            attentions.append(w)
        if last_only:
            x = x[:, -1:]
        x = self.ln_f(x)
        weight = self.wte.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(x, weight)  # (B, T, vocab)
        return GPT2Output(logits.float(), cache, tuple(attentions) if want_attention else None)


# ----------------------------------------------------------------------------- loading

CONV1D = re.compile(r"^h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")


def remap(state: Mapping[str, torch.Tensor], tied: bool = True) -> dict[str, torch.Tensor]:
    """Hub keys (any layout in the module docstring) -> ours (pure): the ``transformer.`` prefix
    dropped, the legacy attention buffers dropped, Conv1D weights transposed to (out, in), the tied
    ``lm_head.weight`` dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, value in drop_legacy_buffers(state).items():
        if key.startswith("transformer."):
            key = key[len("transformer."):]
        if re.match(r"^h\.\d+\.attn\.(bias|masked_bias)$", key):
            continue  # the causal mask buffers of old checkpoints
        if key == "lm_head.weight" and tied:
            continue
        if CONV1D.match(key) and value.dim() == 2:
            value = value.t().contiguous()
        out[key] = value
    return out


def build(config: GPT2Config, state: Mapping[str, torch.Tensor]) -> GPT2:
    model = GPT2(config)
    load_strict(model, remap(state, config.tie_word_embeddings), "this GPT-2")
    return model.eval().requires_grad_(False)


def from_checkpoint(folder: Path, placement: Placement) -> GPT2:
    """A GPT-2 checkpoint folder -> model on ``placement``, eval, no grad. CheckpointError when the
    folder is not a GPT-2 or its weights do not fit."""
    from ..hub import load_weights, read_json

    config = GPT2Config.from_hf(read_json(folder, "config.json"))
    model = build(config, load_weights(folder))
    log.info("gpt2: %d layers, width %d, %d heads, vocabulary %d", config.n_layer, config.n_embd,
             config.n_head, config.vocab_size)
    return place(model, placement)


def stepper(model: GPT2):
    """(step, reorder) for engine.generation.decode: ``step(new_tokens (B, t)) -> logits (B, vocab)``
    of the last position, the KV cache kept between calls; ``reorder(rows)`` for beam search."""
    cache = model.new_cache()

    def step(new: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(new, cache, last_only=True).logits[:, -1]

    def reorder(rows: torch.Tensor) -> None:
        cache.reorder(rows)

    return step, reorder
