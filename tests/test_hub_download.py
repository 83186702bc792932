"""engine.hub's real download path (huggingface_hub) against a fake Hub served on 127.0.0.1.

The fake Hub (tests/fake_hub.py) answers what huggingface_hub asks for, redirects LFS files to a "CDN"
on a second port, and records every request, which is how the tests see what was (not) fetched.
"""
from __future__ import annotations

import hashlib
import json
import socket
import time

import pytest
import torch
from safetensors.torch import save as save_safetensors

from engine import hub
from engine.cancel import CancelToken
from engine.errors import Cancelled, ModelNotAvailable
from tests.fake_hub import fake_hub_server, hf_cache, point_hub_at  # noqa: F401 - pytest fixtures

pytestmark = pytest.mark.timeout(30)  # a hang is a failure, not a stuck suite

REPO = "acme/tiny-model"
SHA = "0123456789abcdef0123456789abcdef01234567"  # the repo's one commit (main)
WANTED = ("config.json", "preprocessor_config.json", "model.safetensors")  # what engine.hub must fetch


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"encoder.weight": torch.randn(256, 256, generator=g),  # 256 KiB
            "encoder.bias": torch.randn(256, generator=g),
            "head.weight": torch.randn(10, 256, generator=g)}


def _repo_files() -> dict[str, bytes]:
    return {
        "config.json": json.dumps({"model_type": "tiny", "hidden_size": 256}).encode(),
        "preprocessor_config.json": json.dumps({"size": {"shortest_edge": 32}}).encode(),
        "model.safetensors": save_safetensors(_tensors()),
        "flax_model.msgpack": b"\x81\xa5flax!" * 5000,  # must never be requested
        "README.md": b"# tiny model\n",
    }


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def repo_files() -> dict[str, bytes]:
    return _repo_files()


@pytest.fixture
def fake_hub(fake_hub_server, repo_files):
    fake_hub_server.add_repo(REPO, repo_files, sha=SHA)
    return fake_hub_server


class Progress:
    def __init__(self, cancel_when=None):
        self.calls: list[tuple[int, int, str]] = []
        self.cancel_when = cancel_when
        self.token = CancelToken()

    def __call__(self, done: int, total: int, current: str) -> None:
        self.calls.append((done, total, current))
        if self.cancel_when is not None and self.cancel_when(done, total, current):
            self.token.cancel()


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------------------- tests

def test_download_fetches_only_the_needed_files_with_progress(fake_hub, hf_cache, repo_files):
    progress = Progress()
    folder = hub.resolve(REPO, progress=progress, offline=False)

    # A snapshot folder of the Hugging Face cache, for the commit the model info named.
    assert folder.is_relative_to(hf_cache) and folder.parent.name == "snapshots" and folder.name == SHA
    assert sorted(p.name for p in folder.iterdir()) == sorted(WANTED)
    for name in WANTED:
        assert (folder / name).read_bytes() == repo_files[name], name

    paths = fake_hub.paths()
    assert paths[0] == f"/api/models/{REPO}"
    assert not [p for p in paths if "flax" in p or "README" in p]
    assert ("GET", f"/lfs/{hashlib.sha256(repo_files['model.safetensors']).hexdigest()}") in fake_hub.requests

    total = sum(len(repo_files[n]) for n in WANTED)
    dones = [d for d, _, _ in progress.calls]
    assert {t for _, t, _ in progress.calls} == {total}
    assert dones == sorted(dones) and dones[-1] == total
    assert len([c for c in progress.calls if c[2] == "model.safetensors"]) > 2  # several chunks, not one jump
    assert progress.calls[-1] == (total, total, "model.safetensors")

    _assert_same_tensors(hub.load_weights(folder), _tensors())


def test_downloaded_model_resolves_from_the_cache_without_the_network(fake_hub):
    folder = hub.resolve(REPO, offline=False)
    before = fake_hub.count()

    assert hub.is_cached(REPO)
    assert hub.resolve(REPO, offline=True) == folder
    assert hub.resolve(REPO, offline=False) == folder  # cached: not even asked online
    assert fake_hub.count() == before
    _assert_same_tensors(hub.load_weights(folder), _tensors())


def test_cancel_from_progress_stops_the_download_and_a_later_resolve_completes(fake_hub, hf_cache, repo_files):
    side = len(repo_files["config.json"]) + len(repo_files["preprocessor_config.json"])
    progress = Progress(cancel_when=lambda done, total, current: current == "model.safetensors" and done > side)

    with pytest.raises(Cancelled):
        hub.resolve(REPO, progress=progress, cancel=progress.token, offline=False)

    done, total, current = progress.calls[-1]
    assert current == "model.safetensors" and side < done < total  # stopped in the middle of the weights
    assert not hub.is_cached(REPO)
    with pytest.raises(ModelNotAvailable):
        hub.resolve(REPO, offline=True)
    leftovers = [p.name for p in hf_cache.rglob("*") if p.name.endswith(".incomplete")]
    assert leftovers == []

    folder = hub.resolve(REPO, progress=Progress(), offline=False)
    _assert_same_tensors(hub.load_weights(folder), _tensors())
    assert hub.is_cached(REPO)


def test_retry_after_cancel_counts_the_files_already_cached(fake_hub, repo_files):
    """The side files finished before the cancel are in the cache and send no bytes on the retry: its
    progress must still count them and end at the total (or the dialog stops short of it)."""
    side = len(repo_files["config.json"]) + len(repo_files["preprocessor_config.json"])
    first = Progress(cancel_when=lambda done, total, current: current == "model.safetensors" and done > side)
    with pytest.raises(Cancelled):
        hub.resolve(REPO, progress=first, cancel=first.token, offline=False)

    retry = Progress()
    hub.resolve(REPO, progress=retry, offline=False)
    total = sum(len(repo_files[n]) for n in WANTED)
    dones = [d for d, _, _ in retry.calls]
    assert dones == sorted(dones) and retry.calls[-1] == (total, total, "model.safetensors")
    assert [d for d, _, c in retry.calls if c == "model.safetensors"][0] > side  # counted from the side files on
    assert max(dones) == total


def test_unknown_repo_is_model_not_available_and_not_a_network_problem(fake_hub, hf_cache):
    with pytest.raises(ModelNotAvailable) as err:
        hub.resolve("acme/no-such-model", offline=False)
    msg = str(err.value)
    assert "There is no model 'acme/no-such-model' on the Hugging Face Hub" in msg
    assert "spelling" in msg and "reach" not in msg
    assert fake_hub.paths() == ["/api/models/acme/no-such-model"]
    assert not hub.is_cached("acme/no-such-model")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_down_is_model_not_available_promptly(hf_cache, monkeypatch):
    point_hub_at(monkeypatch, f"http://127.0.0.1:{_closed_port()}")
    start = time.monotonic()
    with pytest.raises(ModelNotAvailable) as err:
        hub.resolve(REPO, offline=False)
    assert time.monotonic() - start < 3
    assert REPO in str(err.value) and "python main.py download" in str(err.value)


def test_hub_that_never_answers_is_model_not_available_after_the_timeout(hf_cache, monkeypatch):
    """A server that accepts the connection and then says nothing (a stalled proxy, a captive portal)."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # the kernel completes the handshake; nobody ever reads or answers
        point_hub_at(monkeypatch, f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        with pytest.raises(ModelNotAvailable) as err:
            hub.resolve(REPO, offline=False)
        assert time.monotonic() - start < 5
    assert REPO in str(err.value)
