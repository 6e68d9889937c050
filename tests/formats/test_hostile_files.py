"""Hostile skops, pickle, joblib and MLflow files: each would create `marker` if anything in it
ran; every test checks the marker never appears and the refusal is a 4xx error."""

from __future__ import annotations

import io
import pickle
import struct
import tracemalloc
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io

from app.errors import InvalidModelFile, UnsafeModel
from app.formats import inspect_file, load_predictor, pickle_format
from app.formats.pickle_format import load_pickle, scan
from app.formats.pickle_scan import PickleScan
from tests.formats import hostile

UNREADABLE = "cannot read it the way the loader would|could crash the loader"


def test_the_payloads_are_live(tmp_path: Path) -> None:
    """Without the allow-list these files do run code, so the marker checks mean something."""
    markers = [tmp_path / f"m{i}" for i in range(3)]
    hostile.pickle_live(hostile.runstring_pickle(markers[0]))
    data = hostile.runstring_skops(markers[1])
    skops.io.load(io.BytesIO(data), trusted=skops.io.get_untrusted_types(data=data))
    module, attr = hostile.os_reexports()[0]
    hostile.pickle_live(hostile.os_system_via_reexport_pickle(module, attr, markers[2]))
    assert all(m.exists() for m in markers)


def _refused_everywhere(path: Path, fmt: str, marker: Path, *, pickled: bool) -> None:
    for trust in (False, True):
        with pytest.raises(UnsafeModel) as info:
            inspect_file(path, trust=trust)
        assert info.value.status < 500 and str(path.parent) not in info.value.message
    if pickled:  # servers never open pickles; the sandbox's guarded loader refuses the name
        with pytest.raises(InvalidModelFile, match="never open pickles"):
            load_predictor(path, fmt)
        if fmt == "pickle":
            with pytest.raises(UnsafeModel):
                pickle_format.load_pickle(path)
    else:
        with pytest.raises(UnsafeModel):
            load_predictor(path, fmt)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["skops", "pickle", "mlflow-skops", "mlflow-pickle"])
def test_a_numpy_function_that_runs_code_is_refused(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    skops_bytes, pickle_bytes = hostile.runstring_skops(marker), hostile.runstring_pickle(marker)
    data, fmt = {
        "skops": (skops_bytes, "skops"), "pickle": (pickle_bytes, "pickle"),
        "mlflow-skops": (hostile.mlflow_zip(skops_bytes, "skops"), "mlflow"),
        "mlflow-pickle": (hostile.mlflow_zip(pickle_bytes, "cloudpickle"), "mlflow"),
    }[kind]
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    _refused_everywhere(path, fmt, marker, pickled=kind.endswith("pickle"))


def test_every_reexport_of_os_is_refused_in_skops_pickle_and_mlflow(tmp_path: Path) -> None:
    reexports = hostile.os_reexports()
    assert len(reexports) >= 10  # the class the review found: os inside numpy and scipy modules
    marker = tmp_path / "marker"
    for module, attr in reexports:
        files = {
            "skops": hostile.os_reexport_skops(module, attr),
            "pickle": hostile.os_system_via_reexport_pickle(module, attr, marker),
        }
        files["mlflow-skops"] = hostile.mlflow_zip(files["skops"], "skops")
        files["mlflow-pickle"] = hostile.mlflow_zip(files["pickle"], "pickle")
        for kind, data in files.items():
            path = tmp_path / f"{kind}.bin"
            path.write_bytes(data)
            for trust in (False, True):
                with pytest.raises(UnsafeModel, match=rf"{attr}|getattr"):
                    inspect_file(path, trust=trust)
    assert not marker.exists()


def test_the_guarded_unpickler_refuses_even_if_the_scan_were_skipped(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    module, attr = hostile.os_reexports()[0]
    for data in (hostile.runstring_pickle(marker),
                 hostile.os_system_via_reexport_pickle(module, attr, marker)):
        for detail in ("pickle", "joblib"):
            with pytest.raises(UnsafeModel):
                load_pickle(data, scanned=(PickleScan((), 0, 2), detail))
    assert not marker.exists()


# --- joblib array records the scan must read exactly as joblib does -------------------------
def _text(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


_CANONICAL_F8 = b"(K\x03" + _text("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"


def _dtype_f8(state: bytes = _CANONICAL_F8) -> bytes:
    return b"cnumpy\ndtype\n" + _text("f8") + b"\x89\x88\x87R" + state + b"b"


def _wrapper(dtype: bytes = b"", align_key: bytes = b"", align_value: bytes = b"N",
             memo: bytes = b"") -> bytes:
    """joblib's record for one float64 (protocol 2: no frames), up to its BUILD."""
    return (
        b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81" + memo + b"}("
        + _text("subclass") + b"cnumpy\nndarray\n" + _text("shape") + b"K\x01\x85"
        + _text("order") + _text("C") + _text("dtype") + (dtype or _dtype_f8())
        + _text("allow_mmap") + b"\x89"
        + (align_key or _text("numpy_array_alignment_bytes")) + align_value + b"ub"
    )


_DATA = struct.pack("<d", 2.5)


def _hidden(marker: Path) -> bytes:
    """Opcodes that would run if the loader read them while the scan skipped them."""
    return b"cposix\nsystem\n(" + _text(f"touch {marker}") + b"tR0"


def _faked_elsize(marker: Path) -> bytes:
    hidden = _hidden(marker)
    state = _CANONICAL_F8.replace(b"J\xff\xff\xff\xffJ", b"J" + struct.pack("<i", 8 + len(hidden))
                                  + b"J", 1)
    return b"\x80\x02" + _wrapper(_dtype_f8(state)) + _DATA + hidden + b"."


def _computed_key(marker: Path) -> bytes:
    hidden = _hidden(marker)
    key = b"cbuiltins\nstr\n(" + _text("numpy_array_alignment_bytes") + b"tR"
    # joblib reads a padding length (12) and skips 12 bytes, then the data, then `hidden`; a
    # scan that missed the key would read the data as a BINBYTES swallowing `hidden`.
    after = bytes([12]) + b"\xff" * 7 + b"B" + struct.pack("<I", 8 + len(hidden)) + _DATA
    return (b"\x80\x02" + _wrapper(align_key=key, align_value=b"K\x10") + after + hidden + b".")


def test_a_valid_handmade_record_reads_as_joblib_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "one.joblib"
    path.write_bytes(b"\x80\x02" + _wrapper() + _DATA + b".")
    result, detail = scan(path)
    assert (detail, result.joblib_arrays) == ("joblib", 1)
    assert joblib.load(path).tolist() == [2.5]
    assert load_pickle(path)[0].tolist() == [2.5]


@pytest.mark.parametrize("build", [_faked_elsize, _computed_key])
def test_hidden_opcodes_are_live_under_plain_joblib(build: object, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "m.joblib"
    path.write_bytes(build(marker))  # type: ignore[operator]
    joblib.load(path)
    assert marker.exists()


def _self_referencing_dtype() -> bytes:
    state = b"(K\x03" + _text("|") + b"h\x00K\x01\x85\x86NNK\x08K\x08K\x00t"
    dtype = b"cnumpy\ndtype\n" + _text("f8") + b"\x89\x88\x87Rq\x00" + state + b"b"
    return b"\x80\x02" + _wrapper(dtype) + _DATA + b"."


def _deep_dtype() -> bytes:
    deep = b"N" + b"\x85" * 200_000
    state = b"(K\x03" + _text("|") + deep + b"NNK\x08K\x08K\x00t"
    return b"\x80\x02" + _wrapper(_dtype_f8(state)) + _DATA + b"."


def _frame_left_open() -> bytes:
    body = b"\x80\x04" + _wrapper() + b"N"  # one opcode after the BUILD, inside the frame
    return b"\x80\x04\x95" + struct.pack("<Q", len(body) - 2) + body[2:] + _DATA + b"0."


def _wrapper_built_by_init() -> bytes:
    return (b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n(cnumpy\nndarray\nK\x01\x85"
            + _text("C") + _dtype_f8() + b"tR}b" + _DATA + b".")


def _wrapper_rebuilt_through_object_() -> bytes:
    """numpy.object_(w) returns w itself: a second BUILD on it makes joblib read again."""
    return b"\x80\x02" + _wrapper(memo=b"q\x01") + _DATA + b"0cnumpy\nobject_\n(h\x01tR}b."


@pytest.mark.parametrize("build", [
    _faked_elsize, _computed_key, _self_referencing_dtype, _deep_dtype, _frame_left_open,
    _wrapper_built_by_init, _wrapper_rebuilt_through_object_,
], ids=lambda f: f.__name__.strip("_"))
def test_records_the_scan_cannot_read_as_joblib_would_are_refused(build: object,
                                                                   tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "m.joblib"
    try:
        data = build(marker)  # type: ignore[operator]
    except TypeError:
        data = build()  # type: ignore[operator]
    path.write_bytes(data)
    with pytest.raises(InvalidModelFile, match=UNREADABLE):
        scan(path)
    for trust in (False, True):
        with pytest.raises(InvalidModelFile, match=UNREADABLE):
            inspect_file(path, trust=trust)
    assert not marker.exists()


# --- zip bombs ---------------------------------------------------------------------------------
def test_many_members_under_the_ratio_floor_are_refused_before_memory_is_claimed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bomb.skops"
    real = zipfile.ZipFile(io.BytesIO(skops.io.dumps(np.arange(3.0))))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for info in real.infolist():
            zf.writestr(info.filename, real.read(info))
        for i in range(400):
            zf.writestr(f"pad{i}.npy", bytes((1 << 20) - 1))  # each just under the floor
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeModel, match="zip bomb"):
            inspect_file(path, trust=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, peak


def test_what_a_small_archive_may_claim() -> None:
    from app.formats import ZipLimits

    limits = ZipLimits()
    assert limits.expansion_cap(400_000) == 40_000_000
    assert limits.expansion_cap(10_000) == 16 << 20
    assert limits.member_cap(1_000) == 1 << 20


# --- what the fuzz test found (tests/formats/fuzz_inspection.py) --------------------------------
def test_a_huge_memo_index_is_refused_before_the_loader_sizes_its_memo(tmp_path: Path) -> None:
    """pickle's C loader sizes its memo table to the largest PUT index (gigabytes for 2**31)."""
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x04N" + b"r" + struct.pack("<I", 1 << 31) + b".")
    with pytest.raises(InvalidModelFile, match="memo index"):
        inspect_file(path, trust=True)


def test_a_dtype_state_numpy_never_writes_is_refused_in_plain_pickles(tmp_path: Path) -> None:
    """dtype.__setstate__ trusts its argument (a mutated one crashed the interpreter)."""
    data = pickle.dumps(np.arange(3.0), protocol=2)
    assert data.count(b"J\xff\xff\xff\xff") >= 2
    path = tmp_path / "m.pkl"
    path.write_bytes(data.replace(b"J\xff\xff\xff\xff", b"J\x40\x00\x00\x00", 1))
    with pytest.raises(InvalidModelFile, match="could crash the loader"):
        inspect_file(path, trust=True)
