"""Everything about model files: detect by content, safety checks, load, signature.

Formats: skops (explicit trusted types), ONNX (self-contained only), pickle/joblib (opcode scan;
opened only with trust and only in the sandbox, then served from a skops copy; names outside the
exact allow-list refused always), and MLflow sklearn models as a zip. Files a client sends are
opened only through `inspect_upload` (app/formats/sandbox.py).
Heavy libraries (scikit-learn, skops, onnx, onnxruntime, yaml, numpy) are imported inside the
functions that need them, so importing this package stays cheap for the supervisor.
"""

from __future__ import annotations

from app.formats.convert import convert_pickle_to_skops
from app.formats.detect import FORMATS
from app.formats.environment import runtime_environment
from app.formats.inspection import Inspection, ServedForm, inspect_file
from app.formats.predictor import Predictor, load_predictor
from app.formats.sandbox import SandboxLimits, inspect_upload
from app.formats.signature import Signature
from app.formats.zip_safety import ZipLimits

__all__ = [
    "FORMATS",
    "Inspection",
    "Predictor",
    "SandboxLimits",
    "ServedForm",
    "Signature",
    "ZipLimits",
    "convert_pickle_to_skops",
    "inspect_file",
    "inspect_upload",
    "load_predictor",
    "runtime_environment",
]
