"""Getting in and staying safe: the token link, the login form, the session cookie, CSRF, and
which requests a cookie may authorize."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from app.config import Settings
from app.registry.app import create_app
from app.registry.dashboard.session import flash_value, new_session
from app.store import Store
from tests.conftest import TOKEN
from tests.dashboard.conftest import alerts, csrf_of, login, notices

SESSION = "modeldepot-session-8720"
FLASH = "modeldepot-flash-8720"


def session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(SESSION)
    return cookie.value if cookie else None


def test_token_link_sets_an_httponly_strict_cookie_and_drops_the_token(
        client: FlaskClient) -> None:
    r = client.get(f"/upload?model=x&token={TOKEN}")  # any page; the other query parameters stay
    assert r.status_code == 303 and r.location == "/upload?model=x"
    header = r.headers["Set-Cookie"]
    assert header.startswith(f"{SESSION}=user.")
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    assert TOKEN not in header  # the cookie is derived from the token, not the token
    page = client.get("/")
    assert "Signed in" in page.text and TOKEN not in page.text


def test_a_wrong_token_link_shows_the_login_form(client: FlaskClient) -> None:
    r = client.get("/?token=wrong")
    assert r.status_code == 401
    assert "is not this server's token" in alerts(r.text)[0]
    assert 'name="token"' in r.text
    assert (session_cookie(client) or "").startswith("anon.")


def test_login_form(client: FlaskClient) -> None:
    csrf = csrf_of(client, "/login")
    r = client.post("/login", data={"csrf": csrf, "token": "nope", "next": "/upload"})
    assert r.status_code == 401 and "The API token is wrong" in alerts(r.text)[0]
    r = client.post("/login", data={"csrf": csrf, "token": "", "next": "/upload"})
    assert r.status_code == 400 and "Please fill in the token" in alerts(r.text)[0]
    r = client.post("/login", data={"csrf": csrf, "token": TOKEN, "next": "/upload"})
    assert r.status_code == 303 and r.location == "/upload"
    assert (session_cookie(client) or "").startswith("user.")
    assert notices(client.get("/upload").text) == ["You are logged in."]
    assert notices(client.get("/upload").text) == []  # a message is shown once


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil",
                                    "javascript:alert(1)", ""])
def test_login_never_redirects_off_site(client: FlaskClient, target: str) -> None:
    csrf = csrf_of(client, "/login")
    r = client.post("/login", data={"csrf": csrf, "token": TOKEN, "next": target})
    assert r.status_code == 303 and r.location == "/"


def test_logout_ends_the_session(client: FlaskClient) -> None:
    csrf = login(client)
    r = client.post("/logout", data={"csrf": csrf})
    assert r.status_code == 303
    assert session_cookie(client) is None
    assert notices(client.get("/").text) == ["You are logged out."]
    assert "Signed in" not in client.get("/").text


def test_forms_need_the_csrf_token(client: FlaskClient, store: Store) -> None:
    csrf = login(client)
    for data in ({}, {"csrf": "forged"}, {"csrf": csrf + "x"}):
        r = client.post("/models/m/aliases", data={"version": "1", **data})
        assert r.status_code == 403, data
        assert "did not come from this dashboard" in alerts(r.text)[0]
    # The token belongs to the session: one from another browser's session does not work here.
    other = create_app(Settings(home=store.paths.home, token=TOKEN)).test_client()
    login(other)
    r = other.post("/models/m/aliases", data={"csrf": csrf, "version": "1"})
    assert r.status_code == 403


def test_a_csrf_token_dies_with_its_session(client: FlaskClient) -> None:
    csrf = login(client)
    client.post("/logout", data={"csrf": csrf})
    login(client)
    r = client.post("/models/m/aliases", data={"csrf": csrf, "version": "1"})
    assert r.status_code == 403


def test_cross_site_and_foreign_origin_posts_are_refused(client: FlaskClient) -> None:
    csrf = login(client)
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"},
                    {"Origin": "null"}):
        r = client.post("/logout", data={"csrf": csrf}, headers=headers)
        assert r.status_code == 403, headers
    assert session_cookie(client) is not None


def test_forged_cookies_count_for_nothing(client: FlaskClient) -> None:
    forged = new_session(logged_in=True).cookie_value("some-other-token")
    client.set_cookie(SESSION, forged)
    page = client.get("/")
    assert "Signed in" not in page.text
    client.set_cookie(SESSION, "user.abc.def")
    assert "Signed in" not in client.get("/").text
    client.set_cookie(FLASH, flash_value("some-other-token", "ok", "Forged message"))
    assert "Forged message" not in client.get("/").text


def test_without_login_a_write_shows_the_login_form(client: FlaskClient) -> None:
    csrf = csrf_of(client, "/login")  # an anonymous session still gets CSRF tokens
    r = client.post("/models/m/aliases", data={"csrf": csrf, "version": "1"})
    assert r.status_code == 401
    assert "needs the API token" in alerts(r.text)[0]
    assert 'name="token"' in r.text


def test_the_cookie_reads_the_api_but_never_writes_it(settings: Settings) -> None:
    client = create_app(settings.replace(auth="all")).test_client()
    assert client.get("/api/v1/models").status_code == 401
    login(client)
    assert client.get("/api/v1/models").status_code == 200  # the job page's polling reads
    # An API write with only the cookie is refused: a page on another local port would send it.
    r = client.post("/api/v1/models", json={"name": "m"})
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "unauthorized"


def test_auth_all_asks_for_login_before_any_page(settings: Settings) -> None:
    client = create_app(settings.replace(auth="all")).test_client()
    r = client.get("/upload?model=x")
    assert r.status_code == 401 and 'name="token"' in r.text
    assert 'name="next" value="/upload?model=x"' in r.text
    with client.get("/assets/dashboard.css") as css:
        assert css.status_code == 200  # the login page is styled
    login(client)
    assert client.get("/upload").status_code == 200


def test_auth_none_still_checks_csrf(settings: Settings) -> None:
    client = create_app(settings.replace(auth="none")).test_client()
    r = client.post("/models/m/aliases", data={"version": "1"})
    assert r.status_code == 403
    csrf = csrf_of(client, "/login")
    r = client.post("/models/m/aliases", data={"csrf": csrf, "version": "1"})
    assert r.status_code == 303  # no login needed; the store's answer comes as a message
    assert notices(client.get(r.location).text) == ["No model named 'm'."]


def test_pages_carry_a_strict_content_security_policy(client: FlaskClient) -> None:
    r = client.get("/")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Frame-Options"] == "DENY"
    # Browsers send `Origin: null` on form posts from a no-referrer page; ours must not be one.
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert "<script>" not in r.text and " style=" not in r.text and "http" not in r.text.split(
        "<body>")[1].replace("http-equiv", "")


def test_cookie_names_carry_the_port(settings: Settings) -> None:
    client = create_app(settings.replace(registry_port=9999)).test_client()
    r = client.get(f"/?token={TOKEN}")
    assert r.headers["Set-Cookie"].startswith("modeldepot-session-9999=")
