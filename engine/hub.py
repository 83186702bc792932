"""Model reference -> local folder -> config and weights.

A reference is either a local folder (used as is) or a Hugging Face repo id, downloaded
through huggingface_hub into its standard cache (HF_HOME, HF_HUB_OFFLINE are respected).
Weights are read from safetensors (single or sharded) or, for checkpoints that only have
them, ``pytorch_model.bin`` through ``torch.load(weights_only=True)``. Nothing else is
unpickled and no code from a checkpoint is ever run.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .cancel import CancelToken, check
from .errors import Cancelled, CheckpointError, ModelNotAvailable

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: ``progress(done_bytes, total_bytes, current_file)``
DownloadProgress = Callable[[int, int, str], None]

# Files a task may need besides the weights; others in a repo (ONNX, TF, Flax, ...) are skipped.
SIDE_FILES = (
    "config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json",
    "feature_extractor_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
    "vocab.txt", "merges.txt", "spiece.model", "special_tokens_map.json", "added_tokens.json",
)
WEIGHT_CHOICES = (
    ("model.safetensors",), ("model.safetensors.index.json",),
    ("pytorch_model.bin",), ("pytorch_model.bin.index.json",),
)


def is_offline(offline: bool | None = None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _how_to_get(ref: str) -> str:
    return (f"Connect to the internet and load it once (it is then cached for offline use): in the app, or with "
            f"`python main.py download {ref}`. Or copy a Hugging Face cache (~/.cache/huggingface) that has it "
            f"from another machine, or pick a local checkpoint folder.")


def _choose_files(names: set[str]) -> list[str]:
    wanted = [n for n in SIDE_FILES if n in names]
    if "config.json" not in names:
        raise CheckpointError("The repository has no config.json; it is not a model Taskscope can load.")
    for (choice,) in WEIGHT_CHOICES:
        if choice in names:
            wanted.append(choice)
            if choice.endswith(".index.json"):
                prefix = choice.split(".")[0]
                suffix = ".safetensors" if "safetensors" in choice else ".bin"
                wanted += sorted(n for n in names if n.startswith(prefix + "-") and n.endswith(suffix))
            return wanted
    raise CheckpointError("The repository has no model.safetensors or pytorch_model.bin weights.")


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import hf_hub_download
    try:
        cfg = hf_hub_download(repo_id, "config.json", local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None
    folder = Path(cfg).parent
    try:
        find_weights(folder)
    except CheckpointError:
        return None
    return folder


def resolve(ref: str, *, progress: DownloadProgress | None = None, cancel: CancelToken | None = None,
            offline: bool | None = None) -> Path:
    """Return a local folder holding ``ref``'s config and weights, downloading when needed."""
    path = Path(os.path.expanduser(ref))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path} has no config.json; it is not a checkpoint folder.")
        return path
    if path.exists() or ref.startswith((".", "/", "~")) or ref.count("/") > 1 or not _valid_repo_id(ref):
        raise ModelNotAvailable(f"{ref!r} is not a checkpoint folder, nor a valid Hugging Face model id "
                                f"(like 'facebook/detr-resnet-50': letters, digits, '-', '_' and '.', "
                                f"with at most one '/').")
    cached = _cached_snapshot(ref)
    if cached is not None:
        return cached
    if is_offline(offline):
        raise ModelNotAvailable(f"Model '{ref}' is not downloaded yet and Taskscope is offline. " + _how_to_get(ref))
    return _download(ref, progress, cancel)


def _valid_repo_id(ref: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    try:
        validate_repo_id(ref)
    except HFValidationError:
        return False
    return True


#: huggingface_hub reads HF_HUB_OFFLINE into a module constant at import; a download flips it for
#: its own duration only (under this lock), so the rest of the process keeps what the user set
_ONLINE_LOCK = threading.Lock()


@contextlib.contextmanager
def _online():
    from huggingface_hub import constants
    with _ONLINE_LOCK:
        before = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = False
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = before


def is_cached(ref: str) -> bool:
    """True when ``ref`` can be loaded without a download."""
    return Path(os.path.expanduser(ref)).is_dir() or _cached_snapshot(ref) is not None


def _download(repo_id: str, progress: DownloadProgress | None, cancel: CancelToken | None) -> Path:
    # the user may have gone online since huggingface_hub was imported (the app's Offline toggle);
    # we only get here when Taskscope itself is online
    with _online():
        return _download_online(repo_id, progress, cancel)


def _download_online(repo_id: str, progress: DownloadProgress | None, cancel: CancelToken | None) -> Path:
    from huggingface_hub import HfApi, constants, hf_hub_download
    from huggingface_hub.utils import RepositoryNotFoundError
    from tqdm.auto import tqdm

    try:
        # Without a timeout a server that accepts the connection but never answers would hang us for good.
        info = HfApi().model_info(repo_id, files_metadata=True, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT)
    except RepositoryNotFoundError as exc:
        raise ModelNotAvailable(f"There is no model '{repo_id}' on the Hugging Face Hub (or it is private). Check "
                                f"the spelling, e.g. 'facebook/detr-resnet-50'.") from exc
    except Exception as exc:  # noqa: BLE001 - network, auth
        raise ModelNotAvailable(f"Could not reach model '{repo_id}' on the Hugging Face Hub ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}). " + _how_to_get(repo_id)) from exc
    sizes = {s.rfilename: (s.size or 0) for s in info.siblings or []}
    files = _choose_files(set(sizes))
    total = sum(sizes[f] for f in files)
    done = 0
    current = ""

    class _Bar(tqdm):  # huggingface_hub drives this; we forward bytes and honour cancel
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            nonlocal done
            done += int(n or 0)
            if progress is not None:
                progress(done, total, current)
            check(cancel)
            return super().update(n)

    folder: Path | None = None
    finished = 0  # bytes of the files done so far
    for name in files:
        check(cancel)
        current = name
        try:
            local = hf_hub_download(repo_id, name, revision=info.sha, tqdm_class=_Bar)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ModelNotAvailable(f"Downloading {name} of '{repo_id}' failed: {exc}. " + _how_to_get(repo_id)) from exc
        # A file already in the cache (from a download cancelled after it) sends no bytes: count it here,
        # or the progress of a retried download would never reach the total.
        finished += sizes[name]
        done = max(done, finished)
        folder = Path(local).parent if folder is None else folder
        if progress is not None:
            progress(done, total, name)
    assert folder is not None
    if info.sha:
        # We downloaded by commit (so every file comes from the same one), and hf_hub_download then records no
        # branch -> commit ref; without refs/main, _cached_snapshot (offline use) would never find the model.
        # Written last, as snapshot_download does, so an interrupted download is not taken for a cached one.
        refs = folder.parent.parent / "refs"
        refs.mkdir(exist_ok=True)
        tmp = refs / f"{constants.DEFAULT_REVISION}.taskscope.tmp"
        tmp.write_text(info.sha)
        os.replace(tmp, refs / constants.DEFAULT_REVISION)
    return folder


# ---------------------------------------------------------------------------- config / weights

def read_json(folder: Path, name: str, required: bool = True) -> dict:
    """A checkpoint's JSON file as a dict ({} when absent and not required); CheckpointError when
    it is required and missing, or not valid JSON. (No torch here: processors/ctc.py and processors/audio.py use it.)"""
    p = Path(folder) / name
    if not p.is_file():
        if required:
            raise CheckpointError(f"{p} is missing.")
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{p} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{p} does not hold a JSON object.")
    return data


def find_weights(folder: Path) -> list[Path]:
    folder = Path(folder)
    for (choice,) in WEIGHT_CHOICES:
        p = folder / choice
        if p.is_file():
            if choice.endswith(".index.json"):
                index = read_json(folder, choice)
                shards = sorted(set(index.get("weight_map", {}).values()))
                if not shards:
                    raise CheckpointError(f"{p} lists no weight files.")
                return [folder / s for s in shards]
            return [p]
    raise CheckpointError(f"No weights in {folder}: expected model.safetensors or pytorch_model.bin.")


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder on the CPU (safetensors, or weights-only torch.load)."""
    import torch
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for f in find_weights(folder):
        if not f.is_file():
            raise CheckpointError(f"Weight file {f} listed in the index is missing.")
        try:
            if f.suffix == ".safetensors":
                state.update(load_file(str(f), device="cpu"))
            else:
                loaded = torch.load(str(f), map_location="cpu", weights_only=True)
                if not isinstance(loaded, dict):
                    raise CheckpointError(f"{f} does not hold a state dict.")
                state.update(loaded)
        except CheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - corrupt or hostile file
            # torch's own message suggests weights_only=False, i.e. running pickled code: never say that
            raise CheckpointError(f"Could not read the weights in {f}: the file is corrupt, truncated, or not "
                                  f"a plain tensor file ({type(exc).__name__}). Download the model again "
                                  f"or pick another checkpoint.") from exc
    return state
