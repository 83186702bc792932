"""BART: a Transformer *encoder-decoder* (sequence to sequence), as in the seed's walk-through
(summarization: "BART ... the encoder reads the text, the decoder writes the summary").

1. Encoder: token embeddings (the ``shared`` matrix, scaled by sqrt(d_model) when
   ``scale_embedding``) plus learned positions (``embed_positions``, read at position + 2: the first
   two rows are an offset BART was trained with), ``layernorm_embedding``, then post-LN layers of
   bidirectional self-attention and a GELU feed-forward network.
2. Decoder: the same embeddings for the tokens written so far (starting from
   ``decoder_start_token_id``), post-LN layers of *causal* self-attention, *cross-attention* onto the
   encoder's output (keys and values computed once per input and kept in the cache) and the
   feed-forward network.
3. LM head: the ``shared`` embeddings again (tied) plus ``final_logits_bias``.

Checkpoint layouts read (:func:`remap`): the shared embedding matrix as ``model.shared.weight``
and/or ``model.encoder.embed_tokens.weight`` / ``model.decoder.embed_tokens.weight`` / ``lm_head.weight``
(stored once, twice, three or four times; one copy is kept); with or without the ``model.`` prefix.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..device import Placement
from ..errors import CheckpointError, InputError
from .common import drop_legacy_buffers, load_strict, one_shared_embedding, require
from .encoder_decoder import DecoderCache, EncoderDecoder, stepper  # noqa: F401 - stepper: this model's
from .optimize import linear_add, linear_gelu, pack_for_decoding, place, vocab_logits

log = logging.getLogger(__name__)

OFFSET = 2  # BART's learned positions start at row 2
ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "relu": "relu"}


@dataclass(frozen=True)
class BartConfig:
    vocab_size: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    encoder_heads: int
    decoder_heads: int
    encoder_ffn_dim: int
    decoder_ffn_dim: int
    max_position_embeddings: int = 1024
    activation_function: str = "gelu"
    scale_embedding: bool = False
    tie_word_embeddings: bool = True
    pad_token_id: int = 1
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2
    decoder_start_token_id: int = 2
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | None = 2

    REQUIRED = ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim")

    @classmethod
    def from_hf(cls, cfg: Mapping) -> BartConfig:
        if cfg.get("model_type") != "bart":
            raise CheckpointError(f"config.json model_type is {cfg.get('model_type')!r}, not 'bart'.")
        require(cfg, cls.REQUIRED, "this BART checkpoint")
        act = str(cfg.get("activation_function", "gelu"))
        if act not in ACTIVATIONS:
            raise CheckpointError(f"BART activation {act!r} is not supported ({', '.join(ACTIVATIONS)}).")
        if cfg.get("normalize_before") or cfg.get("add_final_layer_norm"):
            raise CheckpointError("This is a pre-LN (mBART-style) BART; Taskscope runs BART's post-LN layers.")

        def tok(key, default):
            v = cfg.get(key, default)
            return None if v is None else int(v)
        c = cls(int(cfg["vocab_size"]), int(cfg["d_model"]), int(cfg["encoder_layers"]), int(cfg["decoder_layers"]),
                int(cfg["encoder_attention_heads"]), int(cfg["decoder_attention_heads"]),
                int(cfg["encoder_ffn_dim"]), int(cfg["decoder_ffn_dim"]),
                int(cfg.get("max_position_embeddings", 1024)), act, bool(cfg.get("scale_embedding", False)),
                bool(cfg.get("tie_word_embeddings", True)), int(cfg.get("pad_token_id", 1) or 0),
                tok("bos_token_id", 0), tok("eos_token_id", 2), int(cfg.get("decoder_start_token_id", 2)),
                tok("forced_bos_token_id", tok("bos_token_id", 0) if cfg.get("force_bos_token_to_be_generated")
                    else None), tok("forced_eos_token_id", 2))
        for heads in (c.encoder_heads, c.decoder_heads):
            if c.d_model % heads:
                raise CheckpointError(f"config.json: d_model {c.d_model} is not a multiple of {heads} heads.")
        return c


def _feed_forward(fc1: nn.Module, fc2: nn.Module, x: torch.Tensor, act: str) -> torch.Tensor:
    """x + fc2(act(fc1(x))): the activation and the residual add fused into the GEMMs where packed."""
    h = F.relu(fc1(x)) if act == "relu" else linear_gelu(fc1, x, approximate=ACTIVATIONS[act])
    return linear_add(fc2, h, x)


class Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, h, T, hd)

    def kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.k_proj(x)), self.split(self.v_proj(x))

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None, causal: bool = False,
               want_weights: bool = False):
        q = self.split(self.q_proj(x))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        weights = None
        if want_weights:
            s = (q.float() @ k.float().transpose(-2, -1)) * self.head_dim ** -0.5
            if causal:
                t, total = s.shape[-2:]
                s = s.masked_fill(~torch.ones(t, total, dtype=torch.bool, device=s.device).tril(total - t),
                                  float("-inf"))
            elif mask is not None:
                s = s.masked_fill(~mask, float("-inf"))
            weights = s.softmax(dim=-1)
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1)), weights


class EncoderLayer(nn.Module):
    def __init__(self, c: BartConfig) -> None:
        super().__init__()
        d = c.d_model
        self.self_attn = Attention(d, c.encoder_heads)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, c.encoder_ffn_dim), nn.Linear(c.encoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.act = c.activation_function

    def forward(self, x, mask):
        k, v = self.self_attn.kv(x)
        x = self.self_attn_layer_norm(x + self.self_attn.attend(x, k, v, mask)[0])
        return self.final_layer_norm(_feed_forward(self.fc1, self.fc2, x, self.act))


class DecoderLayer(nn.Module):
    def __init__(self, c: BartConfig) -> None:
        super().__init__()
        d = c.d_model
        self.self_attn = Attention(d, c.decoder_heads)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn = Attention(d, c.decoder_heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, c.decoder_ffn_dim), nn.Linear(c.decoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.act = c.activation_function


class Stack(nn.Module):
    def __init__(self, c: BartConfig, decoder: bool) -> None:
        super().__init__()
        self.embed_positions = nn.Embedding(c.max_position_embeddings + OFFSET, c.d_model)
        self.layernorm_embedding = nn.LayerNorm(c.d_model)
        n = c.decoder_layers if decoder else c.encoder_layers
        self.layers = nn.ModuleList((DecoderLayer(c) if decoder else EncoderLayer(c)) for _ in range(n))


@dataclass
class BartOutput:
    logits: torch.Tensor  # (B, T, vocab) float32
    cross_attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, heads, T, S)


class Bart(EncoderDecoder):
    """BartForConditionalGeneration."""

    def __init__(self, config: BartConfig) -> None:
        super().__init__()
        self.config = config
        self.decoder_layers = config.decoder_layers
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = Stack(config, decoder=False)
        self.decoder = Stack(config, decoder=True)
        self.register_buffer("final_logits_bias", torch.zeros(1, config.vocab_size))
        self.lm_head = None if config.tie_word_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.embed_scale = config.d_model ** 0.5 if config.scale_embedding else 1.0
        #: the tied head (+ final_logits_bias) packed for decoding steps (pack_for_decoding), or None
        self.packed_head: nn.Module | None = None

    def _embed(self, stack: Stack, ids: torch.Tensor, past: int) -> torch.Tensor:
        t = ids.shape[1]
        if past + t > self.config.max_position_embeddings:
            raise InputError(f"The text is {past + t} tokens long; this model reads at most "
                             f"{self.config.max_position_embeddings}.")
        x = self.shared(ids) * self.embed_scale + stack.embed_positions.weight[past + OFFSET: past + t + OFFSET]
        return stack.layernorm_embedding(x)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, S) -> encoder states (B, S, D)."""
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.bool()[:, None, None, :]
        x = self._embed(self.encoder, input_ids, 0)
        for layer in self.encoder.layers:
            x = layer(x, mask)
        return x

    def decode(self, ids: torch.Tensor, encoder_states: torch.Tensor, cache: DecoderCache | None = None,
               encoder_mask: torch.Tensor | None = None, last_only: bool = False,
               want_cross: bool = False) -> BartOutput:
        """Decoder ids (B, T) (after those in ``cache``) over encoder states (B, S, D) -> logits."""
        past = 0 if cache is None else cache.length
        x = self._embed(self.decoder, ids, past)
        t = ids.shape[1]
        mask = None
        if encoder_mask is not None and not bool(encoder_mask.all()):
            mask = encoder_mask.bool()[:, None, None, :]
        crosses = []
        for i, layer in enumerate(self.decoder.layers):
            k, v = layer.self_attn.kv(x)
            if cache is not None:
                if cache.self_k[i] is not None:
                    k, v = torch.cat([cache.self_k[i], k], 2), torch.cat([cache.self_v[i], v], 2)
                cache.self_k[i], cache.self_v[i] = k, v
            self_mask, causal = None, False
            if t > 1:
                if past == 0:
                    causal = True
                else:
                    self_mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(past)
            a, _ = layer.self_attn.attend(x, k, v, self_mask, causal)
            x = layer.self_attn_layer_norm(x + a)
            cross = cache.cross[i] if cache is not None else None
            if cross is None:
                cross = layer.encoder_attn.kv(encoder_states)
                if cache is not None:
                    cache.cross[i] = cross
            a, w = layer.encoder_attn.attend(x, cross[0], cross[1], mask, want_weights=want_cross)
            crosses.append(w)
            x = layer.encoder_attn_layer_norm(x + a)
            x = layer.final_layer_norm(_feed_forward(layer.fc1, layer.fc2, x, layer.act))
        if cache is not None:
            cache.length = past + t
        if last_only:
            x = x[:, -1:]
        logits = vocab_logits(x, self.packed_head, self.lm_head, self.shared.weight, self.final_logits_bias[0])
        return BartOutput(logits.float(), tuple(crosses) if want_cross else None)


# ----------------------------------------------------------------------------- loading

EMBEDDING_COPIES = ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def remap(state: Mapping[str, torch.Tensor], tied: bool = True) -> dict[str, torch.Tensor]:
    """Hub keys -> ours (pure): ``model.`` dropped, one copy of the shared embeddings kept as
    ``shared.weight``, the tied ``lm_head.weight`` dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, value in drop_legacy_buffers(state).items():
        out[key.removeprefix("model.")] = value
    return one_shared_embedding(out, EMBEDDING_COPIES, tied)


def build(config: BartConfig, state: Mapping[str, torch.Tensor]) -> Bart:
    model = Bart(config)
    load_strict(model, remap(state, config.tie_word_embeddings), "this BART")
    return model.eval().requires_grad_(False)


def from_checkpoint(folder: Path, placement: Placement) -> Bart:
    from ..hub import load_weights, read_json
    config = BartConfig.from_hf(read_json(folder, "config.json"))
    model = build(config, load_weights(folder))
    log.info("bart: %d+%d layers, width %d, vocabulary %d", config.encoder_layers, config.decoder_layers,
             config.d_model, config.vocab_size)
    model = place(model, placement)
    model.packed_head = pack_for_decoding(model, device=placement.device, dtype=placement.dtype,
                                          tied_head=model.shared.weight if model.lm_head is None else None,
                                          head_bias=model.final_logits_bias[0])
    return model
