"""Indexing, sorting and product primitives of issue 10 (op breadth).

  gather(x, idx; axis)            out[..i..] = x[..idx[..i..]..] along ``axis`` (take_along_axis)
  scatter_add(base, idx, src; axis)   base with src added at idx along axis (duplicates add)
  scatter(base, idx, src; axis)   base with src written at idx along axis
  argsort(x; axis, descending)    int64, stable (ties keep their order, NaN sorts largest)
  reduce_prod(x; axes, keepdims)  product; its VJP (the product of the *other* elements,
                                  exact with zeros) is built from exclusive scans

``idx`` has the rank of ``x`` and, outside ``axis``, the same sizes (the composites
narrow ``x``/``src`` first, as torch allows smaller indices).
"""
from __future__ import annotations

import numpy as np

from . import lowering as L
from . import primitives as P
from .lowering import Emitter
from .math_ops import _dtype_of
from .primitives import _call, _check_axes, _reduced_shape
from .registry import Primitive, ShapedArray, aval_of, register

PRIMITIVES = []


# gather, scatter_add, scatter and argsort lower to their eager implementation called back
# from the kernel (ops/lowering.py, _objmode_emit): correct, not fast


def _reg(prim):
    register(prim)
    PRIMITIVES.append(prim)
    return prim


def _check_index(name, x, idx, axis, src=None):
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name}(): Expected dtype int64 for index, got {idx.dtype.name}")
    if idx.ndim != x.ndim:
        raise ValueError(f"{name}: index {idx.shape} and input {x.shape} must have the same number of dimensions")
    if not 0 <= axis < max(x.ndim, 1):
        raise ValueError(f"{name}: axis {axis} out of range for shape {x.shape}")
    for d in range(x.ndim):
        if d != axis and idx.shape[d] != x.shape[d]:
            raise ValueError(f"{name}: index shape {idx.shape} does not match input shape {x.shape} outside axis {axis}")
    if src is not None and tuple(src.shape) != tuple(idx.shape):
        raise ValueError(f"{name}: src shape {src.shape} must equal index shape {idx.shape}")


def _bounds(name, idx, n):
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].flat[0]
        raise IndexError(f"{name}: index {bad} is out of bounds for dimension with size {n}")


def _full_index(idx, axis):
    """The advanced-index tuple that addresses ``idx`` along ``axis`` and every position
    elsewhere."""
    out = []
    for d in range(idx.ndim):
        if d == axis:
            out.append(idx)
        else:
            shape = [1] * idx.ndim
            shape[d] = idx.shape[d]
            out.append(np.arange(idx.shape[d]).reshape(shape))
    return tuple(out)


# ---- gather -----------------------------------------------------------------------------


def _gather_impl(x, idx, axis):
    _check_index("gather", aval_of(x), aval_of(idx), axis)
    if x.ndim == 0:
        _bounds("gather", idx, 1)
        return np.array(x, copy=True)
    _bounds("gather", idx, x.shape[axis])
    return np.take_along_axis(x, idx.astype(np.int64, copy=False), axis=axis)


def _gather_rule(x, idx, axis):
    _check_index("gather", x, idx, axis)
    return ShapedArray(idx.shape, x.dtype)


def _gather_vjp(g, out, ins, need, axis):
    x, idx = ins
    return (scatter_add(P.zeros(x.shape, g.dtype), idx, g, axis=axis), None)


gather_p = _reg(Primitive("gather", _gather_impl, _gather_rule, _gather_vjp, kind="indexing", arity=2,
                          fn_name="gather", grad_name="Gather", may_raise=True,
                          dtype_rule=lambda x, idx, axis: _dtype_of(x), lowering=Emitter(L._objmode_emit)))

# ---- scatter_add / scatter --------------------------------------------------------------


def _scatter_add_impl(base, idx, src, axis):
    _check_index("scatter_add", aval_of(base), aval_of(idx), axis, aval_of(src))
    out = np.array(base, copy=True)
    if base.ndim == 0:
        _bounds("scatter_add", idx, 1)
        return out + src
    _bounds("scatter_add", idx, base.shape[axis])
    np.add.at(out, _full_index(idx, axis), src)
    return out


def _scatter_rule(name):
    def rule(base, idx, src, axis):
        _check_index(name, base, idx, axis, src)
        return ShapedArray(base.shape, base.dtype)

    return rule


def _scatter_add_vjp(g, out, ins, need, axis):
    base, idx, src = ins
    return (g if need[0] else None, None, gather(g, idx, axis=axis) if need[2] else None)


scatter_add_p = _reg(Primitive("scatter_add", _scatter_add_impl, _scatter_rule("scatter_add"), _scatter_add_vjp,
                               kind="indexing", arity=3, fn_name="scatter_add", grad_name="ScatterAdd",
                               may_raise=True, dtype_rule=lambda b, i, s, axis: _dtype_of(b),
                               lowering=Emitter(L._objmode_emit)))


def _scatter_impl(base, idx, src, axis):
    _check_index("scatter", aval_of(base), aval_of(idx), axis, aval_of(src))
    out = np.array(base, copy=True)
    if base.ndim == 0:
        _bounds("scatter", idx, 1)
        return np.array(src, dtype=base.dtype) if idx.size else out
    _bounds("scatter", idx, base.shape[axis])
    out[_full_index(idx, axis)] = src
    return out


def _scatter_vjp(g, out, ins, need, axis):
    base, idx, src = ins
    gb = scatter(g, idx, P.zeros(src.shape, g.dtype), axis=axis) if need[0] else None
    return (gb, None, gather(g, idx, axis=axis) if need[2] else None)


scatter_p = _reg(Primitive("scatter", _scatter_impl, _scatter_rule("scatter"), _scatter_vjp, kind="indexing",
                           arity=3, fn_name="scatter", grad_name="Scatter", may_raise=True,
                           dtype_rule=lambda b, i, s, axis: _dtype_of(b), lowering=Emitter(L._objmode_emit)))

# ---- argsort ----------------------------------------------------------------------------


def _argsort_impl(x, axis, descending=False):
    if x.ndim == 0:
        return np.zeros((), np.int64)
    if x.dtype == np.bool_:
        x = x.astype(np.int8)
    if not descending:
        return np.argsort(x, axis=axis, kind="stable").astype(np.int64)
    # stable descending: sort the reversed array ascending, reverse back (ties keep their
    # order, NaN comes first as in torch)
    n = x.shape[axis]
    r = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return (n - 1 - np.flip(r, axis)).astype(np.int64)


def _argsort_rule(x, axis, descending=False):
    if x.ndim and not 0 <= axis < x.ndim:
        raise ValueError(f"argsort: axis {axis} out of range for shape {x.shape}")
    return ShapedArray(x.shape, np.int64)


argsort_p = _reg(Primitive("argsort", _argsort_impl, _argsort_rule, None, kind="indexing", arity=1,
                           fn_name="argsort", grad_name="Argsort",
                           dtype_rule=lambda x, axis, descending=False: np.dtype(np.int64),
                           lowering=Emitter(L._objmode_emit)))

# ---- reduce_prod ------------------------------------------------------------------------


def _prod_dtype(dt):
    dt = np.dtype(dt)
    return np.dtype(np.int64) if dt.kind in "iub" else dt


def _reduce_prod_impl(x, axes, keepdims):
    return np.prod(x, axis=axes, keepdims=keepdims, dtype=_prod_dtype(x.dtype))


def _reduce_prod_rule(x, axes, keepdims):
    _check_axes("reduce_prod", x, axes)
    return ShapedArray(_reduced_shape(x.shape, axes, keepdims), _prod_dtype(x.dtype))


def _reduce_prod_vjp(g, out, ins, need, axes, keepdims):
    from . import more_composites as MC  # the exclusive scans are composites

    x = ins[0]
    if not axes:
        return (g,)
    nd = x.ndim
    rest = tuple(a for a in range(nd) if a not in axes)
    perm = rest + tuple(axes)
    xt = P.transpose(x, perm=perm) if perm != tuple(range(nd)) else x
    lead = tuple(x.shape[a] for a in rest)
    n = 1
    for a in axes:
        n *= x.shape[a]
    x2 = P.reshape(xt, shape=lead + (n,))
    others = MC._prod_of_others(x2)  # (..., n): the product of every other element, exact with zeros
    others = P.reshape(others, shape=tuple(xt.shape))
    inv = [0] * nd
    for i, p in enumerate(perm):
        inv[p] = i
    if perm != tuple(range(nd)):
        others = P.transpose(others, perm=tuple(inv))
    kshape = _reduced_shape(x.shape, axes, True)
    if not keepdims:
        g = P.reshape(g, shape=kshape)
    return (P.mul(g, others),)


reduce_prod_p = _reg(Primitive("reduce_prod", _reduce_prod_impl, _reduce_prod_rule, _reduce_prod_vjp,
                               kind="reduction", arity=1, fn_name="reduce_prod", grad_name="Prod",
                               dtype_rule=lambda x, axes, keepdims: _prod_dtype(_dtype_of(x)),
                               lowering=L._reduce_emitter("prod")))

gather = _call(gather_p)
scatter_add = _call(scatter_add_p)
scatter = _call(scatter_p)
argsort = _call(argsort_p)
reduce_prod = _call(reduce_prod_p)

FUNCTIONS = {p.fn_name: globals()[p.fn_name] for p in PRIMITIVES}
