"""First-call latency of dg.compile per reference workload (issues 7 and 8).

Each measurement is its own subprocess, so every figure includes what a user's fresh process
pays (numba's start-up, the loading of cached kernels), none of it amortised by an earlier
workload in the same process:

- ``cold``: a fresh, empty ``DUALGRAPH_CACHE_DIR``; the first call traces, generates and
  compiles (numba) the kernels.
- ``warm``: a new process on the directory the cold run filled; the first call should only
  trace and load numba's cached machine code.

``ready`` is the time from the first call's start until every kernel was compiled (dg.compile's
tiered start: the first calls run the interpreter while numba compiles in the background; the
child joins those compiles), ``kernel`` the time of the call after that.
``(cpu)`` is the CPU time of that first call (process time: steadier than wall time on a
loaded machine).  ``import`` is the time of ``import dualgraph`` in the same subprocess (not part of the first
call); ``first`` is the first call of the compiled function (``run()`` of the workload as
``python -m dualgraph bench`` builds it, full sizes), ``second`` the call after it.  Medians
over ``--repeat`` subprocess runs (default 3), interleaved across workloads.

    python benchmarks/first_call_bench.py [--only mlp,rnn] [--repeat 3] [--fully-cold]
        [--roots /path/to/checkout_a,/path/to/checkout_b]

Targets (issue 7): cold <= 2 s per workload, warm <= 0.3 s.  Figures: see
benchmarks/first_call_results.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
import dualgraph
t_imp = time.perf_counter() - t0
from dualgraph.bench.workloads import WORKLOADS
w = WORKLOADS[sys.argv[1]]
inp = w.inputs(False)
run = w.systems["dg.compile"](inp)
c = time.process_time(); t = time.perf_counter(); run(); t1 = time.perf_counter() - t
c1 = time.process_time() - c
t = time.perf_counter(); run(); t2 = time.perf_counter() - t
k = sys.modules.get("dualgraph.compile.kernel")
if k is not None:
    k.join_background_compiles()  # tiered start: the kernels, compiled in the background
t_all = t1 + (time.perf_counter() - t)  # first call, second call, and the rest of the compiles
t = time.perf_counter(); run(); t3 = time.perf_counter() - t
print(json.dumps({"import": t_imp, "first": t1, "first_cpu": c1, "second": t2,
                  "ready": t_all, "kernel": t3}))
"""

# numba's own floor: ``import numba`` plus the first call of a trivial cache=True function
# (compiled cold, loaded warm) -- what any dualgraph first call pays at least
FLOOR = r"""
import json, os, sys, time, importlib.util
d = os.environ["DUALGRAPH_CACHE_DIR"]
os.makedirs(d, exist_ok=True)
p = os.path.join(d, "floor_k.py")
if not os.path.exists(p):
    with open(p, "w") as f:
        f.write("from numba import njit\n@njit(cache=True)\ndef k(a, o):\n"
                "    for i in range(a.shape[0]):\n        o[i] = a[i] * 2\n    return 0\n")
import numpy as np
a = np.ones(8, np.float32); o = np.empty_like(a)
c = time.process_time(); t = time.perf_counter()
spec = importlib.util.spec_from_file_location("floor_k", p)
m = importlib.util.module_from_spec(spec); sys.modules["floor_k"] = m
spec.loader.exec_module(m)  # imports numba
m.k(a, o)
t1 = time.perf_counter() - t; c1 = time.process_time() - c
t = time.perf_counter(); m.k(a, o); t2 = time.perf_counter() - t
print(json.dumps({"import": 0.0, "first": t1, "first_cpu": c1, "second": t2}))
"""


def child(name, cache_dir, root=ROOT, numba_cache=False):
    env = dict(os.environ, DUALGRAPH_CACHE_DIR=cache_dir)
    if numba_cache:  # numba's caches of dualgraph's own helpers (compile/cached_dot.py) too
        env["NUMBA_CACHE_DIR"] = os.path.join(cache_dir, "numba")
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    code = FLOOR if name == "numba floor" else CHILD
    r = subprocess.run([sys.executable, "-c", code, name], env=env, capture_output=True,
                       text=True, cwd=root)
    if r.returncode != 0:
        raise SystemExit(f"{name}: child failed\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    sys.path.insert(0, ROOT)
    from dualgraph.bench.workloads import WORKLOADS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated workloads")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--roots", default=ROOT, help="comma-separated dualgraph checkouts to compare "
                    "(A/B, interleaved); default this one")
    ap.add_argument("--fully-cold", action="store_true",
                    help="cold also for numba's caches of dualgraph's helpers (a fresh NUMBA_CACHE_DIR); "
                         "by default only DUALGRAPH_CACHE_DIR is fresh (helpers are compiled once "
                         "per installation)")
    args = ap.parse_args(argv)
    names = [n for n in WORKLOADS if not args.only or n in args.only.split(",")] + ["numba floor"]
    roots = args.roots.split(",")
    res = {(r, n, k): [] for r in roots for n in names for k in ("cold", "warm")}
    imp = []
    for _ in range(args.repeat):
        for n in names:
            for root in roots:
                d = tempfile.mkdtemp(prefix="dg-first-")
                try:
                    c = child(n, d, root, args.fully_cold)
                    w = child(n, d, root, args.fully_cold)
                finally:
                    shutil.rmtree(d, ignore_errors=True)
                res[root, n, "cold"].append(c)
                res[root, n, "warm"].append(w)
                if n != "numba floor":
                    imp += [c["import"], w["import"]]
    med = statistics.median
    print(f"{' '.join(['python', *sys.argv])}\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load average {os.getloadavg()[0]:.2f}; {args.repeat} runs per cell, medians; "
          f"import dualgraph {med(imp):.2f} s\n")
    print(f"{'workload':<10} {'cold first':>11} {'(cpu)':>7} {'cold 2nd':>9} {'ready':>7} {'kernel':>8} "
          f"{'warm first':>11} {'(cpu)':>7} {'warm 2nd':>9} {'ready':>7} {'kernel':>8}  checkout")
    for n, root in ((n, r) for n in names for r in roots):
        c, w = res[root, n, "cold"], res[root, n, "warm"]
        rd = lambda rs, k: med(r.get(k, r["first"] if k == "ready" else r["second"]) for r in rs)  # noqa: E731
        print(f"{n:<10} {med(r['first'] for r in c):>10.3f}s {med(r['first_cpu'] for r in c):>6.2f}s "
              f"{med(r['second'] for r in c):>8.4f}s {rd(c, 'ready'):>6.2f}s {rd(c, 'kernel'):>7.4f}s "
              f"{med(r['first'] for r in w):>10.3f}s {med(r['first_cpu'] for r in w):>6.2f}s "
              f"{med(r['second'] for r in w):>8.4f}s {rd(w, 'ready'):>6.2f}s {rd(w, 'kernel'):>7.4f}s  {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
