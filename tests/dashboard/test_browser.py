"""The double-click experience in headless Chromium: a real registry and inference server, the
token link, uploads, promotion, predictions and the server's own error messages in the page."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from app.supervisor.browser import dashboard_url
from tests.conftest import TOKEN
from tests.dashboard import browser as chromium
from tests.dashboard.conftest import Stack
from tests.models import iris_model, write_joblib, write_skops

pytestmark = pytest.mark.slow
Driver = Any


def wait(driver: Driver, timeout: float = 15) -> WebDriverWait:
    return WebDriverWait(driver, timeout)


def shot(driver: Driver, screenshots: Path, name: str) -> None:
    """The whole page, not just the window: the window keeps its size, the capture grows."""
    chromium.full_page_screenshot(driver, screenshots / f"{name}.png")


def text_of(driver: Driver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def too_wide(driver: Driver) -> list[str]:
    """The outermost elements that stick out to the right of the window."""
    return list(driver.execute_script("""
        const out = [];
        for (const el of document.querySelectorAll("body *")) {
          if (el.getBoundingClientRect().right > window.innerWidth + 1 &&
              !out.some((o) => o.contains(el)) && !el.closest(".table-wrap")) out.push(el);
        }
        return out.slice(0, 5).map((el) => `${el.tagName}.${el.className}`);
    """))


def log_in(driver: Driver, stack: Stack) -> None:
    driver.get(dashboard_url(stack.registry_url, TOKEN))
    wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".session .who")))


def upload(driver: Driver, stack: Stack, model: str, path: Path, *, trust: bool = False) -> None:
    driver.get(f"{stack.registry_url}/upload")
    driver.find_element(By.ID, "model").send_keys(model)
    driver.find_element(By.ID, "file").send_keys(str(path))
    if trust:
        driver.find_element(By.NAME, "trust").click()
    driver.find_element(By.CSS_SELECTOR, ".upload-form button[type=submit]").click()


def api_error(stack: Stack, model: str, path: Path) -> dict[str, str]:
    """What the JSON API says about the same file, for comparison with the page."""
    boundary = "modeldepot-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{stack.registry_url}/api/v1/models/{model}/versions", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                 "Authorization": f"Bearer {TOKEN}"},
    )
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as exc:
        error: dict[str, str] = json.loads(exc.read())["error"]
        return error
    raise AssertionError("the API accepted the file")


def test_token_link_logs_in_and_leaves_no_token_behind(browser: Driver, stack: Stack,
                                                       screenshots: Path) -> None:
    browser.delete_all_cookies()
    browser.get(f"{stack.registry_url}/")
    assert text_of(browser, ".session a") == "Log in"
    log_in(browser, stack)
    assert browser.current_url == f"{stack.registry_url}/"  # the token left the address bar
    assert TOKEN not in browser.page_source
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script reads it
    shot(browser, screenshots, "01-models-empty")


def test_login_form_shows_the_error_then_logs_in(browser: Driver, stack: Stack,
                                                 screenshots: Path) -> None:
    log_in(browser, stack)
    browser.find_element(By.CSS_SELECTOR, ".session button").click()
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"),
                                                         "logged out"))
    browser.get(f"{stack.registry_url}/login")
    browser.find_element(By.ID, "token").send_keys("not-the-token", Keys.ENTER)
    wait(browser).until(EC.presence_of_element_located((By.ID, "form-error")))
    assert "The API token is wrong" in text_of(browser, "#form-error")
    shot(browser, screenshots, "02-login-error")
    browser.find_element(By.ID, "token").send_keys(TOKEN, Keys.ENTER)
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".session .who")))
    assert "You are logged in." in text_of(browser, ".notice-ok")


def test_upload_promote_predict(browser: Driver, stack: Stack, screenshots: Path,
                                tmp_path: Path) -> None:
    log_in(browser, stack)
    browser.get(f"{stack.registry_url}/upload")
    shot(browser, screenshots, "03-upload")
    upload(browser, stack, "iris", write_skops(tmp_path / "iris.skops"))
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice-ok"),
                                                         "Stored version 1 of iris"))
    upload(browser, stack, "iris", write_skops(tmp_path / "iris2.skops", iris_model(C=0.5)))
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice-ok"),
                                                         "Stored version 2 of iris"))
    assert "ready" in text_of(browser, "#v2")

    browser.find_element(By.CSS_SELECTOR, "#v1 button.primary").click()  # promote v1
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice-ok"),
                                                         "production now points at version 1"))
    assert text_of(browser, "#aliases tr[data-alias=production] td") == "v1"
    browser.find_element(By.CSS_SELECTOR, "#v2 button.primary").click()  # promote v2
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice-ok"),
                                                         "version 2"))
    rollback = browser.find_element(By.CSS_SELECTOR, "#aliases tr[data-alias=production] button")
    assert rollback.text == "Roll back to v1"
    browser.find_element(By.CSS_SELECTOR, "#v2 + tr summary").click()
    shot(browser, screenshots, "04-model")

    browser.find_element(By.LINK_TEXT, "Try a prediction").click()
    for i, value in enumerate(["5.1", "3.5", "1.4", "0.2"]):
        browser.find_element(By.ID, f"f_{i}").send_keys(value)
    browser.find_element(By.NAME, "proba").click()
    browser.find_element(By.CSS_SELECTOR, "form button.primary").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "result")))
    assert text_of(browser, "#result-h") == "Result from v2"  # production is served
    assert text_of(browser, "#result td.prediction") == "0"
    shot(browser, screenshots, "05-predict")

    raw = browser.find_element(By.ID, "raw")
    raw.clear()
    raw.send_keys('{"instances": [[1, 2, 3]]}')
    browser.find_element(By.CSS_SELECTOR, "form:has(#raw) button").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "form-error")))
    assert "feature" in text_of(browser, "#form-error").lower()
    shot(browser, screenshots, "06-predict-error")


def test_a_bad_file_shows_the_servers_message(browser: Driver, stack: Stack, screenshots: Path,
                                              tmp_path: Path) -> None:
    log_in(browser, stack)
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a model\n")
    upload(browser, stack, "broken", bad)
    wait(browser).until(EC.presence_of_element_located((By.ID, "form-error")))
    expected = api_error(stack, "broken", bad)["message"]
    assert expected in text_of(browser, "#form-error")
    assert browser.find_element(By.ID, "model").get_attribute("value") == "broken"
    shot(browser, screenshots, "07-upload-error")


def test_a_pickle_needs_the_trust_box(browser: Driver, stack: Stack, tmp_path: Path) -> None:
    log_in(browser, stack)
    path = write_joblib(tmp_path / "model.joblib")
    upload(browser, stack, "pickled", path)
    wait(browser).until(EC.presence_of_element_located((By.ID, "form-error")))
    assert api_error(stack, "pickled", path)["message"] in text_of(browser, "#form-error")
    assert "highlight" in browser.find_element(By.CSS_SELECTOR, "[data-pickle-warning]") \
        .get_attribute("class")
    upload(browser, stack, "pickled", path, trust=True)
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice-ok"),
                                                         "Stored version 1 of pickled"))


def test_status_page_shows_both_servers(browser: Driver, stack: Stack, screenshots: Path) -> None:
    log_in(browser, stack)
    browser.get(f"{stack.registry_url}/status")
    assert "ready" in text_of(browser, "#inference-status h2")
    assert str(stack.home) in browser.page_source
    docs = browser.find_element(By.PARTIAL_LINK_TEXT, "Swagger UI").get_attribute("href")
    assert docs == f"{stack.inference_url}/docs"
    shot(browser, screenshots, "08-status")


def test_keyboard_and_phone_width(browser: Driver, stack: Stack, screenshots: Path) -> None:
    log_in(browser, stack)
    browser.get(f"{stack.registry_url}/")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.text == "Skip to content"
    assert focused.value_of_css_property("outline-style") != "none"
    try:
        browser.set_window_size(390, 844)
        for path in ("/", "/models/iris", "/upload", "/predict?model=iris", "/status"):
            browser.get(stack.registry_url + path)
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways at phone width: {too_wide(browser)}"
        browser.get(f"{stack.registry_url}/models/iris")
        shot(browser, screenshots, "09-model-phone")
    finally:
        browser.set_window_size(1280, 800)
