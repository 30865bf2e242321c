"""Eager per-op overhead of two source trees, A/B, counted in instructions (load-independent).

Each case (the ``eager_overhead.py`` chain forward+backward and under no_grad, and a few
single ops) runs in a fresh ``python`` under ``valgrind --tool=cachegrind --cache-sim=no``
twice, with N1 and N2 repetitions after the same warm-up; the difference of the two
instruction totals divided by the difference of op counts cancels start-up, imports and
warm-up.  Every process runs with PYTHONHASHSEED=0, gc disabled, .pyc warmed first, the
tree on PYTHONPATH and as the working directory.  Without valgrind (``--wall``) it
alternates the trees many times (in both orders) and takes the minimum wall time per op
instead.

    python benchmarks/eager_overhead_ab.py TREE_A TREE_B [--cases fwd_bwd,no_grad] [--wall]

Prints instructions per op (and the B/A ratio) for each case.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

N_OPS = 200  # the chain of eager_overhead.py: 50 rounds of * + tanh -
SIZE = 16

# case -> (setup source, per-repetition source, ops per repetition)
CASES = {
    "fwd_bwd": ("x0 = np.linspace(-1, 1, 16).astype(np.float32); c = dg.tensor(np.full(16, 0.5, np.float32))",
                "x = dg.tensor(x0, requires_grad=True); chain(x, c).sum().backward()", N_OPS),
    "fwd_rec": ("x0 = np.linspace(-1, 1, 16).astype(np.float32); c = dg.tensor(np.full(16, 0.5, np.float32))",
                "x = dg.tensor(x0, requires_grad=True); chain(x, c)", N_OPS),
    "no_grad": ("x0 = np.linspace(-1, 1, 16).astype(np.float32); c = dg.tensor(np.full(16, 0.5, np.float32))",
                "with dg.no_grad(): chain(dg.tensor(x0), c)", N_OPS),
    "plain": ("x0 = np.linspace(-1, 1, 16).astype(np.float32); c = dg.tensor(np.full(16, 0.5, np.float32))",
              "chain(dg.tensor(x0), c)", N_OPS),  # no_grad's chain without the no_grad
    "enter_ng": ("pass", "for _ in R100:\n        with dg.no_grad(): pass", 100),
    "add_tt": ("c = dg.tensor(np.full(16, 0.5, np.float32))", "for _ in R100: c + c", 100),
    "add_float": ("c = dg.tensor(np.full(16, 0.5, np.float32))", "for _ in R100: c + 1.0", 100),
    "tanh": ("c = dg.tensor(np.full(16, 0.5, np.float32))", "for _ in R100: dg.tanh(c)", 100),
    "mul_grad": ("w = dg.tensor(np.full(16, 0.5, np.float32), requires_grad=True)",
                 "for _ in R100: w * w", 100),
}

_WORKER = """
import gc, sys
import numpy as np
import dualgraph as dg
assert dg.__file__.startswith({tree!r}), dg.__file__
R100 = range(100)
def chain(x, c):
    for _ in range({rounds}):
        x = x * c
        x = x + c
        x = dg.tanh(x)
        x = x - c
    return x
{setup}
gc.disable()
for _ in range(3):
    {body}
for _ in range({n}):
    {body}
"""


def _env(tree):
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=tree, OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _src(tree, case, n):
    setup, body, _ = CASES[case]
    return _WORKER.format(tree=tree, rounds=N_OPS // 4, setup=setup, body=body, n=n)


_COUNTERS = {"I": r"I\s+refs:", "D1miss": r"D1\s+misses:", "LLmiss": r"LL misses:",
             "mispred": r"Mispredicts:"}


# address-space randomisation off (hash collisions of id-keyed tables vary with it)
_NORAND = ["setarch", "-R"] if shutil.which("setarch") else []


def _instructions(tree, case, n, sim=False):
    """Cachegrind's totals for one process: instructions, and with ``sim`` data-cache
    misses and branch mispredictions (simulated)."""
    flags = ["--cache-sim=yes", "--branch-sim=yes"] if sim else ["--cache-sim=no"]
    cmd = [*_NORAND, "valgrind", "--tool=cachegrind", *flags, "--cachegrind-out-file=/dev/null",
           sys.executable, "-c", _src(tree, case, n)]
    r = subprocess.run(cmd, cwd=tree, env=_env(tree), capture_output=True, text=True)
    out = {}
    for k, pat in _COUNTERS.items():
        m = re.search(pat + r"\s+([\d,]+)", r.stderr)
        if m:
            out[k] = int(m.group(1).replace(",", ""))
    if r.returncode or "I" not in out:
        raise RuntimeError(f"{tree} {case} n={n} failed:\n{r.stderr[-2000:]}")
    return out


def _wall(tree, case, n):
    src = _src(tree, case, 0).replace("gc.disable()", "gc.disable(); import time")
    setup, body, _ = CASES[case]
    src += f"\nts = []\nfor _ in range({n}):\n    t0 = time.perf_counter()\n    {body}\n" \
           f"    ts.append(time.perf_counter() - t0)\nprint(min(ts))\n"
    r = subprocess.run([sys.executable, "-c", src], cwd=tree, env=_env(tree),
                       capture_output=True, text=True, check=True)
    return float(r.stdout.split()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tree_a")
    ap.add_argument("tree_b")
    ap.add_argument("--cases", default="fwd_bwd,no_grad,fwd_rec,enter_ng,add_tt,add_float,tanh,mul_grad")
    ap.add_argument("--reps", default="5,25", help="N1,N2 repetitions (instruction counts)")
    ap.add_argument("--wall", action="store_true", help="wall clock, min over alternated runs")
    ap.add_argument("--rounds", type=int, default=10, help="--wall: alternations of A and B")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sim", action="store_true", help="also simulated cache misses, mispredicts")
    args = ap.parse_args(argv)
    trees = [os.path.abspath(args.tree_a), os.path.abspath(args.tree_b)]
    cases = args.cases.split(",")
    for t in trees:  # warm the .pyc of each tree
        subprocess.run([sys.executable, "-c", "import dualgraph"], cwd=t, env=_env(t), check=True)
    wall = args.wall or shutil.which("valgrind") is None
    res = {}
    if wall:
        for case in cases:
            for t in trees:
                res[t, case] = float("inf")
            for r in range(args.rounds):
                # A then B in even rounds, B then A in odd ones: the tree run second in a
                # pair measured ~1% slower (A against a copy of A: 1.004-1.020)
                for t in (trees if r % 2 == 0 else trees[::-1]):
                    res[t, case] = min(res[t, case], _wall(t, case, 20) / CASES[case][2] * 1e6)
        unit = "us/op (min)"
    else:
        n1, n2 = (int(v) for v in args.reps.split(","))
        jobs = [(t, c, n) for c in cases for t in trees for n in (n1, n2)]
        with ThreadPoolExecutor(args.jobs) as ex:
            counts = dict(zip(jobs, ex.map(lambda j: _instructions(*j, sim=args.sim), jobs)))
        for t in trees:
            for c in cases:
                per = {k: (counts[t, c, n2][k] - counts[t, c, n1][k]) / ((n2 - n1) * CASES[c][2])
                       for k in counts[t, c, n2]}
                res[t, c] = per.pop("I")
                if per:
                    print(f"{t} {c}: " + ", ".join(f"{k} {v:.1f}/op" for k, v in per.items()))
        unit = "instructions/op"
    print(f"{unit}; A = {trees[0]}, B = {trees[1]}")
    print(f"{'case':<12}{'A':>12}{'B':>12}{'B/A':>8}")
    for c in cases:
        a, b = res[trees[0], c], res[trees[1], c]
        print(f"{c:<12}{a:>12.{2 if wall else 0}f}{b:>12.{2 if wall else 0}f}{b / a:>8.3f}")


if __name__ == "__main__":
    main()
