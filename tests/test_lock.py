"""The lock file: every dependency the build and CI install is pinned with hashes, and the
binary says which lock and which libraries it carries (`version --verbose`, `notices`)."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app import bundled

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", re.MULTILINE)


def locked() -> dict[str, str]:
    return {canonicalize_name(n): v for n, v in PIN.findall(LOCK.read_text())}


def test_every_declared_dependency_is_pinned_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in ("test", "build"):
        declared += project["optional-dependencies"][extra]
    pins = locked()
    missing = [r for r in declared if canonicalize_name(Requirement(r).name) not in pins]
    assert not missing, f"not in requirements.lock (run packaging/lock.sh): {missing}"
    for requirement in map(Requirement, declared):
        version = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text())
    unhashed = [b.split()[0] for b in blocks
                if "==" in b.split("\n")[0] and "--hash=sha256:" not in b]
    assert not unhashed


def test_notices_record_the_lock_and_version_lists_the_libraries() -> None:
    spec = importlib.util.spec_from_file_location("notices", ROOT / "packaging" / "notices.py")
    assert spec is not None and spec.loader is not None
    notices = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(notices)
    line = notices.lock_line()[0]
    assert bundled.lock_digest(f"header\n{line}\n") == hashlib.sha256(LOCK.read_bytes()).hexdigest()

    libraries = dict(bundled.bundled_libraries(bundled.third_party_notices()))
    assert {"scikit-learn", "numpy", "onnxruntime", "Python"} <= set(libraries)
    out = subprocess.run([sys.executable, "-m", "app", "version", "--verbose"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.startswith("modeldepot ")
    assert f"scikit-learn{' ' * 12} {libraries['scikit-learn']}" in out
    assert "requirements.lock sha256" in out and "data schema" in out
