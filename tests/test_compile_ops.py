"""dg.compile == eager over the op table, values and errors; every lowering also run as
plain Python (the generated source under NUMBA_DISABLE_JIT semantics).

Samples are batched: one compiled function per chunk of samples, so numba compiles a few
kernels rather than hundreds (compile time counts toward the suite's budget)."""
import numpy as np
import pytest

import dualgraph as dg
from dualgraph.compile.api import CompiledFunction
from dualgraph.ops.registry import PRIMITIVES
from tests.op_table import BOOL, F32, F64, I64, OPS, to_tensors

CHUNK = 40


def test_every_primitive_has_a_lowering():
    """Each declaration gives its lowering (no side table fills them in later): with the
    ops and static layers imported alone (no compiler, no numba), every entry of the
    registry has one, ``cond``, ``while`` and ``const`` included."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = f"""
import sys, types
pkg = types.ModuleType("dualgraph")
pkg.__path__ = [{os.path.join(root, 'dualgraph')!r}]
sys.modules["dualgraph"] = pkg
import dualgraph.static
from dualgraph.ops.registry import PRIMITIVES
assert "numba" not in sys.modules and "dualgraph.compile" not in sys.modules
print(" ".join(n for n, p in PRIMITIVES.items() if p.lowering is None))
print(" ".join(PRIMITIVES[n].lowering.kind for n in ("cond", "while", "const")))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    missing, kinds = r.stdout.split("\n")[:2]
    assert missing == "", f"primitives without a lowering: {missing}"
    assert kinds == "emitter emitter emitter"
    missing = [name for name, p in PRIMITIVES.items() if p.lowering is None]  # with everything loaded
    assert not missing, f"primitives without a lowering: {missing}"


def _flat(out):
    if isinstance(out, tuple):  # named tuples (max with dim) included
        return list(out)
    return [out]


def _cases(dtype):
    """(label, info, sample, eager outputs) for samples eager evaluates, and
    (label, info, sample, exception) for those it rejects."""
    ok, bad = [], []
    for info in OPS:
        if dtype not in info.dtypes:
            continue
        for k, s in enumerate(info.samples(dtype)):
            label = f"{info.name}[{s.desc or k}]"
            try:
                out = _flat(info.op(*to_tensors(s.args), **s.kwargs))
            except Exception as e:  # noqa: BLE001
                bad.append((label, info, s, e))
                continue
            ok.append((label, info, s, out))
    return ok, bad


def _batch_fn(items):
    def f(*arrays):
        it = iter(arrays)
        outs = []
        for _, info, s, _ in items:
            args = [next(it) if isinstance(a, np.ndarray) else a for a in s.args]
            outs.append(_flat(info.op(*args, **s.kwargs)))
        return outs

    return f


def _check(label, got, want, info, sample):
    assert len(got) == len(want), label
    for g, w in zip(got, want):
        g, w = np.asarray(g), w.numpy()
        assert g.dtype == w.dtype, f"{label}: dtype {g.dtype} != eager {w.dtype}"
        assert g.shape == w.shape, f"{label}: shape {g.shape} != eager {w.shape}"
        if w.dtype.kind == "f":
            # float32: the op table's tolerance (1e-5); float64: 1e-12
            tol = {"rtol": 1e-5, "atol": 1e-5} if w.dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
            np.testing.assert_allclose(g, w, equal_nan=True, err_msg=label, **tol)
            assert np.array_equal(np.isnan(g), np.isnan(w)), label
        else:
            np.testing.assert_array_equal(g, w, err_msg=label)


DTYPES = [F32, F64, I64, BOOL]


def _arrays(items):
    return [dg.tensor(a) for _, _, s, _ in items for a in s.args if isinstance(a, np.ndarray)]


def _run_batches(items, chunk, numba=True, python=True):
    for start in range(0, len(items), chunk):
        part = items[start:start + chunk]
        arrays = _arrays(part)
        cf = dg.compile(_batch_fn(part), fullgraph=True)
        if numba:
            got = cf(*arrays)
            assert cf.cache_info()["traces"] == 1
            for (label, info, s, want), g in zip(part, got):
                _check(label, [x.numpy() for x in g], want, info, s)
        if python:
            cf.source(*arrays)
            (entry,) = cf._cache.values()
            py = entry.kernel.run_python([a.numpy() for a in arrays])
            assert py is not None
            k = 0
            for label, info, s, want in part:
                _check(label + " (python)", py[k:k + len(want)], want, info, s)
                k += len(want)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_op_table_generated_source_as_python(dtype):
    """Every sample of every entry: the generated source run by Python (no numba
    compilation: fast), one kernel for the whole table."""
    ok, _ = _cases(dtype)
    assert ok
    _run_batches(ok, len(ok), numba=False)


@pytest.mark.parametrize("dtype", [F32] + [pytest.param(d, marks=pytest.mark.slow) for d in DTYPES[1:]],
                         ids=lambda d: d.name)
def test_op_table_compiled_equals_eager(dtype):
    """The first sample of every entry through numba, float32 (the other samples and dtypes
    run as Python above, and through numba with --runslow: numba compile time counts)."""
    ok, _ = _cases(dtype)
    first, seen = [], set()
    for item in ok:
        if item[1].name not in seen:
            seen.add(item[1].name)
            first.append(item)
    _run_batches(first, 30, python=False)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_op_table_compiled_equals_eager_all_samples(dtype):
    ok, _ = _cases(dtype)
    _run_batches(ok, CHUNK, python=False)


@pytest.mark.parametrize("dtype", [F32, I64], ids=lambda d: d.name)
def test_op_table_errors_as_eager(dtype):
    _, bad = _cases(dtype)
    for label, info, s, err in bad:
        cf = dg.compile(lambda *a, info=info, s=s: info.op(*a, **s.kwargs))
        args = to_tensors(s.args)
        with pytest.raises(type(err)) as e:
            cf(*args)
        assert str(e.value) == str(err), label


def test_runtime_index_error_is_eager_error():
    idx = dg.tensor(np.array([0, 5]))

    def f(x, i):
        return x[i] * 2

    x = dg.ones(4)
    with pytest.raises(IndexError) as eager:
        f(x, idx)
    cf = dg.compile(f, fullgraph=True)
    with pytest.raises(IndexError) as comp:
        cf(x, idx)
    assert str(comp.value) == str(eager.value)
    # in range: the compiled kernel runs (no fallback)
    np.testing.assert_array_equal(cf(x, dg.tensor(np.array([3, -1]))).numpy(), [2, 2])
    assert cf.cache_info()["traces"] == 1


def test_shape_mismatch_raises_eager_error():
    def f(a, b):
        return a + b

    cf = dg.compile(f)
    with pytest.raises(RuntimeError) as comp:
        cf(dg.ones(3), dg.ones(4))
    with pytest.raises(RuntimeError) as eager:
        f(dg.ones(3), dg.ones(4))
    assert str(comp.value) == str(eager.value)


def test_special_values_and_promotion():
    x = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, 3e38, -2.0], np.float32)

    def f(x, i, b):
        return (dg.maximum(x, 0.0), dg.minimum(x, 1.0), x.max(), x.min(), x * 2.5, x / 0.0,
                i * 1.5, i + x, i / 2, b + b, b * b, dg.sqrt(x), -x, dg.abs(x), x > 0.1,
                dg.where(b, i, x), (i * 3) // 1 if False else i ** 2, dg.sign(x))

    i = np.arange(-4, 4, dtype=np.int64)
    b = np.array([True, False] * 4)
    args = (dg.tensor(x), dg.tensor(i), dg.tensor(b))
    want = f(*args)
    got = dg.compile(f, fullgraph=True)(*args)
    for k, (g, w) in enumerate(zip(got, want)):
        _check(f"out {k}", [g.numpy()], [w], None, None)


def test_nan_max_reduction_rows():
    x = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
    x[1, 3] = np.nan
    x[4, 0] = np.nan
    def f(t):
        return t.max(1)[0], t.min(0)[0], dg.softmax(t, 1), t.argmax(1), t.argmin(), t.max(), t.sum(0)

    got = dg.compile(f, fullgraph=True)(dg.tensor(x))
    for g, w in zip(got, f(dg.tensor(x))):
        g, w = g.numpy(), w.numpy()
        if g.dtype.kind == "f":
            assert np.array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_allclose(g, w, rtol=1e-6, equal_nan=True)


def test_compiled_function_type():
    assert isinstance(dg.compile(lambda x: x), CompiledFunction)


@pytest.mark.parametrize("dt", [np.int8, np.int16, np.int32, np.int64, np.uint8], ids=lambda d: np.dtype(d).name)
def test_integer_fmod_through_numba(dt):
    # numba's own np.fmod of signed integers is wrong for negative operands (fmod(-7, 3)
    # gave 0): the lowering computes C's remainder itself; the op table checks integer
    # dtypes through numba only with --runslow, so this case runs by default
    info = np.iinfo(dt)
    a = np.array([7, -7, 7, -7, 5, -9, 3, 100, info.min, info.min, info.max, 0]).clip(info.min, info.max).astype(dt)
    b = np.array([3, 3, -3, -3, 5, 4, 1, 7, -1, 3, -2, -5]).clip(info.min, info.max).astype(dt)
    b = np.where(b == 0, 1, b).astype(dt)
    with np.errstate(all="ignore"):
        want = np.fmod(a, b)
    cf = dg.compile(lambda x, y: dg.fmod(x, y), fullgraph=True)
    got = cf(dg.tensor(a), dg.tensor(b)).numpy()
    assert got.dtype == want.dtype and np.array_equal(got, want)
    (entry,) = [e for e in cf._cache.values() if e.kernel is not None]
    assert np.array_equal(entry.kernel.run_python([a, b])[0], want)


@pytest.mark.parametrize("dt", [np.int8, np.uint8, np.int32], ids=lambda d: np.dtype(d).name)
def test_integer_literals_out_of_the_dtypes_range(dt):
    # a Python int the tensor's dtype cannot hold was cast to it (np.int8(300) == 44), so
    # int8 `x < 300` came out False for some x: comparisons now use the literal as it is
    # (numpy's exact comparison), and arithmetic is refused, as eager code raises there
    info = np.iinfo(dt)
    x = np.array([info.min, -1 if info.min < 0 else 1, 0, 5, info.max], dt)
    big, small = info.max + 172, info.min - 1000

    def fn(x):
        return (x < big, x == big, x >= big, big > x, x > small, x != small, x <= small,
                dg.clamp(x, small, big), dg.clamp(x, small, 3))

    cf = dg.compile(fn, fullgraph=True)
    got, want = cf(dg.tensor(x)), fn(dg.tensor(x))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and np.array_equal(g.numpy(), w.numpy())
    assert got[0].numpy().all() and not got[1].numpy().any() and got[4].numpy().all()
    (entry,) = [e for e in cf._cache.values() if e.kernel is not None]
    for g, w in zip(entry.kernel.run_python([x]), want):
        assert np.array_equal(g, w.numpy())
    with pytest.raises(OverflowError):  # eagerly
        dg.tensor(x) + big
    with pytest.raises(dg.CompileError, match=f"out of bounds for {np.dtype(dt).name}.*OverflowError"):
        dg.compile(lambda x: x + big, fullgraph=True)(dg.tensor(x))


@pytest.mark.parametrize("dt", [np.int8, np.int32, np.int64], ids=lambda d: np.dtype(d).name)
def test_integer_floor_divide_and_remainder_by_minus_one(dt):
    # numba's INT_MIN // -1 gave 0 (numpy wraps to INT_MIN) and int64 INT_MIN % -1 killed
    # the process (SIGFPE); a divisor of -1 is now handled before numba's division
    info = np.iinfo(dt)
    a = np.array([info.min, info.min, 7, -7, info.max, info.min, -9], dt)
    b = np.array([-1, 3, -1, 2, -1, -2, -4], dt)
    with np.errstate(all="ignore"):
        want = (a // b, a % b, a // -1, a % -1)
    cf = dg.compile(lambda x, y: (x // y, x % y, x // -1, x % -1), fullgraph=True)
    got = cf(dg.tensor(a), dg.tensor(b))
    (entry,) = [e for e in cf._cache.values() if e.kernel is not None]
    with np.errstate(all="ignore"):
        py = entry.kernel.run_python([a, b])
    for g, p, w in zip(got, py, want):
        assert g.numpy().dtype == w.dtype and np.array_equal(g.numpy(), w) and np.array_equal(p, w)


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_division_by_square_roots_and_signed_zeros_as_eager(dt):
    # with `arcp` LLVM made float32 c / sqrt(x) an approximate rsqrt (NaN at 0 and inf, -inf
    # for subnormals); with `nsz` it folded x + 0.0 to x (1 / (-0.0 + 0.0) gave -inf): the
    # kernels are compiled without both now
    v = np.array([np.inf, 0.0, -0.0, 0.5, 4.0, 1e-42, 1e30, 100.0, -1.0, np.nan, 3e-39], dt)

    def fn(x):
        return (x.rsqrt(), 1 / x.sqrt(), x / x.sqrt(), 2.0 / dg.sqrt(x), 1 / (x + 0.0),
                1 / (0.0 - x), 1 / dg.maximum(x, 0.0), x / (x * x).sum().sqrt(),
                x.reshape(1, -1) / x.reshape(-1, 1))  # a row's divisor: a float64 reciprocal

    cf = dg.compile(fn, fullgraph=True)
    with np.errstate(all="ignore"):
        want = [w.numpy() for w in fn(dg.tensor(v))]
        got = [g.numpy() for g in cf(dg.tensor(v))]
        (entry,) = [e for e in cf._cache.values() if e.kernel is not None]
        py = entry.kernel.run_python([v])
    for k, (g, p, w) in enumerate(zip(got, py, want)):
        for r in (g, p):
            assert np.array_equal(np.isnan(r), np.isnan(w)), (k, r, w)
            assert np.array_equal(np.signbit(r[r == 0]), np.signbit(w[w == 0])), (k, r, w)
            np.testing.assert_allclose(r, w, rtol=1e-6 if dt == np.float32 else 1e-13, err_msg=str(k))


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_float_floor_divide_and_literal_powers_at_special_values(dt):
    # compiled floor(a / b) gave inf // 2 == inf (numpy: NaN) and float32 1e-30 // -1e30 ==
    # -0.0 (numpy: -1); with `afn` x ** 2.5 became x * x * sqrt(x) (NaN at -inf) and LLVM's
    # x ** 0.5 gave inf at -inf (numpy: NaN): floor division is numpy's algorithm now
    # (mathlib.floor_divide_*), x ** 0.5 is sqrt, and kernels are compiled without `afn`
    vals = [-np.inf, np.inf, 5.0, -4.0, 0.0, -0.0, np.nan, 1e-30, -1e-30, 7.5, -7.5, 1e30, 3.0, 1e-40]
    grid = np.array([(a, b) for a in vals for b in vals], dt)
    a, b = grid[:, 0].copy(), grid[:, 1].copy()

    def fn(x, y):
        return (x // y, x // 2, x // -2.0, x ** 0.5, x ** 2.5, x ** -0.5, x ** -1, x ** y)

    cf = dg.compile(fn, fullgraph=True)
    with np.errstate(all="ignore"):
        want = [w.numpy() for w in fn(dg.tensor(a), dg.tensor(b))]
        got = [g.numpy() for g in cf(dg.tensor(a), dg.tensor(b))]
        (entry,) = [e for e in cf._cache.values() if e.kernel is not None]
        py = entry.kernel.run_python([a, b])
    for k, (g, p, w) in enumerate(zip(got, py, want)):
        for r in (g, p):
            assert np.array_equal(np.isnan(r), np.isnan(w)), (k, grid[np.isnan(r) != np.isnan(w)])
            assert np.array_equal(np.signbit(r[r == 0]), np.signbit(w[w == 0])), k
            np.testing.assert_allclose(r, w, rtol=1e-6 if dt == np.float32 else 1e-13, err_msg=str(k))
