"""Speed of the vectorizable math in dualgraph/compile/mathlib.py (figures: benchmarks/MATHLIB.md).

    python benchmarks/mathlib_bench.py [--n 4194304] [--repeats 41]

Elementwise: 4M float32, out[i] = f(x[i]) in an njit loop (fastmath {nsz, arcp, contract, afn},
error_model='numpy'), with mathlib's inlined function vs np.tanh/np.exp called in the same loop,
vs numpy's own ufunc, vs a copy loop (memcpy-like baseline).
Reduction: max over 4M float32 with mathlib.fmax (llvm.maximum, +reassoc) vs an `if` loop vs np.max.
Each variant's median over interleaved repeats (ratios are what matter: bandwidth varies between
processes on this machine); also reports whether the loop's LLVM IR holds 8-wide float vectors.
"""
import argparse
import os
import sys
import time

import numba
import numpy as np
from numba import njit, prange

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout
from dualgraph.compile import mathlib as M  # noqa: E402

EW = dict(fastmath=set(M.FASTMATH), error_model="numpy")
RED = dict(fastmath=set(M.FASTMATH_REDUCE), error_model="numpy")


def elementwise(f, parallel=False):
    if parallel:
        @njit(parallel=True, **EW)
        def k(x, out):
            for i in prange(x.size):
                out[i] = f(x[i])
    else:
        @njit(**EW)
        def k(x, out):
            for i in range(x.size):
                out[i] = f(x[i])
    return k


@njit(inline="always")
def _ident(v):
    return v


@njit(inline="always")
def _np_tanh(v):
    return np.tanh(v)


@njit(inline="always")
def _np_exp(v):
    return np.exp(v)


@njit(**RED)
def max_fmax(x):
    m = np.float32(-np.inf)
    for i in range(x.size):
        m = M.fmax(m, x[i])
    return m


@njit(**RED)
def max_if(x):
    m = np.float32(-np.inf)
    for i in range(x.size):
        v = x[i]
        if v > m or v != v:
            m = v
    return m


@njit(**RED)
def max_builtin(x):
    m = np.float32(-np.inf)
    for i in range(x.size):
        m = max(m, x[i])
    return m


def vector_width(disp):
    """'8-wide' if the IR has 8-lane float vectors, plus any libm call left in it."""
    ir = disp.inspect_llvm(disp.signatures[0])
    wide = "8-wide" if ("<8 x float>" in ir or "<16 x float>" in ir) else "scalar"
    libm = sorted({w for w in ("tanhf", "expf", "tanh", "exp") if f"@{w}(" in ir})
    return wide + (f" + calls {','.join(libm)}" if libm else "")


def bench(cases, repeats):
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(v)) for name, v in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1 << 22)
    ap.add_argument("--repeats", type=int, default=41)
    args = ap.parse_args()
    n = args.n
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32) * np.float32(3)
    out = np.empty_like(x)

    kernels = {
        "copy loop": elementwise(_ident),
        "mathlib tanh_f32": elementwise(M.tanh_f32),
        "np.tanh in njit loop": elementwise(_np_tanh),
        "mathlib tanh_f32 prange": elementwise(M.tanh_f32, parallel=True),
        "np.tanh in prange loop": elementwise(_np_tanh, parallel=True),
        "mathlib exp_f32": elementwise(M.exp_f32),
        "np.exp in njit loop": elementwise(_np_exp),
        "mathlib sigmoid_f32": elementwise(M.sigmoid_f32),
        "mathlib log_f32": elementwise(M.log_f32),
        "mathlib erf_f32": elementwise(M.erf_f32),
    }
    t0 = time.perf_counter()
    for k in kernels.values():
        k(x, out)
    compile_s = time.perf_counter() - t0
    cases = {name: (lambda k=k: k(x, out)) for name, k in kernels.items()}
    cases["np.copyto"] = lambda: np.copyto(out, x)
    cases["numpy np.tanh(x, out)"] = lambda: np.tanh(x, out=out)
    cases["numpy np.exp(x, out)"] = lambda: np.exp(x, out=out)
    res = bench(cases, args.repeats)
    base = res["np.copyto"]
    print(f"numba {numba.__version__}, numpy {np.__version__}, n={n} float32, "
          f"median of {args.repeats}, threads={numba.get_num_threads()}, compile {compile_s:.1f}s")
    print(f"{'elementwise':32s} {'ms':>8s} {'x memcpy':>9s}  LLVM IR")
    for name, t in res.items():
        vw = vector_width(kernels[name]) if name in kernels else ""
        print(f"{name:32s} {t * 1e3:8.3f} {t / base:9.2f}  {vw}")

    reds = {"fmax loop (llvm.maximum)": max_fmax, "if loop": max_if, "max() builtin loop": max_builtin}
    for f in reds.values():
        f(x)
    assert max_fmax(x) == np.max(x)
    cases = {name: (lambda f=f: f(x)) for name, f in reds.items()}
    cases["np.max"] = lambda: np.max(x)
    cases["np.copyto"] = lambda: np.copyto(out, x)
    res = bench(cases, args.repeats)
    print(f"{'max reduction':32s} {'ms':>8s} {'x np.max':>9s}  LLVM IR")
    for name, t in res.items():
        vw = vector_width(reds[name]) if name in reds else ""
        print(f"{name:32s} {t * 1e3:8.3f} {t / res['np.max']:9.2f}  {vw}")


if __name__ == "__main__":
    main()
