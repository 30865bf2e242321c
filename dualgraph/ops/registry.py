"""The primitive registry: one entry per primitive, with every rule beside it.

A ``Primitive`` carries
  * ``impl``        -- numpy implementation on arrays / Python scalars,
  * ``shape_rule``  -- ``(*avals, **params) -> ShapedArray`` (or a tuple for multi-output),
  * ``vjp``         -- ``(ct, out, inputs, need, **params) -> tuple of cotangents``,
                       written with dualgraph ops so it serves eager backward, IR
                       autodiff and higher-order gradients alike,
  * ``lowering``    -- how the compiler writes it as numba source text (ops/lowering.py),
                       given in the declaration like the other rules.

Nothing here imports the layers above.  Every op call goes through ``bind``, the one
dispatch point: the eager layer installs the handler (evaluate + record the tape), and
the tracer plugs in underneath it.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from . import context

_ctx_get = context.get

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def user_source(skip=1):
    """``file:line`` of the innermost frame outside the dualgraph package: the user's
    line that an error message or a traced equation points at."""
    f = sys._getframe(skip)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_PKG) and not fn.startswith("<frozen") and not fn.startswith("<dualgraph"):
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


KINDS = (
    "elementwise",  # same-shape (broadcast) map of scalars: lowered from a scalar expression
    "reduction",    # reduces axes of one operand
    "structural",   # reshapes, transposes, broadcasts, concatenates: moves data, no arithmetic
    "indexing",     # getitem / index_add and the while-loop tape buffers
    "linalg",       # matmul
    "creation",     # full, const: no array operands
    "control",      # cond, while: carry sub-graphs in their params
)


class Primitive:
    """One primitive operation and all of its rules.

    Fields (every consumer reads these; no layer keeps its own list of ops):
      name         -- the IR name (``add``, ``reduce_sum``, ``cond``)
      impl         -- numpy implementation ``impl(*arrays_or_scalars, **params)``
      shape_rule   -- ``(*avals, **params) -> ShapedArray`` (tuple of them if multiple_results)
      dtype_rule   -- ``(*dtypes, **params) -> dtype`` where a dtype is a ``np.dtype`` or a
                      Python scalar type (``float``/``int``/``bool`` for weak scalars); never
                      runs ``impl``
      vjp          -- ``(ct, out, inputs, need, **params) -> cotangents``, in dualgraph ops
      kind         -- one of ``KINDS``
      arity        -- number of operands, or None when variadic
      fn_name      -- the name of the function in ``ops.primitives`` that binds it
      grad_name    -- the eager node's class name without ``Backward`` (torch's name)
      tensor_methods -- Tensor operators/methods this primitive provides (``("__add__",
                      "__radd__", "__iadd__")``, ``("exp",)``): the eager layer installs them
      may_raise    -- False, True, or ``(avals, params) -> bool``: can it raise for some
                      operand *values* (not types)?  LICM will not hoist such an equation
      literal_ok   -- False when the impl takes another path for a Python number than for a
                      0-d array (``pow``): constant folding keeps such operands as arrays
      type_check   -- for higher-order (control) primitives: ``(in_avals, out_avals, params)
                      -> None or an error message``; the verifier calls it
      saves        -- ``(need) -> (input indices, reads output)``: the saved values the VJP
                      reads (torch's SavedVariables); None: every input.  An in-place write
                      to one of them before backward raises; to any other input it does not
      view_put     -- for primitives whose eager result can be a view of operand 0 (numpy
                      basic slicing, reshape, transpose): ``(base, view, *operands[1:],
                      **params) -> new base`` in dualgraph ops, how a write through the view
                      updates the base (eagerly its history; traced, its value too)
      uses_out     -- the VJP reads the output
      multiple_results, higher_order, eager_rule (higher-order: runs the Python control flow)
      lowering     -- given in the declaration (rule classes in ops/lowering.py): a scalar
                      template for elementwise primitives, an index map or a code emitter for
                      the rest (text only: ops/ never imports numba).  None: compiling the op
                      raises CompileError naming it and the user's line
      node_class   -- cache of the eager layer's ``<GradName>Backward`` class
    """

    __slots__ = (
        "name",
        "impl",
        "shape_rule",
        "dtype_rule",
        "vjp",
        "kind",
        "arity",
        "fn_name",
        "grad_name",
        "tensor_methods",
        "may_raise",
        "literal_ok",
        "type_check",
        "saves",
        "view_put",
        "uses_out",
        "multiple_results",
        "higher_order",
        "eager_rule",
        "lowering",
        "node_class",
    )

    def __init__(
        self,
        name,
        impl=None,
        shape_rule=None,
        vjp=None,
        *,
        kind,
        arity,
        dtype_rule=None,
        fn_name=None,
        grad_name=None,
        tensor_methods=(),
        may_raise=False,
        literal_ok=True,
        type_check=None,
        saves=None,
        view_put=None,
        uses_out=False,
        multiple_results=False,
        higher_order=False,
        eager_rule=None,
        lowering=None,
    ):
        if kind not in KINDS:
            raise ValueError(f"primitive {name!r}: kind {kind!r} is not one of {KINDS}")
        self.name = name
        self.impl = impl
        self.shape_rule = shape_rule
        self.dtype_rule = dtype_rule
        self.vjp = vjp
        self.kind = kind
        self.arity = arity
        self.fn_name = fn_name or name
        self.grad_name = grad_name or "".join(p.capitalize() for p in name.split("_"))
        self.tensor_methods = tuple(tensor_methods)
        self.may_raise = may_raise
        self.literal_ok = literal_ok
        self.type_check = type_check
        self.saves = saves
        self.view_put = view_put
        self.uses_out = uses_out
        self.multiple_results = multiple_results
        self.higher_order = higher_order
        self.eager_rule = eager_rule
        self.lowering = lowering
        self.node_class = None  # the eager layer makes a `<GradName>Backward` class

    def __repr__(self):
        return f"Primitive({self.name})"

    def bind(self, *args, **params):
        return bind(self, *args, **params)

    def raises_for(self, avals, params) -> bool:
        """Can this primitive raise for some operand values of these types?"""
        m = self.may_raise
        return m(avals, params) if callable(m) else bool(m)


def register(prim: Primitive) -> Primitive:
    if prim.name in PRIMITIVES:
        raise ValueError(f"primitive {prim.name!r} registered twice")
    PRIMITIVES[prim.name] = prim
    return prim


# The one dispatch point: the active handler of this thread (see ``context``).
def bind(prim: Primitive, *args, **params):
    """Apply ``prim`` to ``args`` through this thread's active handler (eager, tracer, or a
    handler wrapping them)."""
    return _ctx_get().handler(prim, args, params)


def set_handler(fn):
    """Install ``fn(prim, args, params)`` as this thread's handler; returns the previous
    one, which ``fn`` may call to delegate (a check mode, a profiler, a spy)."""
    return context.set_handler(fn)


def install_default_handler(fn):
    """The eager layer's ``apply`` becomes every thread's default handler (once, at import)."""
    context.install_default_handler(fn)
