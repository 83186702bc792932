"""CTC (connectionist temporal classification) vocabulary and greedy decoding, no torch.

Greedy decoding takes the best token of every 20 ms frame, merges runs of the same token,
drops the blank (the pad token) and turns the word delimiter ``|`` into a space — the same
text, character offsets and word offsets as transformers' ``Wav2Vec2CTCTokenizer.decode``
(``output_char_offsets`` / ``output_word_offsets``). Offsets are frame indices; times are
``offset * inputs_to_logits_ratio / sampling_rate`` seconds.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from ..hub import read_json


@dataclass(frozen=True)
class Offset:
    """A decoded character or word and its frame span [start, end)."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Decoded:
    text: str
    chars: tuple[Offset, ...]  # every non-blank token group, the delimiter as " "
    words: tuple[Offset, ...]


def _token_text(tok) -> str | None:
    if tok is None or isinstance(tok, str):
        return tok
    if isinstance(tok, dict):
        return tok.get("content")
    return None


@dataclass(frozen=True)
class CTCVocab:
    tokens: tuple[str, ...]  # id -> token
    pad_token: str = "<pad>"  # the CTC blank
    unk_token: str = "<unk>"
    word_delimiter: str = "|"
    replace_word_delimiter: str = " "
    do_lower_case: bool = False
    clean_up_spaces: bool = False

    @classmethod
    def from_folder(cls, folder: Path) -> CTCVocab:
        """From ``vocab.json`` and (optionally) ``tokenizer_config.json`` / ``special_tokens_map.json``."""
        folder = Path(folder)
        cfg = _json(folder / "tokenizer_config.json")
        special = _json(folder / "special_tokens_map.json")
        vocab_path = folder / "vocab.json"
        if not vocab_path.is_file():
            raise CheckpointError(f"{folder} has no vocab.json: it is not a CTC speech-recognition checkpoint.")
        vocab = _json(vocab_path)
        if vocab and all(isinstance(v, dict) for v in vocab.values()):  # multilingual (MMS) vocab
            lang = cfg.get("target_lang")
            if lang not in vocab:
                raise CheckpointError(f"vocab.json holds several languages; tokenizer_config.json names none of them "
                                      f"({', '.join(sorted(vocab)[:8])}, ...).")
            vocab = vocab[lang]
        id2tok: dict[int, str] = {}
        for tok, i in vocab.items():
            id2tok[int(i)] = tok
        for i, tok in (cfg.get("added_tokens_decoder") or {}).items():
            id2tok.setdefault(int(i), _token_text(tok) or "")
        for tok, i in _json(folder / "added_tokens.json").items():
            id2tok.setdefault(int(i), tok)
        if not id2tok:
            raise CheckpointError(f"{vocab_path} is empty.")
        size = max(id2tok) + 1

        def pick(key: str, default: str) -> str:
            return _token_text(cfg.get(key)) or _token_text(special.get(key)) or default

        unk = pick("unk_token", "<unk>")
        return cls(tokens=tuple(id2tok.get(i, unk) for i in range(size)),
                   pad_token=pick("pad_token", "<pad>"), unk_token=unk,
                   word_delimiter=pick("word_delimiter_token", "|"),
                   replace_word_delimiter=cfg.get("replace_word_delimiter_char", " ") or " ",
                   do_lower_case=bool(cfg.get("do_lower_case", False)),
                   clean_up_spaces=bool(cfg.get("clean_up_tokenization_spaces", False)))

    @functools.cached_property
    def _names(self) -> np.ndarray:
        """id -> token string, with one extra slot (the unknown token) for out-of-range ids."""
        return np.array(list(self.tokens) + [self.unk_token], dtype=object)

    @property
    def pad_id(self) -> int:
        return self.tokens.index(self.pad_token) if self.pad_token in self.tokens else -1

    def token(self, i: int) -> str:
        return self.tokens[i] if 0 <= i < len(self.tokens) else self.unk_token


def _json(p: Path) -> dict:
    return read_json(p.parent, p.name, required=False)


def clean_up_tokenization(text: str) -> str:
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                 (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(a, b)
    return text


def decode(ids: np.ndarray | list[int], vocab: CTCVocab) -> Decoded:
    """Greedy CTC decoding of per-frame token ids (T,) -> text, character and word frame offsets."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)  # (T,)
    chars: list[Offset] = []
    if ids.size:
        ids = np.where((ids >= 0) & (ids < len(vocab.tokens)), ids, len(vocab.tokens))  # out of range -> unk
        names = vocab._names[ids]  # (T,) token strings (the table is built once per vocabulary)
        # repeated tokens are one emission: runs of equal token strings (as the tokenizer groups them)
        starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])  # (runs,)
        ends = np.r_[starts[1:], ids.size]  # (runs,)
        for tok, a, b in zip(names[starts], starts.tolist(), ends.tolist()):
            if tok != vocab.pad_token:  # the blank separates, and is dropped
                chars.append(Offset(vocab.replace_word_delimiter if tok == vocab.word_delimiter else tok, a, b))
    return _decoded(chars, vocab)


def _decoded(chars: list[Offset], vocab: CTCVocab) -> Decoded:
    text = "".join(c.text for c in chars).strip()
    if vocab.do_lower_case:
        text = text.lower()
    if vocab.clean_up_spaces:
        text = clean_up_tokenization(text)
    return Decoded(text, tuple(chars), tuple(_words(chars, vocab.replace_word_delimiter)))


def _words(chars: list[Offset], space: str) -> list[Offset]:
    """Characters between delimiters form a word spanning its first char's start to its last's end."""
    words: list[Offset] = []
    word, start, end, in_word = "", 0, 0, False
    for c in chars:
        if c.text == space:
            if in_word:
                words.append(Offset(word, start, end))
            in_word = False
            continue
        if not in_word:
            word, start, in_word = "", c.start, True
        word += c.text
        end = c.end
    if in_word:
        words.append(Offset(word, start, end))
    return words


class StreamingDecoder:
    """Greedy CTC decoding of frames that arrive in pieces (chunks of long audio) at a cost
    proportional to the new frames: complete token runs are decoded once and kept; only the
    last run, which the next piece may continue, is decoded again. ``result()`` equals
    ``decode(all frames so far)``."""

    def __init__(self, vocab: CTCVocab) -> None:
        self.vocab = vocab
        self._chars: list[Offset] = []
        self._tail = np.zeros(0, np.int64)  # frames of the last, possibly unfinished run
        self._tail_start = 0  # frame index of the tail

    def push(self, ids: np.ndarray) -> None:
        frames = np.concatenate([self._tail, np.asarray(ids, dtype=np.int64).reshape(-1)])  # (n,)
        bounds = np.flatnonzero(frames[1:] != frames[:-1])  # (k,) last frame of each run but the last
        cut = int(bounds[-1]) + 1 if bounds.size else 0  # frames before `cut` form complete runs
        if cut:
            done = decode(frames[:cut], self.vocab).chars
            self._chars += [Offset(c.text, c.start + self._tail_start, c.end + self._tail_start) for c in done]
        self._tail, self._tail_start = frames[cut:], self._tail_start + cut

    def result(self) -> Decoded:
        s = self._tail_start
        chars = self._chars + [Offset(c.text, c.start + s, c.end + s) for c in decode(self._tail, self.vocab).chars]
        return _decoded(chars, self.vocab)
