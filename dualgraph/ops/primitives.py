"""Every primitive of dualgraph, each declared once with its rules beside it.

Per primitive: numpy implementation, shape/dtype rule, and a VJP rule written in
dualgraph ops (the functions defined in this module), so the same rule runs on the
eager tape, under the tracer (IR autodiff) and with ``create_graph=True``.

A VJP rule has the signature ``vjp(ct, out, inputs, need, **params)``: ``ct`` is the
cotangent of the output, ``out`` the output (only for ``uses_out`` primitives, else
None), ``inputs`` the primitive's inputs (Tensors or Python scalars), ``need`` a tuple of
booleans saying which inputs want a cotangent.  It returns one cotangent (or None) per
input.
"""
from __future__ import annotations

import math

import numpy as np

from . import lowering as L
from .lowering import Elementwise, Emitter, IndexMap
from .registry import PRIMITIVES, Primitive, ShapedArray, _ctx_get, register

_NOPARAMS: dict = {}  # shared, never mutated


def _shape(x):
    # only called for inputs that want a cotangent, which are Tensors
    return x.shape


def _dtype(x):
    return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def _dummy(x):
    """A one-element stand-in with the dtype and rank of ``x`` (the rank matters: a 0-d
    tensor promotes like a scalar, see _torch_promote; Python scalars stay weakly typed)."""
    if isinstance(x, ShapedArray):
        return np.zeros((1,) * x.ndim, x.dtype)
    return x


def _bshape(name, avals):
    shapes = [a.shape for a in avals if isinstance(a, ShapedArray)]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{name}: shapes {' and '.join(str(s) for s in shapes)} are not broadcastable"
        ) from None


# ----------------------------------------------------------------------------------------
# Helpers used by the VJP rules (written in dualgraph ops)
# ----------------------------------------------------------------------------------------


def unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``, undoing numpy broadcasting."""
    gshape = g.shape
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, d in enumerate(shape) if d == 1 and gshape[i + lead] != 1
    )
    if axes:
        g = reduce_sum(g, axes=axes, keepdims=False)
    if g.shape != shape:
        g = reshape(g, shape=shape)
    return g


_nd = np.ndarray


def _torch_promote(f):
    """Mixed int/float operands promote as torch does: to the float tensor's dtype (numpy
    would widen ``int64 * float32`` to float64), and an int tensor with a Python float to
    float32; a 0-d tensor of the same kind as a dimensioned one takes its dtype (torch:
    ``float32[n] + float64 0-d`` is float32).  Otherwise Python scalars stay weak (numpy 2)."""

    def impl(x, y):
        xc, yc = x.__class__, y.__class__
        if xc is _nd:
            if yc is _nd:
                if x.dtype is not y.dtype:
                    x, y = _promote_arrays(x, y)
            elif yc is float and x.dtype.kind in "iub":
                x = x.astype(np.float32)  # int tensor and Python float: float32, as torch
        elif yc is _nd and xc is float and y.dtype.kind in "iub":
            y = y.astype(np.float32)
        return f(x, y)

    impl.__name__ = getattr(f, "__name__", "impl")
    # for callers that have checked the operands need no promotion: two arrays of one
    # dtype, or a floating array and a Python int or float (numpy's weak scalars)
    impl.raw = f
    return impl


def _promote_arrays(x, y):
    """Two arrays of different dtypes, converted as torch's type promotion would."""
    xk, yk = x.dtype.kind, y.dtype.kind
    if xk == "f" and yk in "iub":
        y = y.astype(x.dtype)
    elif yk == "f" and xk in "iub":
        x = x.astype(y.dtype)
    elif xk == yk and (x.ndim == 0) != (y.ndim == 0):
        if x.ndim == 0:
            x = x.astype(y.dtype)
        else:
            y = y.astype(x.dtype)
    return x, y


def _int_to_float(f):
    """Integer and bool inputs of a float-valued unary op compute in float32, as torch
    (numpy would give float64).  The eager fast path calls ``raw`` after its own check."""

    def impl(x):
        if x.__class__ is _nd and x.dtype.kind in "iub":
            x = x.astype(np.float32)
        return f(x)

    impl.__name__ = getattr(f, "__name__", "impl")
    impl.raw = f
    impl.int_to_float = True
    return impl


_BOOL_SUB_MSG = (
    "Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
    "trying to invert a mask, use the `~` or `logical_not()` operator instead."
)


def _no_bool_sub(f):
    """torch refuses ``-`` with a bool operand (numpy only refuses bool - bool).  Called with
    None it raises that error (the dtype rule's use)."""
    if f is None:
        raise TypeError(_BOOL_SUB_MSG)

    def impl(x, y):
        if x.__class__ is bool or y.__class__ is bool or getattr(x, "dtype", None) == np.bool_ \
                or getattr(y, "dtype", None) == np.bool_:
            raise TypeError(_BOOL_SUB_MSG)
        return f(x, y)

    impl.__name__ = getattr(f, "__name__", "impl")
    impl.raw = f.raw
    return impl


def _true_divide(x, y):
    # int / int is a float32 tensor, as in torch (numpy would give float64)
    if np.asarray(x).dtype.kind in "iub" and np.asarray(y).dtype.kind in "iub":
        return np.true_divide(x, y, dtype=np.float32)
    return np.true_divide(x, y)


# ----------------------------------------------------------------------------------------
# dtype rules.  They mirror the numpy implementations' promotion (torch's rules, see
# _torch_promote) from the operands' types alone; a test checks them against ``impl`` for
# every elementwise primitive and dtype pair.  An operand is a ShapedArray (an array: its
# rank matters for the 0-d rule) or a Python scalar (weakly typed, as numpy 2 and torch).
# ----------------------------------------------------------------------------------------

_F32 = np.dtype(np.float32)
_BOOL = np.dtype(np.bool_)


def _weak(a):
    """What np.result_type sees for an operand: a dtype, or a Python scalar (weak)."""
    return a.dtype if isinstance(a, ShapedArray) else a


def _promote_dtype(x, y):
    """The dtype of ``impl(x, y)`` for a ``_torch_promote``-d binary numpy ufunc."""
    xa, ya = isinstance(x, ShapedArray), isinstance(y, ShapedArray)
    if xa and ya:
        xk, yk = x.dtype.kind, y.dtype.kind
        if x.dtype == y.dtype:
            return x.dtype
        if xk == "f" and yk in "iub":
            return x.dtype
        if yk == "f" and xk in "iub":
            return y.dtype
        if xk == yk and (x.ndim == 0) != (y.ndim == 0):
            return y.dtype if x.ndim == 0 else x.dtype
        return np.result_type(x.dtype, y.dtype)
    if xa and y.__class__ is float and x.dtype.kind in "iub":
        return _F32
    if ya and x.__class__ is float and y.dtype.kind in "iub":
        return _F32
    if not xa and not ya:
        return _scalars_dtype(x, y)
    return np.result_type(_weak(x), _weak(y))


def _scalars_dtype(*xs):
    """Python scalars alone: torch's default dtypes (float32, int64, bool)."""
    if any(x.__class__ is float for x in xs):
        return _F32
    if any(x.__class__ is int for x in xs):
        return np.dtype(np.int64)
    return _BOOL


def _same_dtype(x, **params):
    return _weak_dtype(x)


def _weak_dtype(x):
    return x.dtype if isinstance(x, ShapedArray) else np.result_type(x)


def _neg_dtype(x):
    dt = _weak_dtype(x)
    if dt == _BOOL:
        raise TypeError("The numpy boolean negative, the `-` operator, is not supported, use the "
                        "`~` operator or the logical_not function instead.")
    return dt


def _float_dtype(x, **params):
    """Float-valued unary ops: int and bool compute in float32 (torch)."""
    dt = _weak_dtype(x)
    return _F32 if dt.kind in "iub" else dt


def _sub_dtype(x, y):
    for a in (x, y):
        if a.__class__ is bool or (isinstance(a, ShapedArray) and a.dtype == _BOOL):
            _no_bool_sub(None)  # raises torch's TypeError
    return _promote_dtype(x, y)


def _div_dtype(x, y):
    dt = _promote_dtype(x, y)
    return _F32 if dt.kind in "iub" else dt


def _bool_dtype(*avals, **params):
    return _BOOL


def _elementwise(name, impl, vjp=None, *, arity, dtype_rule, uses_out=False, nondiff=False,
                 **fields):
    """Register an elementwise primitive: broadcasting shape rule, the given dtype rule."""

    def shape_rule(*avals, **params):
        return ShapedArray(_bshape(name, avals), dtype_rule(*avals, **params))

    return register(
        Primitive(name, impl, shape_rule, None if nondiff else vjp, kind="elementwise",
                  arity=arity, dtype_rule=dtype_rule, uses_out=uses_out, **fields)
    )


def _call(prim):
    """A thin function ``f(*args, **params)`` that binds ``prim`` through this thread's
    active handler (what the rules call).  ``define_functions`` installs one per primitive
    in this module under ``prim.fn_name``; the eager layer may ask for faster ones."""
    get = _ctx_get

    def f(*args, **params):
        return get().handler(prim, args, params or _NOPARAMS)

    f.__name__ = prim.fn_name
    f.__qualname__ = prim.fn_name
    f.__doc__ = f"Apply the ``{prim.name}`` primitive."
    f.primitive = prim
    return f


def define_functions(factory=None):
    """Make this module's function for every registered primitive: ``factory(prim)``
    returns a callable or None (then the plain ``bind`` one is used).  The VJP rules and
    composites look these functions up at call time, so they follow a new definition.

    The functions are named by each entry's ``fn_name`` (``add``, ``logical_and``, ...):
    that is where the names the rules call (``mul``, ``reshape``, ...) come from."""
    ns = globals()
    for prim in PRIMITIVES.values():
        f = factory(prim) if factory is not None else None
        if f is None:
            f = _call(prim)
        else:
            f.__name__ = f.__qualname__ = prim.fn_name
            f.__doc__ = f"Apply the ``{prim.name}`` primitive."
            f.primitive = prim
        ns[prim.fn_name] = f


# Which saved values a VJP reads, as torch's SavedVariables (an in-place write to one of
# them before backward is an error; to any other input it is not): ``saves(need) ->
# (input indices, reads the output)``.  None (the default) means every input.
_SAVES_NONE = lambda need: ((), False)  # noqa: E731 - add, sub, neg: shapes only
_SAVES_OUT = lambda need: ((), True)  # noqa: E731 - exp, tanh, sigmoid, sqrt


def _saves_other(need):
    # mul: d/dx reads y, d/dy reads x
    return tuple(i for i, n in ((1, need[0]), (0, need[1])) if n), False


def _saves_div(need):
    # div: d/dx reads y; d/dy reads x and y
    if need[1]:
        return (0, 1), False
    return (1,), False


def _pow_may_raise(avals, params):
    # integers to negative integer powers
    return all(getattr(a, "dtype", np.result_type(a)).kind in "iub" for a in avals)


# ----------------------------------------------------------------------------------------
# Elementwise arithmetic
# ----------------------------------------------------------------------------------------


# The add/sub/mul rules are the hot path of eager backward.  They skip ``unbroadcast``
# when the cotangent already has the input's shape, and read shapes as
# ``t.shape``: the payload's shape (an array's, or a tracer value's), what
# ``Tensor.shape`` returns, without the property call.  ``g`` and every input that wants a
# cotangent are Tensors.


def _add_vjp(g, out, ins, need):
    x, y = ins
    gs = g.shape
    gx = gy = None
    if need[0]:
        gx = g if x.shape == gs else unbroadcast(g, x.shape)
    if need[1]:
        gy = g if y.shape == gs else unbroadcast(g, y.shape)
    return gx, gy


def _sub_vjp(g, out, ins, need):
    x, y = ins
    gx = gy = None
    if need[0]:
        gx = g if x.shape == g.shape else unbroadcast(g, x.shape)
    if need[1]:
        gy = neg(g)
        if y.shape != gy.shape:
            gy = unbroadcast(gy, y.shape)
    return gx, gy


def _mul_vjp(g, out, ins, need):
    x, y = ins
    gx = gy = None
    if need[0]:
        gx = mul(g, y)
        if x.shape != gx.shape:
            gx = unbroadcast(gx, x.shape)
    if need[1]:
        gy = mul(g, x)
        if y.shape != gy.shape:
            gy = unbroadcast(gy, y.shape)
    return gx, gy


def _div_vjp(g, out, ins, need):
    x, y = ins
    gx = div(g, y)
    return (
        unbroadcast(gx, _shape(x)) if need[0] else None,
        unbroadcast(neg(mul(gx, div(x, y))), _shape(y)) if need[1] else None,
    )


def _pow_dtype(x, y):
    if (x.dtype if isinstance(x, ShapedArray) else np.result_type(x)) == _BOOL and (
            y.__class__ in (int, bool) or getattr(y, "dtype", None) in (_BOOL, _I64)):
        x = ShapedArray(x.shape, np.int64) if isinstance(x, ShapedArray) else 1
    return _promote_dtype(x, y)


def _pow_impl(x, y):
    if getattr(x, "dtype", x.__class__) in (_BOOL, bool) and (
            y.__class__ in (int, bool) or getattr(y, "dtype", None) in (_BOOL, _I64)):
        x = np.asarray(x, np.int64)  # bool ** int is int64 (torch)
    # numpy's float32 `x ** 3` is pathologically slow: small integer powers multiply.
    if y.__class__ is int or y.__class__ is float:
        if y == 2:
            return x * x
        if y == 3:
            return x * x * x
        if y == 1:
            return np.array(x, copy=True) if isinstance(x, np.ndarray) else x
    return np.power(x, y)


def _pow_vjp(g, out, ins, need):
    x, y = ins
    gx = gy = None
    if need[0]:
        if isinstance(y, (int, float)):  # a Python scalar (bool included)
            if y == 2:
                d = mul(x, 2)
            elif y == 0:  # as torch: zero, even where x is inf or nan
                return zeros(x.shape, g.dtype), None
            else:
                d = mul(pow(x, y - 1), y)
        else:
            if _dtype(y).kind == "b":
                y = convert(y, dtype=_dtype(x))
            d = mul(pow(x, sub(y, 1)), y)
            d = where(eq(y, 0), 0, d)  # as torch: x ** 0 has zero gradient everywhere
        gx = unbroadcast(mul(g, d), _shape(x))
    if need[1]:
        if isinstance(x, (int, float)):
            with np.errstate(divide="ignore", invalid="ignore"):
                lx = float(np.log(np.float64(x)))  # a weak Python float: keeps out's dtype
        else:
            lx = log(x if _dtype(x) == _dtype(out) else convert(x, dtype=_dtype(out)))
        # as torch: zero where x == 0 and y >= 0 (not out * log(0) = 0 * -inf)
        d = where(logical_and(eq(x, 0), ge(y, 0)), 0, mul(out, lx))
        gy = unbroadcast(mul(g, d), _shape(y))
    return gx, gy


def _maximum_vjp(g, out, ins, need, _pick=None):
    x, y = ins
    # torch semantics: at ties each side gets half of the gradient
    # (and, as torch, only the losing side is masked: where x or y is NaN both get it)
    # exact zeros where a side loses (never g * 0, which is NaN where g is inf or NaN)
    base = where(eq(x, y), mul(g, 0.5), g)
    xloses, yloses = (lt(x, y), gt(x, y)) if _pick is None else (gt(x, y), lt(x, y))
    gx = where(xloses, 0, base) if need[0] else None
    gy = where(yloses, 0, base) if need[1] else None
    return (
        unbroadcast(gx, _shape(x)) if need[0] else None,
        unbroadcast(gy, _shape(y)) if need[1] else None,
    )


def _minimum_vjp(g, out, ins, need):
    return _maximum_vjp(g, out, ins, need, _pick="min")


# Lowerings (ops/lowering.py): ``Elementwise(fn)`` with the scalar template
# ``fn(ctx, operands, dtype) -> expression`` on operands cast to the compute dtype.


def _pow_lowering(c, a, dt):
    x, y = a
    lit = c.literal(1)  # the exponent as a Python number when it is a literal, else None
    if lit is not None and not isinstance(lit, bool):
        # as the eager impl: small integer powers multiply (numpy's float pow is slow)
        if lit == 2:
            return f"({x} * {x})"
        if lit == 3:
            return f"({x} * {x} * {x})"
        if lit == 1:
            return x
        if lit == 0.5 and L.is_float(dt):
            return f"np.sqrt({x})"  # numpy's x ** 0.5: NaN at -inf, -0.0 at -0.0 (pow: inf, 0.0)
    if not L.is_float(dt):
        if lit is None or lit < 0:
            c.check(f"{y} < 0")  # numpy raises "Integers to negative integer powers ..."
        return f"({x} ** {y})"
    return f"({x} ** {y})"


def _extremum_lowering(cmp, bool_op, int_fn):
    """maximum/minimum: numpy's NaN propagation, ties give the second operand."""
    def rule(c, a, dt):
        if L.is_bool(dt):
            return f"({a[0]} {bool_op} {a[1]})"
        if L.is_float(dt):
            return f"({a[0]} if ({a[0]} {cmp} {a[1]} or {a[0]} != {a[0]}) else {a[1]})"
        return f"{int_fn}({a[0]}, {a[1]})"
    return rule


_max_lowering = _extremum_lowering(">", "|", "max")
_min_lowering = _extremum_lowering("<", "&", "min")


add_p = _elementwise("add", _torch_promote(np.add), _add_vjp, arity=2, dtype_rule=_promote_dtype,
                     saves=_SAVES_NONE, tensor_methods=("__add__", "__radd__", "__iadd__", "add", "add_"),
                     lowering=Elementwise(lambda c, a, dt: f"({a[0]} | {a[1]})" if L.is_bool(dt)
                                          else f"({a[0]} + {a[1]})"))
sub_p = _elementwise("sub", _no_bool_sub(_torch_promote(np.subtract)), _sub_vjp, arity=2,
                     dtype_rule=_sub_dtype, saves=_SAVES_NONE,
                     tensor_methods=("__sub__", "__rsub__", "__isub__", "sub", "sub_"),
                     lowering=Elementwise(L.binop("-")))
mul_p = _elementwise("mul", _torch_promote(np.multiply), _mul_vjp, arity=2, dtype_rule=_promote_dtype,
                     saves=_saves_other, tensor_methods=("__mul__", "__rmul__", "__imul__", "mul", "mul_"),
                     lowering=Elementwise(lambda c, a, dt: f"({a[0]} & {a[1]})" if L.is_bool(dt)
                                          else f"({a[0]} * {a[1]})"))


def _div_lowering(c, a, dt):
    """``x / y``; for float32 with ``y`` the same along the innermost axis (a row's sum,
    a scalar), ``x * (1 / y)`` in float64, rounded once: LLVM hoists the reciprocal out of
    the loop (no per-element division; kernels have no ``arcp``), the float64 product
    rounds to float32 as ``x / y`` does but in about one case in 2^28 (then 1 ulp off), and
    0, inf, NaN, -0.0 and subnormal divisors give ``x / y``'s values (1 / y cannot overflow
    in float64)."""
    if np.dtype(dt) == _F32 and not c.flat:
        eqn = c.cur_eqn
        y, out = eqn.inputs[1], eqn.outs[0]
        shape = getattr(getattr(y, "aval", None), "shape", None)
        if out.aval.ndim > 0 and shape is not None and (len(shape) == 0 or shape[-1] == 1) \
                and out.aval.shape[-1] != 1:
            return f"np.float32(np.float64({a[0]}) * (1.0 / np.float64({a[1]})))"
    return f"({a[0]} / {a[1]})"


div_p = _elementwise("div", _torch_promote(_true_divide), _div_vjp, arity=2, dtype_rule=_div_dtype,
                     saves=_saves_div, grad_name="Div",
                     tensor_methods=("__truediv__", "__rtruediv__", "__itruediv__", "div", "div_"),
                     lowering=Elementwise(_div_lowering, heavy=True, store_shared=False))
pow_p = _elementwise("pow", _torch_promote(_pow_impl), _pow_vjp, arity=2, dtype_rule=_pow_dtype,
                     uses_out=True, literal_ok=False, may_raise=_pow_may_raise,
                     tensor_methods=("__pow__", "__rpow__", "__ipow__", "pow", "pow_"),
                     lowering=Elementwise(_pow_lowering, heavy=True))
maximum_p = _elementwise("maximum", _torch_promote(np.maximum), _maximum_vjp, arity=2,
                         dtype_rule=_promote_dtype, tensor_methods=("maximum",),
                         lowering=Elementwise(_max_lowering))
minimum_p = _elementwise("minimum", _torch_promote(np.minimum), _minimum_vjp, arity=2,
                         dtype_rule=_promote_dtype, tensor_methods=("minimum",),
                         lowering=Elementwise(_min_lowering))

neg_p = _elementwise("neg", np.negative, lambda g, out, ins, need: (neg(g),), arity=1,
                     dtype_rule=_neg_dtype, saves=_SAVES_NONE, tensor_methods=("__neg__", "neg"),
                     lowering=Elementwise(lambda c, a, dt: f"(-{a[0]})"))
exp_p = _elementwise("exp", _int_to_float(np.exp), lambda g, out, ins, need: (mul(g, out),), arity=1,
                     dtype_rule=_float_dtype, uses_out=True, saves=_SAVES_OUT, tensor_methods=("exp",),
                     lowering=Elementwise(L.math_call("exp"), heavy=True))
log_p = _elementwise("log", _int_to_float(np.log), lambda g, out, ins, need: (div(g, ins[0]),), arity=1,
                     dtype_rule=_float_dtype, tensor_methods=("log",),
                     lowering=Elementwise(L.math_call("log"), heavy=True))
def _tanh_backward_impl(g, y):
    # g * (1 - y*y) with array operands only: a Python-scalar operand costs numpy 2 about
    # twice an array-array ufunc call on small arrays
    return g - g * y * y


def _tanh_backward_vjp(c, out, ins, need):
    g, y = ins
    return (
        unbroadcast(mul(c, sub(1, mul(y, y))), _shape(g)) if need[0] else None,
        unbroadcast(mul(mul(c, g), mul(y, -2)), _shape(y)) if need[1] else None,
    )


# d tanh = g * (1 - y^2), one primitive so eager backward pays one dispatch, not three
tanh_backward_p = _elementwise("tanh_backward", _no_bool_sub(_torch_promote(_tanh_backward_impl)), _tanh_backward_vjp, arity=2,
                               dtype_rule=_sub_dtype,
                               lowering=Elementwise(lambda c, a, dt: f"({a[0]} - {a[0]} * {a[1]} * {a[1]})"))
tanh_p = _elementwise(
    "tanh", _int_to_float(np.tanh), lambda g, out, ins, need: (tanh_backward(g, out),), arity=1,
    dtype_rule=_float_dtype, uses_out=True, saves=_SAVES_OUT, tensor_methods=("tanh",),
    lowering=Elementwise(L.math_call("tanh"), heavy=True),
)


def _sigmoid_impl(x):
    # 1 / (1 + exp(-x)) without overflow warnings for large |x|
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def _sigmoid_backward_impl(g, y):
    return g * (y - y * y)  # g * y * (1 - y), array operands only (see tanh_backward)


def _sigmoid_backward_vjp(c, out, ins, need):
    g, y = ins
    return (
        unbroadcast(mul(c, mul(y, sub(1, y))), _shape(g)) if need[0] else None,
        unbroadcast(mul(mul(c, g), sub(1, mul(y, 2))), _shape(y)) if need[1] else None,
    )


sigmoid_backward_p = _elementwise("sigmoid_backward", _no_bool_sub(_torch_promote(_sigmoid_backward_impl)), _sigmoid_backward_vjp,
                                  arity=2, dtype_rule=_sub_dtype,
                                  lowering=Elementwise(lambda c, a, dt: f"({a[0]} * ({a[1]} - {a[1]} * {a[1]}))"))
sigmoid_p = _elementwise(
    "sigmoid",
    _int_to_float(_sigmoid_impl),
    lambda g, out, ins, need: (sigmoid_backward(g, out),),
    arity=1,
    dtype_rule=_float_dtype,
    uses_out=True,
    saves=_SAVES_OUT,
    tensor_methods=("sigmoid",),
    lowering=Elementwise(L.math_call("sigmoid"), heavy=True),
)
sqrt_p = _elementwise(
    "sqrt", _int_to_float(np.sqrt), lambda g, out, ins, need: (div(g, mul(out, 2)),), arity=1,
    dtype_rule=_float_dtype, uses_out=True, saves=_SAVES_OUT, tensor_methods=("sqrt",),
    lowering=Elementwise(L.np_call("sqrt"), heavy=True, store_shared=False),
)
abs_p = _elementwise("abs", np.abs, lambda g, out, ins, need: (mul(g, sign(ins[0])),), arity=1,
                     dtype_rule=_same_dtype, tensor_methods=("__abs__", "abs"),
                     lowering=Elementwise(lambda c, a, dt: a[0] if L.is_bool(dt) else f"abs({a[0]})"))


def _sign_impl(x):
    if getattr(x, "dtype", None) == np.bool_:
        return np.array(x, copy=True)  # torch: sign of a bool tensor is itself
    s = np.sign(x)
    if s.dtype.kind == "f":
        s = np.where(s != s, s.dtype.type(0), s)  # torch: sign(nan) = 0
    return s


def _sign_lowering(c, a, dt):
    x = a[0]
    one, mone, zero = c.const(1, dt), c.const(-1, dt), c.const(0, dt)
    return f"({one} if {x} > {zero} else ({mone} if {x} < {zero} else {zero}))"


sign_p = _elementwise("sign", _sign_impl, nondiff=True, arity=1, dtype_rule=_same_dtype, tensor_methods=("sign",),
                      lowering=Elementwise(_sign_lowering))


def _erf_impl(x):
    from scipy.special import erf

    return erf(x)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
erf_p = _elementwise(
    "erf",
    _int_to_float(_erf_impl),
    lambda g, out, ins, need: (
        mul(g, mul(exp(neg(mul(ins[0], ins[0]))), _TWO_OVER_SQRT_PI)),
    ),
    arity=1,
    dtype_rule=_float_dtype,
    tensor_methods=("erf",),
    lowering=Elementwise(L.math_call("erf"), heavy=True),
)

# the identity that stops gradients: what ``detach()`` of a traced tensor records, so a
# graph differentiated by IR autodiff treats it as the tape does (no cotangent through it)
stop_gradient_p = _elementwise("stop_gradient", lambda x: x, nondiff=True, arity=1, dtype_rule=_same_dtype,
                               grad_name="Detach",
                               # traced, x.detach() is an alias of x (as eagerly: shared
                               # memory): a write to it is a write to x
                               view_put=lambda base, v: v,
                               # the identity (gradients were taken before code generation)
                               lowering=Elementwise(L.identity))

# comparisons and logic: bool results, no gradient


def _predicate(name, ufunc, ops, lowering, arity=2, fn_name=None):
    return _elementwise(name, ufunc, nondiff=True, arity=arity, dtype_rule=_bool_dtype,
                        tensor_methods=ops, fn_name=fn_name, lowering=lowering)


# comparisons compute in the operands' promoted dtype, logic in bool
lt_p = _predicate("lt", np.less, ("__lt__", "lt"), Elementwise(L.binop("<"), compute="promote"))
le_p = _predicate("le", np.less_equal, ("__le__", "le"), Elementwise(L.binop("<="), compute="promote"))
gt_p = _predicate("gt", np.greater, ("__gt__", "gt"), Elementwise(L.binop(">"), compute="promote"))
ge_p = _predicate("ge", np.greater_equal, ("__ge__", "ge"), Elementwise(L.binop(">="), compute="promote"))
eq_p = _predicate("eq", np.equal, ("__eq__", "eq"), Elementwise(L.binop("=="), compute="promote"))
ne_p = _predicate("ne", np.not_equal, ("__ne__", "ne"), Elementwise(L.binop("!="), compute="promote"))
and_p = _predicate("and", np.logical_and, ("logical_and",),
                   Elementwise(L.binop("&"), compute="bool"), fn_name="logical_and")
or_p = _predicate("or", np.logical_or, ("logical_or",),
                  Elementwise(L.binop("|"), compute="bool"), fn_name="logical_or")
not_p = _predicate("not", np.logical_not, ("logical_not",),
                   Elementwise(lambda c, a, dt: f"(not {a[0]})", compute="bool"), arity=1, fn_name="logical_not")


# ``&``, ``|``, ``^``, ``~`` are bitwise, as torch's (on bool tensors the same as the logical
# ops; they were the logical ops on integers too: int8 ``x & 6`` gave True for 1)
def _bitwise_dtype(*avals, **params):
    dt = _promote_dtype(*avals) if len(avals) == 2 else avals[0].dtype
    if np.dtype(dt).kind not in "iub":
        raise TypeError(f"bitwise operations: not implemented for {np.dtype(dt).name} "
                        "(integer and bool tensors only, as torch)")
    return dt


def _bitwise(name, ufunc, ops, op):
    return _elementwise(name, _torch_promote(ufunc), nondiff=True, arity=2, dtype_rule=_bitwise_dtype,
                        tensor_methods=ops, lowering=Elementwise(L.binop(op)))


bitwise_and_p = _bitwise("bitwise_and", np.bitwise_and, ("__and__", "__rand__", "__iand__", "bitwise_and"), "&")
bitwise_or_p = _bitwise("bitwise_or", np.bitwise_or, ("__or__", "__ror__", "__ior__", "bitwise_or"), "|")
bitwise_xor_p = _bitwise("bitwise_xor", np.bitwise_xor, ("__xor__", "__rxor__", "__ixor__", "bitwise_xor"), "^")
bitwise_not_p = _elementwise(
    "bitwise_not", np.invert, nondiff=True, arity=1, dtype_rule=_bitwise_dtype,
    tensor_methods=("__invert__", "bitwise_not"),
    lowering=Elementwise(lambda c, a, dt: f"(not {a[0]})" if L.is_bool(dt) else f"(~{a[0]})"))


def _where_vjp(g, out, ins, need):
    c, x, y = ins
    # exact zeros on the side not taken (never g * 0: NaN where g is inf or NaN)
    return (
        None,
        unbroadcast(where(c, g, 0), _shape(x)) if need[1] else None,
        unbroadcast(where(c, 0, g), _shape(y)) if need[2] else None,
    )


def _where_dtype(c, x, y):
    # the branches promote as torch's binary ops (see _where_impl)
    return _promote_dtype(x, y)


def _where_impl(c, x, y):
    if getattr(c, "dtype", np.bool_) != np.bool_:
        raise TypeError(f"where: expected a bool condition, got {np.dtype(c.dtype).name} (as torch)")
    # the branches promote as torch's binary ops do (see _torch_promote)
    if x.__class__ is _nd:
        if y.__class__ is _nd:
            if x.dtype is not y.dtype:
                x, y = _promote_arrays(x, y)
        elif y.__class__ is float and x.dtype.kind in "iub":
            x = x.astype(np.float32)
    elif y.__class__ is _nd and x.__class__ is float and y.dtype.kind in "iub":
        y = y.astype(np.float32)
    elif x.__class__ is not _nd and y.__class__ is not _nd:  # two Python scalars: float32/int64
        return np.where(c, x, y).astype(_scalars_dtype(x, y))
    return np.where(c, x, y)


def _where_rule(c, x, y):
    shape = _bshape("where", (c, x, y))
    dtype = np.asarray(_where_impl(np.True_, _dummy(x), _dummy(y))).dtype
    return ShapedArray(shape, dtype)


where_p = register(Primitive("where", _where_impl, _where_rule, _where_vjp, kind="elementwise", arity=3,
                             dtype_rule=_where_dtype, saves=lambda need: ((0,), False),
                             # the condition is cast to bool, the branches to the result dtype
                             lowering=Elementwise(lambda c, a, dt: f"({a[1]} if {a[0]} else {a[2]})",
                                                  compute="where")))


def _convert_impl(x, dtype):
    return np.asarray(x).astype(dtype)


convert_p = register(
    Primitive(
        "convert",
        _convert_impl,
        lambda x, dtype: ShapedArray(_shape(x), dtype),
        lambda g, out, ins, need, dtype: (convert(g, dtype=_dtype(ins[0])),),
        kind="elementwise",
        arity=1,
        dtype_rule=lambda x, dtype: np.dtype(dtype),
        grad_name="ToCopy",
        saves=_SAVES_NONE,
        lowering=Elementwise(L.identity),
    )
)

# ----------------------------------------------------------------------------------------
# Creation
# ----------------------------------------------------------------------------------------


def _full_impl(shape, value, dtype):
    return np.full(shape, value, dtype)


full_p = register(
    Primitive("full", _full_impl, lambda shape, value, dtype: ShapedArray(shape, dtype), kind="creation",
              arity=0, dtype_rule=lambda shape, value, dtype: np.dtype(dtype),
              lowering=IndexMap(L._full_at))
)


def zeros(shape, dtype):
    return full(shape=tuple(shape), value=0, dtype=np.dtype(dtype))


# ----------------------------------------------------------------------------------------
# Reductions
# ----------------------------------------------------------------------------------------


_I64 = np.dtype(np.int64)


def _empty_reduction(avals, params):
    """max/min/argmax/argmin of an empty array raise."""
    return avals[0].size == 0


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _check_axes(name, x, axes):
    for a in axes:
        if not 0 <= a < x.ndim:
            raise ValueError(f"{name}: axis {a} out of range for shape {x.shape}")


def _reduce_rule(name, dtype_fn):
    def rule(x, axes, keepdims, pick_first=False):
        _check_axes(name, x, axes)
        return ShapedArray(_reduced_shape(x.shape, axes, keepdims), dtype_fn(x.dtype))

    return rule


def _sum_dtype(dt):
    return np.sum(np.zeros(1, dt)).dtype


def _reduce_sum_impl(x, axes, keepdims):
    if x.__class__ is _nd:  # the method skips np.sum's Python-level dispatch (~2 us)
        return x.sum(axis=axes, keepdims=keepdims)
    return np.sum(x, axis=axes, keepdims=keepdims)


def _reduce_sum_vjp(g, out, ins, need, axes, keepdims):
    x = ins[0]
    if not keepdims and axes != tuple(range(len(axes))):
        # reduced leading axes (a full reduction among them) broadcast back as they are
        g = reshape(g, shape=_reduced_shape(x.shape, axes, True))
    return (broadcast_to(g, shape=x.shape),)


def _reduce_max_impl(x, axes, keepdims, pick_first=False):
    return np.max(x, axis=axes, keepdims=keepdims)


def _reduce_min_impl(x, axes, keepdims, pick_first=False):
    return np.min(x, axis=axes, keepdims=keepdims)


def _extremum_vjp(arg):
    """VJP of reduce_max / reduce_min (``arg``: argmax / argmin).

    By default the gradient is spread evenly over the positions that attain the extremum
    (torch's ``max()``, ``amax``).  With ``pick_first`` (one axis: torch's ``max(dim)``)
    it goes to the one position ``arg`` returns."""

    def vjp(g, out, ins, need, axes, keepdims, pick_first=False):
        x = ins[0]
        kshape = _reduced_shape(x.shape, axes, True)
        if not keepdims:
            g = reshape(g, shape=kshape)
        if pick_first:
            (d,) = axes
            idx = arg(x, axis=d, keepdims=True)
            iota = np.arange(x.shape[d], dtype=np.int64).reshape(
                [-1 if i == d else 1 for i in range(x.ndim)]
            )
            return (mul(g, convert(eq(idx, iota), dtype=x.dtype)),)
        if not keepdims:
            out = reshape(out, shape=kshape)
        # the extremum is attained where x == out, or at the NaNs where out is NaN
        mask = convert(logical_or(eq(x, out), ne(x, x)), dtype=x.dtype)
        count = reduce_sum(mask, axes=axes, keepdims=True)
        return (mul(div(g, count), mask),)

    return vjp


reduce_sum_p = register(
    Primitive(
        "reduce_sum", _reduce_sum_impl, _reduce_rule("reduce_sum", _sum_dtype), _reduce_sum_vjp,
        kind="reduction", arity=1, grad_name="Sum", saves=_SAVES_NONE,
        dtype_rule=lambda x, axes, keepdims: _sum_dtype(x.dtype),
        lowering=L._reduce_emitter("sum"),
    )
)
reduce_max_p = register(
    Primitive(
        "reduce_max",
        _reduce_max_impl,
        _reduce_rule("reduce_max", lambda dt: dt),
        _extremum_vjp(lambda x, **kw: argmax(x, **kw)),
        uses_out=True,
        kind="reduction",
        arity=1,
        grad_name="Max",
        dtype_rule=lambda x, axes, keepdims, pick_first=False: x.dtype,
        may_raise=_empty_reduction,
        lowering=L._reduce_emitter("max"),
    )
)
reduce_min_p = register(
    Primitive(
        "reduce_min",
        _reduce_min_impl,
        _reduce_rule("reduce_min", lambda dt: dt),
        _extremum_vjp(lambda x, **kw: argmin(x, **kw)),
        uses_out=True,
        kind="reduction",
        arity=1,
        grad_name="Min",
        dtype_rule=lambda x, axes, keepdims, pick_first=False: x.dtype,
        may_raise=_empty_reduction,
        lowering=L._reduce_emitter("min"),
    )
)


def _arg_rule(name):
    def rule(x, axis, keepdims):
        if axis is None:
            shape = (1,) * x.ndim if keepdims else ()
        else:
            _check_axes(name, x, (axis,))
            shape = _reduced_shape(x.shape, (axis,), keepdims)
        return ShapedArray(shape, np.int64)

    return rule


def _argmax_impl(x, axis, keepdims):
    return np.argmax(x, axis=axis, keepdims=keepdims).astype(np.int64)


def _argmin_impl(x, axis, keepdims):
    return np.argmin(x, axis=axis, keepdims=keepdims).astype(np.int64)


argmax_p = register(Primitive("argmax", _argmax_impl, _arg_rule("argmax"), kind="reduction", arity=1,
                              dtype_rule=lambda x, axis, keepdims: _I64, may_raise=_empty_reduction,
                              lowering=L._arg_emitter("max")))
argmin_p = register(Primitive("argmin", _argmin_impl, _arg_rule("argmin"), kind="reduction", arity=1,
                              dtype_rule=lambda x, axis, keepdims: _I64, may_raise=_empty_reduction,
                              lowering=L._arg_emitter("min")))

# ----------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------


def _reshape_rule(x, shape):
    n = 1
    for d in shape:
        n *= d
    if n != x.size:
        raise ValueError(f"reshape: cannot reshape shape {x.shape} into shape {shape}")
    return ShapedArray(shape, x.dtype)


reshape_p = register(
    Primitive(
        "reshape",
        lambda x, shape: x.reshape(shape) if x.__class__ is _nd else np.reshape(x, shape),
        _reshape_rule,
        lambda g, out, ins, need, shape: (reshape(g, shape=ins[0].shape),),
        kind="structural",
        arity=1,
        grad_name="View",
        dtype_rule=lambda x, shape: x.dtype,
        saves=_SAVES_NONE,
        view_put=lambda base, v, shape: reshape(v, shape=base.shape),
        # an index map when it only inserts or removes size-1 dims, else a view
        lowering=IndexMap(L._reshape_at, ok=L._squeezable, emit=L._reshape_emit),
    )
)


def _transpose_rule(x, perm):
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"transpose: {perm} is not a permutation of the axes of shape {x.shape}")
    return ShapedArray(tuple(x.shape[p] for p in perm), x.dtype)


def _transpose_vjp(g, out, ins, need, perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return (transpose(g, perm=tuple(inv)),)


transpose_p = register(
    Primitive("transpose", lambda x, perm: np.transpose(x, perm), _transpose_rule, _transpose_vjp,
              kind="structural", arity=1, grad_name="Permute", dtype_rule=lambda x, perm: x.dtype,
              saves=_SAVES_NONE, view_put=lambda base, v, perm: _transpose_vjp(v, None, None, None, perm)[0],
              lowering=IndexMap(L._transpose_at))
)


def _broadcast_to_impl(x, shape):
    # np.broadcast_to costs ~5 us; a small result is cheaper filled (then it is a writable
    # copy rather than a read-only view, which no consumer can tell apart)
    if x.__class__ is _nd and x.ndim <= len(shape) and math.prod(shape) <= 4096:
        out = np.empty(shape, x.dtype)
        out[...] = x
        return out
    return np.broadcast_to(x, shape)


def _broadcast_to_rule(x, shape):
    try:
        if np.broadcast_shapes(x.shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    return ShapedArray(shape, x.dtype)


broadcast_to_p = register(
    Primitive(
        "broadcast_to",
        _broadcast_to_impl,
        _broadcast_to_rule,
        lambda g, out, ins, need, shape: (unbroadcast(g, _shape(ins[0])),),
        kind="structural",
        arity=1,
        grad_name="Expand",
        dtype_rule=lambda x, shape: x.dtype,
        saves=_SAVES_NONE,
        lowering=IndexMap(L._broadcast_at),
    )
)


def _concat_rule(*xs, axis):
    first = xs[0]
    for x in xs[1:]:
        if x.ndim != first.ndim or any(
            a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != axis
        ):
            raise ValueError(
                "concatenate: shapes "
                + ", ".join(str(y.shape) for y in xs)
                + f" do not match outside axis {axis}"
            )
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return ShapedArray(shape, _torch_result_type([x.dtype for x in xs]))


def _torch_result_type(dtypes):
    """torch's promotion of tensors: floats win over ints and bools, whatever their width."""
    floats = [d for d in dtypes if np.dtype(d).kind == "f"]
    return np.result_type(*(floats or dtypes))


def _concat_impl(*xs, axis):
    dt = _torch_result_type([x.dtype for x in xs])
    return np.concatenate([x if x.dtype == dt else x.astype(dt) for x in xs], axis=axis)


def _concat_vjp(g, out, ins, need, axis):
    res = []
    start = 0
    for x, n in zip(ins, need):
        stop = start + x.shape[axis]
        if n:
            spec = (("s", None, None, None),) * axis + (("s", start, stop, None),)
            res.append(getitem(g, spec=spec))
        else:
            res.append(None)
        start = stop
    return tuple(res)


concatenate_p = register(
    Primitive(
        "concatenate",
        _concat_impl,
        _concat_rule,
        _concat_vjp,
        kind="structural",
        arity=None,
        grad_name="Cat",
        dtype_rule=lambda *xs, axis: _torch_result_type([x.dtype for x in xs]),
        saves=_SAVES_NONE,
        lowering=Emitter(L._concat_emit, fuses=True),
    )
)

# ----------------------------------------------------------------------------------------
# Matrix product
# ----------------------------------------------------------------------------------------


def _matmul_rule(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got {a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if ka != kb:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align ({ka} != {kb})")
    if a.dtype != b.dtype:
        raise TypeError(
            f"matmul: expected both operands to have the same dtype, got {np.dtype(a.dtype).name} "
            f"and {np.dtype(b.dtype).name} (as torch; convert one with .to(dtype))"
        )
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    shape = batch + (a.shape[-2:-1] if a.ndim > 1 else ()) + (b.shape[-1:] if b.ndim > 1 else ())
    return ShapedArray(shape, np.result_type(a.dtype, b.dtype))


def _mT(x):
    perm = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return transpose(x, perm=perm)


def _matmul_vjp(g, out, ins, need):
    a, b = ins
    a2 = a if a.ndim > 1 else reshape(a, shape=(1,) + a.shape)
    b2 = b if b.ndim > 1 else reshape(b, shape=b.shape + (1,))
    oshape = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1])
    g2 = reshape(g, shape=oshape) if g.shape != oshape else g
    ga = gb = None
    if need[0]:
        ga = unbroadcast(matmul(g2, _mT(b2)), a2.shape)
        if ga.shape != a.shape:
            ga = reshape(ga, shape=a.shape)
    if need[1]:
        gb = unbroadcast(matmul(_mT(a2), g2), b2.shape)
        if gb.shape != b.shape:
            gb = reshape(gb, shape=b.shape)
    return ga, gb


def _matmul_impl(a, b):
    if a.dtype != b.dtype:
        raise TypeError("matmul: operands of different dtypes")  # explained by the rule
    return np.matmul(a, b)


matmul_p = register(Primitive("matmul", _matmul_impl, _matmul_rule, _matmul_vjp, kind="linalg", arity=2,
                              grad_name="Mm", dtype_rule=lambda a, b: np.result_type(a.dtype, b.dtype),
                              saves=_saves_other, tensor_methods=("__matmul__", "__rmatmul__", "matmul"),
                              lowering=Emitter(L._matmul_emit)))

# ----------------------------------------------------------------------------------------
# Indexing.  ``spec`` is a hashable tuple: ints, None, Ellipsis, ("s", start, stop, step)
# for slices and ("a", k) for the k-th index-array input.
# ----------------------------------------------------------------------------------------


def build_index(spec, arrays):
    out = []
    for s in spec:
        if s.__class__ is tuple:
            if s[0] == "s":
                out.append(slice(s[1], s[2], s[3]))
            else:
                out.append(arrays[s[1]])
        else:
            out.append(s)
    return tuple(out)


def _getitem_impl(x, *arrays, spec):
    return x[build_index(spec, arrays)]


def _getitem_rule(x, *arrays, spec):
    probe = np.broadcast_to(np.zeros((), x.dtype), x.shape)
    idx = build_index(spec, [np.zeros(a.shape, a.dtype) for a in arrays])
    try:
        return ShapedArray(probe[idx].shape, x.dtype)
    except IndexError as e:
        raise IndexError(f"getitem: {e} (shape {x.shape})") from None


def _getitem_vjp(g, out, ins, need, spec):
    x, *arrays = ins
    return (index_add(zeros(x.shape, x.dtype), g, *arrays, spec=spec),) + (None,) * len(arrays)


def _index_add_impl(base, g, *arrays, spec):
    out = np.array(base, copy=True)
    idx = build_index(spec, arrays)
    if arrays:
        np.add.at(out, idx, g)
    else:
        out[idx] += g
    return out


def _index_add_vjp(g, out, ins, need, spec):
    base, upd, *arrays = ins
    gu = None
    if need[1]:
        gu = unbroadcast(getitem(g, *arrays, spec=spec), _shape(upd))
    return (g if need[0] else None, gu) + (None,) * len(arrays)


getitem_p = register(Primitive("getitem", _getitem_impl, _getitem_rule, _getitem_vjp, kind="indexing",
                               arity=None, grad_name="Index", dtype_rule=lambda x, *arrays, spec: x.dtype,
                               may_raise=lambda avals, params: len(avals) > 1, saves=_SAVES_NONE,
                               view_put=lambda base, v, *arrays, spec: index_set(base, v, *arrays, spec=spec),
                               lowering=IndexMap(L._getitem_at, ok=L._getitem_ok)))
index_add_p = register(
    Primitive(
        "index_add",
        _index_add_impl,
        lambda base, g, *arrays, spec: ShapedArray(base.shape, base.dtype),
        _index_add_vjp,
        kind="indexing",
        arity=None,
        grad_name="IndexAdd",
        dtype_rule=lambda base, g, *arrays, spec: base.dtype,
        may_raise=lambda avals, params: len(avals) > 2,
        saves=_SAVES_NONE,
        lowering=Emitter(L._index_update("+="), fuses=True, ok=L._index_add_ok),
    )
)



def _index_set_impl(base, value, *arrays, spec):
    # ``base[idx] = value`` as a pure function (jax's ``.at[idx].set``): the eager and traced
    # form of ``t[idx] = value`` and of in-place writes through a view
    out = np.array(base, copy=True)
    out[build_index(spec, arrays)] = value
    return out


def _index_set_vjp(g, out, ins, need, spec):
    base, value, *arrays = ins
    gb = gv = None
    if need[0]:  # the overwritten positions get an exact zero
        gb = index_set(g, 0, *arrays, spec=spec)
    if need[1]:
        gv = unbroadcast(getitem(g, *arrays, spec=spec), _shape(value))
        if gv.dtype != value.dtype:
            gv = convert(gv, dtype=value.dtype)
    return (gb, gv) + (None,) * len(arrays)


def _index_set_rule(base, value, *arrays, spec):
    sub = _getitem_rule(base, *arrays, spec=spec)
    vshape = value.shape if isinstance(value, ShapedArray) else ()
    try:
        if np.broadcast_shapes(vshape, sub.shape) != sub.shape:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"index_set: shape mismatch: value tensor of shape {list(vshape)} cannot be broadcast "
            f"to indexing result of shape {list(sub.shape)}"
        ) from None
    return ShapedArray(base.shape, base.dtype)


index_set_p = register(
    Primitive(
        "index_set",
        _index_set_impl,
        _index_set_rule,
        _index_set_vjp,
        kind="indexing",
        arity=None,
        grad_name="CopySlices",
        dtype_rule=lambda base, value, *arrays, spec: base.dtype,
        may_raise=lambda avals, params: len(avals) > 2,
        saves=_SAVES_NONE,
        # the loops of index_add, assignment (the last write wins)
        lowering=Emitter(L._index_update("="), fuses=True, ok=L._index_add_ok),
    )
)

# ----------------------------------------------------------------------------------------
# Dynamic buffers: the tape of reverse-mode autodiff through while loops.  A buffer has
# a leading dimension known only at run time (``None`` in its shape).
# ----------------------------------------------------------------------------------------


def _dynamic_zeros_impl(n, shape, dtype, scratch=False):
    # scratch=True: every row is written before it is read (the carry tapes of while
    # autodiff), so a compiled kernel may hand out reused memory; eagerly, zeros
    return np.zeros((int(n),) + tuple(shape), dtype)


dynamic_zeros_p = register(
    Primitive(
        "dynamic_zeros",
        _dynamic_zeros_impl,
        lambda n, shape, dtype, scratch=False: ShapedArray((None,) + tuple(shape), dtype),
        kind="indexing",
        arity=1,
        dtype_rule=lambda n, shape, dtype, scratch=False: np.dtype(dtype),
        may_raise=True,
        lowering=Emitter(L._dynamic_zeros_emit),
    )
)


def _dynamic_index_impl(buf, i):
    return np.array(buf[int(i)], copy=True)


dynamic_index_p = register(
    Primitive(
        "dynamic_index",
        _dynamic_index_impl,
        lambda buf, i: ShapedArray(buf.shape[1:], buf.dtype),
        lambda g, out, ins, need: (
            dynamic_update(
                # a buffer of static length gets a cotangent of the same static type
                zeros(tuple(ins[0].shape), ins[0].dtype) if ins[0].shape[0] is not None
                else dynamic_zeros(dynamic_len(ins[0]), shape=tuple(ins[0].shape[1:]), dtype=ins[0].dtype),
                ins[1],
                g,
            ),
            None,
        ),
        kind="indexing",
        arity=2,
        dtype_rule=lambda buf, i: buf.dtype,
        may_raise=True,
        saves=lambda need: ((1,), False),
        lowering=Emitter(L._dynamic_index_emit),
    )
)


def _dynamic_update_impl(buf, i, x):
    # Writing past the end grows the buffer (doubling), so a tape can be filled by a loop
    # whose trip count is only known when it ends.  Pure: the operand is not modified.
    i = int(i)
    n = len(buf)
    if i >= n:
        out = np.zeros((max(2 * n, i + 1),) + buf.shape[1:], buf.dtype)
        out[:n] = buf
    else:
        out = np.array(buf, copy=True)
    out[i] = x
    return out


def _dynamic_update_vjp(g, out, ins, need):
    buf, i, x = ins
    return (
        dynamic_update(g, i, zeros(tuple(x.shape), g.dtype)) if need[0] else None,
        None,
        dynamic_index(g, i) if need[2] else None,
    )


dynamic_update_p = register(
    Primitive(
        "dynamic_update",
        _dynamic_update_impl,
        lambda buf, i, x: ShapedArray(buf.shape, buf.dtype),
        _dynamic_update_vjp,
        kind="indexing",
        arity=3,
        dtype_rule=lambda buf, i, x: buf.dtype,
        may_raise=True,
        saves=lambda need: ((1,), False),
        # row_write: the same write split for sibling fusion
        lowering=Emitter(L._dynamic_update_emit, row_write=(L._dynamic_update_pre, L._dynamic_update_row)),
    )
)

dynamic_len_p = register(
    Primitive(
        "dynamic_len",
        lambda buf: np.asarray(len(buf), np.int64),
        lambda buf: ShapedArray((), np.int64),
        kind="indexing",
        arity=1,
        dtype_rule=lambda buf: _I64,
        lowering=Emitter(lambda c, eqn: c.bind(eqn.outs[0], f"np.int64(len({c.array(eqn.inputs[0])}))")),
    )
)


# ----------------------------------------------------------------------------------------
# Graph constants: an array captured from a traced function's closure
# ----------------------------------------------------------------------------------------


def _const_impl(value):
    return value


const_p = register(
    Primitive("const", _const_impl, lambda value: ShapedArray(value.shape, value.dtype), kind="creation",
              arity=0, dtype_rule=lambda value: value.dtype, lowering=Emitter(L._const_emit))
)


# ----------------------------------------------------------------------------------------
# The functions the rules and composites call: one per primitive, named by its fn_name
# (``add``, ``mul``, ``reduce_sum``, ``logical_and``, ...), made from the registry.
# ----------------------------------------------------------------------------------------

define_functions()


