"""Text -> model inputs for the encoder tasks (BERT, DistilBERT), and token ids -> text: a
checkpoint's tokenizer (engine.processors.tokenizer) with the settings its tokenizer_config.json
gives transformers' tokenizer (``model_max_length``, ``clean_up_tokenization_spaces``, the special
tokens). No transformers here; torch only in :meth:`TextEncoder.tensors`.

    enc = TextEncoder(folder, max_positions=512)
    [e] = enc.encode("Paris is the capital of France.")             # [CLS] ... [SEP], cut at max_length
    windows = enc.encode(question, context, max_length=384, stride=128, strategy="only_second")
    ids, types, mask = enc.tensors(windows, device)                   # (B, T) each; mask None without padding
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..hub import read_json
from .tokenizer import BERT_DEFAULTS, _content, load_tokenizer

if TYPE_CHECKING:
    import torch
    from tokenizers import Encoding

    from ..types.text import ModelTokens

#: tokenizer_config.json's "no limit" (transformers' VERY_LARGE_INTEGER is 1e30)
_NO_LIMIT = 10 ** 9


def clean_up_tokenization(text: str) -> str:
    """transformers' ``clean_up_tokenization``: no space before punctuation and English contractions
    (applied to decoded text when the checkpoint's ``clean_up_tokenization_spaces`` is true)."""
    for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(old, new)
    return text


class TextEncoder:
    """A checkpoint's tokenizer, set up as transformers' tokenizer would be for the same folder."""

    def __init__(self, folder: str | Path, max_positions: int) -> None:
        folder = Path(folder)
        self.tokenizer = load_tokenizer(folder)
        config = read_json(folder, "tokenizer_config.json", required=False)
        limit = config.get("model_max_length")
        limit = int(limit) if isinstance(limit, (int, float)) and 0 < limit < _NO_LIMIT else None
        #: the most tokens (special ones included) one model input holds
        self.max_length = min(max_positions, limit) if limit else max_positions
        self.clean_up_spaces = bool(config.get("clean_up_tokenization_spaces", False))
        specials = dict(BERT_DEFAULTS)
        specials.update(read_json(folder, "special_tokens_map.json", required=False))
        specials.update({k: v for k, v in config.items() if k in BERT_DEFAULTS})
        self.specials = {k: _content(v) for k, v in specials.items() if _content(v)}
        ids = {k: self.tokenizer.token_to_id(v) for k, v in self.specials.items()}
        self.mask_token: str | None = self.specials.get("mask_token") if ids.get("mask_token") is not None else None
        self.mask_id, self.pad_id = ids.get("mask_token"), ids.get("pad_token") or 0
        self.cls_id, self.unk_id = ids.get("cls_token"), ids.get("unk_token")
        self.subword_prefix = getattr(self.tokenizer.model, "continuing_subword_prefix", None)
        self._lock = threading.Lock()  # truncation is tokenizer state: one encode at a time

    # ------------------------------------------------------------------ text -> tokens

    def encode(self, text: str, pair: str | None = None, *, max_length: int | None = None, stride: int = 0,
               strategy: str = "longest_first", truncate: bool = True) -> list[Encoding]:
        """``[CLS] text [SEP]`` (``[CLS] text [SEP] pair [SEP]``) cut at ``max_length`` tokens (default:
        the model's), or not cut (``truncate=False``); with a ``stride``, the cut-off part follows in
        more encodings that overlap by ``stride`` tokens (question answering's windows): the list holds
        the first and then those. InputError when the text cannot be cut as asked (only_second with a
        question that leaves no room for the context)."""
        tok = self.tokenizer
        with self._lock:
            try:
                if truncate:
                    tok.enable_truncation(max_length or self.max_length, stride=stride, strategy=strategy,
                                          direction="right")
                else:
                    tok.no_truncation()
                enc = tok.encode(text, pair)
            except Exception as exc:  # noqa: BLE001 - the Rust side raises plain Exceptions
                if pair is not None:
                    raise InputError(f"The question is too long for this model's {max_length or self.max_length}-"
                                     f"token windows (with a stride of {stride}): ask a shorter question. "
                                     f"({exc})") from None
                raise InputError(f"The text cannot be tokenized: {exc}") from None
            finally:
                tok.no_truncation()
        return [enc, *enc.overflowing]

    def encode_one(self, text: str, **kwargs) -> tuple[Encoding, bool]:
        """One model input for ``text`` (see :meth:`encode`), and whether the text was cut to fit."""
        encodings = self.encode(text, **kwargs)
        return encodings[0], len(encodings) > 1

    def count(self, text: str) -> int:
        """Tokens in ``[CLS] text [SEP]``, uncut."""
        return len(self.encode(text, truncate=False)[0].ids)

    def tensors(self, encodings: list[Encoding], device: torch.device | str = "cpu"
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Encodings -> input_ids, token_type_ids (B, T) int64 and attention_mask (B, T) bool (None
        when nothing is padded); shorter encodings are padded on the right with the pad token."""
        import torch

        t = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), t), self.pad_id, np.int64)
        types = np.zeros((len(encodings), t), np.int64)
        mask = np.zeros((len(encodings), t), bool)
        for i, e in enumerate(encodings):
            n = len(e.ids)
            ids[i, :n], types[i, :n], mask[i, :n] = e.ids, e.type_ids, True
        to = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
        return to(ids), to(types), (None if mask.all() else to(mask))

    def model_tokens(self, enc: Encoding, attentions: tuple[np.ndarray, ...] | None = None) -> ModelTokens:
        """What the app shows of one model input (engine.types.text.ModelTokens)."""
        from ..types.text import ModelTokens
        seq = np.array([-1 if s is None else s for s in enc.sequence_ids], np.int8)
        return ModelTokens(tuple(enc.tokens), np.asarray(enc.ids, np.int64), np.asarray(enc.type_ids, np.int64),
                           seq, np.asarray(enc.offsets, np.int64).reshape(-1, 2), attentions)

    # ------------------------------------------------------------------ tokens -> text

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Token ids -> text, as transformers' ``tokenizer.decode`` (the tokenizer's decoder, then the
        checkpoint's clean-up of spaces when it asks for it)."""
        text = self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
        return clean_up_tokenization(text) if self.clean_up_spaces else text

    def tokens_to_string(self, tokens: list[str]) -> str:
        """Token strings -> text, as transformers' ``convert_tokens_to_string`` (the decoder alone)."""
        decoder = self.tokenizer.decoder
        return decoder.decode(list(tokens)) if decoder is not None else " ".join(tokens)

    def token(self, token_id: int) -> str:
        return self.tokenizer.id_to_token(int(token_id)) or ""
