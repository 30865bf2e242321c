"""Vectorizable scalar math for generated numba kernels.

numba from PyPI has no SVML: one ``np.exp``/``np.tanh``/``math.*`` call inside a loop makes the
whole loop scalar (a libm call per element). The functions here are plain arithmetic, bit casts
and LLVM intrinsics (see ``intrinsics.py``); a kernel calls them and LLVM inlines them into the
calling loop, which then vectorizes (erf and log1p are inlined by numba instead: see the end).

API for the code generator (one scalar in, one scalar of the same dtype out)::

    exp_f32   exp_f64     log_f32   log_f64     tanh_f32  tanh_f64
    sigmoid_f32 sigmoid_f64   erf_f32   erf_f64
    expm1_f32 expm1_f64   log1p_f32 log1p_f64
    fmax(a, b), fmin(a, b)      NaN-propagating max/min (np.maximum / np.minimum semantics)
    MATH[op][dtype_name] -> the function's name in this module, e.g. MATH["exp"]["float32"]
    FASTMATH, FASTMATH_REDUCE   the flag sets to compile elementwise / reduction kernels with
    SOURCE_HASH                 changes whenever this file or intrinsics.py changes (cache key)

Design:

* ``exp_f32`` and ``tanh_f32`` are float32-native (8-wide on AVX2): Cody-Waite reduction with
  ``fma_f32``, minimax polynomials with float32 coefficients, powers of two from int32 exponent
  bits; <= 1 ulp from the correctly rounded result over all float32 inputs.  The other float32
  functions (and ``exp_f32_wide``/``tanh_f32_wide``) convert to float64, evaluate a float64
  approximation good to ~1e-11 relative and round once to float32, so they are (nearly always)
  correctly rounded; that work is 4-wide float64 on AVX2, about 2x slower.
* float64 functions use Cody-Waite range reduction with ``fma`` (also a barrier against
  ``reassoc``), exact Taylor / atanh series on the reduced range, and fitted polynomials for erf
  (regenerate with ``benchmarks/mathlib_coeffs.py``).
* No branches on data: every path is computed on a sanitized argument and the result is
  selected, so the loop vectorizer can if-convert; special values (NaN, +-inf, +-0, subnormals,
  overflow/underflow) are selected at the end and match numpy.
* Powers of two are built by integer adds into the exponent bits, never by converting floats to
  integers (no vector cvt for int64 on AVX2, and NaN -> int is poison in LLVM).
* Results hold under FASTMATH ({nsz, arcp, contract, afn}) and FASTMATH_REDUCE (+reassoc),
  the functions' own flags; numba-inlined code (erf, log1p) takes the calling kernel's flags
  instead, which are fewer (codegen.FASTMATH: contract, +reassoc in reduction kernels).
  Never compile them with nnan/ninf.

Accuracy is measured by tests/test_mathlib.py and recorded in benchmarks/MATHLIB.md.
Under ``NUMBA_DISABLE_JIT=1`` the same Python source runs on numpy scalars (the intrinsics fall
back to Python twins), giving the same results up to fma contraction (<= 1 ulp).
"""
import hashlib
import os

import numpy as np
from numba import njit

from .intrinsics import (  # noqa: F401  (fmax/fmin re-exported for the code generator)
    copysign, f64_as_i64, fma, fma_f32, fmax, fmin, i64_as_f64, ldexp_f32, pow2_f32, rint,
)

# numba's cache keys a kernel on its own file only, not on what it inlined: put this in the name
# (or content hash) of every cached kernel that uses mathlib, so a changed mathlib recompiles.
SOURCE_HASH = hashlib.sha256(b"".join(
    open(os.path.join(os.path.dirname(__file__), name), "rb").read()
    for name in ("mathlib.py", "intrinsics.py"))).hexdigest()[:16]

FASTMATH = {"nsz", "arcp", "contract", "afn"}            # elementwise kernels
FASTMATH_REDUCE = FASTMATH | {"reassoc"}               # reduction kernels

from .math_names import MATH  # noqa: E402 - the table the code generator reads (no numba)

__all__ = ["MATH", "FASTMATH", "FASTMATH_REDUCE", "SOURCE_HASH", "fmax", "fmin"] + sorted(
    {name for per_dtype in MATH.values() for name in per_dtype.values()} - {"fmax", "fmin"})


def _inline(fn):
    return njit(inline="always", fastmath=set(FASTMATH), error_model="numpy")(fn)


def _horner(name, coefs):
    """An inlined polynomial sum(coefs[i] * u**i), built as explicit Horner source."""
    expr = repr(float(coefs[-1]))
    for c in reversed(coefs[:-1]):
        expr = f"{float(c)!r} + u * ({expr})"
    src = f"def {name}(u):\n    return {expr}\n"
    ns = {}
    exec(compile(src, f"<mathlib {name}>", "exec"), ns)
    return _inline(ns[name])


def _horner32(name, coefs):
    """As _horner, with float32 coefficients (float32 arithmetic on a float32 argument)."""
    ns = {f"c{k}": np.float32(c) for k, c in enumerate(coefs)}
    expr = f"c{len(coefs) - 1}"
    for k in reversed(range(len(coefs) - 1)):
        expr = f"c{k} + u * ({expr})"
    src = f"def {name}(u):\n    return {expr}\n"
    exec(compile(src, f"<mathlib {name}>", "exec"), ns)
    return _inline(ns[name])


def _taylor(n0, n1):
    """1/k! for k = n0..n1."""
    out, f = [], 1.0
    for k in range(1, n1 + 1):
        f *= k
        if k >= n0:
            out.append(1.0 / f)
    return [1.0] * (n0 == 0) + out


# --- constants ---------------------------------------------------------------------------------
_INF = np.inf
_NAN = np.nan
_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_LN2_HI = 6.93147180369123816490e-01   # 0x3FE62E42FEE00000: k * _LN2_HI exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_SHIFT = 6755399441055744.0            # 1.5 * 2^52: bits(k + _SHIFT) end in k
_TWO52_BIAS = 4503599627370496.0 + 1023.0
_SQRT2 = 1.4142135623730951
_TWO54 = 18014398509481984.0
_DBL_MIN = 2.2250738585072014e-308

# --- polynomials -------------------------------------------------------------------------------
_exp_p8 = _horner("_exp_p8", _taylor(0, 8))           # e^r, |r| <= ln2/2, rel err 2e-10
_exp_p10 = _horner("_exp_p10", _taylor(0, 10))        # rel err 2e-13
_exp_p13 = _horner("_exp_p13", _taylor(0, 13))        # rel err 4e-18
_expm1_q9 = _horner("_expm1_q9", _taylor(2, 9))       # (e^r - 1 - r) / r^2
_expm1_q13 = _horner("_expm1_q13", _taylor(2, 14))
# log(1+f) = f - s*(f - R), s = f/(2+f), z = s^2, R = 2*(z/3 + z^2/5 + ...), |s| <= 0.1716
_log_r6 = _horner("_log_r6", [0.0] + [2.0 / (2 * k + 1) for k in range(1, 7)])
_log_r10 = _horner("_log_r10", [0.0] + [2.0 / (2 * k + 1) for k in range(1, 11)])
# tanh(a)/a - 1 as a series in a^2 (used for a < 0.1, rel err 1e-12)
_tanh_small = _horner("_tanh_small", [0.0, -1.0 / 3, 2.0 / 15, -17.0 / 315, 62.0 / 2835])

# erf: erf(x) = x * P(x^2) for |x| < 0.84375 (Taylor); above, erf = 1 - exp(-x^2) * R(x) with
# R(x) = erfc(x) * exp(x^2) fitted in u = (x - c) / h (benchmarks/mathlib_coeffs.py).
_ERF_SMALL = (1.1283791670955126, -0.37612638903183754, 0.11283791670955126, -0.026866170645131252,
              0.005223977625442188, -0.0008548327023450853, 0.00012055332981789664,
              -1.492565035840625e-05, 1.6462114365889248e-06, -1.6365844691234924e-07,
              1.4807192815879218e-08, -1.2290555301717928e-09, 9.422759064650411e-11,
              -6.7113668551641105e-12, 4.4632242632864775e-13, -2.7835162072109215e-14,
              1.6342614095367152e-15)
_ERF_C0M1 = 0.12837916709551257      # 2/sqrt(pi) - 1
_erf_small64 = _horner("_erf_small64", [_ERF_C0M1] + list(_ERF_SMALL[1:]))   # x + x*this(x^2)
_erf_small32 = _horner("_erf_small32", _ERF_SMALL[:13])
_ERFC_R64_A = (0.29555605243119865, -0.11603158889485458, 0.042041457679813994, -0.014244079867080095,
               0.004555209679722917, -0.0013846705327451956, 0.0004022719239116415,
               -0.0001121829951954563, 3.0138675044232835e-05, -7.823663047697399e-06,
               1.9673644332190775e-06, -4.802591588241249e-07, 1.140364634086947e-07,
               -2.6412205890769412e-08, 5.960680251226782e-09, -1.2854619338860303e-09,
               2.7773320840177633e-10, -7.31331556188396e-11, 1.5024892932497794e-11)
_ERFC_R64_A_CH = (1.671875, 1.0 / 0.828125)   # on [0.84375, 2.5]
_ERFC_R64_B = (0.12934527478598792, -0.05065257997558998, 0.019391340463739106, -0.0072669543166608746,
               0.0026690037168546486, -0.0009617329943690538, 0.0003403116175739242,
               -0.0001183540692437326, 4.048624541815416e-05, -1.3632246843805208e-05,
               4.5207167905676e-06, -1.476177437211989e-06, 4.757207180019287e-07,
               -1.5312337863738423e-07, 4.800033821552839e-08, -1.3135483422807304e-08,
               4.044217888551993e-09, -2.091295143503896e-09, 6.19202332443258e-10)
_ERFC_R64_B_CH = (4.25, 1.0 / 1.75)           # on [2.5, 6]
_ERFC_R32 = (0.2167708695179387, -0.12371753204125144, 0.06701212763003253, -0.03466271242199482,
             0.01720532310752201, -0.008227007057322948, 0.003801827852003908, -0.0017027082627883595,
             0.0007404940940280527, -0.00031249303832338733, 0.00012897177890223727,
             -5.36343530901603e-05, 2.103844002669851e-05, -6.276647955491294e-06,
             2.420077820336773e-06, -1.9433740085150965e-06, 6.923262717630097e-07)
_ERFC_R32_CH = (2.421875, 1.0 / 1.578125)     # on [0.84375, 4]
_erfc_r64a = _horner("_erfc_r64a", _ERFC_R64_A)
_erfc_r64b = _horner("_erfc_r64b", _ERFC_R64_B)
_erfc_r32 = _horner("_erfc_r32", _ERFC_R32)


# float32-native (8-wide) exp and tanh: minimax fits (Lawson iterations on Chebyshev nodes,
# float32 coefficients; benchmarks/mathlib_coeffs.py --f32 regenerates them).
# e^r = 1 + r + r^2 * Q(r), |r| <= ln2/2: relative error 3.1e-9 (0.03 ulp)
_EXP32_Q = (0.4999999403953552, 0.1666652113199234, 0.04166838899254799, 0.0083687175065279,
            0.0013814596459269524)
# tanh(a) = a + a^3 * P(a^2), 0 <= a <= 0.625: relative error 4.1e-9
_TANH32_P = (-0.3333328366279602, 0.13331490755081177, -0.05374349281191826, 0.020650574937462807,
             -0.005717032589018345)
_exp32_q = _horner32("_exp32_q", _EXP32_Q)
_tanh32_p = _horner32("_tanh32_p", _TANH32_P)
_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_F2 = np.float32(2.0)
_FHALF = np.float32(0.5)
_F32_LOG2E = np.float32(1.4426950408889634)
_F32_NLN2_HI = np.float32(-0.693145751953125)        # 0x3F317200: k * this is exact, |k| <= 2^8
_F32_NLN2_LO = np.float32(-1.428606765330187e-06)    # ln2 - 0.693145751953125, rounded
_F32_EXP_LO = np.float32(-104.0)
_F32_EXP_HI = np.float32(89.0)
_F32_TANH_CUT = np.float32(0.625)
_F32_TANH_SAT = np.float32(10.0)


# --- building blocks ---------------------------------------------------------------------------
@_inline
def _pow2(kf):
    """2.0**kf for an integer-valued float64 kf in [-1022, 1023]."""
    return i64_as_f64(((f64_as_i64(kf + _SHIFT) + 1023) & 0x7FF) << 52)


@_inline
def _ldexp_normal(p, kf):
    """p * 2**kf by an integer add to the exponent bits (exact while the result stays normal)."""
    return i64_as_f64(f64_as_i64(p) + ((f64_as_i64(kf + _SHIFT) & 0xFFF) << 52))


@_inline
def _exp_f32core(xs):
    """e^xs in float64 to ~2e-10 relative, for finite xs in [-110, 89]."""
    kf = rint(xs * _LOG2E)
    r = xs - kf * _LN2
    return _exp_p8(r) * _pow2(kf)


@_inline
def _log_core64(xs):
    """log(xs) for finite xs > 0 (subnormals included), ~1 ulp."""
    sub = xs < _DBL_MIN
    xs = xs * _TWO54 if sub else xs
    bits = f64_as_i64(xs)
    m = i64_as_f64((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    ef = i64_as_f64((bits >> 52) | 0x4330000000000000) - _TWO52_BIAS
    ef = ef + (1.0 if big else 0.0) - (54.0 if sub else 0.0)
    f = m - 1.0
    s = f / (2.0 + f)
    lm = f - s * (f - _log_r10(s * s))
    return fma(ef, _LN2_HI, lm + ef * _LN2_LO)


@_inline
def _log_core32(xd):
    """log(xd) for xd a positive normal float64 (every float32 is one), ~1e-11 relative."""
    bits = f64_as_i64(xd)
    m = i64_as_f64((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    ef = i64_as_f64((bits >> 52) | 0x4330000000000000) - _TWO52_BIAS
    ef = ef + (1.0 if big else 0.0)
    f = m - 1.0
    s = f / (2.0 + f)
    lm = f - s * (f - _log_r6(s * s))
    return ef * _LN2 + lm


@_inline
def _expm1_core64(xs):
    """e^xs - 1 for xs in [-40, 710] (inf above the overflow threshold)."""
    kf = rint(xs * _LOG2E)
    r = fma(-kf, _LN2_HI, xs)
    r = fma(-kf, _LN2_LO, r)
    em = fma(r * r, _expm1_q13(r), r)          # e^r - 1
    h = _pow2(kf - 1.0)
    # e^x - 1 = 2^k * em + (2^k - 1) = 2 * (h * em + (h - 1/2))
    return fma(h, em, h - 0.5) * 2.0


# --- exp ---------------------------------------------------------------------------------------
@_inline
def _exp32_red(xs):
    """(e^r, k) with xs = k ln2 + r, |r| <= ln2/2, for finite float32 xs in [-104, 89]; all
    float32. e^r = 1 + fma(r*r, Q, r): the fma keeps ``reassoc`` from regrouping the sum."""
    kf = rint(xs * _F32_LOG2E)
    r = fma_f32(kf, _F32_NLN2_HI, xs)        # exact (Cody-Waite, 16-bit ln2 head)
    r = fma_f32(kf, _F32_NLN2_LO, r)
    return _F1 + fma_f32(r * r, _exp32_q(r), r), kf


@_inline
def exp_f32(x):
    x = np.float32(x)
    xs = x if x > _F32_EXP_LO else _F32_EXP_LO    # NaN -> -104 here, restored below
    xs = xs if xs < _F32_EXP_HI else _F32_EXP_HI
    p, kf = _exp32_red(xs)
    k1 = rint(kf * _FHALF)                         # two steps: subnormal results round once
    res = ldexp_f32(p, k1) * pow2_f32(kf - k1)
    return res if x == x else x


@_inline
def exp_f32_wide(x):
    """exp in float64 rounded once (correctly rounded nearly always; 4-wide, slower)."""
    xd = np.float64(x)
    xs = xd if xd > -104.0 else -104.0        # NaN -> -104 here, restored below
    xs = xs if xs < 89.0 else 89.0
    res = _exp_f32core(xs)
    return np.float32(res if xd == xd else xd)


@_inline
def exp_f64(x):
    x = np.float64(x)
    xs = x if x > -1080.0 else -1080.0
    xs = xs if xs < 710.0 else 710.0
    kf = rint(xs * _LOG2E)
    r = fma(-kf, _LN2_HI, xs)
    r = fma(-kf, _LN2_LO, r)
    p = _exp_p13(r)
    k1 = rint(kf * 0.5)                       # two steps so that subnormal results round once
    res = _ldexp_normal(p, k1) * _pow2(kf - k1)
    return res if x == x else x


_exp_f64 = exp_f64   # IR-inlined into sigmoid_f64 and erf_f64 (``exp_f64`` is rebound below)


# --- expm1 -------------------------------------------------------------------------------------
@_inline
def expm1_f32(x):
    xd = np.float64(x)
    xs = xd if xd > -40.0 else -40.0
    xs = xs if xs < 89.0 else 89.0
    kf = rint(xs * _LOG2E)
    r = xs - kf * _LN2
    em = r + r * r * _expm1_q9(r)
    h = _pow2(kf - 1.0)
    res = copysign(fma(h, em, h - 0.5) * 2.0, xd)    # expm1 has the sign of x (-0 included)
    return np.float32(res if xd == xd else xd)


@_inline
def expm1_f64(x):
    x = np.float64(x)
    xs = x if x > -40.0 else -40.0
    xs = xs if xs < 710.0 else 710.0
    res = copysign(_expm1_core64(xs), x)      # expm1 has the sign of x (-0 included)
    return res if x == x else x


# --- log / log1p -------------------------------------------------------------------------------
@_inline
def log_f32(x):
    xd = np.float64(x)
    xs = xd if xd > 0.0 else 1.0
    xs = xs if xs < _INF else 1.0
    res = _log_core32(xs)
    res = xd if xd == _INF else res
    res = -_INF if xd == 0.0 else res
    res = _NAN if xd < 0.0 else res
    return np.float32(xd if xd != xd else res)


@_inline
def log_f64(x):
    x = np.float64(x)
    xs = x if x > 0.0 else 1.0
    xs = xs if xs < _INF else 1.0
    res = _log_core64(xs)
    res = x if x == _INF else res
    res = -_INF if x == 0.0 else res
    res = _NAN if x < 0.0 else res
    return x if x != x else res


@_inline
def log1p_f32(x):
    xd = np.float64(x)
    near = (xd > -0.2928) & (xd < 0.4142)
    # near 0: log(1+f) with f = x exactly; else log(1 + x), 1 + x has a relative error 2^-53
    f = xd if near else 0.0
    s = f / (2.0 + f)
    small = f - s * (f - _log_r6(s * s))
    u = 1.0 + xd
    us = u if u > 0.0 else 1.0
    us = us if us < _INF else 1.0
    res = copysign(small if near else _log_core32(us), xd)   # log1p has the sign of x
    res = xd if xd == _INF else res
    res = -_INF if xd == -1.0 else res
    res = _NAN if xd < -1.0 else res
    return np.float32(xd if xd != xd else res)


@_inline
def log1p_f64(x):
    x = np.float64(x)
    near = (x > -0.2928) & (x < 0.4142)
    f = x if near else 0.0
    s = f / (2.0 + f)
    small = f - s * (f - _log_r10(s * s))
    u = 1.0 + x
    c = (x - (u - 1.0)) if x < 1.0 else (1.0 - (u - x))   # rounding error of u (Fast2Sum)
    us = u if u > 0.0 else 1.0
    us = us if us < _INF else 1.0
    big = _log_core64(us) + c / us
    res = copysign(small if near else big, x)
    res = x if x == _INF else res
    res = -_INF if x == -1.0 else res
    res = _NAN if x < -1.0 else res
    return x if x != x else res


# --- tanh --------------------------------------------------------------------------------------
@_inline
def tanh_f32(x):
    x = np.float32(x)
    a = abs(x)
    a = a if a < _F32_TANH_SAT else _F32_TANH_SAT   # NaN -> 10 (tanh(10) rounds to 1)
    u = a * a
    small = fma_f32(a * u, _tanh32_p(u), a)          # |x| < 0.625
    p, kf = _exp32_red(a + a)
    e = p * pow2_f32(kf)                             # e^(2a), 2a <= 20
    big = _F1 - _F2 / (e + _F1)                      # 2/(e+1) < 1/2 here: error <= ~1 ulp
    res = copysign(small if a < _F32_TANH_CUT else big, x)
    return res if x == x else x


@_inline
def tanh_f32_wide(x):
    """tanh in float64 rounded once (4-wide, slower)."""
    xd = np.float64(x)
    a = abs(xd)
    a = a if a < 20.0 else 20.0               # NaN -> 20
    small = a + a * _tanh_small(a * a)
    kf = rint(-2.0 * a * _LOG2E)
    e = _exp_p10(-2.0 * a - kf * _LN2) * _pow2(kf)     # e^(-2a), rel err 2e-13
    big = (1.0 - e) / (1.0 + e)
    res = copysign(small if a < 0.1 else big, xd)
    return np.float32(res if xd == xd else xd)


@_inline
def tanh_f64(x):
    x = np.float64(x)
    a = abs(x)
    a = a if a < 22.0 else 22.0
    em = _expm1_core64(-2.0 * a)              # in (-1, 0]
    res = copysign(-em / (2.0 + em), x)
    return res if x == x else x


# --- sigmoid -----------------------------------------------------------------------------------
@_inline
def sigmoid_f32(x):
    xd = np.float64(x)
    a = -abs(xd)
    a = a if a > -110.0 else -110.0           # NaN -> -110
    t = _exp_f32core(a)                       # e^-|x|
    res = (1.0 if xd >= 0.0 else t) / (1.0 + t)
    return np.float32(res if xd == xd else xd)


@_inline
def sigmoid_f64(x):
    x = np.float64(x)
    t = _exp_f64(-abs(x))
    res = (1.0 if x >= 0.0 else t) / (1.0 + t)
    return res if x == x else x


# --- erf ---------------------------------------------------------------------------------------
@_inline
def erf_f32(x):
    xd = np.float64(x)
    a = abs(xd)
    a = a if a < 4.0 else 4.0                 # erf(4) rounds to 1 in float32; NaN -> 4
    z = a * a                                 # exact: a has 24 significant bits
    small = a * _erf_small32(z)
    big = 1.0 - _exp_f32core(-z) * _erfc_r32((a - _ERFC_R32_CH[0]) * _ERFC_R32_CH[1])
    res = copysign(small if a < 0.84375 else big, xd)
    return np.float32(res if xd == xd else xd)


@_inline
def erf_f64(x):
    x = np.float64(x)
    a = abs(x)
    a = a if a < 6.0 else 6.0                 # erf(6) rounds to 1; NaN -> 6
    z = a * a
    small = a + a * _erf_small64(z)
    zlo = fma(a, a, -z)                       # a*a = z + zlo exactly
    zs = z if a >= 0.84375 else 1.0
    e = _exp_f64(-zs) * (1.0 - zlo)            # exp(-a^2)
    lo = a < 2.5
    u = (a - (_ERFC_R64_A_CH[0] if lo else _ERFC_R64_B_CH[0])) * (
        _ERFC_R64_A_CH[1] if lo else _ERFC_R64_B_CH[1])
    r = _erfc_r64a(u) if lo else _erfc_r64b(u)
    big = 1.0 - e * r
    res = copysign(small if a < 0.84375 else big, x)
    return res if x == x else x


# --- floor division ----------------------------------------------------------------------------
# numpy's npy_divmod: the quotient of a - fmod(a, b), so inf // 2 is NaN and float32
# 1e-30 // -1e30 is -1 (floor(a / b) gives +-inf and -0.0 there); b == 0 gives a / b.
def _floor_divide(t):
    zero, one, half = t(0.0), t(1.0), t(0.5)

    def floor_divide(a, b):
        a, b = t(a), t(b)
        if b == zero:
            return a / b
        mod = np.fmod(a, b)
        div = (a - mod) / b
        if mod != zero:
            if (b < zero) != (mod < zero):
                div = div - one
        if div != zero:
            fd = np.floor(div)
            if div - fd > half:
                fd = fd + one
            return fd
        return copysign(zero, a / b)
    return floor_divide


# --- how kernels call them ---------------------------------------------------------------------
# ``inline='always'`` inlines at numba's IR level: numba types the callee again inside the
# whole calling kernel at every call site, ~0.17 s of compile per site in a large kernel
# (benchmarks/CODEGEN-FACTS.md).  The functions in _CALLED are instead compiled once (and
# cached on disk beside this file) and *called* by kernels; LLVM's inliner puts each into the
# calling loop, which vectorizes as before (tests/test_mathlib.py checks the loops and the
# accuracy).  The callee keeps its own fastmath flags (FASTMATH), whatever the caller's.
# erf and log1p stay IR-inlined: they are over LLVM's inlining threshold, and a call left in
# a loop would make it scalar (3x slower).
_CALLED = ("exp_f32", "exp_f32_wide", "exp_f64", "expm1_f32", "expm1_f64", "log_f32", "log_f64",
           "tanh_f32", "tanh_f32_wide", "tanh_f64", "sigmoid_f32", "sigmoid_f64")


def _called(fn, fastmath=FASTMATH):
    d = njit(fastmath=set(fastmath), error_model="numpy", cache=True)(getattr(fn, "py_func", fn))
    # numba's cache checks this file's contents only: make intrinsics.py count too
    index = getattr(getattr(d, "_cache", None), "_cache_file", None)
    if index is not None and hasattr(index, "_source_stamp"):
        index._source_stamp = (index._source_stamp, SOURCE_HASH)
    return d


for _name in _CALLED:
    globals()[_name] = _called(globals()[_name])
del _name
# no fastmath flags: with ``arcp`` the vectorized loop divided by a subnormal b as a * (1 / b),
# 1 / b overflowing (NaN for 0 // 1e-40)
floor_divide_f32 = _called(_floor_divide(np.float32), fastmath=())
floor_divide_f64 = _called(_floor_divide(np.float64), fastmath=())
