"""The command-line client turns a server that breaks off its answer into one clear error."""

from __future__ import annotations

import socket
import threading

import pytest

from app.client import Client, ClientError


def _half_answer(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 687\r\n\r\n{\"model\": ")  # then the server dies


def test_an_answer_cut_short_is_a_client_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        server = threading.Thread(target=_half_answer, args=(listener,))
        server.start()
        port = listener.getsockname()[1]
        with pytest.raises(ClientError, match="broke off its answer"):
            Client(f"http://127.0.0.1:{port}", "t" * 32, timeout=10).request("GET", "/x")
        server.join(10)


def test_nobody_listening_is_a_client_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(ClientError, match="Could not reach ModelDepot"):
            Client(f"http://127.0.0.1:{port}", None, timeout=10).request("GET", "/x")
