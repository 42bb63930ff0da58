"""A network guard for tests: nothing may leave loopback.

``block_non_loopback()`` patches the socket layer for the duration of a ``with`` block. Every
``connect``, ``connect_ex``, ``sendto`` and ``sendmsg`` on an IPv4/IPv6 socket checks its address
*before* the real call, so a blocked attempt never puts a packet on the wire: a SYN to
169.254.169.254 is exactly what the guard exists to prevent. Name lookups (``getaddrinfo`` and the
``gethostby*`` family) are blocked too unless the name is an IP literal or ``localhost``, because
resolving a real name sends a DNS query off the host.

A blocked attempt raises ``NonLoopbackConnectionError`` *and* is recorded on the guard, so a
fixture can fail the test even when the code under test swallowed the exception (botocore's IMDS
fetcher, for one, catches almost everything).

Guards nest: an inner guard wraps whatever the outer one installed and restores it on exit. A
blocked attempt is recorded by the innermost guard only, which is the one that raised.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["BlockedAttempt", "NetworkGuard", "NonLoopbackConnectionError", "block_non_loopback"]

_LOCALHOST_NAMES = frozenset({"localhost", "localhost."})
_IP_FAMILIES = frozenset({socket.AF_INET, socket.AF_INET6})
_MISSING = object()


class NonLoopbackConnectionError(RuntimeError):
    """A test tried to reach, or resolve, an address that is not loopback."""

    def __init__(self, operation: str, address: str) -> None:
        self.operation = operation
        self.address = address
        super().__init__(
            f"network guard: {operation} to {address} blocked before any packet was sent; tests "
            "may only reach loopback (127.0.0.0/8, ::1). Point the code at a FakeIMDS or moto "
            "server on 127.0.0.1 (e.g. AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT)."
        )


@dataclass(frozen=True)
class BlockedAttempt:
    """One attempt the guard stopped: the socket operation and the address, rendered."""

    operation: str
    address: str

    def __str__(self) -> str:
        return f"{self.operation} {self.address}"


class NetworkGuard:
    """What ``block_non_loopback()`` yields: the attempts it blocked so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocked: list[BlockedAttempt] = []

    @property
    def blocked(self) -> list[BlockedAttempt]:
        """Every blocked attempt, oldest first (a copy; safe to read from any thread)."""
        with self._lock:
            return list(self._blocked)

    def _block(self, operation: str, address: str) -> NonLoopbackConnectionError:
        with self._lock:
            self._blocked.append(BlockedAttempt(operation, address))
        return NonLoopbackConnectionError(operation, address)


def is_loopback_host(host: object) -> bool:
    """True for an IP literal in 127.0.0.0/8 or ::1 (IPv4-mapped and scoped forms too), or localhost."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in _LOCALHOST_NAMES:
        return True
    ip = _ip_literal(host)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        # A scope ("fe80::1%eth0") does not change where the packet goes; drop it for the check.
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _render(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return repr(address)


def _address_allowed(family: int, address: object) -> bool:
    # Only IP sockets carry traffic off the host; AF_UNIX paths, netlink and friends stay local.
    if family not in _IP_FAMILIES:
        return True
    return isinstance(address, tuple) and len(address) >= 2 and is_loopback_host(address[0])


def _name_allowed(host: object) -> bool:
    # Resolving an IP literal or localhost asks no DNS server; the connect that follows is checked.
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return isinstance(host, str) and (
        host.lower() in _LOCALHOST_NAMES or _ip_literal(host) is not None
    )


def _socket_wrappers(
    guard: NetworkGuard, originals: dict[str, Any]
) -> dict[str, Callable[..., Any]]:
    def check(sock: socket.socket, operation: str, address: object) -> None:
        if not _address_allowed(sock.family, address):
            raise guard._block(operation, _render(address))

    def check_connect(sock: socket.socket, operation: str, address: object) -> None:
        try:
            check(sock, operation, address)
        except NonLoopbackConnectionError:
            # Callers close a socket whose connect raised OSError, not this error (urllib3 is
            # one); close it here, or its ResourceWarning buries the real failure in noise.
            sock.close()
            raise

    def connect(sock: socket.socket, address: Any) -> None:
        check_connect(sock, "connect", address)
        originals["connect"](sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check_connect(sock, "connect_ex", address)
        result: int = originals["connect_ex"](sock, address)
        return result

    def sendto(sock: socket.socket, data: Any, *args: Any) -> int:
        # sendto(data, address) or sendto(data, flags, address): the address is always last.
        if args:
            check(sock, "sendto", args[-1])
        result: int = originals["sendto"](sock, data, *args)
        return result

    def sendmsg(sock: socket.socket, buffers: Any, *args: Any) -> int:
        # sendmsg(buffers, ancdata, flags, address): a fourth positional argument is the address.
        if len(args) >= 3 and args[2] is not None:
            check(sock, "sendmsg", args[2])
        result: int = originals["sendmsg"](sock, buffers, *args)
        return result

    return {"connect": connect, "connect_ex": connect_ex, "sendto": sendto, "sendmsg": sendmsg}


def _resolver_wrappers(
    guard: NetworkGuard, originals: dict[str, Any]
) -> dict[str, Callable[..., Any]]:
    def resolver(name: str, allowed: Callable[[object], bool]) -> Callable[..., Any]:
        original = originals[name]

        def wrapper(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not allowed(host):
                raise guard._block(name, repr(host))
            return original(host, *args, **kwargs)

        wrapper.__name__ = name
        return wrapper

    return {
        "getaddrinfo": resolver("getaddrinfo", _name_allowed),
        "gethostbyname": resolver("gethostbyname", _name_allowed),
        "gethostbyname_ex": resolver("gethostbyname_ex", _name_allowed),
        # A reverse lookup of anything but loopback is a PTR query to a DNS server.
        "gethostbyaddr": resolver("gethostbyaddr", is_loopback_host),
    }


@contextmanager
def block_non_loopback() -> Iterator[NetworkGuard]:
    """Within the block, any attempt to reach or resolve a non-loopback address raises.

    Yields a ``NetworkGuard`` whose ``blocked`` list records each attempt, caught or not. The patch
    is process-wide (every thread), and undone on exit.
    """
    guard = NetworkGuard()
    method_names = ("connect", "connect_ex", "sendto", "sendmsg")
    function_names = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr")
    # What socket.socket's own __dict__ held, so that exit restores inheritance from _socket.socket
    # exactly (an outer guard's wrapper, or nothing).
    saved_methods = {name: socket.socket.__dict__.get(name, _MISSING) for name in method_names}
    method_originals = {name: getattr(socket.socket, name) for name in method_names}
    function_originals = {name: getattr(socket, name) for name in function_names}

    for name, wrapper in _socket_wrappers(guard, method_originals).items():
        setattr(socket.socket, name, wrapper)
    for name, wrapper in _resolver_wrappers(guard, function_originals).items():
        setattr(socket, name, wrapper)
    try:
        yield guard
    finally:
        for name, saved in saved_methods.items():
            if saved is _MISSING:
                delattr(socket.socket, name)
            else:
                setattr(socket.socket, name, saved)
        for name, original in function_originals.items():
            setattr(socket, name, original)
