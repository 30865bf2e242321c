"""Tensor factories: ``tensor``, ``zeros``, ``ones``, ``randn``, ... (float32 by default)."""
from __future__ import annotations

import numpy as np

from ..ops import context as _context
from .tensor import Tensor

_rng = [np.random.default_rng()]


def _draw(name):
    """The generator, for a random draw named ``name``.  Under a trace (``dg.trace``,
    ``dg.compile``) a draw would be run once and frozen into the graph as a constant (the
    same numbers at every call): refused, so that ``dg.compile`` runs the function eagerly
    (``fullgraph=True``: a CompileError) instead of repeating one draw."""
    if _context.get().trace is not None:
        from ..ops.registry import user_source
        from ..static.tracer import TracerError

        raise TracerError(
            f"{name}: random numbers cannot be traced yet (one draw would be frozen into the "
            f"graph and repeated at every call); draw them outside the traced function and pass "
            f"them in\n  at {user_source()}")
    return _rng[0]


def manual_seed(n: int):
    _rng[0] = np.random.default_rng(int(n))


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _finish(a, requires_grad):
    t = Tensor._make(a)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, requires_grad=False) -> Tensor:
    """``dg.tensor([1., 2.])``: Python floats become float32, ints int64; numpy keeps its dtype."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def from_numpy(a) -> Tensor:
    """A tensor sharing memory with the numpy array ``a``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray (got {type(a).__name__})")
    return Tensor._make(a)


def zeros(*shape, dtype=np.float32, requires_grad=False):
    return _finish(np.zeros(_shape(shape), dtype), requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False):
    return _finish(np.ones(_shape(shape), dtype), requires_grad)


def full(shape, fill_value, dtype=np.float32, requires_grad=False):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _finish(np.full(shape, fill_value, dtype), requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return _finish(np.zeros(t.shape, dtype or t.dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return _finish(np.ones(t.shape, dtype or t.dtype), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, (int, np.integer)) for v in (start, end, step)) else np.float32
    return _finish(np.arange(start, end, step).astype(dtype), requires_grad)


def linspace(start, end, steps, dtype=np.float32, requires_grad=False):
    return _finish(np.linspace(start, end, steps).astype(dtype), requires_grad)


def randn(*shape, dtype=np.float32, requires_grad=False):
    return _finish(_draw("randn").standard_normal(_shape(shape)).astype(dtype), requires_grad)


def rand(*shape, dtype=np.float32, requires_grad=False):
    return _finish(_draw("rand").random(_shape(shape)).astype(dtype), requires_grad)


def randint(low, high, size, dtype=np.int64):
    return _finish(_draw("randint").integers(low, high, size=tuple(size)).astype(dtype), False)
