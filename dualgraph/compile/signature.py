"""Call arguments -> signature key (shapes, dtypes, requires_grad, static values)."""
from __future__ import annotations

import numpy as np

from ..eager.tensor import Tensor
from ..static.tree import tree_flatten


def _leaf_key(x):
    if x.__class__ is Tensor:
        v = x._value
        return ("T", v.shape, v.dtype, x._requires_grad)
    if isinstance(x, np.ndarray):
        return ("A", x.shape, x.dtype)
    try:
        hash(x)
    except TypeError:
        return ("S", type(x).__name__, repr(x))
    return ("S", type(x).__name__, x)


def signature(args, kwargs):
    """``(key, fast)``: ``fast`` when every argument is a Tensor (and no kwargs): then the
    key is a tuple of ``(shape, dtype, requires_grad)``, one per argument; else it is
    ``(tree, leaf keys)``."""
    if not kwargs:
        k = []
        for a in args:
            if a.__class__ is not Tensor:
                break
            v = a._value
            k.append((v.shape, v.dtype, a._requires_grad))
        else:
            return tuple(k), True
    leaves, tree = tree_flatten((args, kwargs))
    return (tree, tuple(_leaf_key(x) for x in leaves)), False
