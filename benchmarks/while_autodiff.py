"""Per-iteration cost of IR autodiff through a ``while_loop``, interpreted.

A loop ``while i < n: x = tanh(x * 0.9 + 0.01); i += 1`` on a 1000-element float64
carry, traced once as ``dg.trace(dg.value_and_grad(f), x, n)``; the same graph runs with
``n`` = 1k and 10k iterations (the trip count is a graph input).  Prints microseconds per
iteration (median of repeats; wall and process CPU time) of the forward graph and of
value-and-gradient.

    python benchmarks/while_autodiff.py [--repeats 5] [--size 1000]

The reverse pass keeps a tape of every carry in a growable buffer; what this measures is
that a tape write costs the same at iteration 10k as at iteration 1k (a copying write
makes the cost per iteration grow with the trip count).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

# measure the checkout this file is in, not whichever dualgraph is installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def loop(x, n):
    import dualgraph as dg

    def body(state):
        i, y = state
        return i + 1, dg.tanh(y * 0.9 + 0.01)

    _, y = dg.while_loop(lambda s: s[0] < n, body, (dg.tensor(0), x))
    return y.sum()


def _median_us_per_iter(fn, iters, repeats):
    """(wall, process CPU) microseconds per iteration, medians of ``repeats`` runs: the
    CPU time is the steadier figure on a shared machine."""
    fn()  # warm up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) / iters * 1e6, statistics.median(cpu) / iters * 1e6


def main():
    import dualgraph as dg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=1000)
    args = ap.parse_args()

    x = dg.tensor(np.linspace(-1, 1, args.size))
    n0 = dg.tensor(np.asarray(3, np.int64))
    fwd = dg.trace(loop, x, n0)
    vg = dg.trace(dg.value_and_grad(loop), x, n0)
    print(f"while_loop with a {args.size}-element float64 carry, interpreted graph, "
          f"median of {args.repeats}; microseconds per iteration, wall (process CPU)")
    print(f"{'iterations':>10}  {'forward':>18}  {'value_and_grad':>18}")
    for iters in (1000, 10000):
        n = dg.tensor(np.asarray(iters, np.int64))
        f_us = _median_us_per_iter(lambda: fwd(x, n), iters, args.repeats)  # noqa: B023
        g_us = _median_us_per_iter(lambda: vg(x, n), iters, args.repeats)  # noqa: B023
        print(f"{iters:>10}  {f_us[0]:>8.1f} ({f_us[1]:>6.1f})  {g_us[0]:>8.1f} ({g_us[1]:>6.1f})")


if __name__ == "__main__":
    main()
