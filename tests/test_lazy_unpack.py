"""The onefile build's deferred unpacking (app/lazy_unpack.py), from source.

The built binary uses it on every start (tests/bundle); here each piece is checked on its own:
which files go in which zip, how they come out, the import that triggers it, and several
processes sharing one unpack folder.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import lazy_unpack
from app.lazy_unpack import MODEL_LIBRARIES, NUMPY, ONNX_RUNTIME, Part, deferred_part, extract

ROOT = Path(__file__).resolve().parents[1]
PROBE = Part("probe.zip", frozenset({"mdprobe_pkg"}), frozenset({"mdprobe_pkg"}))


def make_payload(folder: Path, members: dict[str, bytes], modes: dict[str, int] | None = None
                 ) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PROBE.payload
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = ((modes or {}).get(name, 0o644) | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize(("bundle_path", "part"), [
    ("scipy/linalg/_flapack.cpython-311-x86_64-linux-gnu.so", MODEL_LIBRARIES),
    ("scipy.libs/libscipy_openblas-6cdc3b4a.so", MODEL_LIBRARIES),
    ("sklearn/datasets/data/iris.csv", MODEL_LIBRARIES),
    ("scikit_learn.libs/libgomp-e985bcbb.so.1.0.0", MODEL_LIBRARIES),
    ("onnxruntime/capi/onnxruntime_pybind11_state.so", ONNX_RUNTIME),
    ("onnx/onnx_cpp2py_export.so", MODEL_LIBRARIES),
    ("ml_dtypes/_ml_dtypes_ext.so", MODEL_LIBRARIES),
    ("sklearn\\tree\\_tree.pyd", MODEL_LIBRARIES),  # Windows separators
    ("numpy/_core/_multiarray_umath.so", NUMPY),
    ("numpy.libs/libscipy_openblas64_-32a4b2a6.so", NUMPY),
    # The bootloader's: metadata importlib.metadata reads without an import, top-level shared
    # libraries many packages load, our own files.
    ("scipy-1.17.1.dist-info/METADATA", None),
    ("numpy-2.4.6.dist-info/METADATA", None),
    ("libstdc++.so.6", None),
    ("app/inference/static/swagger-ui-bundle.js", None),
    ("scipy", None),  # a file named like a package at the top
])
def test_each_deferred_file_goes_in_its_package_zip(bundle_path: str, part: Part | None) -> None:
    assert deferred_part(bundle_path) is part


def test_extract_writes_every_member_complete_with_its_mode(tmp_path: Path) -> None:
    members = {"pkg/__init__.py": b"", "pkg/sub/lib.so": os.urandom(300_000),
               "pkg.libs/libx.so": b"\x7fELF" + b"x" * 1000}
    archive = make_payload(tmp_path / "src", members, {"pkg/sub/lib.so": 0o755})
    out = tmp_path / "bundle"
    out.mkdir()
    extract(archive, out)
    for name, data in members.items():
        assert (out / name).read_bytes() == data
    assert stat.S_IMODE((out / "pkg/sub/lib.so").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "pkg/__init__.py").stat().st_mode) == 0o644
    assert not list(out.rglob("*.part"))


@pytest.mark.parametrize("name", ["../outside.so", "pkg/../../outside.so", "/abs/outside.so"])
def test_extract_refuses_a_member_that_leaves_the_folder(tmp_path: Path, name: str) -> None:
    archive = make_payload(tmp_path / "src", {"pkg/ok.so": b"ok", name: b"evil"})
    out = tmp_path / "deep" / "bundle"
    out.mkdir(parents=True)
    with pytest.raises(ValueError, match="leaves the folder"):
        extract(archive, out)
    assert not (tmp_path / "deep" / "outside.so").exists()
    assert not (tmp_path / "outside.so").exists() and not Path("/abs/outside.so").exists()


@pytest.fixture
def probe_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path that holds a deferred zip of one package, not yet unpacked."""
    folder = tmp_path / "bundle"
    make_payload(folder, {"mdprobe_pkg/__init__.py": b"from mdprobe_pkg.inner import VALUE\n",
                          "mdprobe_pkg/inner.py": b"VALUE = 42\n"})
    sys.path.insert(0, str(folder))
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.partition(".")[0] == "mdprobe_pkg"]:
            del sys.modules[name]
        importlib.invalidate_caches()


def test_the_first_import_of_a_deferred_package_unpacks_it(probe_folder: Path) -> None:
    # The path finder has already listed the folder (without the package) before the import.
    assert importlib.util.find_spec("mdprobe_pkg") is None
    unpacker = lazy_unpack._Unpacker(probe_folder, PROBE)
    finder = lazy_unpack._UnpackOnImport([unpacker])
    sys.meta_path.insert(0, finder)
    try:
        assert not unpacker.done
        import mdprobe_pkg  # type: ignore[import-not-found]

        assert mdprobe_pkg.VALUE == 42
        assert unpacker.done and (probe_folder / "mdprobe_pkg" / "inner.py").is_file()
        # Other imports pass through untouched.
        assert finder.find_spec("json", None) is None
    finally:
        sys.meta_path.remove(finder)


def test_a_failed_unpack_is_an_import_error_that_says_why(probe_folder: Path) -> None:
    (probe_folder / PROBE.payload).write_bytes(b"not a zip")  # a bad copy, a full disk
    unpacker = lazy_unpack._Unpacker(probe_folder, PROBE)
    finder = lazy_unpack._UnpackOnImport([unpacker])
    sys.meta_path.insert(0, finder)
    try:
        with pytest.raises(ImportError, match="unpacking probe.zip into .* failed"):
            import mdprobe_pkg  # type: ignore[import-not-found]  # noqa: F401
        assert not unpacker.done
    finally:
        sys.meta_path.remove(finder)


UNPACK_AND_REPORT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from app.lazy_unpack import Part, _Unpacker
    folder = Path(sys.argv[1])
    part = Part("probe.zip", frozenset({"pkg"}), frozenset({"pkg"}))
    _Unpacker(folder, part).unpack("test")
    print(os.stat(folder / "pkg" / "big.bin").st_ino)
""")


def test_processes_sharing_a_folder_unpack_it_once_and_wait_for_each_other(
        tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    big = os.urandom(8 << 20)
    make_payload(folder, {"pkg/big.bin": big, "pkg/small.txt": b"small"})
    procs = [subprocess.Popen([sys.executable, "-c", UNPACK_AND_REPORT, str(folder)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    # Every process returned only once the file was whole, and it was written once: a second
    # extraction would have replaced it with a new inode.
    assert len({out.strip() for out, _ in results}) == 1
    assert (folder / "pkg" / "big.bin").read_bytes() == big
    assert (folder / PROBE.done_marker).exists()
    assert not (folder / PROBE.payload).exists()  # no second copy of what is unpacked
    assert lazy_unpack._Unpacker(folder, PROBE).done  # a process started later knows


def test_outside_a_onefile_build_nothing_is_installed() -> None:
    before = list(sys.meta_path)
    lazy_unpack.install()
    assert sys.meta_path == before
    assert lazy_unpack.unpack_in_background([NUMPY], [ONNX_RUNTIME, MODEL_LIBRARIES]) is None


def test_a_stop_ends_unpacking_between_files_and_leaves_no_marker(tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    make_payload(folder, {"pkg/a.bin": b"a", "pkg/b.bin": b"b"})
    stop = threading.Event()
    stop.set()
    with pytest.raises(lazy_unpack.Stopped):
        lazy_unpack._Unpacker(folder, PROBE).unpack("test", stop)
    assert not (folder / PROBE.done_marker).exists() and not (folder / "pkg").exists()
    lazy_unpack._Unpacker(folder, PROBE).unpack("test")  # a later import still gets it all
    assert (folder / "pkg" / "b.bin").read_bytes() == b"b"


def test_stop_unpacking_waits_for_the_background_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "bundle"
    make_payload(folder, {f"pkg/{i}.bin": os.urandom(4 << 20) for i in range(12)})
    monkeypatch.setattr(lazy_unpack, "_unpackers",
                        {PROBE.payload: lazy_unpack._Unpacker(folder, PROBE)})
    monkeypatch.setattr(lazy_unpack, "_stop", threading.Event())
    monkeypatch.setattr(lazy_unpack, "_threads", [])
    thread = lazy_unpack.unpack_in_background(then=[PROBE])
    assert thread is not None
    lazy_unpack.stop_unpacking()
    assert not thread.is_alive()
    # Whatever it had written is whole; nothing is written after the stop returned.
    written = sorted(folder.rglob("*.bin"))
    assert not list(folder.rglob("*.part"))
    time.sleep(0.2)
    assert sorted(folder.rglob("*.bin")) == written
