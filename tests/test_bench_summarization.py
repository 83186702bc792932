"""benchmarks.summarization's deterministic part: the weight bytes a decoding step reads (its bandwidth
floor), checked against transformers' own parameters of the same checkpoint — the decoder less its
cross-attention key / value projections (run once over the encoder's output) and all but one row of
BART's positions, the LM head once (tied), or a separate LM head and the looked-up embedding rows
(untied). No timing is asserted."""
from __future__ import annotations

import torch

from benchmarks.summarization import step_bytes
from engine.device import resolve

EXACT = resolve("cpu", "exact")


def _bytes(named, skip=()) -> int:
    return sum(p.numel() * p.element_size() for n, p in named if not any(s in n for s in skip))


def test_bart_step_bytes():
    from transformers import BartConfig, BartForConditionalGeneration

    from engine.models import bart
    from tests.test_bart import TINY
    torch.manual_seed(0)
    theirs = BartForConditionalGeneration(BartConfig(**TINY)).eval()
    ours = bart.build(bart.BartConfig.from_hf({"model_type": "bart", **TINY}), theirs.state_dict())
    d = TINY["d_model"]
    want = _bytes(theirs.model.decoder.named_parameters(),
                  (".encoder_attn.k_proj.", ".encoder_attn.v_proj.", "embed_tokens", "embed_positions"))
    want += d * 4  # one position row
    want += theirs.model.shared.weight.numel() * 4 + TINY["vocab_size"] * 4  # tied LM head + final_logits_bias
    assert step_bytes(ours, "bart") == want


def test_t5_step_bytes(t5small, t5flan):
    from transformers import T5ForConditionalGeneration

    from engine.models import t5
    for folder, tied in ((t5small, True), (t5flan, False)):
        theirs = T5ForConditionalGeneration.from_pretrained(folder)
        ours = t5.from_checkpoint(folder, EXACT)
        want = _bytes(theirs.decoder.named_parameters(), (".EncDecAttention.k.", ".EncDecAttention.v.", "embed_tokens"))
        table = theirs.shared.weight
        if tied:
            want += table.numel() * 4
            if ours.packed_head is not None:  # the head is a packed copy: 3 rows of the table looked up too
                want += 3 * table.shape[1] * 4
        else:  # a separate head, and 3 looked-up rows of the embeddings
            want += theirs.lm_head.weight.numel() * 4 + 3 * table.shape[1] * 4
        assert step_bytes(ours, "t5", rows=3) == want
