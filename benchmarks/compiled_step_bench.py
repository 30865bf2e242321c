"""A PyTorch-style training step, eager beside ``dg.compile``d (compile/effects.py).

    python benchmarks/compiled_step_bench.py [--repeat 200] [--rounds 3]

Workload: the two-class spirals (200 points, float32), an MLP 2 -> 32 -> 2 (ReLU),
cross-entropy, full batch.  Three step functions, each run eagerly and compiled from the
same initial weights:

* ``sgd``:    ``opt.zero_grad(); loss.backward(); opt.step()`` with SGD(lr=0.1, momentum=0.9)
* ``adam``:   the same with Adam(lr=0.01)
* ``manual``: ``loss.backward()`` then ``p -= 0.1 * p.grad; p.grad = None`` under no_grad

Reports the median milliseconds per step (after warm-up, eager and compiled interleaved
in rounds so that machine load hits both alike) and the ratio eager / compiled; first
checks that 20 steps of both give the same parameters.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import dualgraph as dg  # noqa: E402

F = dg.nn.functional


def spirals(n=100, seed=0):
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.05, 1, n)) * 3 * np.pi
    xs, ys = [], []
    for c in range(2):
        r = t / (3 * np.pi)
        a = t + c * np.pi
        xs.append(np.stack([r * np.cos(a), r * np.sin(a)], 1) + rng.normal(0, 0.02, (n, 2)))
        ys.append(np.full(n, c))
    return dg.tensor(np.concatenate(xs).astype(np.float32)), dg.tensor(np.concatenate(ys).astype(np.int64))


def mlp(seed=0):
    rng = np.random.default_rng(seed)
    m = dg.nn.Sequential(dg.nn.Linear(2, 32), dg.nn.ReLU(), dg.nn.Linear(32, 2))
    for p in m.parameters():
        p.data = dg.tensor((rng.standard_normal(p.shape) * 0.5).astype(np.float32))
    return m


def make(kind):
    m = mlp()
    if kind == "manual":
        def step(x, y):
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            with dg.no_grad():
                for p in m.parameters():
                    p -= 0.1 * p.grad
                    p.grad = None
            return loss
        return m, step
    ps = list(m.parameters())
    opt = dg.optim.SGD(ps, lr=0.1, momentum=0.9) if kind == "sgd" else dg.optim.Adam(ps, lr=0.01)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return loss
    return m, step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    x, y = spirals()
    print(f"spirals {tuple(x.shape)}, MLP 2-32-2, full batch; median ms per step "
          f"({args.rounds} rounds x {args.repeat} steps, interleaved)")
    print(f"{'step':8s} {'eager ms':>9s} {'compiled ms':>12s} {'eager/compiled':>15s}")
    for kind in ("sgd", "adam", "manual"):
        # parity first: 20 steps from the same weights give the same parameters (over
        # hundreds of steps float32 rounding differences of the kernel grow, as training
        # amplifies them; the interpreter backend stays bit-equal to eager)
        me, se = make(kind)
        mc, sc = make(kind)
        sc = dg.compile(sc)
        for _ in range(20):
            se(x, y), sc(x, y)
        for p, q in zip(me.parameters(), mc.parameters()):
            np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-5, atol=1e-6)
        for _ in range(5):  # warm-up: first eager step, traces, numba compilation
            se(x, y), sc(x, y)
        te, tc = [], []
        for _ in range(args.rounds):
            for fn, ts in ((se, te), (sc, tc)):
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    fn(x, y)
                    ts.append(time.perf_counter() - t0)
        e, c = np.median(te) * 1e3, np.median(tc) * 1e3
        print(f"{kind:8s} {e:9.3f} {c:12.3f} {e / c:14.1f}x")


if __name__ == "__main__":
    main()
