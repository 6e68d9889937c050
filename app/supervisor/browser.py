"""Open the dashboard in the default browser, token included so the page can act."""

from __future__ import annotations

import logging
import os
import sys
import threading
from urllib.parse import quote

log = logging.getLogger(__name__)


def dashboard_url(registry_url: str, token: str | None) -> str:
    return f"{registry_url}/?token={quote(token, safe='')}" if token else f"{registry_url}/"


def has_graphical_session() -> bool:
    # Without a display, webbrowser falls back to text browsers (lynx, w3m) that would take over
    # the terminal or a service's stdin; better to print the address and let the user open it.
    if sys.platform in ("win32", "darwin") or os.environ.get("BROWSER"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_dashboard(url: str, *, wait: bool) -> bool:
    """Open `url`; with wait=False in a daemon thread, so the watch loop never blocks on it."""
    if not has_graphical_session():
        log.info("No graphical session: open the dashboard yourself (modeldepot token prints the "
                 "token).")
        return False

    def run() -> None:
        import webbrowser

        try:
            if not webbrowser.open(url, new=2):
                log.warning("Could not open a browser; open the dashboard yourself.")
        except Exception as exc:  # a broken browser setup must not stop the servers
            log.warning("Could not open a browser (%s); open the dashboard yourself.", exc)

    if wait:
        run()
    else:
        threading.Thread(target=run, name="modeldepot-browser", daemon=True).start()
    return True
