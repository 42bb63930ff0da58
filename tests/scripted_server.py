"""Small scripted HTTP servers on loopback, for what FakeIMDS does not play: answers that trickle.

``TrickleServer`` reads each request and answers it with a fixed response, sending the bytes of its
chosen part one at a time with a pause between them, as a hostile or broken intermediary might.
``CountingListener`` only counts the connections made to it (a proxy that must never be used).
"""

from __future__ import annotations

import socket
import threading
import time

from typing_extensions import Self


def http_response(status: int, body: bytes, *, reason: str = "OK") -> tuple[bytes, bytes]:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


class _Listener:
    """A loopback listener whose accept loop hands each connection to ``_handle``."""

    def __init__(self) -> None:
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    endpoint = url

    def __enter__(self) -> Self:
        self._threads[0].start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        conn.close()


class TrickleServer(_Listener):
    """Answers every request with ``head`` + ``body``; the part named by ``trickle`` byte by byte."""

    def __init__(self, head: bytes, body: bytes, *, delay: float, trickle: str = "head") -> None:
        if trickle not in ("head", "body"):
            raise ValueError(f"trickle must be 'head' or 'body', not {trickle!r}")
        super().__init__()
        self.head, self.body, self.delay, self.trickle = head, body, delay, trickle

    def _handle(self, conn: socket.socket) -> None:
        thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                slow = self.head if self.trickle == "head" else self.body
                if self.trickle == "body":
                    conn.sendall(self.head)
                for index in range(len(slow)):
                    if self._stop.wait(self.delay):
                        return
                    conn.sendall(slow[index : index + 1])
                if self.trickle == "head":
                    conn.sendall(self.body)
            except OSError:  # the client gave up and closed: what the test wants to see
                return


class CountingListener(_Listener):
    """Accepts connections, counts them, closes them (a proxy that must never be used)."""


def elapsed(start: float) -> float:
    return time.monotonic() - start
