"""Write the third-party notices of everything the binary bundles, from the installed metadata.

The binary carries the Python interpreter, PyInstaller's bootloader and every runtime dependency of
`modeldepot` (its `Requires-Dist` closure). For each distribution this writes its
name, version, declared licence and home page, then the full text of every licence or notice file
the wheel ships (numpy's and scipy's include OpenBLAS, libgfortran and libquadmath, which they
bundle as shared libraries).

    python packaging/notices.py [OUTPUT]     (default: assets/THIRD-PARTY-NOTICES.txt)

build.spec runs it at build time, so the bundled copy always matches what was bundled.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LICENCE_FILE = re.compile(r"(^|/)(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[^/]*$", re.IGNORECASE)

PYTHON_NOTICE = (
    "Python {version}\n  licence: PSF-2.0 (Python Software Foundation License Version 2)\n"
    "  home page: https://www.python.org/\n  The full text is at "
    "https://docs.python.org/3/license.html; the interpreter and its standard library are "
    "bundled unmodified.\n"
)
PYINSTALLER_NOTICE = (
    "PyInstaller bootloader {version}\n  licence: GPL-2.0-or-later WITH Bootloader-exception\n"
    "  home page: https://pyinstaller.org/\n  The bootloader's licence has an exception that "
    "allows it to be used in programs under any licence; ModelDepot uses it unmodified.\n"
)


def runtime_closure(root: str = "modeldepot") -> list[metadata.Distribution]:
    """`root`'s runtime dependencies, recursively, with the extras they ask each other for
    (`uvicorn[standard]` brings uvloop and httptools) but none of root's own; sorted by name."""
    base = dict(default_environment())
    seen: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        raw_name, extras = todo.pop()
        name = canonicalize_name(raw_name)
        try:
            dist = seen.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency for another platform
        seen[name] = dist
        for extra in ("", *sorted(extras)):
            if (name, extra) in done:
                continue
            done.add((name, extra))
            for requirement in dist.requires or []:
                req = Requirement(requirement)
                if req.marker is None or req.marker.evaluate({**base, "extra": extra}):
                    todo.append((req.name, frozenset(req.extras)))
    seen.pop(canonicalize_name(root), None)
    return sorted(seen.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


def declared_licence(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return str(expression)
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and len(text) < 120:
        return text
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                   if c.startswith("License ::")]
    if classifiers:
        return ", ".join(classifiers)
    return "see the licence text below" if text else "not declared"


def home_page(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    if meta.get("Home-page"):
        return str(meta["Home-page"])
    for url in meta.get_all("Project-URL") or []:
        label, _, link = url.partition(",")
        if label.strip().lower() in ("homepage", "home", "source", "repository", "source code"):
            return link.strip()
    return "-"


def licence_texts(dist: metadata.Distribution) -> list[tuple[str, str]]:
    texts = []
    for file in dist.files or []:
        if not LICENCE_FILE.search(str(file)) or "__pycache__" in str(file):
            continue
        try:
            data = Path(str(file.locate())).read_bytes()
        except OSError:
            continue
        texts.append((str(file), data.decode("utf-8", "replace")))
    return texts


def lock_line() -> list[str]:
    """Which lock the build installed from (requirements.lock, packaging/lock.sh): two binaries
    whose notices name the same digest carry the same libraries."""
    import hashlib

    lock = ROOT / "requirements.lock"
    if not lock.is_file():
        return []
    return [f"{LOCK_PREFIX}{hashlib.sha256(lock.read_bytes()).hexdigest()}"]


LOCK_PREFIX = "Installed from requirements.lock, sha256 "


def render() -> str:
    dists = runtime_closure()
    version = metadata.version("modeldepot")
    out = [
        f"Third-party software in ModelDepot {version}",
        "=" * 60,
        "",
        "The modeldepot binary bundles the software listed below. Each is used under its own",
        "licence, reproduced after the list. Generated by packaging/notices.py from the installed",
        "distributions' metadata.",
        *lock_line(),
        "",
        PYTHON_NOTICE.format(version=".".join(map(str, sys.version_info[:3]))),
    ]
    try:
        out.append(PYINSTALLER_NOTICE.format(version=metadata.version("pyinstaller")))
    except metadata.PackageNotFoundError:
        pass
    for dist in dists:
        out.append(f"{dist.metadata['Name']} {dist.version}\n  licence: {declared_licence(dist)}\n"
                   f"  home page: {home_page(dist)}\n")
    for dist in dists:
        for filename, text in licence_texts(dist):
            out += ["", "-" * 78, f"{dist.metadata['Name']} {dist.version}: {filename}",
                    "-" * 78, "", text.rstrip()]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    output = Path(argv[0]) if argv else ROOT / "assets" / "THIRD-PARTY-NOTICES.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(), encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
