"""Every primitive of dualgraph, each declared once with its rules beside it.

Per primitive: numpy implementation, shape/dtype rule, and a VJP rule written in
dualgraph ops (the functions defined in this module), so the same rule runs on the
eager tape, under the tracer (IR autodiff) and with ``create_graph=True``.

A VJP rule has the signature ``vjp(ct, out, inputs, need, **params)``: ``ct`` is the
cotangent of the output, ``out`` the output (only for ``uses_out`` primitives, else
None), ``inputs`` the primitive's inputs (Tensors or Python scalars), ``need`` a tuple of
booleans saying which inputs want a cotangent.  It returns one cotangent (or None) per
input.
"""
from __future__ import annotations

import math

import numpy as np

from .registry import Primitive, ShapedArray, _dispatch, register

_NOPARAMS: dict = {}  # shared, never mutated


def _shape(x):
    # only called for inputs that want a cotangent, which are Tensors
    return x.shape


def _dtype(x):
    return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def _dummy(x):
    """A one-element stand-in with the dtype and rank of ``x`` (the rank matters: a 0-d
    tensor promotes like a scalar, see _torch_promote; Python scalars stay weakly typed)."""
    if isinstance(x, ShapedArray):
        return np.zeros((1,) * x.ndim, x.dtype)
    return x


def _bshape(name, avals):
    shapes = [a.shape for a in avals if isinstance(a, ShapedArray)]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{name}: shapes {' and '.join(str(s) for s in shapes)} are not broadcastable"
        ) from None


# ----------------------------------------------------------------------------------------
# Helpers used by the VJP rules (written in dualgraph ops)
# ----------------------------------------------------------------------------------------


def unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``, undoing numpy broadcasting."""
    gshape = g.shape
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, d in enumerate(shape) if d == 1 and gshape[i + lead] != 1
    )
    if axes:
        g = reduce_sum(g, axes=axes, keepdims=False)
    if g.shape != shape:
        g = reshape(g, shape=shape)
    return g


_nd = np.ndarray


def _torch_promote(f):
    """Mixed int/float operands promote as torch does: to the float tensor's dtype (numpy
    would widen ``int64 * float32`` to float64), and an int tensor with a Python float to
    float32; a 0-d tensor of the same kind as a dimensioned one takes its dtype (torch:
    ``float32[n] + float64 0-d`` is float32).  Otherwise Python scalars stay weak (numpy 2)."""

    def impl(x, y):
        xc, yc = x.__class__, y.__class__
        if xc is _nd:
            if yc is _nd:
                if x.dtype is not y.dtype:
                    x, y = _promote_arrays(x, y)
            elif yc is float and x.dtype.kind in "iub":
                x = x.astype(np.float32)  # int tensor and Python float: float32, as torch
        elif yc is _nd and xc is float and y.dtype.kind in "iub":
            y = y.astype(np.float32)
        return f(x, y)

    impl.__name__ = getattr(f, "__name__", "impl")
    impl.raw = f  # for callers that have checked the operands need no promotion
    return impl


def _promote_arrays(x, y):
    """Two arrays of different dtypes, converted as torch's type promotion would."""
    xk, yk = x.dtype.kind, y.dtype.kind
    if xk == "f" and yk in "iub":
        y = y.astype(x.dtype)
    elif yk == "f" and xk in "iub":
        x = x.astype(y.dtype)
    elif xk == yk and (x.ndim == 0) != (y.ndim == 0):
        if x.ndim == 0:
            x = x.astype(y.dtype)
        else:
            y = y.astype(x.dtype)
    return x, y


def _int_to_float(f):
    """Integer and bool inputs of a float-valued unary op compute in float32, as torch
    (numpy would give float64).  The eager fast path calls ``raw`` after its own check."""

    def impl(x):
        if x.__class__ is _nd and x.dtype.kind in "iub":
            x = x.astype(np.float32)
        return f(x)

    impl.__name__ = getattr(f, "__name__", "impl")
    impl.raw = f
    impl.int_to_float = True
    return impl


def _no_bool_sub(f):
    """torch refuses ``-`` with a bool operand (numpy only refuses bool - bool)."""

    def impl(x, y):
        if x.__class__ is bool or y.__class__ is bool or getattr(x, "dtype", None) == np.bool_ \
                or getattr(y, "dtype", None) == np.bool_:
            raise TypeError(
                "Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                "trying to invert a mask, use the `~` or `logical_not()` operator instead."
            )
        return f(x, y)

    impl.__name__ = getattr(f, "__name__", "impl")
    impl.raw = f.raw
    return impl


def _true_divide(x, y):
    # int / int is a float32 tensor, as in torch (numpy would give float64)
    if np.asarray(x).dtype.kind in "iub" and np.asarray(y).dtype.kind in "iub":
        return np.true_divide(x, y, dtype=np.float32)
    return np.true_divide(x, y)


def _elementwise(name, impl, vjp=None, *, uses_out=False, nondiff=False):
    def shape_rule(*avals, **params):
        shape = _bshape(name, avals)
        with np.errstate(all="ignore"):  # the dummies may divide by zero
            dtype = np.asarray(impl(*[_dummy(a) for a in avals], **params)).dtype
        return ShapedArray(shape, dtype)

    return register(
        Primitive(name, impl, shape_rule, None if nondiff else vjp, uses_out=uses_out)
    )


FUNCTIONS: dict = {}  # function name -> primitive, for handlers that specialise them


def _call(prim):
    """A thin function ``f(*args, **params)`` that binds ``prim`` (what the rules call).

    The eager layer may replace these module attributes by specialised versions of the
    same function (see ``FUNCTIONS``); rules look them up at call time, so they follow."""
    d = _dispatch

    def f(*args, **params):
        return d[0](prim, args, params or _NOPARAMS)

    f.__name__ = prim.name
    f.__qualname__ = prim.name
    f.__doc__ = f"Apply the ``{prim.name}`` primitive."
    f.primitive = prim
    return f


# ----------------------------------------------------------------------------------------
# Elementwise arithmetic
# ----------------------------------------------------------------------------------------


# The add/sub/mul rules are the hot path of eager backward.  They skip ``unbroadcast``
# when the cotangent already has the input's shape, and read shapes as
# ``t._value.shape``: the payload's shape (an array's, or a tracer value's), what
# ``Tensor.shape`` returns, without the property call.  ``g`` and every input that wants a
# cotangent are Tensors.


def _add_vjp(g, out, ins, need):
    x, y = ins
    gs = g._value.shape
    gx = gy = None
    if need[0]:
        gx = g if x._value.shape == gs else unbroadcast(g, x.shape)
    if need[1]:
        gy = g if y._value.shape == gs else unbroadcast(g, y.shape)
    return gx, gy


def _sub_vjp(g, out, ins, need):
    x, y = ins
    gx = gy = None
    if need[0]:
        gx = g if x._value.shape == g._value.shape else unbroadcast(g, x.shape)
    if need[1]:
        gy = neg(g)
        if y._value.shape != gy._value.shape:
            gy = unbroadcast(gy, y.shape)
    return gx, gy


def _mul_vjp(g, out, ins, need):
    x, y = ins
    gx = gy = None
    if need[0]:
        gx = mul(g, y)
        if x._value.shape != gx._value.shape:
            gx = unbroadcast(gx, x.shape)
    if need[1]:
        gy = mul(g, x)
        if y._value.shape != gy._value.shape:
            gy = unbroadcast(gy, y.shape)
    return gx, gy


def _div_vjp(g, out, ins, need):
    x, y = ins
    gx = div(g, y)
    return (
        unbroadcast(gx, _shape(x)) if need[0] else None,
        unbroadcast(neg(mul(gx, div(x, y))), _shape(y)) if need[1] else None,
    )


def _pow_impl(x, y):
    # numpy's float32 `x ** 3` is pathologically slow: small integer powers multiply.
    if y.__class__ is int or y.__class__ is float:
        if y == 2:
            return x * x
        if y == 3:
            return x * x * x
        if y == 1:
            return np.array(x, copy=True) if isinstance(x, np.ndarray) else x
    return np.power(x, y)


def _pow_vjp(g, out, ins, need):
    x, y = ins
    gx = gy = None
    if need[0]:
        if isinstance(y, (int, float)):  # a Python scalar (bool included)
            if y == 2:
                d = mul(x, 2)
            elif y == 0:  # as torch: zero, even where x is inf or nan
                return zeros(x.shape, g.dtype), None
            else:
                d = mul(pow(x, y - 1), y)
        else:
            if _dtype(y).kind == "b":
                y = convert(y, dtype=_dtype(x))
            d = mul(pow(x, sub(y, 1)), y)
            d = where(eq(y, 0), 0, d)  # as torch: x ** 0 has zero gradient everywhere
        gx = unbroadcast(mul(g, d), _shape(x))
    if need[1]:
        if isinstance(x, (int, float)):
            with np.errstate(divide="ignore", invalid="ignore"):
                lx = float(np.log(np.float64(x)))  # a weak Python float: keeps out's dtype
        else:
            lx = log(x if _dtype(x) == _dtype(out) else convert(x, dtype=_dtype(out)))
        # as torch: zero where x == 0 and y >= 0 (not out * log(0) = 0 * -inf)
        d = where(logical_and(eq(x, 0), ge(y, 0)), 0, mul(out, lx))
        gy = unbroadcast(mul(g, d), _shape(y))
    return gx, gy


def _maximum_vjp(g, out, ins, need, _pick=None):
    x, y = ins
    # torch semantics: at ties each side gets half of the gradient
    # (and, as torch, only the losing side is masked: where x or y is NaN both get it)
    zero = mul(g, 0)
    base = where(eq(x, y), mul(g, 0.5), g)
    xloses, yloses = (lt(x, y), gt(x, y)) if _pick is None else (gt(x, y), lt(x, y))
    gx = where(xloses, zero, base)
    gy = where(yloses, zero, base)
    return (
        unbroadcast(gx, _shape(x)) if need[0] else None,
        unbroadcast(gy, _shape(y)) if need[1] else None,
    )


def _minimum_vjp(g, out, ins, need):
    return _maximum_vjp(g, out, ins, need, _pick="min")


add_p = _elementwise("add", _torch_promote(np.add), _add_vjp)
sub_p = _elementwise("sub", _no_bool_sub(_torch_promote(np.subtract)), _sub_vjp)
mul_p = _elementwise("mul", _torch_promote(np.multiply), _mul_vjp)
div_p = _elementwise("div", _torch_promote(_true_divide), _div_vjp)
pow_p = _elementwise("pow", _torch_promote(_pow_impl), _pow_vjp, uses_out=True)
maximum_p = _elementwise("maximum", _torch_promote(np.maximum), _maximum_vjp)
minimum_p = _elementwise("minimum", _torch_promote(np.minimum), _minimum_vjp)

neg_p = _elementwise("neg", np.negative, lambda g, out, ins, need: (neg(g),))
exp_p = _elementwise("exp", _int_to_float(np.exp), lambda g, out, ins, need: (mul(g, out),), uses_out=True)
log_p = _elementwise("log", _int_to_float(np.log), lambda g, out, ins, need: (div(g, ins[0]),))
def _tanh_backward_impl(g, y):
    # g * (1 - y*y) with array operands only: a Python-scalar operand costs numpy 2 about
    # twice an array-array ufunc call on small arrays
    return g - g * y * y


def _tanh_backward_vjp(c, out, ins, need):
    g, y = ins
    return (
        unbroadcast(mul(c, sub(1, mul(y, y))), _shape(g)) if need[0] else None,
        unbroadcast(mul(mul(c, g), mul(y, -2)), _shape(y)) if need[1] else None,
    )


# d tanh = g * (1 - y^2), one primitive so eager backward pays one dispatch, not three
tanh_backward_p = _elementwise("tanh_backward", _tanh_backward_impl, _tanh_backward_vjp)
tanh_p = _elementwise(
    "tanh", _int_to_float(np.tanh), lambda g, out, ins, need: (tanh_backward(g, out),), uses_out=True
)


def _sigmoid_impl(x):
    # 1 / (1 + exp(-x)) without overflow warnings for large |x|
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def _sigmoid_backward_impl(g, y):
    return g * (y - y * y)  # g * y * (1 - y), array operands only (see tanh_backward)


def _sigmoid_backward_vjp(c, out, ins, need):
    g, y = ins
    return (
        unbroadcast(mul(c, mul(y, sub(1, y))), _shape(g)) if need[0] else None,
        unbroadcast(mul(mul(c, g), sub(1, mul(y, 2))), _shape(y)) if need[1] else None,
    )


sigmoid_backward_p = _elementwise("sigmoid_backward", _sigmoid_backward_impl, _sigmoid_backward_vjp)
sigmoid_p = _elementwise(
    "sigmoid",
    _int_to_float(_sigmoid_impl),
    lambda g, out, ins, need: (sigmoid_backward(g, out),),
    uses_out=True,
)
sqrt_p = _elementwise(
    "sqrt", _int_to_float(np.sqrt), lambda g, out, ins, need: (div(g, mul(out, 2)),), uses_out=True
)
abs_p = _elementwise("abs", np.abs, lambda g, out, ins, need: (mul(g, sign(ins[0])),))


def _sign_impl(x):
    s = np.sign(x)
    if s.dtype.kind == "f":
        s = np.where(s != s, s.dtype.type(0), s)  # torch: sign(nan) = 0
    return s


sign_p = _elementwise("sign", _sign_impl, nondiff=True)


def _erf_impl(x):
    from scipy.special import erf

    return erf(x)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
erf_p = _elementwise(
    "erf",
    _int_to_float(_erf_impl),
    lambda g, out, ins, need: (
        mul(g, mul(exp(neg(mul(ins[0], ins[0]))), _TWO_OVER_SQRT_PI)),
    ),
)

# comparisons and logic: bool results, no gradient
lt_p = _elementwise("lt", np.less, nondiff=True)
le_p = _elementwise("le", np.less_equal, nondiff=True)
gt_p = _elementwise("gt", np.greater, nondiff=True)
ge_p = _elementwise("ge", np.greater_equal, nondiff=True)
eq_p = _elementwise("eq", np.equal, nondiff=True)
ne_p = _elementwise("ne", np.not_equal, nondiff=True)
and_p = _elementwise("and", np.logical_and, nondiff=True)
or_p = _elementwise("or", np.logical_or, nondiff=True)
not_p = _elementwise("not", np.logical_not, nondiff=True)


def _where_vjp(g, out, ins, need):
    c, x, y = ins
    zero = mul(g, 0)
    return (
        None,
        unbroadcast(where(c, g, zero), _shape(x)) if need[1] else None,
        unbroadcast(where(c, zero, g), _shape(y)) if need[2] else None,
    )


def _where_impl(c, x, y):
    if getattr(c, "dtype", np.bool_) != np.bool_:
        raise TypeError(f"where: expected a bool condition, got {np.dtype(c.dtype).name} (as torch)")
    # the branches promote as torch's binary ops do (see _torch_promote)
    if x.__class__ is _nd:
        if y.__class__ is _nd:
            if x.dtype is not y.dtype:
                x, y = _promote_arrays(x, y)
        elif y.__class__ is float and x.dtype.kind in "iub":
            x = x.astype(np.float32)
    elif y.__class__ is _nd and x.__class__ is float and y.dtype.kind in "iub":
        y = y.astype(np.float32)
    return np.where(c, x, y)


def _where_rule(c, x, y):
    shape = _bshape("where", (c, x, y))
    dtype = np.asarray(_where_impl(np.True_, _dummy(x), _dummy(y))).dtype
    return ShapedArray(shape, dtype)


where_p = register(Primitive("where", _where_impl, _where_rule, _where_vjp))


def _convert_impl(x, dtype):
    return np.asarray(x).astype(dtype)


convert_p = register(
    Primitive(
        "convert",
        _convert_impl,
        lambda x, dtype: ShapedArray(_shape(x), dtype),
        lambda g, out, ins, need, dtype: (convert(g, dtype=_dtype(ins[0])),),
    )
)

# ----------------------------------------------------------------------------------------
# Creation
# ----------------------------------------------------------------------------------------


def _full_impl(shape, value, dtype):
    return np.full(shape, value, dtype)


full_p = register(
    Primitive("full", _full_impl, lambda shape, value, dtype: ShapedArray(shape, dtype))
)


def zeros(shape, dtype):
    return full(shape=tuple(shape), value=0, dtype=np.dtype(dtype))


# ----------------------------------------------------------------------------------------
# Reductions
# ----------------------------------------------------------------------------------------


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _check_axes(name, x, axes):
    for a in axes:
        if not 0 <= a < x.ndim:
            raise ValueError(f"{name}: axis {a} out of range for shape {x.shape}")


def _reduce_rule(name, dtype_fn):
    def rule(x, axes, keepdims, pick_first=False):
        _check_axes(name, x, axes)
        return ShapedArray(_reduced_shape(x.shape, axes, keepdims), dtype_fn(x.dtype))

    return rule


def _sum_dtype(dt):
    return np.sum(np.zeros(1, dt)).dtype


def _reduce_sum_impl(x, axes, keepdims):
    if x.__class__ is _nd:  # the method skips np.sum's Python-level dispatch (~2 us)
        return x.sum(axis=axes, keepdims=keepdims)
    return np.sum(x, axis=axes, keepdims=keepdims)


def _reduce_sum_vjp(g, out, ins, need, axes, keepdims):
    x = ins[0]
    if not keepdims and axes != tuple(range(len(axes))):
        # reduced leading axes (a full reduction among them) broadcast back as they are
        g = reshape(g, shape=_reduced_shape(x.shape, axes, True))
    return (broadcast_to(g, shape=x.shape),)


def _reduce_max_impl(x, axes, keepdims, pick_first=False):
    return np.max(x, axis=axes, keepdims=keepdims)


def _reduce_min_impl(x, axes, keepdims, pick_first=False):
    return np.min(x, axis=axes, keepdims=keepdims)


def _extremum_vjp(arg):
    """VJP of reduce_max / reduce_min (``arg``: argmax / argmin).

    By default the gradient is spread evenly over the positions that attain the extremum
    (torch's ``max()``, ``amax``).  With ``pick_first`` (one axis: torch's ``max(dim)``)
    it goes to the one position ``arg`` returns."""

    def vjp(g, out, ins, need, axes, keepdims, pick_first=False):
        x = ins[0]
        kshape = _reduced_shape(x.shape, axes, True)
        if not keepdims:
            g = reshape(g, shape=kshape)
        if pick_first:
            (d,) = axes
            idx = arg(x, axis=d, keepdims=True)
            iota = np.arange(x.shape[d], dtype=np.int64).reshape(
                [-1 if i == d else 1 for i in range(x.ndim)]
            )
            return (mul(g, convert(eq(idx, iota), dtype=x.dtype)),)
        if not keepdims:
            out = reshape(out, shape=kshape)
        # the extremum is attained where x == out, or at the NaNs where out is NaN
        mask = convert(logical_or(eq(x, out), ne(x, x)), dtype=x.dtype)
        count = reduce_sum(mask, axes=axes, keepdims=True)
        return (mul(div(g, count), mask),)

    return vjp


reduce_sum_p = register(
    Primitive(
        "reduce_sum", _reduce_sum_impl, _reduce_rule("reduce_sum", _sum_dtype), _reduce_sum_vjp
    )
)
reduce_max_p = register(
    Primitive(
        "reduce_max",
        _reduce_max_impl,
        _reduce_rule("reduce_max", lambda dt: dt),
        _extremum_vjp(lambda x, **kw: argmax(x, **kw)),
        uses_out=True,
    )
)
reduce_min_p = register(
    Primitive(
        "reduce_min",
        _reduce_min_impl,
        _reduce_rule("reduce_min", lambda dt: dt),
        _extremum_vjp(lambda x, **kw: argmin(x, **kw)),
        uses_out=True,
    )
)


def _arg_rule(name):
    def rule(x, axis, keepdims):
        if axis is None:
            shape = (1,) * x.ndim if keepdims else ()
        else:
            _check_axes(name, x, (axis,))
            shape = _reduced_shape(x.shape, (axis,), keepdims)
        return ShapedArray(shape, np.int64)

    return rule


def _argmax_impl(x, axis, keepdims):
    return np.argmax(x, axis=axis, keepdims=keepdims).astype(np.int64)


def _argmin_impl(x, axis, keepdims):
    return np.argmin(x, axis=axis, keepdims=keepdims).astype(np.int64)


argmax_p = register(Primitive("argmax", _argmax_impl, _arg_rule("argmax")))
argmin_p = register(Primitive("argmin", _argmin_impl, _arg_rule("argmin")))

# ----------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------


def _reshape_rule(x, shape):
    n = 1
    for d in shape:
        n *= d
    if n != x.size:
        raise ValueError(f"reshape: cannot reshape shape {x.shape} into shape {shape}")
    return ShapedArray(shape, x.dtype)


reshape_p = register(
    Primitive(
        "reshape",
        lambda x, shape: x.reshape(shape) if x.__class__ is _nd else np.reshape(x, shape),
        _reshape_rule,
        lambda g, out, ins, need, shape: (reshape(g, shape=ins[0].shape),),
    )
)


def _transpose_rule(x, perm):
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"transpose: {perm} is not a permutation of the axes of shape {x.shape}")
    return ShapedArray(tuple(x.shape[p] for p in perm), x.dtype)


def _transpose_vjp(g, out, ins, need, perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return (transpose(g, perm=tuple(inv)),)


transpose_p = register(
    Primitive("transpose", lambda x, perm: np.transpose(x, perm), _transpose_rule, _transpose_vjp)
)


def _broadcast_to_impl(x, shape):
    # np.broadcast_to costs ~5 us; a small result is cheaper filled (then it is a writable
    # copy rather than a read-only view, which no consumer can tell apart)
    if x.__class__ is _nd and x.ndim <= len(shape) and math.prod(shape) <= 4096:
        out = np.empty(shape, x.dtype)
        out[...] = x
        return out
    return np.broadcast_to(x, shape)


def _broadcast_to_rule(x, shape):
    try:
        if np.broadcast_shapes(x.shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    return ShapedArray(shape, x.dtype)


broadcast_to_p = register(
    Primitive(
        "broadcast_to",
        _broadcast_to_impl,
        _broadcast_to_rule,
        lambda g, out, ins, need, shape: (unbroadcast(g, _shape(ins[0])),),
    )
)


def _concat_rule(*xs, axis):
    first = xs[0]
    for x in xs[1:]:
        if x.ndim != first.ndim or any(
            a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != axis
        ):
            raise ValueError(
                "concatenate: shapes "
                + ", ".join(str(y.shape) for y in xs)
                + f" do not match outside axis {axis}"
            )
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return ShapedArray(shape, _torch_result_type([x.dtype for x in xs]))


def _torch_result_type(dtypes):
    """torch's promotion of tensors: floats win over ints and bools, whatever their width."""
    floats = [d for d in dtypes if np.dtype(d).kind == "f"]
    return np.result_type(*(floats or dtypes))


def _concat_impl(*xs, axis):
    dt = _torch_result_type([x.dtype for x in xs])
    return np.concatenate([x if x.dtype == dt else x.astype(dt) for x in xs], axis=axis)


def _concat_vjp(g, out, ins, need, axis):
    res = []
    start = 0
    for x, n in zip(ins, need):
        stop = start + x.shape[axis]
        if n:
            spec = (("s", None, None, None),) * axis + (("s", start, stop, None),)
            res.append(getitem(g, spec=spec))
        else:
            res.append(None)
        start = stop
    return tuple(res)


concatenate_p = register(
    Primitive(
        "concatenate",
        _concat_impl,
        _concat_rule,
        _concat_vjp,
    )
)

# ----------------------------------------------------------------------------------------
# Matrix product
# ----------------------------------------------------------------------------------------


def _matmul_rule(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got {a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if ka != kb:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align ({ka} != {kb})")
    if a.dtype != b.dtype:
        raise TypeError(
            f"matmul: expected both operands to have the same dtype, got {np.dtype(a.dtype).name} "
            f"and {np.dtype(b.dtype).name} (as torch; convert one with .to(dtype))"
        )
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    shape = batch + (a.shape[-2:-1] if a.ndim > 1 else ()) + (b.shape[-1:] if b.ndim > 1 else ())
    return ShapedArray(shape, np.result_type(a.dtype, b.dtype))


def _mT(x):
    perm = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return transpose(x, perm=perm)


def _matmul_vjp(g, out, ins, need):
    a, b = ins
    a2 = a if a.ndim > 1 else reshape(a, shape=(1,) + a.shape)
    b2 = b if b.ndim > 1 else reshape(b, shape=b.shape + (1,))
    oshape = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1])
    g2 = reshape(g, shape=oshape) if g.shape != oshape else g
    ga = gb = None
    if need[0]:
        ga = unbroadcast(matmul(g2, _mT(b2)), a2.shape)
        if ga.shape != a.shape:
            ga = reshape(ga, shape=a.shape)
    if need[1]:
        gb = unbroadcast(matmul(_mT(a2), g2), b2.shape)
        if gb.shape != b.shape:
            gb = reshape(gb, shape=b.shape)
    return ga, gb


def _matmul_impl(a, b):
    if a.dtype != b.dtype:
        raise TypeError("matmul: operands of different dtypes")  # explained by the rule
    return np.matmul(a, b)


matmul_p = register(Primitive("matmul", _matmul_impl, _matmul_rule, _matmul_vjp))

# ----------------------------------------------------------------------------------------
# Indexing.  ``spec`` is a hashable tuple: ints, None, Ellipsis, ("s", start, stop, step)
# for slices and ("a", k) for the k-th index-array input.
# ----------------------------------------------------------------------------------------


def build_index(spec, arrays):
    out = []
    for s in spec:
        if s.__class__ is tuple:
            if s[0] == "s":
                out.append(slice(s[1], s[2], s[3]))
            else:
                out.append(arrays[s[1]])
        else:
            out.append(s)
    return tuple(out)


def _getitem_impl(x, *arrays, spec):
    return x[build_index(spec, arrays)]


def _getitem_rule(x, *arrays, spec):
    probe = np.broadcast_to(np.zeros((), x.dtype), x.shape)
    idx = build_index(spec, [np.zeros(a.shape, a.dtype) for a in arrays])
    try:
        return ShapedArray(probe[idx].shape, x.dtype)
    except IndexError as e:
        raise IndexError(f"getitem: {e} (shape {x.shape})") from None


def _getitem_vjp(g, out, ins, need, spec):
    x, *arrays = ins
    return (index_add(zeros(x.shape, x.dtype), g, *arrays, spec=spec),) + (None,) * len(arrays)


def _index_add_impl(base, g, *arrays, spec):
    out = np.array(base, copy=True)
    idx = build_index(spec, arrays)
    if arrays:
        np.add.at(out, idx, g)
    else:
        out[idx] += g
    return out


def _index_add_vjp(g, out, ins, need, spec):
    base, upd, *arrays = ins
    gu = None
    if need[1]:
        gu = unbroadcast(getitem(g, *arrays, spec=spec), _shape(upd))
    return (g if need[0] else None, gu) + (None,) * len(arrays)


getitem_p = register(Primitive("getitem", _getitem_impl, _getitem_rule, _getitem_vjp))
index_add_p = register(
    Primitive(
        "index_add",
        _index_add_impl,
        lambda base, g, *arrays, spec: ShapedArray(base.shape, base.dtype),
        _index_add_vjp,
    )
)

# ----------------------------------------------------------------------------------------
# Dynamic buffers: the tape of reverse-mode autodiff through while loops.  A buffer has
# a leading dimension known only at run time (``None`` in its shape).
# ----------------------------------------------------------------------------------------


def _dynamic_zeros_impl(n, shape, dtype):
    return np.zeros((int(n),) + tuple(shape), dtype)


dynamic_zeros_p = register(
    Primitive(
        "dynamic_zeros",
        _dynamic_zeros_impl,
        lambda n, shape, dtype: ShapedArray((None,) + tuple(shape), dtype),
    )
)


def _dynamic_index_impl(buf, i):
    return np.array(buf[int(i)], copy=True)


dynamic_index_p = register(
    Primitive(
        "dynamic_index",
        _dynamic_index_impl,
        lambda buf, i: ShapedArray(buf.shape[1:], buf.dtype),
        lambda g, out, ins, need: (
            dynamic_update(
                # a buffer of static length gets a cotangent of the same static type
                zeros(tuple(ins[0].shape), ins[0].dtype) if ins[0].shape[0] is not None
                else dynamic_zeros(_dyn_len(ins[0]), shape=tuple(ins[0].shape[1:]), dtype=ins[0].dtype),
                ins[1],
                g,
            ),
            None,
        ),
    )
)


def _dynamic_update_impl(buf, i, x):
    # Writing past the end grows the buffer (doubling), so a tape can be filled by a loop
    # whose trip count is only known when it ends.  Pure: the operand is not modified.
    i = int(i)
    n = len(buf)
    if i >= n:
        out = np.zeros((max(2 * n, i + 1),) + buf.shape[1:], buf.dtype)
        out[:n] = buf
    else:
        out = np.array(buf, copy=True)
    out[i] = x
    return out


def _dynamic_update_vjp(g, out, ins, need):
    buf, i, x = ins
    return (
        dynamic_update(g, i, mul(dynamic_index(g, i), 0)) if need[0] else None,
        None,
        dynamic_index(g, i) if need[2] else None,
    )


dynamic_update_p = register(
    Primitive(
        "dynamic_update",
        _dynamic_update_impl,
        lambda buf, i, x: ShapedArray(buf.shape, buf.dtype),
        _dynamic_update_vjp,
    )
)

dynamic_len_p = register(
    Primitive(
        "dynamic_len",
        lambda buf: np.asarray(len(buf), np.int64),
        lambda buf: ShapedArray((), np.int64),
    )
)


for _p in (neg_p, exp_p, log_p, tanh_p, sigmoid_p, sqrt_p, abs_p, sign_p, erf_p, not_p):
    _p.arity = 1
for _p in (add_p, sub_p, mul_p, div_p, pow_p, maximum_p, minimum_p, lt_p, le_p, gt_p, ge_p,
           eq_p, ne_p, and_p, or_p, tanh_backward_p, sigmoid_backward_p):
    _p.arity = 2

# ----------------------------------------------------------------------------------------
# The functions the rules and composites call
# ----------------------------------------------------------------------------------------

add = _call(add_p)
sub = _call(sub_p)
mul = _call(mul_p)
div = _call(div_p)
pow = _call(pow_p)  # noqa: A001 - mirrors the primitive's name
maximum = _call(maximum_p)
minimum = _call(minimum_p)
neg = _call(neg_p)
exp = _call(exp_p)
log = _call(log_p)
tanh = _call(tanh_p)
tanh_backward = _call(tanh_backward_p)
sigmoid = _call(sigmoid_p)
sigmoid_backward = _call(sigmoid_backward_p)
sqrt = _call(sqrt_p)
abs = _call(abs_p)  # noqa: A001
sign = _call(sign_p)
erf = _call(erf_p)
lt = _call(lt_p)
le = _call(le_p)
gt = _call(gt_p)
ge = _call(ge_p)
eq = _call(eq_p)
ne = _call(ne_p)
logical_and = _call(and_p)
logical_or = _call(or_p)
logical_not = _call(not_p)
where = _call(where_p)
convert = _call(convert_p)
full = _call(full_p)
reduce_sum = _call(reduce_sum_p)
reduce_max = _call(reduce_max_p)
reduce_min = _call(reduce_min_p)
argmax = _call(argmax_p)
argmin = _call(argmin_p)
reshape = _call(reshape_p)
transpose = _call(transpose_p)
broadcast_to = _call(broadcast_to_p)
concatenate = _call(concatenate_p)
matmul = _call(matmul_p)
getitem = _call(getitem_p)
index_add = _call(index_add_p)
dynamic_zeros = _call(dynamic_zeros_p)
dynamic_index = _call(dynamic_index_p)
dynamic_update = _call(dynamic_update_p)
_dyn_len = _call(dynamic_len_p)

for _name, _f in list(globals().items()):
    if isinstance(getattr(_f, "primitive", None), Primitive):
        FUNCTIONS[_name] = _f.primitive
