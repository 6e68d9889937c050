"""Every page renders without JavaScript, and every failed action shows the server's message."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.formats.signature import signature_from_estimator
from app.inference.app import create_app as create_inference
from app.registry.app import create_app
from app.store import NewVersion, Store
from tests.conftest import TOKEN
from tests.dashboard.conftest import alerts, csrf_of, login, notices
from tests.inference.conftest import IRIS_NAMES, LiveServer
from tests.live import free_port
from tests.models import iris_model, write_hostile_pickle, write_joblib, write_skops


def upload(client: FlaskClient, csrf: str, model: str, content: bytes | Path, *,
           filename: str = "model.skops", **fields: str) -> object:
    data = content.read_bytes() if isinstance(content, Path) else content
    return client.post(f"/upload?csrf={csrf}", content_type="multipart/form-data",
                       data={"model": model, **fields, "file": (io.BytesIO(data), filename)})


@pytest.fixture(scope="module")
def iris_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, dict[str, Any]]]:
    """Two fitted iris models as skops files with their signatures, made once for the module."""
    folder = tmp_path_factory.mktemp("iris")
    files = []
    for i, model in enumerate([iris_model(), iris_model(C=0.5)]):
        path = write_skops(folder / f"iris{i}.skops", model)
        files.append((path, signature_from_estimator(model).to_dict()))
    return files


def add_file(store: Store, name: str, path: Path, signature: dict[str, Any]) -> None:
    temp, sha, size = store.blobs.receive(iter([path.read_bytes()]))
    store.add_version(name, temp, sha, size, NewVersion(format="skops", signature=signature))


@pytest.fixture
def iris(store: Store, iris_files: list[tuple[Path, dict[str, Any]]]) -> Store:
    """`iris` with versions 1 and 2 (ready), production -> 1."""
    for path, signature in iris_files:
        add_file(store, "iris", path, signature)
    store.set_alias("iris", "production", 1)
    return store


@pytest.fixture
def named(store: Store, iris_files: list[tuple[Path, dict[str, Any]]]) -> Store:
    """`named`: one version whose signature names the four iris features."""
    path, signature = iris_files[0]
    add_file(store, "named", path, {**signature, "feature_names": IRIS_NAMES})
    return store


@pytest.fixture
def app(settings: Settings, store: Store) -> Iterator[Flask]:
    application = create_app(settings, store)
    yield application


# -- reading ------------------------------------------------------------------------------------

def test_models_list_search_and_tags(client: FlaskClient, store: Store, tmp_path: Path) -> None:
    store.create_model("alpha", "first one", {"team": "a"})
    store.create_model("beta", "second", {"team": "b"})
    page = client.get("/").text
    assert ">alpha</a>" in page and ">beta</a>" in page and "team: a" in page
    page = client.get("/?q=first").text
    assert ">alpha</a>" in page and ">beta</a>" not in page
    page = client.get("/?tag=team:b").text
    assert ">alpha</a>" not in page and ">beta</a>" in page
    assert "No model matches" in client.get("/?q=zzz").text


def test_empty_search_fields_redirect_to_a_clean_url(client: FlaskClient) -> None:
    r = client.get("/?q=&tag=")
    assert r.status_code == 303 and r.location == "/"
    r = client.get("/?q=x&tag=")
    assert r.location == "/?q=x"


@pytest.mark.parametrize("query,message", [
    ("tag=nocolon", "A tag filter looks like tag=key:value."),
    ("tag=../x:1", "Invalid tag key"),
    ("page_token=%25%25", "page_token"),
    ("q=" + "x" * 300, "limited to 256 characters"),
])
def test_bad_list_queries_show_the_message(client: FlaskClient, query: str, message: str) -> None:
    r = client.get(f"/?{query}")
    assert r.status_code == 400
    assert message in alerts(r.text)[0]


def test_models_list_pages(client: FlaskClient, store: Store) -> None:
    for i in range(3):
        store.create_model(f"m{i}")
    page = client.get("/?limit=2").text
    assert ">m0</a>" in page and ">m2</a>" not in page and "Next page" in page


def test_model_page_without_javascript(client: FlaskClient, iris: Store) -> None:
    r = client.get("/models/iris")
    assert r.status_code == 200
    page = r.text
    assert 'id="v1"' in page and 'id="v2"' in page
    assert 'data-alias="production"' in page
    assert "Promote to production" in page  # v2 can be promoted, v1 already is
    assert page.count("Promote to production") == 1
    assert "<details>" in page and "predict_proba" in page  # the signature, in plain HTML
    assert "Roll back" not in page  # production is at v1: nothing older to go back to


def test_unknown_model_page_is_a_404_page(client: FlaskClient) -> None:
    r = client.get("/models/nope")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert alerts(r.text) == ["No model named 'nope'."]
    r = client.get("/models/a%20b")
    assert r.status_code == 400 and "Invalid model name" in alerts(r.text)[0]


def test_upload_page_prefills_the_model(client: FlaskClient) -> None:
    page = client.get("/upload?model=iris").text
    assert 'value="iris"' in page and 'enctype="multipart/form-data"' in page
    assert "run code when they are loaded" in page


# -- aliases and versions ----------------------------------------------------------------------

def test_promote_and_roll_back(client: FlaskClient, iris: Store) -> None:
    csrf = login(client)
    r = client.post("/models/iris/aliases", data={"csrf": csrf, "version": "2"})
    assert r.status_code == 303
    page = client.get(r.location).text
    assert notices(page) == ["production now points at version 2."]
    assert iris.resolve("iris").version == 2
    assert "Roll back to v1" in page
    client.post("/models/iris/aliases", data={"csrf": csrf, "alias": "production", "version": "1"})
    assert iris.resolve("iris").version == 1


@pytest.mark.parametrize("data,message", [
    ({"version": "9"}, "Model 'iris' has no version 9."),
    ({"version": "x"}, "Choose a version number"),
    ({"version": "0"}, "Choose a version number"),
    ({"version": "1", "alias": "latest"}, "an alias cannot be all digits or 'latest'"),
    ({"version": "1", "alias": "12"}, "an alias cannot be all digits"),
    ({"version": "1", "alias": "a b"}, "Invalid alias"),
])
def test_bad_alias_moves_show_the_message(client: FlaskClient, iris: Store,
                                          data: dict[str, str], message: str) -> None:
    csrf = login(client)
    r = client.post("/models/iris/aliases", data={"csrf": csrf, **data})
    assert r.status_code == 303
    shown = notices(client.get(r.location).text)
    assert len(shown) == 1 and message in shown[0]
    assert iris.resolve("iris").version == 1


def test_alias_on_a_version_that_is_not_ready(client: FlaskClient, iris: Store) -> None:
    record = iris.get_version("iris", 2)
    iris.set_status(record.id, "failed", "broken on purpose")
    csrf = login(client)
    r = client.post("/models/iris/aliases", data={"csrf": csrf, "version": "2"})
    assert "only ready versions can take an alias" in notices(client.get(r.location).text)[0]


def test_remove_alias_and_delete_version(client: FlaskClient, iris: Store) -> None:
    csrf = login(client)
    r = client.post("/models/iris/versions/1/delete", data={"csrf": csrf})
    assert "Move them first" in notices(client.get(r.location).text)[0]  # production points there
    r = client.post("/models/iris/aliases/production/delete", data={"csrf": csrf})
    assert notices(client.get(r.location).text) == ["Alias production removed."]
    r = client.post("/models/iris/aliases/production/delete", data={"csrf": csrf})
    assert notices(client.get(r.location).text) == ["Model 'iris' has no alias 'production'."]
    r = client.post("/models/iris/versions/1/delete", data={"csrf": csrf})
    assert notices(client.get(r.location).text) == ["Version 1 deleted."]
    assert [v.version for v in iris.list_versions("iris")[0]] == [2]


def test_actions_on_a_bad_model_name_are_refused(client: FlaskClient) -> None:
    csrf = login(client)
    r = client.post("/models/a%20b/aliases", data={"csrf": csrf, "version": "1"})
    assert r.status_code == 400 and "Invalid model name" in alerts(r.text)[0]


# -- upload --------------------------------------------------------------------------------------

def test_upload_stores_a_version_through_the_api_path(client: FlaskClient, store: Store,
                                                     tmp_path: Path) -> None:
    csrf = login(client)
    r = upload(client, csrf, "iris", write_skops(tmp_path / "m.skops"), description="first")
    assert r.status_code == 303 and r.location == "/models/iris#v1"
    assert notices(client.get("/models/iris").text) == ["Stored version 1 of iris (skops)."]
    record = store.get_version("iris", 1)
    assert record.status == "ready" and record.description == "first" and record.signature
    assert client.get("/api/v1/models/iris/versions/1").get_json()["sha256"] == record.sha256


def test_upload_errors_are_the_apis_messages(client: FlaskClient, tmp_path: Path) -> None:
    csrf = login(client)
    garbage = b"definitely not a model"
    r = upload(client, csrf, "m", garbage, filename="notes.txt")
    api = client.post("/api/v1/models/m/versions", content_type="multipart/form-data",
                      data={"file": (io.BytesIO(garbage), "notes.txt")},
                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == api.status_code == 422
    assert alerts(r.text) == [f"That did not work. {api.get_json()['error']['message']}"]
    assert 'value="m"' in r.text  # what was typed stays in the form


@pytest.mark.parametrize("model,content,fields,status,message", [
    ("", b"x", {}, 400, "Invalid model name ''"),
    ("a/b", b"x", {}, 400, "Invalid model name"),
    ("m", b"", {}, 422, "The uploaded file is empty."),
    ("m", b"x", {"description": "d" * 10_001}, 400, "A description must be"),
])
def test_bad_uploads(client: FlaskClient, model: str, content: bytes, fields: dict[str, str],
                     status: int, message: str) -> None:
    csrf = login(client)
    r = upload(client, csrf, model, content, **fields)
    assert r.status_code == status
    assert message in alerts(r.text)[0]


def test_upload_without_a_file_or_with_a_strange_body(client: FlaskClient) -> None:
    csrf = login(client)
    r = client.post(f"/upload?csrf={csrf}", content_type="multipart/form-data",
                    data={"model": "m"})
    assert r.status_code == 422 and "has no 'file' part" in alerts(r.text)[0]
    r = client.post(f"/upload?csrf={csrf}", data={"model": "m"})  # urlencoded
    assert r.status_code == 415 and "multipart/form-data" in alerts(r.text)[0]
    r = client.post(f"/upload?csrf={csrf}", content_type="multipart/form-data",
                    data={"model": "m", "colour": "red", "file": (io.BytesIO(b"x"), "f")})
    assert r.status_code == 422 and "Unexpected form part 'colour'" in alerts(r.text)[0]


def test_upload_past_the_size_limit(settings: Settings, store: Store) -> None:
    client = create_app(settings.replace(max_upload_bytes=1000), store).test_client()
    csrf = login(client)
    r = upload(client, csrf, "m", b"x" * 5000)
    assert r.status_code == 413 and "larger than the limit of 1000 bytes" in alerts(r.text)[0]
    assert list(store.paths.tmp.iterdir()) == []  # nothing left behind


def test_upload_csrf_is_checked_before_the_body_is_read(client: FlaskClient) -> None:
    login(client)
    r = client.post("/upload", content_type="multipart/form-data",
                    data={"model": "m", "file": (io.BytesIO(b"x"), "f"), "csrf": "in-the-body"})
    assert r.status_code == 403


def test_a_pickle_needs_trust_and_the_token(settings: Settings, store: Store,
                                            tmp_path: Path) -> None:
    client = create_app(settings.replace(auth="none"), store).test_client()
    csrf = csrf_of(client, "/login")
    path = write_joblib(tmp_path / "m.joblib")
    r = upload(client, csrf, "p", path, filename="m.joblib")
    assert r.status_code == 422 and "trust" in alerts(r.text)[0]
    assert 'class="warning-box highlight"' in r.text
    r = upload(client, csrf, "p", path, filename="m.joblib", trust="on")
    assert r.status_code == 401  # auth=none lets writes through, but not trusting a pickle
    assert "trust=true needs the API token" in alerts(r.text)[0]
    csrf = login(client)
    r = upload(client, csrf, "p", path, filename="m.joblib", trust="on")
    assert r.status_code == 303
    assert store.get_version("p", 1).format == "pickle"


def test_a_hostile_pickle_is_refused_even_when_trusted(client: FlaskClient, tmp_path: Path) -> None:
    csrf = login(client)
    marker = tmp_path / "ran"
    path = write_hostile_pickle(tmp_path / "evil.pkl", marker)
    r = upload(client, csrf, "evil", path, filename="evil.pkl", trust="on")
    assert r.status_code == 422 and "refuses it even for trusted uploads" in alerts(r.text)[0]
    assert not marker.exists()


# -- predict and status --------------------------------------------------------------------------

@pytest.fixture
def inference(settings: Settings, named: Store) -> Iterator[LiveServer]:
    store = named
    with LiveServer(create_inference(settings.replace(poll_interval_ms=20), store)) as server:
        yield server


def predict_client(settings: Settings, store: Store, port: int, **changes: object) -> FlaskClient:
    return create_app(settings.replace(inference_port=port, **changes), store).test_client()


def test_predict_form_is_built_from_the_signature(settings: Settings, store: Store,
                                                  inference: LiveServer) -> None:
    client = predict_client(settings, store, inference.port)
    page = client.get("/predict?model=named").text
    for i, name in enumerate(["sepal_length", "sepal_width", "petal_length", "petal_width"]):
        assert f'<label for="f_{i}">{name}</label>' in page
    assert "Show class probabilities" in page
    assert "Choose a model" in client.get("/predict").text


def test_predict_through_the_inference_server(settings: Settings, store: Store,
                                              inference: LiveServer) -> None:
    client = predict_client(settings, store, inference.port)
    csrf = csrf_of(client, "/predict?model=named")  # under auth=writes no login is needed
    row = {"f_0": "5.1", "f_1": "3.5", "f_2": "1.4", "f_3": "0.2"}
    r = client.post("/predict?model=named", data={"csrf": csrf, "mode": "fields", "proba": "on",
                                                  **row})
    assert r.status_code == 200, alerts(r.text)
    assert "Result from v1" in r.text and '<td class="prediction">0</td>' in r.text
    assert "P(2)" in r.text
    body = json.dumps({"instances": [[6.7, 3.0, 5.2, 2.3]]})
    r = client.post("/predict?model=named&version=1",
                    data={"csrf": csrf, "mode": "json", "raw": body})
    assert r.status_code == 200 and '<td class="prediction">2</td>' in r.text


@pytest.mark.parametrize("data,status,message", [
    ({"mode": "fields", "f_0": "1", "f_1": "2", "f_2": "3", "f_3": "abc"}, 422, "not a number"),
    ({"mode": "json", "raw": "{not json"}, 400, "JSON"),
    ({"mode": "json", "raw": '{"instances": [[1, 2]]}'}, 422, "4"),
    ({"mode": "json", "raw": ""}, 400, "Please fill in the JSON request."),
])
def test_predict_errors_are_the_inference_servers(settings: Settings, store: Store,
                                                  inference: LiveServer, data: dict[str, str],
                                                  status: int, message: str) -> None:
    client = predict_client(settings, store, inference.port)
    csrf = csrf_of(client, "/predict?model=named")
    r = client.post("/predict?model=named", data={"csrf": csrf, **data})
    assert r.status_code == status
    assert message in alerts(r.text)[0]


def test_predict_under_auth_all_forwards_the_login(settings: Settings, named: Store) -> None:
    store = named
    locked = settings.replace(auth="all", poll_interval_ms=20)
    with LiveServer(create_inference(locked, store)) as server:
        client = predict_client(locked, store, server.port)
        csrf = login(client)
        raw = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]})
        r = client.post("/predict?model=named", data={"csrf": csrf, "mode": "json", "raw": raw})
        assert r.status_code == 200, alerts(r.text)
        client.post("/logout", data={"csrf": csrf})
        # Forged from a logged-out browser: the registry forwards no token, inference refuses.
        csrf = csrf_of(client, "/login")
        r = client.post("/predict?model=named", data={"csrf": csrf, "mode": "json", "raw": raw})
        assert r.status_code == 401 and "needs the API token" in alerts(r.text)[0]


def test_predict_with_the_inference_server_down(settings: Settings, iris: Store) -> None:
    store = iris
    client = predict_client(settings, store, free_port())
    csrf = csrf_of(client, "/predict?model=iris")
    r = client.post("/predict?model=iris", data={"csrf": csrf, "mode": "json", "raw": "{}"})
    assert r.status_code == 503 and "is not answering on port" in alerts(r.text)[0]
    page = client.get("/status").text
    assert "not answering" in page and "is not answering on port" in page


@pytest.mark.parametrize("query,status,message", [
    ("model=nope", 404, "No model named 'nope'."),
    ("model=a%20b", 400, "Invalid model name"),
    ("model=iris&version=..%2F", 400, ""),
    ("model=iris&version=7", 404, "has no version 7"),
])
def test_predict_page_for_bad_choices(client: FlaskClient, iris: Store, query: str, status: int,
                                      message: str) -> None:
    r = client.get(f"/predict?{query}")
    assert r.status_code == status
    assert message in alerts(r.text)[0]


def test_predict_post_without_a_model(client: FlaskClient) -> None:
    csrf = csrf_of(client, "/login")
    r = client.post("/predict", data={"csrf": csrf, "mode": "json", "raw": "{}"})
    assert r.status_code == 400 and alerts(r.text) == ["That did not work. Choose a model first."]


def test_status_page_with_inference_up(settings: Settings, store: Store,
                                       inference: LiveServer) -> None:
    client = predict_client(settings, store, inference.port)
    page = client.get("/status", headers={"Host": "localhost:8720"}).text
    assert 'badge-ready">ready' in page
    assert f'href="http://localhost:{inference.port}/docs"' in page
    assert str(settings.home) in page
