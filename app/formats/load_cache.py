"""The load cache: a pickle the server writes of a version it already loaded, read back fast
(or, for the linear models app/formats/linear.py answers for, their arrays as an .npz).

Why it exists: loading a 100-tree forest from skops takes seconds (skops rebuilds every object
through its own Python loaders), while unpickling the same estimator takes a small fraction of a
second. Versions without an ONNX twin (HistGradientBoosting, pipelines the converter refuses)
paid those seconds at every start and after every eviction.

Why this keeps the promises of docs/security.md ("no server process unpickles a client's bytes;
whatever the server writes for itself is hash-checked before it is read"):

- The bytes are made by `dump_cache`, in a registry pool worker, from the object that worker
  loaded from the version's served file (skops or ONNX's sklearn source), the way every server
  loads it: trusted-type check, zip checks, then check_structures. No byte of the client's file
  reaches the pickle stream except through numpy/scikit-learn's own `__reduce__` of objects the
  skops loader built.
- The blob is named by its sha256 and recorded on the version row; inference reads the bytes,
  hashes them, and unpickles only when the digest is the recorded one.
- Even then, the unpickler resolves only the globals recorded when the cache was written
  (`CacheRecipe.globals`), and each of those must also pass app/formats/policy.py's allow-list
  and object check at load time, so a cache blob forged together with its row still cannot name
  a callable outside scikit-learn, numpy, scipy and the plain builtins. `persistent_load` is
  refused (pickle's default).
- The loaded object goes through check_structures again before it predicts, as after skops.
- The cache is only used by the same scikit-learn and numpy versions that wrote it (pickles are
  not portable across them); otherwise the server loads the skops file as before.
"""

from __future__ import annotations

import functools
import io
import pickle
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidModelFile, UnsafeModel
from app.formats import policy
from app.formats.environment import runtime_environment

# Protocol 5 keeps numpy arrays as one contiguous buffer each (numpy wraps them without copy).
PROTOCOL = 5
FORMS = ("pickle", "linear")


@dataclass(frozen=True)
class CacheRecipe:
    """What a reader needs besides the bytes: their form, the globals a pickle names, and the
    library versions that wrote them.

    Form "pickle" is the estimator pickled; form "linear" is a linear model's arrays as an .npz
    with no pickle at all (app/formats/linear.py), which a server answers from without importing
    scikit-learn."""

    globals: tuple[str, ...]
    environment: dict[str, str]
    form: str = "pickle"

    def to_dict(self) -> dict[str, Any]:
        return {"globals": list(self.globals), "environment": self.environment,
                "form": self.form}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CacheRecipe:
        names = data.get("globals")
        env = data.get("environment")
        form = data.get("form", "pickle")  # recipes before the linear form had no "form"
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or \
                not isinstance(env, dict) or form not in FORMS:
            raise InvalidModelFile("The load cache's recipe is malformed.")
        return cls(tuple(names), {str(k): str(v) for k, v in env.items()}, form)

    def current(self) -> bool:
        """True when this process runs the library versions and cache generation that wrote
        the cache."""
        return self.environment == cache_environment()


# Bumped when what dump_cache writes changes (2: linear models as arrays, no pickle): a cache of
# an earlier generation is then not current, and the registry rewrites it at its next start
# (app/training/hooks.py), as after a library upgrade.
CACHE_GENERATION = "2"


@functools.cache
def cache_environment() -> dict[str, str]:
    """What a cache is current for: this process's library versions and the cache generation.
    Read once (importlib.metadata costs a fraction of a ms a call, more than unpickling a
    linear model)."""
    return {**runtime_environment(), "load_cache": CACHE_GENERATION}


@functools.lru_cache(maxsize=4096)
def _refusal(qualified: str) -> str | None:
    """Why the cache may not name `qualified` (None: it may). Cached: names repeat across
    versions, and judging a name imports its module. The allow-list resolves the name to its
    object and accepts exactly the objects it lists (app/formats/allowlist.py)."""
    if not policy.is_allowed(qualified):
        return "is outside the exact allow-list of app/formats/allowlist.py"
    return None


class _RecordingUnpickler(pickle.Unpickler):
    """Resolves names as pickle does and notes each one (used on bytes this process made)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.names: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.names.add(f"{module}.{name}")
        return super().find_class(module, name)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names the recipe lists (each already judged by the policy)."""

    def __init__(self, data: bytes, allowed: frozenset[str]) -> None:
        super().__init__(io.BytesIO(data))
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if f"{module}.{name}" not in self._allowed:
            raise UnsafeModel(f"The load cache names {module}.{name}, which its recipe does "
                              "not list; it is not used.")
        return super().find_class(module, name)


class _CachePickler(pickle.Pickler):
    """pickle.Pickler, but numpy's SeedSequence (inside every fitted Generator, e.g. a
    HistGradientBoosting's) is written as a call of its public constructor: Cython pickles it
    through a `__pyx_unpickle_SeedSequence` helper that the policy (rightly) does not list."""

    def reducer_override(self, obj: Any) -> Any:
        import numpy as np

        if type(obj) is np.random.SeedSequence:
            build = functools.partial(np.random.SeedSequence, obj.entropy,
                                      spawn_key=tuple(obj.spawn_key), pool_size=obj.pool_size,
                                      n_children_spawned=obj.n_children_spawned)
            return build, ()
        return NotImplemented


def dump_cache(estimator: Any, *, arrays_served: bool = True) -> tuple[bytes, CacheRecipe]:
    """The cache bytes of a loaded, structure-checked estimator and their recipe: a linear
    model's arrays where app/formats/linear.py answers for it and the version is served from
    them (`arrays_served`: its signature's requests arrive as floats), else the estimator
    pickled.

    UnsafeModel if the pickle would name anything the policy refuses (then no cache is written
    and the version keeps loading from its served file)."""
    from app.formats.linear import dump_linear, linear_model_of

    linear = linear_model_of(estimator) if arrays_served else None
    arrays = dump_linear(linear) if linear is not None else None
    if arrays is not None:
        return arrays, CacheRecipe((), dict(cache_environment()), "linear")
    buffer = io.BytesIO()
    _CachePickler(buffer, protocol=PROTOCOL).dump(estimator)
    data = buffer.getvalue()
    recorder = _RecordingUnpickler(data)
    recorder.load()  # the writer's own bytes: this only lists the names they need
    refused = sorted(f"{n} ({why})" for n in recorder.names if (why := _refusal(n)))
    if refused:
        raise UnsafeModel(f"No load cache: the pickle would name {', '.join(refused)}.")
    return data, CacheRecipe(tuple(sorted(recorder.names)), dict(cache_environment()))


def load_cache(data: bytes, recipe: CacheRecipe) -> Any:
    """Unpickle hash-checked cache bytes with only the recipe's names, then check structures
    (a "pickle" recipe; app/formats/linear.py reads a "linear" one).

    The caller has compared the bytes' sha256 with the one on the version row."""
    if recipe.form != "pickle":
        raise InvalidModelFile(f"A {recipe.form} load cache is not a pickle.")
    from app.formats.structure import check_structures

    refused = sorted(f"{n} ({why})" for n in recipe.globals if (why := _refusal(n)))
    if refused:
        raise UnsafeModel(f"The load cache's recipe names {', '.join(refused)}; not used.")
    try:
        estimator = _RestrictedUnpickler(data, frozenset(recipe.globals)).load()
    except UnsafeModel:
        raise
    except Exception as exc:
        raise InvalidModelFile(f"The load cache does not unpickle ({type(exc).__name__}).") \
            from exc
    check_structures(estimator)
    return estimator
