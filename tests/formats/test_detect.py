"""Detection by content, names that disagree, files that are not models."""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import joblib
import pytest
import skops.io

from app.errors import InvalidModelFile
from app.formats import FORMATS, inspect_file
from tests.formats.conftest import write_mlflow, write_zip


def test_formats_constant() -> None:
    assert FORMATS == ("skops", "onnx", "pickle", "mlflow")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.joblib"
    path.write_bytes(b"")
    with pytest.raises(InvalidModelFile, match="empty"):
        inspect_file(path, trust=True)


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes(seed: int, tmp_path: Path) -> None:
    path = tmp_path / "noise"
    path.write_bytes(random.Random(seed).randbytes(4096))
    with pytest.raises(InvalidModelFile) as info:
        inspect_file(path, trust=True)
    assert str(tmp_path) not in info.value.message
    assert "Traceback" not in info.value.message


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a model\n")
    with pytest.raises(InvalidModelFile):
        inspect_file(path, trust=True)


def test_zip_that_is_no_model(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", {"readme.txt": b"hi", "data/x.csv": b"1,2"})
    with pytest.raises(InvalidModelFile, match="neither a skops file"):
        inspect_file(path, trust=True)


def test_damaged_zip(logreg: Any, tmp_path: Path) -> None:
    path = write_mlflow(tmp_path / "m.zip", logreg)
    path.write_bytes(path.read_bytes()[:-30])  # cut into the central directory
    with pytest.raises(InvalidModelFile):
        inspect_file(path, trust=True)


def test_pickle_named_onnx(logreg: Any, tmp_path: Path) -> None:
    path = tmp_path / "x.onnx"
    path.write_bytes(pickle.dumps(logreg))
    with pytest.raises(InvalidModelFile, match=r"ends in \.onnx but the content is a pickle"):
        inspect_file(path, trust=True, filename="x.onnx")


@pytest.mark.parametrize("filename", ["model.PKL", "model.joblib", "model.pickle", "model",
                                      "model.bin", None, "dir/model.joblib.gz"])
def test_names_that_agree_or_say_nothing(filename: str | None, logreg: Any, tmp_path: Path) -> None:
    path = tmp_path / "upload"
    joblib.dump(logreg, path)
    assert inspect_file(path, trust=True, filename=filename).format == "pickle"


@pytest.mark.parametrize("filename", ["m.skops", "m.onnx", "m.zip"])
def test_joblib_under_other_names(filename: str, logreg: Any, tmp_path: Path) -> None:
    path = tmp_path / "upload"
    joblib.dump(logreg, path)
    with pytest.raises(InvalidModelFile, match="content is a pickle"):
        inspect_file(path, trust=True, filename=filename)


def test_skops_named_pkl(logreg: Any, tmp_path: Path) -> None:
    path = tmp_path / "upload"
    skops.io.dump(logreg, path)
    with pytest.raises(InvalidModelFile, match="content is a skops"):
        inspect_file(path, trust=False, filename="m.pkl")
    assert inspect_file(path, trust=False, filename="m.zip").format == "skops"


def test_mlflow_named_skops(logreg: Any, tmp_path: Path) -> None:
    path = write_mlflow(tmp_path / "m", logreg)
    with pytest.raises(InvalidModelFile, match="content is a mlflow"):
        inspect_file(path, trust=True, filename="m.skops")
