"""Helpers shared by the archive-source tests."""

import socket
import threading


class FakeClock:
    """A clock that only moves when something sleeps on it."""

    def __init__(self, now: float = 1000.0):
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RawServer:
    """A TCP server on 127.0.0.1 for what werkzeug will not send: silence, a cut-short body."""

    def __init__(self, reply: bytes | None):
        self.reply = reply  # None: accept, read the request, never answer
        self.connections = 0
        self.requests: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/"

    def _serve(self) -> None:
        held = []
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.settimeout(1.0)
            self.requests.append(conn.recv(65536))
            if self.reply is None:
                held.append(conn)
            else:
                conn.sendall(self.reply)
                conn.close()
        for conn in held:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()
