"""Compiled gradients through ``while_loop`` and ``cond`` (``dg.compile(dg.grad(f))``).

The backward of a data-dependent loop runs in the same kernel as the forward: the forward
``while`` writes every carry into a growable tape (in place, doubling), a reverse loop reads
it back.  The tape buffers are kept by the kernel and reused by the next call, so calls
with more, then fewer iterations than before must still give eager's gradients.
"""
import numpy as np
import pytest

import dualgraph as dg

RTOL = 2e-5


def _close(got, want, rtol=RTOL):
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=1e-6)


def _kernel(cf):
    (entry,) = [e for e in cf._cache.values() if e.kernel is not None]
    return entry.kernel


def grow_loop(x, w, lim):
    # the trip count depends on the data: the carry grows until its sum reaches ``lim``
    def cond(s):
        return s.sum() < lim

    def body(s):
        return s * w + 0.01 * dg.tanh(s)

    return dg.while_loop(cond, body, x).sum()


def _trips(x, w, lim):
    n, s = 0, x.astype(np.float64)
    while s.sum() < lim:
        s = s * w + 0.01 * np.tanh(s)
        n += 1
    return n


@pytest.fixture(scope="module")
def grow_inputs():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.0, 32).astype(np.float32)
    w = rng.uniform(1.01, 1.03, 32).astype(np.float32)
    return x, w


def test_grad_through_while_growing_then_shrinking_tape(grow_inputs):
    x, w = grow_inputs
    g = dg.compile(dg.grad(grow_loop, argnums=(0, 1)), fullgraph=True)
    eager = dg.grad(grow_loop, argnums=(0, 1))
    # limits half-way between the sums after target-1 and target iterations
    lims = []
    for target in (40, 150, 5, 60):
        sums, v = [], x.astype(np.float64)
        for _ in range(target):
            sums.append(v.sum())
            v = v * w + 0.01 * np.tanh(v)
        lims.append(np.float32((sums[-1] + v.sum()) / 2))
    trips = [_trips(x, w, lim) for lim in lims]
    assert trips == [40, 150, 5, 60]
    first = None
    kept = None
    for lim in lims:
        args = (dg.tensor(x), dg.tensor(w), dg.tensor(lim))
        got = g(*args)
        _close([t.numpy() for t in got], [t.numpy() for t in eager(*args)])
        if first is None:
            first = [t.numpy().copy() for t in got], got
        pool = _kernel(g)._ws_pool
        assert len(pool) == 1  # one set of tape buffers, kept between calls
        if kept is not None and lim == lims[2]:
            # fewer iterations than the last call: the same (grown) buffers, reused
            assert all(a is b for a, b in zip(pool[0], kept))
        kept = list(pool[0])
    assert max(len(b) for b in kept) > trips[1]  # grew geometrically past 150 rows
    # results of earlier calls do not alias the reused buffers
    _close([t.numpy() for t in first[1]], first[0], rtol=0)


def test_grad_through_while_with_cond_inside():
    def f(x, w):
        def cond(s):
            return s[1] < 12

        def body(s):
            v, k = s
            v = dg.cond(v.sum() > 0, lambda v: v * w - 0.5, lambda v: dg.tanh(v) + w, v)
            return v, k + 1

        v, _ = dg.while_loop(cond, body, (x, dg.tensor(0)))
        return (v * v).sum()

    rng = np.random.default_rng(1)
    x = dg.tensor(rng.standard_normal(16).astype(np.float32))
    w = dg.tensor(rng.uniform(0.5, 1.1, 16).astype(np.float32))
    g = dg.compile(dg.grad(f, argnums=(0, 1)), fullgraph=True)
    _close([t.numpy() for t in g(x, w)], [t.numpy() for t in dg.grad(f, argnums=(0, 1))(x, w)])
    x2 = dg.tensor(-np.abs(x.numpy()))  # other branches taken
    _close([t.numpy() for t in g(x2, w)], [t.numpy() for t in dg.grad(f, argnums=(0, 1))(x2, w)])


def test_grad_through_while_inside_cond():
    def f(x, a):
        def newton(a):
            return dg.while_loop(lambda y: dg.max(dg.abs(y * y - a) / a) > 1e-5,
                                 lambda y: 0.5 * (y + a / y), x)

        return dg.cond(a.sum() > 0, newton, lambda a: a * x, a).sum()

    rng = np.random.default_rng(2)
    x = dg.tensor(rng.uniform(1.0, 9.0, 16).astype(np.float32))
    g = dg.compile(dg.grad(f, argnums=(0, 1)), fullgraph=True)
    for a in (rng.uniform(1.0, 100.0, 16), rng.uniform(1.0, 1e4, 16), -rng.uniform(1, 2, 16)):
        a = dg.tensor(a.astype(np.float32))
        _close([t.numpy() for t in g(x, a)], [t.numpy() for t in dg.grad(f, argnums=(0, 1))(x, a)],
               rtol=1e-4)


def test_grad_through_while_kernel_has_one_forward_and_one_reverse_loop(grow_inputs):
    x, w = grow_inputs
    g = dg.compile(dg.grad(grow_loop, argnums=(0, 1)), fullgraph=True)
    args = (dg.tensor(x), dg.tensor(w), dg.tensor(np.float32(100.0)))
    src = g.source(*args)
    # one kernel, no Python per iteration: a forward while and a reverse while, inline
    assert src.count("while True:") == 2
    assert "objmode" not in src
    # the tape is written in place, never copied whole per iteration
    assert ".copy()" not in src


def test_rnn_grad_reads_matmul_operands_as_views():
    T, B, H = 6, 2, 4

    def loss(Wx, Wh, xs):
        h = dg.fori_loop(0, T, lambda t, h: dg.tanh(xs[t] @ Wx + h @ Wh), dg.zeros(B, H))
        return h.sum()

    rng = np.random.default_rng(3)
    Wx, Wh = (dg.tensor((rng.standard_normal((H, H)) / 2).astype(np.float32)) for _ in range(2))
    xs = dg.tensor(rng.standard_normal((T, B, H)).astype(np.float32))
    g = dg.compile(dg.grad(loss, argnums=(0, 1)), fullgraph=True)
    _close([t.numpy() for t in g(Wx, Wh, xs)], [t.numpy() for t in dg.grad(loss, argnums=(0, 1))(Wx, Wh, xs)])
    src = g.source(Wx, Wh, xs)
    assert src.count("while True:") == 2
    rev = src[src.index("while True:", src.index("while True:") + 1):]
    # backward matmuls read the transposed tape row and x[t] as views
    assert ".T," in rev and "dot_add(a2[" in rev
    # the reverse loop does not replay the forward matmuls: 3 products per step, the two
    # weight-gradient products added by BLAS (beta = 1) into their accumulators in place
    assert rev.count("dot_into(") == 1 and rev.count("dot_add(") == 2
    body = rev[:rev.index("\n    for ")]  # up to the copies into the outputs
    # dz only: dh (a product) goes to the loop's spare buffer, the weight gradients' products
    # and sums need none
    assert body.count("empty(") == 1 and "# the loop's spare buffer" in body
    # the same source run by the Python interpreter (NUMBA_DISABLE_JIT semantics)
    (entry,) = [e for e in g._cache.values() if e.kernel is not None]
    py = entry.kernel.run_python([t.numpy() for t in (Wx, Wh, xs)])
    assert py is not None
    _close(py[:2], [t.numpy() for t in dg.grad(loss, argnums=(0, 1))(Wx, Wh, xs)])


def _acc_loop(Wh, xs, acc0):
    # a gradient-accumulator shape of loop written by hand: acc + x[t].T @ h per step
    def body(t, c):
        h, acc = c
        h = dg.tanh(xs[t] @ Wh + h)
        return h, acc + xs[t].T @ h

    h, acc = dg.fori_loop(0, xs.shape[0], body, (dg.zeros(xs.shape[1], Wh.shape[1]), acc0))
    return h.sum() + (acc * acc).sum()


def test_loop_accumulator_takes_products_in_place():
    rng = np.random.default_rng(5)
    Wh = dg.tensor((rng.standard_normal((4, 4)) / 2).astype(np.float32))
    xs = dg.tensor(rng.standard_normal((5, 3, 4)).astype(np.float32))

    def fresh(Wh, xs):  # the accumulator starts as zeros made in the kernel: in place
        return _acc_loop(Wh, xs, dg.zeros(4, 4))

    def from_input(Wh, xs):  # it starts as an input (the caller's array): never written
        return _acc_loop(Wh, xs, Wh * 1.0 if False else Wh)

    for fn, in_place in ((fresh, True), (from_input, False)):
        cf = dg.compile(fn, fullgraph=True)
        want = fn(Wh, xs).numpy()
        before = Wh.numpy().copy()
        np.testing.assert_allclose(cf(Wh, xs).numpy(), want, rtol=1e-5)
        np.testing.assert_allclose(cf(Wh, xs).numpy(), want, rtol=1e-5)  # buffers per call
        assert np.array_equal(Wh.numpy(), before)
        assert ("dot_add(" in cf.source(Wh, xs)) == in_place
        g = dg.compile(dg.grad(fn, argnums=(0,)), fullgraph=True)
        _close(g(Wh, xs), dg.grad(fn, argnums=(0,))(Wh, xs))
