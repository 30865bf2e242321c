"""Buffers of ``while`` carries (compile/buffers.py): a carry whose next value is computed
afresh is written into one of two buffers made before the loop (the one not holding the
current value), and never when a body result may share the current value's buffer (a
pass-through, a view, the old value kept in another carry).  Each case runs 0 to 5 trips,
through numba and as Python source, against eager."""
import numpy as np
import pytest

import dualgraph as dg

SPARE = "# the loop's spare buffer"


def _loop(body, n_carry=1):
    def f(x, n):
        def cond(c):
            return c[0] < n

        def step(c):
            i, *rest = c
            return (i + 1, *body(*rest))

        out = dg.while_loop(cond, step, (dg.tensor(np.int64(0)), *([x] * n_carry)))
        return out[1:] if n_carry > 1 else out[1]

    return f


CASES = {
    # name: (body, carries, spare buffer expected)
    "fresh": (lambda r: (r * 2 + 1,), 1, True),
    "cond computes both": (lambda r: (dg.cond(r.sum() > 0, lambda t: t * 0.5, lambda t: t + 3, r),), 1, True),
    # a branch passes its input through: the cond's result may be the current buffer
    "cond passes through": (lambda r: (dg.cond(r.sum() > 0, lambda t: t * 0.5, lambda t: t, r),), 1, False),
    # the old value lives on in the second carry
    "old value kept": (lambda a, b: (a * 2 - 1, a), 2, False),
    "swap": (lambda a, b: (b, a), 2, False),
    "both fresh, crossed": (lambda a, b: (b * 2 - 1, a + 1), 2, True),
    # a view of the current value returned
    "transposed view": (lambda r: (dg.transpose(r, 0, 1) + 0 * r,), 1, True),
    "reshape of it": (lambda r: (dg.reshape(r, r.shape),), 1, False),
}


@pytest.mark.parametrize("python", [False, True], ids=["numba", "python"])
@pytest.mark.parametrize("name", list(CASES))
def test_carry_buffers_match_eager(name, python):
    body, nc, spare = CASES[name]
    f = _loop(body, nc)
    x = dg.tensor(np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4))
    cf = dg.compile(f, fullgraph=True)
    src = cf.source(x, dg.tensor(np.int64(3)))
    assert (SPARE in src) == spare, src
    for n in (0, 1, 2, 3, 5):
        nt = dg.tensor(np.int64(n))
        want = f(x, nt)
        want = [w.numpy() for w in (want if nc > 1 else [want])]
        if python:
            (entry,) = [e for e in cf._cache.values() if e.kernel is not None]
            got = entry.kernel.run_python([x.numpy(), nt.numpy()])
        else:
            got = cf(x, nt)
            got = [g.numpy() for g in (got if nc > 1 else [got])]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    assert np.array_equal(x.numpy(), np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4))
