"""Matrix products for generated kernels, compiled once per installation instead of once per
kernel.

numba types and lowers its ``np.dot`` implementation (BLAS call, layout and contiguity
checks) again in every kernel that uses it: measured here, five ``np.dot(a, b, out)`` sites
added ~0.75 s to a kernel's compilation (benchmarks/first_call_results.md).  A generated
kernel calls ``dot_into``/``dot_vec`` below instead: ``cache=True`` functions of this fixed file,
so numba compiles each argument signature (dtype, ndim and layout of the operands: a handful
in practice) once and later kernels -- in this process or any other -- load it from numba's
cache (beside this file in ``__pycache__``, or numba's user-wide cache directory when the
package is read-only) and only link it.  Kernels that call them sit in the content-addressed
kernel cache, whose key covers this file's source (cache.environment_key).

Both are plain ``np.dot``: the same BLAS routine, the same result, bit for bit.  Under
``NUMBA_DISABLE_JIT`` (and ``Kernel.run_python``) they run as the Python functions below.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def dot_into(a, b, out):
    """``np.dot(a, b, out)``: a (batch slice of a) matmul into a preallocated C array."""
    np.dot(a, b, out)


@njit(cache=True, nogil=True, error_model="numpy")
def dot_vec(a, b):
    """``np.dot(a, b)`` of two vectors: a scalar."""
    return np.dot(a, b)
