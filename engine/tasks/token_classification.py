"""Token classification (named-entity recognition): BERT's token-classification head, as in the seed's
walk-through: a linear layer on every token's final state gives it a tag (``B-PER``: a person's name
begins, ``I-PER``: it goes on, ``O``: no entity...), and the tags are grouped into entities.

    task = load_task("token-classification")                  # dslim/bert-base-NER
    result = task("John lives in New York.")                   # aggregation "simple"
    [(e.label, e.word, e.start, e.end) for e in result.entities]  # ("PER", "John", 0, 4), ("LOC", ...)

    preprocess   ``[CLS] text [SEP]`` (WordPiece, offsets into the text), cut at the model's max length
                 as transformers' pipeline cuts it
    model        engine.models.bert: per-token logits
    postprocess  exactly transformers' TokenClassificationPipeline: softmax per token, special tokens
                 skipped, sub-word pieces found by their length against the text, then aggregation
                 none / simple / first / average / max and the ignored labels ("O") dropped
"""
from __future__ import annotations

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..types.text import (AGGREGATIONS, Entity, TokenClassificationInternals, TokenClassificationOptions,
                          TokenClassificationResult)
from .base import Progress, StageClock
from .text_common import TextTask


def _tag(label: str) -> tuple[str, str]:
    """"B-PER" -> ("B", "PER"); "I-PER" and "PER" -> ("I", "PER") (the pipeline's get_tag)."""
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


class TokenClassification(TextTask):
    name = "token-classification"
    title = "Token classification"
    summary = "Find named entities (people, places, organisations...) with BERT, as tagged tokens or grouped."
    options_type = TokenClassificationOptions
    result_type = TokenClassificationResult
    head = "token-classification"
    models = (
        ModelEntry("dslim/bert-base-NER", 433, "mit", "BERT-base fine-tuned on CoNLL-2003: PER, ORG, LOC, MISC"),
    )
    command = "token-classification"
    command_help = "named entities in a text (BERT NER)"
    bench = "benchmarks.text:token_classification"

    def run(self, inputs: str, options: TokenClassificationOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> TokenClassificationResult:
        """One text -> its entities (or tagged tokens with aggregation "none"), in text order."""
        opts = self._options(options)
        text = self.check_text(inputs)
        clock = StageClock(self._sync())
        with clock.stage("preprocess"):
            enc, truncated = self.encoder.encode_one(text)
        check(cancel)
        with clock.stage("model"):
            out = self.forward([enc], want_attention=opts.internals and opts.attention)
            logits = out.logits[0].cpu().numpy()  # (T, num_labels)
        with clock.stage("postprocess"):
            shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
            probs = (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)  # (T, num_labels)
            pre = self._pre_entities(text, enc, probs)
            entities = self._aggregate(pre, opts.aggregation)
            ignore = set(opts.ignore_labels)
            entities = tuple(e for e in entities if e.label not in ignore)
            internals = None
            if opts.internals:
                subword = np.zeros(len(enc.ids), bool)
                for p in pre:
                    subword[p["index"]] = p["is_subword"]
                best = probs.argmax(-1)
                internals = TokenClassificationInternals(
                    self.encoder.model_tokens(enc, self.attention_maps(out.attentions)), self.label_names,
                    tuple(self.label_names[i] for i in best), probs[np.arange(len(best)), best], probs, subword)
        if progress is not None:
            progress(1.0, None)
        return TokenClassificationResult(entities, opts.aggregation, truncated, clock.timings(), internals)

    # ------------------------------------------------------------------ the pipeline's post-processing

    def _pre_entities(self, text: str, enc, probs: np.ndarray) -> list[dict]:
        """Per non-special token: its token string, scores, character span, index and whether it
        continues the word before it (WordPiece: the token string and the text it covers differ in
        length, i.e. it carries the ``##`` prefix; an [UNK] token never does and shows its text)."""
        out = []
        prefix = self.encoder.subword_prefix
        for idx, (token, token_id, special, (start, end)) in enumerate(
                zip(enc.tokens, enc.ids, enc.special_tokens_mask, enc.offsets)):
            if special:
                continue
            word_ref = text[start:end]
            if prefix:
                is_subword = len(token) != len(word_ref)
            else:
                is_subword = start > 0 and " " not in text[start - 1:start + 1]
            if token_id == self.encoder.unk_id:
                token, is_subword = word_ref, False
            out.append({"word": token, "scores": probs[idx], "start": start, "end": end, "index": idx,
                        "is_subword": is_subword})
        return out

    def _aggregate(self, pre: list[dict], aggregation: str) -> list[Entity]:
        if aggregation not in AGGREGATIONS:
            raise ValueError(aggregation)
        if aggregation in ("none", "simple"):
            tokens = []
            for p in pre:
                i = int(p["scores"].argmax())
                tokens.append(Entity(self.label_names[i], float(p["scores"][i]), p["word"], p["start"], p["end"],
                                     p["index"]))
            if aggregation == "none":
                return tokens
            return self._group(tokens)
        words, group = [], []
        for p in pre:  # a word: a token and the sub-word pieces after it
            if group and not p["is_subword"]:
                words.append(self._word(group, aggregation))
                group = []
            group.append(p)
        if group:
            words.append(self._word(group, aggregation))
        return self._group(words)

    def _word(self, pieces: list[dict], aggregation: str) -> Entity:
        """One word's tag from its pieces: the first one's, the most confident one's, or the averaged scores'."""
        if aggregation == "first":
            scores = pieces[0]["scores"]
        elif aggregation == "max":
            scores = max(pieces, key=lambda p: p["scores"].max())["scores"]
        else:  # average
            scores = np.nanmean(np.stack([p["scores"] for p in pieces]), axis=0)
        i = int(scores.argmax())
        word = self.encoder.tokens_to_string([p["word"] for p in pieces])
        return Entity(self.label_names[i], float(scores[i]), word, pieces[0]["start"], pieces[-1]["end"])

    def _group(self, items: list[Entity]) -> list[Entity]:
        """Adjacent tokens / words with the same tag, a B- tag starting a new entity (the pipeline's group_entities)."""
        groups, current = [], []
        for e in items:
            if current:
                bi, tag = _tag(e.label)
                _, last_tag = _tag(current[-1].label)
                if not (tag == last_tag and bi != "B"):
                    groups.append(self._entity(current))
                    current = []
            current.append(e)
        if current:
            groups.append(self._entity(current))
        return groups

    def _entity(self, parts: list[Entity]) -> Entity:
        label = parts[0].label.split("-", 1)[-1]
        score = float(np.nanmean(np.array([p.score for p in parts], np.float32)))
        word = self.encoder.tokens_to_string([p.word for p in parts])
        return Entity(label, score, word, parts[0].start, parts[-1].end)

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_task_arguments(cls, parser) -> None:
        parser.add_argument("--aggregation", choices=AGGREGATIONS, default="simple", metavar="S",
                            help="how tagged tokens become entities: " + " | ".join(AGGREGATIONS)
                            + " (default simple; as transformers' pipeline)")

    @classmethod
    def cli_options(cls, args) -> TokenClassificationOptions:
        return TokenClassificationOptions(aggregation=args.aggregation)

    @classmethod
    def cli_print(cls, name: str, result: TokenClassificationResult, args) -> str:
        head = f"{name}: {len(result)} {'tokens' if result.aggregation == 'none' else 'entities'}, " \
               f"{result.timings.total_ms:.0f} ms" + (" (cut at the model's max length)" if result.truncated else "")
        lines = [head]
        lines += [f"  {e.label:<8} {e.score:6.3f}  {e.word!r} [{e.start}:{e.end}]" for e in result.entities]
        return "\n".join(lines)
