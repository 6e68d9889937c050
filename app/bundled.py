"""Bundled files that are not Python: the icon and the third-party notices (`assets/` in the repo).

From source they sit in the repository's `assets/`; in the PyInstaller binary, build.spec puts them
in the bundle, which the bootloader exposes as `sys._MEIPASS` (the unpack folder of a onefile build,
the `_internal` folder of a onedir one). Never the working directory: the binary runs from anywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

NOTICES = "THIRD-PARTY-NOTICES.txt"
ICON = "modeldepot.png"


def assets_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and bundle:
        return Path(bundle) / "assets"
    return Path(__file__).resolve().parent.parent / "assets"


def asset(name: str) -> Path:
    """The path of a bundled file; FileNotFoundError names where it was looked for."""
    path = assets_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"The bundled file {name} is missing from {path.parent}.")
    return path


def third_party_notices() -> str:
    return asset(NOTICES).read_text(encoding="utf-8")


LOCK_PREFIX = "Installed from requirements.lock, sha256 "  # as packaging/notices.py writes it


def bundled_libraries(notices: str) -> list[tuple[str, str]]:
    """(name, version) of each piece of software the notices list: a line `name version`
    followed by a `  licence:` line, as packaging/notices.py writes them."""
    lines = notices.splitlines()
    found = []
    for line, following in zip(lines, lines[1:], strict=False):
        if following.startswith("  licence:") and " " in line:
            name, _, version = line.rpartition(" ")
            found.append((name, version))
    return found


def lock_digest(notices: str) -> str | None:
    """The sha256 of the requirements.lock the build installed from, when the notices say."""
    for line in notices.splitlines()[:12]:
        if line.startswith(LOCK_PREFIX):
            return line.removeprefix(LOCK_PREFIX).strip()
    return None
