"""Operations of generated kernels lowered inline (numba intrinsics), so that numba compiles
no function for them: array allocation and integer min/max.

numba implements ``np.empty(shape, dtype)`` as an ``@overload``: in every new process, the
first kernel that allocates an array of a new (ndim, dtype) compiles that overload's
implementation (and the allocator it calls) through numba's whole pipeline, 0.05-0.2 s each
(benchmarks/first_call_results.md: 0.15-0.6 s of a cold first call, 1-4 signatures per
kernel).  ``empty``/``zeros`` below are intrinsics: typed once per call site and lowered
straight to the same NRT allocation numba's own ``np.empty`` makes (an aligned MemInfo, a
C-contiguous array over it; ``zeros`` also clears the bytes), with no function compiled.

``shape`` is an int or a tuple of ints (literal or not), ``dtype`` a numpy scalar class
(``np.float32``, ``np.bool_``, ...).  Likewise the builtins ``max``/``min`` of two ints are
overloads (one compiled function each); ``imax``/``imin`` are a compare and a select.
Outside numba (``Kernel.run_python``, ``NUMBA_DISABLE_JIT``) these are ``np.empty``,
``np.zeros``, ``max`` and ``min`` (``PY_TWINS``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import cgutils, config, types
from numba.core.errors import TypingError
from numba.extending import intrinsic
from numba.np.arrayobj import _parse_shape, get_itemsize, make_array, populate_array


def _array_type(shape, dtype, name):
    if isinstance(shape, types.Integer):
        ndim = 1
    elif isinstance(shape, types.BaseTuple) and all(isinstance(t, types.Integer) for t in shape):
        ndim = len(shape)
    else:
        raise TypingError(f"{name}: shape must be an int or a tuple of ints, not {shape}")
    if isinstance(dtype, (types.NumberClass, types.DType)):
        dt = dtype.dtype
    else:
        raise TypingError(f"{name}: dtype must be a numpy scalar class, not {dtype}")
    shape = types.unliteral(shape) if isinstance(shape, types.Integer) else \
        types.UniTuple(types.intp, ndim) if ndim else types.Tuple(())
    return types.Array(dt, ndim, "C"), shape


def _alloc(context, builder, arrtype, shapety, shapeval, zero):
    shapes = _parse_shape(context, builder, shapety, shapeval)
    ary = make_array(arrtype)(context, builder)
    itemsize = context.get_constant(types.intp, get_itemsize(context, arrtype))
    n = context.get_constant(types.intp, 1)
    overflow = ir.Constant(ir.IntType(1), 0)
    for s in shapes:
        m = builder.smul_with_overflow(n, s)
        n = builder.extract_value(m, 0)
        overflow = builder.or_(overflow, builder.extract_value(m, 1))
    strides = [itemsize]
    for d in reversed(shapes[1:]):
        strides.append(builder.mul(strides[-1], d))
    strides = tuple(reversed(strides)) if shapes else ()
    m = builder.smul_with_overflow(n, itemsize)
    size = builder.extract_value(m, 0)
    overflow = builder.or_(overflow, builder.extract_value(m, 1))
    with builder.if_then(overflow, likely=False):
        context.call_conv.return_user_exc(
            builder, ValueError,
            ("array is too big; `arr.size * arr.dtype.itemsize` is larger than the maximum "
             "possible size.",))
    align = context.get_constant(types.uint32, context.get_preferred_array_alignment(arrtype.dtype))
    meminfo = context.nrt.meminfo_alloc_aligned(builder, size, align)
    data = context.nrt.meminfo_data(builder, meminfo)
    if zero:
        cgutils.memset(builder, data, size, 0)
    intp = context.get_value_type(types.intp)
    populate_array(ary, data=builder.bitcast(data, context.get_data_type(arrtype.dtype).as_pointer()),
                   shape=cgutils.pack_array(builder, shapes, ty=intp),
                   strides=cgutils.pack_array(builder, strides, ty=intp),
                   itemsize=itemsize, meminfo=meminfo)
    return ary._getvalue()


def _make(name, zero):
    def typer(typingctx, shape, dtype):
        arrtype, shapety = _array_type(shape, dtype, name)
        sig = arrtype(shapety, dtype)

        def codegen(context, builder, sig, args):
            return _alloc(context, builder, sig.return_type, sig.args[0], args[0], zero)

        return sig, codegen

    typer.__name__ = name
    typer.__doc__ = f"``np.{name}(shape, dtype)`` (C order) inside a kernel: no function compiled."
    return intrinsic(typer)


empty = _make("empty", False)
zeros = _make("zeros", True)



def _make_minmax(name, op):
    def typer(typingctx, a, b):
        if not (isinstance(a, types.Integer) and isinstance(b, types.Integer)):
            raise TypingError(f"{name}: two ints expected, not {a}, {b}")
        ty = typingctx.unify_pairs(types.unliteral(a), types.unliteral(b))
        sig = ty(ty, ty)

        def codegen(context, builder, sig, args):
            x, y = args
            signed = sig.return_type.signed
            c = builder.icmp_signed(op, x, y) if signed else builder.icmp_unsigned(op, x, y)
            return builder.select(c, x, y)

        return sig, codegen

    typer.__name__ = name
    typer.__doc__ = f"``{name[1:]}(a, b)`` of two ints inside a kernel: no function compiled."
    return intrinsic(typer)


imax = _make_minmax("imax", ">=")
imin = _make_minmax("imin", "<=")

# what the Python run of a kernel calls instead (compile/kernel.py: python_function)
PY_TWINS = {"empty": np.empty, "zeros": np.zeros, "imax": max, "imin": min}

if config.DISABLE_JIT:  # a kernel run as plain Python: intrinsics cannot be called there
    empty, zeros, imax, imin = (PY_TWINS[k] for k in ("empty", "zeros", "imax", "imin"))
