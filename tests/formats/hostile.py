"""Hostile model files for the format and HTTP tests. Each would create `marker` if it were ever
loaded (the tests check it never appears); none does anything else."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
import zipfile
from pathlib import Path
from typing import Any

import skops.io

_RUNSTRING = ("numpy.testing._private.utils", "runstring")  # exec()s its first argument


def touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _text(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def os_reexports() -> list[tuple[str, str]]:
    """(module, name) where a numpy, scipy or scikit-learn module re-exports the os module."""
    import numpy.testing  # noqa: F401 - loads the modules that re-export os
    import scipy.io  # noqa: F401

    from app.formats.allowlist import allow_list

    allow_list()
    return sorted(
        (name, attr) for name, module in list(sys.modules.items())
        if module is not None and name.split(".")[0] in ("numpy", "scipy", "sklearn")
        for attr, value in list(vars(module).items()) if value is os
    )


def pickle_calling(module: str, name: str, args: bytes) -> bytes:
    """Protocol 2: module.name(*args) where `args` pickles a tuple."""
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + args + b"R."


def runstring_pickle(marker: Path) -> bytes:
    return pickle_calling(*_RUNSTRING, b"(" + _text(touch_code(marker)) + b"}t")


def os_system_via_reexport_pickle(module: str, attr: str, marker: Path) -> bytes:
    """getattr(<module>.<attr>, "system")("touch marker"), attr being a re-export of os."""
    return (
        b"\x80\x02cbuiltins\ngetattr\n(c" + f"{module}\n{attr}\n".encode() + _text("system")
        + b"tR(" + _text(f"touch {marker}") + b"tR."
    )


def _skops_with_root(root: dict[str, Any]) -> bytes:
    """A skops file whose schema's root node is `root` (protocol keys copied from a real one)."""
    real = zipfile.ZipFile(io.BytesIO(skops.io.dumps(())))
    schema = json.loads(real.read("schema.json"))
    root = {**root, "protocol": schema["protocol"], "_skops_version": schema["_skops_version"]}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("schema.json", json.dumps(root))
    return out.getvalue()


def _skops_state(value: Any) -> dict[str, Any]:
    """The schema node skops writes for a plain value (a tuple of str, an empty dict)."""
    schema = json.loads(zipfile.ZipFile(io.BytesIO(skops.io.dumps(value))).read("schema.json"))
    return {k: v for k, v in schema.items() if k not in ("protocol", "_skops_version")}


def skops_calling(module: str, name: str, args: tuple[Any, ...]) -> bytes:
    """A skops LossNode, which constructs its object as module.name(*args) on load."""
    return _skops_with_root({
        "__class__": name, "__module__": module, "__loader__": "LossNode",
        "__reduce__": {"args": _skops_state(args)}, "content": _skops_state({}),
    })


def runstring_skops(marker: Path) -> bytes:
    return skops_calling(*_RUNSTRING, (touch_code(marker), {}))


def os_reexport_skops(module: str, attr: str) -> bytes:
    """A MethodNode: the `system` attribute of a TypeNode naming a re-export of os (what skops
    reports as "<module>.<attr>.system")."""
    return _skops_with_root({
        "__class__": attr, "__module__": module, "__loader__": "MethodNode",
        "content": {"obj": {"__class__": attr, "__module__": module, "__loader__": "TypeNode"},
                    "func": "system"},
    })


def mlflow_zip(model_bytes: bytes, serialization: str) -> bytes:
    mlmodel = ("flavors:\n  sklearn:\n    pickled_model: model.bin\n"
               f"    serialization_format: {serialization}\n")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("MLmodel", mlmodel)
        zf.writestr("model.bin", model_bytes)
    return out.getvalue()


def pickle_live(data: bytes) -> None:
    """Load without any guard: only to show a payload is live (the test then removes nothing:
    it uses a marker path of its own)."""
    pickle.loads(data)
