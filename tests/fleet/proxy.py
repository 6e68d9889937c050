"""A tiny TCP proxy for mirror tests: forwards each connection to a server, records the request
heads it saw, and can cut one answer off after a number of bytes (a transfer broken half-way)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class CuttingProxy:
    target: tuple[str, int]
    cut_path: str = ""  # the first request whose path starts with this is cut...
    cut_after: int = 0  # ...after this many bytes of its answer (head and body)
    requests: list[str] = field(default_factory=list)  # each request's head, as text
    answered: list[int] = field(default_factory=list)  # bytes of each answer passed on
    _cut_done: bool = False

    def handle(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.target) as server:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            text = head.split(b"\r\n\r\n")[0].decode("latin-1")
            self.requests.append(text)
            path = text.split(" ")[1] if " " in text else ""
            cut = bool(self.cut_path) and path.startswith(self.cut_path) and not self._cut_done
            self._cut_done = self._cut_done or cut
            server.sendall(head)  # GET requests: the head is the whole request
            passed = 0
            while True:
                data = server.recv(65536)
                if not data:
                    break
                if cut and passed + len(data) >= self.cut_after:
                    client.sendall(data[: self.cut_after - passed])
                    passed = self.cut_after
                    break  # drop the connection mid-answer
                client.sendall(data)
                passed += len(data)
            self.answered.append(passed)


@contextmanager
def proxy_to(proxy: CuttingProxy) -> Iterator[str]:
    """Run `proxy` on a free loopback port; yields its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=proxy.handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        thread.join(5)
        listener.close()
