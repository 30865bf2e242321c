"""First-call latency of dg.compile per reference workload (issues 7 and 8).

Each measurement is its own subprocess, so every figure includes what a user's fresh process
pays (numba's start-up, the loading of cached kernels), none of it amortised by an earlier
workload in the same process:

- ``cold``: a fresh, empty ``DUALGRAPH_CACHE_DIR``; the first call traces, generates and
  compiles (numba) the kernels.
- ``warm``: a new process on the directory the cold run filled; the first call should only
  trace and load numba's cached machine code.

``import`` is the time of ``import dualgraph`` in the same subprocess (not part of the first
call); ``first`` is the first call of the compiled function (``run()`` of the workload as
``python -m dualgraph bench`` builds it, full sizes), ``second`` the call after it.  Medians
over ``--repeat`` subprocess runs (default 3), interleaved across workloads.

    python benchmarks/first_call_bench.py [--only mlp,rnn] [--repeat 3]

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
t = time.perf_counter(); run(); t1 = time.perf_counter() - t
t = time.perf_counter(); run(); t2 = time.perf_counter() - t
print(json.dumps({"import": t_imp, "first": t1, "second": t2}))
"""


def child(name, cache_dir, root=ROOT):
    env = dict(os.environ, DUALGRAPH_CACHE_DIR=cache_dir)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", CHILD, name], env=env, capture_output=True,
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
    args = ap.parse_args(argv)
    names = [n for n in WORKLOADS if not args.only or n in args.only.split(",")]
    roots = args.roots.split(",")
    res = {(r, n, k): [] for r in roots for n in names for k in ("cold", "warm")}
    imp = []
    for _ in range(args.repeat):
        for n in names:
            for root in roots:
                d = tempfile.mkdtemp(prefix="dg-first-")
                try:
                    c = child(n, d, root)
                    w = child(n, d, root)
                finally:
                    shutil.rmtree(d, ignore_errors=True)
                res[root, n, "cold"].append(c)
                res[root, n, "warm"].append(w)
                imp += [c["import"], w["import"]]
    med = statistics.median
    print(f"{' '.join(['python', *sys.argv])}\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load average {os.getloadavg()[0]:.2f}; {args.repeat} runs per cell, medians; "
          f"import dualgraph {med(imp):.2f} s\n")
    print(f"{'workload':<10} {'cold first':>11} {'cold 2nd':>9} {'warm first':>11} {'warm 2nd':>9}  checkout")
    for n, root in ((n, r) for n in names for r in roots):
        c, w = res[root, n, "cold"], res[root, n, "warm"]
        print(f"{n:<10} {med(r['first'] for r in c):>10.3f}s {med(r['second'] for r in c):>8.4f}s "
              f"{med(r['first'] for r in w):>10.3f}s {med(r['second'] for r in w):>8.4f}s  {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
