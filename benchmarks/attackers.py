"""Slow-request attackers on loopback, for the broker's tests and scenario 12.

One thread and one selector hold ``count`` connections to a server on 127.0.0.1: ``trickle``
sends one byte of a request head (never the token, never the end of the head) to each of them
every ``interval`` seconds; ``silent`` sends nothing. A connection the server closes is opened
again at once, so the attacker keeps ``count`` open for as long as it can.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import threading
import time

HEAD = b"GET /credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 4000


class Slowloris:
    """``count`` connections held open by one thread; ``reopened`` counts the server's drops."""

    def __init__(
        self, port: int, count: int, *, mode: str = "trickle", interval: float = 3.0
    ) -> None:
        if mode not in ("trickle", "silent"):
            raise ValueError(f"mode must be trickle or silent, not {mode!r}")
        self.port, self.count, self.mode, self.interval = port, count, mode, interval
        self.reopened = 0
        self.bytes_sent = 0
        self.failed_connects = 0
        self._selector = selectors.DefaultSelector()
        self._sent: dict[socket.socket, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)

    def __enter__(self) -> Slowloris:
        for _ in range(self.count):
            self._open()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in list(self._sent):
            self._close(sock)
        self._selector.close()

    @property
    def open(self) -> int:
        return len(self._sent)

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            self.failed_connects += 1
            sock.close()
            return
        self._sent[sock] = 0
        self._selector.register(sock, selectors.EVENT_READ)

    def _close(self, sock: socket.socket) -> None:
        self._sent.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        sock.close()

    def _run(self) -> None:
        next_byte = time.monotonic() + self.interval
        while not self._stop.is_set():
            timeout = max(0.0, min(0.05, next_byte - time.monotonic()))
            for key, _ in self._selector.select(timeout):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # the server dropped it: open another
                    self._close(sock)
                    self.reopened += 1
                    self._open()
            while len(self._sent) < self.count and not self._stop.is_set():
                before = len(self._sent)
                self._open()
                if len(self._sent) == before:
                    break
            if self.mode == "trickle" and time.monotonic() >= next_byte:
                next_byte = time.monotonic() + self.interval
                for sock, sent in list(self._sent.items()):
                    try:
                        sock.send(HEAD[sent % len(HEAD) : sent % len(HEAD) + 1])
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        if exc.errno not in (errno.ENOTCONN, errno.EAGAIN):
                            self._close(sock)
                            self.reopened += 1
                        continue
                    self._sent[sock] = sent + 1
                    self.bytes_sent += 1


def main(argv: list[str]) -> None:
    """``python -m benchmarks.attackers PORT COUNT MODE INTERVAL``: attack until stdin closes;
    print one JSON line when the connections are open, and one with the counts at the end."""
    import json
    import sys

    port, count, mode, interval = int(argv[0]), int(argv[1]), argv[2], float(argv[3])
    with Slowloris(port, count, mode=mode, interval=interval) as attack:
        print(json.dumps({"open": attack.open}), flush=True)
        sys.stdin.read()
        result = {"reopened": attack.reopened, "bytes_sent": attack.bytes_sent}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
