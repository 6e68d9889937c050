"""Export, the manifest route, keys, import policy for pickles, and the dashboard's Import page,
through the registry's routes over real data dirs."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.cli import main as cli_main
from app.config import Paths
from app.fleet import keys
from tests.dashboard.conftest import login
from tests.fleet.conftest import (
    Box,
    error_of,
    export,
    members,
    nothing_written,
    post_bundle,
    publish,
    publish_pickle,
    trust_each_other,
)
from tests.registry.conftest import AUTH


def test_export_streams_a_plain_tar_in_order(publisher: Box, tmp_path: Path) -> None:
    publish(publisher, tmp_path)
    trust_each_other(publisher, publisher)
    r = publisher.client.get("/api/v1/bundles?model=iris@production&model=other")
    assert r.status_code == 200 and r.mimetype == "application/x-tar"
    data = r.get_data()
    assert int(r.headers["Content-Length"]) == len(data)
    parts = members(data)
    names = [n for n, _ in parts]
    assert names[:2] == ["manifest.json", "manifest.sig"]
    manifest = json.loads(parts[0][1])
    assert names[2:] == [f"blobs/{sha}" for sha in sorted(manifest["blobs"])]
    assert manifest["format"] == "modeldepot-bundle" and manifest["format_version"] == 1
    iris, other = manifest["models"]
    assert [v["version"] for v in iris["versions"]] == [1]
    assert iris["aliases"] == {"production": 1}  # staging points at a version not carried
    assert iris["versions"][0]["metrics"] == {"accuracy": 0.9}
    assert other["name"] == "other" and len(other["versions"]) == 1
    own = keys.own_key(publisher.settings.paths)
    assert own is not None and manifest["publisher"]["key"] == own.key_id
    Ed25519PublicKey.from_public_bytes(own.raw).verify(parts[1][1], parts[0][1])


def test_export_refuses_unknown_models_and_refs(publisher: Box, tmp_path: Path) -> None:
    publish(publisher, tmp_path)
    assert error_of(publisher.client.get("/api/v1/bundles?model=nope"))[:2] == (404, "not_found")
    assert error_of(publisher.client.get("/api/v1/bundles?model=iris@9"))[:2] == (404,
                                                                                 "not_found")
    assert error_of(publisher.client.get("/api/v1/bundles"))[:2] == (400, "missing_model")
    assert error_of(publisher.client.get("/api/v1/bundles?model=../x"))[:2] == (400,
                                                                               "invalid_name")


def test_the_manifest_route_answers_304_while_nothing_changed(publisher: Box,
                                                              tmp_path: Path) -> None:
    publish(publisher, tmp_path)
    key = keys.create_key(publisher.settings.paths, "central")
    r = publisher.client.get("/api/v1/bundles/manifest?model=iris")
    assert r.status_code == 200
    signature = base64.b64decode(r.headers["X-ModelDepot-Signature"])
    assert key.verify(signature, r.get_data())
    etag = r.headers["ETag"]
    again = publisher.client.get("/api/v1/bundles/manifest?model=iris",
                                 headers={"If-None-Match": etag})
    assert again.status_code == 304
    publisher.client.put("/api/v1/models/iris/aliases/production", json={"version": 2},
                         headers=AUTH)
    moved = publisher.client.get("/api/v1/bundles/manifest?model=iris",
                                 headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["ETag"] != etag


def test_keys_through_the_api(publisher: Box) -> None:
    assert publisher.client.get("/api/v1/keys").get_json() == {"key": None, "trusted": []}
    other = keys.create_key(Paths(publisher.home / "elsewhere"),
                            "lab")
    r = publisher.client.post("/api/v1/keys", json={"key": other.line, "name": "lab-7"},
                              headers=AUTH)
    assert r.status_code == 201 and r.get_json()["id"] == other.key_id
    assert r.get_json()["key"].endswith(" lab-7")
    assert publisher.client.post("/api/v1/keys", json={"key": other.line}).status_code == 401
    assert error_of(publisher.client.post("/api/v1/keys", json={"key": "ssh-rsa AAAA x"},
                                          headers=AUTH))[:2] == (400, "invalid_key")
    assert publisher.client.get("/api/v1/keys/lab-7").get_json()["id"] == other.key_id
    assert publisher.client.delete("/api/v1/keys/lab-7", headers=AUTH).status_code == 200
    assert error_of(publisher.client.get("/api/v1/keys/lab-7"))[:2] == (404, "not_found")


def test_keys_on_the_command_line(tmp_path: Path, capsys: object) -> None:
    home = tmp_path / "home"
    assert cli_main(["keys", "create", "--name", "central", "--home", str(home)]) == 0
    private = home / "keys" / "private.key"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert cli_main(["keys", "create", "--home", str(home)]) == 1  # never replaced silently
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    line = out.strip().splitlines()[-1]
    assert line.startswith("modeldepot-ed25519 ") and line.endswith(" central")
    assert cli_main(["keys", "show", "--home", str(home)]) == 0
    assert capsys.readouterr().out.strip() == line  # type: ignore[attr-defined]
    other = tmp_path / "other"
    assert cli_main(["keys", "trust", line, "--name", "hq", "--home", str(other)]) == 0
    assert [k.name for k in keys.trusted_keys(Paths(other))] == ["hq"]
    assert cli_main(["keys", "rm", "hq", "--home", str(other)]) == 0
    assert cli_main(["keys", "rm", "hq", "--home", str(other)]) == 1
    assert keys.trusted_keys(Paths(other)) == []


def test_a_pickle_in_an_unsigned_bundle_needs_trust(publisher: Box, importer: Box,
                                                    tmp_path: Path) -> None:
    publish_pickle(publisher, tmp_path)
    data = export(publisher, "pick", sign=False)
    status, code, message = error_of(post_bundle(importer, data))
    assert (status, code) == (422, "trust_required") and "pick version 1" in message
    nothing_written(importer)
    r = post_bundle(importer, data, "?trust=true")
    assert r.status_code == 201 and len(r.get_json()["added"]) == 1


def test_a_pickle_signed_by_a_trusted_key_needs_no_more(publisher: Box, importer: Box,
                                                        tmp_path: Path) -> None:
    publish_pickle(publisher, tmp_path)
    trust_each_other(publisher, importer)
    r = post_bundle(importer, export(publisher, "pick"))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["publisher"]["trusted_as"] == "central"


def test_a_dry_run_writes_nothing(publisher: Box, importer: Box, tmp_path: Path) -> None:
    publish(publisher, tmp_path)
    r = post_bundle(importer, export(publisher, "iris", "other"), "?dry_run=true")
    assert r.status_code == 200
    report = r.get_json()
    assert report["dry_run"] is True
    assert [(a["model"], a["version"]) for a in report["added"]] == [
        ("iris", 1), ("iris", 2), ("other", 1)]
    assert len(report["aliases"]) == 2
    nothing_written(importer)


def test_the_dashboard_previews_then_imports(publisher: Box, importer: Box,
                                             tmp_path: Path) -> None:
    publish(publisher, tmp_path)
    page = publisher.client.get("/models/iris").get_data(as_text=True)
    assert 'id="export"' in page and "/api/v1/bundles?model=iris" in page
    data = export(publisher, "iris")
    client = importer.client
    csrf = login(client)
    for mode in ("preview", "import"):
        r = client.post(f"/import?csrf={csrf}", content_type="multipart/form-data",
                        data={"file": (io.BytesIO(data), "models.mdbundle"), "mode": mode,
                              "aliases": "on"})
        assert r.status_code == 200, r.get_data(as_text=True)[:500]
        text = r.get_data(as_text=True)
        assert text.count("data-added") == 2 and text.count("data-alias") == 2
        if mode == "preview":
            assert "Preview: nothing was changed yet." in text
            nothing_written(importer)
    assert client.get("/api/v1/models/iris").get_json()["aliases"] == {"production": 1,
                                                                       "staging": 2}
    shown = client.get("/models/iris").get_data(as_text=True)
    assert "data-origin" in shown and "unsigned" in shown
