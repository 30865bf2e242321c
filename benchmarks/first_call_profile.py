"""Where a cold first call of dg.compile spends its time: numba's compile events.

Runs one workload's ``dg.compile`` first call in this process with a fresh, empty
``DUALGRAPH_CACHE_DIR`` and records numba's ``numba:compile`` events (one per function
compiled: the kernel, and each numba implementation or helper it pulls in, nested) and
``numba:run_pass`` events (type inference, lowering, ...).  Prints, per compiled function,
the inclusive and exclusive (nested compiles removed) wall time, and the pass totals of the
kernel itself; then a census of the generated kernel sources (loop nests, allocations,
matmul calls).

    python benchmarks/first_call_profile.py mlp [--top 25] [--source]

Timing is wall time (``time.perf_counter``) of this one process: run it on a quiet machine
and compare processes, not single figures.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def census(src):
    """Counts of the constructs that cost numba compile time in one generated source."""
    lines = src.splitlines()
    loops = [ln for ln in lines if re.match(r"\s*for \w+ in p?range\(", ln)]
    depth0 = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip().startswith("v")),
                 default=4)
    nests = [ln for ln in loops if len(ln) - len(ln.lstrip()) == depth0]
    return {
        "lines": len(lines),
        "loops": len(loops),
        "top-level nests": len(nests),
        "np.empty": src.count("np.empty("),
        "np.zeros": src.count("np.zeros("),
        "matmul calls": len(re.findall(r"\b(dot_into|dot_vec|gemm_split|np\.dot)\(", src)),
        "while": sum(1 for ln in lines if ln.strip().startswith("while ")),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workload")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--source", action="store_true", help="print the generated sources")
    args = ap.parse_args(argv)
    d = tempfile.mkdtemp(prefix="dg-prof-")
    os.environ["DUALGRAPH_CACHE_DIR"] = d
    os.environ.setdefault("DUALGRAPH_BACKGROUND_COMPILE", "1")

    t0 = time.perf_counter()
    import numba  # noqa: F401
    from numba.core import event as ev

    import dualgraph  # noqa: F401
    from dualgraph.bench.workloads import WORKLOADS
    t_imp = time.perf_counter() - t0

    stack, rows = [], []
    passes = collections.Counter()

    class Rec(ev.Listener):
        def on_start(self, event):
            if event.kind == "numba:compile":
                disp = event.data["dispatcher"]
                name = getattr(disp, "py_func", None)
                name = getattr(name, "__qualname__", str(disp))
                mod = getattr(getattr(disp, "py_func", None), "__module__", "?")
                stack.append([f"{mod}.{name}", str(event.data.get("args")), time.perf_counter(), 0.0])
            elif event.kind == "numba:run_pass":
                stack and stack[-1].append((event.data["name"], time.perf_counter()))

        def on_end(self, event):
            if event.kind == "numba:compile":
                name, sig, t, nested, *_ = stack.pop()
                dt = time.perf_counter() - t
                rows.append((name, sig, dt, dt - nested, len(stack)))
                if stack:
                    stack[-1][3] += dt
            elif event.kind == "numba:run_pass":
                top = stack[-1] if stack else None
                if top is not None and len(top) > 4 and isinstance(top[-1], tuple):
                    pname, t = top.pop()
                    if len(stack) == 1:
                        passes[pname] += time.perf_counter() - t

    w = WORKLOADS[args.workload]
    inp = w.inputs(False)
    run = w.systems["dg.compile"](inp)
    rec = Rec()
    ev.register("numba:compile", rec)
    ev.register("numba:run_pass", rec)
    c = time.process_time()
    t = time.perf_counter()
    run()
    first = time.perf_counter() - t
    cpu = time.process_time() - c
    ev.unregister("numba:compile", rec)
    ev.unregister("numba:run_pass", rec)

    print(f"{args.workload}: import {t_imp:.2f} s; first call {first:.3f} s wall, {cpu:.3f} s CPU; "
          f"{len(rows)} numba compiles")
    print(f"\n{'incl s':>7} {'excl s':>7} depth  function  [signature]")
    for name, sig, inc, exc, depth in sorted(rows, key=lambda r: -r[3])[:args.top]:
        print(f"{inc:7.3f} {exc:7.3f} {depth:5d}  {name}  {sig[:110]}")
    tot = collections.Counter()
    for name, _, _, exc, _ in rows:
        tot[name] += exc
    print("\nexclusive time by function (all signatures):")
    for name, s in tot.most_common(args.top):
        print(f"  {s:7.3f}  {name}")
    print("\nkernel passes (outermost compiles only), s:")
    for pname, s in passes.most_common(12):
        print(f"  {s:7.3f}  {pname}")
    kd = os.path.join(d, "kernels")
    for f in sorted(os.listdir(kd)) if os.path.isdir(kd) else []:
        if f.endswith(".py"):
            with open(os.path.join(kd, f)) as fh:
                src = fh.read()
            par = "parallel=True" in src
            print(f"\n{f} ({'prange' if par else 'serial'}): {census(src)}")
            if args.source:
                print(src)
    return 0


if __name__ == "__main__":
    sys.exit(main())
