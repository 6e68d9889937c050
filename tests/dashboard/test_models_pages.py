"""Models, versions and aliases pages: rendered without JavaScript; every failed action shows the
store's own message."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app.store import Store
from tests.dashboard.conftest import alerts, login, notices


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


