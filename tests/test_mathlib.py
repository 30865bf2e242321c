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
F32_ULP_NUMPY = 2    # vs numpy's own float32 ufunc where numpy is within 1 ulp of correct
F64_ULP = 4          # vs long double (erf: vs scipy)
FLAGS = {"elementwise": M.FASTMATH, "reduction": M.FASTMATH_REDUCE}


# ---------------------------------------------------------------------------------- helpers
def reference(op, x, dtype, long_double=True):
    """op(x) rounded to dtype, evaluated in long double (or float64: faster, for float32 only)."""
    with np.errstate(all="ignore"):
        xl = np.asarray(x, np.float64)
        if long_double:
            xl = xl.astype(np.longdouble)
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
    _rng.integers(0, 0x7FF0000000000000, 200_000, dtype=np.int64).view(np.float64)
    * _rng.choice([-1, 1], 200_000),
    _rng.choice([-1, 1], 400_000) * np.exp(_rng.uniform(-40, 7, 400_000)),
    _rng.uniform(-8, 8, 200_000),
    F64_SPECIAL, np.array([np.nan, -np.nan])])


def _make_kernel(f, fastmath):
    @numba.njit(fastmath=set(fastmath), error_model="numpy")
    def kernel(x, out):
        for i in range(x.size):
            out[i] = f(x[i])
        return f(x[0])
    return kernel


_KERNELS = {}


def kernel_for(op, dtype, flags):
    """The jitted loop out[i] = op(x[i]) as the code generator would emit it (compiled once)."""
    key = (op, np.dtype(dtype).name, flags)
    if key not in _KERNELS:
        suffix = "f32" if np.dtype(dtype) == np.float32 else "f64"
        _KERNELS[key] = _make_kernel(getattr(M, f"{op}_{suffix}"), FLAGS[flags])
    return _KERNELS[key]


def run(op, dtype, flags, x):
    k = kernel_for(op, dtype, flags)
    x = np.ascontiguousarray(x, dtype)
    out = np.empty_like(x)
    k(x, out)
    ret = k.nopython_signatures[0].return_type
    assert ret == numba.from_dtype(np.dtype(dtype)), f"{op} on {np.dtype(dtype)} returns {ret}"
    return out


# default suite: every function with the elementwise flags; the functions whose accuracy rests
# on an evaluation order (fma-based reductions, compensations) also with +reassoc. --runslow: all.
REASSOC_DEFAULT = {("exp", "float64"), ("expm1", "float64"), ("log1p", "float64")}


def _cases(dtype):
    out = []
    for op in OPS:
        out.append(pytest.param(op, "elementwise", id=f"{op}-elementwise"))
        marks = () if (op, np.dtype(dtype).name) in REASSOC_DEFAULT else pytest.mark.slow
        out.append(pytest.param(op, "reduction", marks=marks, id=f"{op}-reduction"))
    return out


# ---------------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("op,flags", _cases(np.float32))
def test_float32_dense_sweep(op, flags):
    x = F32_SWEEP
    got = run(op, np.float32, flags, x)
    check_close(op, x, got, reference(op, x, np.float32), F32_ULP, f"float32[{flags}]")
    if op in NUMPY_F32:
        with np.errstate(all="ignore"):
            ref = NUMPY_F32[op](x)
        # numpy's float32 log (3 ulp) and exp (2 ulp) are themselves off the correctly rounded
        # result: compare only where numpy is within 1 ulp of it (as the exhaustive test does)
        keep = ulp_dist(ref, reference(op, x, np.float32)) <= 1
        check_close(op, x[keep], got[keep], ref[keep], F32_ULP_NUMPY, f"float32[{flags}] vs numpy")


@pytest.mark.parametrize("op,flags", _cases(np.float64))
def test_float64_sweep(op, flags):
    x = F64_SWEEP
    got = run(op, np.float64, flags, x)
    check_close(op, x, got, reference(op, x, np.float64), F64_ULP, f"float64[{flags}]")


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
@pytest.mark.parametrize("op", OPS)
def test_special_values_exact(op, dtype):
    for flags in FLAGS:
        if flags == "reduction" and (op, np.dtype(dtype).name) not in REASSOC_DEFAULT:
            continue
        xs, want = (np.array(v, dtype) for v in zip(*SPECIAL_CASES[op]))
        got = run(op, dtype, flags, xs)
        same = (got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want))
        assert same.all(), f"{op} {dtype.__name__}: x={xs[~same]} got {got[~same]} want {want[~same]}"


def test_subnormal_inputs_and_results():
    tiny32 = np.array([1e-45, 3e-42, 1.1754942e-38], np.float32)
    tiny32 = np.concatenate([tiny32, -tiny32])
    for op in ("tanh", "erf", "expm1", "log1p", "log"):
        got = run(op, np.float32, "elementwise", tiny32)
        check_close(op, tiny32, got, reference(op, tiny32, np.float32), F32_ULP, "float32 subnormal")
    tiny64 = np.array([5e-324, 1e-320, 2.2250738585072e-308, -5e-324, -1e-320])
    for op in ("tanh", "erf", "expm1", "log1p"):
        got = run(op, np.float64, "elementwise", tiny64)
        check_close(op, tiny64, got, reference(op, tiny64, np.float64), 1, "float64 subnormal")
    # exp into the subnormal range rounds once, as numpy does
    x = np.array([-745.1, -744.0, -740.0, -708.5])
    assert (ulp_dist(run("exp", np.float64, "elementwise", x), np.exp(x)) <= 1).all()
    x32 = np.array([-103.9, -100.0, -88.0], np.float32)
    assert (ulp_dist(run("exp", np.float32, "elementwise", x32), np.exp(x32)) <= 1).all()


# ---------------------------------------------------------------------------------- API
def test_math_table_names_resolve():
    for op, per_dtype in M.MATH.items():
        assert set(per_dtype) == {"float32", "float64"}
        for name in per_dtype.values():
            assert callable(getattr(M, name)), (op, name)
    for op in OPS:
        assert M.MATH[op] == {"float32": f"{op}_f32", "float64": f"{op}_f64"}
    assert len(M.SOURCE_HASH) == 16 and int(M.SOURCE_HASH, 16) >= 0
    assert M.FASTMATH == {"nsz", "arcp", "contract", "afn"}
    assert M.FASTMATH_REDUCE == M.FASTMATH | {"reassoc"}


@pytest.mark.parametrize("op", OPS)
def test_inlined_loops_vectorize(op):
    """No libm call is left and the loop runs on vectors (8 float32 lanes / 4 float64 lanes)."""
    for dtype, width in [(np.float32, "<8 x float>"), (np.float64, "<4 x double>")]:
        run(op, dtype, "elementwise", np.ones(16, dtype))
        k = kernel_for(op, dtype, "elementwise")
        ir = k.inspect_llvm(k.signatures[0])
        assert width in ir, f"{op} {np.dtype(dtype)}: loop not vectorized"
        calls = {line.split("@")[1].split("(")[0] for line in ir.splitlines()
                 if " call " in line and "@" in line}
        libm = {c for c in calls if any(w in c for w in ("exp", "log", "tanh", "erf", "pow"))}
        assert not libm, f"{op} {np.dtype(dtype)} calls {libm}"


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


def test_disable_jit_path_matches(tmp_path):
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
    for k, op in enumerate(OPS):
        jit32, jit64 = run(op, np.float32, "elementwise", x32), run(op, np.float64, "elementwise", x64)
        check_close(op, x32, res["out32"][k], reference(op, x32, np.float32), F32_ULP, "no-jit float32")
        check_close(op, x64, res["out64"][k], reference(op, x64, np.float64), F64_ULP, "no-jit float64")
        # same source, same results up to fma contraction
        check_close(op, x32, res["out32"][k], jit32, 1, "no-jit vs jit float32")
        check_close(op, x64, res["out64"][k], jit64, 2, "no-jit vs jit float64")
    mx, mn = np.empty_like(a), np.empty_like(a)
    _minmax_pairs(a, b, mx, mn)
    for got, want in [(res["mx"], mx), (res["mn"], mn)]:
        same = (got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want))
        assert same.all()


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


@numba.njit(parallel=True)
def _ulp_f32(got, ref, d):
    """d[i] = ulp distance (as ulp_dist); returns the number of zero-sign mismatches."""
    signs = 0
    for i in numba.prange(got.size):
        g, r = got[i], ref[i]
        if g != g or r != r:
            d[i] = 0 if (g != g) == (r != r) else 1 << 40
        else:
            ig, ir = np.int64(I.f32_as_i32(g)), np.int64(I.f32_as_i32(r))
            kg = -(ig & 0x7FFFFFFF) if ig < 0 else ig
            kr = -(ir & 0x7FFFFFFF) if ir < 0 else ir
            d[i] = abs(kg - kr)
            if r == 0 and (ig < 0) != (ir < 0):
                signs += 1
    return signs


@pytest.mark.slow
def test_float32_exhaustive():
    """Every float32 input for every float32 function: against float64 numpy (scipy for erf)
    rounded to float32, and against numpy's float32 ufunc where numpy has one (skipping inputs
    where numpy's float32 result is itself more than 1 ulp off)."""
    chunk = 1 << 24
    out = np.empty((len(OPS), chunk), np.float32)
    d, d_np = np.empty(chunk, np.int64), np.empty(chunk, np.int64)
    worst = {op: 0 for op in OPS}
    worst_np = {op: 0 for op in NUMPY_F32}
    for start in range(0, 1 << 32, chunk):
        x = np.arange(start, start + chunk, dtype=np.uint64).astype(np.uint32).view(np.float32)
        _all_ops_f32(x, out)
        for k, op in enumerate(OPS):
            ref = reference(op, x, np.float32, long_double=False)
            signs = _ulp_f32(out[k], ref, d)
            i = int(np.argmax(d))
            assert d[i] <= 2 and signs == 0, (op, x[i], out[k][i], ref[i], signs)
            worst[op] = max(worst[op], int(d[i]))
            if op in NUMPY_F32:
                with np.errstate(all="ignore"):
                    ref_np = NUMPY_F32[op](x)
                _ulp_f32(ref_np, ref, d_np)          # numpy's own error
                _ulp_f32(out[k], ref_np, d)
                d[d_np > 1] = 0
                i = int(np.argmax(d))
                assert d[i] <= F32_ULP_NUMPY, (op, "vs numpy", x[i], out[k][i], ref_np[i])
                worst_np[op] = max(worst_np[op], int(d[i]))
        if os.environ.get("MATHLIB_PROGRESS"):
            print(start >> 24, worst, worst_np, flush=True)
    print("max ulp over all float32 inputs vs float64 reference:", worst)
    print("max ulp vs numpy float32 (where numpy is within 1 ulp):", worst_np)


def test_called_functions_are_compiled_once_and_keyed_on_the_whole_library():
    """Kernels *call* the math functions that LLVM inlines (numba's IR inlining would type
    them again in every calling kernel, ~0.17 s per call site); their numba disk cache is
    keyed on mathlib.py *and* intrinsics.py (SOURCE_HASH), not on mathlib.py alone.  erf and
    log1p, over LLVM's inlining threshold, stay inlined by numba (a call would make the loop
    scalar: test_inlined_loops_vectorize checks every function)."""
    for name in M._CALLED:
        d = getattr(M, name)
        assert isinstance(d, numba.core.registry.CPUDispatcher), name
        assert d.targetoptions.get("inline", "never") == "never", name
        assert d._cache._cache_file._source_stamp[1] == M.SOURCE_HASH, name
    for name in ("erf_f32", "erf_f64", "log1p_f32", "log1p_f64"):
        assert getattr(M, name).targetoptions.get("inline") == "always", name
    for name in ("floor_divide_f32", "floor_divide_f64"):  # called, with no fastmath flags
        d = getattr(M, name)
        assert d.targetoptions.get("inline", "never") == "never" and not d.targetoptions.get("fastmath")
        assert d._cache._cache_file._source_stamp[1] == M.SOURCE_HASH, name
    assert set(M._CALLED) | {"erf_f32", "erf_f64", "log1p_f32", "log1p_f64", "floor_divide_f32",
                             "floor_divide_f64"} >= {
        n for per_dtype in M.MATH.values() for n in per_dtype.values()} - {"fmax", "fmin"}
