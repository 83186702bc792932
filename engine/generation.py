"""Decoding: turning a language model's next-token logits into text, one token at a time.

The model is a *step function*: ``step(tokens (B, t)) -> logits (B, vocab)`` for the last position,
keeping its own KV cache (``reorder(rows)`` picks the cache rows beam search continues). The
strategies here reproduce transformers' ``generate`` token for token with the same settings:

* the logits processors, in transformers' order: repetition penalty, no-repeat n-grams, min length,
  min new tokens; then, when sampling, temperature, top-k, top-p;
* **greedy**: the best processed score each step;
* **sampling**: ``torch.multinomial`` over the softmax of the processed scores, drawn from a
  ``torch.Generator`` seeded with ``seed`` (the same draws as transformers after
  ``torch.manual_seed(seed)`` on the CPU);
* **beam search**: transformers' vectorised beam search (log-softmax, processors, the top
  ``2 * num_beams`` continuations of all beams, finished hypotheses scored by their sum of
  log-probabilities over ``generated_length ** length_penalty``, ``early_stopping`` True / False /
  "never" as there).

:func:`iterate` yields a StepInfo per step (streaming: the token chosen, its probability, the top
candidates, the live beams) and checks the CancelToken before every model call; :func:`decode`
runs it to the end, calling ``on_step`` for each. Encoder-decoders (BART) decode from
``[decoder_start_token_id]`` with forced BOS / EOS as transformers' processors.
"""
from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .cancel import CancelToken, check

NEG = -1.0e9


@dataclass(frozen=True)
class DecodeSettings:
    max_new_tokens: int = 32
    do_sample: bool = False
    num_beams: int = 1
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    min_length: int = 0  # of the whole sequence (prompt included), as transformers' min_length
    min_new_tokens: int = 0
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    seed: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    #: encoder-decoders (BART): the first new token forced to this one, and the last one (at the
    #: length limit) to this one, as transformers' ForcedBOS / ForcedEOS processors
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | None = None
    top_candidates: int = 10  # per step, for the "why this token" view


@dataclass(frozen=True)
class StepInfo:
    index: int  # 0 for the first new token
    token: int  # the token chosen (greedy / sampling); beam search: the best running beam's last token
    prob: float  # its probability under the model (softmax of the raw logits)
    top_ids: tuple[int, ...]  # the top candidates at this step, best first (raw logits)
    top_probs: tuple[float, ...]
    beams: tuple[tuple[tuple[int, ...], float], ...] = ()  # beam search: live beams' new tokens and scores


@dataclass(frozen=True)
class DecodeOutput:
    sequence: list[int]  # the whole sequence: prompt then new tokens (eos included when produced)
    new_tokens: list[int]
    steps: list[StepInfo]
    finished: bool  # ended on an eos token (not the length limit)
    score: float | None = None  # beam search: the sequence's score


# ----------------------------------------------------------------------------- logits processors

def process(settings: DecodeSettings, tokens: torch.Tensor, scores: torch.Tensor, prompt_len: int,
            sampling: bool) -> torch.Tensor:
    """tokens (B, t) the sequences so far, scores (B, vocab) float32 -> processed scores: a new tensor,
    or ``scores`` itself when no processor changes anything (greedy without penalties); the input is
    never modified."""
    s = settings
    original = scores

    def own() -> torch.Tensor:  # a copy before the first in-place change (none when no processor applies)
        nonlocal scores
        if scores is original:
            scores = scores.clone()
        return scores

    if s.repetition_penalty != 1.0:
        seen = torch.gather(scores, 1, tokens)
        seen = torch.where(seen < 0, seen * s.repetition_penalty, seen / s.repetition_penalty)
        own().scatter_(1, tokens, seen)
    n = s.no_repeat_ngram_size
    if n > 0 and tokens.shape[1] + 1 >= n:
        for row in range(tokens.shape[0]):
            seq = tokens[row].tolist()
            prefix = tuple(seq[len(seq) - n + 1:]) if n > 1 else ()
            banned = {seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i:i + n - 1]) == prefix}
            if banned:
                own()[row, list(banned)] = -float("inf")
    eos = list(s.eos_token_ids)
    if eos and s.min_length > 0 and tokens.shape[1] < s.min_length:
        own()[:, eos] = -float("inf")
    if eos and s.min_new_tokens > 0 and tokens.shape[1] - prompt_len < s.min_new_tokens:
        own()[:, eos] = -float("inf")
    cur = tokens.shape[1]
    if s.forced_bos_token_id is not None and cur == 1:
        own()[:] = -float("inf")
        scores[:, s.forced_bos_token_id] = 0.0
    if s.forced_eos_token_id is not None and cur == prompt_len + s.max_new_tokens - 1:
        own()[:] = -float("inf")
        scores[:, s.forced_eos_token_id] = 0.0
    if sampling:
        keep = 2 if s.num_beams > 1 else 1
        if s.num_beams > 1 and eos:
            keep = len(eos) + 1
        if s.temperature != 1.0:
            scores = scores / s.temperature
        if s.top_k:
            k = min(max(s.top_k, keep), scores.shape[-1])
            kth = torch.topk(scores, k)[0][..., -1, None]
            scores = scores.masked_fill(scores < kth, -float("inf"))
        if s.top_p < 1.0:
            ordered, order = torch.sort(scores, descending=False)
            cum = ordered.softmax(dim=-1).cumsum(dim=-1)
            drop = cum <= (1 - s.top_p)
            drop[..., -keep:] = False
            scores = scores.masked_fill(drop.scatter(1, order, drop), -float("inf"))
    return scores


def _top(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, list[int], list[float], list[float]]:
    """logits (vocab,) -> (probabilities (vocab,), the ``k`` best ids, their probabilities, their
    logits), best first; the last three as Python values (a transfer each from the device). The
    ranking is taken on the logits (the same order as the probabilities, without the ties of those
    that round to 0). A softmax, not exp(logit - logsumexp): torch's plain exp slows down ~20x on
    arguments under -87 (a peaked distribution's tail), its softmax kernel does not."""
    probs = logits.softmax(dim=-1)
    vals, ids = torch.topk(logits, min(k, logits.shape[-1]))
    return probs, ids.tolist(), probs[ids].tolist(), vals.tolist()


# ----------------------------------------------------------------------------- greedy and sampling

Step = Callable[[torch.Tensor], torch.Tensor]  # tokens (B, t) new since the last call -> logits (B, vocab)


def decode(step: Step, prompt: list[int], settings: DecodeSettings, *, reorder: Callable | None = None,
           device: torch.device | str = "cpu", cancel: CancelToken | None = None,
           on_step: Callable[[StepInfo], None] | None = None) -> DecodeOutput:
    """Generate up to ``settings.max_new_tokens`` after ``prompt`` (a list of ids, batch 1)."""
    steps = iterate(step, prompt, settings, reorder=reorder, device=device, cancel=cancel)
    while True:
        try:
            info = next(steps)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(info)


def iterate(step: Step, prompt: list[int], settings: DecodeSettings, *, reorder: Callable | None = None,
            device: torch.device | str = "cpu",
            cancel: CancelToken | None = None) -> Generator[StepInfo, None, DecodeOutput]:
    """:func:`decode` as a generator: yields each step's StepInfo as it is produced and returns the
    DecodeOutput (``StopIteration.value``)."""
    if settings.num_beams > 1:
        if reorder is None:
            raise ValueError("beam search needs a cache reorder function")
        return (yield from _beam(step, prompt, settings, reorder, device, cancel))
    return (yield from _sample(step, prompt, settings, device, cancel))


def _sample(step: Step, prompt: list[int], settings: DecodeSettings, device, cancel):
    """Greedy or sampling, batch 1."""
    gen = None
    if settings.do_sample:
        gen = torch.Generator(device="cpu")
        if settings.seed is not None:
            gen.manual_seed(int(settings.seed))
        else:
            gen.seed()
    n = len(prompt)
    buffer = torch.empty(1, n + settings.max_new_tokens, dtype=torch.long, device=device)  # the sequence so far
    buffer[0, :n] = torch.tensor(prompt, dtype=torch.long)
    new = buffer[:, :n]
    eos = set(settings.eos_token_ids)
    steps: list[StepInfo] = []
    out: list[int] = []
    finished = False
    k = max(0, settings.top_candidates)
    for i in range(settings.max_new_tokens):
        check(cancel)
        logits = step(new).float()  # (1, vocab)
        tokens = buffer[:, : n + i]
        scores = process(settings, tokens, logits, len(prompt), settings.do_sample)
        probs, ids, vals, raw = _top(logits[0], max(k, 2))
        if settings.do_sample:
            weights = scores.softmax(dim=-1)
            if weights.device.type != "cpu":
                weights = weights.cpu()
            nxt = int(torch.multinomial(weights, 1, generator=gen)[0, 0])
        elif scores is logits and len(raw) > 1 and raw[0] > raw[1]:
            nxt = ids[0]  # the unique best raw logit: argmax's answer, without another pass
        else:
            nxt = int(scores.argmax(dim=-1)[0])
        top_ids, top_probs = tuple(ids[:k]), tuple(vals[:k])
        prob = top_probs[top_ids.index(nxt)] if nxt in top_ids else float(probs[nxt])
        info = StepInfo(i, nxt, prob, top_ids, top_probs)
        steps.append(info)
        out.append(nxt)
        yield info
        buffer[0, n + i] = nxt
        new = buffer[:, n + i: n + i + 1]
        if nxt in eos:
            finished = True
            break
    return DecodeOutput(list(prompt) + out, out, steps, finished)


# ----------------------------------------------------------------------------- beam search

def _beam(step: Step, prompt: list[int], s: DecodeSettings, reorder: Callable, device, cancel):
    """transformers' vectorised beam search, batch 1."""
    beams = s.num_beams
    prompt_len = len(prompt)
    max_len = prompt_len + s.max_new_tokens
    eos = torch.tensor(list(s.eos_token_ids), dtype=torch.long, device=device)
    keep = max(2, 1 + len(s.eos_token_ids)) * beams
    fill = s.pad_token_id if s.pad_token_id is not None else (s.eos_token_ids[0] if s.eos_token_ids else -1)
    running = torch.full((beams, max_len), fill, dtype=torch.long, device=device)
    running[:, :prompt_len] = torch.tensor(prompt, dtype=torch.long, device=device)
    running_scores = torch.zeros(beams, device=device)
    running_scores[1:] = NEG
    done_seqs = running.clone()
    done_scores = torch.full((beams,), NEG, device=device)
    done_lens = torch.zeros(beams, dtype=torch.long, device=device)  # new tokens of each finished hypothesis
    done_flags = torch.zeros(beams, dtype=torch.bool, device=device)
    improvable = True
    gen = None
    if s.do_sample:
        gen = torch.Generator(device="cpu")
        if s.seed is not None:
            gen.manual_seed(int(s.seed))
        else:
            gen.seed()
    top_mask = torch.zeros(keep, dtype=torch.bool, device=device)
    top_mask[:beams] = True
    steps: list[StepInfo] = []
    cur = prompt_len
    new = running[:, :prompt_len]
    while True:
        check(cancel)
        logits = step(new).float()  # (beams, vocab)
        vocab = logits.shape[-1]
        logp = F.log_softmax(logits, dim=-1)
        logp = process(s, running[:, :cur], logp, prompt_len, s.do_sample)
        total = (logp + running_scores[:, None]).reshape(1, -1)  # (1, beams * vocab)
        if s.do_sample:
            probs = F.softmax(total, dim=-1)
            idx = torch.multinomial(probs.cpu(), keep, generator=gen).to(device)
            vals = torch.gather(total, 1, idx)
            vals, order = vals.sort(dim=-1, descending=True)
            idx = idx.gather(1, order)
        else:
            vals, idx = torch.topk(total, keep)
        vals, idx = vals[0], idx[0]
        parent = idx // vocab
        tok = idx % vocab
        cand = running[parent].clone()  # (keep, max_len)
        cand[:, cur] = tok
        hits = torch.zeros(keep, dtype=torch.bool, device=device)
        if cur + 1 >= max_len:
            hits[:] = True
        if eos.numel():
            hits |= torch.isin(tok, eos)
        # the live beams for the next step
        live_vals = vals + hits.float() * NEG
        nxt = torch.topk(live_vals, beams)[1]
        running = cand[nxt]
        running_scores = live_vals[nxt]
        parents = parent[nxt]
        # finished hypotheses
        just = hits & top_mask
        scored = vals / ((cur + 1 - prompt_len) ** s.length_penalty)
        if bool(done_flags.all()) and s.early_stopping is True:
            scored = scored + NEG
        if not improvable:
            scored = scored + NEG
        scored = scored + (~just).float() * NEG
        m_seqs = torch.cat([done_seqs, cand])
        m_scores = torch.cat([done_scores, scored])
        m_lens = torch.cat([done_lens, torch.full((keep,), cur + 1 - prompt_len, dtype=torch.long, device=device)])
        m_flags = torch.cat([done_flags, just])
        best = torch.topk(m_scores, beams)[1]
        done_seqs, done_scores, done_lens, done_flags = m_seqs[best], m_scores[best], m_lens[best], m_flags[best]
        reorder(parents)
        cur += 1
        row = logits[int(parents[0])]
        k = max(0, s.top_candidates)
        probs, ids, vals, _ = _top(row, max(1, k))
        top_ids, top_probs = tuple(ids[:k]), tuple(vals[:k])
        leader = int(running[0, cur - 1])
        steps.append(StepInfo(cur - 1 - prompt_len, leader, float(probs[leader]), top_ids, top_probs,
                              tuple((tuple(running[b, prompt_len:cur].tolist()), float(running_scores[b]))
                                    for b in range(beams))))
        yield steps[-1]
        # the early-stop heuristic
        if s.early_stopping == "never" and s.length_penalty > 0.0:
            best_len = max_len - prompt_len
        else:
            best_len = cur - prompt_len
        best_possible = running_scores[0] / (best_len ** s.length_penalty)
        worst_done = done_scores.min() if bool(done_flags.all()) else torch.tensor(NEG, device=device)
        improvable = improvable and bool(best_possible > worst_done)
        if not improvable:
            break
        if bool(done_flags.all()) and s.early_stopping is True:
            break
        if bool(hits[:beams].all()) and bool(hits.all()):
            break
        new = running[:, cur - 1: cur]
    n = int(done_lens[0])
    seq = done_seqs[0, : prompt_len + n].tolist()
    new_tokens = seq[prompt_len:]
    finished = bool(new_tokens) and new_tokens[-1] in set(s.eos_token_ids)
    return DecodeOutput(seq, new_tokens, steps, finished, float(done_scores[0]))
