"""Large matmuls of a kernel's ``prange`` variant (compile/blas.py: one block of output rows
per numba thread, one gemm call per block, a transposed operand passed to BLAS with its
transpose flag) and column reductions (``x.sum(0)`` accumulated row by row, in memory
order): compiled == eager, gradients included.  Few kernels: numba compile time counts."""
import numpy as np
import pytest

import dualgraph as dg
from dualgraph.compile.blas import gemm_block, gemm_split, should_split

F = dg.nn.functional


def _views(dt):
    """(a, b) pairs covering each operand layout gemm_block handles at run time: row-major
    and column-major with a leading dimension larger than the shape (typed 'A' by numba,
    so one compilation covers them all), and a non-unit stride (the np.dot fallback)."""
    r = np.random.default_rng(0)
    m, k, n = 64, 24, 40
    pad = lambda s: r.standard_normal(s).astype(dt)  # noqa: E731
    a_n = pad((m + 3, k + 5))[:m, :k]      # row-major, lda = k + 5
    a_t = pad((k + 7, m + 2))[:k, :m].T    # column-major, ld = m + 2
    b_n = pad((k + 1, n + 9))[:k, :n]
    b_t = pad((n + 4, k + 3))[:n, :k].T
    a_s = pad((m, 2 * k))[:, ::2]          # stride 2 on both axes' inner: no BLAS layout
    return [(a_n, b_n), (a_t, b_n), (a_n, b_t), (a_t, b_t), (a_s, b_n), (a_s, b_t)]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_gemm_block_every_layout(dt):
    alpha, beta = np.ones(1, dt), np.zeros(1, dt)
    for a, b in _views(dt):
        assert not a.flags.c_contiguous or not b.flags.c_contiguous
        want = a.astype(np.float64) @ b.astype(np.float64)
        out = np.full((a.shape[0], b.shape[1]), np.nan, dt)
        for r0, r1, c0, c1 in ((0, 17, 0, 40), (17, 64, 0, 23), (17, 64, 23, 40)):
            assert gemm_block(a, b, out, r0, r1, c0, c1, alpha, beta) == 0  # row/column blocks
        np.testing.assert_allclose(out, want, rtol=1e-5 if dt == np.float32 else 1e-12, atol=1e-5)


def test_gemm_split_whole_product():
    a, b = _views(np.float32)[1]  # a (64, 24) smaller than b (24, 40): column blocks
    for a, b in ((a, b), (b.T, a.T)):  # and (40, 24) @ (24, 64): row blocks
        out = np.full((a.shape[0], b.shape[1]), np.nan, np.float32)
        assert gemm_split(a, b, out) == 0
        np.testing.assert_allclose(out, np.dot(a, b), rtol=1e-5, atol=1e-5)
    big = np.full((a.shape[0], 2 * b.shape[1]), np.nan, np.float32)
    out = big[:, ::2]  # a non-contiguous output: the np.dot fallback
    assert gemm_split(a, b, out) == 0
    np.testing.assert_allclose(out, np.dot(a, b), rtol=1e-5, atol=1e-5)
    assert np.isnan(big[:, 1::2]).all()


def test_should_split_sizes():
    assert should_split(128, 512, 784) and should_split(784, 512, 128)
    assert not should_split(128, 10, 512)  # the mlp's small products stay np.dot
    assert not should_split(8, 64, 64)     # the rnn's
    assert should_split(16, 4096, 4096)  # column blocks
    assert not should_split(4096, 1, 4096) and not should_split(20, 20, 20000)


def _loss(w1, b1, w2, x, y):
    return F.cross_entropy(dg.relu(x @ w1 + b1) @ w2, y)


def _step(w1, b1, w2, x, y):
    loss, g = dg.value_and_grad(_loss, argnums=(0, 1, 2))(w1, b1, w2, x, y)
    return (loss,) + g


def test_split_matmuls_compiled_equal_eager(monkeypatch):
    """x @ w1 (64x256 @ 256x256) and the weight gradient x.T @ dh (256x64 @ 64x256) are
    split in the prange variant; loss and gradients == eager's."""
    monkeypatch.setenv("DUALGRAPH_PARALLEL", "1")
    r = np.random.default_rng(1)
    f = np.float32
    w1 = (r.standard_normal((256, 256)) / 16).astype(f)
    b1 = (r.standard_normal(256) / 4).astype(f)
    w2 = (r.standard_normal((256, 10)) / 16).astype(f)
    x = r.standard_normal((64, 256)).astype(f)
    y = r.integers(0, 10, 64)
    args = [dg.tensor(v) for v in (w1, b1, w2, x, y)]
    step = dg.compile(_step)
    src = step.source(*args)
    calls = [line for line in src.splitlines() if "gemm_split(" in line]
    assert len(calls) == 2, src  # forward x @ w1, backward x.T @ dh (x.T: a transposed view)
    assert ".T, " in calls[1], calls
    got = [np.asarray(t.numpy()) for t in step(*args)]
    ps = [dg.tensor(v, requires_grad=True) for v in (w1, b1, w2)]
    loss = _loss(*ps, dg.tensor(x), dg.tensor(y))
    loss.backward()
    want = [loss.detach().numpy()] + [p.grad.numpy() for p in ps]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_column_reductions_same_bits_as_eager(monkeypatch):
    """sum/max/min over axis 0 of a 2-d operand (a fused producer read in row order), NaN
    and -0.0 in some columns, keepdim, an int operand: compiled == eager."""
    monkeypatch.setenv("DUALGRAPH_PARALLEL", "0")

    def f(x, n):
        z = x * 2.0 - 1.0
        return (z.sum(0), z.max(0, keepdim=True).values, (-x).min(0).values, n.sum(0),
                dg.relu(z).sum(0, keepdim=True))

    r = np.random.default_rng(2)
    x = r.standard_normal((37, 19)).astype(np.float32)
    x[5, 3] = np.nan
    x[:, 7] = 0.5  # z == 0.0 exactly; -x: -0.5
    x[:, 8] = -0.0
    n = r.integers(-50, 50, (37, 19))
    cf = dg.compile(f)
    src = cf.source(dg.tensor(x), dg.tensor(n))
    got = [np.asarray(t.numpy()) for t in cf(dg.tensor(x), dg.tensor(n))]
    want = [np.asarray(t.numpy()) for t in f(dg.tensor(x), dg.tensor(n))]
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape
        if k in (1, 2, 3):  # max, min (NaN, signed zeros) and the int sum: the same bits
            np.testing.assert_array_equal(g.view(np.uint8), w.view(np.uint8))
        else:  # float sums: float64 accumulators against numpy's pairwise float32 sum
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # one accumulator row each (sums: zeroed by the allocation)
    assert "for i" in src and src.count("empty(19,") + src.count("zeros(19,") >= 4, src
