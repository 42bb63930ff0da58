"""Who holds a TCP port on this host: the uids of its listening sockets, from ``/proc/net/tcp{,6}``.

Linux alone. Both the broker (a port already taken at start) and the library's container reader
(a loopback endpoint held by another user than the token file's owner) ask. ``None`` means "cannot
tell" (not Linux, /proc unreadable): callers skip their check then.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

__all__ = ["listener_uids"]

_LISTEN = "0A"
_TABLES = (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6))


def _address(
    hex_address: str, family: socket.AddressFamily
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # The kernel prints each 32-bit word of the address in host byte order.
    raw = b"".join(
        int(hex_address[i : i + 8], 16).to_bytes(4, sys.byteorder)
        for i in range(0, len(hex_address), 8)
    )
    return ipaddress.ip_address(socket.inet_ntop(family, raw))


def _reaches(bound: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str) -> bool:
    """Whether a connection to ``host`` could land on a socket bound to ``bound``."""
    if bound.is_unspecified:
        return True
    if isinstance(bound, ipaddress.IPv6Address) and bound.ipv4_mapped is not None:
        bound = bound.ipv4_mapped
    return bound == ipaddress.ip_address(host)


def listener_uids(host: str, port: int) -> set[int] | None:
    """The uids of the sockets listening where a connection to ``host``:``port`` could land.

    An empty set: no one listens there. None: this host cannot tell (no ``/proc/net/tcp``).
    """
    uids: set[int] = set()
    read_any = False
    for path, family in _TABLES:
        try:
            with open(path, encoding="ascii") as table:
                lines = table.readlines()[1:]
        except OSError:
            continue
        read_any = True
        for line in lines:
            fields = line.split()
            if len(fields) < 8 or fields[3] != _LISTEN:
                continue
            hex_address, _, hex_port = fields[1].partition(":")
            try:
                if int(hex_port, 16) == port and _reaches(_address(hex_address, family), host):
                    uids.add(int(fields[7]))
            except ValueError:
                continue
    return uids if read_any else None
