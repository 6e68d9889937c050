"""The versions that produced a model and the versions this process runs."""

from __future__ import annotations

import platform
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata


def runtime_environment() -> dict[str, str]:
    """{"python", "scikit-learn", "numpy"} versions of this process, without importing sklearn."""
    env = {"python": platform.python_version()}
    for key, dist in (("scikit-learn", "scikit-learn"), ("numpy", "numpy")):
        try:
            env[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover - both are dependencies
            pass
    return env


def minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


@dataclass
class LoadRecord:
    """What scikit-learn said while unpickling: the versions that wrote the estimators."""

    sklearn_versions: set[str] = field(default_factory=set)


@contextmanager
def recording_versions() -> Iterator[LoadRecord]:
    """Load inside this: it captures InconsistentVersionWarning (tests run warnings as errors,
    and a version mismatch must become an Inspection warning, not an exception)."""
    from sklearn.exceptions import InconsistentVersionWarning

    record = LoadRecord()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield record
    for w in caught:
        if isinstance(w.message, InconsistentVersionWarning):
            record.sklearn_versions.add(str(w.message.original_sklearn_version))


def version_findings(record: LoadRecord, estimator: object) -> tuple[dict[str, str], list[str]]:
    """The producer environment and the warning sentences a load's record implies."""
    from sklearn.base import BaseEstimator

    installed = runtime_environment()["scikit-learn"]
    env: dict[str, str] = {}
    found = sorted(record.sklearn_versions)
    if len(found) == 1:
        env["scikit-learn"] = found[0]
    elif not found and isinstance(estimator, BaseEstimator):
        # scikit-learn warns on any difference, so silence means the same version wrote it.
        env["scikit-learn"] = installed
    return env, mismatch_warnings(found, installed)


def mismatch_warnings(versions: list[str] | tuple[str, ...], installed: str) -> list[str]:
    out = []
    for v in versions:
        if v == "pre-0.18" or minor(v) != minor(installed):
            out.append(
                f"The model was saved with scikit-learn {v} but this server runs scikit-learn "
                f"{installed}; predictions may differ. Re-save it with scikit-learn "
                f"{'.'.join(minor(installed))} or convert it to skops or ONNX."
            )
    return out
