"""What BART and T5 share as encoder-decoders (each architecture keeps its own layers): the decoder's
cache, the teacher-forced forward pass and cross-attention read-out, and the decoding stepper the
generation loop (engine.generation.decode) drives. A model here has ``encode(input_ids, mask)``,
``decode(ids, encoder_states, cache, encoder_mask, last_only, want_cross)`` and ``decoder_layers``."""
from __future__ import annotations

import torch
from torch import nn


class DecoderCache:
    """Per decoder layer: self-attention keys / values so far, and the cross-attention keys / values
    of the encoder output (computed once)."""

    def __init__(self, n: int) -> None:
        self.self_k: list[torch.Tensor | None] = [None] * n
        self.self_v: list[torch.Tensor | None] = [None] * n
        self.cross: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n
        self.length = 0

    def reorder(self, rows: torch.Tensor) -> None:
        for i in range(len(self.self_k)):
            if self.self_k[i] is not None:
                self.self_k[i] = self.self_k[i].index_select(0, rows)
                self.self_v[i] = self.self_v[i].index_select(0, rows)
            if self.cross[i] is not None and self.cross[i][0].shape[0] != rows.shape[0]:
                self.cross[i] = tuple(t.index_select(0, rows) for t in self.cross[i])


class EncoderDecoder(nn.Module):
    """The base of Bart and T5: subclasses set ``decoder_layers`` and define encode / decode."""

    decoder_layers: int

    def new_cache(self) -> DecoderCache:
        return DecoderCache(self.decoder_layers)

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None):
        return self.decode(decoder_input_ids, self.encode(input_ids, attention_mask), encoder_mask=attention_mask)

    def cross_attention(self, input_ids: torch.Tensor, output_ids: torch.Tensor) -> torch.Tensor:
        """One teacher-forced decoder pass over a finished output (1, N + 1) (decoder start first):
        the cross-attention of the step that chose each of its N tokens onto the S source tokens,
        averaged over heads -> (layers, N, S) float32."""
        with torch.inference_mode():
            out = self.decode(output_ids[:, :-1], self.encode(input_ids), want_cross=True)
        return torch.stack([w[0].mean(dim=0) for w in out.cross_attentions])


def stepper(model: EncoderDecoder, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
    """(step, reorder) for engine.generation.decode over one source (B=1): the encoder runs once."""
    with torch.inference_mode():
        states = model.encode(input_ids, attention_mask)
    cache = model.new_cache()

    def step(new: torch.Tensor) -> torch.Tensor:
        enc = states if states.shape[0] == new.shape[0] else states.expand(new.shape[0], -1, -1)
        with torch.inference_mode():
            return model.decode(new, enc, cache, last_only=True).logits[:, -1]

    return step, cache.reorder
