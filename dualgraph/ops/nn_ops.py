"""Convolution and pooling (NCHW, float32/float64): three bilinear primitives and the
functional forms ``conv1d conv2d conv_transpose2d max_pool2d avg_pool2d adaptive_avg_pool2d``.

Primitives (each the adjoint of another, so every VJP is written in these three and all
orders of gradients exist):

  conv2d(x, w)              y[n, o] = sum_c,i,j w[o, c, i, j] * xpad[n, c, s*h + d*i, s*w + d*j]
  conv_transpose2d(y, w)    the adjoint of ``x -> conv2d(x, w)``  (conv's input gradient)
  conv2d_weight(x, y)       the adjoint of ``w -> conv2d(x, w)``  (conv's weight gradient)

  max_pool2d_indices(x)     int64: flat index into ``x`` of each window's maximum (the
                            values are then ``x.reshape(-1)[idx]``: getitem's VJP scatters)

Implementation: im2col through ``np.lib.stride_tricks.sliding_window_view`` (one strided
copy) and a batched BLAS matmul; col2im adds one strided slice per kernel tap (kh*kw
numpy adds, never a Python loop over pixels).  Padding params are ``((top, bottom),
(left, right))``: asymmetric padding is how ``ceil_mode`` and ``padding='same'`` with an
even kernel are expressed.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import composites as C
from . import lowering as L
from . import primitives as P
from .lowering import Emitter
from .primitives import _call
from .math_ops import _dtype_of
from .registry import Primitive, ShapedArray, aval_of, register, user_source

# ----------------------------------------------------------------------------------------
# numpy kernels
# ----------------------------------------------------------------------------------------


def _out_size(n, k, s, p0, p1, d):
    return (n + p0 + p1 - d * (k - 1) - 1) // s + 1


def _pad(x, padding, value=0):
    (pt, pb), (pl, pr) = padding
    if pt or pb or pl or pr:
        return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)
    return x


def _windows(xp, kernel, stride, dilation, out_hw):
    """(N, C, Ho, Wo, kh, kw) strided view of the windows of padded ``xp``."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    v = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return v[:, :, : sh * (ho - 1) + 1 : sh, : sw * (wo - 1) + 1 : sw, ::dh, ::dw]


def _im2col(x, kernel, stride, padding, dilation, out_hw):
    """(N, C, kh, kw, Ho, Wo) contiguous columns of ``x``."""
    v = _windows(_pad(x, padding), kernel, stride, dilation, out_hw)
    return np.ascontiguousarray(v.transpose(0, 1, 4, 5, 2, 3))


def _col2im(cols, in_hw, kernel, stride, padding, dilation):
    """The adjoint of ``_im2col``: (N, C, kh, kw, Ho, Wo) columns summed into (N, C, H, W)."""
    n, c, kh, kw, ho, wo = cols.shape
    (sh, sw), (dh, dw) = stride, dilation
    (pt, pb), (pl, pr) = padding
    h, w = in_hw
    out = np.zeros((n, c, h + pt + pb, w + pl + pr), cols.dtype)
    for i in range(kh):  # one strided add per kernel tap
        for j in range(kw):
            out[:, :, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw] += cols[
                :, :, i, j
            ]
    return out[:, :, pt : pt + h, pl : pl + w]


def _grouped_matmul(a, b):
    """``a`` (G, M, K) @ ``b`` (N, G, K, P) -> (N, G, M, P).  numpy's broadcast matmul of
    4-d stacks does not reach BLAS; a 2-d @ 3-d product does, so loop over the groups."""
    g = a.shape[0]
    if g == 1:
        return np.matmul(a[0], b[:, 0])[:, None]
    out = np.empty((b.shape[0], g, a.shape[1], b.shape[3]), np.result_type(a, b))
    for k in range(g):  # one BLAS product per group
        out[:, k] = np.matmul(a[k], b[:, k])
    return out


def _conv2d_impl(x, w, stride, padding, dilation, groups):
    _conv2d_rule(aval_of(x), aval_of(w), stride, padding, dilation, groups)  # eager runs no rule
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ho = _out_size(h, kh, stride[0], *padding[0], dilation[0])
    wo = _out_size(wd, kw, stride[1], *padding[1], dilation[1])
    g = groups
    cols = _im2col(x, (kh, kw), stride, padding, dilation, (ho, wo)).reshape(n, g, cg * kh * kw, ho * wo)
    out = _grouped_matmul(w.reshape(g, o // g, cg * kh * kw), cols)  # (N, G, O/G, Ho*Wo)
    return out.reshape(n, o, ho, wo)


def _conv_transpose2d_impl(y, w, stride, padding, dilation, groups, out_hw):
    _conv_transpose2d_rule(aval_of(y), aval_of(w), stride, padding, dilation, groups, out_hw)
    n, o, ho, wo = y.shape
    _, cg, kh, kw = w.shape
    g = groups
    wm = w.reshape(g, o // g, cg * kh * kw).transpose(0, 2, 1)
    cols = _grouped_matmul(wm, y.reshape(n, g, o // g, ho * wo))  # (N, G, C/G*kh*kw, Ho*Wo)
    cols = cols.reshape(n, g * cg, kh, kw, ho, wo)
    return np.ascontiguousarray(_col2im(cols, out_hw, (kh, kw), stride, padding, dilation))


def _conv2d_weight_impl(x, y, stride, padding, dilation, groups, kernel):
    _conv2d_weight_rule(aval_of(x), aval_of(y), stride, padding, dilation, groups, kernel)
    n, c, h, wd = x.shape
    _, o, ho, wo = y.shape
    kh, kw = kernel
    g = groups
    cg = c // g
    # per image (O/G, Ho*Wo) @ (Ho*Wo, C/G*kh*kw), one batched BLAS product per group,
    # summed over the batch (no transposed copies of the columns)
    cols = _im2col(x, kernel, stride, padding, dilation, (ho, wo)).reshape(n, g, cg * kh * kw, ho * wo)
    ym = y.reshape(n, g, o // g, ho * wo)
    out = np.empty((g, o // g, cg * kh * kw), x.dtype)
    for k in range(g):
        out[k] = np.matmul(ym[:, k], cols[:, k].transpose(0, 2, 1)).sum(0)
    return out.reshape(o, cg, kh, kw)


# ----------------------------------------------------------------------------------------
# shape rules
# ----------------------------------------------------------------------------------------


def _float_pair(name, a, b):
    for t in (a, b):
        if not isinstance(t, ShapedArray) or t.ndim != 4:
            shp = getattr(t, "shape", t)
            raise ValueError(f"{name}: expected 4-d (N, C, H, W) operands, got shape {shp}")
    if a.dtype != b.dtype or a.dtype.kind != "f":
        raise TypeError(
            f"{name}: expected two float tensors of the same dtype, got {a.dtype.name} and {b.dtype.name} "
            "(as torch; convert one with .to(dtype))"
        )


def _check_w(name, w, c, groups):
    o = w.shape[0]
    if groups < 1 or o % groups:
        raise ValueError(f"{name}: out_channels {o} must be divisible by groups={groups}")
    if w.shape[1] * groups != c:
        raise ValueError(
            f"{name}: Given groups={groups}, weight of size {list(w.shape)}, expected input to have "
            f"{w.shape[1] * groups} channels, but got {c} channels instead"
        )


def _spatial_out(name, hw, kernel, stride, padding, dilation):
    out = tuple(_out_size(hw[i], kernel[i], stride[i], *padding[i], dilation[i]) for i in range(2))
    if min(out) < 1:
        padded = tuple(hw[i] + sum(padding[i]) for i in range(2))
        eff = tuple(dilation[i] * (kernel[i] - 1) + 1 for i in range(2))
        raise ValueError(
            f"{name}: input of spatial size {tuple(hw)} (padded {padded}) is smaller than the "
            f"(dilated) kernel {eff}"
        )
    return out


def _conv2d_rule(x, w, stride, padding, dilation, groups):
    _float_pair("conv2d", x, w)
    _check_w("conv2d", w, x.shape[1], groups)
    ho, wo = _spatial_out("conv2d", x.shape[2:], w.shape[2:], stride, padding, dilation)
    return ShapedArray((x.shape[0], w.shape[0], ho, wo), x.dtype)


def _conv_transpose2d_rule(y, w, stride, padding, dilation, groups, out_hw):
    _float_pair("conv_transpose2d", y, w)
    if w.shape[0] != y.shape[1] or w.shape[0] % groups:
        raise ValueError(
            f"conv_transpose2d: Given transposed=1, weight of size {list(w.shape)}, expected input "
            f"{list(y.shape)} to have {w.shape[0]} channels, but got {y.shape[1]} channels instead"
        )
    got = _spatial_out("conv_transpose2d", out_hw, w.shape[2:], stride, padding, dilation)
    if got != tuple(y.shape[2:]):
        raise ValueError(
            f"conv_transpose2d: output size {tuple(out_hw)} is not consistent with input size "
            f"{tuple(y.shape[2:])} (a conv2d of that output gives {got})"
        )
    return ShapedArray((y.shape[0], w.shape[1] * groups) + tuple(out_hw), y.dtype)


def _conv2d_weight_rule(x, y, stride, padding, dilation, groups, kernel):
    _float_pair("conv2d_weight", x, y)
    if x.shape[1] % groups or y.shape[1] % groups or x.shape[0] != y.shape[0]:
        raise ValueError(f"conv2d_weight: shapes {x.shape} and {y.shape} do not fit groups={groups}")
    got = _spatial_out("conv2d_weight", x.shape[2:], kernel, stride, padding, dilation)
    if got != tuple(y.shape[2:]):
        raise ValueError(
            f"conv2d_weight: a conv2d of input {x.shape} with kernel {tuple(kernel)} gives spatial size "
            f"{got}, not {tuple(y.shape[2:])}"
        )
    return ShapedArray((y.shape[1], x.shape[1] // groups) + tuple(kernel), x.dtype)


# ----------------------------------------------------------------------------------------
# VJPs: each primitive's cotangents are the other two primitives
# ----------------------------------------------------------------------------------------


def _conv2d_vjp(ct, out, ins, need, stride, padding, dilation, groups):
    x, w = ins
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    gx = conv_transpose2d_p_fn(ct, w, out_hw=tuple(x.shape[2:]), **kw_) if need[0] else None
    gw = conv2d_weight(x, ct, kernel=tuple(w.shape[2:]), **kw_) if need[1] else None
    return gx, gw


def _conv_transpose2d_vjp(ct, out, ins, need, stride, padding, dilation, groups, out_hw):
    y, w = ins
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    gy = conv2d_p_fn(ct, w, **kw_) if need[0] else None
    gw = conv2d_weight(ct, y, kernel=tuple(w.shape[2:]), **kw_) if need[1] else None
    return gy, gw


def _conv2d_weight_vjp(ct, out, ins, need, stride, padding, dilation, groups, kernel):
    x, y = ins
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    gx = conv_transpose2d_p_fn(y, ct, out_hw=tuple(x.shape[2:]), **kw_) if need[0] else None
    gy = conv2d_p_fn(x, ct, **kw_) if need[1] else None
    return gx, gy


def _float_dtype_rule(name):
    def rule(a, b, **params):
        da, db = _dtype_of(a), _dtype_of(b)
        if da != db or da.kind != "f":
            raise TypeError(f"{name}: expected two float tensors of the same dtype, got {da.name} and {db.name}")
        return da

    return rule


# conv and pooling indices lower to their eager implementation called back from the kernel
# (ops/lowering.py, _objmode_emit): correct, not fast
conv2d_p = register(
    Primitive("conv2d", _conv2d_impl, _conv2d_rule, _conv2d_vjp, kind="linalg", arity=2,
              fn_name="conv2d", grad_name="Convolution", dtype_rule=_float_dtype_rule("conv2d"),
              lowering=Emitter(L._objmode_emit))
)
conv_transpose2d_p = register(
    Primitive("conv_transpose2d", _conv_transpose2d_impl, _conv_transpose2d_rule, _conv_transpose2d_vjp,
              kind="linalg", arity=2, fn_name="conv_transpose2d", grad_name="Convolution",
              dtype_rule=_float_dtype_rule("conv_transpose2d"), lowering=Emitter(L._objmode_emit))
)
conv2d_weight_p = register(
    Primitive("conv2d_weight", _conv2d_weight_impl, _conv2d_weight_rule, _conv2d_weight_vjp,
              kind="linalg", arity=2, fn_name="conv2d_weight", grad_name="ConvolutionBackward",
              dtype_rule=_float_dtype_rule("conv2d_weight"), lowering=Emitter(L._objmode_emit))
)

conv2d_p_fn = _call(conv2d_p)
conv_transpose2d_p_fn = _call(conv_transpose2d_p)
conv2d_weight = _call(conv2d_weight_p)

# ----------------------------------------------------------------------------------------
# max pooling: the index of each window's maximum (NaN wins, first maximum on ties: torch)
# ----------------------------------------------------------------------------------------


def _max_pool2d_indices_impl(x, kernel, stride, padding, dilation):
    _max_pool2d_indices_rule(aval_of(x), kernel, stride, padding, dilation)
    n, c, h, w = x.shape
    ho = _out_size(h, kernel[0], stride[0], *padding[0], dilation[0])
    wo = _out_size(w, kernel[1], stride[1], *padding[1], dilation[1])
    low = -np.inf if x.dtype.kind == "f" else (np.iinfo(x.dtype).min if x.dtype.kind in "iu" else False)
    win = _windows(_pad(x, padding, low), kernel, stride, dilation, (ho, wo))
    kh, kw = kernel
    flat = win.reshape(n, c, ho, wo, kh * kw)  # a copy: the windows overlap or are strided
    local = np.argmax(flat, axis=-1)
    i, j = np.divmod(local, kw)
    rows = np.arange(ho).reshape(ho, 1) * stride[0] + i * dilation[0] - padding[0][0]
    cols = np.arange(wo) * stride[1] + j * dilation[1] - padding[1][0]
    plane = (np.arange(n * c, dtype=np.int64) * (h * w)).reshape(n, c, 1, 1)
    return (plane + rows * w + cols).astype(np.int64)


def _max_pool2d_indices_rule(x, kernel, stride, padding, dilation):
    if not isinstance(x, ShapedArray) or x.ndim != 4:
        raise ValueError(f"max_pool2d: expected a 4-d (N, C, H, W) input, got shape {getattr(x, 'shape', x)}")
    ho, wo = _spatial_out("max_pool2d", x.shape[2:], kernel, stride, padding, dilation)
    return ShapedArray((x.shape[0], x.shape[1], ho, wo), np.int64)


max_pool2d_indices_p = register(
    Primitive("max_pool2d_indices", _max_pool2d_indices_impl, _max_pool2d_indices_rule, None,
              kind="indexing", arity=1, fn_name="max_pool2d_indices", grad_name="MaxPool2DWithIndices",
              dtype_rule=lambda x, **params: np.dtype(np.int64), lowering=Emitter(L._objmode_emit))
)
max_pool2d_indices = _call(max_pool2d_indices_p)

PRIMITIVES = [conv2d_p, conv_transpose2d_p, conv2d_weight_p, max_pool2d_indices_p]

# ----------------------------------------------------------------------------------------
# functional forms (torch.nn.functional)
# ----------------------------------------------------------------------------------------


def _tuple(v, n, name, what):
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise RuntimeError(f"{name}: {what} must be an int or a tuple of {n} ints, got {v}")
    return v


def _check_input(name, x, nd):
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(
            f"{name}: expected a {nd + 1}-d (unbatched) or {nd + 2}-d (batched) input, got shape "
            f"{tuple(x.shape)}\n  at {user_source()}"
        )
    return x.ndim == nd + 1


def _conv_padding(name, padding, kernel, stride, dilation):
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError(f"{name}: padding='same' is not supported for strided convolutions")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise RuntimeError(f"{name}: padding must be 'valid', 'same' or ints, got {padding!r}")
    p = _tuple(padding, 2, name, "padding")
    if min(p) < 0:
        raise RuntimeError(f"{name}: negative padding {p}")
    return ((p[0], p[0]), (p[1], p[1]))


def _positive(name, what, v):
    if min(v) < 1:
        raise RuntimeError(f"{name}: {what} must be positive, got {v}")
    return v


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """``torch.nn.functional.conv2d``: (N, C, H, W) or (C, H, W) input, (O, C/groups, kh, kw)
    weight; ``padding`` an int, a pair or ``'valid'``/``'same'``."""
    unbatched = _check_input("conv2d", input, 2)
    if unbatched:
        input = C.unsqueeze(input, 0)
    if weight.ndim != 4:
        raise RuntimeError(f"conv2d: expected a 4-d weight (O, C/groups, kh, kw), got shape {tuple(weight.shape)}")
    stride = _positive("conv2d", "stride", _tuple(stride, 2, "conv2d", "stride"))
    dilation = _positive("conv2d", "dilation", _tuple(dilation, 2, "conv2d", "dilation"))
    pad = _conv_padding("conv2d", padding, tuple(weight.shape[2:]), stride, dilation)
    out = conv2d_p_fn(input, weight, stride=stride, padding=pad, dilation=dilation, groups=int(groups))
    out = _add_bias(out, bias)
    return C.squeeze(out, 0) if unbatched else out


def _add_bias(out, bias):
    if bias is None:
        return out
    if bias.ndim != 1 or bias.shape[0] != out.shape[1]:
        raise RuntimeError(
            f"conv: expected a bias of shape ({out.shape[1]},), got {tuple(bias.shape)}\n  at {user_source()}"
        )
    return P.add(out, C.reshape(bias, (1, -1) + (1,) * (out.ndim - 2)))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """``torch.nn.functional.conv1d``: (N, C, L) or (C, L) input, (O, C/groups, k) weight
    (a conv2d over a height-1 image)."""
    unbatched = _check_input("conv1d", input, 1)
    if unbatched:
        input = C.unsqueeze(input, 0)
    if weight.ndim != 3:
        raise RuntimeError(f"conv1d: expected a 3-d weight (O, C/groups, k), got shape {tuple(weight.shape)}")
    s = _positive("conv1d", "stride", _tuple(stride, 1, "conv1d", "stride"))
    d = _positive("conv1d", "dilation", _tuple(dilation, 1, "conv1d", "dilation"))
    if isinstance(padding, str):
        pad = _conv_padding("conv1d", padding, (1, weight.shape[2]), (1, s[0]), (1, d[0]))
    else:
        p = _tuple(padding, 1, "conv1d", "padding")[0]
        if p < 0:
            raise RuntimeError(f"conv1d: negative padding {p}")
        pad = ((0, 0), (p, p))
    out = conv2d_p_fn(C.unsqueeze(input, 2), C.unsqueeze(weight, 2), stride=(1, s[0]), padding=pad,
                      dilation=(1, d[0]), groups=int(groups))
    out = _add_bias(C.squeeze(out, 2), bias)
    return C.squeeze(out, 0) if unbatched else out


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,  # noqa: A002
                     dilation=1):
    """``torch.nn.functional.conv_transpose2d``: weight (C_in, C_out/groups, kh, kw); the
    gradient of conv2d with respect to its input."""
    unbatched = _check_input("conv_transpose2d", input, 2)
    if unbatched:
        input = C.unsqueeze(input, 0)
    if weight.ndim != 4:
        raise RuntimeError(f"conv_transpose2d: expected a 4-d weight, got shape {tuple(weight.shape)}")
    stride = _positive("conv_transpose2d", "stride", _tuple(stride, 2, "conv_transpose2d", "stride"))
    dilation = _positive("conv_transpose2d", "dilation", _tuple(dilation, 2, "conv_transpose2d", "dilation"))
    p = _tuple(padding, 2, "conv_transpose2d", "padding")
    op = _tuple(output_padding, 2, "conv_transpose2d", "output_padding")
    for i in range(2):
        if op[i] >= max(stride[i], dilation[i]) or op[i] < 0:
            raise RuntimeError(
                f"conv_transpose2d: output padding must be smaller than either stride or dilation, "
                f"but got output_padding={op}, stride={stride}, dilation={dilation}"
            )
    k = weight.shape[2:]
    out_hw = tuple((input.shape[2 + i] - 1) * stride[i] - 2 * p[i] + dilation[i] * (k[i] - 1) + op[i] + 1
                   for i in range(2))
    if min(out_hw) < 1:
        raise RuntimeError(f"conv_transpose2d: output size {out_hw} is too small (input {tuple(input.shape)})")
    out = conv_transpose2d_p_fn(input, weight, stride=stride, padding=((p[0], p[0]), (p[1], p[1])),
                                dilation=dilation, groups=int(groups), out_hw=out_hw)
    out = _add_bias(out, bias)
    return C.squeeze(out, 0) if unbatched else out


def _pool_geometry(name, hw, kernel_size, stride, padding, dilation, ceil_mode):
    k = _positive(name, "kernel_size", _tuple(kernel_size, 2, name, "kernel_size"))
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _tuple(stride, 2, name, "stride")
    _positive(name, "stride", s)
    p = _tuple(padding, 2, name, "padding")
    d = _positive(name, "dilation", _tuple(dilation, 2, name, "dilation"))
    for i in range(2):
        if p[i] < 0 or p[i] > k[i] // 2:
            raise RuntimeError(
                f"{name}: pad should be at most half of effective kernel size, but got pad={p[i]}, "
                f"kernel_size={k[i]}\n  at {user_source()}"
            )
    pads = []
    outs = []
    for i in range(2):
        eff = d[i] * (k[i] - 1) + 1
        span = hw[i] + 2 * p[i] - eff
        if span < 0:
            raise RuntimeError(
                f"{name}: input of spatial size {tuple(hw)} is too small for kernel {k} "
                f"(padding {p}, dilation {d})\n  at {user_source()}"
            )
        if ceil_mode:
            o = -(-span // s[i]) + 1
            if (o - 1) * s[i] >= hw[i] + p[i]:  # the last window must start inside the input
                o -= 1
        else:
            o = span // s[i] + 1
        extra = max(0, (o - 1) * s[i] + eff - (hw[i] + 2 * p[i]))
        pads.append((p[i], p[i] + extra))
        outs.append(o)
    return k, s, tuple(pads), d, tuple(outs)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """``torch.nn.functional.max_pool2d``; with ``return_indices`` also the flat index of
    each maximum within its (H, W) plane, as torch."""
    unbatched = _check_input("max_pool2d", input, 2)
    x = C.unsqueeze(input, 0) if unbatched else input
    n, c, h, w = x.shape
    k, s, pads, d, _ = _pool_geometry("max_pool2d", (h, w), kernel_size, stride, padding, dilation, ceil_mode)
    idx = max_pool2d_indices(x, kernel=k, stride=s, padding=pads, dilation=d)
    out = P.getitem(C.reshape(x, (-1,)), idx, spec=(("a", 0),))
    if unbatched:
        out = C.squeeze(out, 0)
    if not return_indices:
        return out
    plane = np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w)
    local = P.sub(idx, plane)
    return out, (C.squeeze(local, 0) if unbatched else local)


def _avg_divisor(hw, k, s, pads, p, out_hw, count_include_pad, dtype):
    """(Ho, Wo) divisors of avg_pool2d, as torch computes them."""
    divs = []
    for i in range(2):
        start = np.arange(out_hw[i]) * s[i] - p[i]
        end = np.minimum(start + k[i], hw[i] + p[i])
        size = end - start
        if not count_include_pad:
            size = np.minimum(end, hw[i]) - np.maximum(start, 0)
        divs.append(size)
    return np.multiply.outer(divs[0], divs[1]).astype(dtype)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,  # noqa: A002
               divisor_override=None):
    """``torch.nn.functional.avg_pool2d``: a depthwise conv2d with a ones kernel, divided
    by torch's window sizes."""
    unbatched = _check_input("avg_pool2d", input, 2)
    x = C.unsqueeze(input, 0) if unbatched else input
    C._float_only("avg_pool2d", x)
    n, c, h, w = x.shape
    k, s, pads, _, out_hw = _pool_geometry("avg_pool2d", (h, w), kernel_size, stride, padding, 1, ceil_mode)
    p = (pads[0][0], pads[1][0])
    ones = np.ones((1, 1) + k, x.dtype)
    y = conv2d_p_fn(C.reshape(x, (n * c, 1, h, w)), ones, stride=s, padding=pads, dilation=(1, 1), groups=1)
    y = C.reshape(y, (n, c) + out_hw)
    if divisor_override:
        y = P.div(y, float(divisor_override)) if x.dtype != np.float32 else P.div(y, np.float32(divisor_override))
    else:
        y = P.div(y, _avg_divisor((h, w), k, s, pads, p, out_hw, count_include_pad, x.dtype))
    return C.squeeze(y, 0) if unbatched else y


def _adaptive_matrix(n_in, n_out, dtype):
    """(n_out, n_in) averaging matrix of torch's adaptive windows."""
    i = np.arange(n_out)
    start = (i * n_in) // n_out
    end = -((-(i + 1) * n_in) // n_out)
    j = np.arange(n_in)
    inside = (j >= start[:, None]) & (j < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def adaptive_avg_pool2d(input, output_size):  # noqa: A002
    """``torch.nn.functional.adaptive_avg_pool2d``: torch's windows ``[floor(i*H/oh),
    ceil((i+1)*H/oh))`` as two averaging matrices, ``A_h @ x @ A_w^T``."""
    unbatched = _check_input("adaptive_avg_pool2d", input, 2)
    x = C.unsqueeze(input, 0) if unbatched else input
    C._float_only("adaptive_avg_pool2d", x)
    h, w = x.shape[2:]
    if isinstance(output_size, (int, np.integer)) or output_size is None:
        output_size = (output_size, output_size)
    oh, ow = (h if output_size[0] is None else int(output_size[0]), w if output_size[1] is None else int(output_size[1]))
    if oh < 1 or ow < 1:
        raise RuntimeError(f"adaptive_avg_pool2d: output size must be positive, got {(oh, ow)}")
    y = x
    if oh != h:
        y = P.matmul(_adaptive_matrix(h, oh, x.dtype), y)
    if ow != w:
        y = P.matmul(y, np.ascontiguousarray(_adaptive_matrix(w, ow, x.dtype).T))
    if y is x:
        y = P.convert(x, dtype=x.dtype)  # a new tensor, as torch
    return C.squeeze(y, 0) if unbatched else y


__all__ = ["conv1d", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
           "conv2d_p", "conv_transpose2d_p", "conv2d_weight_p", "max_pool2d_indices_p"]
