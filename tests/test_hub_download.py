"""engine.hub's real download path (huggingface_hub) against a fake Hub served on 127.0.0.1.

The fake Hub answers what huggingface_hub asks for: ``GET /api/models/{repo}`` (model info with file
sizes), ``HEAD``/``GET /{repo}/resolve/{revision}/{file}`` (commit, ETag and size headers). Like the real
Hub, large (LFS) files are answered with a redirect to a "CDN" on another origin (a second port) that
serves the bytes. No Xet headers are sent, so plain HTTP is used. Every request is recorded, which is
how the tests see what was (not) fetched.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import torch
from safetensors.torch import save as save_safetensors

from engine import hub
from engine.cancel import CancelToken
from engine.errors import Cancelled, ModelNotAvailable

pytestmark = pytest.mark.timeout(30)  # a hang is a failure, not a stuck suite

REPO = "acme/tiny-model"
SHA = "0123456789abcdef0123456789abcdef01234567"  # the repo's one commit (main)
LFS_FILES = {"model.safetensors", "flax_model.msgpack"}  # served through the "CDN" redirect
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


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeHub:
    """A Hub (and its CDN) on two loopback ports, each served by a thread."""

    files: dict[str, bytes]
    repo: str = REPO
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path), both servers
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after teardown

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                with fake._lock:
                    fake.requests.append((self.command, path))
                try:
                    status, headers, payload = (fake._cdn if self.server is fake._cdn_server else fake._hub)(path)
                    self.send_response(status)
                    headers.setdefault("Content-Length", str(len(payload)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if body:
                        view = memoryview(payload)
                        for i in range(0, len(view), 16 * 1024):  # in pieces, like a real stream
                            self.wfile.write(view[i:i + 16 * 1024])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a cancelled download)

        self._hub_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._cdn_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._hub_server.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._cdn_server.server_address[1]}"
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.02},
                                          name=f"fake-hub-{i}", daemon=True)
                         for i, s in enumerate((self._hub_server, self._cdn_server))]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        for s in (self._hub_server, self._cdn_server):
            s.shutdown()
            s.server_close()
        for t in self._threads:
            t.join(timeout=5)
            assert not t.is_alive()

    def paths(self) -> list[str]:
        with self._lock:
            return [p for _, p in self.requests]

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    # ------------------------------------------------------------------ routes

    @staticmethod
    def _json(status: int, obj: object, **headers: str) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json", **headers}, json.dumps(obj).encode()

    def _hub(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/api/models/"):
            repo, _, rev = path[len("/api/models/"):].partition("/revision/")
            if repo != self.repo:
                return self._json(404, {"error": "Repository not found"}, **{"X-Error-Code": "RepoNotFound"})
            if rev and rev not in ("main", SHA):
                return self._json(404, {"error": "Invalid rev id"}, **{"X-Error-Code": "RevisionNotFound"})
            return self._json(200, self._info())
        repo, sep, rest = path.lstrip("/").partition("/resolve/")
        if not sep:
            return self._json(404, {"error": "Not found"})
        if repo != self.repo:
            return self._json(404, {"error": "Repository not found"}, **{"X-Error-Code": "RepoNotFound"})
        rev, _, name = rest.partition("/")
        if rev not in ("main", SHA):
            return self._json(404, {"error": "Invalid rev id"}, **{"X-Error-Code": "RevisionNotFound"})
        if name not in self.files:
            return self._json(404, {"error": "Entry not found"},
                              **{"X-Error-Code": "EntryNotFound", "X-Repo-Commit": SHA})
        data = self.files[name]
        if name in LFS_FILES:  # the real Hub redirects LFS files to a CDN and describes them in headers
            sha256 = hashlib.sha256(data).hexdigest()
            return 302, {"Location": f"{self.cdn_url}/lfs/{sha256}", "X-Repo-Commit": SHA,
                         "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data)),
                         "ETag": f'W/"{_git_blob_sha1(data)}"', "Content-Length": "0"}, b""
        return 200, {"X-Repo-Commit": SHA, "ETag": f'"{_git_blob_sha1(data)}"',
                     "Content-Type": "application/octet-stream"}, data

    def _cdn(self, path: str) -> tuple[int, dict[str, str], bytes]:
        blobs = {hashlib.sha256(d).hexdigest(): d for n, d in self.files.items() if n in LFS_FILES}
        data = blobs.get(path.removeprefix("/lfs/"))
        if data is None:
            return 404, {}, b"NoSuchKey"
        return 200, {"Content-Type": "application/octet-stream"}, data

    def _info(self) -> dict:
        siblings = []
        for name, data in self.files.items():
            s = {"rfilename": name, "size": len(data), "blobId": _git_blob_sha1(data)}
            if name in LFS_FILES:
                s["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
            siblings.append(s)
        return {"_id": "fake", "id": self.repo, "modelId": self.repo, "sha": SHA, "private": False,
                "gated": False, "disabled": False, "tags": [], "siblings": siblings}


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def repo_files() -> dict[str, bytes]:
    return _repo_files()


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache for this test, and huggingface_hub settings restored afterwards."""
    from huggingface_hub import constants
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    # engine.hub._download switches huggingface_hub online; monkeypatch puts "offline" back after the test.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    # Small chunks so the weights arrive in several progress updates (the default is 10 MiB).
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    # Fail fast rather than wait 10 s on a broken test server.
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 5)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 5)
    return cache


def _point_hub_at(monkeypatch, url: str) -> None:
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture
def fake_hub(hf_cache, repo_files, monkeypatch):
    server = FakeHub(dict(repo_files))
    server.start()
    _point_hub_at(monkeypatch, server.url)
    try:
        yield server
    finally:
        server.stop()


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


def test_unknown_repo_is_model_not_available_with_how_to_get_it(fake_hub, hf_cache):
    with pytest.raises(ModelNotAvailable) as err:
        hub.resolve("acme/no-such-model", offline=False)
    msg = str(err.value)
    assert "acme/no-such-model" in msg
    assert "python main.py download acme/no-such-model" in msg
    assert fake_hub.paths() == ["/api/models/acme/no-such-model"]
    assert not hub.is_cached("acme/no-such-model")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_down_is_model_not_available_promptly(hf_cache, monkeypatch):
    _point_hub_at(monkeypatch, f"http://127.0.0.1:{_closed_port()}")
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
        _point_hub_at(monkeypatch, f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        with pytest.raises(ModelNotAvailable) as err:
            hub.resolve(REPO, offline=False)
        assert time.monotonic() - start < 5
    assert REPO in str(err.value)
