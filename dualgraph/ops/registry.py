"""The primitive registry: one entry per primitive, with every rule beside it.

A ``Primitive`` carries
  * ``impl``        -- numpy implementation on arrays / Python scalars,
  * ``shape_rule``  -- ``(*avals, **params) -> ShapedArray`` (or a tuple for multi-output),
  * ``vjp``         -- ``(ct, out, inputs, need, **params) -> tuple of cotangents``,
                       written with dualgraph ops so it serves eager backward, IR
                       autodiff and higher-order gradients alike,
  * ``lowering``    -- filled in by the compiler layer (issue: dg.compile to numba).

Nothing here imports the layers above.  Every op call goes through ``bind``, the one
dispatch point: the eager layer installs the handler (evaluate + record the tape), and
the tracer plugs in underneath it.
"""
from __future__ import annotations

import os
import sys

import numpy as np

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def user_source(skip=1):
    """``file:line`` of the innermost frame outside the dualgraph package: the user's
    line that an error message or a traced equation points at."""
    f = sys._getframe(skip)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_PKG) and not fn.startswith("<frozen"):
            return f"{fn}:{f.f_lineno}"
        f = f.f_back
    return None

PRIMITIVES: dict[str, "Primitive"] = {}


class ShapedArray:
    """Abstract value: shape and dtype, what a tracer or an IR variable knows of an array.

    A ``None`` entry in ``shape`` is a dimension known only at run time (used by the
    tape buffers of while-loop autodiff)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __eq__(self, other):
        return (
            isinstance(other, ShapedArray)
            and self.shape == other.shape
            and self.dtype == other.dtype
        )

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def str_short(self):
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{dtype_short(self.dtype)}[{dims}]"

    __repr__ = str_short


_SHORT = {
    "float32": "f32",
    "float64": "f64",
    "float16": "f16",
    "int64": "i64",
    "int32": "i32",
    "int8": "i8",
    "uint8": "u8",
    "bool": "bool",
}


def dtype_short(dtype) -> str:
    dtype = np.dtype(dtype)
    return _SHORT.get(dtype.name, dtype.name)


def aval_of(x) -> ShapedArray:
    """The abstract value of an array, scalar, or anything with ``shape``/``dtype``."""
    if isinstance(x, ShapedArray):
        return x
    if isinstance(x, (bool, int, float)):
        return ShapedArray((), np.asarray(x).dtype)
    return ShapedArray(x.shape, x.dtype)


class Primitive:
    """One primitive operation and all of its rules."""

    __slots__ = (
        "name",
        "impl",
        "shape_rule",
        "vjp",
        "uses_out",
        "multiple_results",
        "higher_order",
        "eager_rule",
        "lowering",
        "node_class",
        "__dict__",
    )

    def __init__(
        self,
        name,
        impl=None,
        shape_rule=None,
        vjp=None,
        *,
        uses_out=False,
        multiple_results=False,
        higher_order=False,
        eager_rule=None,
    ):
        self.name = name
        self.impl = impl
        self.shape_rule = shape_rule
        self.vjp = vjp
        self.uses_out = uses_out
        self.multiple_results = multiple_results
        self.higher_order = higher_order
        self.eager_rule = eager_rule
        self.lowering = None
        self.node_class = None  # the eager layer makes a `<Name>Backward` class

    def __repr__(self):
        return f"Primitive({self.name})"

    def bind(self, *args, **params):
        return _dispatch[0](self, args, params)


def register(prim: Primitive) -> Primitive:
    if prim.name in PRIMITIVES:
        raise ValueError(f"primitive {prim.name!r} registered twice")
    PRIMITIVES[prim.name] = prim
    return prim


def _no_handler(prim, args, params):
    raise RuntimeError("dualgraph.eager is not imported: no handler for bind()")


# The one dispatch point.  A one-element list so the eager layer can install its
# handler without ops/ importing it.
_dispatch = [_no_handler]


def bind(prim: Primitive, *args, **params):
    """Apply ``prim`` to ``args`` through the active handler (eager, tape, tracer)."""
    return _dispatch[0](prim, args, params)


def set_handler(fn):
    _dispatch[0] = fn
