"""GPT-2's decoding-speed machinery (engine/models/gpt2.py) against transformers and against itself:
the matrices laid out for one-row and several-row steps and the small-rows product (with
LAYOUT_MIN_BYTES at 0, so that the small fixture's matrices take them as GPT-2 small's do), the
preallocated KV cache (growth past its first capacity, beam-search reorders into its second buffer).
Nothing here is timed."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.device import resolve
from engine.generation import DecodeSettings, decode
from engine.models import gpt2
from engine.processors.tokenizer import load_tokenizer

EXACT = resolve("cpu", "exact")
EOS = 0


@pytest.fixture(scope="module")
def pair(gpt2_checkpoint, gpt2_native):
    from transformers import GPT2LMHeadModel
    return gpt2.from_checkpoint(gpt2_checkpoint, EXACT), GPT2LMHeadModel.from_pretrained(gpt2_native).eval()


@pytest.fixture
def every_matrix(monkeypatch, pair):
    """Every matrix of the fixture takes the layouts and the small-rows product; as loaded afterwards."""
    monkeypatch.setattr(gpt2, "LAYOUT_MIN_BYTES", 0)
    yield pair
    for w in _matrices(pair[0]):
        w.data = w.data.contiguous()


def _matrices(model):
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding)) and m is not model.wpe]


def _ids(vocab: int, t: int, seed: int, batch: int = 1) -> torch.Tensor:
    return torch.randint(1, vocab, (batch, t), generator=torch.Generator().manual_seed(seed))


def test_layouts_keep_the_values(every_matrix):
    ours, _ = every_matrix
    before = [w.detach().clone() for w in _matrices(ours)]
    assert gpt2.decode_layout(ours, rows=1) > 0
    for w, b in zip(_matrices(ours), before):
        out_features, in_features = w.shape
        assert torch.equal(w, b)
        assert (w.stride(0) == 1) == (in_features <= out_features)  # (in, out) memory where in <= out
    assert gpt2.decode_layout(ours, rows=1) == 0  # already so: nothing copied
    assert gpt2.decode_layout(ours, rows=4) > 0
    for w, b in zip(_matrices(ours), before):
        assert w.is_contiguous() and torch.equal(w, b)
    assert ours.wpe.weight.is_contiguous()  # the positions are read a row a step: left alone


def test_small_matrices_are_left_as_loaded(pair):
    ours, _ = pair  # the fixture's matrices are all under LAYOUT_MIN_BYTES
    assert gpt2.decode_layout(ours, rows=1) == 0 and all(w.is_contiguous() for w in _matrices(ours))


@pytest.mark.parametrize("rows", [1, 2, 4, 8, 9])
def test_linear_equals_f_linear(rows):
    g = torch.Generator().manual_seed(rows)
    layer = nn.Linear(512, 1024).requires_grad_(False)  # 2 MB: large enough for the small-rows product
    x = torch.randn(rows, 1, 512, generator=g)
    want = F.linear(x, layer.weight, layer.bias)
    for weight in (layer.weight.data.contiguous(), layer.weight.data.t().contiguous().t()):
        layer.weight.data = weight
        got = gpt2.linear(layer, x)
        assert got.shape == want.shape
        assert (got - want).abs().max().item() < 1e-4
    head = nn.Embedding(1024, 512).requires_grad_(False)  # a tied head: no bias
    assert (gpt2.linear(head, x) - F.linear(x, head.weight)).abs().max().item() < 1e-4


@pytest.mark.parametrize("rows", [1, 4])
def test_laid_out_logits_match_transformers(every_matrix, rows):
    ours, theirs = every_matrix
    gpt2.decode_layout(ours, rows=rows)
    ids = _ids(ours.config.vocab_size, 9, seed=rows, batch=rows)
    with torch.no_grad():
        ref = theirs(ids).logits
    assert (ours(ids).logits - ref).abs().max().item() < 1e-4
    cache = ours.new_cache()  # the decoding steps: `rows` rows each
    ours(ids[:, :5], cache)
    for i in range(5, 9):
        step = ours(ids[:, i:i + 1], cache).logits[:, 0]
        assert (step - ref[:, i]).abs().max().item() < 1e-4


@pytest.mark.parametrize("kw", [dict(num_beams=1), dict(num_beams=4), dict(num_beams=3, length_penalty=0.6),
                                dict(num_beams=1, repetition_penalty=1.3), dict(num_beams=2, no_repeat_ngram_size=2)])
def test_generation_with_the_layouts_is_token_identical(every_matrix, gpt2_checkpoint, kw):
    ours, theirs = every_matrix
    tok = load_tokenizer(gpt2_checkpoint)
    for text in ["The quick brown fox", "Hello", "1 2 3"]:
        prompt = tok.encode(text).ids
        step, reorder = gpt2.stepper(ours)  # lays the matrices out for num_beams rows
        got = decode(step, prompt, DecodeSettings(max_new_tokens=20, eos_token_ids=(EOS,), **kw), reorder=reorder)
        with torch.no_grad():
            want = theirs.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                   pad_token_id=EOS, eos_token_id=EOS, max_new_tokens=20, do_sample=False, **kw)
        assert got.sequence == want[0].tolist(), text
        rows = kw["num_beams"]
        assert all((w.stride(0) == 1) == (rows == 1 and w.shape[1] <= w.shape[0]) for w in _matrices(ours))


def test_cache_grows_past_its_first_capacity(pair):
    ours, _ = pair
    ids = _ids(ours.config.vocab_size, 100, seed=11)
    full = ours(ids).logits
    cache = ours.new_cache()
    ours(ids[:, :10], cache)
    first = cache.capacity
    assert first >= 10
    for i in range(10, 100):
        step = ours(ids[:, i:i + 1], cache).logits[:, 0]
        assert (step - full[:, i]).abs().max().item() < 1e-4
    assert cache.length == 100 and cache.capacity > first and cache.capacity <= ours.config.n_positions


def test_repeated_reorders_use_the_second_buffer(pair):
    ours, _ = pair
    ids = _ids(ours.config.vocab_size, 6, seed=8, batch=3)
    cache = ours.new_cache()
    ours(ids, cache)
    history = ids.clone()
    # swapped whole, unchanged, one row changed (in place), a cycle
    for i, rows in enumerate(([2, 2, 0], [0, 1, 2], [0, 0, 2], [1, 2, 0], [0, 2, 1])):
        rows = torch.tensor(rows)
        cache.reorder(rows)
        history = history[rows]
        nxt = torch.tensor([[5 + i], [6 + i], [7 + i]])
        got = ours(nxt, cache).logits[:, -1]
        history = torch.cat([history, nxt], dim=1)
        want = ours(history).logits[:, -1]
        assert (got - want).abs().max().item() < 1e-5
    cache.reorder(torch.tensor([1]))  # fewer rows (a beam count that changes): a new buffer
    assert cache.data.shape[0] == 1


def test_cache_refuses_another_batch(pair):
    from engine.errors import InputError
    ours, _ = pair
    cache = ours.new_cache()
    ours(_ids(ours.config.vocab_size, 4, seed=1, batch=2), cache)
    with pytest.raises(InputError, match="holds 2 sequences"):
        ours(torch.tensor([[1]]), cache)


def test_no_top_candidates(pair):
    ours, _ = pair
    for beams in (1, 2):
        step, reorder = gpt2.stepper(ours)
        out = decode(step, [1, 2, 3], DecodeSettings(max_new_tokens=3, num_beams=beams, top_candidates=0),
                     reorder=reorder)
        assert all(s.top_ids == () and s.top_probs == () and 0 < s.prob <= 1 for s in out.steps)
