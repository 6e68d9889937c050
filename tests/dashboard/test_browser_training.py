"""Datasets and training in headless Chromium: upload a CSV, train with a live progress bar and
log tail, then predict with the new version."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.dashboard.conftest import Stack
from tests.dashboard.test_browser import Driver, log_in, shot, text_of, wait
from tests.registry.jobdata import SLOW_ROWS, classification_csv

pytestmark = pytest.mark.slow


def test_dataset_then_training_with_live_progress(browser: Driver, stack: Stack,
                                                  screenshots: Path, tmp_path: Path) -> None:
    log_in(browser, stack)
    csv = tmp_path / "churn.csv"
    csv.write_bytes(classification_csv(rows=SLOW_ROWS))
    browser.get(f"{stack.registry_url}/datasets")
    browser.find_element(By.ID, "file").send_keys(str(csv))
    browser.find_element(By.ID, "name").send_keys("churn")
    browser.find_element(By.CSS_SELECTOR, ".dataset-form button[type=submit]").click()
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice-ok"),
                                                         f"{SLOW_ROWS} rows, 5 columns"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#preview tbody tr")) == 20
    shot(browser, screenshots, "10-dataset")

    browser.find_element(By.LINK_TEXT, "Train a model on it").click()
    browser.find_element(By.ID, "model").send_keys("churn")
    browser.find_element(By.ID, "alias").send_keys("production")
    params = browser.find_element(By.ID, "params")
    params.clear()
    params.send_keys('{"n_estimators": 800, "max_depth": 10}')
    shot(browser, screenshots, "11-train")
    browser.find_element(By.CSS_SELECTOR, ".train-form button[type=submit]").click()
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-job-poll]")))
    browser.execute_script("window.stillTheSamePage = true")

    def moving(driver: Driver) -> bool:
        # Progress that the page's script updated, with no reload: the live view works.
        value = float(driver.find_element(By.CSS_SELECTOR, "progress.job-progress")
                      .get_attribute("value"))
        return 0 < value < 1 and bool(driver.execute_script("return window.stillTheSamePage"))

    wait(browser, 60).until(moving)
    wait(browser, 30).until(lambda d: "Fitt" in d.find_element(By.CSS_SELECTOR, "[data-log]").text)
    shot(browser, screenshots, "12-job-running")
    wait(browser, 180).until(EC.presence_of_element_located((By.ID, "job-result")))
    assert text_of(browser, "[data-status]") == "succeeded"
    assert "churn v1" in text_of(browser, "#job-result")
    shot(browser, screenshots, "13-job-done")

    browser.find_element(By.LINK_TEXT, "Try a prediction").click()
    for i, value in enumerate(["2.0", "1.0", "0", "0"]):
        browser.find_element(By.ID, f"f_{i}").send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "form button.primary").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "result")))
    assert text_of(browser, "#result td.prediction") == "1"
    browser.get(f"{stack.registry_url}/jobs")
    assert "succeeded" in text_of(browser, "#jobs tbody")
    shot(browser, screenshots, "14-jobs")
