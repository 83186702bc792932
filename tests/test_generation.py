"""engine.generation on our GPT-2 against transformers' generate on the same random-weight
checkpoint: greedy, beam search (length penalty, no-repeat n-grams, early stopping) and seeded
sampling token-identical; streaming and cancelling."""
from __future__ import annotations

import pytest
import torch

from engine.cancel import CancelToken
from engine.device import resolve
from engine.errors import Cancelled
from engine.generation import DecodeSettings, decode
from engine.models import gpt2
from engine.processors.tokenizer import load_tokenizer

EXACT = resolve("cpu", "exact")
PROMPTS = ["The quick brown fox", "Hello", "Le café est très bon. Über den Wolken", "1 2 3"]
EOS = 0


@pytest.fixture(scope="module")
def models(gpt2_checkpoint, gpt2_native):
    from transformers import GPT2LMHeadModel
    return gpt2.from_checkpoint(gpt2_checkpoint, EXACT), GPT2LMHeadModel.from_pretrained(gpt2_native).eval()


@pytest.fixture(scope="module")
def tok(gpt2_checkpoint):
    return load_tokenizer(gpt2_checkpoint)


def ours(model, prompt, **kw):
    step, reorder = gpt2.stepper(model)
    return decode(step, prompt, DecodeSettings(eos_token_ids=(EOS,), **kw), reorder=reorder)


def theirs(model, prompt, seed=None, **kw):
    kw = {"num_beams": 1, "do_sample": False} | kw
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             pad_token_id=EOS, eos_token_id=EOS, **kw)
    return out[0].tolist()


@pytest.mark.parametrize("n", [1, 6, 30])
@pytest.mark.parametrize("text", PROMPTS)
def test_greedy_is_token_identical(models, tok, text, n):
    prompt = tok.encode(text).ids
    got = ours(models[0], prompt, max_new_tokens=n)
    assert got.sequence == theirs(models[1], prompt, max_new_tokens=n)
    assert got.new_tokens == got.sequence[len(prompt):]
    assert len(got.steps) == len(got.new_tokens)


@pytest.mark.parametrize("kw", [dict(repetition_penalty=1.3), dict(no_repeat_ngram_size=2),
                                dict(min_new_tokens=5, repetition_penalty=0.8)])
def test_greedy_with_processors(models, tok, kw):
    for text in PROMPTS[:3]:
        prompt = tok.encode(text).ids
        assert ours(models[0], prompt, max_new_tokens=25, **kw).sequence == \
            theirs(models[1], prompt, max_new_tokens=25, **kw)


@pytest.mark.parametrize("kw", [
    dict(num_beams=3),
    dict(num_beams=4, length_penalty=0.6),
    dict(num_beams=2, length_penalty=2.0, no_repeat_ngram_size=3),
    dict(num_beams=3, early_stopping=True),
    dict(num_beams=3, early_stopping="never", length_penalty=1.2),
    dict(num_beams=5, no_repeat_ngram_size=2, repetition_penalty=1.2),
])
@pytest.mark.parametrize("n", [4, 20])
def test_beam_search_is_token_identical(models, tok, kw, n):
    for text in PROMPTS:
        prompt = tok.encode(text).ids
        got = ours(models[0], prompt, max_new_tokens=n, **kw)
        assert got.sequence == theirs(models[1], prompt, max_new_tokens=n, **kw), text
        assert got.steps and len(got.steps[0].beams) == kw["num_beams"]


@pytest.mark.parametrize("kw", [dict(top_k=50), dict(top_k=0, top_p=0.9), dict(temperature=0.7, top_k=20, top_p=0.95),
                                dict(temperature=1.5, top_k=5, repetition_penalty=1.2)])
@pytest.mark.parametrize("seed", [0, 1234])
def test_seeded_sampling_is_token_identical(models, tok, kw, seed):
    for text in PROMPTS[:2]:
        prompt = tok.encode(text).ids
        got = ours(models[0], prompt, max_new_tokens=20, do_sample=True, seed=seed, **kw)
        assert got.sequence == theirs(models[1], prompt, seed=seed, max_new_tokens=20, do_sample=True, **kw)
        again = ours(models[0], prompt, max_new_tokens=20, do_sample=True, seed=seed, **kw)
        assert again.sequence == got.sequence


def test_streaming_and_probabilities(models, tok):
    prompt = tok.encode(PROMPTS[0]).ids
    seen = []
    step, reorder = gpt2.stepper(models[0])
    out = decode(step, prompt, DecodeSettings(max_new_tokens=8, top_candidates=10), on_step=seen.append)
    assert [s.token for s in seen] == out.new_tokens
    for s in seen:
        assert len(s.top_ids) == 10 and s.top_probs == tuple(sorted(s.top_probs, reverse=True))
        assert s.token == s.top_ids[0] and abs(s.prob - s.top_probs[0]) < 1e-6  # greedy picks the best


def test_cancel_stops_within_one_token(models, tok):
    prompt = tok.encode(PROMPTS[1]).ids
    token = CancelToken()
    seen = []

    def on_step(info):
        seen.append(info)
        if len(seen) == 3:
            token.cancel()

    step, _ = gpt2.stepper(models[0])
    with pytest.raises(Cancelled):
        decode(step, prompt, DecodeSettings(max_new_tokens=50), cancel=token, on_step=on_step)
    assert len(seen) == 3


# ----------------------------------------------------------------------------- the text-generation task

@pytest.fixture(scope="module")
def task(gpt2_checkpoint):
    from engine import load_task
    return load_task("text-generation", str(gpt2_checkpoint), device="cpu")


def test_task_matches_generate_and_the_pipeline_text(task, models, tok):
    from engine import TextGenerationOptions
    prompt = "The quick brown fox"
    ids = tok.encode(prompt).ids
    for opts, kw in [(TextGenerationOptions(max_new_tokens=12), {}),
                     (TextGenerationOptions(max_new_tokens=12, num_beams=3, length_penalty=0.7),
                      dict(num_beams=3, length_penalty=0.7)),
                     (TextGenerationOptions(max_new_tokens=12, do_sample=True, seed=5, top_k=0, top_p=0.8),
                      dict(do_sample=True, top_k=0, top_p=0.8))]:
        result = task(prompt, opts)
        want = theirs(models[1], ids, seed=5 if opts.do_sample else None, max_new_tokens=12, **kw)
        assert result.prompt_ids.tolist() == ids and result.generated_ids.tolist() == want[len(ids):]
        assert result.to_json() == {"generated_ids": want[len(ids):], "text": result.text}
        assert result.text == tok.decode(want[len(ids):], skip_special_tokens=True)
        assert result.generated_text == prompt + result.text
        assert result.stopped_by in ("eos", "length") and result.done and result.tokens_per_s > 0


def test_stream_yields_every_token_then_the_final(task):
    from engine import TextGenerationOptions
    opts = TextGenerationOptions(max_new_tokens=10, internals=True, top_candidates=5)
    items = list(task.stream("Hello", opts))
    final = items[-1]
    partial = items[:-1]
    assert final.done and not any(p.done for p in partial)
    assert len(partial) == len(final)
    assert [len(p) for p in partial] == list(range(1, len(final) + 1))
    assert partial[-1].generated_ids.tolist() == final.generated_ids.tolist()
    steps = final.internals.steps
    assert len(steps) == len(final) and all(len(s.top_ids) == 5 for s in steps)
    assert all(s.token_id == int(s.top_ids[0]) for s in steps)  # greedy: the best each time
    fractions = [f for f, _ in task.steps("Hello", opts)]
    assert fractions[-1] == 1.0 and all(0 < f <= 1 for f in fractions)


def test_stream_beam_search_shows_beams(task):
    from engine import TextGenerationOptions
    items = list(task.stream("Hello", TextGenerationOptions(max_new_tokens=6, num_beams=3, internals=True)))
    assert items[-1].internals.steps[0].beams and len(items[-1].internals.steps[0].beams) == 3
    assert items[-1].score is not None


def test_task_cancel(task):
    from engine import TextGenerationOptions
    token = CancelToken()
    seen = 0
    with pytest.raises(Cancelled):
        for _ in task.stream("Hello", TextGenerationOptions(max_new_tokens=40), cancel=token):
            seen += 1
            if seen == 2:
                token.cancel()
    assert seen == 2


@pytest.mark.parametrize("text, opts, message", [
    ("", {}, "The prompt is empty"),
    ("   ", {}, "The prompt is empty"),
    ("Hello", dict(max_new_tokens=100000), "max-new-tokens must be a whole number between 1 and 1024"),
    ("Hello", dict(max_new_tokens=128), "ask for at most 127"),
    ("Hello " * 200, dict(max_new_tokens=10), "prompt tokens"),
    ("Hello", dict(top_p=0.0), "top-p"),
    ("Hello", dict(temperature=0), "temperature"),
    ("Hello", dict(num_beams=99), "num-beams"),
])
def test_bad_input_is_one_clear_message(task, text, opts, message):
    from engine import InputError, TextGenerationOptions
    with pytest.raises(InputError, match=message) as err:
        task(text, TextGenerationOptions(**opts))
    assert "\n" not in str(err.value)


def test_long_prompt_truncated_when_asked(task):
    from engine import TextGenerationOptions
    result = task("Hello " * 200, TextGenerationOptions(max_new_tokens=10, truncate_prompt=True))
    assert result.prompt_truncated and len(result.prompt_ids) == 128 - 10


def test_unicode_prompt(task):
    from engine import TextGenerationOptions
    result = task("こんにちは世界 🙂 café", TextGenerationOptions(max_new_tokens=8))
    assert len(result) == 8 or result.stopped_by == "eos"
    assert isinstance(result.text, str)


def test_cli(capsys, gpt2_checkpoint, models, tok):
    import json

    from engine import cli
    ids = tok.encode("Hello").ids
    want = theirs(models[1], ids, max_new_tokens=7)[len(ids):]
    base = ["text", "text-generation", "Hello", "--model", str(gpt2_checkpoint), "--device", "cpu",
            "--max-new-tokens", "7"]
    assert cli.main([*base, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["generated_ids"] == want and out["text"] == tok.decode(want, skip_special_tokens=True)
    assert cli.main(base) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Hello" + out["text"]) and "tokens/s" in printed
    assert cli.main([*base, "--num-beams", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["generated_ids"] == theirs(models[1], ids, max_new_tokens=7,
                                                                           num_beams=2)[len(ids):]


@pytest.mark.parametrize("args, message", [(["", "--max-new-tokens", "5"], "empty"),
                                           (["Hi", "--max-new-tokens", "99999"], "max-new-tokens")])
def test_cli_bad_input_one_line(capsys, gpt2_checkpoint, args, message):
    from engine import cli
    code = cli.main(["text", "text-generation", *args, "--model", str(gpt2_checkpoint), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
