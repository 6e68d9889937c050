"""The dashboard's pictures in headless Chromium, over a real registry and inference server: the
charts carry the numbers scikit-learn computes on the same split, traffic redraws in place."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split

from app.formats import load_predictor
from app.formats.signature import Signature
from tests.conftest import TOKEN
from tests.dashboard.conftest import Stack
from tests.dashboard.test_browser import Driver, log_in, shot
from tests.registry.jobdata import FINAL, classification_csv, regression_csv, wait_until

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def call(url: str, method: str = "GET", body: bytes | None = None,
         content_type: str = "application/json") -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={**AUTH, "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def add_dataset(stack: Stack, data: bytes) -> str:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            "filename=\"d.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    status, answer = call(f"{stack.registry_url}/api/v1/datasets", "POST", body,
                          f"multipart/form-data; boundary={boundary}")
    assert status in (200, 201), answer
    return str(answer["id"])


def train(stack: Stack, **body: Any) -> dict[str, Any]:
    status, job = call(f"{stack.registry_url}/api/v1/jobs", "POST", json.dumps(body).encode())
    assert status == 202, job
    done: dict[str, Any] = wait_until(
        lambda: (j := call(f"{stack.registry_url}/api/v1/jobs/{job['id']}")[1])["status"]
        in FINAL and j, "the training job", 180)
    assert done["status"] == "succeeded", done
    return done


def svg_values(driver: Driver, css: str, *names: str) -> list[tuple[str, ...]]:
    return [tuple(el.get_attribute(f"data-{n}") for n in names)
            for el in driver.find_elements(By.CSS_SELECTOR, css)]


def expected_confusion(stack: Stack, csv: bytes, version: dict[str, Any]) -> np.ndarray:
    """scikit-learn's confusion matrix of the stored model on the job's split, made here."""
    rows = np.loadtxt(io.BytesIO(csv), delimiter=",", skiprows=1)
    X, y = rows[:, :-1], rows[:, -1].astype(int)
    _, X_test, _, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    request = urllib.request.Request(
        f"{stack.registry_url}/api/v1/models/{version['model']}/versions/"
        f"{version['version']}/artifact", headers=AUTH)
    path = stack.home.parent / f"v{version['version']}.skops"
    with urllib.request.urlopen(request, timeout=30) as response:
        path.write_bytes(response.read())
    model = load_predictor(path, "skops", signature=Signature.from_dict(version["signature"]))
    return confusion_matrix(y_test, model.predict(X_test), labels=[0, 1])


def test_charts_carry_the_numbers(browser: Driver, stack: Stack, screenshots: Path) -> None:
    log_in(browser, stack)
    csv = classification_csv(rows=400)
    dataset = add_dataset(stack, csv)
    base = {"kind": "train", "model": "pictures", "dataset": dataset, "target": "label",
            "estimator": "sklearn.ensemble.RandomForestClassifier", "random_state": 0}
    train(stack, **base, params={"n_estimators": 5, "max_depth": 2})
    done = train(stack, **base, params={"n_estimators": 40}, alias="production")
    status, version = call(f"{stack.registry_url}/api/v1/models/pictures/versions/2")
    assert status == 200 and version["evaluation"]["rows"] == 100

    # The version page: the confusion matrix is scikit-learn's on the same split.
    browser.get(f"{stack.registry_url}/models/pictures/versions/2")
    expected = expected_confusion(stack, csv, version)
    cells = svg_values(browser, "svg[data-chart=confusion] rect.cell", "true", "predicted",
                       "count")
    assert sorted((int(t), int(p), int(c)) for t, p, c in cells) == [
        (t, p, int(expected[t, p])) for t in (0, 1) for p in (0, 1)]
    roc = browser.find_element(By.CSS_SELECTOR, "figure[data-chart=roc] figcaption").text
    assert f"AUC {done['metrics']['roc_auc']:.4f}" in roc
    bars = svg_values(browser, "svg[data-chart=features] rect.bar", "name", "value")
    assert [name for name, _ in bars][:2] == ["f0", "f1"]
    assert [float(v) for _, v in bars] == [f["importance"] for f in
                                           version["evaluation"]["features"]]
    shot(browser, screenshots, "20-version-evaluation")

    # The model page: each metric across versions, the alias marked.
    browser.get(f"{stack.registry_url}/models/pictures")
    accuracy = browser.find_element(
        By.XPATH, "//figure[figcaption[starts-with(., 'accuracy by version')]]")
    points = svg_values(accuracy, "[data-series=accuracy].point", "label", "y", "mark")
    assert points[1] == ("v2", str(done["metrics"]["accuracy"]), "production")
    assert points[0][0] == "v1" and points[0][2] is None

    # Traffic: five predictions and a refused one, then three more drawn without a reload.
    predict = f"{stack.inference_url}/v1/models/pictures/predict"
    row = json.dumps({"instances": [[0.1, 0.2, 0.3, 0.4]]}).encode()
    for _ in range(5):
        assert call(predict, "POST", row)[0] == 200
    assert call(predict, "POST", json.dumps({"instances": [[1.0]]}).encode())[0] == 422

    def totals(driver: Driver) -> tuple[float, float]:
        """Requests and errors of this model (the status page also shows other tests' ones)."""
        figure = driver.find_element(By.XPATH, "//figure[@data-chart='traffic']"
                                     "[figcaption[starts-with(., 'pictures:')]]")
        found = {s: sum(float(y) for (y,) in svg_values(
            figure, f"[data-series={s}].point", "y")) for s in ("requests", "errors")}
        return found["requests"], found["errors"]

    browser.get(f"{stack.registry_url}/models/pictures")
    assert totals(browser) == (6.0, 1.0)
    p50 = svg_values(browser, "svg[data-chart=latency] [data-series=p50].point", "y")
    assert p50 and all(float(y) > 0 for (y,) in p50)
    shot(browser, screenshots, "21-model-history-and-traffic")
    browser.execute_script("window.stillTheSamePage = true")
    for _ in range(3):
        assert call(predict, "POST", row)[0] == 200
    browser.execute_script(
        "document.querySelector('#traffic [data-refresh]').dispatchEvent(new Event('refresh'))")
    # The swap may land between two reads of the chart: read it again then.
    WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: totals(d) == (9.0, 1.0))
    assert browser.execute_script("return window.stillTheSamePage") is True

    # The status page: the box and the traffic of every model.
    browser.get(f"{stack.registry_url}/status")
    meters = {name: (float(value), capacity) for name, value, capacity in svg_values(
        browser, "svg .meter", "name", "value", "capacity")}
    assert meters["data dir"][0] > 0 and float(meters["data dir"][1]) > meters["data dir"][0]
    assert meters["registry"][0] > 10e6 and meters["inference server"][0] > 10e6
    assert float(meters["memory the loaded models took (RSS)"][1]) == 2048 << 20
    assert meters["memory the loaded models took (RSS)"][0] > 0
    assert totals(browser) == (9.0, 1.0)
    shot(browser, screenshots, "22-status-box-and-traffic")


def test_a_regressor_gets_predicted_against_actual(browser: Driver, stack: Stack,
                                                   screenshots: Path) -> None:
    log_in(browser, stack)
    dataset = add_dataset(stack, regression_csv(rows=200))
    train(stack, kind="train", model="prices", dataset=dataset, target="price",
          estimator="sklearn.linear_model.Ridge", random_state=0)
    status, version = call(f"{stack.registry_url}/api/v1/models/prices/versions/1")
    browser.get(f"{stack.registry_url}/models/prices/versions/1")
    bins = svg_values(browser, "svg[data-chart=residuals] rect.bar", "count")
    assert sum(int(c) for (c,) in bins) == version["evaluation"]["rows"] == 50
    points = svg_values(browser, "svg[data-chart=scatter] .point", "x", "y")
    scatter = version["evaluation"]["scatter"]
    assert [(float(x), float(y)) for x, y in points] == list(
        zip(scatter["actual"], scatter["predicted"], strict=True))
    assert browser.find_elements(By.CSS_SELECTOR, "svg[data-chart=scatter] line.reference")
    shot(browser, screenshots, "23-regressor-evaluation")
