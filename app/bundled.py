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
