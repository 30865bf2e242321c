"""Large matmuls of a kernel's ``prange`` variant, split over numba's threads.

OpenBLAS runs its own thread pool; numba's ``prange`` runs another (OpenMP).  When both
spin at once on a 2-core machine each waits for the other's threads (the 15x trap of
NUMBA-FACTS), and OpenBLAS's static split waits a whole scheduler slice for a worker that a
loaded machine does not run (measured: a 128x784 @ 784x512 product 7 ms on one BLAS thread,
48 ms on two, load average 4).  So a kernel's ``prange`` variant keeps BLAS at one thread
(``kernel.cap_blas_threads``) and splits each large product itself: ``out[lo:hi] =
a[lo:hi] @ b`` (or a block of columns) per numba thread, every block one single-threaded
gemm call straight into ``out`` (no copies: a transposed operand is passed to BLAS with its
transpose flag and leading dimension, so ``x.T @ dh`` splits too).  One thread pool in
the process, and the serial/prange timing of ``compile/kernel.py`` decides on each machine.

``gemm_split(a, b, out)`` (float32 or float64): ``a`` (m, k), ``b`` (k, n), ``out`` (m, n)
C-contiguous; ``a`` and ``b`` any 2-d layout with a unit stride on one axis (C arrays or
their ``.T``), else the block falls back to ``np.dot`` on copies.
"""
import numpy as np
from numba import config, njit, prange, types

# which products are split (SPLIT_MIN_MACS: 0.3-0.5 ms on one thread) is codegen's policy,
# beside its prange thresholds
from .codegen import SPLIT_MIN_ROWS, should_split  # noqa: F401
# blocks per product: numba's thread count when this module was imported, a constant
# (``numba.get_num_threads()`` inside a kernel makes it uncacheable: a ctypes pointer)
NBLOCKS = max(int(config.NUMBA_NUM_THREADS), 1)

# numba's C helper ``numba_xxgemm`` (it calls scipy's sgemm/dgemm by ``kind``), declared
# here with untyped pointers so one function serves float32 and float64
_xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
    types.char, types.char, types.char, types.intp, types.intp, types.intp,
    types.voidptr, types.voidptr, types.intp, types.voidptr, types.intp,
    types.voidptr, types.voidptr, types.intp))


@njit(nogil=True, cache=True, inline="always")
def _operand(x, it):
    """(transpose flag for column-major BLAS, leading dimension) of a row-major operand
    ``x`` seen as column-major memory; flag 0 when neither axis has a unit stride."""
    s0, s1 = x.strides[0], x.strides[1]
    if s1 == it and s0 % it == 0 and s0 // it >= max(x.shape[1], 1):
        return ord("n"), s0 // it
    if s0 == it and s1 % it == 0 and s1 // it >= max(x.shape[0], 1):
        return ord("t"), s1 // it
    return 0, 0


@njit(nogil=True, cache=True)
def gemm_block(a, b, out, r0, r1, c0, c1, alpha, beta):
    """out[r0:r1, c0:c1] = a[r0:r1] @ b[:, c0:c1], one gemm call straight into ``out``
    (numba's np.dot would copy a block of ``x.T``, which is not contiguous).
    ``alpha``/``beta``: 1-element arrays of the dtype (only 1 and 0 are used: the fallback
    for operands BLAS cannot take as they are, and for a non-contiguous ``out``, ignores them)."""
    it = a.itemsize
    k = a.shape[1]
    ta, lda = _operand(b, it)  # out.T = b.T @ a.T in BLAS's column-major terms
    tb, ldb = _operand(a, it)
    if ta == 0 or tb == 0 or out.strides[1] != it or out.strides[0] != out.shape[1] * it:
        out[r0:r1, c0:c1] = np.dot(np.ascontiguousarray(a[r0:r1]), np.ascontiguousarray(b[:, c0:c1]))
        return 0
    kind = ord("s") if it == 4 else ord("d")
    return _xxgemm(kind, ta, tb, c1 - c0, r1 - r0, k, alpha.ctypes, b[:, c0:].ctypes, lda,
                   a[r0:].ctypes, ldb, beta.ctypes, out[r0:, c0:].ctypes, out.shape[1])


@njit(nogil=True, cache=True)
def dot_add(a, b, out):
    """``out += a @ b`` (2-d, C-contiguous ``out``): one gemm with ``beta = 1`` straight
    into ``out``, so a product that is only added to a buffer needs no buffer of its own
    (compile/buffers.py: ``acc``).  BLAS adds the finished product to ``out``: the bits of
    ``out + a @ b``.  Returns the BLAS status (0)."""
    it = a.itemsize
    m, k = a.shape
    n = b.shape[1]
    ta, lda = _operand(b, it)  # out.T = b.T @ a.T in BLAS's column-major terms
    tb, ldb = _operand(a, it)
    if ta == 0 or tb == 0 or m == 0 or n == 0 or k == 0 or out.strides[1] != it \
            or out.strides[0] != n * it:
        # operands BLAS cannot take as they are (no unit stride): plain loops.  Not
        # ``out += np.dot(...)``: a caller links this function's code into its own, and
        # numpy's dot and array expressions made each call site cost ~0.15 s of numba
        # compilation (rnn's kernel: 3.2 s against 2.9 s)
        for i in range(m):
            for j in range(n):
                s = 0.0
                for q in range(k):
                    s += a[i, q] * b[q, j]
                out[i, j] += s
        return 0
    one = np.ones(1, out.dtype)
    kind = ord("s") if it == 4 else ord("d")
    return _xxgemm(kind, ta, tb, n, m, k, one.ctypes, b.ctypes, lda, a.ctypes, ldb,
                   one.ctypes, out.ctypes, n)


@njit(nogil=True, cache=True, parallel=True)
def gemm_split(a, b, out):
    """out = a @ b in one block per numba thread: blocks of output rows, or of output
    columns when ``a`` is the smaller operand (every block reads all of the other operand,
    and BLAS packs it again per call); returns the number of failed gemm calls (0)."""
    m, k = a.shape
    n = b.shape[1]
    by_cols = m * k < k * n
    ext = n if by_cols else m
    nt = min(NBLOCKS, max(ext // SPLIT_MIN_ROWS, 1))
    alpha = np.ones(1, out.dtype)
    beta = np.zeros(1, out.dtype)
    bad = 0
    for p in prange(nt):
        lo = p * ext // nt
        hi = (p + 1) * ext // nt
        if by_cols:
            st = gemm_block(a, b, out, 0, m, lo, hi, alpha, beta)
        else:
            st = gemm_block(a, b, out, lo, hi, 0, n, alpha, beta)
        if st != 0:
            bad += 1
    return bad
