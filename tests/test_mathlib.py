"""dualgraph.compile.mathlib: accuracy, special values, fastmath robustness, vectorization and the
NUMBA_DISABLE_JIT path; intrinsics.fmax/fmin semantics and reductions.

References: numpy long double (x87, 64-bit mantissa) for exp/log/tanh/expm1/log1p/sigmoid,
rounded to the tested dtype, so the float32 reference is the correctly rounded result (up to
double rounding); scipy.special.erf (float64, itself ~1 ulp) for erf. ``--runslow`` adds the
exhaustive check of every float32 input.
"""
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
import scipy.special as sp

from dualgraph.compile import intrinsics as I
from dualgraph.compile import mathlib as M

OPS = ("exp", "log", "tanh", "sigmoid", "erf", "expm1", "log1p")
NUMPY_F32 = {"exp": np.exp, "log": np.log, "tanh": np.tanh, "expm1": np.expm1, "log1p": np.log1p}
F32_ULP = 1          # vs the correctly rounded float32 result (measured: 1 everywhere)
F32_ULP_NUMPY = 2    # vs numpy's own float32 ufunc (numpy's float32 log itself errs up to 3 ulp)
F64_ULP = 4          # vs long double (erf: vs scipy)
FLAGS = {"elementwise": M.FASTMATH, "reduction": M.FASTMATH_REDUCE}


# ---------------------------------------------------------------------------------- helpers
def reference(op, x, dtype, long_double=True):
    """op(x) rounded to dtype, evaluated in long double (or float64: faster, for float32 only)."""
    xl = np.asarray(x, np.float64)
    if long_double:
        xl = xl.astype(np.longdouble)
    with np.errstate(all="ignore"):
        if op == "erf":
            r = sp.erf(np.asarray(x, np.float64))
        elif op == "sigmoid":
            e = np.exp(-np.abs(xl))
            r = np.where(xl >= 0, 1 / (1 + e), e / (1 + e))
        else:
            r = getattr(np, op)(xl)
        return r.astype(np.float64).astype(dtype)


def ulp_dist(a, b):
    """|a - b| in units in the last place, on the ordered integer bit patterns; NaN == NaN and
    NaN vs number = 2**40; -0 and +0 are 0 apart (zero signs are checked separately)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype
    it, mask = (np.int32, 0x7FFFFFFF) if a.dtype == np.float32 else (np.int64, 0x7FFFFFFFFFFFFFFF)
    ia, ib = a.view(it).astype(np.int64), b.view(it).astype(np.int64)
    ka = np.where(ia < 0, -(ia & mask), ia)
    kb = np.where(ib < 0, -(ib & mask), ib)
    d = np.abs(ka - kb)
    na, nb = np.isnan(a), np.isnan(b)
    d[na & nb] = 0
    d[na ^ nb] = 1 << 40
    return d


def check_close(op, x, got, ref, bound, what):
    d = ulp_dist(got, ref)
    worst = int(np.argmax(d))
    assert d[worst] <= bound, (
        f"{what} {op}: {d[worst]} ulp at x={x[worst]!r}: got {got[worst]!r}, want {ref[worst]!r}")
    z = ref == 0
    bad = np.flatnonzero(np.signbit(got[z]) != np.signbit(ref[z]))
    assert bad.size == 0, f"{what} {op}: wrong zero sign at x={x[z][bad[0]]!r}"
    return int(d[worst])


def neighbourhood(values, dtype, k):
    """Every value in `values`, both signs, and the k bit patterns on each side."""
    it = np.int32 if dtype == np.float32 else np.int64
    v = np.asarray(values, dtype)
    v = np.concatenate([v, -v])
    bits = v.view(it).astype(np.int64)[:, None] + np.arange(-k, k + 1)
    bits = bits[(bits >= np.iinfo(it).min) & (bits <= np.iinfo(it).max)]
    return bits.astype(it).view(dtype)


F32_SPECIAL = neighbourhood(
    [0.0, np.inf, 1e-45, 1.1754942e-38, 1.1754944e-38, 3.4028235e38, 1.0, 2.0, 0.5,
     88.72283, 88.7, 87.33654, 103.27893, 103.97208, 104.0, 89.0, 110.0,   # exp / sigmoid edges
     1e-30, 2.0 ** -24, 2.0 ** -12, 1e-4, 0.1, 0.2928, 0.4142, 0.55, 0.625, 0.84375, 3.92, 4.0,
     9.01, 20.0, 40.0, 0.6931472, 0.34657359],
    np.float32, 48)
F32_SPECIAL = np.concatenate([F32_SPECIAL, np.array([np.nan, -np.nan], np.float32)])
F32_SWEEP = np.concatenate([
    (np.arange(0, 1 << 32, 1 << 11, dtype=np.uint64) + 977).astype(np.uint32).view(np.float32),
    F32_SPECIAL])

_rng = np.random.default_rng(12345)
F64_SPECIAL = neighbourhood(
    [0.0, np.inf, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1.0, 0.5, 2.0,
     709.782712893384, 709.7, 709.43, 708.3964185322641, 745.1332191019411, 744.44, 1080.0, 710.0,
     1e-300, 2.0 ** -28, 2.0 ** -53, 1e-8, 0.1, 0.29, 0.2928, 0.4142, 0.84375, 2.5, 6.0, 5.9, 22.0,
     40.0, 0.6931471805599453, 0.34657359027997264],
    np.float64, 32)
F64_SWEEP = np.concatenate([
    _rng.integers(0, 1 << 63, 200_000, dtype=np.int64).view(np.float64) * _rng.choice([-1, 1], 200_000),
    _rng.choice([-1, 1], 400_000) * np.exp(_rng.uniform(-40, 7, 400_000)),
    _rng.uniform(-8, 8, 200_000),
    F64_SPECIAL, np.array([np.nan, -np.nan])])


def _make_driver(suffix, fastmath):
    f0, f1, f2, f3, f4, f5, f6 = (getattr(M, f"{op}_{suffix}") for op in OPS)

    @numba.njit(fastmath=set(fastmath), error_model="numpy")
    def drive(x, out):
        for i in range(x.size):
            v = x[i]
            out[0, i] = f0(v)
            out[1, i] = f1(v)
            out[2, i] = f2(v)
            out[3, i] = f3(v)
            out[4, i] = f4(v)
            out[5, i] = f5(v)
            out[6, i] = f6(v)
        v = x[0]
        return f0(v), f1(v), f2(v), f3(v), f4(v), f5(v), f6(v)
    return drive


@pytest.fixture(scope="module")
def run():
    """run(dtype, flags_name, x) -> (len(OPS), x.size) results; drivers jitted once per module."""
    cache = {}

    def run_(dtype, flags, x):
        key = (dtype, flags)
        if key not in cache:
            cache[key] = _make_driver("f32" if dtype == np.float32 else "f64", FLAGS[flags])
        out = np.empty((len(OPS), x.size), dtype)
        ret = cache[key](np.ascontiguousarray(x, dtype), out)
        sig = cache[key].nopython_signatures[0]
        assert sig.return_type == numba.types.UniTuple(numba.from_dtype(np.dtype(dtype)), len(OPS))
        assert len(ret) == len(OPS)
        return out
    return run_


# ---------------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("flags", sorted(FLAGS))
def test_float32_dense_sweep(run, flags):
    x = F32_SWEEP
    out = run(np.float32, flags, x)
    for k, op in enumerate(OPS):
        check_close(op, x, out[k], reference(op, x, np.float32), F32_ULP, f"float32[{flags}]")
        if op in NUMPY_F32:
            with np.errstate(all="ignore"):
                ref = NUMPY_F32[op](x)
            keep = np.ones(x.size, bool)
            if op == "log":   # numpy's float32 log is itself up to 3 ulp off: skip where it is
                keep = ulp_dist(ref, reference(op, x, np.float32)) <= 1
            check_close(op, x[keep], out[k][keep], ref[keep], F32_ULP_NUMPY, f"float32[{flags}] vs numpy")


@pytest.mark.parametrize("flags", sorted(FLAGS))
def test_float64_sweep(run, flags):
    x = F64_SWEEP
    out = run(np.float64, flags, x)
    for k, op in enumerate(OPS):
        check_close(op, x, out[k], reference(op, x, np.float64), F64_ULP, f"float64[{flags}]")


SPECIAL_CASES = {  # op: [(x, expected)], exactly as numpy
    "exp": [(np.nan, np.nan), (np.inf, np.inf), (-np.inf, 0.0), (0.0, 1.0), (-0.0, 1.0),
            (1000.0, np.inf), (-1000.0, 0.0)],
    "log": [(np.nan, np.nan), (np.inf, np.inf), (-np.inf, np.nan), (0.0, -np.inf), (-0.0, -np.inf),
            (-1.0, np.nan), (1.0, 0.0)],
    "tanh": [(np.nan, np.nan), (np.inf, 1.0), (-np.inf, -1.0), (0.0, 0.0), (-0.0, -0.0),
             (50.0, 1.0), (-50.0, -1.0)],
    "sigmoid": [(np.nan, np.nan), (np.inf, 1.0), (-np.inf, 0.0), (0.0, 0.5), (-0.0, 0.5),
                (1000.0, 1.0), (-1000.0, 0.0)],
    "erf": [(np.nan, np.nan), (np.inf, 1.0), (-np.inf, -1.0), (0.0, 0.0), (-0.0, -0.0),
            (10.0, 1.0), (-10.0, -1.0)],
    "expm1": [(np.nan, np.nan), (np.inf, np.inf), (-np.inf, -1.0), (0.0, 0.0), (-0.0, -0.0),
              (1000.0, np.inf), (-1000.0, -1.0)],
    "log1p": [(np.nan, np.nan), (np.inf, np.inf), (-np.inf, np.nan), (0.0, 0.0), (-0.0, -0.0),
              (-1.0, -np.inf), (-2.0, np.nan)],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("flags", sorted(FLAGS))
def test_special_values_exact(run, dtype, flags):
    for k, op in enumerate(OPS):
        xs, want = (np.array(v, dtype) for v in zip(*SPECIAL_CASES[op]))
        got = run(dtype, flags, xs)[k]
        same = (got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want))
        assert same.all(), f"{op} {dtype.__name__}: x={xs[~same]} got {got[~same]} want {want[~same]}"


def test_subnormal_inputs_and_results():
    tiny32 = np.array([1e-45, 3e-42, 1.1754942e-38], np.float32)
    for op, f in [("tanh", M.tanh_f32), ("erf", M.erf_f32), ("expm1", M.expm1_f32),
                  ("log1p", M.log1p_f32), ("log", M.log_f32)]:
        got = np.array([f(v) for v in np.concatenate([tiny32, -tiny32])], np.float32)
        ref = reference(op, np.concatenate([tiny32, -tiny32]), np.float32)
        assert (ulp_dist(got, ref) <= F32_ULP).all(), (op, got, ref)
    # exp into the subnormal range rounds once, as numpy does
    x = np.array([-745.1, -744.0, -740.0, -708.5], np.float64)
    assert (ulp_dist(np.array([M.exp_f64(v) for v in x]), np.exp(x)) <= 1).all()
    x32 = np.array([-103.9, -100.0, -88.0], np.float32)
    assert (ulp_dist(np.array([M.exp_f32(v) for v in x32], np.float32), np.exp(x32)) <= 1).all()


# ---------------------------------------------------------------------------------- API
def test_math_table_names_resolve():
    for op, per_dtype in M.MATH.items():
        assert set(per_dtype) == {"float32", "float64"}
        for name in per_dtype.values():
            assert callable(getattr(M, name)), (op, name)
    for op in OPS:
        assert M.MATH[op] == {"float32": f"{op}_f32", "float64": f"{op}_f64"}
    assert M.FASTMATH == {"nsz", "arcp", "contract", "afn"}
    assert M.FASTMATH_REDUCE == M.FASTMATH | {"reassoc"}


def test_inlined_loops_vectorize():
    def kernel(f):
        @numba.njit(fastmath=set(M.FASTMATH), error_model="numpy")
        def k(x, out):
            for i in range(x.size):
                out[i] = f(x[i])
        return k
    k32 = kernel(M.tanh_f32)
    k32(np.ones(16, np.float32), np.empty(16, np.float32))
    ir = k32.inspect_llvm(k32.signatures[0])
    assert "<8 x float>" in ir and "tanh" not in ir.replace("tanh_f32", "")
    k64 = kernel(M.log_f64)
    k64(np.ones(16), np.empty(16))
    ir = k64.inspect_llvm(k64.signatures[0])
    assert "<4 x double>" in ir or "<8 x double>" in ir


# ---------------------------------------------------------------------------------- fmax / fmin
_PAIR_VALUES = [np.nan, -np.inf, -3.5, -1.0, -0.0, 0.0, 5e-324, 1.0, 2.5, np.inf]


@numba.njit
def _minmax_pairs(a, b, mx, mn):
    for i in range(a.size):
        mx[i] = I.fmax(a[i], b[i])
        mn[i] = I.fmin(a[i], b[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fmax_fmin_pairs(dtype):
    a, b = (np.array(v, dtype) for v in zip(*[(p, q) for p in _PAIR_VALUES for q in _PAIR_VALUES]))
    mx, mn = np.empty_like(a), np.empty_like(a)
    _minmax_pairs(a, b, mx, mn)
    for got, fn, ref_py in [(mx, np.maximum, I.py_fmax), (mn, np.minimum, I.py_fmin)]:
        want = fn(a, b)
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        assert same.all(), (a[~same], b[~same], got[~same])
        # signed zeros follow IEEE 754-2019 maximum/minimum: -0 < +0 (the Python twin agrees)
        py = np.array([ref_py(p, q) for p, q in zip(a, b)], dtype)
        assert (ulp_dist(got, py) == 0).all() and (np.signbit(got) == np.signbit(py)).all()
        zeros = (a == 0) & (b == 0) & (np.signbit(a) != np.signbit(b))
        assert (np.signbit(got[zeros]) == (fn is np.minimum)).all()


@numba.njit(fastmath=set(M.FASTMATH_REDUCE), error_model="numpy")
def _reduce_max(x):
    m = x.dtype.type(-np.inf)
    for i in range(x.size):
        m = I.fmax(m, x[i])
    return m


@numba.njit(fastmath=set(M.FASTMATH_REDUCE), error_model="numpy")
def _reduce_min(x):
    m = x.dtype.type(np.inf)
    for i in range(x.size):
        m = I.fmin(m, x[i])
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fmax_fmin_reductions_match_numpy(dtype):
    rng = np.random.default_rng(3)
    cases = []
    for n in [1, 7, 8, 9, 31, 1000, 4097]:
        x = rng.standard_normal(n).astype(dtype)
        cases.append(x)
        for pos in {0, n // 2, n - 1}:
            y = x.copy()
            y[pos] = np.nan
            cases.append(y)
        cases.append(np.full(n, -np.inf, dtype))
        z = x.copy()
        z[n // 3] = np.inf
        cases.append(z)
    cases.append(np.array([-0.0, 0.0, -0.0], dtype))
    for x in cases:
        for got, want in [(_reduce_max(x), np.max(x)), (_reduce_min(x), np.min(x))]:
            assert got == want or (np.isnan(got) and np.isnan(want)), (x, got, want)
    sig = [s for s in _reduce_max.signatures if s[0].dtype == numba.from_dtype(np.dtype(dtype))][0]
    ir = _reduce_max.inspect_llvm(sig)
    width = "<8 x float>" if dtype == np.float32 else "<4 x double>"
    assert width in ir and "llvm.maximum.v" in ir, "the fmax reduction did not vectorize"


def test_fmax_mixed_precision_widens():
    @numba.njit
    def f(a, b):
        return I.fmax(a, b), I.fmin(a, b)
    assert f(np.float32(1.5), 2.25) == (2.25, 1.5)
    assert f.nopython_signatures[0].return_type == numba.types.UniTuple(numba.float64, 2)


# ---------------------------------------------------------------------------------- no-jit path
_NOJIT_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from dualgraph.compile import mathlib as M, intrinsics as I
    assert I.JIT_DISABLED and type(M.exp_f32).__name__ == "function", type(M.exp_f32)
    x32, x64, a, b = (np.load(sys.argv[1])[k] for k in ("x32", "x64", "a", "b"))
    ops = sys.argv[3].split(",")
    with np.errstate(all="ignore"):
        out32 = np.array([[getattr(M, op + "_f32")(v) for v in x32] for op in ops])
        out64 = np.array([[getattr(M, op + "_f64")(v) for v in x64] for op in ops])
        mx = np.array([I.fmax(p, q) for p, q in zip(a, b)])
        mn = np.array([I.fmin(p, q) for p, q in zip(a, b)])
    assert out32.dtype == np.float32 and out64.dtype == np.float64, (out32.dtype, out64.dtype)
    np.savez(sys.argv[2], out32=out32, out64=out64, mx=mx, mn=mn)
""")


def test_disable_jit_path_matches(run, tmp_path):
    rng = np.random.default_rng(7)
    x32 = np.concatenate([rng.choice(F32_SWEEP, 600), F32_SPECIAL[::25]]).astype(np.float32)
    x64 = np.concatenate([rng.choice(F64_SWEEP, 600), F64_SPECIAL[::25]])
    a, b = (np.array(v, np.float64) for v in zip(*[(p, q) for p in _PAIR_VALUES for q in _PAIR_VALUES]))
    np.savez(tmp_path / "in.npz", x32=x32, x64=x64, a=a, b=b)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=root)
    proc = subprocess.run([sys.executable, "-c", _NOJIT_SCRIPT, str(tmp_path / "in.npz"),
                           str(tmp_path / "out.npz"), ",".join(OPS)],
                          env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = np.load(tmp_path / "out.npz")
    jit32, jit64 = run(np.float32, "elementwise", x32), run(np.float64, "elementwise", x64)
    for k, op in enumerate(OPS):
        check_close(op, x32, res["out32"][k], reference(op, x32, np.float32), F32_ULP, "no-jit float32")
        check_close(op, x64, res["out64"][k], reference(op, x64, np.float64), F64_ULP, "no-jit float64")
        # same source, same results up to fma contraction
        check_close(op, x32, res["out32"][k], jit32[k], 1, "no-jit vs jit float32")
        check_close(op, x64, res["out64"][k], jit64[k], 2, "no-jit vs jit float64")
    mx, mn = np.empty_like(a), np.empty_like(a)
    _minmax_pairs(a, b, mx, mn)
    for got, want in [(res["mx"], mx), (res["mn"], mn)]:
        assert ((got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want))).all()


# ---------------------------------------------------------------------------------- exhaustive
@numba.njit(parallel=True, fastmath=set(M.FASTMATH), error_model="numpy")
def _all_ops_f32(xs, out):
    for j in numba.prange(xs.size):
        x = xs[j]
        out[0, j] = M.exp_f32(x)
        out[1, j] = M.log_f32(x)
        out[2, j] = M.tanh_f32(x)
        out[3, j] = M.sigmoid_f32(x)
        out[4, j] = M.erf_f32(x)
        out[5, j] = M.expm1_f32(x)
        out[6, j] = M.log1p_f32(x)


@pytest.mark.slow
def test_float32_exhaustive():
    """Every float32 input for every float32 function: against float64 numpy (scipy for erf)
    rounded to float32, and against numpy's float32 ufunc where numpy has one (skipping inputs
    where numpy's float32 result is itself more than 1 ulp off)."""
    chunk = 1 << 24
    out = np.empty((len(OPS), chunk), np.float32)
    worst = {op: 0 for op in OPS}
    worst_np = {op: 0 for op in NUMPY_F32}
    for start in range(0, 1 << 32, chunk):
        x = np.arange(start, start + chunk, dtype=np.uint64).astype(np.uint32).view(np.float32)
        _all_ops_f32(x, out)
        for k, op in enumerate(OPS):
            ref = reference(op, x, np.float32, long_double=False)
            worst[op] = max(worst[op], check_close(op, x, out[k], ref, 2, "float32 exhaustive"))
            if op in NUMPY_F32:
                with np.errstate(all="ignore"):
                    ref_np = NUMPY_F32[op](x)
                keep = ulp_dist(ref_np, ref) <= 1
                worst_np[op] = max(worst_np[op], check_close(op, x[keep], out[k][keep], ref_np[keep],
                                                             F32_ULP_NUMPY, "float32 exhaustive vs numpy"))
    print("max ulp over all float32 inputs vs float64 reference:", worst)
    print("max ulp vs numpy float32 (where numpy is within 1 ulp):", worst_np)
