"""LLVM intrinsics for generated numba code, with pure-Python twins for ``NUMBA_DISABLE_JIT=1``.

Every helper here is a scalar function that the loop vectorizer can widen:

``fmax(a, b)`` / ``fmin(a, b)``
    NaN-propagating maximum/minimum (``llvm.maximum`` / ``llvm.minimum``): NaN if either
    argument is NaN, else the larger/smaller value, with ``-0.0 < +0.0``. Same values as
    ``np.maximum``/``np.minimum`` except that numpy may return either zero for ``(-0.0, +0.0)``.
    A reduction ``m = fmax(m, x[i])`` vectorizes (a max written with ``if`` or ``max()`` does not).
    Float32 and float64; mixed float arguments are computed in the wider type.
``rint(x)``      round to nearest integer, ties to even (``llvm.rint``), same float type.
``fma(a, b, c)`` ``a*b + c`` with one rounding (``llvm.fma.f64``, float64 only). Besides
    accuracy it is a barrier: fastmath ``reassoc`` never regroups across it.
``copysign(a, b)``  |a| with the sign of b (``llvm.copysign``), same float type.
``f64_as_i64 / i64_as_f64 / f32_as_i32 / i32_as_f32``  bit casts.
``fma_f32(a, b, c)``  float32 ``a*b + c`` with one rounding (``llvm.fma.f32``); a reassoc barrier too.
``pow2_f32(k)``   2**k as float32 for an integer-valued float32 k in [-126, 127] (exponent bits
    from an int32 convert and shift: vectorizes as 8 x i32).
``ldexp_f32(p, k)``  p * 2**k by an int32 add to p's exponent bits (exact while the result is a
    normal number; p normal, k integer-valued float32).

With jit disabled (checked once at import, as numba itself does), the same names are bound to
Python functions with identical results on numpy scalars, so generated kernels run unjitted.
"""
from fractions import Fraction
import math

import numpy as np
from numba.core import config

__all__ = ["fmax", "fmin", "rint", "fma", "copysign",
           "f64_as_i64", "i64_as_f64", "f32_as_i32", "i32_as_f32",
           "fma_f32", "pow2_f32", "ldexp_f32"]


# ----------------------------------------------------------------------------------------------
# pure-Python semantics (used when jit is disabled; also the specification of the jitted ones)

def _py_float_type(a, b):
    a_t = a.dtype if isinstance(a, np.floating) else np.dtype(np.float64)
    b_t = b.dtype if isinstance(b, np.floating) else np.dtype(np.float64)
    return np.promote_types(a_t, b_t).type


def py_fmax(a, b):
    t = _py_float_type(a, b)
    a, b = t(a), t(b)
    if a != a:
        return a
    if b != b:
        return b
    if a == b:  # +0.0 beats -0.0
        return a if math.copysign(1.0, a) > 0 else b
    return a if a > b else b


def py_fmin(a, b):
    t = _py_float_type(a, b)
    a, b = t(a), t(b)
    if a != a:
        return a
    if b != b:
        return b
    if a == b:  # -0.0 beats +0.0
        return a if math.copysign(1.0, a) < 0 else b
    return a if a < b else b


def py_rint(x):
    return np.rint(x) if isinstance(x, np.floating) else np.rint(np.float64(x))


def py_fma(a, b, c):
    a, b, c = float(a), float(b), float(c)
    if math.isfinite(a) and math.isfinite(b) and math.isfinite(c):
        try:
            return np.float64(float(Fraction(a) * Fraction(b) + Fraction(c)))
        except OverflowError:
            pass
    with np.errstate(all="ignore"):
        return np.float64(a) * np.float64(b) + np.float64(c)


def py_copysign(a, b):
    t = a.dtype.type if isinstance(a, np.floating) else np.float64
    return t(np.copysign(t(a), t(b)))


def py_f64_as_i64(x):
    return np.float64(x).view(np.int64)


def py_i64_as_f64(i):
    return np.int64(i).view(np.float64)


def py_f32_as_i32(x):
    return np.float32(x).view(np.int32)


def py_i32_as_f32(i):
    return np.int32(i).view(np.float32)


def py_fma_f32(a, b, c):
    """a*b + c rounded once to float32 (exact rational arithmetic, ties to even)."""
    a, b, c = np.float32(a), np.float32(b), np.float32(c)
    if not (np.isfinite(a) and np.isfinite(b) and np.isfinite(c)):
        with np.errstate(all="ignore"):
            return np.float32(a * b + c)
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    with np.errstate(all="ignore"):
        f = np.float32(float(exact))
    if not np.isfinite(f):
        return f
    best = f
    for g in (np.nextafter(f, np.float32(np.inf)), np.nextafter(f, np.float32(-np.inf))):
        if not np.isfinite(g):
            continue
        dg, db = abs(Fraction(float(g)) - exact), abs(Fraction(float(best)) - exact)
        if dg < db or (dg == db and (int(g.view(np.int32)) & 1) == 0):
            best = g
    return np.float32(best)


def py_pow2_f32(k):
    return np.float32(np.ldexp(np.float32(1.0), int(k)))


def py_ldexp_f32(p, k):
    return np.float32(np.ldexp(np.float32(p), int(k)))


# ----------------------------------------------------------------------------------------------
# jitted versions

def _build_intrinsics():
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    def _suffix(ty):
        return "f32" if ty.bitwidth == 32 else "f64"

    def _call(builder, name, args):
        fnty = ir.FunctionType(args[0].type, [a.type for a in args])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        return builder.call(fn, args)

    def _minmax(llvm_name):
        def typer(typingctx, a, b):
            if not (isinstance(a, types.Float) and isinstance(b, types.Float)):
                return None
            res = a if a.bitwidth >= b.bitwidth else b

            def codegen(context, builder, sig, args):
                x = context.cast(builder, args[0], sig.args[0], res)
                y = context.cast(builder, args[1], sig.args[1], res)
                return _call(builder, f"llvm.{llvm_name}.{_suffix(res)}", [x, y])
            return res(a, b), codegen
        return typer

    fmax = intrinsic(_minmax("maximum"))
    fmin = intrinsic(_minmax("minimum"))

    @intrinsic
    def rint(typingctx, x):
        if not isinstance(x, types.Float):
            return None

        def codegen(context, builder, sig, args):
            return _call(builder, f"llvm.rint.{_suffix(x)}", list(args))
        return x(x), codegen

    def _fma(ty):
        """``a*b + c`` with one rounding, its operands converted to ``ty``."""
        def typer(typingctx, a, b, c):
            if not all(isinstance(t, types.Float) for t in (a, b, c)):
                return None

            def codegen(context, builder, sig, args):
                xs = [context.cast(builder, v, t, ty) for v, t in zip(args, sig.args)]
                return _call(builder, f"llvm.fma.{_suffix(ty)}", xs)
            return ty(a, b, c), codegen
        return intrinsic(typer)

    fma = _fma(types.float64)

    @intrinsic
    def copysign(typingctx, a, b):
        if not (isinstance(a, types.Float) and isinstance(b, types.Float)):
            return None

        def codegen(context, builder, sig, args):
            y = context.cast(builder, args[1], sig.args[1], a)
            return _call(builder, f"llvm.copysign.{_suffix(a)}", [args[0], y])
        return a(a, b), codegen

    def _bitcast(src, dst):
        def typer(typingctx, x):
            if x != src:
                return None

            def codegen(context, builder, sig, args):
                return builder.bitcast(args[0], context.get_value_type(dst))
            return dst(x), codegen
        return intrinsic(typer)

    fma_f32 = _fma(types.float32)

    i32 = ir.IntType(32)

    def _exp_bits(builder, k):
        # (int32(k) + 127) << 23: the bit pattern of 2**k (k integer-valued, in [-126, 127])
        ki = builder.fptosi(k, i32)
        return builder.shl(builder.add(ki, ir.Constant(i32, 127)), ir.Constant(i32, 23))

    @intrinsic
    def pow2_f32(typingctx, k):
        if k != types.float32:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(_exp_bits(builder, args[0]), ir.FloatType())
        return types.float32(k), codegen

    @intrinsic
    def ldexp_f32(typingctx, p, k):
        if p != types.float32 or k != types.float32:
            return None

        def codegen(context, builder, sig, args):
            pb = builder.bitcast(args[0], i32)
            kb = builder.shl(builder.fptosi(args[1], i32), ir.Constant(i32, 23))
            return builder.bitcast(builder.add(pb, kb), ir.FloatType())
        return types.float32(p, k), codegen

    return dict(
        fma_f32=fma_f32, pow2_f32=pow2_f32, ldexp_f32=ldexp_f32,
        fmax=fmax, fmin=fmin, rint=rint, fma=fma, copysign=copysign,
        f64_as_i64=_bitcast(types.float64, types.int64),
        i64_as_f64=_bitcast(types.int64, types.float64),
        f32_as_i32=_bitcast(types.float32, types.int32),
        i32_as_f32=_bitcast(types.int32, types.float32),
    )


JIT_DISABLED = bool(config.DISABLE_JIT)

if JIT_DISABLED:
    fmax, fmin, rint, fma, copysign = py_fmax, py_fmin, py_rint, py_fma, py_copysign
    f64_as_i64, i64_as_f64 = py_f64_as_i64, py_i64_as_f64
    f32_as_i32, i32_as_f32 = py_f32_as_i32, py_i32_as_f32
    fma_f32, pow2_f32, ldexp_f32 = py_fma_f32, py_pow2_f32, py_ldexp_f32
else:
    globals().update(_build_intrinsics())
