"""Elementwise math and scan primitives of issue 10 (op breadth).

Each primitive is declared once: numpy implementation, shape/dtype rule, VJP written in
dualgraph ops, kind/arity/grad_name/tensor_methods.  Integer and bool inputs of the
float-valued functions compute in float32 and mixed operands promote as torch does (the
helpers of ``ops.primitives``).  The VJPs call the module-level bind functions, so the
same rule serves the eager tape, IR autodiff and higher-order gradients.
"""
from __future__ import annotations

import math

import numpy as np

from . import lowering as L
from . import primitives as P
from .lowering import Elementwise, Emitter
from .primitives import _call, _int_to_float, _torch_promote, unbroadcast
from .registry import Primitive, ShapedArray, register

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)

PRIMITIVES = []


def _dummy(x):
    """A one-element stand-in of ``x``'s dtype and rank (ones: integer division by a
    dummy must not raise)."""
    if isinstance(x, ShapedArray):
        return np.ones((1,) * x.ndim, x.dtype)
    return x


def _stand_in(a):
    """A one-element value of an operand's type: an aval (ShapedArray, its rank kept), a
    dtype, a Python scalar type (weak) or a Python scalar."""
    if isinstance(a, ShapedArray):
        return np.ones((1,) * a.ndim, a.dtype)
    if isinstance(a, np.dtype):
        return np.ones(1, a)
    if isinstance(a, type):
        return a(1)
    return a


def _keep_dtype(x, **params):
    return P._weak_dtype(x)


def _atan2_dtype(x, y):
    # integer operands compute in float32 (torch.atan2); floats promote as torch
    dt = P._promote_dtype(x, y)
    return dt if dt.kind == "f" else np.dtype(np.float32)


def _elementwise(name, impl, vjp, arity, *, dtype_rule, lowering, grad_name=None, methods=(), uses_out=False,
                 may_raise=False):
    def shape_rule(*avals, **params):
        return ShapedArray(P._bshape(name, avals), dtype_rule(*avals, **params))

    prim = register(
        Primitive(name, impl, shape_rule, vjp, kind="elementwise", arity=arity, dtype_rule=dtype_rule,
                  fn_name=name, grad_name=grad_name, tensor_methods=methods, uses_out=uses_out,
                  may_raise=may_raise, lowering=lowering)
    )
    PRIMITIVES.append(prim)
    return prim


def _zero_vjp(g, out, ins, need, **params):
    # piecewise constant: an exact zero gradient (as torch's floor/ceil/round/trunc/sign;
    # never g * 0, which is NaN where g is inf or NaN)
    return tuple(P.zeros(tuple(x.shape), g.dtype) if n else None for x, n in zip(ins, need))


def _same_dtype(f):
    """An op that keeps integer dtypes (floor of an int tensor is the tensor)."""

    def impl(x, **params):
        if x.__class__ is np.ndarray and x.dtype.kind in "iub":
            return np.array(x, copy=True)
        return f(x, **params)

    impl.__name__ = getattr(f, "__name__", "impl")
    return impl


# ---- unary, float-valued ----------------------------------------------------------------

sin_p = _elementwise("sin", _int_to_float(np.sin), lambda g, out, ins, need: (P.mul(g, cos(ins[0])),), 1,
                     dtype_rule=P._float_dtype, methods=("sin",),
                     lowering=Elementwise(L.np_call("sin"), heavy=True))
cos_p = _elementwise("cos", _int_to_float(np.cos), lambda g, out, ins, need: (P.neg(P.mul(g, sin(ins[0]))),), 1,
                     dtype_rule=P._float_dtype, methods=("cos",),
                     lowering=Elementwise(L.np_call("cos"), heavy=True))
tan_p = _elementwise("tan", _int_to_float(np.tan),
                     lambda g, out, ins, need: (P.mul(g, P.add(P.mul(out, out), 1)),), 1,
                     dtype_rule=P._float_dtype, methods=("tan",), uses_out=True,
                     lowering=Elementwise(L.np_call("tan"), heavy=True))


def _rsqrt_1m_x2(x):
    return P.div(1, P.sqrt(P.sub(1, P.mul(x, x))))


asin_p = _elementwise("asin", _int_to_float(np.arcsin), lambda g, out, ins, need: (P.mul(g, _rsqrt_1m_x2(ins[0])),),
                      1, dtype_rule=P._float_dtype, methods=("asin", "arcsin"),
                      lowering=Elementwise(L.np_call("arcsin"), heavy=True))
acos_p = _elementwise("acos", _int_to_float(np.arccos),
                      lambda g, out, ins, need: (P.neg(P.mul(g, _rsqrt_1m_x2(ins[0]))),), 1, dtype_rule=P._float_dtype, methods=("acos", "arccos"),
                      lowering=Elementwise(L.np_call("arccos"), heavy=True))
atan_p = _elementwise("atan", _int_to_float(np.arctan),
                      lambda g, out, ins, need: (P.div(g, P.add(P.mul(ins[0], ins[0]), 1)),), 1,
                      dtype_rule=P._float_dtype, methods=("atan", "arctan"),
                      lowering=Elementwise(L.np_call("arctan"), heavy=True))
sinh_p = _elementwise("sinh", _int_to_float(np.sinh), lambda g, out, ins, need: (P.mul(g, cosh(ins[0])),), 1,
                      dtype_rule=P._float_dtype, methods=("sinh",),
                      lowering=Elementwise(L.np_call("sinh"), heavy=True))
cosh_p = _elementwise("cosh", _int_to_float(np.cosh), lambda g, out, ins, need: (P.mul(g, sinh(ins[0])),), 1,
                      dtype_rule=P._float_dtype, methods=("cosh",),
                      lowering=Elementwise(L.np_call("cosh"), heavy=True))
log2_p = _elementwise("log2", _int_to_float(np.log2), lambda g, out, ins, need: (P.div(g, P.mul(ins[0], _LN2)),), 1,
                      dtype_rule=P._float_dtype, methods=("log2",),
                      lowering=Elementwise(L.np_call("log2"), heavy=True))
log10_p = _elementwise("log10", _int_to_float(np.log10),
                       lambda g, out, ins, need: (P.div(g, P.mul(ins[0], _LN10)),), 1, dtype_rule=P._float_dtype, methods=("log10",),
                       lowering=Elementwise(L.np_call("log10"), heavy=True))
log1p_p = _elementwise("log1p", _int_to_float(np.log1p), lambda g, out, ins, need: (P.div(g, P.add(ins[0], 1)),), 1,
                       dtype_rule=P._float_dtype, methods=("log1p",),
                       lowering=Elementwise(L.math_call("log1p"), heavy=True))
exp2_p = _elementwise("exp2", _int_to_float(np.exp2), lambda g, out, ins, need: (P.mul(g, P.mul(out, _LN2)),), 1,
                      dtype_rule=P._float_dtype, methods=("exp2",), uses_out=True,
                      lowering=Elementwise(L.np_call("exp2"), heavy=True))
expm1_p = _elementwise("expm1", _int_to_float(np.expm1), lambda g, out, ins, need: (P.mul(g, P.exp(ins[0])),), 1,
                       dtype_rule=P._float_dtype, methods=("expm1",),  # exp(x), not out + 1: no cancellation for x << 0
                       lowering=Elementwise(L.math_call("expm1"), heavy=True))

# ---- rounding: dtype-preserving, zero gradient ------------------------------------------

def _rounding(fn):
    # integer operands are returned as they are
    return lambda c, a, dt: f"np.{fn}({a[0]})" if L.is_float(dt) else a[0]


def _round_lowering(c, a, dt, decimals=0):
    # numpy's round: rint(x * 10**d) / 10**d (x / 10**-d for d < 0), in the array's dtype
    if not L.is_float(dt):
        return a[0]
    if decimals == 0:
        return f"np.rint({a[0]})"
    if decimals > 0:
        k = c.const(10.0 ** decimals, dt)
        return f"(np.rint({a[0]} * {k}) / {k})"
    k = c.const(10.0 ** -decimals, dt)
    return f"(np.rint({a[0]} / {k}) * {k})"


floor_p = _elementwise("floor", _same_dtype(np.floor), _zero_vjp, 1, dtype_rule=_keep_dtype, methods=("floor",),
                       lowering=Elementwise(_rounding("floor")))
ceil_p = _elementwise("ceil", _same_dtype(np.ceil), _zero_vjp, 1, dtype_rule=_keep_dtype, methods=("ceil",),
                      lowering=Elementwise(_rounding("ceil")))
trunc_p = _elementwise("trunc", _same_dtype(np.trunc), _zero_vjp, 1, dtype_rule=_keep_dtype, methods=("trunc", "fix"),
                       lowering=Elementwise(_rounding("trunc")))


def _round_impl(x, decimals=0):
    if x.__class__ is np.ndarray and x.dtype.kind in "iub":
        return np.array(x, copy=True) if decimals >= 0 else np.round(x, decimals)
    return np.round(x, decimals)  # half to even, as torch


round_p = _elementwise("round", _round_impl, _zero_vjp, 1, dtype_rule=_keep_dtype, methods=("round",),
                       lowering=Elementwise(_round_lowering, params=True))

# ---- binary -----------------------------------------------------------------------------


def _atan2_vjp(g, out, ins, need):
    y, x = ins
    r = P.add(P.mul(x, x), P.mul(y, y))
    gy = unbroadcast(P.mul(g, P.div(x, r)), y.shape) if need[0] else None
    gx = unbroadcast(P.neg(P.mul(g, P.div(y, r))), x.shape) if need[1] else None
    return gy, gx


def _float_binary(f):
    """Integer operands of a float-valued binary op compute in float32 (torch.atan2):
    when neither operand is a float array, the int arrays become float32."""

    def impl(x, y):
        xa, ya = x.__class__ is np.ndarray, y.__class__ is np.ndarray
        if not ((xa and x.dtype.kind == "f") or (ya and y.dtype.kind == "f")):
            if xa:
                x = x.astype(np.float32)
            if ya:
                y = y.astype(np.float32)
        return f(x, y)

    return _torch_promote(impl)


atan2_p = _elementwise("atan2", _float_binary(np.arctan2), _atan2_vjp, 2, dtype_rule=_atan2_dtype, methods=("atan2", "arctan2"),
                       lowering=Elementwise(lambda c, a, dt: f"np.arctan2({a[0]}, {a[1]})", heavy=True))


def _is_bool(a):
    return a.__class__ is bool or getattr(a, "dtype", None) == np.bool_


def _intdiv_dtype(x, y):
    if _is_bool(x) and _is_bool(y):
        raise TypeError("not implemented for 'Bool' (as torch)")
    return P._promote_dtype(x, y)


def _int_div_check(name, f):
    def impl(x, y):
        if _is_bool(x) and _is_bool(y):
            raise TypeError(f"{name}: not implemented for 'Bool' (as torch)")
        if getattr(y, "dtype", np.dtype(type(y))).kind in "iub" and getattr(x, "dtype", np.dtype(type(x))).kind in "iub":
            if np.any(np.asarray(y) == 0):
                raise ZeroDivisionError(f"{name}: ZeroDivisionError (integer division by zero)")
        return f(x, y)

    impl.__name__ = name
    return impl


def _int_div_lowering(fn):
    def rule(c, a, dt):
        if not L.is_float(dt):
            c.check(f"{a[1]} == 0")  # eager raises (integer division by zero)
            if fn in ("floor_divide", "remainder") and np.dtype(dt).kind == "i":
                # y == -1: numba gives INT_MIN // -1 == 0 where numpy wraps to INT_MIN (as -x
                # does here), and int64 INT_MIN % -1 traps (SIGFPE: the process dies)
                x, y = c.tmp("t"), c.tmp("t")
                c.line(f"{x} = {a[0]}")
                c.line(f"{y} = {a[1]}")
                minus_one = f"-{x}" if fn == "floor_divide" else "0"
                return f"({minus_one} if {y} == -1 else np.{fn}({x}, {y}))"
        if fn == "floor_divide":  # numpy's algorithm (mathlib): inf // 2 is NaN, not inf
            return f"{c.math('floor_divide', dt)}({a[0]}, {a[1]})"
        return f"np.{fn}({a[0]}, {a[1]})"

    return rule


def _fmod_lowering(c, a, dt):
    if L.is_float(dt) or np.dtype(dt).kind != "i":
        return _int_div_lowering("fmod")(c, a, dt)
    c.check(f"{a[1]} == 0")  # eager raises (integer division by zero)
    # numba's np.fmod of signed integers is wrong for negative operands (numba 0.68:
    # fmod(-7, 3) gives 0, fmod(7, -3) gives 7): C's truncated remainder from Python's
    # floored one, which numba gets right; x % -1 is 0 (and INT_MIN % -1 would trap)
    x, y, r = c.tmp("t"), c.tmp("t"), c.tmp("t")
    c.line(f"{x} = {a[0]}")
    c.line(f"{y} = {a[1]}")
    c.line(f"{r} = 0 if {y} == -1 else {x} % {y}")
    return f"({r} - {y} if ({r} != 0 and ({r} < 0) != ({x} < 0)) else {r})"


def _fmod_vjp(g, out, ins, need):
    x, y = ins
    gx = unbroadcast(g, x.shape) if need[0] else None
    gy = unbroadcast(P.neg(P.mul(g, trunc(P.div(x, y)))), y.shape) if need[1] else None
    return gx, gy


def _remainder_vjp(g, out, ins, need):
    x, y = ins
    gx = unbroadcast(g, x.shape) if need[0] else None
    gy = unbroadcast(P.neg(P.mul(g, floor(P.div(x, y)))), y.shape) if need[1] else None
    return gx, gy


def _int_may_raise(avals, params):
    return all(getattr(a, "dtype", np.dtype(np.float64)).kind in "iub" for a in avals)


fmod_p = _elementwise("fmod", _torch_promote(_int_div_check("fmod", np.fmod)), _fmod_vjp, 2, dtype_rule=_intdiv_dtype, methods=("fmod",),
                      may_raise=_int_may_raise, lowering=Elementwise(_fmod_lowering))
remainder_p = _elementwise("remainder", _torch_promote(_int_div_check("remainder", np.remainder)), _remainder_vjp, 2,
                           dtype_rule=_intdiv_dtype, methods=("remainder", "__mod__"), may_raise=_int_may_raise,
                           lowering=Elementwise(_int_div_lowering("remainder")))
floor_divide_p = _elementwise("floor_divide", _torch_promote(_int_div_check("floor_divide", np.floor_divide)),
                              _zero_vjp, 2, grad_name="FloorDivide", dtype_rule=_intdiv_dtype, methods=("floor_divide", "__floordiv__"),
                              may_raise=_int_may_raise, lowering=Elementwise(_int_div_lowering("floor_divide")))

# ---- scans ------------------------------------------------------------------------------


def _cumsum_impl(x, axis, reverse=False):
    if x.dtype.kind in "b":
        x = x.astype(np.int64)  # torch: cumsum of bool/int is int64
    elif x.dtype.kind in "iu":
        x = x.astype(np.int64)
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)
    return np.cumsum(x, axis=axis)


def _cumsum_rule(x, axis, reverse=False):
    if not 0 <= axis < max(x.ndim, 1):
        raise ValueError(f"cumsum: axis {axis} out of range for shape {x.shape}")
    dt = np.dtype(np.int64) if x.dtype.kind in "iub" else x.dtype
    return ShapedArray(x.shape, dt)


def _cumsum_vjp(g, out, ins, need, axis, reverse=False):
    return (cumsum(g, axis=axis, reverse=not reverse),)


cumsum_p = register(
    Primitive("cumsum", _cumsum_impl, _cumsum_rule, _cumsum_vjp, kind="reduction", arity=1,
              dtype_rule=lambda x, axis, reverse=False: _cumsum_rule(ShapedArray((1,), _dtype_of(x)), 0).dtype,
              fn_name="cumsum", grad_name="Cumsum",
                              lowering=Emitter(L._objmode_emit))  # the eager impl, called back from the kernel
)
PRIMITIVES.append(cumsum_p)

def _dtype_of(a):
    """The dtype of an operand type: an aval, a dtype or a Python scalar (type)."""
    if isinstance(a, (ShapedArray, np.ndarray)):
        return a.dtype
    if isinstance(a, type):
        return np.dtype(a)
    return np.asarray(a).dtype if not isinstance(a, np.dtype) else a


# ----------------------------------------------------------------------------------------
# bind functions (the VJPs above call these)
# ----------------------------------------------------------------------------------------

sin = _call(sin_p)
cos = _call(cos_p)
tan = _call(tan_p)
asin = _call(asin_p)
acos = _call(acos_p)
atan = _call(atan_p)
sinh = _call(sinh_p)
cosh = _call(cosh_p)
log2 = _call(log2_p)
log10 = _call(log10_p)
log1p = _call(log1p_p)
exp2 = _call(exp2_p)
expm1 = _call(expm1_p)
floor = _call(floor_p)
ceil = _call(ceil_p)
trunc = _call(trunc_p)
round = _call(round_p)  # noqa: A001
atan2 = _call(atan2_p)
fmod = _call(fmod_p)
remainder = _call(remainder_p)
floor_divide = _call(floor_divide_p)
cumsum = _call(cumsum_p)

FUNCTIONS = {p.fn_name: globals()[p.fn_name] for p in PRIMITIVES}
