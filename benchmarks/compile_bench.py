"""dg.compile against dualgraph eager, numpy, torch eager, torch.compile and jax.jit, side by
side in one process (float32).

    python benchmarks/compile_bench.py [--quick] [--no-torch-compile] [--only gelu,softmax]

Per workload and implementation: the median time per call after warm-up, and (apart) the
time of the first call.  The implementations of a workload are timed round-robin (per round:
one untimed call, two timed calls each), torch and torch.compile in a group of their own
(their OpenMP threads keep spinning after a call), so that the machine's load changing during
the run hits every column alike.  dg.compile's first call is measured twice: in this process with an
empty disk cache (``DUALGRAPH_CACHE_DIR`` set to a fresh temporary directory), and in a new
process that finds the kernels in that cache.  ``memcpy`` is ``x.copy()`` of the input.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__" and "DUALGRAPH_CACHE_DIR" not in os.environ:
    os.environ["DUALGRAPH_CACHE_DIR"] = tempfile.mkdtemp(prefix="dg-bench-cache-")
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import dualgraph as dg  # noqa: E402
from dualgraph.bench import workloads as W  # noqa: E402  (shared with `python -m dualgraph bench`)

NAMES = ("seed_loop", "gelu", "softmax", "newton")


def inputs():
    return {n: W.WORKLOADS[n].inputs(quick=False)["x"] for n in NAMES}


DG = {n: getattr(W, f"dg_{n}") for n in NAMES}
NP = {n: getattr(W, f"np_{n}") for n in NAMES}


def torch_fns():
    import torch

    return torch, {n: getattr(W, f"torch_{n}") for n in NAMES}


def jax_fns():
    import jax

    return jax, {n: jax.jit(getattr(W, f"jax_{n}")) for n in NAMES}


# ---- timing -------------------------------------------------------------------------------


def bench(fn, arg, sync=lambda r: r, budget=1.0, max_reps=61, min_reps=7):
    t0 = time.perf_counter()
    sync(fn(arg))
    first = time.perf_counter() - t0
    from dualgraph.compile.kernel import join_background_compiles

    join_background_compiles()  # prange variants compile in the background: not while timing
    for _ in range(3):
        sync(fn(arg))
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget):
        t = time.perf_counter()
        sync(fn(arg))
        times.append(time.perf_counter() - t)
    return statistics.median(times), first


def first_calls_in_new_process(names):
    """dg.compile's first call per workload in a fresh process (warm disk cache)."""
    code = (
        "import sys, json, time; sys.path.insert(0, %r)\n"
        "t0 = time.perf_counter()\n"
        "import benchmarks.compile_bench as B, dualgraph as dg\n"
        "imp = time.perf_counter() - t0\n"
        "xs = B.inputs(); out = {'import': imp}\n"
        "for k in %r:\n"
        "    f = dg.compile(B.DG[k], fullgraph=True); x = dg.tensor(xs[k])\n"
        "    t = time.perf_counter(); f(x); out[k] = time.perf_counter() - t\n"
        "print(json.dumps(out))\n" % (ROOT, list(names))
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, cwd=ROOT)
    if p.returncode != 0:
        print(p.stderr, file=sys.stderr)
        return {}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _variant(cf):
    """'prange' / 'serial' ('serial only': no prange variant) for a compiled function's kernels."""
    out = []
    for entry in getattr(cf, "_cache", {}).values():
        k = getattr(entry, "kernel", None)
        if k is not None:
            has_par = hasattr(k, "parallel_source")
            out.append("prange" if k.parallel else "serial" if has_par else "serial only")
    return "/".join(out) or "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter timing budget")
    ap.add_argument("--no-torch-compile", action="store_true")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    names = [n for n in NAMES if not args.only or n in args.only.split(",")]
    budget = 0.3 if args.quick else 1.0
    xs = inputs()
    res = {n: {} for n in names}
    first = {n: {} for n in names}
    variant = {}

    # first calls (compilation) one implementation at a time; then, per workload, all the
    # implementations timed round-robin (one call each per round), so that a change of the
    # machine's load during the run hits every column alike
    impls = {n: {} for n in names}
    for n in names:
        x = xs[n]
        t = dg.tensor(x)
        impls[n]["memcpy"] = (lambda a: a.copy(), x, None)
        impls[n]["dg eager"] = (DG[n], t, None)
        cf = dg.compile(DG[n], fullgraph=True)
        impls[n]["dg.compile"] = (cf, t, None)
        impls[n]["numpy"] = (NP[n], x, None)
    try:
        torch, T = torch_fns()
        torch.set_num_threads(os.cpu_count() or 1)
        for n in names:
            tx = torch.from_numpy(xs[n])
            impls[n]["torch"] = (T[n], tx, None)
            if not args.no_torch_compile:
                impls[n]["torch.compile"] = (torch.compile(T[n]), tx, None)
    except ImportError:
        pass
    try:
        jax, J = jax_fns()
        for n in names:
            impls[n]["jax.jit"] = (J[n], jax.device_put(xs[n]), lambda r: r.block_until_ready())
    except ImportError:
        pass
    for n in names:
        for k, (fn, arg, sync) in list(impls[n].items()):
            sync = sync or (lambda r: r)
            t0 = time.perf_counter()
            try:
                sync(fn(arg))
            except Exception as e:  # noqa: BLE001
                print(f"{k} {n}: {type(e).__name__}: {e}", file=sys.stderr)
                del impls[n][k]
                continue
            if k in ("dg.compile", "dg eager", "jax.jit", "torch.compile"):
                first[n][k] = time.perf_counter() - t0
            if k == "dg.compile":
                # tiered start: the first call ran the interpreter while numba compiled in
                # the background; "ready" is when the kernel was
                from dualgraph.compile.kernel import join_background_compiles

                join_background_compiles()
                first[n]["ready"] = time.perf_counter() - t0
            for _ in range(14 if k == "dg.compile" else 3):  # dg.compile: its prange tuning calls
                sync(fn(arg))
        t = dg.tensor(xs[n])
        want = DG[n](t).numpy()
        got = impls[n]["dg.compile"][0](t).numpy()
        ok = np.allclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)
        first[n]["check"] = "ok" if ok else f"MISMATCH {np.nanmax(np.abs(got - want))}"
        # torch's OpenMP threads keep spinning after a call and slow whatever runs next on
        # the other core (jax's pool above all): torch and torch.compile are timed in their own
        # round-robin group; in each round every implementation makes one untimed call first
        times = {k: [] for k in impls[n]}
        groups = [[k for k in impls[n] if not k.startswith("torch")],
                  [k for k in impls[n] if k.startswith("torch")]]
        for group in groups:
            start = time.perf_counter()
            rounds = 0
            while group and rounds < 41 and (rounds < 7 or time.perf_counter() - start < budget * len(group)):
                for k in group:
                    fn, arg, sync = impls[n][k]
                    sync = sync or (lambda r: r)
                    sync(fn(arg))
                    for _ in range(2):
                        t0 = time.perf_counter()
                        sync(fn(arg))
                        times[k].append(time.perf_counter() - t0)
                rounds += 1
        for k, v in times.items():
            res[n][k] = statistics.median(v)
        variant[n] = _variant(impls[n]["dg.compile"][0])
    warm = first_calls_in_new_process(names)
    add = dg.compile(lambda a, b: a + b, fullgraph=True)
    a1, b1 = dg.ones(4), dg.ones(4)
    overhead, _ = bench(lambda _: add(a1, b1), None, budget=budget, max_reps=2001, min_reps=201)

    cols = ["dg.compile", "jax.jit", "torch.compile", "torch", "numpy", "dg eager", "memcpy"]
    print(f"\nload average at the end: {os.getloadavg()}")
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, numpy {np.__version__}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("\nmedian per call (ms), after warm-up\n")
    print("| workload | " + " | ".join(cols) + " | dg.compile / jax.jit |")
    print("|---" * (len(cols) + 2) + "|")
    ratios = []
    for n in names:
        r = res[n]
        cells = [f"{r[c] * 1e3:.3f}" if c in r else "-" for c in cols]
        ratio = r["dg.compile"] / r["jax.jit"] if "jax.jit" in r else None
        if ratio:
            ratios.append(ratio)
        print(f"| {n} | " + " | ".join(cells) + f" | {ratio:.2f} |" if ratio else " - |")
    if ratios:
        gm = float(np.exp(np.mean(np.log(ratios))))
        print(f"\ngeometric mean dg.compile / jax.jit: {gm:.2f}")
    print("dg.compile kernel run at the end (prange variants are timed against serial on the "
          "first calls and again later): " + ", ".join(f"{n} {v}" for n, v in variant.items()))
    for n in ("gelu", "softmax"):
        if n in res:
            print(f"{n}: dg.compile = {res[n]['dg.compile'] / res[n]['memcpy']:.2f}x memcpy"
                  + (f", jax.jit = {res[n]['jax.jit'] / res[n]['memcpy']:.2f}x" if "jax.jit" in res[n] else ""))
    print("\nfirst call (s): dg.compile cold (empty disk cache, this process; in brackets when its "
          "kernel was compiled: the first call runs the interpreter meanwhile) / new process with "
          "warm disk cache; jax.jit; torch.compile; result check")
    print("| workload | dg.compile cold | dg.compile warm-disk new process | jax.jit | torch.compile | check |")
    print("|---|---|---|---|---|---|")
    for n in names:
        f = first[n]
        cell = lambda k: f"{f[k]:.3f}" if k in f else "-"  # noqa: E731
        w = f"{warm[n]:.3f}" if n in warm else "-"
        print(f"| {n} | {cell('dg.compile')} (kernel {cell('ready')}) | {w} | {cell('jax.jit')} | {cell('torch.compile')} | {f['check']} |")
    print(f"\ncall overhead of a cache hit, 2-argument function `a + b` on 4 floats: "
          f"{overhead * 1e6:.1f} us")
    if "import" in warm:
        print(f"\n(new process: `import dualgraph` + benchmark module took {warm['import']:.2f} s, not included above)")


if __name__ == "__main__":
    main()
