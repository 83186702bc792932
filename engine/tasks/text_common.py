"""What the text tasks share (not a task itself, so not in the registry): loading a BERT or
DistilBERT checkpoint with the head a task reads and its tokenizer, running the model, and the CLI
of ``python main.py text TASK [TEXT | --file F] [--model ID|DIR] [--json]``.

Each text task is a :class:`TextTask` that declares its ``head`` (engine.models.bert.HEADS) and
implements ``run``; the command line and the checks of the text before any model loads live here.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import EngineError, InputError
from ..lazy import lazy
from .base import Task, expect_architecture

if TYPE_CHECKING:
    from ..device import Placement
    from ..processors.text import TextEncoder

torch = lazy("torch")
bert = lazy("engine.models.bert")

log = logging.getLogger(__name__)

MODEL_TYPES = ("bert", "distilbert")


class TextTask(Task):
    """Base of the BERT / DistilBERT text tasks: ``task(text, options)``."""

    domain = "text"
    command_group = "text"
    head: ClassVar[str] = ""  # the engine.models.bert head this task reads
    pack_rows: ClassVar[int] = 64  # the input length the linear layers are packed for (engine.models.bert)
    #: the CLI's TEXT, as its help says it (question answering: the context)
    text_help: ClassVar[str] = "the text (or - to read standard input)"

    def __init__(self, model_ref: str, folder: Path, placement: Placement, model, encoder: TextEncoder) -> None:
        super().__init__(model_ref, folder, placement)
        self.model = model
        self.encoder = encoder
        id2label = model.config.id2label
        self.label_names = tuple(id2label.get(i, f"LABEL_{i}") for i in range(model.config.num_labels))

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> TextTask:
        from ..models import bert as bert_model
        from ..processors.text import TextEncoder

        expect_architecture(folder, model_ref, cls.name, MODEL_TYPES, bert_model.HEAD_ARCHITECTURES[cls.head])
        placement, notice = bert_model.fast_placement(placement, cls.head)
        model = bert_model.from_checkpoint(folder, placement, cls.head, rows=cls.pack_rows)
        encoder = TextEncoder(folder, model.config.max_position_embeddings)
        task = cls(model_ref, folder, placement, model, encoder)
        task.precision_notice = notice  # why 'fast' was asked for and 'exact' runs, if it was
        log.info("Loaded %s %s on %s", cls.name, model_ref, placement.describe())
        return task

    # ------------------------------------------------------------------ running the model

    def forward(self, encodings, rows=None, want_attention: bool = False):
        """Encodings -> engine.models.bert.BertOutput (logits float32 on the CPU side of the caller)."""
        ids, types, mask = self.encoder.tensors(encodings, self.placement.device)
        if rows is not None:
            rows = torch.as_tensor(rows, dtype=torch.long, device=self.placement.device)
        with torch.inference_mode():
            return self.model(ids, types, mask, rows=rows, want_attention=want_attention)

    @staticmethod
    def attention_maps(attentions, item: int = 0, length: int | None = None) -> tuple[np.ndarray, ...] | None:
        """Per layer (heads, T, T) float32 numpy maps of one batch item (its first ``length`` tokens)."""
        if attentions is None:
            return None
        return tuple(a[item, :, :length, :length].float().cpu().numpy() for a in attentions)

    def check_text(self, text: Any, what: str = "The text") -> str:
        from ..io.text import check_text
        return check_text(text, what)

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_arguments(cls, parser) -> None:
        from ..cliargs import input_file
        source = parser.add_mutually_exclusive_group()
        source.add_argument("text", nargs="?", metavar="TEXT", help=cls.text_help)
        source.add_argument("--file", type=input_file, metavar="F", help="read the text from a UTF-8 .txt file")
        cls.add_task_arguments(parser)
        parser.add_argument("--json", action="store_true",
                            help="print JSON: what transformers' pipeline returns for this task")

    @classmethod
    def add_task_arguments(cls, parser) -> None:
        """The task's own options (--top-k, --question ...)."""

    @classmethod
    def cli_inputs(cls, args) -> list[tuple[str, Any]]:
        """The text from TEXT, standard input (-) or --file, checked now (before the model loads)."""
        import sys

        from ..io.text import check_text, read_text_file
        try:
            if args.file is not None:
                return [(str(args.file), read_text_file(args.file))]
            if args.text is None:
                raise InputError(f"Give the text to {cls.title.lower()}: python main.py text {cls.command} "
                                 f"\"...\" (or --file F, or - for standard input).")
            if args.text == "-":
                data = sys.stdin.buffer.read()
                try:
                    text = data.decode("utf-8-sig")
                except UnicodeDecodeError:
                    raise InputError("The standard input is not UTF-8 text.") from None
                return [("stdin", check_text(text, "The standard input"))]
            return [("text", check_text(args.text))]
        except EngineError as exc:
            return [(str(args.file) if args.file is not None else "text", exc)]

    def cli_results(self, inputs: list[Any], options: Any, args) -> list[Any]:
        out: list[Any] = []
        for text in inputs:
            try:
                out.append(self(text, options))
            except InputError as exc:  # reported as this input's error (one line, exit 2)
                out.append(exc)
        return out

    @classmethod
    def cli_json(cls, name: str, result: Any, task: Task) -> Any:
        return result.to_json()
