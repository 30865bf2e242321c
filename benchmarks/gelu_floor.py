"""gelu (4M float32) in dg.compile against hand-written numba kernels of the same math: the
floor this machine allows, side by side in one process.

    python benchmarks/gelu_floor.py [--rounds 15] [--n 4194304]

Rows: ``x.copy()`` (memcpy, the target's unit), a hand-written serial and prange loop with
the same expression and ``mathlib.tanh_f32`` (into a preallocated output, and into a fresh
``np.empty`` per call), dg.compile (its chosen variant), and jax.jit when installed.  Timed
round-robin (per round: one untimed call, two timed calls each), medians; plus the minor page
faults per call of each (``getrusage``: first touch of a fresh output), and the generated
kernel's loop: whether it is 8-wide (ymm), has calls, and how many instructions it holds.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

import dualgraph as dg  # noqa: E402
from dualgraph.bench import workloads as W  # noqa: E402
from dualgraph.compile.mathlib import FASTMATH, tanh_f32  # noqa: E402

_BODY = """
def gelu_{name}(a, o):
    for i in {rng}(a.size):
        v = a[i]
        t = np.float32(0.7978845834732056) * (v + np.float32(0.044714998453855515) * (v * v * v))
        o[i] = (np.float32(0.5) * v) * (np.float32(1.0) + tanh_f32(t))
    return 0
"""


def hand_kernels():
    out = {}
    for name, rng, par in (("serial", "range", False), ("prange", "prange", True)):
        ns = {"np": np, "prange": prange, "tanh_f32": tanh_f32}
        exec(compile(_BODY.format(name=name, rng=rng), f"<gelu {name}>", "exec"), ns)
        jit = njit(nogil=True, error_model="numpy", parallel=par, fastmath=set(FASTMATH))
        out[name] = jit(ns["gelu_" + name])
    return out


def loop_facts(fn):
    """(8-wide?, calls in the hot loop, instructions in the hot loop) from numba's asm."""
    asm = next(iter(fn.inspect_asm().values()))
    best = None
    for m in re.finditer(r"^(\.LBB\d+_\d+):\n(.*?)^\s+j\w+\s+\1$", asm, re.S | re.M):
        body = [ln for ln in m.group(2).splitlines()
                if ln.strip() and not ln.strip().startswith((".", "#"))]
        if best is None or len(body) > len(best):
            best = body
    best = best or []
    return (any("ymm" in ln for ln in best), sum("call" in ln for ln in best), len(best))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--n", type=int, default=4 * 1024 * 1024)
    args = ap.parse_args()
    x = W.WORKLOADS["gelu"].inputs(quick=False)["x"][: args.n].copy()
    out = np.empty_like(x)
    hk = hand_kernels()
    cf = dg.compile(W.dg_gelu, fullgraph=True)
    t = dg.tensor(x)
    impls = {
        "memcpy x.copy()": lambda: x.copy(),
        "hand serial, prealloc": lambda: hk["serial"](x, out),
        "hand serial, np.empty": lambda: hk["serial"](x, np.empty_like(x)),
        "hand prange, prealloc": lambda: hk["prange"](x, out),
        "hand prange, np.empty": lambda: hk["prange"](x, np.empty_like(x)),
        "dg.compile": lambda: cf(t),
    }
    try:
        import jax

        jf, jx = jax.jit(W.jax_gelu), jax.device_put(x)
        impls["jax.jit"] = lambda: jf(jx).block_until_ready()
    except ImportError:
        pass
    for _ in range(14):  # dg.compile: compilation and its prange tuning
        cf(t)
    want = W.dg_gelu(t).numpy()
    assert np.allclose(cf(t).numpy(), want, rtol=1e-5, atol=1e-6)
    hk["serial"](x, out)
    assert np.allclose(out, want, rtol=1e-5, atol=1e-6)
    faults = {}
    for k, f in impls.items():
        for _ in range(3):
            f()
        a = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            f()
        faults[k] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - a) / 5
    times = {k: [] for k in impls}
    load0 = os.getloadavg()[0]
    for _ in range(args.rounds):
        for k, f in impls.items():
            f()
            for _ in range(2):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    (entry,) = cf._cache.values()
    kern = entry.kernel
    print(f"n = {x.size}, load average {load0:.2f} (start of timing) ... "
          f"{os.getloadavg()[0]:.2f} (end); dg.compile chose the {'prange' if kern.parallel else 'serial'} "
          f"kernel")
    base = statistics.median(times["memcpy x.copy()"])
    print("\n| implementation | median ms | x memcpy | minor faults per call |\n|---|---|---|---|")
    for k, v in times.items():
        m = statistics.median(v)
        print(f"| {k} | {m * 1e3:.3f} | {m / base:.2f} | {faults[k]:.0f} |")
    wide, calls, n_ins = loop_facts(hk["serial"])
    print(f"\nhand serial kernel's hot loop: 8-wide (ymm) {wide}, calls {calls}, {n_ins} instructions")
    print("dg.compile kernel source:\n" + kern.source)


if __name__ == "__main__":
    main()
