"""Measure where ``prange`` starts to pay off for generated kernels on this machine (serial vs
parallel numba loops, float32, the code generator's fastmath flags), interleaved in one process.

    python benchmarks/codegen_facts.py [--reps 31]

Loops: cheap elementwise ``o[i] = x[i] * 2 + 1``, heavy elementwise ``o[i] = tanh_f32(x[i])``,
and a full sum reduction with per-block partials (blocks of 8192, as the code generator emits).
Prints the median time per call of each variant and the ratio parallel / serial per size.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from dualgraph.compile.mathlib import FASTMATH, FASTMATH_REDUCE, tanh_f32  # noqa: E402

FM, FMR = set(FASTMATH), set(FASTMATH_REDUCE)
BLOCK = 8192


def make(parallel):
    rng = prange if parallel else range

    @njit(fastmath=FM, error_model="numpy", parallel=parallel)
    def cheap(x, o):
        for i in rng(x.size):
            o[i] = x[i] * np.float32(2.0) + np.float32(1.0)

    @njit(fastmath=FM, error_model="numpy", parallel=parallel)
    def heavy(x, o):
        for i in rng(x.size):
            o[i] = tanh_f32(x[i])

    @njit(fastmath=FMR, error_model="numpy", parallel=parallel)
    def reduce(x, o):
        n = x.size
        nb = (n + BLOCK - 1) // BLOCK
        parts = np.empty(nb, np.float64)
        for b in rng(nb):
            acc = 0.0
            for j in range(b * BLOCK, min(b * BLOCK + BLOCK, n)):
                acc += np.float64(x[j])
            parts[b] = acc
        acc = 0.0
        for b in range(nb):
            acc += parts[b]
        o[0] = np.float32(acc)

    return {"cheap": cheap, "heavy": heavy, "reduce": reduce}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=31)
    args = ap.parse_args()
    ser, par = make(False), make(True)
    sizes = [1 << k for k in range(10, 23, 2)]
    print(f"numba {numba.__version__}, threads {numba.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| loop | n | serial (us) | prange (us) | prange / serial |")
    print("|---|---|---|---|---|")
    for kind in ("cheap", "heavy", "reduce"):
        for n in sizes:
            x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
            o = np.empty_like(x)
            ser[kind](x, o)
            par[kind](x, o)
            ts, tp = [], []
            for _ in range(args.reps):
                t = time.perf_counter(); ser[kind](x, o); ts.append(time.perf_counter() - t)
                t = time.perf_counter(); par[kind](x, o); tp.append(time.perf_counter() - t)
            a, b = statistics.median(ts) * 1e6, statistics.median(tp) * 1e6
            print(f"| {kind} | {n} | {a:.1f} | {b:.1f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
