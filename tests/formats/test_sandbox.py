"""The sandbox: client files are opened in a confined, throwaway process, never in a server.

Real child processes throughout, both ways a child comes to be: forked by the zygote
(`python -m app sandbox-zygote`, the default) and as a new `python -m app sandbox-child`
(`via_zygote=False`, also what a request falls back to when the zygote fails).
tests/formats/test_sandbox_zygote.py has what only the zygote does.
"""

from __future__ import annotations

import copy
import platform
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io
from sklearn.ensemble import RandomForestClassifier

from app.errors import InvalidModelFile, TrustRequired, UnsafeModel
from app.formats import SandboxLimits, inspect_upload, load_predictor
from app.store.blobs import BlobStore
from tests.formats.test_pickle import OsSystem


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", tmp_path / "tmp")


@pytest.fixture(params=[True, False], ids=["zygote", "new-process"])
def via_zygote(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture(scope="session")
def big_forest(iris: tuple[np.ndarray, np.ndarray]) -> RandomForestClassifier:
    """A hundred trees: the child needs most of a second to convert them to skops."""
    return RandomForestClassifier(n_estimators=100, random_state=0).fit(*iris)


def _temp_files(blobs: BlobStore) -> list[Path]:
    return sorted(blobs.tmp.iterdir())


def test_trusted_joblib_is_served_from_a_skops_copy(
    forest: Any, rows: np.ndarray, blobs: BlobStore, tmp_path: Path, via_zygote: bool
) -> None:
    path = tmp_path / "forest.joblib"
    joblib.dump(forest, path, compress=3)
    with pytest.raises(TrustRequired):
        inspect_upload(path, trust=False, receive=blobs.receive, via_zygote=via_zygote)
    assert _temp_files(blobs) == []
    result = inspect_upload(path, trust=True, receive=blobs.receive, filename=path.name,
                            via_zygote=via_zygote)
    assert (result.format, result.format_detail) == ("pickle", "joblib")
    assert result.served is not None and result.served.format == "skops"
    assert result.served.temp.parent == blobs.tmp
    data = result.served.temp.read_bytes()
    assert len(data) == result.served.size
    skops.io.get_untrusted_types(data=data)  # a real skops file
    predictor = load_predictor(result.served.temp, "skops", signature=result.signature)
    np.testing.assert_array_equal(predictor.predict(rows), forest.predict(rows))
    np.testing.assert_array_equal(predictor.predict_proba(rows), forest.predict_proba(rows))


def test_skops_needs_no_copy(
    logreg: Any, blobs: BlobStore, tmp_path: Path, via_zygote: bool
) -> None:
    path = tmp_path / "m.skops"
    path.write_bytes(skops.io.dumps(logreg))
    result = inspect_upload(path, trust=False, receive=blobs.receive, via_zygote=via_zygote)
    assert (result.format, result.served) == ("skops", None)
    assert result.signature is not None and result.signature.n_features == 4
    assert _temp_files(blobs) == []


def test_hostile_pickle_refused_in_the_child(
    blobs: BlobStore, tmp_path: Path, via_zygote: bool
) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "m.pkl"
    import pickle

    path.write_bytes(pickle.dumps(OsSystem(marker)))
    with pytest.raises(UnsafeModel, match="os.system|posix.system"):
        inspect_upload(path, trust=True, receive=blobs.receive, via_zygote=via_zygote)
    assert not marker.exists()
    assert _temp_files(blobs) == []


def test_memory_limit_is_reported_as_such(
    logreg: Any, blobs: BlobStore, tmp_path: Path, via_zygote: bool
) -> None:
    path = tmp_path / "m.joblib"
    joblib.dump(logreg, path)
    with pytest.raises(InvalidModelFile, match="sandbox_memory_mb"):
        # A limit below what the already imported libraries occupy: the first allocation fails.
        inspect_upload(path, trust=True, receive=blobs.receive,
                       limits=SandboxLimits(memory_mb=64, seconds=60), via_zygote=via_zygote)
    assert _temp_files(blobs) == []


def test_time_limit_stops_the_child(
    big_forest: Any, blobs: BlobStore, tmp_path: Path, via_zygote: bool
) -> None:
    path = tmp_path / "m.joblib"
    joblib.dump(big_forest, path)
    with pytest.raises(InvalidModelFile, match="sandbox_seconds"):
        # Converting a hundred trees to skops takes the child far longer than a tenth of a
        # second, even with its libraries imported by the zygote.
        inspect_upload(path, trust=True, receive=blobs.receive,
                       limits=SandboxLimits(memory_mb=4096, seconds=0.1), via_zygote=via_zygote)
    assert _temp_files(blobs) == []


def write_crashing_tree(forest: Any, path: Path) -> Path:
    """A real skops file of a tree whose root's left child is far outside its nodes."""
    tree = copy.deepcopy(forest.estimators_[0])  # never the shared fixture: this one crashes
    state = tree.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 50_000_000
    state["nodes"] = nodes
    tree.tree_.__setstate__(state)
    path.write_bytes(skops.io.dumps(tree))
    return path


def test_a_crash_in_the_child_is_a_422_naming_the_signal(
    forest: Any, blobs: BlobStore, tmp_path: Path, via_zygote: bool
) -> None:
    """A tree whose child index points far outside its nodes: scikit-learn's native predict
    reads out of bounds. Whatever stops it (a structure check or the canary's crash), the
    answer is a clear refusal and this process never loaded the file."""
    path = write_crashing_tree(forest, tmp_path / "bad.skops")
    with pytest.raises(InvalidModelFile) as info:
        inspect_upload(path, trust=False, receive=blobs.receive, via_zygote=via_zygote)
    assert "SIG" in info.value.message or "node" in info.value.message, info.value.message
    assert _temp_files(blobs) == []


CONFINED = textwrap.dedent("""
    import os, socket, subprocess, sys, threading
    from pathlib import Path
    import numpy as np
    from app.formats.confine import Limits, confine

    marker = Path(sys.argv[1])
    assert confine(Limits(memory_bytes=4 << 30, cpu_seconds=30))
    attempts = {
        "write a file": lambda: open(marker, "w"),
        "create with os.open": lambda: os.open(marker, os.O_CREAT | os.O_WRONLY),
        "append": lambda: open(__file__, "a"),
        "mkdir": lambda: os.mkdir(marker),
        "rename": lambda: os.rename(__file__, marker),
        "unlink": lambda: os.unlink(__file__),
        "chmod": lambda: os.chmod(__file__, 0o777),
        "socket": lambda: socket.socket(),
        "exec": lambda: os.execv("/bin/sh", ["sh", "-c", f"touch {marker}"]),
        "subprocess": lambda: subprocess.run(["touch", str(marker)]),
        "fork": lambda: os.fork(),
        "signal the parent": lambda: os.kill(os.getppid(), 0),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except OSError:
            continue
        print("ALLOWED", name)
    assert Path(__file__).read_text()  # reading stays allowed
    threading.Thread(target=lambda: None).start()  # threads stay allowed
    a = np.ones((300, 300))
    assert (a @ a)[0, 0] == 300.0
    os.kill(os.getpid(), 0)  # its own process may be signalled
    print("DONE")
""")


@pytest.mark.skipif(sys.platform != "linux", reason="seccomp is Linux-only")
def test_confined_process_can_read_and_compute_but_not_write_connect_or_spawn(
    tmp_path: Path,
) -> None:
    script = tmp_path / "confined.py"
    script.write_text(CONFINED)
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, str(script), str(marker)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["DONE"], done.stdout
    assert not marker.exists()
    assert script.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="seccomp is Linux-only")
def test_confinement_reports_the_filter_where_the_kernel_applies_it() -> None:
    """Natively the probe installs the filter and the line the registry logs (and `modeldepot
    doctor` prints) says so; under qemu-user the aarch64 binary says the opposite, which the
    bundle tests check (tests/bundle/test_binary.py)."""
    from app.formats.confine import confinement, filter_installs

    assert filter_installs()
    filtered, how = confinement()
    assert filtered, how
    assert how.startswith(f"seccomp filter ({platform.machine()})"), how


@pytest.mark.parametrize("signal_number, name", [(11, "SIGSEGV"), (6, "SIGABRT"), (9, "SIGKILL")])
def test_a_child_killed_by_a_signal_is_reported_by_name(signal_number: int, name: str) -> None:
    """What the registry says when native code crashes the child (the structure checks now stop
    the known crashes first, so the reporting is checked on its own)."""
    from app.formats.sandbox import _result

    with pytest.raises(InvalidModelFile, match=f"crashed the process that checks it \\({name}\\)"):
        _result(None, -signal_number, False, SandboxLimits(), None, b"")
