"""The one rule for every name a model file makes the loader import, trusted or not.

A pickle, a joblib file or a skops file names what it needs as "module" + "name". The name is
accepted only when all of these hold:
- the module is one of the exact modules the allow-list's objects live in (app/formats/
  allowlist.py); no other module is imported, since importing a module can run code;
- the name is a plain identifier: no dots (protocol 4 would follow them attribute by
  attribute) and no dunders other than the exact ones allowed objects are pickled under;
- `getattr(module, name)` IS one of the allowed objects, and is not a module.

So an alias or a re-export (numpy.lib.npyio.pickle, a private alias module of operator, a
joblib name for its compatibility loader) resolves to the object it stands for and is judged
as that object. Trust does not widen the list: it only means a pickle may be opened at all.
"""

from __future__ import annotations

import _compat_pickle
import importlib
from types import ModuleType
from typing import Any

from app.errors import InvalidModelFile, UnsafeModel
from app.formats.allowlist import MODULE_ALIASES, allow_list


def _refused(module: str, name: str, reason: str) -> UnsafeModel:
    return UnsafeModel(
        f"The model file uses {module}.{name}, which {reason}; ModelDepot refuses it even for "
        "trusted uploads, since it loads only the classes and functions a scikit-learn model "
        "needs."
    )


def _python2_name(module: str, name: str) -> tuple[str, str]:
    """What pickle's fix_imports reads a Python 2 name as (protocols 0-2 may hold them)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def resolve(module: Any, name: Any) -> Any:
    """The allowed object `module`.`name` stands for; UnsafeModel naming it otherwise.

    The object itself is handed to the loader (pickle's find_class returns it), so what was
    judged is exactly what is used.
    """
    if not isinstance(module, str) or not isinstance(name, str):
        raise UnsafeModel("The model file computes the name of what it imports while loading.")
    allowed = allow_list()
    if module not in allowed.modules:
        module, name = _python2_name(module, name)
    real_module = MODULE_ALIASES.get(module, module)
    if not name.isidentifier() or (
        # Module dunders (__builtins__, __loader__, __getattr__) reach the import system.
        name.startswith("__") and f"{real_module}.{name}" not in allowed.names
    ):
        raise _refused(module, name, "is not a plain importable name")
    if module not in allowed.modules:
        raise _refused(module, name, "comes from a module ModelDepot never imports for a model")
    try:
        obj = getattr(importlib.import_module(real_module), name)
    except AttributeError:
        raise InvalidModelFile(
            f"The model file needs {module}.{name}, which the installed libraries do not have; "
            "it was probably written with other versions of them."
        ) from None
    if isinstance(obj, ModuleType):
        raise _refused(module, name, "is a module")
    if not allowed.holds(obj):
        raise _refused(module, name, "is not one of the classes and functions a model needs")
    return obj


def resolve_qualified(qualified: str) -> Any:
    """`resolve` for a name given as one "module.name" string (what skops reports)."""
    module, _, name = qualified.rpartition(".")
    return resolve(module, name)


def is_allowed(qualified: str) -> bool:
    try:
        resolve_qualified(qualified)
    except (UnsafeModel, InvalidModelFile):
        return False
    return True
