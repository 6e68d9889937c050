"""Fuzz the inspection of uploads: mutate valid skops, joblib and pickle bytes (and hostile
ones) and inspect each with trust, as an upload would be.

Run as a program (`python -m tests.formats.fuzz_inspection EXAMPLES CAP_MB MARKER_DIR`), so that
its memory is its own: tests/formats/test_fuzz.py starts it and reads the JSON line it prints.
Each example must end in success or one of our errors with a status below 500, never create
a marker, and keep the traced memory peak of its inspection under CAP_MB.
"""

from __future__ import annotations

import io
import json
import pickle
import resource
import sys
import tempfile
import tracemalloc
from pathlib import Path

import joblib
import skops.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import ModelDepotError
from app.formats import inspect_file
from tests.formats import hostile
from tests.formats.zoo import models


def seeds(marker: Path) -> list[bytes]:
    chosen = [models()[name] for name in ("logreg", "pipeline-log1p", "tree")]
    files = [hostile.runstring_pickle(marker), hostile.runstring_skops(marker)]
    for model in chosen:
        files.append(skops.io.dumps(model))
        files.append(pickle.dumps(model, protocol=4))
        for compress in (0, 3):
            buf = io.BytesIO()
            joblib.dump(model, buf, compress=compress)
            files.append(buf.getvalue())
    return files


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 30), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 30), st.integers(0, 255)),
    st.tuples(st.just("repeat"), st.integers(0, 1 << 30), st.integers(1, 64)),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in mutations:
        if not out:
            break
        i = where % len(out)
        if kind == "flip":
            out[i] ^= value
        elif kind == "cut":
            del out[i:]
        elif kind == "insert":
            out[i:i] = bytes([value])
        else:
            out[i:i] = out[i:i + value]
    return bytes(out)


def main(examples: int, cap_mb: int, marker_dir: Path) -> None:
    marker = marker_dir / "marker"
    corpus = seeds(marker)
    work = Path(tempfile.mkdtemp(dir=marker_dir))
    outcomes: dict[str, int] = {}
    peaks: list[int] = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(range(len(corpus))), st.lists(_mutation, min_size=1, max_size=4))
    def inspect_mutated(seed: int, mutations: list[tuple[str, int, int]]) -> None:
        path = work / "upload.bin"
        path.write_bytes(mutate(corpus[seed], mutations))
        tracemalloc.reset_peak()
        try:
            inspect_file(path, trust=True)
            outcome = "accepted"
        except ModelDepotError as exc:
            assert exc.status < 500, (exc.status, exc.message)
            outcome = exc.code
        peak = tracemalloc.get_traced_memory()[1]
        peaks.append(peak)
        assert peak < cap_mb << 20, peak
        assert not marker.exists(), "a marker payload ran"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    tracemalloc.start()
    inspect_mutated()
    tracemalloc.stop()
    print(json.dumps({
        "examples": sum(outcomes.values()), "outcomes": outcomes,
        "max_traced_peak_mb": round(max(peaks) / (1 << 20), 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
