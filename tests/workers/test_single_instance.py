"""One app per library: the hand-over between a second launch and the open app, both ends in this process
(the newcomer's end blocks, as it does in its own process, so it runs on a thread here)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QDir

from desktop.workers.single_instance import (
    HandOver,
    HandOverFailed,
    InstanceServer,
    claim,
    hand_over,
    server_name,
)


class Newcomer:
    """Runs a blocking call on a thread and keeps what it returned or raised."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self.done = threading.Event()

        def run() -> None:
            try:
                self.result = call()
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                self.error = exc
            finally:
                self.done.set()

        threading.Thread(target=run, daemon=True).start()


@pytest.fixture
def servers():
    made: list[InstanceServer] = []
    yield made
    for server in made:
        server.close()


def test_the_name_follows_the_resolved_library_folder(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (tmp_path / "link").symlink_to(one)
    assert server_name(one) == server_name(tmp_path / "link") == server_name(tmp_path / "two" / ".." / "one")
    assert server_name(one) != server_name(two)


def test_a_second_launch_hands_absolute_paths_to_the_open_app_and_waits_for_its_answer(qtbot, tmp_path, servers,
                                                                                      monkeypatch):
    open_app = claim(tmp_path, [])
    assert open_app is not None
    servers.append(open_app)
    received: list[HandOver] = []
    open_app.files_received.connect(received.append)

    monkeypatch.chdir(tmp_path)
    newcomer = Newcomer(lambda: claim(tmp_path, ["talk.wav", str(tmp_path / "sub" / "b.mp3")]))
    qtbot.waitUntil(newcomer.done.is_set, timeout=10_000)
    assert newcomer.error is None and newcomer.result is None  # None: handed over, the newcomer exits
    assert received == [HandOver((str(tmp_path / "talk.wav"), str(tmp_path / "sub" / "b.mp3")))]


def test_nobody_listening_is_not_a_hand_over(tmp_path):
    assert hand_over(server_name(tmp_path), ["a.wav"]) is False


def test_a_crashed_apps_socket_file_is_replaced(qtbot, tmp_path, servers, caplog):
    name = server_name(tmp_path)
    path = Path(QDir.tempPath()) / name
    # What a crashed app leaves behind: the socket file, with nobody listening on it.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    assert path.exists()

    with caplog.at_level("INFO", logger="desktop.workers.single_instance"):
        open_app = claim(tmp_path, [])
    assert open_app is not None
    servers.append(open_app)
    assert open_app.full_name() == str(path)
    assert "removing the stale socket" in caplog.text
    received: list[HandOver] = []
    open_app.files_received.connect(received.append)
    newcomer = Newcomer(lambda: hand_over(name, ["/x/y.wav"]))
    qtbot.waitUntil(newcomer.done.is_set, timeout=10_000)
    assert newcomer.result is True and received == [HandOver(("/x/y.wav",))]
    # Only its owner may connect (another account must not queue files into this library).
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)


def test_a_listening_app_keeps_its_name(qtbot, tmp_path, servers):
    """Two apps starting at the same moment: the one that listens second does not take the name from the
    first (it hands its files over instead)."""
    first = InstanceServer(server_name(tmp_path))
    servers.append(first)
    assert first.listen()
    second = InstanceServer(server_name(tmp_path))
    servers.append(second)
    assert not second.listen()
    received: list[HandOver] = []
    first.files_received.connect(received.append)
    newcomer = Newcomer(lambda: hand_over(first.name, ["/a.wav"]))
    qtbot.waitUntil(newcomer.done.is_set, timeout=10_000)
    assert newcomer.result is True and received == [HandOver(("/a.wav",))]


def test_two_libraries_are_two_apps(tmp_path, servers):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for home in (tmp_path / "a", tmp_path / "b"):
        server = claim(home, [])
        assert server is not None
        servers.append(server)


def test_an_app_that_does_not_answer_fails_the_hand_over(qtbot, tmp_path, servers):
    """Connected, but the app's answer never comes: the newcomer says so instead of opening a second window."""
    name = server_name(tmp_path)
    server = InstanceServer(name)
    servers.append(server)
    assert server.listen()
    server._server.newConnection.disconnect()  # it accepts connections (the kernel does) but never reads
    newcomer = Newcomer(lambda: hand_over(name, ["a.wav"], answer_timeout_ms=300))
    qtbot.waitUntil(newcomer.done.is_set, timeout=10_000)
    assert isinstance(newcomer.error, HandOverFailed)


def test_a_message_it_cannot_read_is_refused(qtbot, tmp_path, servers):
    from PySide6.QtNetwork import QLocalSocket

    name = server_name(tmp_path)
    server = InstanceServer(name)
    servers.append(server)
    assert server.listen()
    received: list[HandOver] = []
    server.files_received.connect(received.append)

    def send_garbage() -> bytes:
        raw = QLocalSocket()
        raw.connectToServer(name)
        assert raw.waitForConnected(2000)
        raw.write(b'{"files": "not a list"}\n')
        raw.waitForBytesWritten(2000)
        answer = b""
        for _ in range(500):  # in short waits: PySide holds the interpreter while it waits
            raw.waitForReadyRead(20)
            answer += bytes(raw.readAll().data())
            if answer.endswith(b"\n"):
                break
        return answer

    newcomer = Newcomer(send_garbage)
    qtbot.waitUntil(newcomer.done.is_set, timeout=10_000)
    assert isinstance(newcomer.result, bytes) and newcomer.result.startswith(b"not understood")
    assert received == []
