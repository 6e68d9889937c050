"""Addresses and listening sockets, for every process that serves or probes: the registry, the
inference server, the supervisor, the CLI. Standard library only (the supervisor imports it)."""

from __future__ import annotations

import functools
import ipaddress
import socket

from app.errors import ModelDepotError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class PortInUse(ModelDepotError):
    code = "port_in_use"


def bind_socket(host: str, port: int, setting: str, *, shared: bool = False) -> socket.socket:
    """Bind before anything else starts, so a taken port is one clear error, never a silent move.

    With `shared` (several inference workers on one port), the socket gets SO_REUSEPORT and is
    bound but not listening: the kernel hands connections only to listening sockets, so a worker
    still starting takes none; the server calls listen() once its app has started (asyncio's
    create_server does)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise PortInUse(
            f"Port {port} on {host} is in use ({exc.strerror}). Stop what holds it, or choose "
            f"another port with --{setting.replace('_', '-')} or MODELDEPOT_{setting.upper()}."
        ) from exc
    if not shared:
        sock.listen(1024)
    return sock


def url_host(host: str) -> str:
    """The address to reach a server bound to `host`, as it goes in a URL.

    A server bound to every interface is reached on loopback; an IPv6 literal needs brackets.
    """
    host = host.strip("[]")
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def base_url(host: str, port: int) -> str:
    return f"http://{url_host(host)}:{port}"


@functools.lru_cache(maxsize=256)  # every request's Host header: the same few values
def host_of(value: str) -> str:
    """The host part of a Host header or URL authority, lower-cased, without port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return value  # "[::1]evil.example" is no address: compared whole, it matches none
        return host
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


@functools.lru_cache(maxsize=256)  # every request asks about the same few Host values
def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
