"""The suite's network block itself: connections off this machine are refused and reported, in this
process and in the processes tests start; loopback (the fake model hub) and Unix sockets still work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _take_log() -> str:
    log = Path(os.environ["VERBATIM_TEST_NETLOG"])
    text = log.read_text()
    log.write_text("")  # these attempts were made on purpose
    return text


def test_a_connection_off_the_machine_is_refused_and_reported():
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    with pytest.raises(OSError):
        socket.getaddrinfo("huggingface.co", 443)
    log = _take_log()
    assert "192.0.2.1" in log and "huggingface.co" in log


def test_a_subprocess_is_blocked_too():
    code = "import socket; socket.create_connection(('192.0.2.1', 443), timeout=1)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "blocked" in result.stderr
    assert "192.0.2.1" in _take_log()


def test_loopback_and_unix_sockets_still_work():
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname(), timeout=5)
    client.close()
    server.close()
    left, right = socket.socketpair()
    left.close()
    right.close()
    assert _take_log() == ""
