"""Our BART (engine.models.bart) against transformers: logits within 1e-4 with and without the KV
cache, on checkpoints whose shared embeddings are stored once, three times or only as the encoder's /
decoder's copies; generation token-identical to generate with distilbart-cnn's settings (beam search,
length penalty 2, min length, no-repeat 3-grams, early stopping, forced BOS / EOS)."""
from __future__ import annotations

import pytest
import torch

from engine.device import resolve
from engine.errors import CheckpointError
from engine.generation import DecodeSettings, decode
from engine.models import bart

EXACT = resolve("cpu", "exact")
TINY = dict(vocab_size=97, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
            dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, forced_bos_token_id=0)


@pytest.fixture(scope="module")
def oracle():
    from transformers import BartConfig, BartForConditionalGeneration
    torch.manual_seed(3)
    model = BartForConditionalGeneration(BartConfig(**TINY)).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name or "layernorm" in name:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5 if name.endswith("weight") else
                        torch.randn(p.shape, generator=g) * 0.1)
            elif p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "shared" in name or "embed" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.8)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / p.shape[1] ** 0.5))
        model.final_logits_bias.copy_(torch.randn(model.final_logits_bias.shape, generator=g) * 0.5)
    return model


def _config():
    return bart.BartConfig.from_hf({"model_type": "bart", **TINY})


def _state(oracle, copies: tuple[str, ...]):
    state = {k: v for k, v in oracle.state_dict().items()
             if not k.endswith(("shared.weight", "embed_tokens.weight")) and k != "lm_head.weight"}
    for name in copies:
        state[name] = oracle.model.shared.weight
    return state


@pytest.fixture(scope="module")
def ours(oracle):
    return bart.build(_config(), _state(oracle, ("model.shared.weight",)))


def _ids(t, seed, vocab=97):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (1, t), generator=g)
    ids[0, 0], ids[0, -1] = 0, 2
    return ids


@pytest.mark.parametrize("copies", [("model.shared.weight",),
                                    ("model.shared.weight", "model.encoder.embed_tokens.weight",
                                     "model.decoder.embed_tokens.weight"),
                                    ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"),
                                    ("model.shared.weight", "lm_head.weight")])
def test_logits_match(oracle, copies):
    model = bart.build(_config(), _state(oracle, copies))
    src, tgt = _ids(17, 1), _ids(9, 2)
    with torch.no_grad():
        ref = oracle(input_ids=src, decoder_input_ids=tgt).logits
    assert (model(src, tgt).logits - ref).abs().max().item() < 1e-4


def test_kv_cache_equals_full(ours):
    src, tgt = _ids(12, 4), _ids(10, 5)
    full = ours(src, tgt).logits
    states = ours.encode(src)
    cache = ours.new_cache()
    got = [ours.decode(tgt[:, :4], states, cache).logits]
    for i in range(4, 10):
        got.append(ours.decode(tgt[:, i:i + 1], states, cache).logits)
    assert (torch.cat(got, 1) - full).abs().max().item() < 1e-5


def test_missing_key_is_named(oracle):
    state = _state(oracle, ("model.shared.weight",))
    del state["model.decoder.layers.1.fc1.weight"]
    with pytest.raises(CheckpointError, match="decoder.layers.1.fc1.weight"):
        bart.build(_config(), state)


CNN = dict(num_beams=4, length_penalty=2.0, no_repeat_ngram_size=3, early_stopping=True)


@pytest.mark.parametrize("kw, max_length, min_length", [
    ({}, 12, 0), ({}, 30, 5), (CNN, 20, 8), (CNN, 40, 0), (dict(num_beams=3, length_penalty=0.5), 25, 3),
    (dict(num_beams=2, early_stopping=False, no_repeat_ngram_size=2), 18, 4)])
@pytest.mark.parametrize("seed", [1, 6, 9])
def test_generation_is_token_identical(oracle, ours, kw, max_length, min_length, seed):
    src = _ids(15, seed)
    with torch.no_grad():
        want = oracle.generate(src, attention_mask=torch.ones_like(src), max_length=max_length,
                               min_length=min_length, do_sample=False, num_beams=kw.get("num_beams", 1),
                               forced_bos_token_id=0, forced_eos_token_id=2, eos_token_id=2, pad_token_id=1,
                               decoder_start_token_id=2,
                               **{k: v for k, v in kw.items() if k != "num_beams"})[0].tolist()
    step, reorder = bart.stepper(ours, src)
    c = ours.config
    s = DecodeSettings(max_new_tokens=max_length - 1, min_length=min_length, eos_token_ids=(c.eos_token_id,),
                       pad_token_id=c.pad_token_id, forced_bos_token_id=c.forced_bos_token_id,
                       forced_eos_token_id=c.forced_eos_token_id, **kw)
    got = decode(step, [c.decoder_start_token_id], s, reorder=reorder)
    assert got.sequence == want


# ----------------------------------------------------------------------------- the summarization task

CNN_CONFIG = dict(num_beams=4, length_penalty=2.0, max_length=30, min_length=6, no_repeat_ngram_size=3,
                  early_stopping=True, forced_bos_token_id=0, forced_eos_token_id=2)
ARTICLE = ("The river flows through the old city, past the tower that people built many years ago. "
           "John lives in the north of the country and works for a company in London.")


def _summarizer_folder(root, generation_json: bool):
    """A BartForConditionalGeneration folder with vocab.json + merges.txt; the CNN generation settings
    at config.json's top level (older checkpoints) or in generation_config.json (newer)."""
    import json

    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForConditionalGeneration

    from tests.fixtures_gpt2 import CORPUS
    root.mkdir(parents=True, exist_ok=True)
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(CORPUS * 10 + [ARTICLE] * 10, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    tok.save_model(str(root))
    vocab = len(json.loads((root / "vocab.json").read_text(encoding="utf-8")))
    kw = {**TINY, "vocab_size": vocab}
    torch.manual_seed(11)
    model = BartForConditionalGeneration(BartConfig(**kw)).eval()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * (0.8 if "shared" in name or "embed" in name
                                                             else 1.5 / p.shape[1] ** 0.5))
    model.save_pretrained(root)
    config = json.loads((root / "config.json").read_text())
    config["architectures"] = ["BartForConditionalGeneration"]
    if generation_json:
        (root / "generation_config.json").write_text(json.dumps({**CNN_CONFIG, "decoder_start_token_id": 2,
                                                                 "eos_token_id": 2, "pad_token_id": 1}))
    else:
        (root / "generation_config.json").unlink(missing_ok=True)
        config.update(CNN_CONFIG)
    (root / "config.json").write_text(json.dumps(config))
    return root, model


@pytest.fixture(scope="module", params=[False, True], ids=["config.json", "generation_config.json"])
def summarizer(request, tmp_path_factory):
    return _summarizer_folder(tmp_path_factory.mktemp("bart") / "cnn", request.param)


def test_summarization_task_matches_generate(summarizer):
    from transformers import BartTokenizer

    from engine import SummarizationOptions, load_task
    folder, oracle_model = summarizer
    task = load_task("summarization", str(folder), device="cpu")
    ids = BartTokenizer.from_pretrained(folder)(ARTICLE, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want = oracle_model.generate(ids, attention_mask=torch.ones_like(ids), decoder_start_token_id=2,
                                     eos_token_id=2, pad_token_id=1, **CNN_CONFIG)[0].tolist()
    result = task(ARTICLE)
    assert result.input_ids.tolist() == ids[0].tolist()
    assert result.output_ids.tolist() == want
    assert result.to_json() == {"output_ids": want, "summary_text": BartTokenizer.from_pretrained(folder).decode(
        want, skip_special_tokens=True)}
    greedy = task(ARTICLE, SummarizationOptions(num_beams=1, max_length=12, min_length=0))
    with torch.no_grad():
        want = oracle_model.generate(ids, attention_mask=torch.ones_like(ids), decoder_start_token_id=2,
                                     eos_token_id=2, pad_token_id=1, **{**CNN_CONFIG, "num_beams": 1,
                                                                        "max_length": 12, "min_length": 0})
    assert greedy.output_ids.tolist() == want[0].tolist()
    partial = list(task.stream(ARTICLE))
    assert partial[-1].done and not any(p.done for p in partial[:-1])
    assert [p.step for p in partial[:-1]] == list(range(1, len(partial)))
    fractions = [f for f, _ in task.steps(ARTICLE)]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_summarization_cli(capsys, summarizer):
    import json

    from engine import cli
    folder, _ = summarizer
    assert cli.main(["text", "summarization", ARTICLE, "--model", str(folder), "--device", "cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["output_ids"][0] == 2 and isinstance(out["summary_text"], str)
    assert cli.main(["text", "summarization", "", "--model", str(folder), "--device", "cpu"]) == 2
    assert "empty" in capsys.readouterr().err


def test_cross_attention_internals(summarizer):
    """The final result's cross-attention (one teacher-forced decoder pass over the output ids) is
    transformers' ``output_attentions`` cross-attention on the same ids, averaged over heads."""
    from transformers import BartForConditionalGeneration, BartTokenizer

    from engine import SummarizationOptions, load_task
    folder, _ = summarizer
    task = load_task("summarization", str(folder), device="cpu")
    eager = BartForConditionalGeneration.from_pretrained(folder, attn_implementation="eager").eval()
    tok = BartTokenizer.from_pretrained(folder)
    for opts in (SummarizationOptions(internals=True), SummarizationOptions(num_beams=1, max_length=12, internals=True)):
        result = task(ARTICLE, opts)
        src, out = torch.tensor([result.input_ids.tolist()]), torch.tensor([result.output_ids.tolist()])
        with torch.no_grad():
            ref = eager(input_ids=src, decoder_input_ids=out[:, :-1], output_attentions=True).cross_attentions
        want = torch.stack([a[0].mean(dim=0) for a in ref]).numpy()
        got = result.internals.cross_attention
        assert got.shape == (TINY["decoder_layers"], len(out[0]) - 1, len(src[0])) == want.shape
        assert abs(got - want).max() < 1e-5
        assert result.internals.prompt_tokens == tuple(tok.convert_ids_to_tokens(result.input_ids.tolist()))
    assert task(ARTICLE).internals is None


def test_old_force_bos_key_as_transformers_reads_it(tmp_path):
    """sshleifer/distilbart-cnn-12-6's config.json says ``force_bos_token_to_be_generated: true`` and has no
    forced_bos_token_id: transformers forces the BOS token (bos_token_id) as the first generated token,
    and so must we. Compared with generate reading the checkpoint's own settings (none passed)."""
    import json

    from transformers import BartForConditionalGeneration, BartTokenizer

    from engine import load_task
    folder, _ = _summarizer_folder(tmp_path / "old-key", generation_json=False)
    config = json.loads((folder / "config.json").read_text())
    config.pop("forced_bos_token_id", None)
    config["force_bos_token_to_be_generated"] = True
    (folder / "config.json").write_text(json.dumps(config))
    oracle = BartForConditionalGeneration.from_pretrained(folder).eval()
    ids = BartTokenizer.from_pretrained(folder)(ARTICLE, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want = oracle.generate(ids, attention_mask=torch.ones_like(ids))[0].tolist()
    assert want[1] == 0, "transformers forces <s> first"
    assert load_task("summarization", str(folder), device="cpu")(ARTICLE).output_ids.tolist() == want
