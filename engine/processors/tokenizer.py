"""Text -> token ids (with character offsets into the original text): a checkpoint's tokenizer,
through the ``tokenizers`` library. No torch, no transformers.

    tok = load_tokenizer(folder)            # a tokenizers.Tokenizer
    enc = tok.encode("Hello, world!")       # enc.ids, enc.tokens, enc.offsets (chars of the text)

The folder's files, in this order (what the hub's checkpoints carry):

- ``tokenizer.json``: the whole tokenizer, as saved by the ``tokenizers`` library;
- ``vocab.txt``: WordPiece (BERT, DistilBERT): BERT's normaliser with the checkpoint's
  ``do_lower_case`` / ``strip_accents`` / ``tokenize_chinese_chars`` (``tokenizer_config.json``),
  BERT's pre-tokeniser, ``[CLS] A [SEP]`` (pairs ``[CLS] A [SEP] B [SEP]``);
- ``vocab.json`` + ``merges.txt``: byte-level BPE as GPT-2 has it (``add_prefix_space``,
  ``add_bos_token`` / ``add_eos_token`` from the config);
- ``spiece.model``: a SentencePiece Unigram model (T5): its protobuf is read here (no
  ``sentencepiece`` or ``protobuf`` package needed), with its precompiled normalisation rules,
  ``▁`` word prefixes, control pieces as special tokens, T5's ``<extra_id_N>`` sentinels and
  ``A </s>``. A SentencePiece BPE model needs its ``tokenizer.json``.

Special tokens (``[MASK]``, ``<|endoftext|>``...) are matched in the raw text as transformers'
tokenizers do. Truncation and padding are off (a ``tokenizer.json`` may carry them): the tasks
decide how long their inputs are.
"""
from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckpointError
from ..hub import read_json

if TYPE_CHECKING:
    from tokenizers import AddedToken, Tokenizer

log = logging.getLogger(__name__)

FILES = ("tokenizer.json", "vocab.txt", "vocab.json + merges.txt", "spiece.model")
SPECIAL_KEYS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "bos_token", "eos_token")
BERT_DEFAULTS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                 "mask_token": "[MASK]"}
GPT2_DEFAULTS = {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """The checkpoint folder's tokenizer (see the module docstring for which files, in which order).
    Raises :class:`CheckpointError` when it has none, or its files cannot be read."""
    folder = Path(folder)
    config = _config(folder)
    if (folder / "tokenizer.json").is_file():
        tok = _from_json(folder / "tokenizer.json")
    elif (folder / "vocab.txt").is_file():
        tok = _wordpiece(folder / "vocab.txt", config)
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        tok = _byte_level_bpe(folder / "vocab.json", folder / "merges.txt", config)
    elif (folder / "spiece.model").is_file():
        tok = _sentencepiece(folder / "spiece.model", config)
    else:
        raise CheckpointError(f"{folder} has no tokenizer: expected {', '.join(FILES[:-1])} or {FILES[-1]}.")
    tok.no_truncation()
    tok.no_padding()
    return tok


# ----------------------------------------------------------------------------- config

def _config(folder: Path) -> dict:
    """tokenizer_config.json, with special_tokens_map.json filling the special tokens it lacks, and
    config.json's ``model_type`` (to tell a T5 SentencePiece model)."""
    config = dict(read_json(folder, "tokenizer_config.json", required=False))
    for key, value in read_json(folder, "special_tokens_map.json", required=False).items():
        config.setdefault(key, value)
    if "model_type" not in config:
        model_type = read_json(folder, "config.json", required=False).get("model_type")
        if model_type:
            config["model_type"] = model_type
    return config


def _content(value) -> str | None:
    """A special token as configs write it: "[CLS]" or an AddedToken dict {"content": "[CLS]", ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _added_token(value, special: bool) -> AddedToken:
    from tokenizers import AddedToken

    if isinstance(value, dict):
        special = bool(value.get("special", special))
    flags = {"lstrip": False, "rstrip": False, "single_word": False, "normalized": not special}
    if isinstance(value, dict):
        flags.update({k: bool(value[k]) for k in ("lstrip", "rstrip", "single_word", "normalized") if k in value})
    return AddedToken(_content(value), special=special, **flags)


def _add_special_tokens(tok: Tokenizer, config: dict, defaults: dict[str, str], first: list | None = None) -> dict:
    """Add the config's added tokens (``added_tokens_decoder``, by id), then ``first`` (special),
    the named special tokens (else ``defaults``) and ``additional_special_tokens``, as
    transformers' tokenizers do (a token not in the vocabulary gets the next id); returns
    {"cls_token": "[CLS]", ...} as used."""
    decoder = config.get("added_tokens_decoder") or {}
    tokens = []
    for _, value in sorted(((int(i), v) for i, v in decoder.items() if _content(v)), key=lambda iv: iv[0]):
        tokens.append(_added_token(value, special=True))
    tokens += [_added_token(value, special=True) for value in first or [] if _content(value)]
    named = {}
    for key in SPECIAL_KEYS:
        value = config.get(key, defaults.get(key))
        if _content(value):
            named[key] = _content(value)
            tokens.append(_added_token(value, special=True))
    for value in config.get("additional_special_tokens") or []:
        if _content(value):
            tokens.append(_added_token(value, special=True))
    seen = set()
    for t in tokens:  # one AddedToken per content, the first (added_tokens_decoder's flags) wins
        if t.content in seen:
            continue
        seen.add(t.content)
        (tok.add_special_tokens if t.special else tok.add_tokens)([t])
    return named


def _token_id(tok: Tokenizer, token: str, what: str, path: Path) -> int:
    i = tok.token_to_id(token)
    if i is None:
        raise CheckpointError(f"{path}: the {what} token {token!r} is not in the vocabulary.")
    return i


# ----------------------------------------------------------------------------- builders

def _from_json(path: Path) -> Tokenizer:
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - the Rust side raises a plain Exception
        raise CheckpointError(f"{path} is not a tokenizer file Taskscope can read: {exc}") from exc


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"Cannot read {path}: {exc}") from exc


def _wordpiece(path: Path, config: dict) -> Tokenizer:
    """BERT's WordPiece tokenizer from vocab.txt (one token a line; the line number is the id)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    lines = _read_text(path).split("\n")  # as transformers' load_vocab: one token a line, the last \n ends it
    if lines and lines[-1] == "":
        lines.pop()
    vocab = {token: i for i, token in enumerate(lines)}  # a repeated token keeps its last line
    if not vocab:
        raise CheckpointError(f"{path} is empty.")
    unk = _content(config.get("unk_token")) or BERT_DEFAULTS["unk_token"]
    tok = Tokenizer(WordPiece(vocab, unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
        strip_accents=config.get("strip_accents"),  # None: follows lowercase, as in the original BERT
        lowercase=bool(config.get("do_lower_case", True)))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    named = _add_special_tokens(tok, config, BERT_DEFAULTS)
    cls, sep = named.get("cls_token", "[CLS]"), named.get("sep_token", "[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, _token_id(tok, cls, "[CLS]", path)), (sep, _token_id(tok, sep, "[SEP]", path))])
    return tok


def _byte_level_bpe(vocab_path: Path, merges_path: Path, config: dict) -> Tokenizer:
    """GPT-2's byte-level BPE from vocab.json and merges.txt."""
    import json

    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    try:
        vocab = json.loads(_read_text(vocab_path))
    except ValueError as exc:
        raise CheckpointError(f"{vocab_path} is not valid JSON: {exc}") from exc
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise CheckpointError(f"{vocab_path} must map tokens to ids.")
    merges = []
    for n, line in enumerate(_read_text(merges_path).splitlines()):
        if not line.strip() or (n == 0 and line.startswith("#version")):
            continue
        pair = line.split(" ")
        if len(pair) != 2:
            raise CheckpointError(f"{merges_path}, line {n + 1}: expected two tokens, got {line!r}.")
        merges.append((pair[0], pair[1]))
    try:
        tok = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                            end_of_word_suffix="", fuse_unk=False))
    except Exception as exc:  # noqa: BLE001 - a merge of tokens not in the vocabulary
        raise CheckpointError(f"{merges_path} does not fit {vocab_path.name}: {exc}") from exc
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=bool(config.get("add_prefix_space", False)))
    tok.decoder = decoders.ByteLevel()
    named = _add_special_tokens(tok, config, GPT2_DEFAULTS)
    _bos_eos_template(tok, config, named, vocab_path)
    return tok


def _bos_eos_template(tok: Tokenizer, config: dict, named: dict, path: Path, eos: bool = False) -> None:
    """``[bos] A [eos]`` as the config's ``add_bos_token`` / ``add_eos_token`` say (or ``eos``)."""
    from tokenizers import processors

    bos_t = named.get("bos_token") if config.get("add_bos_token") else None
    eos_t = named.get("eos_token") if (eos or config.get("add_eos_token")) else None
    single = " ".join(([f"{bos_t}:0"] if bos_t else []) + ["$A:0"] + ([f"{eos_t}:0"] if eos_t else []))
    pair = single + " " + " ".join(([f"{bos_t}:1"] if bos_t else []) + ["$B:1"] + ([f"{eos_t}:1"] if eos_t else []))
    specials = [(t, _token_id(tok, t, "special", path)) for t in dict.fromkeys(x for x in (bos_t, eos_t) if x)]
    tok.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)


# ----------------------------------------------------------------------------- SentencePiece

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6  # SentencePiece.Type
UNIGRAM = 1  # TrainerSpec.ModelType


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes):
    """(field number, value) of one protobuf message: ints for varints, bytes otherwise."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > n:
            raise ValueError("truncated")
        yield key >> 3, value


def _int32(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def read_sentencepiece(path: str | Path) -> dict:
    """The parts of a SentencePiece ``ModelProto`` (sentencepiece_model.proto) a tokenizer needs:
    ``pieces`` [(piece, score, type)], ``model_type``, ``unk_id``, ``byte_fallback``,
    ``precompiled_charsmap``, ``add_dummy_prefix``, ``remove_extra_whitespaces``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"Cannot read {path}: {exc}") from exc
    spec = {"pieces": [], "model_type": UNIGRAM, "unk_id": 0, "byte_fallback": False, "precompiled_charsmap": b"",
            "add_dummy_prefix": True, "remove_extra_whitespaces": True}
    try:
        for field, value in _fields(data):
            if field == 1:  # SentencePiece {1: piece, 2: score (float), 3: type}
                piece, score, kind = "", 0.0, NORMAL
                for f, v in _fields(value):
                    if f == 1:
                        piece = v.decode("utf-8")
                    elif f == 2:
                        score = struct.unpack("<f", v)[0]
                    elif f == 3:
                        kind = v
                spec["pieces"].append((piece, score, kind))
            elif field == 2:  # TrainerSpec
                for f, v in _fields(value):
                    if f == 3:
                        spec["model_type"] = v
                    elif f == 35:
                        spec["byte_fallback"] = bool(v)
                    elif f == 40:
                        spec["unk_id"] = _int32(v)
            elif field == 3:  # NormalizerSpec
                for f, v in _fields(value):
                    if f == 2:
                        spec["precompiled_charsmap"] = bytes(v)
                    elif f == 3:
                        spec["add_dummy_prefix"] = bool(v)
                    elif f == 4:
                        spec["remove_extra_whitespaces"] = bool(v)
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not a SentencePiece model, or it is corrupt ({exc}).") from exc
    if not spec["pieces"]:
        raise CheckpointError(f"{path} holds no SentencePiece vocabulary.")
    return spec


def _sentencepiece(path: Path, config: dict) -> Tokenizer:
    """A SentencePiece Unigram model (T5's spiece.model) as a tokenizers Unigram tokenizer."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import Unigram

    spec = read_sentencepiece(path)
    if spec["model_type"] != UNIGRAM:
        raise CheckpointError(f"{path} is a SentencePiece model of type {spec['model_type']} (BPE, word or "
                              "char), which Taskscope reads only from a tokenizer.json; the checkpoint has none.")
    pieces = spec["pieces"]
    if not 0 <= spec["unk_id"] < len(pieces):
        raise CheckpointError(f"{path}: its unknown-token id {spec['unk_id']} is not in its vocabulary.")
    tok = Tokenizer(Unigram([(p, s) for p, s, _ in pieces], spec["unk_id"], spec["byte_fallback"]))
    if spec["precompiled_charsmap"]:
        tok.normalizer = normalizers.Precompiled(spec["precompiled_charsmap"])
    prepend = "always" if spec["add_dummy_prefix"] else "never"
    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend, split=True)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), metaspace])
                         if spec["remove_extra_whitespaces"] else metaspace)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=prepend, split=True)

    t5 = "t5" in str(config.get("tokenizer_class", "")).lower() or config.get("model_type") in ("t5", "mt5")
    defaults = {"unk_token": pieces[spec["unk_id"]][0]}
    defaults.update({"pad_token": "<pad>", "eos_token": "</s>"} if t5 else {})
    control = [{"content": p, "special": True, "normalized": False} for p, _, kind in pieces if kind == CONTROL]
    user = [p for p, _, kind in pieces if kind == USER_DEFINED]
    if user:
        from tokenizers import AddedToken

        tok.add_tokens([AddedToken(p, normalized=False, special=False) for p in user])
    n_extra = int(config.get("extra_ids", 100 if t5 else 0) or 0) if t5 else 0
    # T5's sentinels follow the SentencePiece vocabulary in reverse: <extra_id_0> has the last id
    # (before additional_special_tokens, which lists them from <extra_id_0>)
    sentinels = [f"<extra_id_{i}>" for i in range(n_extra - 1, -1, -1)]
    named = _add_special_tokens(tok, config, defaults, control + sentinels)
    _bos_eos_template(tok, config, named, path, eos=t5 and "eos_token" in named)
    return tok
