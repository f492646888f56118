"""Blocks every network connection except to this machine, in the test process and (through
sitecustomize.py beside this file, on PYTHONPATH) in every Python subprocess the tests start.

Verbatim promises that nothing leaves the machine unless the user downloads a model. Each attempt is
refused and written to the file named by $VERBATIM_TEST_NETLOG, so an attempt that a library swallows
still fails the test that caused it (tests/conftest.py checks the file after every test)."""

from __future__ import annotations

import errno
import os
import socket
import traceback

_LOCAL_HOSTS = {"localhost", "::1", "::ffff:127.0.0.1", "0.0.0.0", ""}


def _is_local(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    text = str(host).strip("[]").lower()
    return text in _LOCAL_HOSTS or text.startswith("127.")


def _refuse(what: str) -> None:
    log_path = os.environ.get("VERBATIM_TEST_NETLOG")
    if log_path:
        stack = "".join(traceback.format_stack(limit=40)[:-2])
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"blocked {what} (pid {os.getpid()})\n{stack}\n")


def install() -> None:
    if getattr(socket, "_verbatim_netguard", False):
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(sock: socket.socket, address: object) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True  # Unix sockets: PulseAudio, X, D-Bus
        return isinstance(address, tuple) and _is_local(address[0])

    def connect(self: socket.socket, address: object) -> None:
        if not allowed(self, address):
            _refuse(f"a connection to {address!r}")
            raise OSError(errno.ENETUNREACH, "network use is blocked in Verbatim's tests")
        return real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        if not allowed(self, address):
            _refuse(f"a connection to {address!r}")
            return errno.ENETUNREACH
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not _is_local(host):
            _refuse(f"a name lookup of {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, "network use is blocked in Verbatim's tests")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    socket._verbatim_netguard = True  # type: ignore[attr-defined]
