"""A fake Hugging Face hub on 127.0.0.1 serving tiny model repos, so download tests never touch the internet.

It answers the two requests a model download makes:
- GET /api/models/<repo>[/revision/<rev>]?blobs=True   the file listing with sizes (and LFS sha256 for model.bin)
- GET|HEAD /<repo>/resolve/<rev>/<file>               the file, with ETag, X-Repo-Commit, Content-Length, Range
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_FILES = ("model.bin",)


def fake_model_files(model_bytes: int = 300_000) -> dict[str, bytes]:
    return {
        "config.json": json.dumps({"architectures": ["WhisperForConditionalGeneration"]}).encode(),
        "model.bin": os.urandom(model_bytes),
        "tokenizer.json": json.dumps({"model": {"vocab": {"a": 0}}}).encode(),
        "vocabulary.txt": b"a\nb\nc\n",
        "README.md": b"# not a model file: must not be downloaded\n",
    }


class FakeHub:
    """Serve `repos` ({repo_id: {filename: bytes}}) until stop(). Use as a context manager.

    Pacing: model.bin is sent in `piece_bytes` pieces with `piece_delay_s` between them (a slow link), and
    `model_bin_streaming` is set once its first piece is out, so a test can act mid-download."""

    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.piece_bytes = 16 * 1024
        self.piece_delay_s = 0.0
        self.model_bin_streaming = threading.Event()
        self.requests: list[tuple[str, str]] = []
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-hub", daemon=True
        )

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends any paced response at once
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pause(self) -> bool:
        """Wait between model.bin pieces; False once the hub is stopping."""
        return not self._stopping.wait(self.piece_delay_s)


_LISTING = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?")
_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def hub(self) -> FakeHub:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _serve(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        self.hub.requests.append((self.command, path))
        if match := _LISTING.fullmatch(path):
            self._listing(match["repo"], send_body)
        elif match := _RESOLVE.fullmatch(path):
            self._file(match["repo"], match["file"], send_body)
        else:
            self._error(404, "EntryNotFound", f"no route for {path}", send_body)

    def _error(self, status: int, code: str, message: str, send_body: bool) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _listing(self, repo: str, send_body: bool) -> None:
        files = self.hub.repos.get(repo)
        if files is None:
            self._error(404, "RepoNotFound", f"Repository Not Found: {repo}", send_body)
            return
        siblings = []
        for name, data in files.items():
            sibling = {"rfilename": name, "size": len(data), "blobId": hashlib.sha1(data).hexdigest()}
            if name in LFS_FILES:
                sibling["lfs"] = {
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "pointerSize": 134,
                }
            siblings.append(sibling)
        body = json.dumps({"id": repo, "modelId": repo, "sha": COMMIT, "siblings": siblings}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _file(self, repo: str, name: str, send_body: bool) -> None:
        data = self.hub.repos.get(repo, {}).get(name)
        if data is None:
            self._error(404, "EntryNotFound", f"{name} not found in {repo}", send_body)
            return
        start = 0
        if match := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "")):
            start = int(match[1])
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not send_body:
            return
        if name != "model.bin":
            self.wfile.write(body)
            return
        try:
            for offset in range(0, len(body), self.hub.piece_bytes):
                self.wfile.write(body[offset : offset + self.hub.piece_bytes])
                self.wfile.flush()
                self.hub.model_bin_streaming.set()
                if not self.hub.pause():
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client cancelled
        self.close_connection = True
