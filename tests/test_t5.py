"""Our T5 (engine.models.t5) against transformers on random-weight checkpoints in the real layouts
(tests/fixtures_t5.py: t5-small's tied ReLU model with its embedding copies, the unused cross-attention
bias key and no lm_head, ``T5WithLMHeadModel``; FLAN-T5's untied gated-GELU model; transformers 5's own
save): logits within 1e-4 with and without the KV cache, relative position buckets exact, generation
token-identical to generate (greedy, beam search with length penalty / no-repeat n-grams / early
stopping, seeded sampling), the decoder's cross-attention, the tokenizer files (tokenizer.json and
spiece.model) equal to transformers' T5 tokenizer, and checkpoints that do not fit named."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine.device import resolve
from engine.errors import CheckpointError
from engine.generation import DecodeSettings, decode
from engine.models import t5
from engine.processors.tokenizer import load_tokenizer
from tests.fixtures_t5 import T5_CORPUS, oracle

EXACT = resolve("cpu", "exact")
LAYOUTS = ["t5small", "t5flan", "t5native"]


@pytest.fixture(scope="module", params=LAYOUTS)
def pair(request):
    folder = request.getfixturevalue(request.param)
    return request.param, t5.from_checkpoint(folder, EXACT), oracle(folder)


@pytest.fixture(scope="module")
def small(t5small):
    return t5.from_checkpoint(t5small, EXACT), oracle(t5small)


@pytest.fixture(scope="module")
def flan(t5flan):
    return t5.from_checkpoint(t5flan, EXACT), oracle(t5flan)


def _ids(t, seed, vocab, start=None):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (1, t), generator=g)
    if start is not None:
        ids[0, 0] = start
    else:
        ids[0, -1] = 1  # </s>
    return ids


# ----------------------------------------------------------------------------- the model

def test_layouts_are_the_real_ones(t5small, t5flan):
    from safetensors import safe_open
    with safe_open(t5small / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert {"shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
            "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"} <= keys
    assert "lm_head.weight" not in keys and "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" \
        not in keys
    assert json.loads((t5small / "config.json").read_text())["architectures"] == ["T5WithLMHeadModel"]
    with safe_open(t5flan / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "lm_head.weight" in keys and "decoder.embed_tokens.weight" not in keys
    assert "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in keys


def test_config_variants(small, flan, t5native):
    s, f = small[0].config, flan[0].config
    assert (s.gated, s.activation, s.tie_word_embeddings, s.scale_decoder_outputs) == (False, "relu", True, True)
    assert (f.gated, f.activation, f.tie_word_embeddings, f.scale_decoder_outputs) == (True, "gelu_new", False, False)
    assert s.n_positions == 128
    native = t5.T5Config.from_hf(json.loads((t5native / "config.json").read_text()))
    assert native.tie_word_embeddings and not native.scale_decoder_outputs  # transformers 5's way to say v1.1
    assert native.num_decoder_layers == 3 and native.num_layers == 2
    # the embedding matrix is larger than the tokenizer, as t5-small's (32,128 rows for 32,100 tokens)
    assert s.vocab_size > load_tokenizer(t5native).get_vocab_size()


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("buckets, distance", [(32, 128), (8, 20), (6, 7)])
def test_relative_buckets_exact(bidirectional, buckets, distance):
    from transformers.models.t5.modeling_t5 import T5Attention
    rel = torch.arange(-300, 301)[None, :]
    want = T5Attention._relative_position_bucket(rel, bidirectional, buckets, distance)
    assert torch.equal(t5.relative_buckets(rel, bidirectional, buckets, distance), want)


@pytest.mark.parametrize("src_len, tgt_len", [(37, 30), (5, 1), (1, 8)])
def test_logits_match(pair, src_len, tgt_len):
    name, ours, theirs = pair
    v = ours.config.vocab_size
    src, tgt = _ids(src_len, src_len, v), _ids(tgt_len, tgt_len + 1, v, start=0)
    with torch.no_grad():
        ref = theirs(input_ids=src, decoder_input_ids=tgt).logits
    got = ours(src, tgt).logits
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() < 1e-4, name


def test_padding_mask_matches(small):
    ours, theirs = small
    v = ours.config.vocab_size
    src, tgt = _ids(12, 3, v), _ids(6, 4, v, start=0)
    mask = torch.ones_like(src)
    mask[0, 8:] = 0
    with torch.no_grad():
        ref = theirs(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits
    assert (ours(src, tgt, attention_mask=mask).logits - ref).abs().max().item() < 1e-4


def test_kv_cache_equals_full(pair):
    _, ours, _ = pair
    v = ours.config.vocab_size
    src, tgt = _ids(25, 4, v), _ids(28, 5, v, start=0)
    full = ours(src, tgt).logits
    states = ours.encode(src)
    cache = ours.new_cache()
    got = [ours.decode(tgt[:, :4], states, cache).logits]
    for i in range(4, 28):  # past the position buckets' max distance (20)
        got.append(ours.decode(tgt[:, i:i + 1], states, cache).logits)
    assert (torch.cat(got, 1) - full).abs().max().item() < 1e-4


def test_cross_attention_matches_transformers(t5small, t5flan):
    from transformers import T5ForConditionalGeneration
    for folder in (t5small, t5flan):
        ours = t5.from_checkpoint(folder, EXACT)
        theirs = T5ForConditionalGeneration.from_pretrained(folder, attn_implementation="eager").eval()
        v = ours.config.vocab_size
        src, out = _ids(19, 7, v), _ids(11, 8, v, start=0)
        got = ours.cross_attention(src, out)  # (layers, N, S)
        with torch.no_grad():
            ref = theirs(input_ids=src, decoder_input_ids=out[:, :-1], output_attentions=True).cross_attentions
        want = torch.stack([a[0].mean(dim=0) for a in ref])
        assert got.shape == (ours.config.num_decoder_layers, 10, 19) == want.shape
        assert (got - want).abs().max().item() < 1e-5
        assert torch.allclose(got.sum(-1), torch.ones(got.shape[:2]), atol=1e-5)


# ----------------------------------------------------------------------------- generation

def _theirs(model, src, seed=None, **kw):
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        return model.generate(src, attention_mask=torch.ones_like(src), decoder_start_token_id=0, eos_token_id=1,
                              pad_token_id=0, **kw)[0].tolist()


def _ours(model, src, max_length, **kw):
    step, reorder = t5.stepper(model, src)
    s = DecodeSettings(max_new_tokens=max_length - 1, eos_token_ids=(1,), pad_token_id=0, **kw)
    return decode(step, [0], s, reorder=reorder)


BEAMS = [dict(num_beams=4, early_stopping=True), dict(num_beams=3, length_penalty=2.0, no_repeat_ngram_size=3),
         dict(num_beams=4, length_penalty=0.6, early_stopping=True, min_length=5),
         dict(num_beams=2, early_stopping="never", no_repeat_ngram_size=2)]


@pytest.mark.parametrize("which", ["small", "flan"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_greedy_and_beam_are_token_identical(request, which, seed):
    ours, theirs = request.getfixturevalue(which)
    src = _ids(14, seed, ours.config.vocab_size)
    for max_length in (6, 25):
        want = _theirs(theirs, src, max_length=max_length, do_sample=False, num_beams=1)
        assert _ours(ours, src, max_length).sequence == want
        for kw in BEAMS:
            want = _theirs(theirs, src, max_length=max_length, do_sample=False, **kw)
            got = _ours(ours, src, max_length, **kw)
            assert got.sequence == want, (max_length, kw)


@pytest.mark.parametrize("kw", [dict(top_k=50), dict(top_k=0, top_p=0.9), dict(temperature=0.7, top_k=20),
                                dict(temperature=1.5, top_k=5, repetition_penalty=1.2)])
@pytest.mark.parametrize("seed", [0, 77])
def test_seeded_sampling_is_token_identical(small, flan, kw, seed):
    for ours, theirs in (small, flan):
        src = _ids(10, seed + 1, ours.config.vocab_size)
        want = _theirs(theirs, src, seed=seed, max_length=20, do_sample=True, num_beams=1, **kw)
        assert _ours(ours, src, 20, do_sample=True, seed=seed, **kw).sequence == want


# ----------------------------------------------------------------------------- loading

def _state(folder):
    from engine.hub import load_weights
    return load_weights(folder)


def _config(folder):
    return t5.T5Config.from_hf(json.loads((folder / "config.json").read_text()))


def test_remap_keeps_one_embedding_and_drops_the_unused_key(t5small, t5flan):
    tied = t5.remap(_state(t5small), tied=True)
    assert "shared.weight" in tied and not any(k.endswith("embed_tokens.weight") for k in tied)
    assert not any(k in tied for k in t5.UNUSED_KEYS) and "lm_head.weight" not in tied
    untied = t5.remap(_state(t5flan), tied=False)
    assert "lm_head.weight" in untied and "shared.weight" in untied
    # only the encoder's copy of the embeddings (no shared.weight) is enough
    state = _state(t5small)
    del state["shared.weight"], state["decoder.embed_tokens.weight"]
    assert torch.equal(t5.build(_config(t5small), state).shared.weight, _state(t5small)["shared.weight"])


def test_missing_and_misshaped_keys_are_named(t5small, t5flan):
    state = _state(t5small)
    del state["decoder.block.1.layer.2.DenseReluDense.wo.weight"]
    with pytest.raises(CheckpointError, match=r"decoder\.block\.1\.layer\.2\.DenseReluDense\.wo\.weight"):
        t5.build(_config(t5small), state)
    state = _state(t5small)
    state["encoder.block.0.layer.0.SelfAttention.q.weight"] = torch.zeros(5, 5)
    with pytest.raises(CheckpointError, match=r"encoder\.block\.0\.layer\.0\.SelfAttention\.q\.weight"):
        t5.build(_config(t5small), state)
    state = _state(t5flan)
    del state["lm_head.weight"]  # untied: the head is its own weight
    with pytest.raises(CheckpointError, match="missing keys: lm_head.weight"):
        t5.build(_config(t5flan), state)
    state = _state(t5small)
    state["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"] = torch.zeros(8, 4)
    with pytest.raises(CheckpointError, match="unexpected keys: encoder.block.1"):
        t5.build(_config(t5small), state)
    # a gated checkpoint under a ReLU config: its keys are named
    cfg = json.loads((t5flan / "config.json").read_text())
    cfg.pop("feed_forward_proj")
    with pytest.raises(CheckpointError, match="wi_0"):
        t5.build(t5.T5Config.from_hf(cfg), _state(t5flan))


def test_bad_configs(t5small):
    cfg = json.loads((t5small / "config.json").read_text())
    with pytest.raises(CheckpointError, match="feed_forward_proj"):
        t5.T5Config.from_hf({**cfg, "feed_forward_proj": "gated-tanh-x"})
    with pytest.raises(CheckpointError, match="d_kv"):
        t5.T5Config.from_hf({k: v for k, v in cfg.items() if k != "d_kv"})
    with pytest.raises(CheckpointError, match="not 't5'"):
        t5.T5Config.from_hf({**cfg, "model_type": "bart"})


# ----------------------------------------------------------------------------- the tokenizer

TEXTS = T5_CORPUS[:4] + ["translate English to German: The house is wonderful.", "naïve café, déjà vu!",
                         "  extra   spaces  ", "unknown 漢字 and ✓ chars", "ÉCOLE  Ｆｕｌｌ-width ①", "a\nb\tc",
                         "The <extra_id_0> is <extra_id_99>x", "", "Zebra quux 12345"]


@pytest.fixture(scope="module")
def tokenizer_folders(t5small, tmp_path_factory):
    """t5-small's two tokenizer files, each alone in a folder (with the config that says T5)."""
    root = tmp_path_factory.mktemp("t5-tokenizers")
    for name in ("tokenizer.json", "spiece.model"):
        (root / name).mkdir()
        shutil.copy(t5small / name, root / name / name)
        shutil.copy(t5small / "config.json", root / name / "config.json")
    return root / "tokenizer.json", root / "spiece.model"


def test_tokenizer_equals_transformers_t5_tokenizer(tokenizer_folders):
    """Both files give transformers' T5Tokenizer's ids (``</s>`` appended, sentinels matched) and its
    decoded text with and without special tokens. (transformers reads spiece.model only through the
    protobuf package, so both are compared with its tokenizer from tokenizer.json: the same vocabulary.)"""
    from transformers import T5Tokenizer
    theirs = T5Tokenizer.from_pretrained(tokenizer_folders[0])
    n = len(theirs)
    for folder in tokenizer_folders:
        ours = load_tokenizer(folder)
        assert ours.get_vocab_size() == n
        assert [ours.token_to_id(f"<extra_id_{i}>") for i in (0, 1, 99)] == [n - 1, n - 2, n - 100]
        for text in TEXTS:
            ids = ours.encode(text).ids
            assert ids == theirs(text)["input_ids"], (folder.name, text)
            assert ids[-1] == 1
            mixed = ids + [0, 1, 2, 7, n - 1, n + 3]  # pad, eos, unk, a sentinel, an id past the tokenizer
            for skip in (True, False):
                assert ours.decode(mixed, skip_special_tokens=skip) == theirs.decode(mixed, skip_special_tokens=skip)


def test_spiece_model_equals_sentencepiece(tokenizer_folders):
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_folders[1] / "spiece.model"))
    ours = load_tokenizer(tokenizer_folders[1])
    for text in TEXTS:
        if "<extra_id" not in text:
            assert ours.encode(text).ids == sp.encode(text) + [1], text


def test_matrices_are_packed_for_decoding(small, flan):
    """On the CPU every linear layer runs packed for decoding steps (optimize.pack_for_decoding); a
    tied head gets a packed copy (the shared table stays for the lookup), an untied one is packed in
    place. The logits stay those of transformers."""
    from torch import nn

    from engine.models.optimize import PackedLinear
    for (ours, theirs), tied in ((small, True), (flan, False)):
        assert not any(type(m) is nn.Linear for m in ours.modules())
        assert (ours.packed_head is not None) == tied
        assert isinstance(ours.lm_head, PackedLinear) != tied
        v = ours.config.vocab_size
        src, tgt = _ids(9, 11, v), _ids(5, 12, v, start=0)
        with torch.no_grad():
            ref = theirs(input_ids=src, decoder_input_ids=tgt).logits
        assert (ours(src, tgt).logits - ref).abs().max().item() < 1e-4
