"""Mirrors between two real registries: the central one served by waitress on a loopback port in
this process, the edge one a registry app whose mirror loop the test runs a round at a time
(`run_due`), so each step's outcome is known. Real SQLite, real blob files, real HTTP (through a
cutting proxy where a transfer must break)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.fleet import keys
from app.fleet.mirror_loop import MirrorLoop, retry_delay
from app.registry.mirrors_api import mirror_loop_of
from tests.fleet.conftest import AUTH, Box, box_settings, publish, publish_pickle
from tests.fleet.proxy import CuttingProxy, proxy_to
from tests.models import iris_model, write_skops
from tests.registry.conftest import registry_app, upload
from tests.registry.inthread import serving


@pytest.fixture
def central(publisher: Box) -> Iterator[tuple[Box, str]]:
    with serving(publisher.app, publisher.settings) as url:
        yield publisher, url


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Box]:
    settings = box_settings(tmp_path / "edge")
    with registry_app(settings) as application:
        yield Box(settings, application)


def add_mirror(box: Box, upstream: str, *refs: str, **fields: Any) -> dict[str, Any]:
    r = box.client.post("/api/v1/mirrors", json={"upstream": upstream, "models": list(refs),
                                                 **fields}, headers=AUTH)
    assert r.status_code == 201, r.get_json()
    return dict(r.get_json())


def sync(box: Box, mirror_id: str) -> dict[str, Any]:
    """One round of the edge's loop, then the mirror as the API shows it."""
    loop: MirrorLoop = mirror_loop_of(box.app)
    box.client.post(f"/api/v1/mirrors/{mirror_id}/sync", headers=AUTH)
    assert loop.run_due() >= 1
    return dict(box.client.get(f"/api/v1/mirrors/{mirror_id}").get_json())


def version(box: Box, model: str, ref: str) -> dict[str, Any]:
    r = box.client.get(f"/api/v1/models/{model}/versions/{ref}")
    assert r.status_code == 200, r.get_json()
    return dict(r.get_json())


def count_versions(box: Box, model: str) -> int:
    r = box.client.get(f"/api/v1/models/{model}/versions")
    return len(r.get_json()["versions"]) if r.status_code == 200 else 0


def move(box: Box, model: str, alias: str, number: int) -> None:
    r = box.client.put(f"/api/v1/models/{model}/aliases/{alias}", json={"version": number},
                       headers=AUTH)
    assert r.status_code == 200


def test_follows_promotion_and_rollback_and_never_deletes(
        central: tuple[Box, str], edge: Box, tmp_path: Path) -> None:
    box, url = central
    publish(box, tmp_path)  # iris v1 production, v2 staging
    mirror = add_mirror(edge, url, "iris@production")
    state = sync(edge, mirror["id"])
    assert state["state"] == "ok" and state["last_error"] is None
    first = version(edge, "iris", "production")
    assert first["sha256"] == version(box, "iris", "1")["sha256"]
    assert first["origin"]["kind"] == "mirror" and first["origin"]["upstream"] == url
    assert state["versions_applied"] == 1 and state["bytes_pulled"] == first["size"]
    assert state["applied"] == [{"model": "iris", "alias": "production", "version": 1,
                                 "upstream_version": 1, "sha256": first["sha256"]}]

    unchanged = sync(edge, mirror["id"])  # a 304: nothing fetched, nothing changed
    assert unchanged["bytes_pulled"] == state["bytes_pulled"]
    assert unchanged["versions_applied"] == 1

    move(box, "iris", "production", 2)  # promote on the central box
    promoted = sync(edge, mirror["id"])
    second = version(edge, "iris", "production")
    assert second["sha256"] == version(box, "iris", "2")["sha256"] and second["version"] == 2
    assert promoted["bytes_pulled"] == first["size"] + second["size"]

    move(box, "iris", "production", 1)  # roll back: followed with no download
    rolled = sync(edge, mirror["id"])
    assert version(edge, "iris", "production")["sha256"] == first["sha256"]
    assert rolled["bytes_pulled"] == promoted["bytes_pulled"]

    r = box.client.delete("/api/v1/models/iris/versions/2?force=true", headers=AUTH)
    assert r.status_code == 200
    sync(edge, mirror["id"])
    assert count_versions(edge, "iris") == 2  # the edge keeps what the central box dropped


def test_cut_transfer_resumes_with_range_and_fetches_only_the_rest(
        central: tuple[Box, str], edge: Box, tmp_path: Path) -> None:
    box, url = central
    big = write_skops(tmp_path / "big.skops", iris_model(C=0.5))
    assert upload(box.client, "iris", big).status_code == 201
    move(box, "iris", "production", 1)
    size = version(box, "iris", "1")["size"]
    host, port = url.removeprefix("http://").split(":")
    proxy = CuttingProxy((host, int(port)), cut_path="/api/v1/blobs/", cut_after=size // 2)
    with proxy_to(proxy) as proxied:
        mirror = add_mirror(edge, proxied, "iris@production")
        failed = sync(edge, mirror["id"])
        assert failed["state"] == "error" and "broke off" in failed["last_error"]
        assert count_versions(edge, "iris") == 0
        arrived = failed["bytes_pulled"]
        assert 0 < arrived < size
        done = sync(edge, mirror["id"])
    assert done["state"] == "ok", done["last_error"]
    blob_requests = [r for r in proxy.requests if "/api/v1/blobs/" in r.split("\r\n")[0]]
    assert len(blob_requests) == 2
    assert f"Range: bytes={arrived}-" in blob_requests[1]
    assert done["bytes_pulled"] == size  # the first part once, then only the rest
    assert version(edge, "iris", "production")["sha256"] == version(box, "iris", "1")["sha256"]


def test_bytes_not_matching_their_hash_are_never_applied(
        central: tuple[Box, str], edge: Box, tmp_path: Path) -> None:
    box, url = central
    publish(box, tmp_path)
    sha = version(box, "iris", "1")["sha256"]
    blob = box.settings.paths.blobs / sha[:2] / sha
    original = blob.read_bytes()
    blob.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])  # same size, other bytes
    mirror = add_mirror(edge, url, "iris@production")
    state = sync(edge, mirror["id"])
    assert state["state"] == "error"
    assert "do not match its sha256" in state["last_error"]
    assert count_versions(edge, "iris") == 0
    assert list(edge.settings.paths.tmp.iterdir()) == []
    blob.write_bytes(original)  # the central box repaired: the next round applies it
    assert sync(edge, mirror["id"])["state"] == "ok"
    assert version(edge, "iris", "production")["sha256"] == sha


def test_signatures_required_refuses_unsigned_and_untrusted(
        central: tuple[Box, str], tmp_path: Path) -> None:
    box, url = central
    publish(box, tmp_path)
    settings = box_settings(tmp_path / "edge", require_signed_imports=True)
    with registry_app(settings) as application:
        edge = Box(settings, application)
        mirror = add_mirror(edge, url, "iris@production")
        unsigned = sync(edge, mirror["id"])
        assert unsigned["state"] == "error" and "not signed" in unsigned["last_error"]
        key = keys.create_key(box.settings.paths, "central")  # signed now, by a stranger
        untrusted = sync(edge, mirror["id"])
        assert untrusted["state"] == "error"
        assert "does not trust" in untrusted["last_error"]
        assert count_versions(edge, "iris") == 0
        keys.trust_key(edge.settings.paths, key.line)
        assert sync(edge, mirror["id"])["state"] == "ok"
        assert version(edge, "iris", "production")["origin"]["publisher_key"] == key.key_id


def test_pickle_without_trust_is_refused_saying_how_to_allow_it(
        central: tuple[Box, str], edge: Box, tmp_path: Path) -> None:
    box, url = central
    publish_pickle(box, tmp_path)
    move(box, "pick", "production", 1)
    mirror = add_mirror(edge, url, "pick@production")
    state = sync(edge, mirror["id"])
    assert state["state"] == "error"
    assert "--trust" in state["last_error"]
    assert count_versions(edge, "pick") == 0
    trusted = add_mirror(edge, url, "pick@production", trust=True)
    assert sync(edge, trusted["id"])["state"] == "ok"
    assert version(edge, "pick", "production")["format"] == "pickle"


def test_unreachable_upstream_is_recorded_and_retried(edge: Box) -> None:
    from tests.live import free_port

    mirror = add_mirror(edge, f"http://127.0.0.1:{free_port()}", "iris@production")
    first = sync(edge, mirror["id"])
    second = sync(edge, mirror["id"])
    assert first["state"] == second["state"] == "error"
    assert "could not be reached" in second["last_error"]
    assert second["failures"] == 2


def test_retry_delay_grows_with_jitter_up_to_the_interval() -> None:
    delays = [retry_delay(n, 60.0) for n in range(1, 12)]
    assert all(0 < d <= 60.0 for d in delays)
    assert delays[-1] >= 30.0 and delays[0] <= 1.0


@pytest.mark.parametrize("body,code", [
    ({"upstream": "ftp://central:21", "models": ["iris@production"]}, "invalid_upstream"),
    ({"upstream": "http://central:8720/api", "models": ["iris@production"]}, "invalid_upstream"),
    ({"upstream": "http://central:8720", "models": ["iris"]}, "invalid_models"),
    ({"upstream": "http://central:8720", "models": []}, "invalid_models"),
    ({"upstream": "http://central:8720", "models": ["iris@x"], "every_s": 0}, "invalid_interval"),
])
def test_bad_definitions_are_refused_and_nothing_stored(
        edge: Box, body: dict[str, Any], code: str) -> None:
    r = edge.client.post("/api/v1/mirrors", json=body, headers=AUTH)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == code
    assert edge.client.get("/api/v1/mirrors").get_json() == {"mirrors": []}


def test_writes_need_the_token_and_the_token_is_never_shown(edge: Box) -> None:
    body = {"upstream": "http://central:8720", "models": ["iris@production"], "token": "s3cret"}
    assert edge.client.post("/api/v1/mirrors", json=body).status_code == 401
    made = edge.client.post("/api/v1/mirrors", json=body, headers=AUTH).get_json()
    assert made["token"] is True and "s3cret" not in str(
        edge.client.get("/api/v1/mirrors").get_data())
    assert edge.client.delete(f"/api/v1/mirrors/{made['id']}").status_code == 401
    assert edge.client.delete(f"/api/v1/mirrors/{made['id']}", headers=AUTH).status_code == 200
    assert edge.client.get(f"/api/v1/mirrors/{made['id']}").status_code == 404


def test_metrics_show_each_mirrors_counters(
        central: tuple[Box, str], edge: Box, tmp_path: Path) -> None:
    box, url = central
    publish(box, tmp_path)
    good = add_mirror(edge, url, "iris@production")
    bad = add_mirror(edge, url, "missing@production")
    sync(edge, good["id"])
    state = sync(edge, bad["id"])
    r = edge.client.get("/metrics")
    assert r.status_code == 200 and r.content_type.startswith("text/plain; version=0.0.4")
    samples = dict(line.rsplit(" ", 1) for line in r.get_data(as_text=True).splitlines()
                   if not line.startswith("#"))

    def sample(name: str, mirror: dict[str, Any]) -> float:
        return float(samples[f'{name}{{mirror="{mirror["id"]}",upstream="{url}"}}'])

    size = version(edge, "iris", "production")["size"]
    assert sample("modeldepot_mirror_bytes_pulled_total", good) == size
    assert sample("modeldepot_mirror_versions_applied_total", good) == 1
    assert sample("modeldepot_mirror_up", good) == 1 and sample("modeldepot_mirror_up", bad) == 0
    assert sample("modeldepot_mirror_failures_total", bad) == state["failures_total"] >= 1
    assert abs(sample("modeldepot_mirror_last_success_timestamp_seconds", good)
               - time.time()) < 3600  # a Unix time, written in full (not 1.7e+09)
    assert f'modeldepot_mirror_last_success_timestamp_seconds{{mirror="{bad["id"]}"' not in \
        r.get_data(as_text=True)


def test_dashboard_page_shows_state_and_error_and_syncs_now(
        central: tuple[Box, str], edge: Box, tmp_path: Path) -> None:
    from tests.dashboard.conftest import login, notices

    box, url = central
    publish(box, tmp_path)
    good = add_mirror(edge, url, "iris@production")
    bad = add_mirror(edge, url, "missing@production")
    sync(edge, good["id"])
    error = sync(edge, bad["id"])["last_error"]
    browser = edge.client
    csrf = login(browser)
    page = browser.get("/mirrors").get_data(as_text=True)
    assert f'data-mirror="{good["id"]}"' in page and "badge-ok" in page and "badge-error" in page
    assert "No model named" in error and "No model named" in page
    assert "iris</a>@production → v1" in page
    r = browser.post(f"/mirrors/{good['id']}/sync", data={"csrf": csrf})
    assert r.status_code == 303
    assert edge.client.get(f"/api/v1/mirrors/{good['id']}").get_json()["sync_requested"] is True
    assert any("requested" in n for n in notices(browser.get("/mirrors").get_data(as_text=True)))
    forged = edge.app.test_client().post(f"/mirrors/{good['id']}/sync", data={"csrf": "x"})
    assert forged.status_code in (401, 403)
