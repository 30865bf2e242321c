"""Fallback scalar functions for generated kernels (used where the math library,
``dualgraph.compile.mathlib``, has no entry): numpy/libm calls, inlined.  They are
correct but make a loop scalar (no SVML); the math library's versions vectorize."""
import math

import numpy as np
from numba import njit

_inl = njit(inline="always", error_model="numpy")


@_inl
def exp_f32(x):
    return np.exp(x)


@_inl
def exp_f64(x):
    return np.exp(x)


@_inl
def log_f32(x):
    return np.log(x)


@_inl
def log_f64(x):
    return np.log(x)


@_inl
def tanh_f32(x):
    return np.tanh(x)


@_inl
def tanh_f64(x):
    return np.tanh(x)


@_inl
def sigmoid_f32(x):
    return np.float32(1) / (np.float32(1) + np.exp(-x))


@_inl
def sigmoid_f64(x):
    return 1.0 / (1.0 + np.exp(-x))


@_inl
def erf_f32(x):
    return np.float32(math.erf(np.float64(x)))


@_inl
def erf_f64(x):
    return math.erf(x)


# NaN-propagating max/min with numpy's reduction semantics (ties keep the new value)
@_inl
def fmax_f32(a, b):
    return a if (a > b or a != a) else b


@_inl
def fmax_f64(a, b):
    return a if (a > b or a != a) else b


@_inl
def fmin_f32(a, b):
    return a if (a < b or a != a) else b


@_inl
def fmin_f64(a, b):
    return a if (a < b or a != a) else b


def gemm_split(a, b, out):
    """What the Python run of a kernel calls for compile/blas.py's split matmul."""
    np.dot(a, b, out)
    return 0


def dot_add(a, b, out):
    """What the Python run of a kernel calls for compile/blas.py's ``dot_add``."""
    out += np.dot(a, b)
    return 0


def call_primitive(name, params, *args):
    """Run primitive ``name``'s numpy implementation (a kernel's call back into Python for
    a primitive lowered through object mode); arrays come back C-contiguous, 0-d results
    as scalars of their dtype."""
    from ..ops.registry import PRIMITIVES

    out = np.asarray(PRIMITIVES[name].impl(*args, **params))
    if out.ndim == 0:
        return out.dtype.type(out)
    return np.ascontiguousarray(out)
