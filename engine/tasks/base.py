"""The task facade every task follows: numpy in, a frozen result dataclass out."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from ..cancel import CancelToken
from ..device import Placement

#: ``progress(fraction_done, partial_result_or_None)``; called from the worker thread
Progress = Callable[[float, Any], None]


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
        from ..results import Timings
        return Timings(self.ms["preprocess"], self.ms["model"], self.ms["postprocess"])


def expect_architecture(folder: Path, model_ref: str, task: str, model_types: tuple[str, ...],
                        head_suffixes: tuple[str, ...] = ()) -> dict:
    """Read config.json and check it is a model this task runs (its ``model_type`` and, when the
    config names them, its ``architectures``' head); a clear CheckpointError otherwise."""
    from ..errors import CheckpointError
    from ..hub import read_json

    config = read_json(folder, "config.json")
    kind = config.get("model_type", "unknown")
    if kind not in model_types:
        raise CheckpointError(f"{model_ref} is a {kind!r} model; the {task} task runs "
                              f"{' or '.join(repr(t) for t in model_types)} checkpoints.")
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    if head_suffixes and archs and not any(a.endswith(head_suffixes) for a in archs):
        raise CheckpointError(f"{model_ref} is a {', '.join(archs)} checkpoint; the {task} task needs one "
                              f"with a {' or '.join(h.removeprefix('For') for h in head_suffixes)} head.")
    return config


class Task:
    """Base class. Subclasses set ``name`` and ``options_type`` and implement ``load`` and ``run``.

    ``task(inputs, options)`` runs once and returns the result. ``task.stream(...)`` yields
    partial results (tokens, transcript so far) and then the final one; tasks that have no
    partial results yield just the final one. Both accept a CancelToken checked between steps.
    """

    name: ClassVar[str] = ""
    options_type: ClassVar[type] = object

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

    def _options(self, options: Any) -> Any:
        if options is None:
            return self.options_type()
        if not isinstance(options, self.options_type):
            raise TypeError(f"{self.name} takes {self.options_type.__name__}, not {type(options).__name__}")
        return options

    def _sync(self) -> Callable[[], None] | None:
        """A device synchronise for honest stage timings on asynchronous devices."""
        if self.placement.device.type == "cuda":
            import torch
            return torch.cuda.synchronize
        return None

    def describe(self) -> str:
        return f"{self.name} · {self.model_ref} · {self.placement.describe()}"
