"""List what a pickle (or joblib file) imports without loading it, reading it as the loader will.

The scan walks the opcodes with `pickletools.genops` and keeps a symbolic stack and memo, so it
knows the operands of STACK_GLOBAL even when they come from the memo, and every name goes
through the allow-list (policy.resolve) as it is met.

joblib writes each array's raw bytes into the stream right after the BUILD of its
NumpyArrayWrapper, and its loader reads them there; to find the next opcode the scan must skip
exactly the bytes the loader reads. It does so only when it can compute them without believing
anything the file could make different at load time: a wrapper created the way joblib creates
it, a state of literal keys and values, a dtype whose pickled state is exactly numpy's own for
that dtype, a shape of literal ints, and no unread bytes left in the current frame (joblib reads
the array from the file, not from the frame). Anything else is InvalidModelFile: "the scan
cannot read it the way the loader would". Nothing is imported beyond the allowed modules, and
nothing is called.

The symbolic values are bounded: lists, sets and bytes are not kept (the scan never needs their
content), long text is not kept, values are never hashed or compared deeply, and the number of
values a scan builds is capped, so no stream can make the scan recurse or fill memory.
"""

from __future__ import annotations

import copyreg
import pickletools
from dataclasses import dataclass
from typing import Any, BinaryIO

from app.errors import InvalidModelFile, UnsafeModel
from app.formats import policy
from app.formats.allowlist import canonical_name

_SKIP_CHUNK = 1 << 20
# Symbolic values (calls, tuples, dict entries, memo entries) one scan may build: a scikit-learn
# model needs a few thousand; a million is ~150 MB at most.
MAX_VALUES = 1_000_000
_MAX_TEXT = 1024  # longer strings are never names or joblib state keys
_MAX_INT_BITS = 64
_LITERAL_DEPTH = 12  # a structured dtype with sub-arrays nests about eight levels
_MAX_WRAPPER_KEYS = 8
_WRAPPER_KEYS = frozenset({
    "subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes",
})
# pickle's protocol 0-1 helper for plain objects (not in typeshed's copyreg stub).
_RECONSTRUCTOR: Any = copyreg._reconstructor  # type: ignore[attr-defined]
_UNREADABLE = "the scan cannot read it the way the loader would"

_TEXT = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE",
                   "BINUNICODE", "BINUNICODE8"})
_NUMBERS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT",
                      "BINFLOAT"})
_BYTES = frozenset({"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"})


class _Mark:
    __slots__ = ()


class _Opaque:
    """A value whose content the scan never needs: a list, a set, bytes, long text."""

    __slots__ = ()


OPAQUE = _Opaque()


class _Global:
    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj


class _Dict:
    __slots__ = ("pairs",)

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []


class _Object:
    """The result of a call made at load time. `cls` is the class it is known to be an instance
    of, or None when the scan cannot know (a function that may return one of its arguments)."""

    __slots__ = ("func", "args", "cls", "state", "attrs")

    def __init__(self, func: Any, args: Any, cls: type | None) -> None:
        self.func = func
        self.args = args
        self.cls = cls
        self.state: Any = None
        self.attrs: dict[str, Any] | None = None  # a joblib wrapper's attributes so far


class _NotLiteral(Exception):
    pass


@dataclass
class PickleScan:
    imported_globals: tuple[str, ...]
    joblib_arrays: int  # NumpyArrayWrapper records met (0 for a plain pickle)
    protocol: int
    # BUILDs on objects the scan cannot identify: harmless for pickle's loader, but joblib's
    # would read array bytes after one that turned out to be a wrapper.
    unidentified_builds: int = 0


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_VALUES

    def spend(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise InvalidModelFile(
                f"The pickle builds more than {MAX_VALUES} objects, far more than a model "
                "needs; ModelDepot does not read it."
            )


class _Counting:
    """Hides the real tell() from genops (decompressors fail on it) and counts the bytes read
    instead, for frame tracking; reads long arguments in chunks, so a length the file merely
    claims (BINBYTES8 of 4 GB) is not allocated before the bytes exist."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.position = 0

    def tell(self) -> int:
        return self.position

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            raise InvalidModelFile("The pickle asks to read the rest of the file at once.")
        parts = []
        while n > 0:
            chunk = self._stream.read(min(n, _SKIP_CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            n -= len(chunk)
        data = b"".join(parts)
        self.position += len(data)
        return data

    def readline(self) -> bytes:
        line = self._stream.readline(_SKIP_CHUNK)
        self.position += len(line)
        return bytes(line)


def _wrapper_class() -> type:
    from joblib.numpy_pickle import NumpyArrayWrapper

    wrapper: type = NumpyArrayWrapper
    return wrapper


def _fresh_results() -> dict[int, Any]:
    """Functions whose result is a new object that is never a joblib wrapper (so a BUILD on it
    reads no raw bytes), and the re-constructors whose result is an instance of their first
    argument."""
    import numpy as np

    from app.formats.allowlist import allow_list

    names = allow_list().names
    fresh = [
        names["numpy._core.multiarray._reconstruct"], names["numpy._core.numeric._frombuffer"],
        names["numpy.ma.core._mareconstruct"], names["numpy.random._pickle.__randomstate_ctor"],
        names["numpy.random._pickle.__generator_ctor"],
        names["numpy.random._pickle.__bit_generator_ctor"],
        names["sklearn.utils.validation.check_array"], names["_codecs.encode"],
    ]
    fresh += [obj for name, obj in names.items() if ".__pyx_unpickle_" in name]
    fresh += [obj for obj in names.values() if isinstance(obj, np.ufunc)]
    return {id(obj): obj for obj in fresh}


def _instance_of_first_argument() -> dict[int, Any]:
    from app.formats.allowlist import allow_list

    objs = [_RECONSTRUCTOR] + [
        obj for name, obj in allow_list().names.items() if name.endswith(".newObj")
    ]
    return {id(obj): obj for obj in objs}


def _is(table: dict[int, Any], obj: Any) -> bool:
    return table.get(id(obj)) is obj


class _Scanner:
    def __init__(self, stream: _Counting, joblib: bool, found: set[str], budget: _Budget) -> None:
        self.stream = stream
        self.joblib = joblib
        self.found = found
        self.budget = budget
        self.arrays = 0
        self.unidentified_builds = 0
        self.proto = 0
        self.frame_end: int | None = None
        self.wrapper = _wrapper_class()
        self.fresh = _fresh_results()
        self.first_argument = _instance_of_first_argument()

    # --- the opcode loop ---------------------------------------------------------------------
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
        for opcode, op_arg, at in pickletools.genops(self.stream):  # type: ignore[arg-type]
            name = opcode.name
            arg: Any = op_arg
            pos = at if at is not None else self.stream.position  # _Counting has tell()
            self._track_frame(name, arg, pos)
            if name == "PROTO":
                self.proto = arg
            elif name in ("FRAME", "READONLY_BUFFER"):
                pass
            elif name == "STOP":
                self._check_frame_exhausted(pos + 1)
                return
            elif name == "MARK":
                metastack.append(stack)
                stack = []
                self.budget.spend()
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
                if not 0 <= int(arg) < MAX_VALUES:
                    # pickle's C loader sizes its memo table to the largest index: one PUT of
                    # index 2**31 would claim gigabytes. Writers number entries from 0.
                    raise InvalidModelFile(
                        "The pickle stores an object at a memo index far beyond any model's."
                    )
                memo[int(arg)] = stack[-1]
                self.budget.spend()
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
                self.budget.spend()
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[int(arg)])
            elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
            elif name in _TEXT:
                stack.append(arg if len(arg) <= _MAX_TEXT else OPAQUE)
            elif name in _NUMBERS:
                small = not isinstance(arg, int) or arg.bit_length() <= _MAX_INT_BITS
                stack.append(arg if small else OPAQUE)
            elif name in _BYTES or name in ("EMPTY_LIST", "EMPTY_SET"):
                stack.append(OPAQUE)
            elif name == "EMPTY_DICT":
                stack.append(self._dict())
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(stack) < n:
                    raise IndexError("tuple of missing items")
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(self._tuple(items))
            elif name == "TUPLE":
                items = pop_mark()  # first: pop_mark rebinds `stack`
                stack.append(self._tuple(tuple(items)))
            elif name in ("LIST", "FROZENSET"):
                pop_mark()
                stack.append(OPAQUE)
            elif name == "DICT":
                items = pop_mark()
                stack.append(self._dict(items))
            elif name == "APPEND":
                stack.pop()
                stack[-1]  # noqa: B018 - the loader fails on a missing target, so must the scan
            elif name in ("APPENDS", "ADDITEMS"):
                pop_mark()
                stack[-1]  # noqa: B018
            elif name == "SETITEM":
                value = stack.pop()
                key = stack.pop()
                self._setitems(stack[-1], [key, value])
            elif name == "SETITEMS":
                items = pop_mark()
                self._setitems(stack[-1], items)
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
                stack.append(self._instance(cls, tuple(items)))
            elif name == "OBJ":
                items = pop_mark()
                stack.append(self._instance(items[0], tuple(items[1:])))
            elif name in ("NEWOBJ", "NEWOBJ_EX"):
                kwargs = stack.pop() if name == "NEWOBJ_EX" else None
                args = stack.pop()
                stack.append(self._instance(stack.pop(), args, kwargs))
            elif name == "REDUCE":
                args = stack.pop()
                stack.append(self._reduce(stack.pop(), args))
            elif name == "BUILD":
                state = stack.pop()
                stack[-1] = self._build(stack[-1], state, pos + 1)
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

    # --- frames --------------------------------------------------------------------------------
    def _track_frame(self, name: str, arg: Any, pos: int) -> None:
        """Follow pickle's frames as the loader's unframer does: an opcode that starts inside a
        frame must end inside it, and a new frame may start only once the last is read."""
        if self.frame_end is not None and pos >= self.frame_end:
            if pos > self.frame_end:
                raise InvalidModelFile(
                    f"An opcode crosses the end of a pickle frame; {_UNREADABLE}."
                )
            self.frame_end = None
        if name == "FRAME":
            if self.frame_end is not None:
                raise InvalidModelFile(f"A pickle frame starts inside another; {_UNREADABLE}.")
            self.frame_end = pos + 9 + int(arg)  # the opcode byte and its 8-byte length

    def _check_frame_exhausted(self, after: int) -> None:
        """joblib reads array bytes (and nested object-array pickles) from the file itself, not
        from the frame the loader has buffered: bytes left in the frame would be read later, in
        another order than the scan reads them."""
        if self.frame_end is not None and after != self.frame_end:
            raise InvalidModelFile(f"A joblib array does not end its pickle frame; {_UNREADABLE}.")
        self.frame_end = None

    # --- values ---------------------------------------------------------------------------------
    def _tuple(self, items: tuple[Any, ...]) -> tuple[Any, ...]:
        self.budget.spend()
        return items

    def _dict(self, items: list[Any] | None = None) -> _Dict:
        self.budget.spend()
        result = _Dict()
        if items:
            self._setitems(result, items)
        return result

    def _setitems(self, target: Any, items: list[Any]) -> None:
        if len(items) % 2:
            raise IndexError("odd number of dict items")
        if isinstance(target, _Dict):
            self.budget.spend(len(items) // 2)
            target.pairs.extend(zip(items[0::2], items[1::2], strict=True))

    def _global(self, module: str, attr: str) -> _Global:
        obj = policy.resolve(module, attr)
        self.found.add(canonical_name(obj))
        return _Global(obj)

    def _class_of_call(self, func: Any, args: Any) -> type | None:
        """The class of what calling `func` with `args` returns, when the scan can know it."""
        if not isinstance(func, _Global):
            return None
        obj = func.obj
        if _is(self.first_argument, obj):
            # _RECONSTRUCTOR(cls, object, state) and newObj(cls) make a `cls`; with
            # another base, _reconstructor calls base.__new__, which may return its argument.
            first = args[0] if isinstance(args, tuple) and args else None
            if obj is _RECONSTRUCTOR and not (
                isinstance(args, tuple) and len(args) == 3
                and isinstance(args[1], _Global) and args[1].obj is object
            ):
                return None
            return _made_by(first)
        if isinstance(obj, type):
            return _made_by(func)
        return object if _is(self.fresh, obj) else None  # object: "known, not a wrapper"

    def _instance(self, cls: Any, args: Any, kwargs: Any = None) -> _Object:
        """NEWOBJ, OBJ, INST: cls.__new__(cls, *args) (OBJ and INST also call __init__)."""
        self.budget.spend()
        known = _made_by(cls)
        result = _Object(cls, args, known)
        if known is self.wrapper:
            # joblib's pickler creates the wrapper with NEWOBJ and no arguments; __init__ would
            # set attributes from arguments the scan would have to trust.
            if args != () or not (kwargs is None or (isinstance(kwargs, _Dict) and
                                                      not kwargs.pairs)):
                raise self._not_joblib("is created with arguments")
            result.attrs = {}
        return result

    def _reduce(self, func: Any, args: Any) -> _Object:
        self.budget.spend()
        cls = self._class_of_call(func, args)
        result = _Object(func, args, cls)
        if cls is self.wrapper:
            # Protocols 0-1 write _RECONSTRUCTOR(wrapper, object, None); nothing else
            # creates a wrapper without running code the scan would have to follow.
            if not (isinstance(func, _Global) and func.obj is _RECONSTRUCTOR
                    and args[2] is None):
                raise self._not_joblib("is created by a call joblib never writes")
            result.attrs = {}
        return result

    def _build(self, target: Any, state: Any, after: int) -> Any:
        if isinstance(target, _Global):
            # Would set attributes on a class or function for the rest of the process.
            raise UnsafeModel(f"The pickle changes {canonical_name(target.obj)} itself while "
                              "loading, which ModelDepot refuses.")
        if not isinstance(target, _Object):
            return target
        if target.cls is None and self.joblib:
            # joblib's loader would read array bytes here if this were a wrapper; pickle's
            # would not. scan() refuses the file if joblib is what will load it.
            self.unidentified_builds += 1
        if target.cls is not self.wrapper or not self.joblib:
            target.state = state
            self._check_dtype_state(target)
            return target
        self._read_array(target, state, after)
        return _Object(None, (), object)  # joblib puts the array in the wrapper's place

    def _check_dtype_state(self, target: _Object) -> None:
        """numpy's dtype.__setstate__ trusts its argument and can crash the interpreter on a
        state numpy never writes, so every dtype's state must be numpy's own for that dtype."""
        import numpy as np

        if isinstance(target.func, _Global) and target.func.obj is np.dtype:
            try:
                _verified_dtype(target, 0)
            except _NotLiteral as exc:
                raise InvalidModelFile(
                    f"The pickle holds a numpy dtype {exc.args[0]}; loading it could crash the "
                    "loader, so ModelDepot refuses it."
                ) from None

    # --- joblib arrays --------------------------------------------------------------------------
    def _not_joblib(self, what: str) -> InvalidModelFile:
        return InvalidModelFile(
            f"A joblib array record {what}, which joblib never writes; {_UNREADABLE}."
        )

    def _read_array(self, wrapper: _Object, state: Any, after: int) -> None:
        """Skip the raw bytes joblib reads after this NumpyArrayWrapper's BUILD."""
        if wrapper.attrs is None or not isinstance(state, _Dict):
            raise self._not_joblib("has a state that is not a dict")
        if len(state.pairs) > _MAX_WRAPPER_KEYS:
            raise self._not_joblib("has too many attributes")
        for key, value in state.pairs:  # pickle's BUILD: later keys win, earlier BUILDs stay
            if type(key) is not str or key not in _WRAPPER_KEYS:
                raise self._not_joblib("has an attribute that is not a literal joblib key")
            wrapper.attrs[key] = value
        attrs = wrapper.attrs
        if not {"subclass", "shape", "order", "dtype", "allow_mmap"} <= attrs.keys():
            raise self._not_joblib("lacks an attribute")
        itemsize, hasobject = self._dtype(attrs["dtype"])
        try:
            shape = _literal(attrs["shape"])
        except _NotLiteral:
            shape = None
        if not isinstance(shape, tuple) or not all(
            type(n) is int and n >= 0 for n in shape
        ):
            raise self._not_joblib("has a shape that is not a tuple of literal sizes")
        alignment = attrs.get("numpy_array_alignment_bytes")
        if not (alignment is None or type(alignment) is int) or \
                attrs["order"] not in ("C", "F") or type(attrs["allow_mmap"]) is not bool:
            raise self._not_joblib("has an attribute that is not a literal")
        subclass = attrs["subclass"]
        import numpy as np

        if not (isinstance(subclass, _Global) and subclass.obj in (np.ndarray, np.matrix)):
            raise self._not_joblib("is not a numpy array")
        self._check_frame_exhausted(after)
        self.arrays += 1
        if hasobject:
            # An object array is a nested pickle that joblib reads with a plain unpickler.
            _Scanner(self.stream, joblib=False, found=self.found, budget=self.budget).run()
            return
        if alignment is not None:
            padding = self.stream.read(1)
            if len(padding) != 1:
                raise _truncated()
            self._skip(padding[0])
        count = 1
        for n in shape:
            count *= n
        self._skip(count * itemsize)

    def _dtype(self, value: Any) -> tuple[int, bool]:
        """(itemsize, hasobject) of a joblib record's dtype."""
        try:
            dtype = _verified_dtype(value, 0)
        except _NotLiteral as exc:
            raise self._not_joblib(f"has a dtype {exc.args[0]}") from None
        if dtype.itemsize == 0:
            raise self._not_joblib("has a dtype of zero bytes")
        return dtype.itemsize, bool(dtype.hasobject)

    def _skip(self, n: int) -> None:
        while n > 0:
            data = self.stream.read(min(n, _SKIP_CHUNK))
            if not data:
                raise _truncated()
            n -= len(data)


def _made_by(cls: Any) -> type | None:
    """The class an instance made by calling `cls` (a _Global) belongs to. numpy.object_(x)
    returns x itself (the only allowed class that returns its argument, which
    tests/formats/test_allowlist.py checks), so what it makes is unknown."""
    import numpy as np

    if not isinstance(cls, _Global) or not isinstance(cls.obj, type) or cls.obj is np.object_:
        return None
    return cls.obj


def _literal(value: Any, depth: int = 0) -> Any:
    """`value` as plain Python when it is a literal, tuples and dicts of literals (str keys) and
    dtypes that pass `_verified_dtype`, nested at most _LITERAL_DEPTH levels (a self-referencing
    or deep state stops there instead of recursing)."""
    if depth > _LITERAL_DEPTH:
        raise _NotLiteral("nested deeper than numpy writes")
    if value is None or type(value) in (str, int, float, bool):
        return value
    if type(value) is tuple:
        return tuple(_literal(item, depth + 1) for item in value)
    if isinstance(value, _Dict) and all(type(key) is str for key, _ in value.pairs):
        return {key: _literal(item, depth + 1) for key, item in value.pairs}
    if isinstance(value, _Object):
        return _verified_dtype(value, depth + 1)
    raise _NotLiteral("computed at load time")


def _verified_dtype(value: Any, depth: int) -> Any:
    """The numpy dtype a pickled `numpy.dtype(...)` call and BUILD make, accepted only when its
    arguments and state are exactly what numpy writes for that dtype: nothing the file declares
    (an element size, flags) is believed, it is compared with numpy's own. The dtype is built
    from its parts, never by handing the file's state to `dtype.__setstate__`, which crashes the
    interpreter on some inputs."""
    import numpy as np

    if not (isinstance(value, _Object) and isinstance(value.func, _Global)
            and value.func.obj is np.dtype):
        raise _NotLiteral("that is not a numpy dtype")
    args, state = _literal(value.args, depth), _literal(value.state, depth)
    if not (isinstance(args, tuple) and args and isinstance(args[0], str) and args[0].isalnum()
            and isinstance(state, tuple) and len(state) == 8 and state[1] in ("<", ">", "|")):
        raise _NotLiteral("numpy would not write")
    subarray, names, fields, elsize, flags = state[2], state[3], state[4], state[5], state[7]
    expected: Any
    try:
        if names is not None:
            if not (isinstance(names, tuple) and all(type(n) is str for n in names)
                    and isinstance(fields, dict) and set(names) == fields.keys()
                    and type(flags) is int):
                raise _NotLiteral("with malformed fields")
            expected = np.dtype({
                "names": list(names),
                "formats": [fields[n][0] for n in names],
                "offsets": [fields[n][1] for n in names],
                "itemsize": elsize,
                "aligned": bool(flags & 0x80),  # NPY_ALIGNED_STRUCT
            })
        elif subarray is not None:
            expected = np.dtype(subarray)
        else:
            expected = np.dtype(state[1] + args[0])
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise _NotLiteral("numpy cannot build") from exc
    if expected.__reduce__()[1:] != (args, state):
        raise _NotLiteral("whose state is not numpy's own for it")
    return expected


def _truncated() -> InvalidModelFile:
    return InvalidModelFile("The joblib file ends in the middle of an array: it is truncated.")


def scan_pickle(stream: BinaryIO) -> PickleScan:
    """Scan one pickle from `stream`; refuse names outside the allow-list with UnsafeModel and
    any stream the scan cannot read exactly as the loader would with InvalidModelFile.

    Follows joblib's inline array layout (harmless for plain pickles, which never build a
    NumpyArrayWrapper).
    """
    found: set[str] = set()
    scanner = _Scanner(_Counting(stream), joblib=True, found=found, budget=_Budget())
    try:
        scanner.run()
    except (UnsafeModel, InvalidModelFile):
        raise
    except (ValueError, IndexError, KeyError, EOFError, TypeError, OverflowError) as exc:
        # genops raises ValueError on unknown opcodes and short reads; the symbolic stack raises
        # IndexError/KeyError on a stream no unpickler could load.
        raise InvalidModelFile(
            "The file is not a readable pickle: it is damaged, truncated or not a model file."
        ) from exc
    return PickleScan(tuple(sorted(found)), scanner.arrays, scanner.proto,
                      scanner.unidentified_builds)
