"""Composite functions, written only in primitives so every layer gets them for free.

These take Tensors (eager or traced) or Python scalars and return Tensors; argument
normalisation (``dim`` to an axes tuple, ``-1`` in shapes, ...) happens here, once, so the
equations the tracer records always carry canonical params.
"""
from __future__ import annotations

import math

import numpy as np

from . import primitives as P
from .registry import user_source


def _axes(x, dim):
    nd = x.ndim
    if dim is None:
        return tuple(range(nd))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    out = []
    span = nd if nd else 1  # a 0-d tensor accepts dim 0 and -1, as in torch
    for d in dims:
        d = int(d)
        if not -span <= d < span:
            raise IndexError(
                f"Dimension out of range (expected to be in range of [{-span}, {span - 1}], "
                f"but got {d}) for shape {tuple(x.shape)}\n  at {user_source()}"
            )
        out.append(d % nd if nd else 0)
    if len(set(out)) != len(out) and nd:
        raise RuntimeError(f"dim {out[0]} appears multiple times in the list of dims\n  at {user_source()}")
    return tuple(sorted(out)) if nd else ()


def _dim(x, dim):
    return _axes(x, dim)[0] if x.ndim else 0


def is_float(x):
    return np.issubdtype(x.dtype, np.floating)


# ---- reductions -------------------------------------------------------------------------


def sum(x, dim=None, keepdim=False):  # noqa: A001
    return P.reduce_sum(x, axes=_axes(x, dim), keepdims=bool(keepdim))


def mean(x, dim=None, keepdim=False):
    _float_only("mean", x)
    axes = _axes(x, dim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    return P.div(P.reduce_sum(x, axes=axes, keepdims=bool(keepdim)), n)


def var(x, dim=None, keepdim=False, unbiased=True):
    axes = _axes(x, dim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    mu = mean(x, axes, keepdim=True)
    d = P.sub(x, mu)
    return P.div(P.reduce_sum(P.mul(d, d), axes=axes, keepdims=bool(keepdim)), n - 1 if unbiased else n)


class MaxMin(tuple):
    """``(values, indices)``, as torch's ``torch.return_types.max``: a tuple with names."""

    __slots__ = ()

    def __new__(cls, values, indices):
        return tuple.__new__(cls, (values, indices))

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]

    def __repr__(self):
        return f"return_types(values={self[0]!r}, indices={self[1]!r})"


def max(x, dim=None, keepdim=False):  # noqa: A001
    """As torch: ``max()`` is the largest value (the gradient spread over ties);
    ``max(dim)`` is the named tuple ``(values, indices)`` (the gradient to the index)."""
    return _extremum(P.reduce_max, argmax, x, dim, keepdim)


def min(x, dim=None, keepdim=False):  # noqa: A001
    return _extremum(P.reduce_min, argmin, x, dim, keepdim)


def _extremum(reduce, arg, x, dim, keepdim):
    if isinstance(dim, (int, np.integer)):
        if x.ndim == 0:
            return MaxMin(reduce(x, axes=(), keepdims=False), P.zeros((), np.int64))
        values = reduce(x, axes=_axes(x, dim), keepdims=bool(keepdim), pick_first=True)
        return MaxMin(values, arg(x, dim, keepdim))
    return reduce(x, axes=_axes(x, dim), keepdims=bool(keepdim))


def argmax(x, dim=None, keepdim=False):
    if dim is None:
        return P.argmax(reshape(x, (-1,)), axis=0, keepdims=False) if not keepdim else P.argmax(
            x, axis=None, keepdims=True
        )
    return P.argmax(x, axis=_dim(x, dim), keepdims=bool(keepdim))


def argmin(x, dim=None, keepdim=False):
    if dim is None:
        return P.argmin(reshape(x, (-1,)), axis=0, keepdims=False) if not keepdim else P.argmin(
            x, axis=None, keepdims=True
        )
    return P.argmin(x, axis=_dim(x, dim), keepdims=bool(keepdim))


# ---- shapes -----------------------------------------------------------------------------


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def reshape(x, shape):
    shape = tuple(int(s) for s in shape)
    if -1 in shape:
        known = 1
        for s in shape:
            if s != -1:
                known *= s
        size = 1
        for s in x.shape:
            size *= s
        if shape.count(-1) > 1 or known == 0 or size % known:
            raise RuntimeError(f"reshape: cannot reshape shape {tuple(x.shape)} into shape {shape}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    return P.reshape(x, shape=shape)


def transpose(x, dim0, dim1):
    nd = x.ndim
    if nd == 0:
        _dim(x, dim0), _dim(x, dim1)  # range checks; a 0-d tensor transposes to itself
        return x
    d0, d1 = _dim(x, dim0), _dim(x, dim1)
    perm = list(range(nd))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return P.transpose(x, perm=tuple(perm))


def permute(x, dims):
    perm = tuple(_dim(x, d) for d in dims) if x.ndim else ()
    if len(dims) != x.ndim or len(set(perm)) != len(perm):
        raise RuntimeError(
            f"permute: dims {tuple(dims)} are not a permutation of the {x.ndim} dims of shape "
            f"{tuple(x.shape)}\n  at {user_source()}"
        )
    return P.transpose(x, perm=perm)


def squeeze(x, dim=None):
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        axes = _axes(x, dim)
        shape = tuple(s for i, s in enumerate(x.shape) if not (i in axes and s == 1))
    return P.reshape(x, shape=shape)


def unsqueeze(x, dim):
    nd = x.ndim + 1
    d = int(dim)
    if not -nd <= d < nd:
        raise IndexError(f"unsqueeze: dim {d} out of range for shape {tuple(x.shape)}")
    d %= nd
    shape = tuple(x.shape[:d]) + (1,) + tuple(x.shape[d:])
    return P.reshape(x, shape=shape)


def expand(x, sizes):
    sizes = list(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0 or any(s == -1 for s in sizes[:lead]):
        raise RuntimeError(
            f"expand: cannot expand shape {tuple(x.shape)} to {tuple(sizes)} "
            "(-1 is only allowed for existing dimensions)"
        )
    shape = tuple(
        (x.shape[i - lead] if s == -1 else int(s)) for i, s in enumerate(sizes)
    )
    return P.broadcast_to(x, shape=shape)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of Tensors")
    return P.concatenate(*tensors, axis=_dim(tensors[0], dim))


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of Tensors")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise RuntimeError(f"stack: expects each tensor to be equal size, got shapes {sorted(shapes)}")
    return P.concatenate(*[unsqueeze(t, dim) for t in tensors], axis=int(dim) % (tensors[0].ndim + 1))


# ---- elementwise composites -------------------------------------------------------------


def relu(x):
    # as torch: relu(nan) = nan with the gradient passed, relu(-inf) = 0 (not -inf * 0)
    return P.where(P.le(x, 0), 0, x)


def clamp(x, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
    # as torch: min(max(x, min), max) (so min > max gives max), NaN stays NaN, and the
    # gradient passes where min <= x <= max (so not at NaN)
    if not is_float(x) and any(isinstance(b, float) for b in (min, max)):
        x = P.convert(x, dtype=np.dtype(np.float32))  # int tensor, float bound: float32
    y = _stop(x)
    inside = None
    if min is not None:
        y = P.where(P.lt(y, min), min, y)
        inside = P.ge(x, min)
    if max is not None:
        y = P.where(P.gt(y, max), max, y)
        inside = P.le(x, max) if inside is None else P.logical_and(inside, P.le(x, max))
    return P.where(inside, x, y)


def _float_only(name, x):
    if not is_float(x):
        raise RuntimeError(
            f"{name}: expected a floating point tensor, got {np.dtype(x.dtype).name} "
            f"(use x.float())\n  at {user_source()}"
        )


def softmax(x, dim):
    _float_only("softmax", x)
    axes = _axes(x, dim)
    m = P.reduce_max(x, axes=axes, keepdims=True)
    e = P.exp(P.sub(x, _stop(m)))
    return P.div(e, P.reduce_sum(e, axes=axes, keepdims=True))


def log_softmax(x, dim):
    _float_only("log_softmax", x)
    axes = _axes(x, dim)
    m = _stop(P.reduce_max(x, axes=axes, keepdims=True))
    z = P.sub(x, m)
    return P.sub(z, P.log(P.reduce_sum(P.exp(z), axes=axes, keepdims=True)))


def _stop(x):
    """Stop the gradient (the max subtracted for stability cancels out of softmax)."""
    return x.detach() if hasattr(x, "detach") else x


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x, approximate="none"):
    _float_only("gelu", x)
    if approximate == "tanh":
        inner = P.mul(P.add(x, P.mul(P.mul(P.mul(x, x), x), 0.044715)), _SQRT_2_OVER_PI)
        return P.mul(P.mul(x, 0.5), P.add(P.tanh(inner), 1))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return P.mul(P.mul(x, 0.5), P.add(P.erf(P.mul(x, _SQRT_HALF)), 1))


def mse_loss(input, target, reduction="mean"):  # noqa: A002
    if tuple(input.shape) != tuple(target.shape):
        # torch broadcasts with a warning; we refuse, since it is nearly always a bug
        raise ValueError(
            f"mse_loss: input shape {tuple(input.shape)} and target shape {tuple(target.shape)} differ"
        )
    d = P.sub(input, target)
    sq = P.mul(d, d)
    return _reduce(sq, reduction, "mse_loss")


def _reduce(x, reduction, name):
    if reduction == "mean":
        return mean(x)
    if reduction == "sum":
        return sum(x)
    if reduction == "none":
        return x
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(logits, target, reduction="mean"):
    """Cross entropy of ``logits`` (N, C) against integer class ``target`` (N,)."""
    if logits.ndim != 2 or target.ndim != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"cross_entropy: expected logits (N, C) and target (N,), got {tuple(logits.shape)} "
            f"and {tuple(target.shape)}"
        )
    if np.issubdtype(target.dtype, np.floating):
        raise ValueError("cross_entropy: target must hold integer class indices")
    n = logits.shape[0]
    t = _concrete(target)
    if t is not None and t.size and (t.min() < 0 or t.max() >= logits.shape[1]):
        bad = t[(t < 0) | (t >= logits.shape[1])][0]
        raise IndexError(
            f"cross_entropy: Target {bad} is out of bounds (classes 0..{logits.shape[1] - 1}; "
            f"ignore_index is not supported)\n  at {user_source()}"
        )
    logp = log_softmax(logits, 1)
    idx = np.arange(n, dtype=np.int64)
    picked = P.getitem(logp, idx, target, spec=(("a", 0), ("a", 1)))
    return _reduce(P.neg(picked), reduction, "cross_entropy")


def _concrete(x):
    """The values of ``x`` where it has some (an eager tensor), None under a trace."""
    try:
        return np.asarray(x.detach() if hasattr(x, "detach") else x)
    except Exception:  # noqa: BLE001 - a traced value has no concrete value
        return None


def where(cond, x, y):
    return P.where(cond, x, y)
