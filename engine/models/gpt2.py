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
step computes one token's row only. Such a step reads every weight once for a row or a few (beam
search): on the CPU its matrices are packed for that at load (optimize.pack_for_decoding).

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
from .optimize import linear_gelu, pack_for_decoding, place, vocab_logits

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
    """Every layer's keys and values for the tokens read so far, in ONE preallocated tensor
    (B, n_layer, 2, heads, capacity, head_dim) written in place: a decoding step copies its new row in
    (no torch.cat, no per-step allocation) and attention reads the filled part as a view. The capacity
    grows by doubling (a copy of the filled part) when a call needs more. Beam search's
    :meth:`reorder` copies only the filled part of the rows that change (in place through a second
    buffer of the same shape when few do, else all of them into it, then the two swap), so it
    allocates nothing either after its first call."""

    def __init__(self, n_layer: int, heads: int, head_dim: int, max_length: int | None = None) -> None:
        self.n_layer, self.heads, self.head_dim, self.max_length = n_layer, heads, head_dim, max_length
        self.data: torch.Tensor | None = None  # (B, n_layer, 2, heads, capacity, head_dim)
        self._spare: torch.Tensor | None = None  # reorder's target, same shape
        self.length = 0

    @property
    def capacity(self) -> int:
        return 0 if self.data is None else int(self.data.shape[4])

    def reserve(self, like: torch.Tensor, batch: int, needed: int) -> None:
        """Room for ``needed`` tokens of ``batch`` rows (dtype / device of ``like``), the filled part kept."""
        if self.data is not None and self.length and batch != self.data.shape[0]:
            raise InputError(f"This KV cache holds {self.data.shape[0]} sequences; the step gave {batch}.")
        if self.data is not None and needed <= self.capacity and batch == self.data.shape[0]:
            return
        cap = max(needed, 2 * self.capacity, 64)
        cap = -(-cap // 64) * 64  # a multiple of 64
        if self.max_length:
            cap = max(needed, min(cap, self.max_length))
        data = like.new_empty(batch, self.n_layer, 2, self.heads, cap, self.head_dim)
        if self.data is not None and self.length:
            data[..., : self.length, :] = self.data[..., : self.length, :]
        self.data, self._spare = data, None

    def write(self, layer: int, kv: torch.Tensor, past: int) -> tuple[torch.Tensor, torch.Tensor]:
        """kv (2, B, heads, T, head_dim): the new tokens' keys and values, stored after ``past`` ->
        this layer's keys and values so far, views (B, heads, past + T, head_dim)."""
        end = past + kv.shape[3]
        slot = self.data[:, layer]  # (B, 2, heads, capacity, head_dim)
        slot[:, :, :, past:end].copy_(kv.transpose(0, 1))
        return slot[:, 0, :, :end], slot[:, 1, :, :end]

    @torch.inference_mode()
    def reorder(self, rows: torch.Tensor) -> None:
        """Keep batch rows ``rows`` (B',) (beam search: each new beam's parent)."""
        if self.data is None:
            return
        if rows.shape[0] != self.data.shape[0]:
            self.data, self._spare = self.data.index_select(0, rows), None
            return
        n = self.length
        moved = [(i, row) for i, row in enumerate(rows.tolist()) if row != i]
        if not moved:  # every beam continues its own sequence
            return
        if self._spare is None:
            self._spare = torch.empty_like(self.data)
        if 2 * len(moved) < len(rows):  # few rows change: stash their sources, then copy them in place
            sources = sorted({row for _, row in moved})
            for j, row in enumerate(sources):
                self._spare[j, ..., :n, :].copy_(self.data[row, ..., :n, :])
            for i, row in moved:
                self.data[i, ..., :n, :].copy_(self._spare[sources.index(row), ..., :n, :])
            return
        for i, row in enumerate(rows.tolist()):  # the filled part of each row, into the other buffer
            self._spare[i, ..., :n, :].copy_(self.data[row, ..., :n, :])
        self.data, self._spare = self._spare, self.data


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
        """x (B, T, D) after ``past`` cached tokens -> (B, T, D); the new keys / values written into ``cache``."""
        b, t, d = x.shape
        qkv = self.c_attn(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, h, T, hd)
        q = qkv[0]
        if cache is not None:
            k, v = cache.write(layer, qkv[1:], past)  # (B, h, past + T, hd) each, views of the cache
        else:
            k, v = qkv[1], qkv[2]
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
        return self.c_proj(out.transpose(1, 2).reshape(b, t, d)), weights  # (B, T, D)


class MLP(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.n_inner)
        self.c_proj = nn.Linear(config.n_inner, config.n_embd)
        self.act = config.activation_function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act == "relu":
            h = F.relu(self.c_fc(x))
        else:  # one fused GEMM + GELU where c_fc is packed
            h = linear_gelu(self.c_fc, x, approximate=ACTIVATIONS[self.act])
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
        #: the tied head packed for decoding steps (a copy of wte's matrix; pack_for_decoding), or None
        self.packed_head: nn.Module | None = None

    def new_cache(self) -> KVCache:
        c = self.config
        return KVCache(c.n_layer, c.n_head, c.head_dim, c.n_positions)

    @torch.inference_mode()  # the cache is written in place: its tensors are inference tensors
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
        if cache is not None:
            cache.reserve(self.wpe.weight, input_ids.shape[0], past + t)
        x = self.wte(input_ids) + self.wpe.weight[past: past + t]  # (B, T, D)
        attentions = []
        for block in self.h:
            x, w = block(x, cache, past, want_attention)
            attentions.append(w)
        if last_only:
            x = x[:, -1:]
        if cache is not None:
            cache.length = past + t
        x = self.ln_f(x)
        logits = vocab_logits(x, self.packed_head, self.lm_head, self.wte.weight)  # (B, T, vocab)
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
    model = place(model, placement)
    model.packed_head = pack_for_decoding(model, device=placement.device, dtype=placement.dtype,
                                          tied_head=model.wte.weight if model.lm_head is None else None)
    return model


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
