"""BERT and DistilBERT: a Transformer *encoder* over WordPiece tokens, one pretrained body and a
small head per task, as in the seed's NLP walk-through ("How 🤗 Transformers solve tasks", BERT).

1. The text is split into WordPiece tokens (engine.processors.tokenizer), framed as
   ``[CLS] A [SEP]`` (or ``[CLS] A [SEP] B [SEP]`` for two segments, e.g. a question and its
   context). Each token becomes the sum of three learned vectors: its *token embedding*, a
   *position embedding* (the model reads no order otherwise) and a *segment embedding* (which of
   the two texts it belongs to; ``token_type_ids``). A LayerNorm follows.
2. The *encoder*: post-LN layers, each multi-head self-attention over every token (no causal
   mask: BERT sees the words on both sides) then a feed-forward network (GELU), each added to its
   input and then layer-normalised.
3. The *heads* read the final hidden states:

   - ``sequence-classification``: the *pooler* (a dense layer on the final ``[CLS]`` state, tanh)
     and a linear classifier -> one score per label;
   - ``token-classification``: a linear layer on every token -> per-token labels (NER's B-/I- tags);
   - ``question-answering``: a linear layer with two outputs per token -> the *span start* and
     *span end* logits of the answer;
   - ``masked-lm``: the pretraining task, *masked language modelling*: a transform (dense, GELU,
     LayerNorm) and a *decoder* to the vocabulary whose weights are the token embeddings
     themselves (tied), plus an output bias;
   - ``embeddings``: none; the final hidden states (sentence-transformers pool them).

*DistilBERT* (Sanh et al., 2019) is a BERT distilled to half the layers, without segment
embeddings. Its layers compute the same thing under other names (``q_lin``, ``sa_layer_norm``,
``ffn.lin1``...), its classification "pooler" is ``pre_classifier`` with a ReLU, and its MLM head
is ``vocab_transform`` / ``vocab_layer_norm`` / ``vocab_projector``: :func:`remap` renames its
keys to BERT's, so one set of modules runs both.

Checkpoint layouts read (:func:`remap`): what transformers 5 writes; ``google-bert/bert-base-uncased``
(a ``BertForPreTraining`` state: legacy ``LayerNorm.gamma``/``beta`` names, the pooler and the
next-sentence head that the MLM does not use, no decoder weight since it is tied);
``distilbert-base-*`` (``DistilBertForMaskedLM`` with or without ``vocab_projector.weight``);
sentence-transformers' bare ``BertModel`` folders (keys without the ``bert.`` prefix); legacy
``position_ids`` buffers are skipped.

Speed (batch 1, CPU): the query, key and value projections are one GEMM (fused at load), every
linear layer's weight is packed once for oneDNN with the GELU and the residual adds fused in
(optimize.pack_linears / linear_gelu / linear_add), attention is SDPA with the padding mask only
when there is padding, and the last layer computes only the rows a head reads (``rows``: the
``[CLS]`` row for classification, the ``[MASK]`` rows for fill-mask); the MLM decoder runs on
those rows only.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..device import Placement
from ..errors import CheckpointError, InputError
from .common import drop_legacy_buffers, load_strict, require
from .optimize import FastPlan, cast_at_boundaries, linear_add, linear_gelu, pack_linears, packed_copy, place, \
    vocab_logits

log = logging.getLogger(__name__)

#: the heads, by the task that reads them
HEADS = ("sequence-classification", "token-classification", "question-answering", "masked-lm", "embeddings")
#: config.json ``architectures`` suffixes that carry each head's weights
HEAD_ARCHITECTURES = {
    "sequence-classification": ("ForSequenceClassification",),
    "token-classification": ("ForTokenClassification",),
    "question-answering": ("ForQuestionAnswering",),
    "masked-lm": ("ForMaskedLM", "ForPreTraining"),
    "embeddings": (),
}
#: hidden_act -> F.gelu's ``approximate`` (the GELUs, fused into the expansion GEMM when packed), or relu
GELUS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}
ACTIVATIONS = (*GELUS, "relu")
#: rows a PackedLinear is tuned for by default: a sentence or two (any row count works, a little
#: slower; question answering packs for its 384-token windows)
PACK_ROWS = 64

#: The ``fast`` precision, per head (engine.device.for_model): the embeddings, every LayerNorm (the
#: post-LN residual stream) and the heads stay float32, the rest runs in the reduced dtype. Measured
#: against float32 on random-weight checkpoints of the catalog's dimensions (benchmarks/text.py's
#: build_random; 4 sentences) and, for embeddings, on all-MiniLM-L6-v2's real weights (8 sentences):
#:   head                     bfloat16 (plan): max |prob change|, argmax changes   float16 (plan)
#:   sequence-classification  0.0003, 0                                            0.0001, 0
#:   token-classification     0.0048, 0                                            0.0008, 0
#:   question-answering       0.0002, 0 (start / end)                              0.0000, 0
#:   embeddings (cosine)      0.0012, ranking unchanged                            0.00015, unchanged
#:   masked-lm (top 5 of 30522 at every token)  28 changes (0.043)                 6 changes (0.0036)
#: So the masked-LM head (fill-mask) runs exact: in either reduced dtype its candidates change order.
_KEEP = ("bert.embeddings", "*LayerNorm", "bert.pooler", "classifier", "qa_outputs", "cls")
FAST_PLANS = {
    head: FastPlan(keep_fp32=_KEEP, dtypes=(torch.bfloat16, torch.float16), why="") for head in HEADS
}
FAST_PLANS["masked-lm"] = FastPlan(
    keep_fp32=_KEEP, dtypes=(),
    why="the masked-LM head's ranking of 30,522 vocabulary tokens changes in bfloat16 and in float16 "
        "(measured in engine/models/bert.py)")


@dataclass(frozen=True)
class BertConfig:
    """BERT's and DistilBERT's config.json, in BERT's terms (DistilBERT: ``dim`` -> hidden_size,
    ``n_layers``, ``n_heads``, ``hidden_dim`` -> intermediate_size, no segments, ReLU pooler)."""

    model_type: str  # "bert" | "distilbert"
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2  # segments; 0 for DistilBERT
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    pooler_act: str = "tanh"  # BERT's pooler; DistilBERT's pre_classifier is followed by a ReLU
    tie_word_embeddings: bool = True  # the MLM decoder is the token embedding matrix
    problem_type: str | None = None  # "regression" | "single_label_classification" | "multi_label_classification"
    id2label: dict[int, str] = field(default_factory=dict)

    BERT_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    DISTILBERT_REQUIRED = ("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim")

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf(cls, cfg: Mapping) -> BertConfig:
        """From a hub ``config.json`` dict (model_type "bert" or "distilbert"): unknown keys ignored,
        missing required keys an error."""
        kind = cfg.get("model_type")
        id2label = {int(k): str(v) for k, v in (cfg.get("id2label") or {}).items()}
        if not id2label and cfg.get("num_labels"):
            id2label = {i: f"LABEL_{i}" for i in range(int(cfg["num_labels"]))}
        common = {"id2label": id2label, "problem_type": cfg.get("problem_type"),
                  "pad_token_id": int(cfg.get("pad_token_id") or 0),
                  "max_position_embeddings": int(cfg.get("max_position_embeddings", 512)),
                  "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", True))}
        if kind == "bert":
            require(cfg, cls.BERT_REQUIRED, "this BERT checkpoint")
            if cfg.get("position_embedding_type", "absolute") != "absolute":
                raise CheckpointError(f"BERT with {cfg['position_embedding_type']!r} position embeddings is not "
                                      "supported (only 'absolute').")
            if cfg.get("is_decoder"):
                raise CheckpointError("This BERT is configured as a decoder (is_decoder); Taskscope runs BERT "
                                      "as the bidirectional encoder.")
            config = cls("bert", int(cfg["vocab_size"]), int(cfg["hidden_size"]), int(cfg["num_hidden_layers"]),
                         int(cfg["num_attention_heads"]), int(cfg["intermediate_size"]),
                         str(cfg.get("hidden_act", "gelu")), type_vocab_size=int(cfg.get("type_vocab_size", 2)),
                         layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)), pooler_act="tanh", **common)
        elif kind == "distilbert":
            require(cfg, cls.DISTILBERT_REQUIRED, "this DistilBERT checkpoint")
            config = cls("distilbert", int(cfg["vocab_size"]), int(cfg["dim"]), int(cfg["n_layers"]),
                         int(cfg["n_heads"]), int(cfg["hidden_dim"]), str(cfg.get("activation", "gelu")),
                         type_vocab_size=0, layer_norm_eps=1e-12, pooler_act="relu", **common)
        else:
            raise CheckpointError(f"config.json model_type is {kind!r}, not 'bert' or 'distilbert'.")
        if config.hidden_act not in ACTIVATIONS:
            raise CheckpointError(f"{kind} activation {config.hidden_act!r} is not supported "
                                  f"({', '.join(ACTIVATIONS)}).")
        if config.hidden_size % config.num_attention_heads:
            raise CheckpointError(f"config.json: hidden size {config.hidden_size} is not a multiple of "
                                  f"{config.num_attention_heads} attention heads.")
        return config


def _activation(x: torch.Tensor, act: str) -> torch.Tensor:
    return F.gelu(x, approximate=GELUS[act]) if act in GELUS else F.relu(x)


# ----------------------------------------------------------------------------- embeddings

class Embeddings(nn.Module):
    """Token + position + segment embeddings, then LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, d)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, d)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, d) if config.type_vocab_size else None
        self.LayerNorm = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        """input_ids (B, T), token_type_ids (B, T) or None (all segment 0) -> (B, T, D)"""
        x = self.word_embeddings(input_ids)  # (B, T, D)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                x = x + self.token_type_embeddings.weight[0]
            else:
                x = x + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings.weight[: input_ids.shape[1]]  # (T, D) broadcast over B
        return self.LayerNorm(x)


# ----------------------------------------------------------------------------- encoder

class AddNorm(nn.Module):
    """Post-LN: LayerNorm(residual + dense(x)); the add is fused into the GEMM when it is packed."""

    def __init__(self, d_in: int, d_out: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """(..., d_in), residual (..., d_out) -> (..., d_out)"""
        return self.LayerNorm(linear_add(self.dense, x, residual))


class Intermediate(nn.Module):
    """The feed-forward expansion and its activation (one fused GEMM + GELU when packed)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = config.hidden_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., intermediate_size)"""
        if self.act in GELUS:
            return linear_gelu(self.dense, x, GELUS[self.act])
        return F.relu(self.dense(x))


class Attention(nn.Module):
    """Multi-head self-attention: the query, key and value projections as one GEMM (``qkv``, fused
    from the checkpoint's three by :func:`remap`), SDPA, then the output projection + residual + LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.heads, self.head_dim = config.num_attention_heads, config.head_dim
        self.qkv = nn.Linear(d, 3 * d)
        self.output = AddNorm(d, d, config.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor | None = None,
                want_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, D), mask None or (B, 1, 1, T) bool (False: padding, never attended to), rows None or
        (R,) token indices whose outputs are wanted -> (B, T or R, D), and the attention probabilities
        (B, heads, T or R, T) float32 when asked."""
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim)  # (B, T, 3, heads, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, heads, T, head_dim)
        residual = x
        if rows is not None:
            q, residual = q[:, :, rows], x[:, rows]  # (B, heads, R, head_dim), (B, R, D)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, T|R, head_dim)
        probs = None
        if want_attention:  # the softmax SDPA computes, made explicit for the app (outputs unchanged)
            scores = (q.float() @ k.float().transpose(-2, -1)) * self.head_dim ** -0.5  # (B, heads, T|R, T)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.softmax(dim=-1)
        context = context.transpose(1, 2).reshape(b, q.shape[2], d)  # (B, T|R, D)
        return self.output(context, residual), probs


class Layer(nn.Module):
    """One post-LN encoder layer: LN(x + attention(x)), then LN(x + FFN(x))."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = AddNorm(config.intermediate_size, config.hidden_size, config.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor | None = None,
                want_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T, D) -> (B, T or R, D), probabilities (B, heads, T or R, T) or None"""
        x, probs = self.attention(x, mask, rows, want_attention)
        return self.output(self.intermediate(x), x), probs


class Encoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))


class Pooler(nn.Module):
    """The final [CLS] state through a dense layer and tanh (BERT) or ReLU (DistilBERT's pre_classifier)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = config.pooler_act

    def forward(self, cls_state: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, D)"""
        x = self.dense(cls_state)
        return torch.tanh(x) if self.act == "tanh" else F.relu(x)


class BertBody(nn.Module):
    """Embeddings and encoder (the hub's ``bert.`` / ``distilbert.`` part); the pooler when a head uses it."""

    def __init__(self, config: BertConfig, pooler: bool) -> None:
        super().__init__()
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config) if pooler else None


class MLMTransform(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.act = config.hidden_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., D)"""
        if self.act in GELUS:
            return self.LayerNorm(linear_gelu(self.dense, x, GELUS[self.act]))
        return self.LayerNorm(F.relu(self.dense(x)))


class MLMPredictions(nn.Module):
    """The masked-LM head: transform, then the decoder to the vocabulary, tied to the token embeddings
    (``decoder`` only when the config unties them), plus the output ``bias``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = MLMTransform(config)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder = None if config.tie_word_embeddings else nn.Linear(config.hidden_size, config.vocab_size,
                                                                         bias=False)
        #: the tied decoder (+ bias) as a packed copy of the token embeddings, on CPU (from_checkpoint);
        #: it reads the 94 MB matrix of bert-base ~3x faster for the few [MASK] rows than F.linear
        self.packed: nn.Module | None = None


class MLMHead(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = MLMPredictions(config)


@dataclass(frozen=True)
class BertOutput:
    """``logits`` by head: sequence-classification (B, num_labels); token-classification
    (B, T, num_labels); question-answering (B, T, 2): span start and end logits; masked-lm
    (B, R, vocab_size) at the ``rows`` asked for (all T without rows); embeddings: the final hidden
    states (B, T, D). All float32. ``attentions``: per layer (B, heads, T, T) float32, or None."""

    logits: torch.Tensor
    attentions: tuple[torch.Tensor, ...] | None


class Bert(nn.Module):
    """BERT or DistilBERT (by the config) with one head (:data:`HEADS`)."""

    def __init__(self, config: BertConfig, head: str) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown BERT head {head!r}")
        self.config, self.head = config, head
        self.bert = BertBody(config, pooler=head == "sequence-classification")
        if head == "sequence-classification":
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        elif head == "token-classification":
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        elif head == "question-answering":
            self.qa_outputs = nn.Linear(config.hidden_size, 2)
        elif head == "masked-lm":
            self.cls = MLMHead(config)

    def encode(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
               attention_mask: torch.Tensor | None = None, rows: torch.Tensor | None = None,
               want_attention: bool = False) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """The body: input_ids (B, T) int64, token_type_ids (B, T) or None, attention_mask (B, T)
        (1/True: a token, 0/False: padding) or None (no padding), rows (R,) int64 or None -> final
        hidden states (B, T, D) ((B, R, D) at ``rows`` when given and no attention is wanted), and
        per-layer attention probabilities (B, heads, T, T) float32 when ``want_attention``."""
        if input_ids.dim() != 2 or input_ids.shape[1] == 0:
            raise InputError(f"BERT takes token ids (B, T) with T >= 1; got shape {tuple(input_ids.shape)}.")
        t = input_ids.shape[1]
        if t > self.config.max_position_embeddings:
            raise InputError(f"The text is {t} tokens long; this model reads at most "
                             f"{self.config.max_position_embeddings}.")
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
        x = self.bert.embeddings(input_ids, token_type_ids)  # (B, T, D)
        layers = self.bert.encoder.layer
        attentions = []
        for i, layer in enumerate(layers):
            last_rows = rows if (i == len(layers) - 1 and not want_attention) else None
            x, probs = layer(x, mask, last_rows, want_attention)
            attentions.append(probs)
        if rows is not None and want_attention:
            x = x[:, rows]
        return x, (tuple(attentions) if want_attention else None)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, rows: torch.Tensor | None = None,
                want_attention: bool = False) -> BertOutput:
        """input_ids (B, T), token_type_ids (B, T) or None, attention_mask (B, T) or None; ``rows``
        (masked-lm and embeddings only): the token indices to compute the output at -> BertOutput."""
        if self.head == "sequence-classification":
            rows = torch.zeros(1, dtype=torch.long, device=input_ids.device)  # only the [CLS] row is read
        elif self.head in ("token-classification", "question-answering"):
            rows = None
        hidden, attentions = self.encode(input_ids, token_type_ids, attention_mask, rows, want_attention)
        if self.head == "sequence-classification":
            logits = self.classifier(self.bert.pooler(hidden[:, 0]))  # (B, num_labels)
        elif self.head == "token-classification":
            logits = self.classifier(hidden)  # (B, T, num_labels)
        elif self.head == "question-answering":
            logits = self.qa_outputs(hidden)  # (B, T, 2): span start, span end
        elif self.head == "masked-lm":
            p = self.cls.predictions
            h = p.transform(hidden)  # (B, R, D)
            logits = vocab_logits(h, p.packed, p.decoder, self.bert.embeddings.word_embeddings.weight,
                                  p.bias)  # (B, R, vocab)
        else:
            logits = hidden  # (B, T|R, D)
        return BertOutput(logits.float(), attentions)


# ----------------------------------------------------------------------------- loading

#: DistilBERT's names -> BERT's (after the ``distilbert.`` -> ``bert.`` and ``transformer.`` ->
#: ``encoder.`` renames), per layer and for the heads
DISTILBERT_LAYER = {
    "attention.out_lin.": "attention.output.dense.",
    "sa_layer_norm.": "attention.output.LayerNorm.",
    "ffn.lin1.": "intermediate.dense.",
    "ffn.lin2.": "output.dense.",
    "output_layer_norm.": "output.LayerNorm.",
}
DISTILBERT_HEADS = {
    "pre_classifier.": "bert.pooler.dense.",
    "vocab_transform.": "cls.predictions.transform.dense.",
    "vocab_layer_norm.": "cls.predictions.transform.LayerNorm.",
    "vocab_projector.bias": "cls.predictions.bias",
    "vocab_projector.weight": "cls.predictions.decoder.weight",
}
#: what each head never reads, dropped with a log line
UNUSED = {
    "sequence-classification": ("cls.", "qa_outputs."),
    "token-classification": ("bert.pooler.", "cls.", "qa_outputs."),
    "question-answering": ("bert.pooler.", "cls.", "classifier."),
    "masked-lm": ("bert.pooler.", "cls.seq_relationship.", "classifier.", "qa_outputs."),
    "embeddings": ("bert.pooler.", "cls.", "classifier.", "qa_outputs."),
}


def _rename(key: str) -> str:
    """One hub key -> ours, for BERT and DistilBERT layouts."""
    if key.endswith(".gamma"):  # the original BERT checkpoints' LayerNorm names
        key = key[: -len(".gamma")] + ".weight"
    elif key.endswith(".beta"):
        key = key[: -len(".beta")] + ".bias"
    if key.startswith("distilbert."):
        key = "bert." + key[len("distilbert."):]
    elif key.startswith(("embeddings.", "encoder.", "pooler.", "transformer.")):  # a bare BertModel / DistilBertModel
        key = "bert." + key
    if key.startswith("bert.transformer.layer."):
        key = "bert.encoder.layer." + key[len("bert.transformer.layer."):]
        n, _, rest = key[len("bert.encoder.layer."):].partition(".")
        for old, new in DISTILBERT_LAYER.items():
            if rest.startswith(old):
                rest = new + rest[len(old):]
                break
        key = f"bert.encoder.layer.{n}.{rest}"
    for old, new in DISTILBERT_HEADS.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


#: a layer's query / key / value projection, by its BERT or its DistilBERT name (after _rename)
QKV_KEY = re.compile(r"^bert\.encoder\.layer\.(\d+)\.attention\."
                     r"(?:self\.(query|key|value)|([qkv])_lin)\.(weight|bias)$")
QKV_ORDER = {"query": 0, "key": 1, "value": 2, "q": 0, "k": 1, "v": 2}


def remap(state: Mapping[str, torch.Tensor], head: str, tied: bool = True) -> dict[str, torch.Tensor]:
    """Hub keys (BERT or DistilBERT, any layout listed in the module docstring) -> ours (pure):
    legacy buffers dropped, ``gamma``/``beta`` renamed, DistilBERT's names mapped to BERT's, each
    layer's query/key/value fused into one ``qkv`` projection (rows q, k, v), the tied decoder
    dropped (when ``tied``), and the weights ``head`` never reads dropped."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[int, tuple[str, torch.Tensor]]] = {}  # fused key -> {0: q, 1: k, 2: v}
    for key, value in drop_legacy_buffers(state).items():
        if key.endswith("embeddings.token_type_ids"):  # a buffer some exports carry
            continue
        key = _rename(key)
        m = QKV_KEY.match(key)
        if m:
            layer, bert_name, distil_name, kind = m.groups()
            qkv.setdefault(f"bert.encoder.layer.{layer}.attention.qkv.{kind}", {})[
                QKV_ORDER[bert_name or distil_name]] = (key, value)
        else:
            out[key] = value
    for key, parts in qkv.items():
        if len(parts) == 3:
            out[key] = torch.cat([parts[j][1] for j in range(3)])  # (3D, D) or (3D,): q, k, v
        else:  # one is missing: keep them as they are, so that strict loading names them
            out.update(dict(parts.values()))
    if tied:
        out.pop("cls.predictions.decoder.weight", None)
        out.pop("cls.predictions.decoder.bias", None)  # transformers ties it to cls.predictions.bias
    elif "cls.predictions.decoder.bias" in out:  # untied, nothing is tied: the decoder's own bias is the one used
        out["cls.predictions.bias"] = out.pop("cls.predictions.decoder.bias")
    unused = UNUSED[head]
    dropped = sorted(k for k in out if k.startswith(unused))
    if dropped:
        log.info("BERT (%s head): ignoring %d weights it does not use: %s", head, len(dropped),
                 ", ".join(sorted({".".join(k.split(".")[:2]) for k in dropped})))
    return {k: v for k, v in out.items() if not k.startswith(unused)}


def fast_placement(placement: Placement, head: str) -> tuple[Placement, str | None]:
    """``placement`` as BERT with ``head`` runs on it -> (placement, notice) (see FAST_PLANS)."""
    from ..device import for_model
    plan = FAST_PLANS[head]
    placement, notice = for_model(placement, plan.dtypes, f"BERT with a {head} head", plan.why)
    if notice:
        log.warning(notice)
    return placement, notice


def build(config: BertConfig, state: Mapping[str, torch.Tensor], head: str) -> Bert:
    """A model with ``head`` holding the checkpoint's weights (float32, CPU, eval)."""
    model = Bert(config, head)
    what = f"this {'DistilBERT' if config.model_type == 'distilbert' else 'BERT'} with a {head} head"
    load_strict(model, remap(state, head, config.tie_word_embeddings), what)
    return model.eval().requires_grad_(False)


def from_checkpoint(folder: Path, placement: Placement, head: str, rows: int = PACK_ROWS) -> Bert:
    """A checkpoint folder (config.json + weights, BERT or DistilBERT) -> model with ``head`` on
    ``placement`` (``fast``: by FAST_PLANS), eval, no grad; linear layers packed on CPU for inputs of
    about ``rows`` tokens. CheckpointError when the folder is not such a model or its weights do not
    fit (missing / unexpected keys named)."""
    from ..hub import load_weights, read_json

    if head not in HEADS:
        raise ValueError(f"unknown BERT head {head!r}")
    cfg = read_json(folder, "config.json")
    config = BertConfig.from_hf(cfg)
    if head in ("sequence-classification", "token-classification") and config.num_labels < 1:
        raise CheckpointError(f"{Path(folder).name}: config.json has neither id2label nor num_labels.")
    model = build(config, load_weights(folder), head)
    log.info("%s: %d layers, width %d, %d heads, vocabulary %d, head %s", config.model_type,
             config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.vocab_size, head)
    placement, _ = fast_placement(placement, head)
    keep = FAST_PLANS[head].keep_fp32 if placement.precision == "fast" else ()
    names = dict(model.named_modules())
    keep = tuple(k for k in keep if k.startswith("*") or k in names)  # the parts this head has
    model = place(model, placement, keep_fp32=keep)
    packed = pack_linears(model, device=placement.device, dtype=placement.dtype, rows=rows)
    if placement.dtype != torch.float32:
        packed += pack_linears(model, device=placement.device, dtype=torch.float32, rows=rows)
    if packed:
        log.info("%s: %d linear layers packed for oneDNN", config.model_type, packed)
        if head == "masked-lm" and model.cls.predictions.decoder is None:
            p = model.cls.predictions
            p.packed = packed_copy(model.bert.embeddings.word_embeddings.weight, p.bias)
    cast_at_boundaries(model)
    return model
