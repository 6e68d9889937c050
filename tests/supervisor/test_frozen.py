"""app/supervisor/frozen.py from source, with the attributes PyInstaller's bootloader sets faked.

The real thing (a onefile launcher killed outright) runs in tests/bundle against the built binary.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from app.supervisor import frozen


def fake_bundle(monkeypatch: pytest.MonkeyPatch, executable: Path, bundle: Path) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    monkeypatch.setattr(sys, "executable", str(executable))


def test_from_source_there_is_no_unpack_folder_and_no_watch() -> None:
    assert frozen.unpack_dir() is None
    assert frozen.watch_bootloader() is None


def test_onefile_unpack_folder_is_the_bundle(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    (tmp_path / "_MEIabc123").mkdir()
    fake_bundle(monkeypatch, tmp_path / "dist" / "modeldepot", tmp_path / "_MEIabc123")
    assert frozen.unpack_dir() == (tmp_path / "_MEIabc123").resolve()


def test_onedir_build_has_no_unpack_folder(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    app_dir = tmp_path / "modeldepot-dir"
    fake_bundle(monkeypatch, app_dir / "modeldepot", app_dir / "_internal")
    assert frozen.unpack_dir() is None


def test_watch_refuses_a_parent_that_is_not_our_launcher(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    # pytest's parent is a shell or CI runner, not this (fake) executable.
    (tmp_path / "_MEIabc123").mkdir()
    fake_bundle(monkeypatch, tmp_path / "dist" / "modeldepot", tmp_path / "_MEIabc123")
    assert frozen.watch_bootloader() is None


def test_folder_removed_only_once_the_launcher_is_gone(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    folder = tmp_path / "_MEIabc123"
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "libpython.so").write_bytes(b"\0" * 16)
    fake_bundle(monkeypatch, tmp_path / "dist" / "modeldepot", folder)

    frozen.remove_unpack_dir_if_orphaned(os.getppid())  # the launcher is still our parent
    assert folder.exists()
    frozen.remove_unpack_dir_if_orphaned(None)  # no launcher was ever watched
    assert folder.exists()
    frozen.remove_unpack_dir_if_orphaned(os.getppid() + 100_000)  # we were re-parented
    assert not folder.exists()
