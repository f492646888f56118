"""One window per library: a second `verbatim [FILE ...]` on the same VERBATIM_HOME hands its files to the
window already open (over a local socket) and leaves, instead of loading a second model that writes the same
library.

The socket's name comes from the library folder's resolved path, so two libraries are two apps. Its file
(Unix) is the user's alone. A crashed app leaves that file behind: nobody answers on it, and the next app
removes it and listens there itself.

Protocol: the newcomer sends one line of JSON, `{"files": [absolute paths]}`, and the window answers one
line, `ok`, once the files are queued; so the newcomer exits only after its files are safe in the library.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from desktop.workers.signals import emit

log = logging.getLogger(__name__)

# How long a newcomer waits for the open window to connect and to answer. The window can be slow to answer
# for a moment (its worker thread importing the model holds the interpreter), never for this long.
CONNECT_TIMEOUT_MS = 2_000
ANSWER_TIMEOUT_MS = 15_000
_WAIT_SLICE_MS = 20
_OK = b"ok"
_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class HandOverFailed(Exception):
    """An app is listening for this library but did not take the files."""


@dataclass(frozen=True)
class HandOver:
    """What a newcomer passes to the open window: the files it was started with, as absolute paths."""

    files: tuple[str, ...]

    def encode(self) -> bytes:
        return json.dumps({"files": list(self.files)}).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> HandOver:
        message = json.loads(line.decode())
        files = message.get("files") if isinstance(message, dict) else None
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise ValueError("expected {\"files\": [paths]}")
        return cls(tuple(files))


def server_name(home: Path) -> str:
    """The socket's name for the library in `home`: the same for every spelling of the folder's path."""
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:24]
    return f"verbatim-{digest}"


def hand_over(name: str, files: Sequence[str], *, connect_timeout_ms: int = CONNECT_TIMEOUT_MS,
              answer_timeout_ms: int = ANSWER_TIMEOUT_MS) -> bool:
    """Give `files` to the app listening on `name`. False when no app listens there (nothing is running, or
    only a crashed one's socket file is left); raises HandOverFailed when one listens but does not take them."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(connect_timeout_ms):
        return False
    message = HandOver(tuple(os.path.abspath(f) for f in files)).encode()
    socket.write(message)
    if not socket.waitForBytesWritten(answer_timeout_ms):
        socket.abort()
        raise HandOverFailed(f"could not send the files: {socket.errorString()}")
    answer = b""
    deadline_s = time.monotonic() + answer_timeout_ms / 1000
    while b"\n" not in answer:
        # In short waits: PySide holds the interpreter while it waits, and the answering end may be a
        # thread of this process (the tests).
        socket.waitForReadyRead(_WAIT_SLICE_MS)
        answer += bytes(socket.readAll().data())
        if b"\n" in answer:
            break
        if time.monotonic() > deadline_s or socket.state() == QLocalSocket.LocalSocketState.UnconnectedState:
            socket.abort()
            raise HandOverFailed("Verbatim is open but did not answer")
    socket.disconnectFromServer()
    if answer.strip() != _OK:
        raise HandOverFailed(answer.decode(errors="replace").strip() or "refused")
    return True


def _answers(name: str, timeout_ms: int = 500) -> bool:
    """Whether an app listens on `name` (a connection that sends nothing is only counted)."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    connected = socket.waitForConnected(timeout_ms)
    socket.abort()
    return connected


class InstanceServer(QObject):
    """The open app's end: listens on `name` and emits `files_received` (a HandOver) for each newcomer.
    Lives in the GUI thread."""

    files_received = Signal(object)  # HandOver

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        # Not UserAccessOption: with it Qt 6 binds elsewhere and renames the socket over the name, so
        # listen() takes the name even from an app that is listening on it. The file is made private below.
        self._server = QLocalServer(self)
        self._server.newConnection.connect(self._accept)
        self._buffers: dict[QLocalSocket, bytes] = {}

    def listen(self) -> bool:
        """Listen, replacing a crashed app's socket file; False when another app took the name first."""
        if self._listen():
            return True
        if _answers(self.name):
            return False  # an app started at the same moment got there first
        # Nobody answers on the name: a socket file left by an app that crashed.
        log.info("removing the stale socket %s", self.name)
        QLocalServer.removeServer(self.name)
        if self._listen():
            return True
        log.warning("cannot listen for other launches on %s: %s", self.name, self._server.errorString())
        return False

    def _listen(self) -> bool:
        if not self._server.listen(self.name):
            return False
        path = self._server.fullServerName()
        if os.name == "posix" and os.path.exists(path):
            # The user's alone: another account must not queue files into this library. (Made with the
            # usual umask, others could not connect before this either: connecting needs write permission.)
            os.chmod(path, 0o600)
        return True

    def full_name(self) -> str:
        return self._server.fullServerName()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            connection = self._server.nextPendingConnection()
            self._buffers[connection] = b""
            connection.readyRead.connect(lambda c=connection: self._read(c))
            connection.disconnected.connect(lambda c=connection: self._forget(c))
            if connection.bytesAvailable():
                self._read(connection)

    def _read(self, connection: QLocalSocket) -> None:
        if connection not in self._buffers:
            return
        buffer = self._buffers[connection] + bytes(connection.readAll().data())
        self._buffers[connection] = buffer
        if b"\n" not in buffer:
            if len(buffer) > _MAX_MESSAGE_BYTES:
                self._answer(connection, b"message too long")
            return
        line = buffer.split(b"\n", 1)[0]
        try:
            handover = HandOver.decode(line)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            self._answer(connection, f"not understood: {exc}".encode())
            return
        try:
            emit(self.files_received, handover)
        finally:
            self._answer(connection, _OK)

    def _answer(self, connection: QLocalSocket, answer: bytes) -> None:
        self._buffers.pop(connection, None)
        connection.write(answer + b"\n")
        connection.flush()
        connection.disconnectFromServer()

    def _forget(self, connection: QLocalSocket) -> None:
        self._buffers.pop(connection, None)
        connection.deleteLater()


def claim(home: Path, files: Sequence[str]) -> InstanceServer | None:
    """Become the app for the library in `home`, or hand `files` to the one already open.

    Returns the server to keep for the app's life, or None when an open app took the files (the caller
    exits). Raises HandOverFailed when an open app did not answer."""
    name = server_name(home)
    if hand_over(name, files):
        log.info("Verbatim is already open for %s; handed it %d file(s)", home, len(files))
        return None
    server = InstanceServer(name)
    if not server.listen():
        # Another app started at the same moment and listens now: it gets the files.
        if hand_over(name, files):
            return None
        log.warning("going on without answering other launches")
    return server
