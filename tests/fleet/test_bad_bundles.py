"""Every bad bundle the issue lists: a 4xx JSON error naming the member or field, and the importing
box exactly as it was (no row, no blob, no temp file)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.fleet.manifest import MAX_MANIFEST_BYTES
from tests.fleet.conftest import (
    Box,
    box_settings,
    error_of,
    export,
    make_tar,
    members,
    nothing_written,
    post_bundle,
    publish,
    trust_each_other,
)
from tests.models import write_hostile_pickle
from tests.registry.conftest import AUTH, registry_app

Members = list[tuple[str, bytes]]


@pytest.fixture
def bundle(publisher: Box, tmp_path: Path) -> bytes:
    publish(publisher, tmp_path)
    return export(publisher, "iris", sign=False)


def _blob_names(parts: Members) -> list[str]:
    return [name for name, _ in parts if name.startswith("blobs/")]


def _refuse(importer: Box, data: bytes, status: int, code: str, *named: str,
            query: str = "") -> str:
    got_status, got_code, message = error_of(post_bundle(importer, data, query))
    assert (got_status, got_code) == (status, code), message
    for text in named:
        assert text in message, message
    nothing_written(importer)
    return message


def _manifest(parts: Members) -> dict:
    return json.loads(parts[0][1])


def _with_manifest(parts: Members, change: Callable[[dict], None]) -> Members:
    manifest = _manifest(parts)
    change(manifest)
    return [("manifest.json", json.dumps(manifest).encode()), *parts[1:]]


def test_a_truncated_tar(importer: Box, bundle: bytes) -> None:
    _refuse(importer, bundle[: len(bundle) // 2], 422, "invalid_bundle", "truncated")


def test_a_tar_cut_after_the_manifest(importer: Box, bundle: bytes) -> None:
    parts = members(bundle)
    cut = 512 + len(parts[0][1]) + (-len(parts[0][1]) % 512)
    _refuse(importer, bundle[:cut], 422, "invalid_bundle", "truncated")


@pytest.mark.parametrize("data", [b"PK\x03\x04" + b"\0" * 2000, b"hello" * 300, b""],
                         ids=["zip", "text", "empty body"])
def test_not_a_tar(importer: Box, data: bytes) -> None:
    _refuse(importer, data, 422, "invalid_bundle")


def test_the_manifest_missing(importer: Box, bundle: bytes) -> None:
    parts = members(bundle)
    _refuse(importer, make_tar(parts[1:]), 422, "invalid_bundle", "manifest.json",
            _blob_names(parts)[0])


def test_the_manifest_not_first(importer: Box, bundle: bytes) -> None:
    parts = members(bundle)
    _refuse(importer, make_tar([parts[1], parts[0], *parts[2:]]), 422, "invalid_bundle",
            "manifest.json must be the bundle's first member")


def test_an_empty_tar(importer: Box) -> None:
    _refuse(importer, make_tar([]), 422, "invalid_bundle", "no manifest.json")


def test_a_manifest_over_its_cap(importer: Box) -> None:
    big = b"{" + b" " * MAX_MANIFEST_BYTES + b"}"
    _refuse(importer, make_tar([("manifest.json", big)]), 422, "manifest_too_large",
            "manifest.json", str(MAX_MANIFEST_BYTES))


def test_a_manifest_not_json(importer: Box, bundle: bytes) -> None:
    parts = members(bundle)
    _refuse(importer, make_tar([("manifest.json", b"{not json"), *parts[1:]]), 422,
            "invalid_bundle", "manifest.json is not valid JSON")


def test_an_unknown_format_version(importer: Box, bundle: bytes) -> None:
    parts = _with_manifest(members(bundle), lambda m: m.update(format_version=2))
    _refuse(importer, make_tar(parts), 422, "unsupported_bundle_version", "format_version 2")


def test_a_manifest_field_of_the_wrong_type(importer: Box, bundle: bytes) -> None:
    parts = _with_manifest(members(bundle),
                           lambda m: m["models"][0]["versions"][1].update(sha256="nope"))
    _refuse(importer, make_tar(parts), 422, "invalid_bundle", "models[0].versions[1].sha256")


def test_an_alias_to_a_version_not_carried(importer: Box, bundle: bytes) -> None:
    parts = _with_manifest(members(bundle),
                           lambda m: m["models"][0]["aliases"].update(production=9))
    _refuse(importer, make_tar(parts), 422, "invalid_bundle", "models[0].aliases",
            "'production'")


def test_a_blob_whose_size_differs(importer: Box, bundle: bytes) -> None:
    parts = members(bundle)
    name, data = parts[1]
    _refuse(importer, make_tar([parts[0], (name, data + b"\0"), *parts[2:]]), 422,
            "invalid_bundle", name, f"{len(data) + 1} bytes")


def test_a_blob_whose_hash_differs(importer: Box, bundle: bytes) -> None:
    parts = members(bundle)
    name, data = parts[-1]
    flipped = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
    _refuse(importer, make_tar([*parts[:-1], (name, flipped)]), 422, "invalid_bundle", name,
            "sha256")


def test_a_blob_missing(importer: Box, bundle: bytes) -> None:
    parts = members(bundle)
    _refuse(importer, make_tar(parts[:-1]), 422, "invalid_bundle", parts[-1][0])


def test_an_extra_member(importer: Box, bundle: bytes) -> None:
    parts = members(bundle)
    extra = "blobs/" + "ab" * 32
    _refuse(importer, make_tar([*parts, (extra, b"surprise")]), 422, "invalid_bundle", extra)
    _refuse(importer, make_tar([*parts, ("README", b"hi")]), 422, "invalid_bundle", "README")


def test_a_duplicate_member(importer: Box, bundle: bytes) -> None:
    parts = members(bundle)
    _refuse(importer, make_tar([*parts, parts[-1]]), 422, "invalid_bundle", parts[-1][0],
            "twice")
    _refuse(importer, make_tar([*parts, parts[0]]), 422, "invalid_bundle", "manifest.json",
            "again")


@pytest.mark.parametrize("name", ["../evil", "blobs/../../evil", "/etc/evil", "/blobs/x"])
def test_names_that_climb_out_or_are_absolute(importer: Box, bundle: bytes, name: str) -> None:
    parts = members(bundle)
    _refuse(importer, make_tar([*parts[:-1], (name, b"x"), parts[-1]]), 422, "invalid_bundle",
            name)


def _special(kind: bytes, name: str, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


@pytest.mark.parametrize("info,word", [
    (_special(tarfile.SYMTYPE, "blobs/link", linkname="/etc/passwd"), "symbolic link"),
    (_special(tarfile.LNKTYPE, "blobs/hard", linkname="manifest.json"), "hard link"),
    (_special(tarfile.CHRTYPE, "blobs/dev", devmajor=1, devminor=3), "device file"),
    (_special(tarfile.BLKTYPE, "blobs/disk", devmajor=8, devminor=0), "device file"),
    (_special(tarfile.DIRTYPE, "blobs/dir"), "directory"),
    (_special(tarfile.FIFOTYPE, "blobs/fifo"), "FIFO"),
], ids=["symlink", "hardlink", "char device", "block device", "directory", "fifo"])
def test_links_and_device_files(importer: Box, bundle: bytes, info: tarfile.TarInfo,
                                word: str) -> None:
    parts = members(bundle)
    _refuse(importer, make_tar([parts[0], info, *parts[1:]]), 422, "invalid_bundle",
            info.name, word)


def test_a_manifest_changed_after_signing(publisher: Box, importer: Box, tmp_path: Path) -> None:
    publish(publisher, tmp_path)
    trust_each_other(publisher, importer)
    parts = members(export(publisher, "iris"))
    assert parts[1][0] == "manifest.sig"
    changed = parts[0][1].replace(b'"accuracy": 0.9', b'"accuracy": 1.0')
    assert changed != parts[0][1]
    _refuse(importer, make_tar([("manifest.json", changed), *parts[1:]]), 422, "bad_signature",
            "manifest.sig", "changed")


def test_a_signature_of_other_bytes(publisher: Box, importer: Box, tmp_path: Path) -> None:
    publish(publisher, tmp_path)
    trust_each_other(publisher, importer)
    parts = members(export(publisher, "iris"))
    forged = Ed25519PrivateKey.generate().sign(parts[0][1])
    _refuse(importer, make_tar([parts[0], ("manifest.sig", forged), *parts[2:]]), 422,
            "bad_signature", "manifest.sig")


def test_a_signature_by_an_untrusted_key(publisher: Box, importer: Box, tmp_path: Path) -> None:
    publish(publisher, tmp_path)
    key = trust_each_other(publisher, importer)
    r = importer.client.delete("/api/v1/keys/central", headers=AUTH)
    assert r.status_code == 200
    _refuse(importer, export(publisher, "iris"), 422, "untrusted_key", key.key_id,
            "keys trust")


def test_an_unsigned_bundle_when_signatures_are_required(bundle: bytes, tmp_path: Path) -> None:
    settings = box_settings(tmp_path / "strict", require_signed_imports=True)
    with registry_app(settings) as application:
        box = Box(settings, application)
        _refuse(box, bundle, 422, "unsigned_bundle", "require_signed_imports")


def _hostile_bundle(publisher: Box, tmp_path: Path, marker: Path) -> bytes:
    """A real signed export, its one file swapped for a pickle that would run a command."""
    parts = members(export(publisher, "other"))
    hostile = write_hostile_pickle(tmp_path / "evil.pkl", marker).read_bytes()
    sha = hashlib.sha256(hostile).hexdigest()
    manifest = json.loads(parts[0][1])
    old = manifest["models"][0]["versions"][0]["sha256"]
    manifest["models"][0]["versions"][0].update(sha256=sha, size=len(hostile), format="pickle",
                                                 signature=None)
    manifest["blobs"] = {sha: len(hostile)}
    raw = json.dumps(manifest).encode()
    private = _private_key(publisher)
    assert old != sha
    return make_tar([("manifest.json", raw), ("manifest.sig", private.sign(raw)),
                     (f"blobs/{sha}", hostile)])


def _private_key(box: Box) -> Ed25519PrivateKey:
    from app.fleet.keys import load_private

    pair = load_private(box.settings.paths)
    assert pair is not None
    return pair[0]


def test_a_deny_listed_pickle_inside(publisher: Box, importer: Box, tmp_path: Path) -> None:
    """Signed by a trusted key and sent with trust: still refused, and never loaded."""
    publish(publisher, tmp_path)
    trust_each_other(publisher, importer)
    marker = tmp_path / "pwned"
    data = _hostile_bundle(publisher, tmp_path, marker)
    _refuse(importer, data, 422, "unsafe_model", "other version 1", "posix.system",
            query="?trust=true")
    assert not marker.exists()


def test_a_bundle_larger_than_max_upload_bytes(bundle: bytes, tmp_path: Path) -> None:
    settings = box_settings(tmp_path / "small", max_upload_bytes=len(bundle) - 1)
    with registry_app(settings) as application:
        box = Box(settings, application)
        _refuse(box, bundle, 413, "payload_too_large", "max_upload_bytes")
        # The same through the multipart form, where the size is only known while streaming.
        r = box.client.post("/api/v1/bundles", headers=AUTH, content_type="multipart/form-data",
                            data={"file": (io.BytesIO(bundle), "b.mdbundle")})
        assert error_of(r)[:2] == (413, "payload_too_large")
        nothing_written(box)


def test_trust_without_the_token_is_refused(bundle: bytes, tmp_path: Path) -> None:
    settings = box_settings(tmp_path / "open", auth="none")
    with registry_app(settings) as application:
        box = Box(settings, application)
        r = box.client.post("/api/v1/bundles?trust=true", data=bundle,
                            content_type="application/x-tar")
        assert error_of(r)[:2] == (401, "unauthorized")
        nothing_written(box)


def test_a_wrong_content_type(importer: Box, bundle: bytes) -> None:
    r = importer.client.post("/api/v1/bundles", data=bundle, content_type="application/json",
                             headers=AUTH)
    assert error_of(r)[:2] == (415, "unsupported_media_type")
    nothing_written(importer)
