"""The seed loop written as plain Python (AutoGraph converts it) beside the explicit
``dg.fori_loop`` + ``dg.cond`` version, both under ``dg.compile`` and eagerly, side by side
in one process (float32, 1000 elements, 100 iterations).

    python benchmarks/autograph_seed_loop.py [--repeat 200]

Prints the median time per call after warm-up, the first-call time apart, and the IR size
of each traced form (the converted loop is one ``while`` holding one ``cond``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dualgraph as dg  # noqa: E402


def seed_loop_python(x):
    r = x
    for _ in range(100):
        r = r * 2 if r.sum() > 0 else r + 1
    return r


def seed_loop_explicit(x):
    return dg.fori_loop(0, 100, lambda i, r: dg.cond(r.sum() > 0, lambda r: r * 2, lambda r: r + 1, r), x)


def _time(fn, x, repeat):
    t0 = time.perf_counter()
    first = fn(x)
    first_s = time.perf_counter() - t0
    for _ in range(3):
        fn(x)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(x)
        ts.append(time.perf_counter() - t0)
    return first, first_s, statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    x = dg.tensor(np.random.default_rng(0).standard_normal(1000).astype(np.float32))
    want = seed_loop_python(x).numpy()
    print("seed loop, 1000 float32, 100 iterations; median of", args.repeat)
    print(f"{'form':<34}{'ops in IR':>10}{'first call s':>14}{'median ms':>12}")
    for name, fn in (("plain Python, dg.compile", seed_loop_python),
                     ("fori_loop + cond, dg.compile", seed_loop_explicit)):
        g = dg.trace(fn, x)
        cfn = dg.compile(fn, fullgraph=True)
        got, first_s, med = _time(cfn, x, args.repeat)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
        print(f"{name:<34}{len(g.ops):>10}{first_s:>14.3f}{med * 1e3:>12.4f}")
    for name, fn in (("plain Python, eager", seed_loop_python),
                     ("fori_loop + cond, eager", seed_loop_explicit)):
        got, first_s, med = _time(fn, x, max(args.repeat // 10, 10))
        print(f"{name:<34}{'-':>10}{first_s:>14.3f}{med * 1e3:>12.4f}")


if __name__ == "__main__":
    main()
