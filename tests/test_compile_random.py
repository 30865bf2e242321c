"""The static tests' random programs (cond, while, fori, reductions, indexing, closures):
dg.compile == eager.  Programs are batched into one compiled function (one numba
compilation per batch); more batches run as Python (the generated source, no numba)."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dualgraph as dg
from tests.test_random_programs import inputs_for, program_fn, programs

COMMON = dict(deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _batch(progs):
    fns = [program_fn(stmts, "dg") for _, stmts, _ in progs]
    sizes = [len(in_shapes) for in_shapes, _, _ in progs]

    def flat(o):  # a program may return a named tuple (max with dim): its fields
        return list(o) if isinstance(o, tuple) else [o]

    def f(*xs):
        out, k = [], 0
        for fn, n in zip(fns, sizes):
            out += flat(fn(*xs[k:k + n]))
            k += n
        return out

    xs = [x for in_shapes, _, seed in progs for x in inputs_for(in_shapes, seed)]
    want, k = [], 0
    for fn, n in zip(fns, sizes):
        want += [t.numpy() for t in flat(fn(*xs[k:k + n]))]
        k += n
    return f, xs, want


def _check(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, i
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"program {i}")


@settings(max_examples=1, **COMMON)
@given(st.lists(programs(), min_size=6, max_size=6))
def test_random_programs_compiled(progs):
    f, xs, want = _batch(progs)
    _check([t.numpy() for t in dg.compile(f, fullgraph=True)(*xs)], want)


@settings(max_examples=8, **COMMON)
@given(st.lists(programs(), min_size=6, max_size=6))
def test_random_programs_generated_source_as_python(progs):
    f, xs, want = _batch(progs)
    cf = dg.compile(f, fullgraph=True)
    cf.source(*xs)
    (entry,) = cf._cache.values()
    _check(entry.kernel.run_python([x.numpy() for x in xs]), want)
