"""Publisher keys: this box's Ed25519 key pair and the public keys it trusts.

Everything lives in `<data dir>/keys/`: `private.key` (PEM PKCS#8, mode 0600) and
`trusted.txt`, one public key line per trusted publisher. A public key line is what a person
copies from one box to another: `modeldepot-ed25519 <base64 of the 32 raw bytes> <name>`.
A key's id, which a bundle's manifest names, is the first 16 hex digits of the sha256 of its raw
bytes. Files are replaced atomically (temp file, fsync, rename, fsync dir), so a crash leaves
the old list or the new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.atomic import fsync_dir
from app.config import Paths
from app.errors import BadRequest, Conflict, NotFound
from app.store.names import check_name

# cryptography (about 7.5 MB resident) loads on the first signature made or checked, not when
# the registry starts: most boxes never export or import a bundle.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KIND = "modeldepot-ed25519"
PRIVATE_FILE = "private.key"
TRUSTED_FILE = "trusted.txt"
_LINE = re.compile(rf"{KIND} ([A-Za-z0-9+/]{{43}}=) (\S+)")
SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class PublicKey:
    name: str
    raw: bytes  # the 32 bytes of the Ed25519 public key

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:16]

    @property
    def line(self) -> str:
        return f"{KIND} {base64.b64encode(self.raw).decode()} {self.name}"

    def verify(self, signature: bytes, data: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "id": self.key_id, "key": self.line}


def keys_dir(paths: Paths) -> Path:
    return paths.home / "keys"


def parse_line(text: str, name: str | None = None) -> PublicKey:
    """A pasted public key line; `name` replaces the name it carries (`keys trust --name`)."""
    stripped = " ".join(text.split())
    match = _LINE.fullmatch(stripped) or _LINE.fullmatch(f"{stripped} unnamed")
    if match is None:
        raise BadRequest(
            f"Not a public key line: expected '{KIND} <base64 key> <name>', as "
            "`modeldepot keys show` prints it.", code="invalid_key")
    try:
        raw = base64.b64decode(match.group(1), validate=True)
    except binascii.Error as exc:
        raise BadRequest("The public key is not valid base64.", code="invalid_key") from exc
    if len(raw) != 32:
        raise BadRequest("An Ed25519 public key has 32 bytes.", code="invalid_key")
    return PublicKey(check_name(name or match.group(2), "key name"), raw)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


# -- this box's key -------------------------------------------------------------------------


def default_key_name() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:100].strip("-.") or "box"
    return host if host[0].isalnum() else f"box-{host}"


def create_key(paths: Paths, name: str | None = None) -> PublicKey:
    """Make this box's key pair; refuses to replace one (bundles signed with it would no longer
    match what other boxes trust)."""
    key_name = check_name(name or default_key_name(), "key name")
    path = keys_dir(paths) / PRIVATE_FILE
    if path.exists():
        raise Conflict("This box already has a key; `modeldepot keys show` prints it.",
                       code="key_exists")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    comment = f"# {key_name}\n".encode()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_atomic(path, comment + pem, 0o600)
    return _public(private, key_name)


def _public(private: Ed25519PrivateKey, name: str) -> PublicKey:
    from cryptography.hazmat.primitives import serialization

    raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    return PublicKey(name, raw)


def load_private(paths: Paths) -> tuple[Ed25519PrivateKey, PublicKey] | None:
    """This box's key pair, or None when it has none yet."""
    try:
        text = (keys_dir(paths) / PRIVATE_FILE).read_bytes()
    except FileNotFoundError:
        return None
    first, _, pem = text.partition(b"\n")
    name = first.decode("ascii", "replace").removeprefix("# ").strip() or default_key_name()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise BadRequest("The private key in the data dir is not an Ed25519 key.")
    return private, _public(private, name)


def own_key(paths: Paths) -> PublicKey | None:
    pair = load_private(paths)
    return pair[1] if pair is not None else None


# -- trusted publishers ---------------------------------------------------------------------


def trusted_keys(paths: Paths) -> list[PublicKey]:
    try:
        text = (keys_dir(paths) / TRUSTED_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [parse_line(line) for line in text.splitlines() if line.strip()]


def trusted_by_id(paths: Paths, key_id: str) -> PublicKey | None:
    return next((k for k in trusted_keys(paths) if k.key_id == key_id), None)


def trust_key(paths: Paths, line: str, name: str | None = None) -> PublicKey:
    key = parse_line(line, name)
    keys = trusted_keys(paths)
    for known in keys:
        if known.name == key.name and known.raw != key.raw:
            raise Conflict(f"A different key is already trusted as {key.name!r}; remove it "
                           "first (`modeldepot keys rm`).", code="key_exists")
        if known.raw == key.raw and known.name != key.name:
            raise Conflict(f"This key is already trusted as {known.name!r}.", code="key_exists")
    if key not in keys:
        _save_trusted(paths, [*keys, key])
    return key


def trusted_key(paths: Paths, name: str) -> PublicKey:
    key = next((k for k in trusted_keys(paths) if k.name == name), None)
    if key is None:
        raise NotFound(f"No trusted key named {check_name(name, 'key name')!r}.")
    return key


def untrust_key(paths: Paths, name: str) -> PublicKey:
    gone = trusted_key(paths, name)
    _save_trusted(paths, [k for k in trusted_keys(paths) if k != gone])
    return gone


def _save_trusted(paths: Paths, keys: list[PublicKey]) -> None:
    text = "".join(f"{k.line}\n" for k in keys)
    _write_atomic(keys_dir(paths) / TRUSTED_FILE, text.encode(), 0o644)
