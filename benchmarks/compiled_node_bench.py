"""A compiled function inside eager code: forward + ``loss.backward()`` through its one
``CompiledFunctionBackward`` node (compiled forward and backward kernels, compile/aot.py),
beside the same function run eagerly and beside the same optimized graph interpreted on the
eager tape (what dg.compile did before the node existed), side by side in one process.

    python benchmarks/compiled_node_bench.py [--repeat 30]

Workloads (float32): mlp (784->512->10 relu MLP, batch 128, cross-entropy), rnn
(``h = tanh(x_t @ Wx + h @ Wh)``, hidden 64, batch 8, 200 steps in a ``fori_loop``, loss
``h.sum()``), chain (a 12-op elementwise chain on 256K floats, loss ``.sum()``).  Prints
medians after warm-up, the ratios, and the residual count of each compiled function.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dualgraph as dg  # noqa: E402
import dualgraph.nn.functional as F  # noqa: E402


def mlp(x, y, w1, b1, w2, b2):
    h = (x @ w1 + b1).relu()
    return F.cross_entropy(h @ w2 + b2, y)


def rnn(xs, h0, wx, wh):
    def body(t, h):
        return dg.tanh(xs[t] @ wx + h @ wh)

    return dg.fori_loop(0, xs.shape[0], body, h0).sum()


def chain(x, y):
    a = dg.tanh(x * y)
    b = dg.exp(a * 0.5) + x
    c = dg.sigmoid(b) * y
    d = c * c - a
    e = dg.sqrt(d * d + 1.0) * b
    return (dg.relu(e - c) + 0.1 * x).sum()


def workloads(rng):
    f32 = np.float32
    return {
        "mlp": (mlp, [rng.standard_normal((128, 784)).astype(f32), rng.integers(0, 10, 128),
                      (rng.standard_normal((784, 512)) * 0.03).astype(f32), np.zeros(512, f32),
                      (rng.standard_normal((512, 10)) * 0.05).astype(f32), np.zeros(10, f32)],
                {2, 3, 4, 5}),
        "rnn": (rnn, [rng.standard_normal((200, 8, 16)).astype(f32), np.zeros((8, 64), f32),
                      (rng.standard_normal((16, 64)) * 0.2).astype(f32),
                      (rng.standard_normal((64, 64)) * 0.1).astype(f32)], {2, 3}),
        "chain": (chain, [rng.standard_normal(1 << 18).astype(f32),
                          rng.standard_normal(1 << 18).astype(f32)], {0, 1}),
    }


def step_fn(fn, arrays, diff):
    xs = [dg.tensor(a, requires_grad=i in diff) for i, a in enumerate(arrays)]
    params = [xs[i] for i in sorted(diff)]

    def step():
        for p in params:
            p.grad = None
        loss = fn(*xs)
        loss.backward()
        return loss

    return step, params


def median(step, repeat):
    for _ in range(3):
        step()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'workload':8} {'eager':>10} {'tape':>10} {'node':>10} {'eager/node':>11} "
          f"{'tape/node':>10} residuals")
    for name, (fn, arrays, diff) in workloads(rng).items():
        node_fn = dg.compile(fn, fullgraph=True)
        tape_fn = dg.compile(fn, fullgraph=True)
        # the interpreted-on-the-tape path: the optimized graph, no compiled backward
        tape_step, _ = step_fn(tape_fn, arrays, diff)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tape_fn(*[dg.tensor(a) for a in arrays])  # trace once
        for e in tape_fn._cache.values():
            e.aot = False
        node_step, node_params = step_fn(node_fn, arrays, diff)
        eager_step, eager_params = step_fn(fn, arrays, diff)
        # the same gradients first
        node_step()
        eager_step()
        for a, b in zip(node_params, eager_params):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=2e-3, atol=1e-5)
        t_e = t_t = t_n = None
        te, tt, tn = [], [], []
        for _ in range(3):  # interleaved rounds: load changes hit all three alike
            te.append(median(eager_step, args.repeat))
            tt.append(median(tape_step, args.repeat))
            tn.append(median(node_step, args.repeat))
        t_e, t_t, t_n = (statistics.median(v) for v in (te, tt, tn))
        print(f"{name:8} {t_e * 1e3:8.3f}ms {t_t * 1e3:8.3f}ms {t_n * 1e3:8.3f}ms "
              f"{t_e / t_n:10.2f}x {t_t / t_n:9.2f}x {node_fn.residual_counts()}")


if __name__ == "__main__":
    main()
