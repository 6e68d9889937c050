"""Which imported names a model file may use: the deny-list and the allow-list of prefixes.

A pickle (and a skops file) names the callables it needs as "module.qualname". Some names are
refused whatever the client says, because loading them runs commands, reads or writes files, or
reaches other objects by name (the deny-list). Names outside the allow-list of prefixes are not
refused, but the client sees them listed before trusting the file.

This is defence in depth, not a sandbox: a trusted pickle can still do harm with allowed names.
"""

from __future__ import annotations

import _compat_pickle
import re

# Whole modules (and their submodules) that have no business inside a model file.
DENIED_MODULES: frozenset[str] = frozenset({
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "_winapi",
    "sys", "importlib", "imp", "_imp", "_frozen_importlib", "_frozen_importlib_external",
    "zipimport", "pkgutil", "runpy", "code", "codeop", "ctypes", "_ctypes", "multiprocessing",
    "concurrent", "threading", "_thread", "asyncio", "signal", "webbrowser", "pty", "tty",
    "shutil", "socket", "_socket", "ssl", "select", "selectors", "mmap", "fcntl", "resource",
    "marshal", "pickle", "_pickle", "pickletools", "dill", "cloudpickle", "shelve", "dbm",
    "types", "io", "_io", "pathlib", "tempfile", "glob", "fileinput", "zipfile", "tarfile",
    "urllib", "http", "ftplib", "smtplib", "telnetlib", "xmlrpc", "requests", "inspect",
    "pdb", "bdb", "timeit", "trace", "profile", "cProfile", "doctest", "pydoc", "idlelib",
    "tkinter", "turtle", "site", "sitecustomize", "venv", "ensurepip", "pip", "setuptools",
    "distutils", "linecache", "logging.config", "logging.handlers", "atexit", "gc", "winreg",
    "_winreg", "msvcrt",
    "__main__", "commands", "popen2",
    # Loaders that read companion files named inside the pickle.
    "joblib.numpy_pickle_compat",
    # Test helpers and build tools inside allowed packages that run code or subprocesses.
    "numpy.testing", "numpy.f2py", "numpy.distutils", "numpy.ctypeslib", "numpy.lib.npyio",
    "numpy.lib._npyio_impl", "numpy.lib.format", "numpy.lib.utils", "numpy._utils",
    "scipy.io", "scipy.datasets", "scipy._lib._testutils", "scipy.weave",
    "sklearn.utils._testing", "sklearn.datasets", "sklearn._build_utils", "sklearn.conftest",
})

# Single names denied inside otherwise ordinary modules.
DENIED_NAMES: frozenset[str] = frozenset({
    "numpy.load", "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt",
    "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.memmap", "numpy.fromregex",
    "numpy.core.memmap.memmap", "numpy._core.memmap.memmap", "numpy.DataSource",
    "joblib.load", "joblib.dump", "joblib.numpy_pickle.load", "joblib.numpy_pickle.dump",
    "operator.attrgetter", "operator.methodcaller", "operator.call",
    "scipy.LowLevelCallable", "copyreg.add_extension",
    "sklearn.set_config", "sklearn.config_context",
})

# The builtins that construct plain values; every other builtin (eval, exec, getattr, open,
# __import__, ...) is denied, since with them a pickle reaches anything.
SAFE_BUILTINS: frozenset[str] = frozenset({
    "slice", "set", "frozenset", "complex", "bytearray", "bytes", "int", "float", "str", "list",
    "dict", "tuple", "bool", "range", "object", "type", "Ellipsis", "NotImplemented",
})

# Names a scikit-learn model normally imports; anything else is pointed out to the client.
ALLOWED_PREFIXES: tuple[str, ...] = ("sklearn.", "numpy.", "scipy.")
ALLOWED_NAMES: frozenset[str] = frozenset(
    {f"builtins.{name}" for name in SAFE_BUILTINS}
    | {
        "joblib.numpy_pickle.NumpyArrayWrapper", "collections.OrderedDict",
        "collections.defaultdict", "copyreg._reconstructor", "_codecs.encode",
        "functools.partial", "datetime.datetime", "datetime.date", "datetime.timedelta",
    }
)


# copyreg's protocol helpers and the constructors numpy.random pickles its generators with
# (numpy.random._pickle.__randomstate_ctor, __generator_ctor, __bit_generator_ctor).
_ALLOWED_DUNDER = re.compile(r"^__(newobj|newobj_ex)__$|^__[a-z]+(_[a-z]+)*_ctor$")


def normalize(module: str, name: str, proto: int) -> tuple[str, str]:
    """The Python 2 renames `pickle.Unpickler(fix_imports=True)` applies below protocol 3."""
    if proto < 3:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            return _compat_pickle.NAME_MAPPING[(module, name)]
        if module in _compat_pickle.IMPORT_MAPPING:
            return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name


def _module_denied(module: str) -> bool:
    parts = module.split(".")
    return any(".".join(parts[: i + 1]) in DENIED_MODULES for i in range(len(parts)))


def denial_reason(module: str, name: str) -> str | None:
    """Why "module.name" is refused whatever the trust, or None when it is not on the deny-list."""
    if "." in name:
        # From protocol 4 the unpickler follows dotted names attribute by attribute, so
        # "sklearn.base" + "os.system" would reach os.system through an allowed module.
        return "reaches an attribute through a dotted name"
    if not module or not name or (name.startswith("__") and not _ALLOWED_DUNDER.match(name)):
        # Module dunders (__builtins__, __loader__, __getattr__, ...) reach the import system.
        return "is not a plain importable name"
    if module in ("builtins", "__builtin__"):
        return None if name in SAFE_BUILTINS else "is a builtin that runs or reaches code"
    if _module_denied(module):
        return "comes from a module that runs commands, code or file operations"
    if f"{module}.{name}" in DENIED_NAMES:
        return "reads or writes files or reaches objects by name"
    return None


def refuse_denied(module: str, name: str, proto: int) -> None:
    """UnsafeModel if a pickle's import is denied, as written or as the unpickler renames it."""
    from app.errors import UnsafeModel

    for mod, attr in {(module, name), normalize(module, name, proto)}:
        reason = denial_reason(mod, attr)
        if reason is not None:
            raise UnsafeModel(
                f"The model file imports {mod}.{attr}, which {reason}; ModelDepot refuses it "
                "even for trusted uploads."
            )


def is_denied(qualified: str) -> bool:
    module, _, name = qualified.rpartition(".")
    return denial_reason(module, name) is not None


def is_allowed(qualified: str) -> bool:
    """True for names a plain scikit-learn model imports (and that are not denied)."""
    if is_denied(qualified):
        return False
    return qualified in ALLOWED_NAMES or qualified.startswith(ALLOWED_PREFIXES)


def object_denial(qualified: str) -> str | None:
    """Why the object an allowed name stands for is refused, or None: it is another name for a
    denied object (numpy.lib._datasource.DataSource is numpy.DataSource), or a class that runs
    code when it is discarded (a __del__ acting on attributes the file sets).

    Imports the name's module, so call it only for names is_allowed accepted (scikit-learn,
    numpy, scipy: what loading the file would import anyway). A name that does not resolve is
    left to the loader, which fails on it.
    """
    import importlib

    module, _, name = qualified.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None
    real_module, real_name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(real_module, str) and isinstance(real_name, str) and \
            (_module_denied(real_module) or f"{real_module}.{real_name}" in DENIED_NAMES):
        return f"is {real_module}.{real_name}, which reads or writes files or runs code"
    if isinstance(obj, type) and any("__del__" in vars(k) for k in obj.__mro__ if k is not object):
        return "runs code when it is discarded (__del__)"
    return None
