"""A fake Hugging Face Hub on 127.0.0.1 that the REAL huggingface_hub download path talks to.

The fake Hub answers what huggingface_hub asks for: ``GET /api/models/{repo}`` (model info with file
sizes), ``HEAD``/``GET /{repo}/resolve/{revision}/{file}`` (commit, ETag and size headers). Like the real
Hub, large (LFS) files are answered with a redirect to a "CDN" on another origin (a second port) that
serves the bytes. No Xet headers are sent, so plain HTTP is used. Every request is recorded, which is
how the tests see what was (not) fetched.

Any number of repos can be served: ``add_repo(repo_id, {name: bytes})`` or ``add_folder(repo_id, folder)``
(a local checkpoint folder). ``throttle`` slows the file bodies down (a few ms per small piece, in the
server's threads) until ``throttle.release()``, so a download is observably in progress.

Use with the fixtures ``hf_cache`` (an empty cache, huggingface_hub settings restored afterwards) and
``fake_hub_server`` (a started hub that huggingface_hub points at), imported into a test module::

    from tests.fake_hub import fake_hub_server, hf_cache  # noqa: F401 - pytest fixtures
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

#: served through the "CDN" redirect, as the real Hub does for files stored in LFS
LFS_SUFFIXES = (".safetensors", ".bin", ".msgpack", ".h5", ".onnx", ".pt", ".pth", ".ckpt")
PIECE = 16 * 1024  # bodies are written in pieces, like a real stream


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(name: str) -> bool:
    return name.endswith(LFS_SUFFIXES)


@dataclass
class Repo:
    files: dict[str, bytes]
    sha: str  # the repo's one commit (main)


class Throttle:
    """Slows every body down to ``piece`` bytes per ``delay_s`` while engaged; ``release()`` lets the
    rest through at full speed at once (the servers wait on an Event, bounded by ``delay_s``)."""

    def __init__(self) -> None:
        self._released = threading.Event()
        self._released.set()
        self.delay_s = 0.0
        self.piece = PIECE

    def engage(self, delay_s: float = 0.015, piece: int = 8 * 1024) -> None:
        self.delay_s, self.piece = float(delay_s), int(piece)
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    @property
    def engaged(self) -> bool:
        return not self._released.is_set()

    def pieces(self, payload: bytes):
        view = memoryview(payload)
        i = 0
        while i < len(view):
            n = self.piece if self.engaged else PIECE
            if self.engaged:
                self._released.wait(self.delay_s)  # bounded: a few ms, or none once released
            yield view[i:i + n]
            i += n


class FakeHub:
    """A Hub (and its CDN) on two loopback ports, each served by a thread."""

    def __init__(self, files: dict[str, bytes] | None = None, repo: str = "acme/tiny-model",
                 sha: str | None = None) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path), both servers
        self.throttle = Throttle()
        self._lock = threading.Lock()
        self._servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer] | None = None
        if files is not None:
            self.add_repo(repo, files, sha)

    # ------------------------------------------------------------------ content

    def add_repo(self, repo_id: str, files: dict[str, bytes], sha: str | None = None) -> Repo:
        if sha is None:  # a commit id that changes with the content
            h = hashlib.sha1(repo_id.encode())
            for name in sorted(files):
                h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
            sha = h.hexdigest()
        with self._lock:
            self.repos[repo_id] = repo = Repo(dict(files), sha)
        return repo

    def add_folder(self, repo_id: str, folder: str | Path, sha: str | None = None) -> Repo:
        """Serve every file of a local checkpoint folder (not recursive) as ``repo_id``."""
        files = {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}
        return self.add_repo(repo_id, files, sha)

    # ------------------------------------------------------------------ lifetime

    def start(self) -> FakeHub:
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
                    route = fake._cdn if self.server is fake._servers[1] else fake._hub
                    status, headers, payload = route(path)
                    self.send_response(status)
                    headers.setdefault("Content-Length", str(len(payload)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if body:
                        for piece in fake.throttle.pieces(payload):
                            self.wfile.write(piece)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a cancelled download)

        hub = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        cdn = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._servers = (hub, cdn)
        self.url = f"http://127.0.0.1:{hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{cdn.server_address[1]}"
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.02},
                                          name=f"fake-hub-{i}", daemon=True)
                         for i, s in enumerate(self._servers)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        if self._servers is None:
            return
        self.throttle.release()  # a handler still sending finishes at once
        for s in self._servers:
            s.shutdown()
            s.server_close()
        for t in self._threads:
            t.join(timeout=5)
            assert not t.is_alive()
        self._servers = None

    # ------------------------------------------------------------------ what was asked

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

    def _repo(self, repo_id: str) -> Repo | None:
        with self._lock:
            return self.repos.get(repo_id)

    def _hub(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/api/models/"):
            repo_id, _, rev = path[len("/api/models/"):].partition("/revision/")
            repo = self._repo(repo_id)
            if repo is None:
                return self._json(404, {"error": "Repository not found"}, **{"X-Error-Code": "RepoNotFound"})
            if rev and rev not in ("main", repo.sha):
                return self._json(404, {"error": "Invalid rev id"}, **{"X-Error-Code": "RevisionNotFound"})
            return self._json(200, self._info(repo_id, repo))
        repo_id, sep, rest = path.lstrip("/").partition("/resolve/")
        if not sep:
            return self._json(404, {"error": "Not found"})
        repo = self._repo(repo_id)
        if repo is None:
            return self._json(404, {"error": "Repository not found"}, **{"X-Error-Code": "RepoNotFound"})
        rev, _, name = rest.partition("/")
        if rev not in ("main", repo.sha):
            return self._json(404, {"error": "Invalid rev id"}, **{"X-Error-Code": "RevisionNotFound"})
        if name not in repo.files:
            return self._json(404, {"error": "Entry not found"},
                              **{"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.sha})
        data = repo.files[name]
        if is_lfs(name):  # the real Hub redirects LFS files to a CDN and describes them in headers
            sha256 = hashlib.sha256(data).hexdigest()
            return 302, {"Location": f"{self.cdn_url}/lfs/{sha256}", "X-Repo-Commit": repo.sha,
                         "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data)),
                         "ETag": f'W/"{git_blob_sha1(data)}"', "Content-Length": "0"}, b""
        return 200, {"X-Repo-Commit": repo.sha, "ETag": f'"{git_blob_sha1(data)}"',
                     "Content-Type": "application/octet-stream"}, data

    def _cdn(self, path: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            repos = list(self.repos.values())
        blobs = {hashlib.sha256(d).hexdigest(): d for r in repos for n, d in r.files.items() if is_lfs(n)}
        data = blobs.get(path.removeprefix("/lfs/"))
        if data is None:
            return 404, {}, b"NoSuchKey"
        return 200, {"Content-Type": "application/octet-stream"}, data

    @staticmethod
    def _info(repo_id: str, repo: Repo) -> dict:
        siblings = []
        for name, data in repo.files.items():
            s = {"rfilename": name, "size": len(data), "blobId": git_blob_sha1(data)}
            if is_lfs(name):
                s["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
            siblings.append(s)
        return {"_id": "fake", "id": repo_id, "modelId": repo_id, "sha": repo.sha, "private": False,
                "gated": False, "disabled": False, "tags": [], "siblings": siblings}


def point_hub_at(monkeypatch, url: str) -> None:
    """Make huggingface_hub (which read its endpoint at import) talk to ``url``."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


# ---------------------------------------------------------------------------- fixtures

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


@pytest.fixture
def fake_hub_server(hf_cache, monkeypatch):
    """A started FakeHub with no repos yet, which huggingface_hub talks to; stopped afterwards."""
    server = FakeHub().start()
    point_hub_at(monkeypatch, server.url)
    try:
        yield server
    finally:
        server.stop()
