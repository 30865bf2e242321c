"""Golden tests of the generated source: gelu is one loop with no temporaries, softmax
fuses its passes under one row loop (max; exp-and-sum, the exps stored into the output row;
scale in place; row buffers allocated once outside a serial row loop), and a while loop holding a
cond is a Python `while` holding an `if` in the same function, its carry written into two
buffers in turn.  Small sizes: serial loops.

If the code generator changes on purpose, update the text (print ``cf.source(x)``)."""
import numpy as np

import dualgraph as dg
from dualgraph.compile.codegen import generate
from dualgraph.static import optimize

GELU = """\
def kernel(a0, o0):
    for i1 in range(1000):
        t2 = (np.float32(0.5) * a0[i1])
        t3 = (a0[i1] * a0[i1] * a0[i1])
        t4 = (np.float32(0.044714998453855515) * t3)
        t5 = (a0[i1] + t4)
        t6 = (np.float32(0.7978845834732056) * t5)
        t7 = tanh_f32(t6)
        t8 = (np.float32(1.0) + t7)
        o0[i1] = (t2 * t8)
    return 0
"""

SOFTMAX = """\
def kernel(a0, o0):
    v1 = empty((64, 1), np.float32)
    v2 = empty((64, 1), np.float32)
    v3 = empty((1,), np.float32)
    for i4 in range(64):
        v5 = o0[i4]
        acc6 = np.float32(-np.inf)
        for i7 in range(32):
            acc6 = fmax(acc6, a0[i4, i7])
        v1[i4, 0] = acc6
        v3[0] = v1[i4, 0]
        acc8 = 0.0
        for i9 in range(32):
            t10 = (a0[i4, i9] - v3[0])
            t11 = exp_f32(t10)
            v5[i9] = t11
            acc8 += np.float64(t11)
        v2[i4, 0] = np.float32(acc8)
        for i12 in range(32):
            o0[i4, i12] = np.float32(np.float64(v5[i12]) * (1.0 / np.float64(v2[i4, 0])))
    return 0
"""

SEED_LOOP = """\
def kernel(a0, c0, o0):
    v1 = c0
    v2 = a0
    pp3 = empty((1000,), np.float32)
    pp4 = empty((1000,), np.float32)
    while True:
        v5 = (v1 < 100)
        if not v5:
            break
        dst6 = pp4 if v2.ctypes.data == pp3.ctypes.data else pp3
        v7 = (v1 + 1)
        acc8 = 0.0
        for cb9 in range(0, 1000, 256):
            acc10 = np.float32(0.0)
            for i11 in range(cb9, imin(cb9 + 256, 1000)):
                acc10 += v2[i11]
            acc8 += np.float64(acc10)
        v12 = np.float32(acc8)
        v13 = (v12 > np.float32(0.0))
        if v13:
            v15 = dst6  # the loop's spare buffer
            for i16 in range(1000):
                v15[i16] = (v2[i16] * np.float32(2.0))
            v14 = v15
        else:
            v17 = dst6  # the loop's spare buffer
            for i18 in range(1000):
                v17[i18] = (v2[i18] + np.float32(1.0))
            v14 = v17
        v1, v2 = v7, v14
    for i19 in range(1000):
        o0[i19] = v2[i19]
    return 0
"""


def _body(fn, x):
    src, _, _ = generate(optimize(dg.trace(fn, x)))
    return src[src.index("def kernel"):]


def gelu(x):
    return 0.5 * x * (1 + dg.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


def seed_loop(x):
    return dg.fori_loop(0, 100, lambda i, r: dg.cond(r.sum() > 0, lambda r: r * 2, lambda r: r + 1, r), x)


def test_gelu_is_one_loop_without_temporaries():
    body = _body(gelu, dg.ones(1000))
    assert body == GELU
    assert body.count("for ") == 1 and "empty(" not in body


def test_softmax_fused_passes():
    body = _body(lambda x: dg.softmax(x, 1), dg.ones(64, 32))
    assert body == SOFTMAX
    assert body.count("for ") == 4  # rows: max; exp-and-sum (exps stored in the output row); scale
    assert "v5 = o0[i4]" in body and body.count(" = empty(") == 3  # no per-row allocation


def test_while_holding_cond():
    body = _body(seed_loop, dg.ones(1000))
    assert body == SEED_LOOP
    assert "while True:" in body and "if v13:" in body
    # the sum of 1000 float32: float32 partials of 256 elements added in float64
    assert "acc10 += v2[i11]" in body and "acc8 += np.float64(acc10)" in body
    # the carry's next value goes into whichever of two buffers made before the loop does
    # not hold the current one: no allocation per iteration
    assert body.count("empty(") == 2 and body.index("empty(") < body.index("while True:")


def test_golden_programs_run():
    x = dg.tensor(np.linspace(-2, 2, 1000, dtype=np.float32))
    m = dg.tensor(np.linspace(-2, 2, 64 * 32, dtype=np.float32).reshape(64, 32))
    for f, a in ((gelu, x), (lambda t: dg.softmax(t, 1), m), (seed_loop, x - 0.3)):
        got = dg.compile(f, fullgraph=True)(a).numpy()
        np.testing.assert_allclose(got, f(a).numpy(), rtol=1e-5, atol=1e-6)


def _three_stages(x):
    e = dg.exp(x)
    w = dg.tanh(e * e.sum() * 0.001 + e.max())
    u = dg.exp(w * w.sum() * 0.001 + w.min())
    return u * u.sum() * 0.001 + u.max()


def test_dead_buffer_is_reused():
    x = dg.tensor(np.linspace(-1, 1, 1000, dtype=np.float32).reshape(10, 100))
    body = _body(_three_stages, x)
    # exp(x) is dead once tanh(...) is stored: exp(w ...) is written into its buffer
    assert body.count(" = empty(") == 2 and body.count("# a dead buffer, reused") == 1
    # same-shape elementwise work and full reductions of 2-d arrays: flat loops over .flat
    # (each of the three float32 sums in chunks of 256: two loops)
    assert body.count("for ") == 13 and body.count("in range(0, 1000, 256):") == 3 and "v1.flat[i2] = exp_f32(a0.flat[i2])" in body
    got = dg.compile(_three_stages, fullgraph=True)(x).numpy()
    np.testing.assert_allclose(got, _three_stages(x).numpy(), rtol=1e-5, atol=1e-6)


def test_full_reduction_per_block_partials():
    x = dg.tensor(np.random.default_rng(0).standard_normal(40000).astype(np.float32))
    f = lambda t: (t * t).sum() + dg.max(dg.abs(t))  # noqa: E731
    body = _body(f, x)
    assert "p2 = empty(5, np.float64)" in body and "imin(i4 * 8192 + 8192, 40000)" in body
    cf = dg.compile(f, fullgraph=True)
    got = [float(cf(x).numpy()) for _ in range(3)]
    assert len(set(got)) == 1  # deterministic
    np.testing.assert_allclose(got[0], float(f(x).numpy()), rtol=1e-5)
