"""The suite's network block itself: connections off this machine and name lookups are refused and reported,
in this process and in the processes tests start; loopback (the fake model hub) and Unix sockets still work."""

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


@pytest.mark.parametrize(
    ("lookup", "host"),
    [
        (lambda: socket.gethostbyname("huggingface.co"), "huggingface.co"),
        (lambda: socket.gethostbyname_ex("mobile.events.data.microsoft.com"), "mobile.events.data.microsoft.com"),
        (lambda: socket.gethostbyaddr("192.0.2.7"), "192.0.2.7"),
        (lambda: socket.getnameinfo(("192.0.2.8", 443), 0), "192.0.2.8"),
        (lambda: socket.getaddrinfo("example.org", None), "example.org"),
    ],
)
def test_a_name_lookup_is_refused_and_reported(lookup, host):
    # A lookup tells a DNS server whom the program is about to contact, even if no connection follows.
    with pytest.raises(OSError, match="blocked"):
        lookup()
    assert f"name lookup of {host!r}" in _take_log()


def test_a_lookup_a_library_swallows_is_still_reported():
    # getfqdn() falls back to the name it was given when the reverse lookup fails: only the log tells.
    assert socket.getfqdn("example.net") == "example.net"
    assert "name lookup of 'example.net'" in _take_log()


def test_a_name_lookup_in_a_subprocess_is_refused_and_reported():
    code = "import socket; socket.gethostbyname('telemetry.example')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "blocked" in result.stderr
    assert "telemetry.example" in _take_log()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.10", "0.0.0.0"])
def test_loopback_names_and_addresses_still_resolve(host):
    socket.getaddrinfo(host, 80)
    address = socket.gethostbyname_ex(host)[2][0]
    socket.getnameinfo((address, 80), socket.NI_NUMERICHOST)
    assert _take_log() == ""


@pytest.mark.parametrize("host", ["::1", "::ffff:127.0.0.1"])
def test_ipv6_loopback_still_resolves(host):
    socket.getaddrinfo(host, 80)
    socket.getnameinfo((host, 80), socket.NI_NUMERICHOST)
    assert _take_log() == ""
