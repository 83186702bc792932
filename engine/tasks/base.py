"""The task facade every task follows: numpy in, a frozen result dataclass out."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..cancel import CancelToken
from ..catalog import ModelEntry

if TYPE_CHECKING:
    import argparse

    from ..device import Placement

#: ``progress(fraction_done, partial_result_or_None)``; called from the worker thread
Progress = Callable[[float, Any], None]

_NOTHING = object()  # Task.steps: stream() has yielded nothing yet


class StageClock:
    """Measures the preprocess / model / postprocess stages of one call, in ms."""

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.ms: dict[str, float] = {"preprocess": 0.0, "model": 0.0, "postprocess": 0.0}
        self._sync = sync

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self._sync is not None:
                self._sync()
            self.ms[name] += (time.perf_counter() - t0) * 1000.0

    def timings(self):
        from ..types import Timings
        return Timings(self.ms["preprocess"], self.ms["model"], self.ms["postprocess"])


def expect_architecture(folder: Path, model_ref: str, task: str, model_types: tuple[str, ...],
                        head_suffixes: tuple[str, ...] = ()) -> dict:
    """Read config.json and check it is a model this task runs (its ``model_type`` and, when the
    config names them, its ``architectures``' head); a clear CheckpointError otherwise."""
    from ..errors import CheckpointError
    from ..hub import read_json

    config = read_json(folder, "config.json")
    kind = config.get("model_type")
    if not isinstance(kind, str) or not kind:
        raise CheckpointError(f"The config.json of {model_ref} names no model_type, so it is not a checkpoint "
                              f"Taskscope can load; the {task} task runs "
                              f"{' or '.join(repr(t) for t in model_types)} checkpoints.")
    if kind not in model_types:
        raise CheckpointError(f"{model_ref} is a {kind!r} model; the {task} task runs "
                              f"{' or '.join(repr(t) for t in model_types)} checkpoints.")
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    if head_suffixes and archs and not any(a.endswith(head_suffixes) for a in archs):
        raise CheckpointError(f"{model_ref} is a {', '.join(archs)} checkpoint; the {task} task needs one "
                              f"with a {' or '.join(h.removeprefix('For') for h in head_suffixes)} head.")
    return config


class Task:
    """Base class. A task module declares everything about its task on its Task subclass:

    * ``name`` (the registry key), ``title``, ``domain`` (the tab: "vision", "audio" or "text"),
      ``options_type`` and ``result_type`` (frozen dataclasses from engine/types/<domain>.py);
    * ``models``: its catalog entries, the default checkpoint first;
    * ``command``/``command_help`` (nested under ``command_group`` when set) and the
      ``add_arguments``/``cli_inputs``/``cli_options``/
      ``cli_results``/``cli_print`` hooks: its headless subcommand (engine/cli.py runs them);
    * ``bench``: the benchmarks/ module timing it against transformers.

    Subclasses implement ``load`` and ``run``. The module must stay cheap to import (torch and
    the model files through engine.lazy), since the app's UI thread reads these declarations.

    ``task(inputs, options)`` runs once and returns the result. ``task.stream(...)`` yields
    partial results (tokens, transcript so far) and then the final one; tasks that have no
    partial results yield just the final one. Both accept a CancelToken checked between steps.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # "Object detection"
    domain: ClassVar[str] = ""  # "vision" | "audio" | "text"
    summary: ClassVar[str] = ""  # one line: what it does, with which models (About box, --help)
    options_type: ClassVar[type] = object
    result_type: ClassVar[type] = object
    models: ClassVar[tuple[ModelEntry, ...]] = ()  # default first
    command: ClassVar[str | None] = None  # CLI subcommand, e.g. "detect"
    #: the CLI command this task's command nests under (``python main.py text fill-mask ...``); None: top level
    command_group: ClassVar[str | None] = None
    command_help: ClassVar[str] = ""
    #: the command's --model help, when the list of its models' ids would not do
    cli_model_help: ClassVar[str | None] = None
    bench: ClassVar[str | None] = None  # module under benchmarks/ with add_arguments(parser) and run(args)
    #: what ``bench`` compares, for `bench --help` (e.g. "SegFormer"); "": the models named in command_help
    bench_models: ClassVar[str] = ""
    #: why the precision asked for is not the one that runs (a model whose ``fast`` would change its
    #: answers on this device runs ``exact``); None when it is the one asked for
    precision_notice: str | None = None

    # ------------------------------------------------------------------ CLI hooks (engine/cli.py)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The subcommand's own arguments (inputs and options); --model/--device/--precision/--json are common."""

    @classmethod
    def cli_task(cls, args: argparse.Namespace) -> type[Task]:
        """The task that runs this command's arguments: ``cls``, or another task whose models the
        command also takes (``segment --model <a Mask2Former> --mode panoptic``), chosen before
        anything loads; it may fill in ``args`` (a default model) and refuses options the chosen
        task has no use for."""
        return cls

    @classmethod
    def cli_inputs(cls, args: argparse.Namespace) -> list[tuple[str, Any]]:
        """(name, input) pairs read from the arguments BEFORE the model loads, so a bad file is
        reported at once. An input that cannot be read may be an EngineError in place of the input:
        it is reported for that name and the others still run."""
        raise NotImplementedError

    @classmethod
    def cli_options(cls, args: argparse.Namespace) -> Any:
        """The options from the arguments, checked before the model loads."""
        return cls.options_type()

    def cli_results(self, inputs: list[Any], options: Any, args: argparse.Namespace) -> list[Any]:
        """Run the task over the inputs (one at a time unless the task batches)."""
        return [self(x, options) for x in inputs]

    @classmethod
    def cli_print(cls, name: str, result: Any, args: argparse.Namespace) -> str:
        """Human-readable text for one result."""
        return f"{name}: {result}"

    @classmethod
    def cli_json(cls, name: str, result: Any, task: Task) -> dict:
        """The --json object for one result (engine.io.export.dumps writes it)."""
        return {"input": name, "model": task.model_ref, "result": result,
                "timings_ms": getattr(result, "timings", None)}

    # ------------------------------------------------------------------ running

    def __init__(self, model_ref: str, folder: Path, placement: Placement) -> None:
        self.model_ref = model_ref
        self.folder = Path(folder)
        self.placement = placement

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> Task:
        raise NotImplementedError

    def run(self, inputs: Any, options: Any = None, *, cancel: CancelToken | None = None,
            progress: Progress | None = None) -> Any:
        raise NotImplementedError

    def __call__(self, inputs: Any, options: Any = None, *, cancel: CancelToken | None = None,
                 progress: Progress | None = None) -> Any:
        return self.run(inputs, options, cancel=cancel, progress=progress)

    def stream(self, inputs: Any, options: Any = None, *, cancel: CancelToken | None = None) -> Iterator[Any]:
        yield self.run(inputs, options, cancel=cancel)

    def steps(self, inputs: Any, options: Any = None, *,
              cancel: CancelToken | None = None) -> Iterator[tuple[float | None, Any]]:
        """The work in steps that other work may run between (the app's engine thread runs live
        items between two steps of a long job). Yields ``(fraction_done, partial_result)`` after
        every step, then ``(1.0, final_result)`` last; ``fraction_done`` is None when the task
        cannot tell. Default: one step (``run``) for a task without partial results; otherwise
        every item ``stream()`` yields is one step (fraction unknown), and the last item is
        yielded once more as the final result. A task that knows how far it got overrides this."""
        if type(self).stream is Task.stream:
            yield 1.0, self.run(inputs, options, cancel=cancel)
            return
        last: Any = _NOTHING
        for last in self.stream(inputs, options, cancel=cancel):
            yield None, last
        if last is _NOTHING:
            raise RuntimeError(f"{self.name}: stream() yielded no result")
        yield 1.0, last

    def memory_bytes(self) -> int:
        """Bytes held by the loaded model's parameters and buffers (0 for a task without a
        ``model``): what a cache of loaded tasks counts against its memory limit."""
        model = getattr(self, "model", None)
        if model is None or not hasattr(model, "parameters"):
            return 0
        tensors = list(model.parameters()) + list(model.buffers())
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def _options(self, options: Any) -> Any:
        if options is None:
            options = self.options_type()
        if not isinstance(options, self.options_type):
            raise TypeError(f"{self.name} takes {self.options_type.__name__}, not {type(options).__name__}")
        check = getattr(options, "check", None)
        if check is not None:
            check()
        return options

    def _sync(self) -> Callable[[], None] | None:
        """A device synchronise for honest stage timings on asynchronous devices."""
        if self.placement.device.type == "cuda":
            import torch
            return torch.cuda.synchronize
        return None

    def describe(self) -> str:
        return f"{self.name} · {self.model_ref} · {self.placement.describe()}"
