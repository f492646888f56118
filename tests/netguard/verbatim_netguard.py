"""Blocks every network connection and every name lookup except of this machine, in the test process and
(through sitecustomize.py beside this file, on PYTHONPATH) in every Python subprocess the tests start.
A lookup alone tells a DNS server what the program is about to contact, so it counts as network use.

Verbatim promises that nothing leaves the machine unless the user downloads a model. Each attempt is
refused and written to the file named by $VERBATIM_TEST_NETLOG, so an attempt that a library swallows
still fails the test that caused it (tests/conftest.py checks the file after every test).

Only Python's socket module is guarded: a C library that resolves or connects by itself (ONNX Runtime's
telemetry did) goes around it. tests/e2e/test_privacy.py catches those by what they leave on disk."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import traceback

_LOCAL_NAMES = {"localhost", "localhost.", "ip6-localhost", "ip6-loopback", ""}


def _is_local(host: object) -> bool:
    """Loopback names and addresses, and the unspecified address (a server binding this machine)."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    text = str(host).strip("[]").lower().split("%", 1)[0]  # an IPv6 zone ("fe80::1%eth0") names no host
    if text in _LOCAL_NAMES or text.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False  # a name: resolving it could ask a DNS server
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    return address.is_loopback or address.is_unspecified


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
    real_gethostbyname = socket.gethostbyname
    real_gethostbyname_ex = socket.gethostbyname_ex
    real_gethostbyaddr = socket.gethostbyaddr
    real_getnameinfo = socket.getnameinfo

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

    def refused_lookup(host: object) -> socket.gaierror:
        _refuse(f"a name lookup of {host!r}")
        return socket.gaierror(socket.EAI_NONAME, "network use is blocked in Verbatim's tests")

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not _is_local(host):
            raise refused_lookup(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host):  # type: ignore[no-untyped-def]
        if not _is_local(host):
            raise refused_lookup(host)
        return real_gethostbyname(host)

    def gethostbyname_ex(host):  # type: ignore[no-untyped-def]
        if not _is_local(host):
            raise refused_lookup(host)
        return real_gethostbyname_ex(host)

    def gethostbyaddr(host):  # type: ignore[no-untyped-def]
        # A reverse lookup (socket.getfqdn() makes one) asks a DNS server about the address.
        if not _is_local(host):
            raise refused_lookup(host)
        return real_gethostbyaddr(host)

    def getnameinfo(sockaddr, flags):  # type: ignore[no-untyped-def]
        host = sockaddr[0] if isinstance(sockaddr, tuple) and sockaddr else sockaddr
        if not _is_local(host):
            raise refused_lookup(host)
        return real_getnameinfo(sockaddr, flags)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.gethostbyaddr = gethostbyaddr
    socket.getnameinfo = getnameinfo
    socket._verbatim_netguard = True  # type: ignore[attr-defined]
