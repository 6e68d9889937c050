"""Corrupt real fitted models the way a hostile file would: rebuild a compiled structure (a
Tree, a KDTree) through its own __reduce__/__setstate__ with edited state, as skops and pickle
do when they load one."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from app.errors import InvalidModelFile
from app.formats.structure import check_structures

Edit = Callable[[list[Any], dict[str, Any]], None]


def rebuilt_tree(tree: Any, edit: Edit) -> Any:
    """A sklearn Tree built from `tree`'s reduce args and state after `edit(args, state)`; the
    state's node and value arrays are copies, free to change."""
    cls, args, state = tree.__reduce__()
    args, state = list(args), dict(state)
    state["nodes"] = state["nodes"].copy()
    state["values"] = state["values"].copy()
    edit(args, state)
    new = cls(*args)
    new.__setstate__(state)
    return new


def with_tree(estimator: Any, edit: Edit) -> Any:
    """A copy of a fitted decision tree estimator whose tree_ went through `edit`."""
    corrupted = copy.deepcopy(estimator)
    corrupted.tree_ = rebuilt_tree(estimator.tree_, edit)
    return corrupted


def set_node(field: str, index: int, value: Any) -> Edit:
    def edit(args: list[Any], state: dict[str, Any]) -> None:
        state["nodes"][field][index] = value

    return edit


def internal_nodes(tree: Any) -> np.ndarray:
    return np.flatnonzero(tree.children_left != -1)


def rebuilt_binary_tree(tree: Any, edit: Callable[[list[Any]], None]) -> Any:
    """A KDTree/BallTree from `tree`'s state (a tuple, as a list here) after `edit(state)`."""
    state = [part.copy() if isinstance(part, np.ndarray) else part for part in tree.__getstate__()]
    edit(state)
    new = type(tree).__new__(type(tree))
    new.__setstate__(tuple(state))
    return new


def refused(model: Any, *phrases: str) -> str:
    """check_structures refuses `model` with a message holding every phrase; the message."""
    with pytest.raises(InvalidModelFile) as caught:
        check_structures(model)
    message = caught.value.message
    for phrase in phrases:
        assert phrase in message, message
    return message
