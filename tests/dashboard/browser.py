"""Headless Debian Chromium driven by Selenium, with nothing downloaded at any point.

Selenium Manager (which fetches browsers and drivers) is never consulted: the driver's path is
given explicitly and SE_OFFLINE forbids it anyway. Chromium's own background traffic (updates,
sync, QUIC probes) is switched off, so a test run sends nothing beyond loopback.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 800)
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--password-store=basic",
)


def missing() -> str | None:
    """Why a browser cannot be started here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return (f"{path} is missing: install Debian's chromium and chromium-driver "
                    "(packaging/ci-system-packages.sh does it for CI).")
    return None


def start_chromium(profile: Path):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    return driver


def full_page_screenshot(driver, path: Path) -> None:  # type: ignore[no-untyped-def]
    """A PNG of the whole page at the window's width, through the DevTools protocol."""
    import base64

    size = driver.execute_script(
        "return [document.documentElement.clientWidth, document.documentElement.scrollHeight]")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
    })
    path.write_bytes(base64.b64decode(shot["data"]))


def screenshot_dir() -> Path:
    """artifacts/screenshots at the repo root (gitignored), emptied once per run."""
    root = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    return root
