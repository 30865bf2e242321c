"""What a set ContextVar costs numpy: a 16-element ``np.add`` timed in contexts that differ
only in which ContextVars are set (one process, the contexts alternated, minimum per call).

CPython caches a ContextVar lookup only when the variable is found; numpy looks up its
errstate variable on every ufunc call and its allocator variable on every array it
allocates, and neither is set unless the program sets it.  So once any variable is set in
a context (dualgraph's, on entering ``no_grad``), both lookups walk the context's map on
every call.  ``ops.context._adopt`` sets numpy's two variables to their current values in
each context that sets ours (the ``both`` rows).

    python benchmarks/eager_overhead_ctxvars.py [--rounds 400]
"""
from __future__ import annotations

import argparse
import contextvars
import gc
import os
import sys
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=400)
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this tree
    from dualgraph.ops.context import _numpy_vars

    nvars = _numpy_vars()
    print("numpy's per-call ContextVars found:", [v.name for v in nvars])
    other = contextvars.ContextVar("other")
    a = np.full(16, 0.5, np.float32)
    reps = range(2000)

    def body():
        t0 = time.perf_counter()
        for _ in reps:
            np.add(a, a)
        return time.perf_counter() - t0

    def made(*vs):
        def f():
            for v in vs:
                v.set(v.get() if v is not other else 1)
            return contextvars.copy_context()
        return contextvars.Context().run(f)

    ctxs = {
        "no context entered": None,
        "empty context": contextvars.Context(),
        "another var set": made(other),
        "another var + errstate var set": made(other, *nvars[:1]),
        "another var + both numpy vars set": made(other, *nvars),
    }
    best = dict.fromkeys(ctxs, float("inf"))
    gc.disable()
    for _ in range(args.rounds):
        for k, c in ctxs.items():
            best[k] = min(best[k], body() if c is None else c.run(body))
    gc.enable()
    base = best["no context entered"]
    print(f"np.add on 16 float32, ns per call (min over {args.rounds} rounds of {len(reps)})")
    for k, v in best.items():
        print(f"{k:<36}{v / len(reps) * 1e9:>8.1f}{v / base:>8.3f}")


if __name__ == "__main__":
    main()
