"""Small random-weight T5 checkpoints in the REAL hub layouts, built with transformers (the oracle),
each loadable by transformers' T5ForConditionalGeneration from the same folder:

* ``t5small`` — google-t5/t5-small's layout: config.json as the hub's (``architectures:
  ["T5WithLMHeadModel"]``, no ``feed_forward_proj`` (ReLU), no ``tie_word_embeddings`` (tied),
  ``n_positions``, ``task_specific_params`` with the summarization and en->de/fr/ro translation
  prefixes and beam settings), generation_config.json with the start / eos / pad ids only; weights
  with ``shared.weight`` AND its ``encoder.embed_tokens`` / ``decoder.embed_tokens`` copies, the
  unused ``decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight``, no
  ``lm_head.weight``; the embedding matrix 16 rows larger than the tokenizer; ``tokenizer.json``
  (a Unigram trained here with the ``tokenizers`` library, written in T5's layout: precompiled
  normaliser, WhitespaceSplit + Metaspace, ``A </s>``, 100 ``<extra_id_N>`` sentinels at the end
  of the vocabulary) and ``spiece.model`` (the same Unigram written as a SentencePiece model).
* ``t5flan`` — FLAN-T5 / T5 v1.1's: ``feed_forward_proj: gated-gelu``, ``tie_word_embeddings:
  false`` with a separate ``lm_head.weight`` (not scaled), ``T5ForConditionalGeneration``, no
  ``decoder.embed_tokens`` copy.
* ``t5native`` — a gated model as transformers 5 saves it (``tie_word_embeddings: true`` with
  ``scale_decoder_outputs: false``, no lm_head), with more decoder layers than encoder layers
  (``num_decoder_layers``; transformers 5.24's generate cannot run such a model — its cache
  counts the encoder's layers — so only its logits are compared).

Weights are randomised so that next-token distributions are peaked but not one-hot; the relative
position buckets are few (8, max distance 20) so short texts already reach the logarithmic ones.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

T5_CORPUS = [f"{a} {b} {c}." for a in ("The house", "A small cat", "My friend", "The old city", "Das Haus",
                                       "Le chat", "The river")
             for b in ("is wonderful", "sat on the mat", "lives in the north", "ist wunderbar", "est très petit",
                       "flows past the tower")
             for c in ("today", "again", "naïve café", "déjà vu", "in 2026", "with people")]
T5_CORPUS += ["translate English to German: The house is wonderful.", "translate English to French: Hello!",
              "translate English to Romanian: Good morning.", "summarize: studies have shown that it is good."] * 5

TINY_T5 = dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
               relative_attention_max_distance=20, dropout_rate=0.0)
EXTRA_IDS = 100
PAD_ROWS = 16  # the embedding matrix is larger than the tokenizer (t5-small: 32,128 rows, 32,100 tokens)
N_POSITIONS = 128  # the source length the tasks cut at (t5-small: 512)

TASK_PARAMS = {
    "summarization": {"early_stopping": True, "length_penalty": 2.0, "max_length": 24, "min_length": 6,
                      "no_repeat_ngram_size": 3, "num_beams": 4, "prefix": "summarize: "},
    "translation_en_to_de": {"early_stopping": True, "max_length": 20, "num_beams": 4,
                             "prefix": "translate English to German: "},
    "translation_en_to_fr": {"early_stopping": True, "max_length": 22, "num_beams": 3,
                             "prefix": "translate English to French: "},
    "translation_en_to_ro": {"early_stopping": True, "max_length": 18, "num_beams": 2,
                             "prefix": "translate English to Romanian: "},
}


# ----------------------------------------------------------------------------- tokenizer files

def _sentencepiece_model() -> bytes:
    """A SentencePiece Unigram model trained here (T5's ids: pad 0, eos 1, unk 2; nmt_nfkc rules):
    the source of the precompiled normalisation rules and the trainer / normaliser specs."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(T5_CORPUS), model_writer=out, vocab_size=150,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, minloglevel=2)
    return out.getvalue()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def write_spiece(path: Path, pieces: list[tuple[str, float]], template: bytes) -> None:
    """``pieces`` as a SentencePiece ModelProto (pad / eos control pieces, unk the unknown one),
    with the trainer and normaliser specs of ``template`` (a model trained by sentencepiece)."""
    import struct

    from engine.processors.tokenizer import _fields

    body = bytearray()
    for i, (piece, score) in enumerate(pieces):
        kind = 3 if i in (0, 1) else 2 if i == 2 else 1  # CONTROL, UNKNOWN, NORMAL
        body += _field(1, _field(1, piece.encode()) + b"\x15" + struct.pack("<f", score) + b"\x18" + _varint(kind))
    for number, value in _fields(template):
        if number in (2, 3):  # TrainerSpec, NormalizerSpec
            body += _field(number, bytes(value))
    path.write_bytes(bytes(body))


def make_tokenizer(folder: Path) -> int:
    """Train a Unigram with the ``tokenizers`` library and write it as T5's tokenizer.json and
    spiece.model; returns the tokenizer's size (sentinels included)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from engine.processors.tokenizer import read_sentencepiece

    template = _sentencepiece_model()
    charsmap = read_sentencepiece_bytes(template)["precompiled_charsmap"]
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.train_from_iterator(T5_CORPUS * 4, trainers.UnigramTrainer(
        vocab_size=260, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False))
    data = json.loads(tok.to_str())
    vocab = [(p, float(s)) for p, s in data["model"]["vocab"]]
    assert [p for p, _ in vocab[:3]] == ["<pad>", "</s>", "<unk>"]
    # specials first with score 0, then by score (ties by piece: the trainer's order of ties varies)
    vocab = [(p, 0.0) for p, _ in vocab[:3]] + sorted(vocab[3:], key=lambda ps: (-ps[1], ps[0]))
    write_spiece(folder / "spiece.model", vocab, template)
    assert len(read_sentencepiece(folder / "spiece.model")["pieces"]) == len(vocab)
    n = len(vocab)
    sentinels = [f"<extra_id_{i}>" for i in range(EXTRA_IDS - 1, -1, -1)]  # <extra_id_0> last, as t5-small's

    def added(i, content):
        return {"id": i, "special": True, "content": content, "single_word": False, "lstrip": False,
                "rstrip": False, "normalized": False}
    meta = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}  # as the hub file writes it
    doc = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "<pad>"), added(1, "</s>"), added(2, "<unk>")]
        + [added(n + j, s) for j, s in enumerate(sentinels)],
        "normalizer": {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, meta]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
        "decoder": meta,
        "model": {"type": "Unigram", "unk_id": 2, "vocab": [list(v) for v in vocab] + [[s, 0.0] for s in sentinels]},
    }
    (folder / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    Tokenizer.from_file(str(folder / "tokenizer.json"))  # it must load
    return n + EXTRA_IDS


def read_sentencepiece_bytes(data: bytes) -> dict:
    import tempfile

    from engine.processors.tokenizer import read_sentencepiece
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "spiece.model"
        p.write_bytes(data)
        return read_sentencepiece(p)


# ----------------------------------------------------------------------------- weights

SHARED, FINAL_NORM, EOS_BOOST, HEAD_EOS_BOOST = 0.3, 4.0, 3.0, 1.5


def randomise(model, seed: int, scaled_head: bool) -> None:
    """Random weights; ``scaled_head``: the tied head scaled by d_model^-0.5 (its final norm made larger)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    d = model.config.d_model
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "decoder.final_layer_norm.weight" and scaled_head:  # sharper
                p.copy_(torch.rand(p.shape, generator=g) * FINAL_NORM + FINAL_NORM)
            elif "layer_norm" in name:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif "relative_attention_bias" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 1.0)
            elif name == "shared.weight":  # small beside what the layers add: no token just repeats itself
                p.copy_(torch.randn(p.shape, generator=g) * SHARED)
                p[1] *= EOS_BOOST  # </s> now and then
            elif name == "lm_head.weight":
                p.copy_(torch.randn(p.shape, generator=g) * 0.6)
            else:  # nn.Linear (out, in), no biases
                p.copy_(torch.randn(p.shape, generator=g) * (1.3 / p.shape[1] ** 0.5))
    assert d == TINY_T5["d_model"]


def hub_config(layout: str, vocab: int) -> dict:
    base = {"d_ff": TINY_T5["d_ff"], "d_kv": TINY_T5["d_kv"], "d_model": TINY_T5["d_model"],
            "decoder_start_token_id": 0, "dropout_rate": 0.1, "eos_token_id": 1, "initializer_factor": 1.0,
            "is_encoder_decoder": True, "layer_norm_epsilon": 1e-06, "model_type": "t5",
            "n_positions": N_POSITIONS, "num_heads": TINY_T5["num_heads"], "num_layers": TINY_T5["num_layers"],
            "pad_token_id": 0, "relative_attention_num_buckets": TINY_T5["relative_attention_num_buckets"],
            "relative_attention_max_distance": TINY_T5["relative_attention_max_distance"],
            "task_specific_params": TASK_PARAMS, "vocab_size": vocab}
    if layout == "t5small":  # google-t5/t5-small's config.json (older hub file)
        return {"architectures": ["T5WithLMHeadModel"], "output_past": True, **base}
    # google/flan-t5-*'s
    return {"architectures": ["T5ForConditionalGeneration"], **base, "dense_act_fn": "gelu_new",
            "feed_forward_proj": "gated-gelu", "is_gated_act": True, "num_decoder_layers": TINY_T5["num_layers"],
            "tie_word_embeddings": False, "use_cache": True}


def make_t5(folder: Path, layout: str = "t5small", seed: int = 5, tokenizer: str = "both") -> Path:
    """A T5 checkpoint folder in ``layout`` ("t5small", "t5flan" or "t5native"); ``tokenizer``:
    "json", "spiece" or "both" files."""
    import torch
    from safetensors.torch import save_file
    from transformers import T5Config, T5ForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    n_tokens = make_tokenizer(folder)
    if tokenizer == "json":
        (folder / "spiece.model").unlink()
    elif tokenizer == "spiece":
        (folder / "tokenizer.json").unlink()
    vocab = n_tokens + PAD_ROWS
    gated = layout != "t5small"
    untied = {"tie_word_embeddings": False} if layout == "t5native" else {}  # v5: tied, not scaled
    cfg = T5Config(vocab_size=vocab, decoder_start_token_id=0, eos_token_id=1, pad_token_id=0,
                   feed_forward_proj="gated-gelu" if gated else "relu", **untied,
                   num_decoder_layers=3 if layout == "t5native" else TINY_T5["num_layers"], **TINY_T5)
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(cfg).eval()
    randomise(model, seed, scaled_head=layout == "t5small")
    if layout == "t5native":
        assert not model.config.scale_decoder_outputs
        model.save_pretrained(folder)
        return folder
    g = torch.Generator().manual_seed(seed + 100)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()
             if k not in ("lm_head.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")}
    state["encoder.embed_tokens.weight"] = state["shared.weight"].clone()
    if layout == "t5small":
        state["decoder.embed_tokens.weight"] = state["shared.weight"].clone()
    else:
        state["lm_head.weight"] = torch.randn(vocab, TINY_T5["d_model"], generator=g) * 0.6
        state["lm_head.weight"][1] *= HEAD_EOS_BOOST  # </s> now and then
    # the key every hub T5 carries and no T5 uses
    state["decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"] = torch.randn(
        TINY_T5["relative_attention_num_buckets"], TINY_T5["num_heads"], generator=g)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hub_config(layout, vocab), indent=2))
    (folder / "generation_config.json").write_text(json.dumps(
        {"_from_model_config": True, "decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0}))
    return folder


def oracle(folder: Path):
    from transformers import T5ForConditionalGeneration
    return T5ForConditionalGeneration.from_pretrained(folder).eval()


@pytest.fixture(scope="session")
def t5_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("t5")


@pytest.fixture(scope="session")
def t5small(t5_root) -> Path:
    return make_t5(t5_root / "t5-small", "t5small", seed=5)


@pytest.fixture(scope="session")
def t5flan(t5_root) -> Path:
    return make_t5(t5_root / "flan-t5", "t5flan", seed=8, tokenizer="json")


@pytest.fixture(scope="session")
def t5native(t5_root) -> Path:
    return make_t5(t5_root / "t5-native", "t5native", seed=9, tokenizer="json")
