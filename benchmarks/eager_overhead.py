"""Per-op overhead of eager execution on a small tensor.

A chain of 200 elementwise ops (``*``, ``+``, ``tanh``, ``-``) on a 16-element float32
tensor, timed as forward+backward and as forward under no_grad; prints microseconds per
op (median of repeats) for dualgraph, numpy (forward only) and torch when installed.

    python benchmarks/eager_overhead.py [--repeats 50]

Targets (2-core machine): forward+backward <= 4 us/op, no_grad <= 1.5 us/op.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

N_OPS = 200  # 50 rounds of 4 ops
SIZE = 16
TARGETS = {"forward+backward": 4.0, "forward no_grad": 1.5}  # us/op, dualgraph


def chain(x, c, tanh):
    for _ in range(N_OPS // 4):
        x = x * c
        x = x + c
        x = tanh(x)
        x = x - c
    return x


def _median_us_per_op(fn, repeats):
    fn()  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / N_OPS * 1e6


def bench_dualgraph(repeats):
    import dualgraph as dg

    x0 = np.linspace(-1, 1, SIZE).astype(np.float32)
    c = dg.tensor(np.full(SIZE, 0.5, np.float32))

    def fwd_bwd():
        x = dg.tensor(x0, requires_grad=True)
        y = chain(x, c, dg.tanh).sum()
        y.backward()

    def fwd_nograd():
        with dg.no_grad():
            chain(dg.tensor(x0), c, dg.tanh)

    return {"forward+backward": _median_us_per_op(fwd_bwd, repeats),
            "forward no_grad": _median_us_per_op(fwd_nograd, repeats)}


def bench_numpy(repeats):
    x0 = np.linspace(-1, 1, SIZE).astype(np.float32)
    c = np.full(SIZE, 0.5, np.float32)
    return {"forward+backward": float("nan"),
            "forward no_grad": _median_us_per_op(lambda: chain(x0, c, np.tanh), repeats)}


def bench_torch(repeats):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    x0 = torch.linspace(-1, 1, SIZE)
    c = torch.full((SIZE,), 0.5)

    def fwd_bwd():
        x = x0.clone().requires_grad_(True)
        chain(x, c, torch.tanh).sum().backward()

    def fwd_nograd():
        with torch.no_grad():
            chain(x0, c, torch.tanh)

    return {"forward+backward": _median_us_per_op(fwd_bwd, repeats),
            "forward no_grad": _median_us_per_op(fwd_nograd, repeats)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args(argv)
    rows = [("dualgraph", bench_dualgraph(args.repeats)), ("numpy", bench_numpy(args.repeats))]
    t = bench_torch(args.repeats)
    rows.append(("torch", t) if t else ("torch", None))
    print(f"chain of {N_OPS} elementwise ops on {SIZE} float32, median of {args.repeats} runs, us/op")
    print(f"{'library':<12}{'forward+backward':>18}{'forward no_grad':>18}")
    for name, r in rows:
        if r is None:
            print(f"{name:<12}{'not installed':>18}{'':>18}")
        else:
            print(f"{name:<12}{r['forward+backward']:>18.2f}{r['forward no_grad']:>18.2f}")
    print(f"{'target':<12}" + "".join(f"{'<= ' + format(v, '.2f'):>18}" for v in TARGETS.values()))


if __name__ == "__main__":
    main()
