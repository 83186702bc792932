"""Small random-weight BERT and DistilBERT checkpoints, built once per session with transformers (the
oracle) and saved in the REAL hub layouts of the catalog's checkpoints:

* ``sst2_checkpoint``      — distilbert/distilbert-base-uncased-finetuned-sst-2-english: a
  DistilBertForSequenceClassification (NEGATIVE / POSITIVE), ``model.safetensors``, ``vocab.txt`` and
  ``tokenizer_config.json`` ({"do_lower_case": true, "model_max_length": 512}), no tokenizer.json.
* ``ner_checkpoint``       — dslim/bert-base-NER: a BertForTokenClassification with the CoNLL-2003
  tags, ``pytorch_model.bin`` only (with the legacy ``bert.embeddings.position_ids`` buffer), a cased
  ``vocab.txt`` and ``tokenizer_config.json``.
* ``squad_checkpoint``     — distilbert/distilbert-base-cased-distilled-squad: a
  DistilBertForQuestionAnswering with ``tokenizer.json`` + ``vocab.txt`` (cased).
* ``pretraining_checkpoint`` — google-bert/bert-base-uncased: a BertForPreTraining state with the
  original ``LayerNorm.gamma``/``beta`` names, the pooler and the next-sentence head, no decoder
  weight (tied), a ``position_ids`` buffer; config ``architectures: ["BertForMaskedLM"]``; uncased
  ``tokenizer.json`` + ``vocab.txt``.
* ``distil_mlm_checkpoint`` — distilbert-base-uncased: a DistilBertForMaskedLM state with
  ``vocab_projector.weight`` present (the hub file has it; transformers 5 would drop it).
* ``bare_bert_checkpoint`` — a sentence-transformers BertModel folder (keys without ``bert.``, the
  pooler present, ``modules.json`` and ``1_Pooling/config.json``).
* ``bert_head_checkpoints`` — a factory: (architecture, head) -> a folder exactly as transformers 5
  saves it, for every head of BERT and DistilBERT (tests/test_bert.py).

Each ``*_native`` twin (``native(folder)``) is the same weights as transformers 5 writes them, which
is what the oracle loads. Every weight is randomised with O(1) outputs (LayerNorms too, queries and
keys larger so attention is peaked, heads larger so labels and spans vary), hidden 32, 4 heads,
2-3 layers, 512 positions (question answering needs 384-token windows).
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

NER_LABELS = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
SST2_LABELS = ["NEGATIVE", "POSITIVE"]

_WORDS = """the a an of in on at to and or for with by from is was are were be been it its this that these
what who where when which how why does did do not no yes city river tower paris france london york new
john mary smith lives lived works worked born capital country people many years ago built bridge flows
through north south east west company microsoft google apple cat dog sat mat house play ##ing ##ed ##s ##er
##ly ##soft ##ville un ##believ ##able quick brown fox jumps over lazy good bad movie film great terrible
love hate story plot actor actors very really not boring fun day night cafe café deja vu naive resume
question answer text model token word sentence meaning""".split()
_PUNCT = list(".,!?;:'\"()-[]/")
_LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]


def vocabulary(cased: bool) -> list[str]:
    """A small WordPiece vocabulary: the specials first (ids 0-4 as in BERT's), punctuation, words
    (capitalised too when cased), and every letter alone and as ``##`` piece, so that nothing but
    odd characters is [UNK]."""
    words = []
    for w in _WORDS:
        words.append(w)
        if cased and not w.startswith("##") and w[0].isalpha():
            words.append(w[0].upper() + w[1:])
    letters = _LETTERS + ([c.upper() for c in _LETTERS] if cased else [])
    pieces = [f"##{c}" for c in letters]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_PUNCT, *letters, *pieces, *words]
    return list(dict.fromkeys(vocab))


TINY_BERT = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=512, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
TINY_DISTILBERT = dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=512, dropout=0.0,
                       attention_dropout=0.0, qa_dropout=0.0, seq_classif_dropout=0.0)


def randomise(model, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("LayerNorm" in name or "layer_norm" in name) and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1:  # biases, LayerNorm shifts
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif "embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.8)
            else:
                fan_in = p.shape[1]
                scale = 1.0
                if any(s in name for s in (".query.", ".key.", "q_lin", "k_lin")):
                    scale = 2.5
                elif any(s in name for s in ("classifier", "qa_outputs")):
                    scale = 3.0
                p.copy_(torch.randn(p.shape, generator=g) * scale / math.sqrt(fan_in))


def _model(arch: str, seed: int, cased: bool, **extra):
    import torch
    import transformers

    torch.manual_seed(seed)
    vocab = vocabulary(cased)
    if arch.startswith("DistilBert"):
        config = transformers.DistilBertConfig(vocab_size=len(vocab), pad_token_id=0, **TINY_DISTILBERT, **extra)
    else:
        config = transformers.BertConfig(vocab_size=len(vocab), pad_token_id=0, **TINY_BERT, **extra)
    model = getattr(transformers, arch)(config).eval()
    randomise(model, seed + 1)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return model


def labels(names: list[str]) -> dict:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def write_vocab(folder: Path, cased: bool, tokenizer_json: bool, **config) -> None:
    """vocab.txt and tokenizer_config.json as the hub checkpoints have them; with ``tokenizer_json``
    also the tokenizer.json that transformers' tokenizer writes for them."""
    vocab = vocabulary(cased)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    settings = {"do_lower_case": not cased, "model_max_length": 512, **config}
    if tokenizer_json:
        from transformers import BertTokenizer
        tmp = folder / "_tok"
        BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=not cased).save_pretrained(tmp)
        shutil.move(tmp / "tokenizer.json", folder / "tokenizer.json")
        shutil.rmtree(tmp)
    (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=2))


def _state(folder: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


def _hub_config(folder: Path, architecture: str, **extra) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg = {k: v for k, v in cfg.items() if k not in ("dtype",)}
    cfg.update({"architectures": [architecture], "transformers_version": "4.6.0.dev0", **extra})
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))


def native(folder: Path) -> Path:
    """The transformers-5 copy of a hub-layout fixture (what the oracle loads)."""
    return folder.parent / (folder.name + "-native")


def _save_pair(tmp_path_factory, name: str, model) -> tuple[Path, Path]:
    """(hub folder to fill in, transformers-5 folder saved now)."""
    base = tmp_path_factory.mktemp(name)
    hub, nat = base / name, base / (name + "-native")
    model.save_pretrained(nat)
    hub.mkdir()
    shutil.copy(nat / "config.json", hub / "config.json")
    return hub, nat


@pytest.fixture(scope="session")
def sst2_checkpoint(tmp_path_factory) -> Path:
    model = _model("DistilBertForSequenceClassification", 100, cased=False, **labels(SST2_LABELS))
    hub, nat = _save_pair(tmp_path_factory, "distilbert-sst2", model)
    shutil.copy(nat / "model.safetensors", hub / "model.safetensors")
    for folder in (hub, nat):
        write_vocab(folder, cased=False, tokenizer_json=False)
    _hub_config(hub, "DistilBertForSequenceClassification", finetuning_task="sst-2")
    return hub


@pytest.fixture(scope="session")
def ner_checkpoint(tmp_path_factory) -> Path:
    import torch

    model = _model("BertForTokenClassification", 200, cased=True, **labels(NER_LABELS))
    hub, nat = _save_pair(tmp_path_factory, "bert-ner", model)
    state = _state(nat)
    state["bert.embeddings.position_ids"] = torch.arange(512)[None]
    torch.save(state, hub / "pytorch_model.bin")
    for folder in (hub, nat):
        write_vocab(folder, cased=True, tokenizer_json=False)
    _hub_config(hub, "BertForTokenClassification")
    return hub


@pytest.fixture(scope="session")
def squad_checkpoint(tmp_path_factory) -> Path:
    model = _model("DistilBertForQuestionAnswering", 300, cased=True)
    hub, nat = _save_pair(tmp_path_factory, "distilbert-squad", model)
    shutil.copy(nat / "model.safetensors", hub / "model.safetensors")
    for folder in (hub, nat):
        write_vocab(folder, cased=True, tokenizer_json=True)
    _hub_config(hub, "DistilBertForQuestionAnswering", tie_weights_=True)
    return hub


@pytest.fixture(scope="session")
def pretraining_checkpoint(tmp_path_factory) -> Path:
    """bert-base-uncased's layout; its native twin is a BertForPreTraining as transformers 5 saves it."""
    import torch
    from safetensors.torch import save_file

    model = _model("BertForPreTraining", 400, cased=False)
    hub, nat = _save_pair(tmp_path_factory, "bert-pretraining", model)
    state = {}
    for k, v in _state(nat).items():
        if "LayerNorm" in k:
            k = k.replace(".weight", ".gamma").replace(".bias", ".beta")
        state[k] = v.contiguous()
    state.pop("cls.predictions.decoder.weight", None)
    state.pop("cls.predictions.decoder.bias", None)
    assert "cls.seq_relationship.weight" in state and "bert.pooler.dense.weight" in state
    state["bert.embeddings.position_ids"] = torch.arange(512)[None]
    save_file(state, str(hub / "model.safetensors"))
    for folder in (hub, nat):
        write_vocab(folder, cased=False, tokenizer_json=True)
    _hub_config(hub, "BertForMaskedLM")
    return hub


@pytest.fixture(scope="session")
def distil_mlm_checkpoint(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    model = _model("DistilBertForMaskedLM", 500, cased=False)
    hub, nat = _save_pair(tmp_path_factory, "distilbert-mlm", model)
    state = _state(nat)
    state["vocab_projector.weight"] = model.vocab_projector.weight.detach().clone()
    save_file(state, str(hub / "model.safetensors"))
    for folder in (hub, nat):
        write_vocab(folder, cased=False, tokenizer_json=True)
    _hub_config(hub, "DistilBertForMaskedLM")
    return hub


def write_sentence_transformers_files(folder: Path, dim: int, normalize: bool = True) -> None:
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": dim, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256, "do_lower_case": False}))


@pytest.fixture(scope="session")
def bare_bert_checkpoint(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    model = _model("BertModel", 600, cased=False)
    hub, nat = _save_pair(tmp_path_factory, "bert-sentence", model)
    state = _state(nat)
    state = {k.removeprefix("bert."): v for k, v in state.items()}
    save_file(state, str(hub / "model.safetensors"))
    for folder in (hub, nat):
        write_vocab(folder, cased=False, tokenizer_json=True)
        write_sentence_transformers_files(folder, TINY_BERT["hidden_size"])
    _hub_config(hub, "BertModel")
    return hub


@pytest.fixture(scope="session")
def bert_head_checkpoints(tmp_path_factory):
    """(architecture, seed) -> a folder with that transformers class saved by transformers 5."""
    cache: dict[tuple[str, int], Path] = {}

    def get(arch: str, seed: int = 0) -> Path:
        if (arch, seed) not in cache:
            extra = labels(NER_LABELS) if "Classification" in arch else {}
            model = _model(arch, 700 + seed, cased=False, **extra)
            folder = tmp_path_factory.mktemp(f"{arch}-{seed}")
            model.save_pretrained(folder)
            write_vocab(folder, cased=False, tokenizer_json=False)
            cache[(arch, seed)] = folder
        return cache[(arch, seed)]
    return get
