"""Kernel code that numba compiles cheaply (branch coldcall): allocation and int min/max as
intrinsics (compile/inline_ops.py), flat loops over same-shape C arrays, zero fills as
zeroed allocations."""
import numpy as np
from numba import njit

import dualgraph as dg
from dualgraph.compile.codegen import generate
from dualgraph.compile.inline_ops import PY_TWINS, empty, imax, imin, zeros
from dualgraph.static import optimize


@njit
def _alloc(n):
    a = empty((n, 3), np.float32)
    b = zeros(imax(n, 4), np.float64)
    c = zeros((2, imin(n, 1), 5), np.int64)
    d = empty(7, np.bool_)
    a[:] = 1.5
    return a, b, c, d


def test_alloc_and_minmax_intrinsics():
    for n in (0, 2, 6):
        a, b, c, d = _alloc(n)
        assert a.shape == (n, 3) and a.dtype == np.float32 and a.flags.c_contiguous
        assert np.all(a == 1.5)
        assert b.shape == (max(n, 4),) and b.dtype == np.float64 and not b.any()
        assert c.shape == (2, min(n, 1), 5) and c.dtype == np.int64 and not c.any()
        assert d.shape == (7,) and d.dtype == np.bool_
    assert PY_TWINS["imax"](3, 5) == 5 and PY_TWINS["imin"](3, 5) == 3


def _src(fn, *xs):
    src, _, _ = generate(optimize(dg.trace(fn, *xs)))
    return src[src.index("def kernel"):]


def _check(fn, *xs):
    got = dg.compile(fn, fullgraph=True)(*xs)
    want = fn(*xs)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)


def test_same_shape_work_is_one_flat_loop():
    r = np.random.default_rng(0)
    x = dg.tensor(r.standard_normal((3, 4, 5)).astype(np.float32))
    y = dg.tensor(r.standard_normal((3, 4, 5)).astype(np.float32))
    f = lambda a, b: (a * b + 1.0, (a - b).sum())  # noqa: E731
    src = _src(f, x, y)
    # the map (into the output), the reduction: one loop each, no nest
    assert src.count("for ") == 2 and "range(60)" in src and ".flat[" in src, src
    _check(f, x, y)


def test_broadcast_keeps_the_nest():
    r = np.random.default_rng(1)
    x = dg.tensor(r.standard_normal((6, 5)).astype(np.float32))
    b = dg.tensor(r.standard_normal(5).astype(np.float32))
    f = lambda a, c: dg.relu(a + c)  # noqa: E731
    src = _src(f, x, b)
    assert src.count("for ") == 2 and ".flat[" not in src, src  # bias read at [j]
    _check(f, x, b)


def test_zero_fill_is_a_zeroed_allocation():
    r = np.random.default_rng(2)
    x = dg.tensor(r.standard_normal((8, 3)).astype(np.float32))
    y = dg.tensor(r.integers(0, 3, 8).astype(np.int64))

    def f(a, t):
        return dg.value_and_grad(lambda z: dg.nn.functional.cross_entropy(z, t))(a)

    src = _src(f, x, y)
    assert "zeros((8, 3), np.float32)" in src, src  # the scatter's base: no fill loop
    _check(f, x, y)
