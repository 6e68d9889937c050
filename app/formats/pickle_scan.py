"""List what a pickle (or joblib file) imports without loading it.

The scan walks the opcodes with `pickletools.genops` and keeps a symbolic stack and memo, so it
knows the operands of STACK_GLOBAL even when they come from the memo, and it can read the state
of joblib's NumpyArrayWrapper: joblib writes each array's raw bytes into the stream right after
the BUILD of its wrapper, so the scan must skip exactly those bytes to find the next opcode.
Nothing is imported and nothing is called.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from app.errors import InvalidModelFile, UnsafeModel
from app.formats import policy

_SKIP_CHUNK = 1 << 20
_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
# Opcodes that push the value carried in their argument.
_LITERALS = frozenset({
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
    "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
})


class _Mark:
    pass


@dataclass(eq=False)
class _Global:
    qualified: str


@dataclass(eq=False)
class _Object:
    """The result of calling something at load time; its value is unknown to the scan."""

    func: Any
    args: Any
    state: Any = None
    cls: str | None = None  # the class when the call builds an instance of a known class


@dataclass
class PickleScan:
    imported_globals: tuple[str, ...]
    joblib_arrays: int  # NumpyArrayWrapper records met (0 for a plain pickle)
    protocol: int


@dataclass
class _Scanner:
    stream: Any  # anything with read(n)
    joblib: bool
    found: set[str] = field(default_factory=set)
    arrays: int = 0
    proto: int = 0

    def run(self) -> None:
        stack: list[Any] = []
        metastack: list[list[Any]] = []
        memo: dict[int, Any] = {}

        def pop_mark() -> list[Any]:
            nonlocal stack
            items = stack
            stack = metastack.pop()
            return items

        items: Any
        cls: Any
        for opcode, op_arg, _pos in pickletools.genops(self.stream):
            name = opcode.name
            arg: Any = op_arg
            if name == "PROTO":
                self.proto = arg
            elif name in ("FRAME", "READONLY_BUFFER"):
                pass
            elif name == "STOP":
                return
            elif name == "MARK":
                metastack.append(stack)
                stack = []
            elif name == "POP":
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[int(arg)])
            elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
            elif name in _LITERALS:
                stack.append(arg)
            elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
                stack.append({"EMPTY_LIST": [], "EMPTY_DICT": {}, "EMPTY_SET": []}[name])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif name == "TUPLE":
                items = pop_mark()  # first: pop_mark rebinds `stack`
                stack.append(tuple(items))
            elif name == "LIST":
                items = pop_mark()
                stack.append(items)
            elif name == "DICT":
                items = pop_mark()
                stack.append(dict(_pairs(items)))
            elif name == "FROZENSET":
                items = pop_mark()
                stack.append(items)
            elif name == "APPEND":
                value = stack.pop()
                _extend(stack[-1], [value])
            elif name in ("APPENDS", "ADDITEMS"):
                items = pop_mark()
                _extend(stack[-1], items)
            elif name == "SETITEM":
                value = stack.pop()
                key = stack.pop()
                _setitems(stack[-1], [key, value])
            elif name == "SETITEMS":
                items = pop_mark()
                _setitems(stack[-1], items)
            elif name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                stack.append(self._global(module, attr))
            elif name == "STACK_GLOBAL":
                attr = stack.pop()
                module = stack.pop()
                if type(module) is not str or type(attr) is not str:
                    raise UnsafeModel(
                        "The pickle computes the name of what it imports while loading, which "
                        "ModelDepot refuses."
                    )
                stack.append(self._global(module, attr))
            elif name == "INST":
                module, _, attr = str(arg).partition(" ")
                cls = self._global(module, attr)
                items = pop_mark()
                stack.append(_Object(cls, tuple(items), cls=cls.qualified))
            elif name == "OBJ":
                items = pop_mark()
                cls = items[0] if items else None
                stack.append(_Object(cls, tuple(items[1:]), cls=_class_name(cls)))
            elif name in ("NEWOBJ", "NEWOBJ_EX"):
                if name == "NEWOBJ_EX":
                    stack.pop()  # kwargs
                args = stack.pop()
                cls = stack.pop()
                stack.append(_Object(cls, args, cls=_class_name(cls)))
            elif name == "REDUCE":
                args = stack.pop()
                func = stack.pop()
                stack.append(_Object(func, args, cls=_reduced_class(func, args)))
            elif name == "BUILD":
                state = stack.pop()
                target = stack[-1]
                if isinstance(target, _Object):
                    target.state = state
                    if self.joblib and target.cls == _WRAPPER:
                        self._skip_array(target)
                        stack[-1] = _Object(None, ())
            elif name in ("PERSID", "BINPERSID"):
                raise InvalidModelFile(
                    "The pickle refers to persistent objects stored elsewhere; ModelDepot only "
                    "accepts self-contained pickles."
                )
            elif name in ("EXT1", "EXT2", "EXT4"):
                raise UnsafeModel(
                    "The pickle imports through the copyreg extension registry, which ModelDepot "
                    "refuses."
                )
            elif name == "NEXT_BUFFER":
                raise InvalidModelFile(
                    "The pickle uses out-of-band buffers (protocol 5); save it without them."
                )
            else:  # pragma: no cover - every opcode of protocols 0-5 is handled above
                raise InvalidModelFile(f"The pickle uses an unknown opcode {name}.")
        raise InvalidModelFile("The pickle ends without a STOP opcode: the file is truncated.")

    def _global(self, module: str, attr: str) -> _Global:
        policy.refuse_denied(module, attr, self.proto)
        mod, name = policy.normalize(module, attr, self.proto)
        qualified = f"{mod}.{name}"
        self.found.add(qualified)
        return _Global(qualified)

    def _skip_array(self, wrapper: _Object) -> None:
        """Skip the raw bytes joblib wrote after this NumpyArrayWrapper, as joblib reads them."""
        state = wrapper.state
        if not isinstance(state, dict):
            raise InvalidModelFile("A joblib array record is malformed.")
        itemsize, hasobject = _dtype_layout(state.get("dtype"))
        shape = state.get("shape")
        if not isinstance(shape, tuple) or not all(
            type(n) is int and n >= 0 for n in shape
        ):
            raise InvalidModelFile("A joblib array record has a malformed shape.")
        self.arrays += 1
        if hasobject:
            # Object arrays are a nested pickle stream, read by a plain Unpickler.
            nested = _Scanner(self.stream, joblib=False, found=self.found)
            nested.run()
            return
        alignment = state.get("numpy_array_alignment_bytes")
        if alignment is not None:
            padding = self.stream.read(1)
            if len(padding) != 1:
                raise _truncated()
            self._skip(padding[0])
        count = 1
        for n in shape:
            count *= n
        self._skip(count * itemsize)

    def _skip(self, n: int) -> None:
        while n > 0:
            data = self.stream.read(min(n, _SKIP_CHUNK))
            if not data:
                raise _truncated()
            n -= len(data)


class _ReadOnly:
    """Hides tell() from genops, which calls it on every opcode and fails on decompressors, and
    reads long arguments in chunks: a length the file merely claims (BINBYTES8 of 4 GB) is not
    allocated before the bytes exist, and a decompressor's cap stops it on the way."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.readline = stream.readline  # protocol 0 arguments end with a newline

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n <= _SKIP_CHUNK:
            return self._stream.read(n)
        parts = []
        while n > 0:
            chunk = self._stream.read(min(n, _SKIP_CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)


def _truncated() -> InvalidModelFile:
    return InvalidModelFile("The joblib file ends in the middle of an array: it is truncated.")


def _pairs(items: list[Any]) -> list[tuple[Any, Any]]:
    return [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]


def _extend(target: Any, items: list[Any]) -> None:
    if isinstance(target, list):
        target.extend(items)


def _setitems(target: Any, items: list[Any]) -> None:
    if isinstance(target, dict):
        for key, value in _pairs(items):
            try:
                target[key] = value
            except TypeError:
                pass  # an unhashable symbolic key: the scan only needs string keys


def _class_name(cls: Any) -> str | None:
    return cls.qualified if isinstance(cls, _Global) else None


def _reduced_class(func: Any, args: Any) -> str | None:
    """The class an instance-building REDUCE creates (protocols 0-1 use copyreg._reconstructor)."""
    if not isinstance(func, _Global):
        return None
    if func.qualified == "copyreg._reconstructor" and isinstance(args, tuple) and args:
        return _class_name(args[0])
    return func.qualified


def _dtype_layout(value: Any) -> tuple[int, bool]:
    """(itemsize, hasobject) of the dtype a pickled `numpy.dtype(...)` call and BUILD describe.

    Computed from the pickled arguments and state rather than by handing the state to
    `dtype.__setstate__`, which crashes the interpreter on some inputs.
    """
    import numpy as np

    if not (
        isinstance(value, _Object)
        and isinstance(value.func, _Global)
        and value.func.qualified in ("numpy.dtype", "numpy.core.multiarray.dtype")
        and isinstance(value.args, tuple)
        and value.args
        and isinstance(value.args[0], str)
    ):
        raise InvalidModelFile("A joblib array record has a dtype that is not a numpy dtype.")
    try:
        base = np.dtype(value.args[0])
    except (TypeError, ValueError) as exc:
        raise InvalidModelFile("A joblib array record has an unreadable dtype.") from exc
    itemsize, hasobject = base.itemsize, base.hasobject
    state = value.state
    if isinstance(state, tuple) and len(state) >= 8:
        subarray, fields, elsize, flags = state[2], state[4], state[5], state[7]
        if type(elsize) is int and elsize > 0:
            itemsize = elsize
        if type(flags) is int and flags & 1:  # NPY_ITEM_HASOBJECT
            hasobject = True
        if isinstance(subarray, tuple) and subarray:
            hasobject = hasobject or _dtype_layout(subarray[0])[1]
        if isinstance(fields, dict):
            for spec in fields.values():
                if isinstance(spec, tuple) and spec:
                    hasobject = hasobject or _dtype_layout(spec[0])[1]
    return itemsize, hasobject


def scan_pickle(stream: BinaryIO) -> PickleScan:
    """Scan one pickle from `stream`; refuse denied imports with UnsafeModel.

    Follows joblib's inline array layout (harmless for plain pickles, which never build a
    NumpyArrayWrapper).
    """
    scanner = _Scanner(_ReadOnly(stream), joblib=True)
    try:
        scanner.run()
    except (UnsafeModel, InvalidModelFile):
        raise
    except (ValueError, IndexError, KeyError, EOFError, TypeError, UnicodeDecodeError) as exc:
        # genops raises ValueError on unknown opcodes and short reads; the symbolic stack raises
        # IndexError/KeyError on a stream no unpickler could load.
        raise InvalidModelFile(
            "The file is not a readable pickle: it is damaged, truncated or not a model file."
        ) from exc
    return PickleScan(tuple(sorted(scanner.found)), scanner.arrays, scanner.proto)
