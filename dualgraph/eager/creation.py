"""Factories of issue 10: ``eye empty full_like rand_like randn_like randint randperm
logspace arange`` (float steps), the ``new_*`` methods and the in-place initialisers
``normal_ uniform_``.  Random draws use the generator ``dg.manual_seed`` seeds, so a
seeded program is reproducible."""
from __future__ import annotations

import math

import numpy as np

from . import factories as _F
from . import grad_mode
from .tensor import Tensor

_finish = _F._finish
_shape = _F._shape


def _rng(name):
    return _F._draw(name)  # refused under a trace (factories._draw)


def _dt(dtype, default=np.float32):
    return np.dtype(default if dtype is None else dtype)


def eye(n, m=None, *, dtype=None, requires_grad=False):
    return _finish(np.eye(int(n), None if m is None else int(m), dtype=_dt(dtype)), requires_grad)


def empty(*shape, dtype=None, requires_grad=False):
    """As torch.empty (the values are zeros here: never uninitialised memory)."""
    return _finish(np.zeros(_shape(shape), _dt(dtype)), requires_grad)


def full(size, fill_value, *, dtype=None, requires_grad=False):
    """``torch.full``: the dtype is inferred from ``fill_value`` (float32, int64, bool)."""
    size = (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    if dtype is None:
        dtype = (np.bool_ if isinstance(fill_value, (bool, np.bool_)) else
                 np.int64 if isinstance(fill_value, (int, np.integer)) else np.float32)
    return _finish(np.full(size, fill_value, np.dtype(dtype)), requires_grad)


def full_like(t, fill_value, *, dtype=None, requires_grad=False):
    return _finish(np.full(tuple(t.shape), fill_value, _dt(dtype, t.dtype)), requires_grad)


def zeros_like(t, *, dtype=None, requires_grad=False):
    return full_like(t, 0, dtype=dtype, requires_grad=requires_grad)


def ones_like(t, *, dtype=None, requires_grad=False):
    return full_like(t, 1, dtype=dtype, requires_grad=requires_grad)


def empty_like(t, *, dtype=None, requires_grad=False):
    return full_like(t, 0, dtype=dtype, requires_grad=requires_grad)


def _float_dtype(name, dtype):
    if dtype.kind != "f":
        raise RuntimeError(f"{name}: expected a floating point dtype, got {dtype.name}")
    return dtype


def rand_like(t, *, dtype=None, requires_grad=False):
    dt = _float_dtype("rand_like", _dt(dtype, t.dtype))
    return _finish(_rng("rand_like").random(tuple(t.shape)).astype(dt), requires_grad)


def randn_like(t, *, dtype=None, requires_grad=False):
    dt = _float_dtype("randn_like", _dt(dtype, t.dtype))
    return _finish(_rng("randn_like").standard_normal(tuple(t.shape)).astype(dt), requires_grad)


def randint(*args, size=None, dtype=None, requires_grad=False):
    """``randint(high, size)`` or ``randint(low, high, size)``: int64 in [low, high)."""
    if size is None:
        *bounds, size = args
    else:
        bounds = list(args)
    if len(bounds) == 1:
        low, high = 0, bounds[0]
    elif len(bounds) == 2:
        low, high = bounds
    else:
        raise TypeError("randint(low=0, high, size)")
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    size = (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    return _finish(_rng("randint").integers(int(low), int(high), size=size).astype(_dt(dtype, np.int64)), requires_grad)


def randint_like(t, low=0, high=None, *, dtype=None):
    if high is None:
        low, high = 0, low
    return randint(low, high, tuple(t.shape), dtype=_dt(dtype, t.dtype))


def randperm(n, *, dtype=None, requires_grad=False):
    return _finish(_rng("randperm").permutation(int(n)).astype(_dt(dtype, np.int64)), requires_grad)


def arange(start, end=None, step=1, *, dtype=None, requires_grad=False):
    """``torch.arange``: float steps allowed; ``ceil((end - start) / step)`` values; int64
    when every bound is an int, float32 otherwise."""
    if end is None:
        start, end = 0, start
    vals = (start, end, step)
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"arange: upper bound and larger bound inconsistent with step sign "
                           f"(start={start}, end={end}, step={step})")
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, (int, np.integer)) for v in vals) else np.float32
    n = max(0, math.ceil((end - start) / step))
    a = start + step * np.arange(n, dtype=np.float64 if np.dtype(dtype).kind == "f" or not all(
        isinstance(v, (int, np.integer)) for v in vals) else np.int64)
    return _finish(a.astype(dtype), requires_grad)


def linspace(start, end, steps, *, dtype=None, requires_grad=False):
    return _finish(np.linspace(float(start), float(end), int(steps)).astype(_dt(dtype)), requires_grad)


def logspace(start, end, steps, base=10.0, *, dtype=None, requires_grad=False):
    return _finish(np.logspace(float(start), float(end), int(steps), base=float(base)).astype(_dt(dtype)),
                   requires_grad)


# ---- Tensor methods -----------------------------------------------------------------------


def new_zeros(self, *size, dtype=None, requires_grad=False):
    return _finish(np.zeros(_shape(size), _dt(dtype, self.dtype)), requires_grad)


def new_ones(self, *size, dtype=None, requires_grad=False):
    return _finish(np.ones(_shape(size), _dt(dtype, self.dtype)), requires_grad)


def new_empty(self, *size, dtype=None, requires_grad=False):
    return new_zeros(self, *size, dtype=dtype, requires_grad=requires_grad)


def new_full(self, size, fill_value, *, dtype=None, requires_grad=False):
    size = (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    return _finish(np.full(size, fill_value, _dt(dtype, self.dtype)), requires_grad)


def new_tensor(self, data, *, dtype=None, requires_grad=False):
    return Tensor(data, dtype=_dt(dtype, self.dtype), requires_grad=requires_grad)


def _inplace_init(t, name, draw):
    """Fill ``t`` in place with ``draw(shape)`` (cast to its dtype): allowed on a leaf that
    requires grad only under ``no_grad``, as torch."""
    if grad_mode.is_grad_enabled() and t.requires_grad:
        raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place operation "
                           "(wrap the initialisation in `with dg.no_grad():`)")
    v = t._value
    if v.__class__ is not np.ndarray:
        raise RuntimeError(f"{name}: in-place random initialisation of a traced tensor is not supported")
    if v.dtype.kind != "f":
        raise RuntimeError(f"{name}: expected a floating point tensor, got {v.dtype.name}")
    vals = np.asarray(draw(v.shape)).astype(v.dtype)
    with grad_mode.no_grad():
        t.copy_(Tensor(vals))  # an in-place write: views see it, the version counter moves
    return t


def normal_(self, mean=0.0, std=1.0):
    return _inplace_init(self, "normal_", lambda s: _rng("normal_").normal(mean, std, size=s))


def uniform_(self, a=0.0, b=1.0):
    return _inplace_init(self, "uniform_", lambda s: _rng("uniform_").uniform(a, b, size=s))


def contiguous(self, memory_format=None):
    return self


def is_contiguous(self, memory_format=None):
    return True


__all__ = ["eye", "empty", "full", "full_like", "zeros_like", "ones_like", "empty_like", "rand_like", "randn_like",
           "randint", "randint_like", "randperm", "arange", "linspace", "logspace"]
