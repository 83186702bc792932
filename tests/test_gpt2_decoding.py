"""GPT-2's decoding-speed machinery (engine/models/gpt2.py) against transformers and against itself:
the matrices packed for decoding steps (optimize.pack_for_decoding: greedy and beam-search steps,
the tied head's packed copy), the preallocated KV cache (growth past its first capacity, beam-search
reorders into its second buffer). Nothing here is timed."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.device import resolve
from engine.generation import DecodeSettings, decode
from engine.hub import load_weights
from engine.models import gpt2
from engine.processors.tokenizer import load_tokenizer

EXACT = resolve("cpu", "exact")
EOS = 0


@pytest.fixture(scope="module")
def pair(gpt2_checkpoint, gpt2_native):
    from transformers import GPT2LMHeadModel
    return gpt2.from_checkpoint(gpt2_checkpoint, EXACT), GPT2LMHeadModel.from_pretrained(gpt2_native).eval()


def _ids(vocab: int, t: int, seed: int, batch: int = 1) -> torch.Tensor:
    return torch.randint(1, vocab, (batch, t), generator=torch.Generator().manual_seed(seed))


def test_matrices_are_packed_for_decoding(pair, gpt2_checkpoint):
    """On the CPU every linear layer runs packed for decoding steps and the tied head has a packed
    copy; the token embeddings stay a plain table for the lookup. Elsewhere (here: float16, which
    oneDNN does not pack) the model stays as built."""
    from engine.models.optimize import DECODE_ROWS, PackedLinear, pack_for_decoding
    ours, _ = pair
    assert not any(type(m) is nn.Linear for m in ours.modules())
    packed = [m for m in ours.modules() if isinstance(m, PackedLinear)]
    assert len(packed) == 4 * ours.config.n_layer + 1 and all(m.rows == DECODE_ROWS for m in packed)
    assert ours.packed_head.out_features == ours.config.vocab_size and ours.packed_head.bias is None
    assert isinstance(ours.wte, nn.Embedding)
    half = gpt2.build(ours.config, load_weights(gpt2_checkpoint)).half()
    assert pack_for_decoding(half, device="cpu", dtype=torch.float16, tied_head=half.wte.weight) is None
    assert sum(type(m) is nn.Linear for m in half.modules()) == 4 * ours.config.n_layer


@pytest.mark.parametrize("rows", [1, 4])
def test_packed_logits_match_transformers(pair, rows):
    ours, theirs = pair
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
def test_packed_generation_is_token_identical(pair, gpt2_checkpoint, kw):
    ours, theirs = pair
    tok = load_tokenizer(gpt2_checkpoint)
    for text in ["The quick brown fox", "Hello", "1 2 3"]:
        prompt = tok.encode(text).ids
        step, reorder = gpt2.stepper(ours)
        got = decode(step, prompt, DecodeSettings(max_new_tokens=20, eos_token_ids=(EOS,), **kw), reorder=reorder)
        with torch.no_grad():
            want = theirs.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                   pad_token_id=EOS, eos_token_id=EOS, max_new_tokens=20, do_sample=False, **kw)
        assert got.sequence == want[0].tolist(), text


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
