"""Our BERT / DistilBERT (engine.models.bert) against transformers: every head's logits within 1e-4,
on checkpoints as transformers 5 saves them and in the real hub layouts; strict loading names the
keys that do not fit."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine.device import resolve
from engine.errors import CheckpointError, InputError
from engine.models import bert
from tests.fixtures_bert import native

EXACT = resolve("cpu", "exact")
HEAD_OF = {"ForSequenceClassification": "sequence-classification", "ForTokenClassification": "token-classification",
           "ForQuestionAnswering": "question-answering", "ForMaskedLM": "masked-lm", "ForPreTraining": "masked-lm",
           "Model": "embeddings"}
ARCHS = [f"{base}{head}" for base in ("Bert", "DistilBert") for head in
         ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "ForMaskedLM", "Model")]


def _head(arch: str) -> str:
    for suffix, head in HEAD_OF.items():
        if arch.endswith(suffix):
            return head
    raise KeyError(arch)


def _inputs(vocab_size: int, batch: int = 1, t: int = 13, pad: int = 0, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (batch, t), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    types = torch.zeros_like(ids)
    types[:, t // 2:] = 1
    mask = torch.ones_like(ids)
    if pad:
        mask[-1, -pad:] = 0
        ids[-1, -pad:] = 0
    return ids, types, mask


def _theirs(model, arch, ids, types, mask):
    kwargs = {"input_ids": ids, "attention_mask": mask}
    if arch.startswith("Bert"):
        kwargs["token_type_ids"] = types
    out = model(**kwargs)
    if arch.endswith("ForQuestionAnswering"):
        return torch.stack([out.start_logits, out.end_logits], dim=-1)  # (B, T, 2)
    if arch.endswith("Model"):
        return out.last_hidden_state
    if arch.endswith("ForPreTraining"):
        return out.prediction_logits
    return out.logits


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("batch, pad", [(1, 0), (2, 4)])
def test_every_head_matches_transformers(arch, batch, pad, bert_head_checkpoints):
    import transformers

    folder = bert_head_checkpoints(arch)
    theirs = getattr(transformers, arch).from_pretrained(folder).eval()
    ours = bert.from_checkpoint(folder, EXACT, _head(arch))
    ids, types, mask = _inputs(theirs.config.vocab_size, batch, pad=pad)
    with torch.inference_mode():
        want = _theirs(theirs, arch, ids, types, mask)
        got = ours(ids, types, mask).logits
    if arch.endswith("ForSequenceClassification"):
        assert got.shape == want.shape == (batch, 9)
    assert want.std() > 0.1  # the outputs vary, so the comparison means something
    keep = mask.bool()
    if got.dim() == 3:  # per token: padding positions are not compared
        torch.testing.assert_close(got[keep], want[keep], atol=1e-4, rtol=0)
    else:
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("layout, arch", [
    ("sst2_checkpoint", "DistilBertForSequenceClassification"),
    ("ner_checkpoint", "BertForTokenClassification"),
    ("squad_checkpoint", "DistilBertForQuestionAnswering"),
    ("pretraining_checkpoint", "BertForPreTraining"),
    ("distil_mlm_checkpoint", "DistilBertForMaskedLM"),
    ("bare_bert_checkpoint", "BertModel"),
])
def test_real_hub_layouts_load_and_match(layout, arch, request):
    import transformers

    folder = request.getfixturevalue(layout)
    theirs = getattr(transformers, arch).from_pretrained(native(folder)).eval()
    ours = bert.from_checkpoint(folder, EXACT, _head(arch))
    ids, types, mask = _inputs(theirs.config.vocab_size, 2, t=21, pad=5, seed=4)
    with torch.inference_mode():
        want = _theirs(theirs, arch, ids, types, mask)
        got = ours(ids, types, mask).logits
    keep = mask.bool()
    if got.dim() == 3:
        torch.testing.assert_close(got[keep], want[keep], atol=1e-4, rtol=0)
    else:
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


def test_rows_and_attention_change_nothing(pretraining_checkpoint):
    """The last layer computed at some rows only (fill-mask's [MASK]s), and the attention made
    explicit, give the same logits; the probabilities are (B, heads, T, T) rows summing to 1."""
    model = bert.from_checkpoint(pretraining_checkpoint, EXACT, "masked-lm")
    ids, types, mask = _inputs(model.config.vocab_size, 1, t=17)
    rows = torch.tensor([3, 9])
    with torch.inference_mode():
        full = model(ids, types).logits  # (1, T, vocab)
        some = model(ids, types, rows=rows).logits  # (1, 2, vocab)
        seen = model(ids, types, rows=rows, want_attention=True)
    torch.testing.assert_close(some, full[:, rows], atol=1e-4, rtol=0)
    torch.testing.assert_close(seen.logits, some, atol=1e-5, rtol=0)
    assert len(seen.attentions) == model.config.num_hidden_layers
    a = seen.attentions[-1]
    assert a.shape == (1, 4, 17, 17)
    torch.testing.assert_close(a.sum(-1), torch.ones(1, 4, 17))


def test_attention_matches_transformers_eager(bert_head_checkpoints):
    import transformers

    folder = bert_head_checkpoints("BertForTokenClassification")
    theirs = transformers.BertForTokenClassification.from_pretrained(folder, attn_implementation="eager").eval()
    ours = bert.from_checkpoint(folder, EXACT, "token-classification")
    ids, types, mask = _inputs(theirs.config.vocab_size, 2, pad=3)
    with torch.inference_mode():
        want = theirs(input_ids=ids, token_type_ids=types, attention_mask=mask, output_attentions=True).attentions
        got = ours(ids, types, mask, want_attention=True).attentions
    for w, g in zip(want, got):
        torch.testing.assert_close(g[0], w[0], atol=1e-5, rtol=0)  # the unpadded item
        torch.testing.assert_close(g[1, :, :-3, :-3], w[1, :, :-3, :-3], atol=1e-5, rtol=0)


def test_remap_is_pure_and_fuses_qkv(pretraining_checkpoint):
    from engine.hub import load_weights
    state = load_weights(pretraining_checkpoint)
    before = dict(state)
    out = bert.remap(state, "masked-lm")
    assert state.keys() == before.keys()  # the input is untouched
    assert out["bert.encoder.layer.0.attention.qkv.weight"].shape == (96, 32)  # q, k, v rows of (32, 32)
    assert not any(k.endswith((".gamma", ".beta", "position_ids")) or "seq_relationship" in k or "pooler" in k
                   for k in out)


def test_strict_loading_names_the_keys(tmp_path, ner_checkpoint, sst2_checkpoint):
    from safetensors.torch import load_file, save_file

    # a token classifier asked for a sequence-classification head: its pooler and classifier shape differ
    with pytest.raises(CheckpointError, match="pooler"):
        bert.from_checkpoint(ner_checkpoint, EXACT, "sequence-classification")
    # a missing layer weight and a stray one are both named
    broken = tmp_path / "broken"
    shutil.copytree(sst2_checkpoint, broken)
    state = load_file(str(broken / "model.safetensors"))
    del state["distilbert.transformer.layer.1.ffn.lin2.weight"]
    state["distilbert.transformer.layer.1.extra.weight"] = torch.zeros(2)
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        bert.from_checkpoint(broken, EXACT, "sequence-classification")
    message = str(err.value)
    assert "missing keys: bert.encoder.layer.1.output.dense.weight" in message
    assert "unexpected keys: bert.encoder.layer.1.extra.weight" in message
    # the wrong shapes say so
    state = load_file(str(sst2_checkpoint / "model.safetensors"))
    state["classifier.weight"] = torch.zeros(3, 32)
    state["classifier.bias"] = torch.zeros(3)
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match="classifier.weight"):
        bert.from_checkpoint(broken, EXACT, "sequence-classification")


def test_config_errors(tmp_path, sst2_checkpoint):
    broken = tmp_path / "cfg"
    shutil.copytree(sst2_checkpoint, broken)
    cfg = json.loads((broken / "config.json").read_text())
    del cfg["n_layers"]
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="n_layers"):
        bert.from_checkpoint(broken, EXACT, "sequence-classification")
    cfg["n_layers"], cfg["model_type"] = 2, "roberta"
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="roberta"):
        bert.from_checkpoint(broken, EXACT, "sequence-classification")
    for bad in ({"model_type": "bert", "position_embedding_type": "relative_key"},
                {"model_type": "bert", "hidden_act": "mish"}):
        c = {"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 16, **bad}
        with pytest.raises(CheckpointError):
            bert.BertConfig.from_hf(c)


def test_too_long_input_is_an_input_error(sst2_checkpoint):
    model = bert.from_checkpoint(sst2_checkpoint, EXACT, "sequence-classification")
    with pytest.raises(InputError, match="513 tokens"):
        model(torch.full((1, 513), 5))


def test_fast_precision_keeps_the_answers_or_runs_exact(bert_head_checkpoints, pretraining_checkpoint):
    """The fast plans (engine.models.bert.FAST_PLANS): a classifier in bfloat16 with its embeddings,
    LayerNorms and head in float32 keeps its answers; the masked-LM head runs exact, with a notice."""
    import transformers

    from engine.device import Placement
    fast = Placement(torch.device("cpu"), torch.bfloat16, "fast")
    folder = bert_head_checkpoints("BertForTokenClassification")
    ours = bert.from_checkpoint(folder, fast, "token-classification")
    dense = ours.bert.encoder.layer[0].intermediate.dense  # packed where oneDNN packs bf16 (AVX-512), else plain
    assert (dense.dtype if hasattr(dense, "packed") else dense.weight.dtype) == torch.bfloat16
    assert ours.bert.embeddings.word_embeddings.weight.dtype == torch.float32
    theirs = transformers.BertForTokenClassification.from_pretrained(folder).eval()
    ids, types, mask = _inputs(theirs.config.vocab_size, 1, t=15)
    with torch.inference_mode():
        got = ours(ids, types, mask).logits
        want = theirs(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.softmax(-1), want.softmax(-1), atol=0.05, rtol=0)
    placement, notice = bert.fast_placement(fast, "masked-lm")
    assert placement.precision == "exact" and placement.dtype == torch.float32 and "masked-LM" in notice


@pytest.mark.parametrize("tied", [True, False])
def test_masked_lm_decoder_packed_matches_transformers(tied, tmp_path):
    """On the CPU the MLM decoder runs packed: a tied one as a packed copy of the token embeddings (the
    lookup keeps the plain table), an untied one packed in place with the other layers (it crashed:
    the forward read the packed layer's .weight). The logits stay transformers'."""
    from engine.models.optimize import PackedLinear
    from tests.fixtures_bert import _model, write_vocab
    theirs = _model("BertForMaskedLM", 811, cased=False, tie_word_embeddings=tied)
    if not tied:
        assert not torch.equal(theirs.cls.predictions.decoder.weight, theirs.bert.embeddings.word_embeddings.weight)
    theirs.save_pretrained(tmp_path)
    write_vocab(tmp_path, cased=False, tokenizer_json=False)
    ours = bert.from_checkpoint(tmp_path, EXACT, "masked-lm")
    p = ours.cls.predictions
    assert (p.packed is not None) == tied
    assert tied or isinstance(p.decoder, PackedLinear)
    ids, types, mask = _inputs(theirs.config.vocab_size, 2, pad=3)
    with torch.inference_mode():
        want = theirs(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
        got = ours(ids, types, mask).logits
        rows = ours(ids, types, mask, rows=torch.tensor([1, 4])).logits  # the [MASK] rows only
    assert want.std() > 0.1
    keep = mask.bool()
    torch.testing.assert_close(got[keep], want[keep], atol=1e-4, rtol=0)
    torch.testing.assert_close(rows, want[:, [1, 4]], atol=1e-4, rtol=0)
