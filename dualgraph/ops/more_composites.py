"""Composites of issue 10 (op breadth), written only in primitives so every layer (eager,
tracer, interpreter, IR autodiff) gets them, with gradients of every order, for free.

Sections: elementwise math and activations; reductions and scans; shape and indexing;
linear algebra helpers.  Argument normalisation happens here so traced equations carry
canonical params.  Names and behaviour follow torch.
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from . import composites as C
from . import math_ops as M
from . import primitives as P
from . import shape_ops as S
from .composites import _axes, _dim, _float_only, _stop, is_float
from .registry import user_source

_bmax = builtins.max
_bmin = builtins.min
_bsum = builtins.sum


def _is_tensor(x):
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, np.ndarray)


# ========================================================================================
# 1. elementwise and math
# ========================================================================================


def square(x):
    return P.mul(x, x)


def reciprocal(x):
    return P.div(1, x)


def rsqrt(x):
    return P.div(1, P.sqrt(x))


def frac(x):
    return P.sub(x, M.trunc(x))


def isnan(x):
    return P.ne(x, x)


def isinf(x):
    if not is_float(x):
        return P.ne(x, x)  # all False, as a bool tensor
    return P.eq(P.abs(x), math.inf)


def isfinite(x):
    if not is_float(x):
        return P.eq(x, x)
    return P.logical_not(P.logical_or(isnan(x), isinf(x)))


def isposinf(x):
    return P.eq(x, math.inf) if is_float(x) else P.ne(x, x)


def isneginf(x):
    return P.eq(x, -math.inf) if is_float(x) else P.ne(x, x)


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    if not is_float(x):
        return P.convert(x, dtype=x.dtype)
    fi = np.finfo(x.dtype)
    posinf = float(fi.max) if posinf is None else posinf
    neginf = float(fi.min) if neginf is None else neginf
    y = P.where(isnan(x), nan, x)
    y = P.where(P.eq(x, math.inf), posinf, y)
    return P.where(P.eq(x, -math.inf), neginf, y)


def clamp(x, min=None, max=None):  # noqa: A002
    """``torch.clamp`` with number or tensor bounds (tensor bounds broadcast and receive
    gradients where they are the result)."""
    return C.clamp(x, min, max)


clip = clamp


def lerp(start, end, weight):
    """``start + weight * (end - start)``."""
    return P.add(start, P.mul(weight, P.sub(end, start)))


def _softplus1(z):
    # log(1 + exp(z)) without overflow: max(z, 0) + log1p(exp(-|z|)); gradient 0.5 + 0 at 0
    return P.add(P.maximum(z, 0), M.log1p(P.exp(P.neg(P.abs(z)))))


def softplus(x, beta=1.0, threshold=20.0):
    _float_only("softplus", x)
    if beta == 1:
        sp = _softplus1(x)
        bx = x
    else:
        bx = P.mul(x, beta)
        sp = P.div(_softplus1(bx), beta)
    return P.where(P.gt(bx, threshold), x, sp)


def softsign(x):
    return P.div(x, P.add(P.abs(x), 1))


def silu(x):
    _float_only("silu", x)
    return P.mul(x, P.sigmoid(x))


def mish(x):
    _float_only("mish", x)
    return P.mul(x, P.tanh(softplus(x)))


def elu(x, alpha=1.0):
    _float_only("elu", x)
    # expm1 of x where x <= 0 (0 elsewhere): the unused branch never overflows (no 0 * inf in
    # the gradient) and at 0 the gradient is alpha, as torch
    pos = P.gt(x, 0)
    return P.where(pos, x, P.mul(M.expm1(P.where(pos, 0, x)), alpha))


def celu(x, alpha=1.0):
    _float_only("celu", x)
    pos = P.gt(x, 0)
    return P.where(pos, x, P.mul(M.expm1(P.div(P.where(pos, 0, x), alpha)), alpha))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    _float_only("selu", x)
    return P.mul(elu(x, _SELU_ALPHA), _SELU_SCALE)


def leaky_relu(x, negative_slope=0.01):
    return P.where(P.gt(x, 0), x, P.mul(x, negative_slope))


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """As torch: the gradient passes strictly inside (min_val, max_val)."""
    if min_val > max_val:
        raise RuntimeError(f"hardtanh: min_val {min_val} cannot be greater than max_val {max_val}")
    inside = P.logical_and(P.gt(x, min_val), P.lt(x, max_val))
    y = _stop(x)
    y = P.where(P.lt(y, min_val), min_val, y)
    y = P.where(P.gt(y, max_val), max_val, y)
    return P.where(inside, x, y)


def relu6(x):
    return hardtanh(x, 0.0, 6.0)


def hardsigmoid(x):
    _float_only("hardsigmoid", x)
    return P.div(hardtanh(P.add(x, 3), 0.0, 6.0), 6)


def hardswish(x):
    _float_only("hardswish", x)
    # torch's gradient: 0 below -3, x/3 + 0.5 on [-3, 3], 1 above
    mid = P.div(P.mul(x, P.add(x, 3)), 6)
    return P.where(P.lt(x, -3), P.mul(x, 0), P.where(P.le(x, 3), mid, x))


def logsigmoid(x):
    _float_only("logsigmoid", x)
    # min(x, 0) - log1p(exp(-|x|))
    return P.sub(P.minimum(x, 0), M.log1p(P.exp(P.neg(P.abs(x)))))


def true_divide(x, y):
    return P.div(x, y)


def _rounding_div(x, y, rounding_mode=None):
    if rounding_mode is None:
        return P.div(x, y)
    if rounding_mode == "floor":
        return M.floor_divide(x, y)
    if rounding_mode == "trunc":
        q = P.div(x, y)
        if _is_tensor(x) and not is_float(x) and not (_is_tensor(y) and is_float(y)) and not isinstance(y, float):
            return P.convert(M.trunc(q), dtype=x.dtype)
        return M.trunc(q)
    raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found {rounding_mode!r}")


def div(x, y, rounding_mode=None):
    return _rounding_div(x, y, rounding_mode)


# ========================================================================================
# 2. reductions and scans
# ========================================================================================


def _dim_args(name, dim, axis, keepdim, keepdims):
    """torch accepts numpy's spellings ``axis=`` and ``keepdims=`` too."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{name}: got both dim and axis")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return dim, bool(keepdim)


def _to_dtype(x, dtype):
    if dtype is None:
        return x
    dtype = np.dtype(dtype)
    return x if x.dtype == dtype else P.convert(x, dtype=dtype)


def sum(x, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):  # noqa: A001
    """``torch.sum`` with ``dtype=`` and the ``axis=``/``keepdims=`` aliases."""
    dim, keepdim = _dim_args("sum", dim, axis, keepdim, keepdims)
    x = _to_dtype(x, dtype)
    r = C.sum(x, dim, keepdim)
    if dtype is None and x.dtype.kind in "iub" and r.dtype != np.int64:
        r = P.convert(r, dtype=np.dtype(np.int64))  # torch: integer sums are int64
    return r


def mean(x, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    dim, keepdim = _dim_args("mean", dim, axis, keepdim, keepdims)
    return C.mean(_to_dtype(x, dtype), dim, keepdim)


def prod(x, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    dim, keepdim = _dim_args("prod", dim, axis, keepdim, keepdims)
    x = _to_dtype(x, dtype)
    return S.reduce_prod(x, axes=_axes(x, dim), keepdims=keepdim)


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    """``torch.var``: ``correction`` (default 1; ``unbiased=False`` is correction 0)."""
    dim, keepdim = _dim_args("var", dim, axis, keepdim, keepdims)
    _float_only("var", x)
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    axes = _axes(x, dim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    mu = P.div(P.reduce_sum(x, axes=axes, keepdims=True), n)
    d = P.sub(x, mu)
    return P.div(P.reduce_sum(P.mul(d, d), axes=axes, keepdims=keepdim), _bmax(n - correction, 0))


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    return P.sqrt(var(x, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims))


def amax(x, dim=(), keepdim=False, *, axis=None, keepdims=None):
    """Gradient split evenly between ties, as torch's amax."""
    dim, keepdim = _dim_args("amax", None if dim == () else dim, axis, keepdim, keepdims)
    axes = _axes(x, dim)
    return P.reduce_max(x, axes=axes, keepdims=bool(keepdim))


def amin(x, dim=(), keepdim=False, *, axis=None, keepdims=None):
    dim, keepdim = _dim_args("amin", None if dim == () else dim, axis, keepdim, keepdims)
    axes = _axes(x, dim)
    return P.reduce_min(x, axes=axes, keepdims=bool(keepdim))


def logsumexp(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    dim, keepdim = _dim_args("logsumexp", dim, axis, keepdim, keepdims)
    if dim is None:
        raise TypeError("logsumexp() missing required argument 'dim'")
    axes = _axes(x, dim)
    if not is_float(x):
        x = P.convert(x, dtype=np.dtype(np.float32))
    m = _stop(P.reduce_max(x, axes=axes, keepdims=True))
    m = P.where(isinf(m), 0, m)  # all -inf (or an inf): no inf - inf
    s = P.log(P.reduce_sum(P.exp(P.sub(x, m)), axes=axes, keepdims=True))
    out = P.add(s, m)
    return out if keepdim else C.squeeze(out, axes) if axes else out


def _safe_sqrt(s):
    # sqrt with a zero (not inf * 0 = nan) gradient at 0, as torch's norm
    z = P.eq(s, 0)
    return P.where(z, 0, P.sqrt(P.where(z, 1, s)))


def norm(x, p="fro", dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
    """``torch.norm``: p = 'fro', 2, 1, inf, -inf, 0 or any number; over ``dim`` (all
    elements by default).  The 2-norm has a zero gradient at 0, as torch."""
    _float_only("norm", x)
    dim, keepdim = _dim_args("norm", dim, axis, keepdim, keepdims)
    x = _to_dtype(x, dtype)
    axes = _axes(x, dim)
    kd = bool(keepdim)
    if p == "fro" or p == 2 or p is None:
        return _safe_sqrt(P.reduce_sum(P.mul(x, x), axes=axes, keepdims=kd))
    if p == "nuc":
        raise NotImplementedError("norm: the nuclear norm is not supported")
    if p == 1:
        return P.reduce_sum(P.abs(x), axes=axes, keepdims=kd)
    if p == math.inf:
        return P.reduce_max(P.abs(x), axes=axes, keepdims=kd)
    if p == -math.inf:
        return P.reduce_min(P.abs(x), axes=axes, keepdims=kd)
    if p == 0:
        return P.reduce_sum(P.convert(P.ne(x, 0), dtype=x.dtype), axes=axes, keepdims=kd)
    p = float(p)
    s = P.reduce_sum(P.pow(P.abs(x), p), axes=axes, keepdims=kd)
    return P.pow(s, 1.0 / p)


def cumsum(x, dim=None, *, dtype=None, axis=None):
    dim, _ = _dim_args("cumsum", dim, axis, False, None)
    if dim is None:
        raise TypeError("cumsum() missing required argument 'dim'")
    x = _to_dtype(x, dtype)
    if x.ndim == 0:
        _dim(x, dim)
        return C.reshape(M.cumsum(C.reshape(x, (1,)), axis=0), ())
    return M.cumsum(x, axis=_dim(x, dim))


def _shift(x, axis, s, fill):
    """``x`` shifted by ``s`` along ``axis`` (towards higher indices), ``fill`` coming in."""
    n = x.shape[axis]
    shape = list(x.shape)
    shape[axis] = _bmin(s, n)
    if s >= n:
        return P.full(shape=tuple(x.shape), value=fill, dtype=x.dtype)
    head = np.full(shape, fill, x.dtype)
    spec = (("s", None, None, None),) * axis + (("s", 0, n - s, None),)
    return P.concatenate(head, P.getitem(x, spec=spec), axis=axis)


def _scan_mul(x, axis):
    """Inclusive product scan in log2(n) elementwise steps (Hillis-Steele): only mul,
    getitem and concatenate, so every order of gradient exists and zeros are exact."""
    n = x.shape[axis]
    s = 1
    while s < n:
        x = P.mul(x, _shift(x, axis, s, 1))
        s *= 2
    return x


def cumprod(x, dim=None, *, dtype=None, axis=None):
    dim, _ = _dim_args("cumprod", dim, axis, False, None)
    if dim is None:
        raise TypeError("cumprod() missing required argument 'dim'")
    x = _to_dtype(x, dtype)
    if x.dtype.kind in "b" or (x.dtype.kind in "iu" and x.dtype != np.int64):
        x = P.convert(x, dtype=np.dtype(np.int64))  # torch: cumprod of ints is int64
    if x.ndim == 0:
        _dim(x, dim)
        return P.convert(x, dtype=x.dtype)
    return _scan_mul(x, _dim(x, dim))


def _prod_of_others(x2):
    """For ``x2`` (..., n): the product of all elements but the i-th, at i (exact with
    zeros: exclusive scans from both ends)."""
    axis = x2.ndim - 1
    left = _shift(_scan_mul(x2, axis), axis, 1, 1)
    flip = (("s", None, None, None),) * axis + (("s", None, None, -1),)
    right = P.getitem(_shift(_scan_mul(P.getitem(x2, spec=flip), axis), axis, 1, 1), spec=flip)
    return P.mul(left, right)


def any(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    dim, keepdim = _dim_args("any", dim, axis, keepdim, keepdims)
    b = x if x.dtype == np.bool_ else P.ne(x, 0)
    if b.ndim and 0 in b.shape:
        return P.full(shape=_reduced(b, dim, keepdim), value=False, dtype=np.dtype(np.bool_))
    return P.reduce_max(b, axes=_axes(b, dim), keepdims=bool(keepdim))


def all(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    dim, keepdim = _dim_args("all", dim, axis, keepdim, keepdims)
    b = x if x.dtype == np.bool_ else P.ne(x, 0)
    if b.ndim and 0 in b.shape:
        return P.full(shape=_reduced(b, dim, keepdim), value=True, dtype=np.dtype(np.bool_))
    return P.reduce_min(b, axes=_axes(b, dim), keepdims=bool(keepdim))


def _reduced(x, dim, keepdim):
    axes = _axes(x, dim)
    return tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keepdim or i not in axes)


SortResult = namedtuple("sort", ["values", "indices"])
TopKResult = namedtuple("topk", ["values", "indices"])


def argsort(x, dim=-1, descending=False, stable=False):
    if x.ndim == 0:
        _dim(x, dim)
        return S.argsort(x, axis=0, descending=bool(descending))
    return S.argsort(x, axis=_dim(x, dim), descending=bool(descending))


def sort(x, dim=-1, descending=False, stable=False):
    """``(values, indices)``; stable (ties keep their order); NaN sorts as the largest."""
    if x.ndim == 0:
        _dim(x, dim)
        return SortResult(P.convert(x, dtype=x.dtype), S.argsort(x, axis=0))
    d = _dim(x, dim)
    idx = S.argsort(x, axis=d, descending=bool(descending))
    return SortResult(S.gather(x, idx, axis=d), idx)


def topk(x, k, dim=-1, largest=True, sorted=True):  # noqa: A002
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest), sorted."""
    k = int(k)
    if x.ndim == 0:
        _dim(x, dim)
        if k > 1:
            raise RuntimeError("topk: k out of range for a 0-d tensor")
        return TopKResult(P.convert(x, dtype=x.dtype), S.argsort(x, axis=0))
    d = _dim(x, dim)
    if not 0 <= k <= x.shape[d]:
        raise RuntimeError(f"topk: selected index k={k} out of range for dimension {d} of size {x.shape[d]}"
                           f"\n  at {user_source()}")
    idx = S.argsort(x, axis=d, descending=bool(largest))
    spec = (("s", None, None, None),) * d + (("s", 0, k, None),)
    idx = P.getitem(idx, spec=spec)
    return TopKResult(S.gather(x, idx, axis=d), idx)


# ========================================================================================
# 3. shape and indexing
# ========================================================================================

_ALL = ("s", None, None, None)


def _along(d, item):
    """A getitem spec applying ``item`` to dim ``d`` (every earlier dim taken whole)."""
    return (_ALL,) * d + (item,)


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return C.reshape(x, (1,))
    s, e = _dim(x, start_dim), _dim(x, end_dim)
    if s > e:
        raise RuntimeError(f"flatten() has invalid args: start_dim {start_dim} cannot come after end_dim {end_dim}")
    n = 1
    for d in x.shape[s:e + 1]:
        n *= d
    return C.reshape(x, tuple(x.shape[:s]) + (n,) + tuple(x.shape[e + 1:]))


def unflatten(x, dim, sizes):
    d = _dim(x, dim)
    sizes = tuple(int(v) for v in sizes)
    if sizes.count(-1) > 1:
        raise RuntimeError("unflatten: only one dimension can be inferred")
    known = math.prod(v for v in sizes if v != -1)
    if -1 in sizes:
        sizes = tuple(x.shape[d] // known if v == -1 else v for v in sizes)
    if math.prod(sizes) != x.shape[d]:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {dim} "
                           f"({x.shape[d]}) in the input tensor")
    return C.reshape(x, tuple(x.shape[:d]) + sizes + tuple(x.shape[d + 1:]))


def repeat(x, *sizes):
    sizes = C._shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    inter = []
    for s in shape:
        inter += [1, s]
    y = C.reshape(x, tuple(inter))
    target = []
    for r, s in zip(sizes, shape):
        target += [r, s]
    y = P.broadcast_to(y, shape=tuple(target))
    return C.reshape(y, tuple(r * s for r, s in zip(sizes, shape)))


def tile(x, dims):
    dims = tuple(int(d) for d in dims)
    if len(dims) < x.ndim:
        dims = (1,) * (x.ndim - len(dims)) + dims
    return repeat(x, dims)


def expand_as(x, other):
    return C.expand(x, tuple(other.shape))


def flip(x, dims):
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    axes = _axes(x, dims) if x.ndim else ()
    if not axes:
        return P.convert(x, dtype=x.dtype)
    spec = tuple(("s", None, None, -1) if d in axes else _ALL for d in range(_bmax(axes) + 1))
    return P.getitem(x, spec=spec)


def fliplr(x):
    return flip(x, (1,))


def flipud(x):
    return flip(x, (0,))


def roll(x, shifts, dims=None):
    if dims is None:
        if not isinstance(shifts, int):
            shifts = tuple(shifts)
            if len(shifts) != 1:
                raise RuntimeError("roll: shifts must be one int when dims is None")
            shifts = shifts[0]
        return C.reshape(roll(C.reshape(x, (-1,)), shifts, 0), tuple(x.shape))
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: {len(dims)}")
    for s, d in zip(shifts, dims):
        d = _dim(x, d)
        n = x.shape[d]
        s = int(s) % n if n else 0
        if s:
            x = P.concatenate(P.getitem(x, spec=_along(d, ("s", n - s, None, None))),
                              P.getitem(x, spec=_along(d, ("s", 0, n - s, None))), axis=d)
    return x


def _tri(x, diagonal, lower):
    if x.ndim < 2:
        raise RuntimeError(f"{'tril' if lower else 'triu'}: input tensor must have at least 2 dimensions")
    n, m = x.shape[-2:]
    mask = np.tri(n, m, int(diagonal), dtype=bool)
    if not lower:
        mask = ~np.tri(n, m, int(diagonal) - 1, dtype=bool)
    return P.where(mask, x, np.zeros((), x.dtype))


def tril(x, diagonal=0):
    return _tri(x, diagonal, True)


def triu(x, diagonal=0):
    return _tri(x, diagonal, False)


def narrow(x, dim, start, length):
    d = _dim(x, dim)
    n = x.shape[d]
    start = int(start)
    if start < 0:
        start += n
    if not (0 <= start <= n and 0 <= length and start + length <= n):
        raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dimension size ({n})")
    return P.getitem(x, spec=_along(d, ("s", start, start + int(length), None)))


def split(x, split_size_or_sections, dim=0):
    d = _dim(x, dim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0 and n:
            raise RuntimeError(f"split: split_size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if n else [0]
    else:
        sizes = [int(v) for v in split_size_or_sections]
        if _bsum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
                               f"dimension {d}), but got split_sizes={sizes}")
    out = []
    start = 0
    for s in sizes:
        out.append(P.getitem(x, spec=_along(d, ("s", start, start + s, None))))
        start += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    chunks = int(chunks)
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0")
    n = x.shape[_dim(x, dim)]
    return split(x, _bmax(1, -(-n // chunks)), dim)


def unbind(x, dim=0):
    d = _dim(x, dim)
    return tuple(P.getitem(x, spec=_along(d, i)) for i in range(x.shape[d]))


def index_select(x, dim, index):
    d = _dim(x, dim)
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if index.ndim == 0:
        index = C.reshape(index, (1,))
    if x.ndim == 0:
        return P.getitem(C.reshape(x, (1,)), index, spec=(("a", 0),))
    return P.getitem(x, index, spec=_along(d, ("a", 0)))


def masked_fill(x, mask, value):
    if getattr(mask, "dtype", None) != np.bool_:
        raise RuntimeError(f"masked_fill only supports boolean masks, but got mask with dtype {mask.dtype}")
    if _is_tensor(value) and value.ndim != 0:
        raise RuntimeError("masked_fill only supports a 0-dimensional value tensor")
    if not is_float(x):
        if _is_tensor(value):
            value = P.convert(value, dtype=x.dtype)
        else:
            value = np.asarray(value).astype(x.dtype)[()]
            value = value.item()
    elif _is_tensor(value) and value.dtype != x.dtype:
        value = P.convert(value, dtype=x.dtype)
    out = P.where(mask, value, x)
    if out.shape != x.shape:
        raise RuntimeError(f"masked_fill: mask of shape {tuple(mask.shape)} does not broadcast to {tuple(x.shape)}")
    return out


def _narrow_to(x, shape, skip):
    """``x`` sliced to ``shape`` on every dim but ``skip`` (torch lets an index be smaller)."""
    spec = []
    cut = False
    for d in range(x.ndim):
        if d != skip and shape[d] != x.shape[d]:
            if shape[d] > x.shape[d]:
                raise RuntimeError(f"Size does not match at dimension {d}: index {tuple(shape)} vs input "
                                   f"{tuple(x.shape)}\n  at {user_source()}")
            spec.append(("s", 0, shape[d], None))
            cut = True
        else:
            spec.append(_ALL)
    return P.getitem(x, spec=tuple(spec)) if cut else x


def _as_index(index):
    if isinstance(index, (list, tuple)):
        index = np.asarray(index, np.int64)
    return index


def gather(x, dim, index, *, sparse_grad=False):
    index = _as_index(index)
    d = _dim(x, dim)
    if index.ndim != x.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    return S.gather(_narrow_to(x, tuple(index.shape), d), index, axis=d)


def scatter(x, dim, index, src=None, value=None, *, reduce=None):
    index = _as_index(index)
    d = _dim(x, dim)
    if src is None:
        if value is None:
            raise TypeError("scatter: give src or value")
        src = value
    if not _is_tensor(src) and not isinstance(src, np.ndarray):
        src = np.full(tuple(index.shape), src, x.dtype)
    else:
        src = _narrow_to(src, tuple(index.shape), -1)
        if src.dtype != x.dtype:
            src = P.convert(src, dtype=x.dtype)
    if reduce is None:
        return S.scatter(x, index, src, axis=d)
    if reduce == "add":
        return S.scatter_add(x, index, src, axis=d)
    raise NotImplementedError(f"scatter: reduce={reduce!r} is not supported (only None and 'add')")


def scatter_add(x, dim, index, src):
    index = _as_index(index)
    d = _dim(x, dim)
    src = _narrow_to(src, tuple(index.shape), -1)
    if src.dtype != x.dtype:
        src = P.convert(src, dtype=x.dtype)
    return S.scatter_add(x, index, src, axis=d)


def take_along_dim(x, indices, dim=None):
    indices = _as_index(indices)
    if dim is None:
        return S.gather(C.reshape(x, (-1,)), C.reshape(indices, (-1,)), axis=0)
    d = _dim(x, dim)
    if indices.ndim != x.ndim:
        raise RuntimeError("take_along_dim: input and indices should have the same number of dimensions")
    xs = list(x.shape)
    ids = list(indices.shape)
    bx = tuple(np.broadcast_shapes(tuple(xs[:d] + xs[d + 1:]), tuple(ids[:d] + ids[d + 1:])))
    xshape = bx[:d] + (xs[d],) + bx[d:]
    ishape = bx[:d] + (ids[d],) + bx[d:]
    if tuple(x.shape) != xshape:
        x = P.broadcast_to(x, shape=xshape)
    if tuple(indices.shape) != ishape:
        indices = P.broadcast_to(indices, shape=ishape)
    return S.gather(x, indices, axis=d)


def pad(x, pad, mode="constant", value=None):  # noqa: A002
    """``torch.nn.functional.pad``: ``pad`` = (left, right) pairs from the last dim
    backwards; ``constant`` (negative pads crop), ``reflect``, ``replicate``, ``circular``."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise RuntimeError(f"pad: padding length {len(pad)} must be even and at most 2 * ndim ({x.ndim})")
    for k in range(len(pad) // 2):
        d = x.ndim - 1 - k
        lo, hi = pad[2 * k], pad[2 * k + 1]
        if lo == 0 and hi == 0:
            continue
        n = x.shape[d]
        if mode == "constant":
            v = 0 if value is None else value
            if lo < 0 or hi < 0:
                x = P.getitem(x, spec=_along(d, ("s", _bmax(-lo, 0), n - _bmax(-hi, 0), None)))
                lo, hi = _bmax(lo, 0), _bmax(hi, 0)
            blocks = []
            for size in (lo, hi):
                shape = list(x.shape)
                shape[d] = size
                blocks.append(np.full(shape, v, x.dtype) if size else None)
            blocks = [b for b in (blocks[0], x, blocks[1]) if b is not None]
            if len(blocks) > 1:
                x = P.concatenate(*blocks, axis=d)
            continue
        if _bmin(lo, hi) < 0:
            raise RuntimeError("pad: negative padding is only supported for mode='constant'")
        if mode == "reflect":
            if lo >= n or hi >= n:
                raise RuntimeError(f"pad: padding ({lo}, {hi}) should be smaller than the dimension size {n} "
                                 f"for reflect padding\n  at {user_source()}")
            i = np.abs(np.arange(-lo, n + hi))
            i = np.where(i > n - 1, 2 * (n - 1) - i, i)
        elif mode == "replicate":
            i = np.clip(np.arange(-lo, n + hi), 0, n - 1)
        elif mode == "circular":
            if lo > n or hi > n:
                raise RuntimeError("pad: padding value causes wrapping around more than once")
            i = np.arange(-lo, n + hi) % n
        else:
            raise NotImplementedError(f"pad: mode {mode!r} is not supported")
        x = P.getitem(x, i.astype(np.int64), spec=_along(d, ("a", 0)))
    return x


def one_hot(t, num_classes=-1):
    if t.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        v = getattr(t, "_value", None)
        if not isinstance(v, np.ndarray):
            raise RuntimeError("one_hot: num_classes=-1 needs the values of the tensor; give num_classes when tracing")
        num_classes = int(v.max()) + 1 if v.size else 0
    v = getattr(t, "_value", None)
    if isinstance(v, np.ndarray) and v.size and (v.min() < 0 or v.max() >= num_classes):
        raise RuntimeError(f"one_hot: Class values must be smaller than num_classes ({num_classes}) and non-negative")
    eq = P.eq(C.unsqueeze(t, -1), np.arange(num_classes, dtype=np.int64))
    return P.convert(eq, dtype=np.dtype(np.int64))


# ---- linear algebra ---------------------------------------------------------------------


def _need(name, x, nd):
    if x.ndim != nd:
        raise RuntimeError(f"{name}: expected a {nd}-D tensor, got shape {tuple(x.shape)}\n  at {user_source()}")


def mm(a, b):
    _need("mm", a, 2), _need("mm", b, 2)
    return P.matmul(a, b)


def bmm(a, b):
    _need("bmm", a, 3), _need("bmm", b, 3)
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"bmm: batch sizes {a.shape[0]} and {b.shape[0]} differ")
    return P.matmul(a, b)


def mv(a, v):
    _need("mv", a, 2), _need("mv", v, 1)
    return P.matmul(a, v)


def dot(a, b):
    _need("dot", a, 1), _need("dot", b, 1)
    if a.shape != b.shape:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src [{b.shape[0]}] to have "
                           "the same number of elements, but got different")
    return P.matmul(a, b)


def outer(a, b):
    _need("outer", a, 1), _need("outer", b, 1)
    return P.mul(C.unsqueeze(a, 1), C.unsqueeze(b, 0))


def diagonal(x, offset=0, dim1=0, dim2=1):
    d1, d2 = _dim(x, dim1), _dim(x, dim2)
    if d1 == d2:
        raise RuntimeError("diagonal dimensions cannot be identical")
    rest = [d for d in range(x.ndim) if d not in (d1, d2)]
    y = P.transpose(x, perm=tuple(rest) + (d1, d2)) if rest + [d1, d2] != list(range(x.ndim)) else x
    n, m = x.shape[d1], x.shape[d2]
    offset = int(offset)
    length = _bmax(0, _bmin(n - _bmax(-offset, 0), m - _bmax(offset, 0)))
    i = np.arange(length, dtype=np.int64) + _bmax(-offset, 0)
    j = np.arange(length, dtype=np.int64) + _bmax(offset, 0)
    return P.getitem(y, i, j, spec=(Ellipsis, ("a", 0), ("a", 1)))


def diag(x, diagonal_=0, *, diagonal=None):
    k = int(diagonal if diagonal is not None else diagonal_)
    if x.ndim == 2:
        return globals()["diagonal"](x, k)
    if x.ndim != 1:
        raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {x.ndim}D")
    n = x.shape[0] + abs(k)
    i = np.arange(x.shape[0], dtype=np.int64) + _bmax(-k, 0)
    j = np.arange(x.shape[0], dtype=np.int64) + _bmax(k, 0)
    return P.index_add(P.zeros((n, n), x.dtype), x, i, j, spec=(("a", 0), ("a", 1)))


def trace(x):
    """The matrix trace (``t.trace()``; ``dg.trace`` is the tracer)."""
    if x.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {x.ndim}")
    return C.sum(diagonal(x))


def einsum(equation, *operands):
    """``torch.einsum`` as transposes, reshapes, reductions and batched matmuls
    (operands contracted pairwise, left to right); ``...`` broadcasts."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError(f"einsum(): {len(terms)} operand specs but {len(operands)} operands")
    letters = set(c for c in lhs if c.isalpha())
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in letters]
    ell_n = 0
    for t, x in zip(terms, operands):
        if "..." in t:
            ell_n = _bmax(ell_n, x.ndim - (len(t) - 3))
    ell = "".join(free[:ell_n])
    specs = []
    ops = []
    for t, x in zip(terms, operands):
        if "..." in t:
            k = x.ndim - (len(t) - 3)
            t = t.replace("...", ell[ell_n - k:] if k else "")
        if len(t) != x.ndim or not t.isalpha() and t != "":
            raise RuntimeError(f"einsum(): the subscript {t!r} does not match an operand of shape {tuple(x.shape)}")
        specs.append(t)
        ops.append(x)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {}
        for t in specs:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c in counts if counts[c] == 1 and c not in ell))
    sizes = {}
    for t, x in zip(specs, ops):
        for c, s in zip(t, x.shape):
            if c in sizes and sizes[c] != s and s != 1 and sizes[c] != 1:
                raise RuntimeError(f"einsum(): operands do not broadcast: subscript {c!r} has sizes {sizes[c]} and {s}")
            sizes[c] = _bmax(sizes.get(c, 1), s)
    # repeated subscripts within an operand: take the diagonal
    for k in range(len(ops)):
        t, x = specs[k], ops[k]
        while len(set(t)) != len(t):
            c = next(c for c in t if t.count(c) > 1)
            i = t.index(c)
            j = t.index(c, i + 1)
            x = diagonal(x, 0, i, j)
            t = t[:i] + t[i + 1:j] + t[j + 1:] + c
        # size-1 broadcasting dims become full size
        full = tuple(sizes[c] for c in t)
        if tuple(x.shape) != full:
            x = P.broadcast_to(x, shape=full)
        specs[k], ops[k] = t, x

    def keep_after(k):
        s = set(out)
        for t in specs[k + 1:]:
            s |= set(t)
        return s

    def sum_unused(t, x, keep, other=""):
        drop = [i for i, c in enumerate(t) if c not in keep and c not in other]
        if drop:
            x = P.reduce_sum(x, axes=tuple(drop), keepdims=False)
            t = "".join(c for c in t if c not in keep and c in other or c in keep)
        return t, x

    t, x = specs[0], ops[0]
    for k in range(1, len(ops)):
        keep = keep_after(k)
        t2, x2 = specs[k], ops[k]
        t, x = sum_unused(t, x, keep, t2)
        t2, x2 = sum_unused(t2, x2, keep, t)
        batch = [c for c in t if c in t2 and c in keep]
        contract = [c for c in t if c in t2 and c not in keep]
        a_only = [c for c in t if c not in t2]
        b_only = [c for c in t2 if c not in t]
        xa = _permute_to(x, t, batch + a_only + contract)
        xb = _permute_to(x2, t2, batch + contract + b_only)
        nb = math.prod(sizes[c] for c in batch)
        m = math.prod(sizes[c] for c in a_only)
        kk = math.prod(sizes[c] for c in contract)
        nn = math.prod(sizes[c] for c in b_only)
        r = P.matmul(C.reshape(xa, (nb, m, kk)), C.reshape(xb, (nb, kk, nn)))
        t = "".join(batch + a_only + b_only)
        x = C.reshape(r, tuple(sizes[c] for c in t))
    t, x = sum_unused(t, x, set(out))
    if sorted(t) != sorted(out):
        raise RuntimeError(f"einsum(): output subscripts {out!r} are not all in the inputs")
    return _permute_to(x, t, list(out))


def _permute_to(x, have, want):
    perm = tuple(have.index(c) for c in want)
    if perm == tuple(range(len(perm))):
        return x
    return P.transpose(x, perm=perm)


# ========================================================================================
# 4. copies
# ========================================================================================


def clone(x):
    """A differentiable copy."""
    return P.convert(x, dtype=x.dtype)
