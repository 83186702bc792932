"""The translation task (and summarization with T5) end to end against transformers' generate on the
same random-weight T5 checkpoints (tests/fixtures_t5.py), with the settings transformers' pipeline
took from the checkpoint (its task_specific_params over generation_config.json) and the same prefix:
token-identical outputs, the decoded text, the source as the encoder read it (cut at n_positions as
the tokenizer's truncation cuts it), the decoder's cross-attention over the final output, streaming and
cancelling, the CLI, and the messages for an empty text, a target the checkpoint lacks and a
checkpoint without translations."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine import InputError, SummarizationOptions, TranslationOptions, load_task
from engine.cancel import CancelToken
from engine.errors import Cancelled, CheckpointError
from tests.fixtures_t5 import N_POSITIONS, TASK_PARAMS, oracle

TEXT = "The house is wonderful. My friend lives in the north of the old city."
LONG = " ".join([TEXT] * 12)


@pytest.fixture(scope="module")
def translator(t5small):
    return load_task("translation", str(t5small), device="cpu")


@pytest.fixture(scope="module")
def theirs(t5small):
    return oracle(t5small)


@pytest.fixture(scope="module")
def tok(t5small):
    from transformers import T5Tokenizer
    return T5Tokenizer.from_pretrained(t5small)


def generate(model, ids, params, **over):
    settings = {k: v for k, v in params.items() if k != "prefix"} | over
    with torch.no_grad():
        return model.generate(ids, attention_mask=torch.ones_like(ids), decoder_start_token_id=0, eos_token_id=1,
                              pad_token_id=0, **settings)[0].tolist()


def source(tok, prefix, text, truncate=False):
    kw = dict(truncation=True, max_length=N_POSITIONS) if truncate else {}
    return tok(prefix + text, return_tensors="pt", **kw)["input_ids"]


@pytest.mark.parametrize("target", ["de", "fr", "ro"])
@pytest.mark.parametrize("text", [TEXT, "Das Haus ist wunderbar, déjà vu!", "A"])
def test_translation_matches_generate(translator, theirs, tok, target, text):
    params = TASK_PARAMS[f"translation_en_to_{target}"]
    ids = source(tok, params["prefix"], text)
    want = generate(theirs, ids, params)
    result = translator(text, TranslationOptions(target=target))
    assert result.input_ids.tolist() == ids[0].tolist()
    assert result.output_ids.tolist() == want and want[0] == 0
    assert result.to_json() == {"output_ids": want, "translation_text": tok.decode(want, skip_special_tokens=True)}
    assert result.text == result.translation_text and not result.truncated
    assert result.target == target and result.target_name == {"de": "German", "fr": "French", "ro": "Romanian"}[target]
    assert result.stopped_by == ("eos" if want[-1] == 1 else "length")


def test_targets_and_default(translator, theirs, tok):
    assert translator.targets == ("de", "fr", "ro")
    result = translator(TEXT)  # the checkpoint's first: German
    assert result.target == "de"
    assert result.output_ids.tolist() == generate(theirs, source(tok, TASK_PARAMS["translation_en_to_de"]["prefix"],
                                                                 TEXT), TASK_PARAMS["translation_en_to_de"])


@pytest.mark.parametrize("over", [dict(num_beams=1, max_length=9), dict(num_beams=3, length_penalty=0.5,
                                                                        no_repeat_ngram_size=2, min_length=4),
                                  dict(num_beams=2, early_stopping=False, max_length=15)])
def test_options_override_the_checkpoint(translator, theirs, tok, over):
    params = TASK_PARAMS["translation_en_to_fr"]
    want = generate(theirs, source(tok, params["prefix"], TEXT), params, **over)
    assert translator(TEXT, TranslationOptions(target="fr", **over)).output_ids.tolist() == want


def test_untied_gated_checkpoint(t5flan):
    from transformers import T5Tokenizer
    task = load_task("translation", str(t5flan), device="cpu")
    tok = T5Tokenizer.from_pretrained(t5flan)
    model = oracle(t5flan)
    for target in task.targets:
        params = TASK_PARAMS[f"translation_en_to_{target}"]
        want = generate(model, source(tok, params["prefix"], TEXT), params)
        assert task(TEXT, TranslationOptions(target=target)).output_ids.tolist() == want


def test_spiece_model_only(t5small, translator, tmp_path):
    """A checkpoint with spiece.model and no tokenizer.json translates the same."""
    for name in ("config.json", "generation_config.json", "model.safetensors", "spiece.model"):
        shutil.copy(t5small / name, tmp_path / name)
    task = load_task("translation", str(tmp_path), device="cpu")
    for target in ("de", "ro"):
        a, b = task(TEXT, TranslationOptions(target=target)), translator(TEXT, TranslationOptions(target=target))
        assert a.input_ids.tolist() == b.input_ids.tolist() and a.to_json() == b.to_json()


def test_long_text_is_cut_as_the_tokenizer_truncates(translator, theirs, tok):
    params = TASK_PARAMS["translation_en_to_de"]
    ids = source(tok, params["prefix"], LONG, truncate=True)
    assert len(tok(params["prefix"] + LONG)["input_ids"]) > N_POSITIONS  # really too long
    result = translator(LONG, TranslationOptions(target="de"))
    assert result.truncated and len(result.input_ids) == N_POSITIONS and result.input_ids[-1] == 1
    assert result.input_ids.tolist() == ids[0].tolist()
    assert result.output_ids.tolist() == generate(theirs, ids, params)


def test_bad_inputs(translator):
    with pytest.raises(InputError, match="empty"):
        translator("   ")
    with pytest.raises(InputError, match=r"de \(German\), fr \(French\), ro \(Romanian\).*--target de\|fr\|ro"):
        translator(TEXT, TranslationOptions(target="es"))
    with pytest.raises(InputError, match="language code"):
        translator(TEXT, TranslationOptions(target="de fr"))
    with pytest.raises(InputError, match="max-length"):
        translator(TEXT, TranslationOptions(max_length=1))
    with pytest.raises(TypeError):
        translator(TEXT, SummarizationOptions())


def test_checkpoint_without_translations(t5small, tmp_path):
    for name in ("generation_config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(t5small / name, tmp_path / name)
    config = json.loads((t5small / "config.json").read_text())
    config["task_specific_params"] = {"summarization": TASK_PARAMS["summarization"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="names no translation"):
        load_task("translation", str(tmp_path), device="cpu")
    config["model_type"] = "bart"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="'t5'"):
        load_task("translation", str(tmp_path), device="cpu")


# ----------------------------------------------------------------------------- internals and streaming

def test_cross_attention_internals(t5small, translator, tok):
    from transformers import T5ForConditionalGeneration
    eager = T5ForConditionalGeneration.from_pretrained(t5small, attn_implementation="eager").eval()
    for opts in (TranslationOptions(target="de", internals=True),  # beam search, 4 beams
                 TranslationOptions(target="fr", num_beams=1, internals=True)):
        result = translator(TEXT, opts)
        inside = result.internals
        src, out = torch.tensor([result.input_ids.tolist()]), torch.tensor([result.output_ids.tolist()])
        with torch.no_grad():
            ref = eager(input_ids=src, decoder_input_ids=out[:, :-1], output_attentions=True).cross_attentions
        want = torch.stack([a[0].mean(dim=0) for a in ref]).numpy()
        assert inside.cross_attention.shape == (2, len(result.output_ids) - 1, len(result.input_ids)) == want.shape
        assert inside.cross_attention.dtype == want.dtype
        assert abs(inside.cross_attention - want).max() < 1e-5
        assert inside.prompt_tokens == tuple(tok.convert_ids_to_tokens(result.input_ids.tolist()))
        assert inside.prompt_tokens[-1] == "</s>" and len(inside.steps) >= 1
        if opts.num_beams == 1:
            assert [s.token_id for s in inside.steps] == result.output_ids.tolist()[1:]
        else:
            assert all(len(s.beams) == 4 for s in inside.steps)
    assert translator(TEXT).internals is None


def test_streaming_and_cancel(translator):
    partial = list(translator.stream(TEXT, TranslationOptions(target="de")))
    assert partial[-1].done and not any(p.done for p in partial[:-1])
    assert [p.step for p in partial[:-1]] == list(range(1, len(partial)))
    assert all(p.internals is None and p.output_ids[0] == 0 for p in partial)
    fractions = [f for f, _ in translator.steps(TEXT, TranslationOptions(target="de"))]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    token = CancelToken()
    seen = []

    def progress(fraction, result):
        seen.append(fraction)
        if len(seen) == 2:
            token.cancel()
    with pytest.raises(Cancelled):
        translator(LONG, TranslationOptions(target="de", max_length=30, min_length=25), cancel=token,
                   progress=progress)
    assert len(seen) == 2


# ----------------------------------------------------------------------------- summarization with T5

def test_t5_summarization_matches_generate(t5small, theirs, tok):
    task = load_task("summarization", str(t5small), device="cpu")
    params = TASK_PARAMS["summarization"]
    for text in (TEXT, LONG):
        ids = source(tok, "summarize: ", text, truncate=True)
        want = generate(theirs, ids, params)
        result = task(text)
        assert result.input_ids.tolist() == ids[0].tolist() and result.truncated == (text is LONG)
        assert result.output_ids.tolist() == want
        assert result.to_json() == {"output_ids": want, "summary_text": tok.decode(want, skip_special_tokens=True)}
        assert result.text == result.summary_text
    greedy = task(TEXT, SummarizationOptions(num_beams=1, max_length=10, min_length=0))
    want = generate(theirs, source(tok, "summarize: ", TEXT), params, num_beams=1, max_length=10, min_length=0)
    assert greedy.output_ids.tolist() == want
    inside = task(TEXT, SummarizationOptions(internals=True)).internals
    assert inside.cross_attention.shape[0] == 2 and inside.prompt_tokens[0] == tok.convert_ids_to_tokens(ids[0, :1])[0]


# ----------------------------------------------------------------------------- CLI

def test_translation_cli(capsys, t5small, translator):
    from engine import cli
    args = ["--model", str(t5small), "--device", "cpu"]
    assert cli.main(["text", "translation", TEXT, "--target", "fr", "--json", *args]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == translator(TEXT, TranslationOptions(target="fr")).to_json()
    assert cli.main(["text", "translation", TEXT, "--target", "ro", "--num-beams", "1", "--max-length", "8",
                     *args]) == 0
    printed = capsys.readouterr().out
    want = translator(TEXT, TranslationOptions(target="ro", num_beams=1, max_length=8))
    assert printed.startswith(want.translation_text + "\n[Romanian, ")
    assert cli.main(["text", "translation", TEXT, "--target", "es", *args]) == 2
    assert "--target de|fr|ro" in capsys.readouterr().err
    assert cli.main(["text", "translation", "", *args]) == 2
    assert "empty" in capsys.readouterr().err
    assert cli.main(["text", "translation", LONG, *args]) == 0
    assert "source cut at the model's max length" in capsys.readouterr().out


def test_summarization_cli_with_t5(capsys, t5small, tmp_path):
    from engine import cli
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    assert cli.main(["text", "summarization", "--file", str(tmp_path / "a.txt"), "--model", str(t5small),
                     "--device", "cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == load_task("summarization", str(t5small), device="cpu")(TEXT).to_json()


@pytest.mark.parametrize("clean_up", [None, True, False])
def test_decoding_follows_the_tokenizer_config(t5small, tmp_path, clean_up):
    """The text is transformers' decode with skip_special_tokens, including the checkpoint's
    ``clean_up_tokenization_spaces`` (" ." -> "." and the like) when its tokenizer_config.json sets it."""
    from transformers import T5Tokenizer
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(t5small / name, tmp_path / name)
    if clean_up is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"clean_up_tokenization_spaces": clean_up}))
    task = load_task("translation", str(tmp_path), device="cpu")
    tok = T5Tokenizer.from_pretrained(tmp_path)
    for text in ("The house is wonderful . Is it ? Yes , it is !", "My friend 's house isn't old ."):
        ids = [0] + tok(text)["input_ids"]
        assert task._text(ids) == tok.decode(ids, skip_special_tokens=True)
        assert (" ." in task._text(ids)) == (clean_up is not True)
