"""Op-table entries of issue 10 (op breadth, convolution and pooling), appended to
``tests.op_table.OPS`` (see the end of that file): the same ``OpInfo`` format, so the
table-driven tests (forward vs numpy, gradcheck first and second order, eager == traced
interpreter, IR autodiff == tape) cover every entry with no extra test code.

The numpy references here are written independently of dualgraph's kernels: convolution
by shift-and-add over kernel taps, pooling by explicit loops over output positions.
"""
from __future__ import annotations

import math

import numpy as np

from dualgraph.ops import nn_ops as NN

from .op_table import F32, F64, I64, BOOL, FLOATS, OpInfo, Sample, _arr, _distinct  # noqa: F401

# ----------------------------------------------------------------------------------------
# convolution references (shift and add over the kernel taps)
# ----------------------------------------------------------------------------------------


def _pad4(x, padding, value=0.0):
    (pt, pb), (pl, pr) = padding
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)


def _taps(xp, kh, kw, stride, dilation, ho, wo):
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]


def _osize(n, k, s, p, d):
    return (n + p[0] + p[1] - d * (k - 1) - 1) // s + 1


def ref_conv2d(x, w, stride, padding, dilation, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ho, wo = _osize(h, kh, stride[0], padding[0], dilation[0]), _osize(wd, kw, stride[1], padding[1], dilation[1])
    og = o // groups
    out = np.zeros((n, o, ho, wo), np.result_type(x, w))
    for i, j, patch in _taps(_pad4(x, padding), kh, kw, stride, dilation, ho, wo):
        for g in range(groups):
            out[:, g * og:(g + 1) * og] += np.einsum(
                "nchw,oc->nohw", patch[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og, :, i, j])
    return out


def ref_conv_transpose2d(y, w, stride, padding, dilation, groups, out_hw):
    n, o, ho, wo = y.shape
    _, cg, kh, kw = w.shape
    og = o // groups
    (pt, pb), (pl, pr) = padding
    h, wd = out_hw
    xp = np.zeros((n, cg * groups, h + pt + pb, wd + pl + pr), y.dtype)
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(kh):
        for j in range(kw):
            for g in range(groups):
                xp[:, g * cg:(g + 1) * cg, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                   j * dw: j * dw + sw * (wo - 1) + 1: sw] += np.einsum(
                    "nohw,oc->nchw", y[:, g * og:(g + 1) * og], w[g * og:(g + 1) * og, :, i, j])
    return xp[:, :, pt:pt + h, pl:pl + wd]


def ref_conv2d_weight(x, y, stride, padding, dilation, groups, kernel):
    n, c, h, wd = x.shape
    _, o, ho, wo = y.shape
    kh, kw = kernel
    cg, og = c // groups, o // groups
    out = np.zeros((o, cg, kh, kw), x.dtype)
    for i, j, patch in _taps(_pad4(x, padding), kh, kw, stride, dilation, ho, wo):
        for g in range(groups):
            out[g * og:(g + 1) * og, :, i, j] = np.einsum(
                "nohw,nchw->oc", y[:, g * og:(g + 1) * og], patch[:, g * cg:(g + 1) * cg])
    return out


_CONV_CASES = [
    # x shape, w shape, stride, padding, dilation, groups
    ((1, 2, 4, 4), (2, 2, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ((1, 4, 4, 4), (2, 2, 2, 2), (2, 1), ((0, 1), (1, 0)), (1, 2), 2),
    ((2, 2, 4, 3), (2, 1, 2, 2), (2, 2), ((1, 1), (0, 0)), (2, 1), 2),
    ((1, 1, 4, 4), (1, 1, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
]


def _conv_params(stride, padding, dilation, groups):
    return {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


def _conv2d_p_samples(dtype, rng, domain):
    return [Sample((_arr(rng, xs, dtype), _arr(rng, ws, dtype)), _conv_params(*rest), desc=f"{xs}*{ws},{rest}")
            for xs, ws, *rest in _CONV_CASES]


def _conv_out_shape(xs, ws, stride, padding, dilation):
    return (xs[0], ws[0], _osize(xs[2], ws[2], stride[0], padding[0], dilation[0]),
            _osize(xs[3], ws[3], stride[1], padding[1], dilation[1]))


def _conv_transpose2d_p_samples(dtype, rng, domain):
    out = []
    for xs, ws, stride, padding, dilation, groups in _CONV_CASES:
        ys = _conv_out_shape(xs, ws, stride, padding, dilation)
        kw = _conv_params(stride, padding, dilation, groups)
        kw["out_hw"] = xs[2:]
        out.append(Sample((_arr(rng, ys, dtype), _arr(rng, ws, dtype)), kw, desc=f"{ys}*{ws}->{xs}"))
    return out


def _conv2d_weight_samples(dtype, rng, domain):
    out = []
    for xs, ws, stride, padding, dilation, groups in _CONV_CASES:
        ys = _conv_out_shape(xs, ws, stride, padding, dilation)
        kw = _conv_params(stride, padding, dilation, groups)
        kw["kernel"] = ws[2:]
        out.append(Sample((_arr(rng, xs, dtype), _arr(rng, ys, dtype)), kw, desc=f"{xs},{ys}->{ws}"))
    return out


# ---- functional forms -------------------------------------------------------------------


def _sym(p):
    return ((p[0], p[0]), (p[1], p[1]))


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def ref_F_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    s, d = _pair(stride), _pair(dilation)
    if padding == "same":
        pad = tuple((dd * (k - 1) // 2, dd * (k - 1) - dd * (k - 1) // 2) for k, dd in zip(w.shape[2:], d))
    else:
        pad = _sym(_pair(padding))
    unb = x.ndim == 3
    if unb:
        x = x[None]
    out = ref_conv2d(x, w, s, pad, d, groups)
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1)
    return out[0] if unb else out


def _F_conv2d_samples(dtype, rng, domain):
    a = lambda *s: _arr(rng, s, dtype)  # noqa: E731
    return [
        Sample((a(1, 2, 4, 4), a(2, 2, 3, 3), a(2)), {"padding": 1}, desc="pad1+bias"),
        Sample((a(1, 4, 4, 5), a(2, 2, 2, 3)), {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "groups": 2},
               desc="stride,dil,groups"),
        Sample((a(1, 2, 4, 5), a(2, 2, 2, 3)), {"padding": "same"}, desc="same-even-kernel"),
        Sample((a(2, 4, 4), a(2, 2, 3, 3), a(2)), {"stride": 2}, desc="unbatched"),
    ]


def ref_F_conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    unb = x.ndim == 2
    if unb:
        x = x[None]
    out = ref_conv2d(x[:, :, None], w[:, :, None], (1, stride), ((0, 0), (padding, padding)), (1, dilation), groups)[:, :, 0]
    if b is not None:
        out = out + b.reshape(1, -1, 1)
    return out[0] if unb else out


def _F_conv1d_samples(dtype, rng, domain):
    a = lambda *s: _arr(rng, s, dtype)  # noqa: E731
    return [
        Sample((a(2, 3, 8), a(4, 3, 3), a(4)), {"padding": 1}, desc="pad1+bias"),
        Sample((a(1, 4, 9), a(2, 2, 2)), {"stride": 2, "dilation": 2, "groups": 2}, desc="stride,dil,groups"),
        Sample((a(3, 7), a(2, 3, 3)), {}, desc="unbatched"),
    ]


def ref_F_conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    s, p, op, d = _pair(stride), _pair(padding), _pair(output_padding), _pair(dilation)
    out_hw = tuple((x.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (w.shape[2 + i] - 1) + op[i] + 1 for i in range(2))
    out = ref_conv_transpose2d(x, w, s, _sym(p), d, groups, out_hw)
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1)
    return out


def _F_conv_transpose2d_samples(dtype, rng, domain):
    a = lambda *s: _arr(rng, s, dtype)  # noqa: E731
    return [
        Sample((a(1, 3, 3, 3), a(3, 2, 3, 3), a(2)), {"stride": 2, "padding": 1, "output_padding": 1}, desc="s2p1op1"),
        Sample((a(1, 4, 3, 3), a(4, 1, 2, 3)), {"stride": (1, 2), "groups": 2, "dilation": (2, 1)}, desc="groups,dil"),
    ]


def ref_max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    k, p, d = _pair(kernel_size), _pair(padding), _pair(dilation)
    s = k if stride is None else _pair(stride)
    n, c, h, w = x.shape
    outs = []
    for i in range(2):
        span = (h, w)[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1
        o = (-(-span // s[i]) if ceil_mode else span // s[i]) + 1
        if ceil_mode and (o - 1) * s[i] >= (h, w)[i] + p[i]:
            o -= 1
        outs.append(o)
    out = np.empty((n, c) + tuple(outs), x.dtype)
    for oh in range(outs[0]):
        for ow in range(outs[1]):
            rows = [oh * s[0] - p[0] + d[0] * a for a in range(k[0])]
            cols = [ow * s[1] - p[1] + d[1] * b for b in range(k[1])]
            rows = [r for r in rows if 0 <= r < h]
            cols = [q for q in cols if 0 <= q < w]
            out[:, :, oh, ow] = x[:, :, rows][:, :, :, cols].max(axis=(2, 3))
    return out


def _pool_kwargs_cases():
    return [
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 2, "padding": 1},
        {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
        {"kernel_size": (2, 3), "stride": (1, 2), "ceil_mode": True},
    ]


def _max_pool_samples(dtype, rng, domain):
    out = [Sample((_distinct(rng, (1, 2, 5, 6), dtype),), kw, desc=str(kw)) for kw in _pool_kwargs_cases()]
    out.append(Sample((_distinct(rng, (1, 2, 7, 7), dtype),), {"kernel_size": 2, "dilation": 2, "padding": 1},
                      desc="dilation"))
    return out


def ref_avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                   divisor_override=None):
    k, p = _pair(kernel_size), _pair(padding)
    s = k if stride is None else _pair(stride)
    n, c, h, w = x.shape
    outs = []
    for i in range(2):
        span = (h, w)[i] + 2 * p[i] - k[i]
        o = (-(-span // s[i]) if ceil_mode else span // s[i]) + 1
        if ceil_mode and (o - 1) * s[i] >= (h, w)[i] + p[i]:
            o -= 1
        outs.append(o)
    out = np.empty((n, c) + tuple(outs), x.dtype)
    for oh in range(outs[0]):
        for ow in range(outs[1]):
            h0, w0 = oh * s[0] - p[0], ow * s[1] - p[1]
            h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
            size = (h1 - h0) * (w1 - w0)
            h0c, w0c, h1c, w1c = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            tot = x[:, :, h0c:h1c, w0c:w1c].sum(axis=(2, 3))
            if divisor_override:
                div = divisor_override
            elif count_include_pad:
                div = size
            else:
                div = (h1c - h0c) * (w1c - w0c)
            out[:, :, oh, ow] = tot / div
    return out


def _avg_pool_samples(dtype, rng, domain):
    out = []
    for kw in _pool_kwargs_cases():
        for cip in (True, False):
            out.append(Sample((_arr(rng, (1, 2, 5, 6), dtype),), dict(kw, count_include_pad=cip),
                              desc=f"{kw},cip={cip}"))
    out.append(Sample((_arr(rng, (1, 2, 4, 4), dtype),), {"kernel_size": 2, "divisor_override": 3}, desc="divisor"))
    return out


def ref_adaptive_avg_pool2d(x, output_size):
    unb = x.ndim == 3
    if unb:
        x = x[None]
    h, w = x.shape[2:]
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    oh = h if oh is None else oh
    ow = w if ow is None else ow
    out = np.empty(x.shape[:2] + (oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            hs, he = (i * h) // oh, -(-((i + 1) * h) // oh)
            ws, we = (j * w) // ow, -(-((j + 1) * w) // ow)
            out[:, :, i, j] = x[:, :, hs:he, ws:we].mean(axis=(2, 3))
    return out[0] if unb else out


def _adaptive_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (1, 2, 7, 9), dtype),), {"output_size": (3, 4)}, desc="7x9->3x4"),
        Sample((_arr(rng, (2, 1, 5, 5), dtype),), {"output_size": 1}, desc="global"),
        Sample((_arr(rng, (1, 2, 5, 6), dtype),), {"output_size": (None, 4)}, desc="None"),
        Sample((_arr(rng, (2, 4, 4), dtype),), {"output_size": 2}, desc="unbatched"),
    ]


def _max_pool2d_indices_ref(x, kernel, stride, padding, dilation):
    n, c, h, w = x.shape
    xp = _pad4(x, padding, -np.inf)
    ho, wo = _osize(h, kernel[0], stride[0], padding[0], dilation[0]), _osize(w, kernel[1], stride[1], padding[1],
                                                                              dilation[1])
    out = np.empty((n, c, ho, wo), np.int64)
    for a in range(n):
        for b in range(c):
            for i in range(ho):
                for j in range(wo):
                    best, arg = -np.inf, None
                    for u in range(kernel[0]):
                        for v in range(kernel[1]):
                            r, q = i * stride[0] + u * dilation[0], j * stride[1] + v * dilation[1]
                            if arg is None or xp[a, b, r, q] > best:
                                best, arg = xp[a, b, r, q], (r - padding[0][0], q - padding[1][0])
                    out[a, b, i, j] = (a * c + b) * h * w + arg[0] * w + arg[1]
    return out


def _max_pool2d_indices_samples(dtype, rng, domain):
    return [
        Sample((_distinct(rng, (2, 2, 5, 6), dtype),),
               {"kernel": (2, 2), "stride": (2, 2), "padding": ((0, 1), (0, 0)), "dilation": (1, 1)}, desc="ceil-pad"),
        Sample((_distinct(rng, (1, 3, 6, 6), dtype),),
               {"kernel": (3, 2), "stride": (1, 2), "padding": ((1, 1), (1, 1)), "dilation": (1, 2)}, desc="pad,dil"),
    ]


CONV_POOL_OPS = [
    OpInfo("conv2d", "primitive", lambda x, w, **kw: NN.conv2d_p_fn(x, w, **kw), ref_conv2d, _conv2d_p_samples,
           atol=1e-5, rtol=1e-4),
    OpInfo("conv_transpose2d", "primitive", lambda y, w, **kw: NN.conv_transpose2d_p_fn(y, w, **kw),
           ref_conv_transpose2d, _conv_transpose2d_p_samples, atol=1e-5, rtol=1e-4),
    OpInfo("conv2d_weight", "primitive", lambda x, y, **kw: NN.conv2d_weight(x, y, **kw), ref_conv2d_weight,
           _conv2d_weight_samples, atol=1e-5, rtol=1e-4),
    OpInfo("max_pool2d_indices", "primitive", lambda x, **kw: NN.max_pool2d_indices(x, **kw),
           _max_pool2d_indices_ref, _max_pool2d_indices_samples, (F32, F64), differentiable=False),
    OpInfo("F.conv2d", "composite", NN.conv2d, ref_F_conv2d, _F_conv2d_samples, atol=1e-5, rtol=1e-4),
    OpInfo("F.conv1d", "composite", NN.conv1d, ref_F_conv1d, _F_conv1d_samples, atol=1e-5, rtol=1e-4),
    OpInfo("F.conv_transpose2d", "composite", NN.conv_transpose2d, ref_F_conv_transpose2d,
           _F_conv_transpose2d_samples, atol=1e-5, rtol=1e-4),
    OpInfo("F.max_pool2d", "composite", NN.max_pool2d, ref_max_pool2d, _max_pool_samples),
    OpInfo("F.avg_pool2d", "composite", NN.avg_pool2d, ref_avg_pool2d, _avg_pool_samples, atol=1e-6),
    OpInfo("F.adaptive_avg_pool2d", "composite", NN.adaptive_avg_pool2d, ref_adaptive_avg_pool2d, _adaptive_samples,
           atol=1e-6),
]




# ========================================================================================
# 1. elementwise and math
# ========================================================================================

import dualgraph as dg  # noqa: E402
import dualgraph.ops.math_ops as M  # noqa: E402
import dualgraph.ops.more_composites as MC  # noqa: E402
import dualgraph.ops.shape_ops as S  # noqa: E402

from .op_table import _away_from_zero, _nonzero, binary_samples, unary_samples  # noqa: E402

_ARITH = (F32, F64, I64)


def _keep_int(f):
    """numpy reference of a dtype-preserving rounding op (an int tensor stays int)."""
    def ref(x, **kw):
        return np.array(x, copy=True) if x.dtype.kind in "iub" else f(x, **kw)
    return ref


def _off_integers(rng, shape, dtype, domain=(-2.0, 2.0)):
    """Values at least 0.05 away from integers and half-integers (no rounding kinks)."""
    a = _arr(rng, shape, dtype, domain)
    if np.dtype(dtype).kind == "f":
        frac = np.abs(a * 2 - np.round(a * 2))
        a = np.where(frac < 0.1, a + 0.13, a).astype(dtype)
    return np.asarray(a)


def _round_samples(dtype, rng, domain):
    out = unary_samples(_off_integers)(dtype, rng, domain)
    if np.dtype(dtype).kind == "f":
        x = np.round(_off_integers(rng, (3, 4), dtype) * 3, 2).astype(dtype) + dtype.type(0.013)
        out.append(Sample((x,), {"decimals": 1}, desc="decimals=1"))
    return out


def _divmod_pairs(rng, shape_x, shape_y, dtype):
    """x, y with x/y at least 0.05 from an integer (no jump of fmod/remainder/floor_divide)."""
    x = _arr(rng, shape_x, dtype, (-4.0, 4.0))
    y = _away_from_zero(rng, shape_y, dtype, (-2.0, 2.0))
    if np.dtype(dtype).kind == "f":
        q = x / y
        bad = np.abs(q - np.round(q)) < 0.05
        x = np.where(bad, x + 0.1 * np.abs(y) + 0.05, x).astype(dtype)
    return x, y


def _divmod_samples(dtype, rng, domain):
    out = []
    for xs, ys in [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3), (3,))]:
        x, y = _divmod_pairs(rng, xs, ys, dtype)
        out.append(Sample((x, y), desc=f"{xs}x{ys}"))
    c = 2 if np.dtype(dtype).kind in "iu" else 1.37
    out.append(Sample((_divmod_pairs(rng, (2, 3), (1,), dtype)[0], c), desc=f"x,{c!r}"))
    return out


def _cumsum_p_samples(dtype, rng, domain):
    return [Sample((_arr(rng, (3, 4), dtype),), {"axis": a, "reverse": r}, desc=f"axis={a},rev={r}")
            for a in (0, 1) for r in (False, True)]


def _cumsum_p_ref(x, axis, reverse=False):
    x = x.astype(np.int64) if x.dtype.kind in "iub" else x
    return np.flip(np.cumsum(np.flip(x, axis), axis), axis) if reverse else np.cumsum(x, axis)


def _f(dt_fn):
    """numpy reference of a float-valued op: integer inputs give float32, as torch."""
    def ref(*a, **kw):
        return dt_fn(*a, **kw)
    return ref


def _nan_samples(dtype, rng, domain):
    x = _arr(rng, (3, 4), dtype)
    if np.dtype(dtype).kind == "f":
        x.flat[[0, 5, 7]] = [np.nan, np.inf, -np.inf]
    return [Sample((x,), gradcheck=False, desc="with nan/inf"), Sample((_arr(rng, (2, 3), dtype),), desc="finite")]


def _nan_to_num_samples(dtype, rng, domain):
    x = _arr(rng, (3, 4), dtype)
    x.flat[[0, 5, 7]] = [np.nan, np.inf, -np.inf]
    return [Sample((x,), gradcheck=False, desc="defaults"),
            Sample((x,), {"nan": 1.5, "posinf": 9.0, "neginf": -9.0}, gradcheck=False, desc="values"),
            Sample((_arr(rng, (2, 3), dtype),), desc="finite")]


def _nan_to_num_ref(x, nan=0.0, posinf=None, neginf=None):
    return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


def _clamp_t_samples(dtype, rng, domain):
    x = _distinct(rng, (3, 4), dtype, (-2, 2))
    lo = _distinct(rng, (4,), dtype, (-1.9, -0.1)) + dtype.type(0.003)
    hi = _distinct(rng, (3, 1), dtype, (0.1, 1.9)) + dtype.type(0.007)
    return [Sample((x, lo, hi), desc="tensor min,max"), Sample((x, lo, None), desc="tensor min"),
            Sample((x, None, hi), desc="tensor max")]


def _clamp_t_ref(x, lo, hi):
    y = x
    if lo is not None:
        y = np.maximum(y, lo)
    if hi is not None:
        y = np.minimum(y, hi)
    return y


def _lerp_samples(dtype, rng, domain):
    a = lambda *s: _arr(rng, s, dtype)  # noqa: E731
    return [Sample((a(3, 4), a(3, 4), a(3, 4)), desc="tensor weight"), Sample((a(2, 3), a(3), 0.3), desc="scalar w")]


def _act_samples(kinks=(0.0,), domain=(-3.0, 3.0), kwargs=({},)):
    def fn(dtype, rng, dom):
        out = []
        for kw in kwargs:
            for s in [(3, 4), (5,)]:
                a = _arr(rng, s, dtype, domain)
                for k in kinks:
                    a = np.where(np.abs(a - k) < 0.05, a + 0.11, a).astype(dtype)
                out.append(Sample((a,), dict(kw), desc=f"{s},{kw}"))
        return out
    return fn


def _softplus_ref(x, beta=1.0, threshold=20.0):
    bx = x * beta
    with np.errstate(over="ignore"):
        return np.where(bx > threshold, x, np.log1p(np.exp(bx)) / beta).astype(x.dtype)


def _sigm(x):
    return 1 / (1 + np.exp(-x))


def _elu_ref(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype)


def _celu_ref(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0) / alpha)).astype(x.dtype)


def _selu_ref(x):
    return (MC._SELU_SCALE * _elu_ref(x, MC._SELU_ALPHA)).astype(x.dtype)


def _hardtanh_ref(x, min_val=-1.0, max_val=1.0):
    return np.clip(x, min_val, max_val).astype(x.dtype)


def _div_rm_samples(dtype, rng, domain):
    out = []
    for rm in ("floor", "trunc", None):
        x, y = _divmod_pairs(rng, (3, 4), (3, 4), dtype)
        out.append(Sample((x, y), {"rounding_mode": rm}, desc=f"rm={rm}"))
    return out


def _div_rm_ref(x, y, rounding_mode=None):
    if rounding_mode == "floor":
        return np.floor_divide(x, y)
    q = np.true_divide(x, y)
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        q = q.astype(np.float32)
        return np.trunc(q).astype(x.dtype) if rounding_mode == "trunc" else q
    return np.trunc(q) if rounding_mode == "trunc" else q


_U = lambda gen=_arr: unary_samples(gen)  # noqa: E731

ELEMENTWISE_OPS = [
    OpInfo("sin", "primitive", dg.sin, np.sin, _U(), rtol=1e-6),
    OpInfo("cos", "primitive", dg.cos, np.cos, _U(), rtol=1e-6),
    OpInfo("tan", "primitive", lambda x: x.tan(), np.tan, _U(), domain=(-1.2, 1.2), rtol=1e-5),
    OpInfo("asin", "primitive", dg.asin, np.arcsin, _U(), domain=(-0.9, 0.9), rtol=1e-6),
    OpInfo("acos", "primitive", lambda x: x.arccos(), np.arccos, _U(), domain=(-0.9, 0.9), rtol=1e-6),
    OpInfo("atan", "primitive", dg.atan, np.arctan, _U(), rtol=1e-6),
    OpInfo("sinh", "primitive", dg.sinh, np.sinh, _U(), rtol=1e-6),
    OpInfo("cosh", "primitive", dg.cosh, np.cosh, _U(), rtol=1e-6),
    OpInfo("log2", "primitive", dg.log2, np.log2, _U(), domain=(0.2, 3.0), rtol=1e-6),
    OpInfo("log10", "primitive", lambda x: x.log10(), np.log10, _U(), domain=(0.2, 3.0), rtol=1e-6),
    OpInfo("log1p", "primitive", dg.log1p, np.log1p, _U(), domain=(-0.5, 2.0), rtol=1e-6),
    OpInfo("exp2", "primitive", dg.exp2, np.exp2, _U(), rtol=1e-6),
    OpInfo("expm1", "primitive", lambda x: x.expm1(), np.expm1, _U(), rtol=1e-6),
    OpInfo("floor", "primitive", dg.floor, _keep_int(np.floor), _U(_off_integers), _ARITH),
    OpInfo("ceil", "primitive", lambda x: x.ceil(), _keep_int(np.ceil), _U(_off_integers), _ARITH),
    OpInfo("trunc", "primitive", dg.trunc, _keep_int(np.trunc), _U(_off_integers), _ARITH),
    OpInfo("round", "primitive", dg.round, _keep_int(lambda x, decimals=0: np.round(x, decimals)), _round_samples,
           _ARITH),
    OpInfo("atan2", "primitive", dg.atan2, np.arctan2, binary_samples(_away_from_zero), rtol=1e-6),
    OpInfo("fmod", "primitive", dg.fmod, np.fmod, _divmod_samples, _ARITH),
    OpInfo("remainder", "primitive", lambda x, y: x % y, np.remainder, _divmod_samples, _ARITH, atol=1e-5),
    OpInfo("floor_divide", "primitive", lambda x, y: x // y, np.floor_divide, _divmod_samples, _ARITH),
    OpInfo("cumsum", "primitive", lambda x, **kw: M.cumsum(x, **kw), _cumsum_p_ref, _cumsum_p_samples, _ARITH),
    OpInfo("dg.square", "composite", dg.square, np.square, _U(), _ARITH),
    OpInfo("Tensor.reciprocal", "composite", lambda x: x.reciprocal(), lambda x: (1 / x).astype(x.dtype),
           _U(_away_from_zero)),
    OpInfo("dg.rsqrt", "composite", dg.rsqrt, lambda x: 1 / np.sqrt(x), _U(), domain=(0.3, 3.0)),
    OpInfo("dg.frac", "composite", dg.frac, lambda x: x - np.trunc(x), _U(_off_integers)),
    OpInfo("dg.isnan", "composite", dg.isnan, np.isnan, _nan_samples, _ARITH, differentiable=False),
    OpInfo("dg.isinf", "composite", dg.isinf, np.isinf, _nan_samples, _ARITH, differentiable=False),
    OpInfo("Tensor.isfinite", "composite", lambda x: x.isfinite(), np.isfinite, _nan_samples, _ARITH,
           differentiable=False),
    OpInfo("dg.nan_to_num", "composite", dg.nan_to_num, _nan_to_num_ref, _nan_to_num_samples),
    OpInfo("dg.clamp(tensor bounds)", "composite", dg.clamp, _clamp_t_ref, _clamp_t_samples),
    OpInfo("dg.lerp", "composite", dg.lerp, lambda a, b, w: a + w * (b - a), _lerp_samples),
    OpInfo("F.softplus", "composite", MC.softplus, _softplus_ref,
           _act_samples(kwargs=({}, {"beta": 2.0, "threshold": 3.0})), atol=1e-6),
    OpInfo("F.softsign", "composite", MC.softsign, lambda x: x / (1 + np.abs(x)), _act_samples()),
    OpInfo("F.silu", "composite", MC.silu, lambda x: x * _sigm(x), _act_samples(), atol=1e-6),
    OpInfo("F.mish", "composite", MC.mish, lambda x: x * np.tanh(np.log1p(np.exp(x))), _act_samples(), atol=1e-6),
    OpInfo("F.elu", "composite", MC.elu, _elu_ref, _act_samples(kwargs=({}, {"alpha": 0.5}))),
    OpInfo("F.celu", "composite", MC.celu, _celu_ref, _act_samples(kwargs=({}, {"alpha": 2.0}))),
    OpInfo("F.selu", "composite", MC.selu, _selu_ref, _act_samples()),
    OpInfo("F.leaky_relu", "composite", MC.leaky_relu, lambda x, negative_slope=0.01: np.where(
        x > 0, x, x * negative_slope).astype(x.dtype), _act_samples(kwargs=({}, {"negative_slope": 0.2}))),
    OpInfo("F.relu6", "composite", MC.relu6, lambda x: np.clip(x, 0, 6).astype(x.dtype),
           _act_samples((0.0, 6.0), (-2.0, 8.0))),
    OpInfo("F.hardtanh", "composite", MC.hardtanh, _hardtanh_ref,
           _act_samples((-1.0, 1.0, -0.5, 2.0), kwargs=({}, {"min_val": -0.5, "max_val": 2.0}))),
    OpInfo("F.hardsigmoid", "composite", MC.hardsigmoid, lambda x: (np.clip(x + 3, 0, 6) / 6).astype(x.dtype),
           _act_samples((-3.0, 3.0), (-5.0, 5.0))),
    OpInfo("F.hardswish", "composite", MC.hardswish, lambda x: (x * np.clip(x + 3, 0, 6) / 6).astype(x.dtype),
           _act_samples((-3.0, 3.0), (-5.0, 5.0))),
    OpInfo("F.logsigmoid", "composite", MC.logsigmoid, lambda x: -np.log1p(np.exp(-x)), _act_samples(), atol=1e-6),
    OpInfo("dg.div(rounding_mode)", "composite", dg.div, _div_rm_ref, _div_rm_samples, _ARITH),
]
BREADTH_OPS = CONV_POOL_OPS + ELEMENTWISE_OPS


# ========================================================================================
# 2. reductions, scans, sorting
# ========================================================================================


def _with_zero(rng, shape, dtype, domain=(-2.0, 2.0)):
    a = _away_from_zero(rng, shape, dtype, domain)
    a.flat[1] = 0
    return a


def _reduce_prod_samples(dtype, rng, domain):
    out = _axes_samples_local(dtype, rng, _away_from_zero)
    out.append(Sample((_with_zero(rng, (3, 4), dtype),), {"axes": (1,), "keepdims": False}, desc="one zero"))
    z = _away_from_zero(rng, (3, 4), dtype)
    z.flat[[0, 2]] = 0
    out.append(Sample((z,), {"axes": (0, 1), "keepdims": True}, desc="two zeros"))
    return out


def _axes_samples_local(dtype, rng, gen=_arr):
    x3 = gen(rng, (2, 3, 4), dtype)
    x2 = gen(rng, (3, 4), dtype)
    return [
        Sample((x2,), {"axes": (0, 1), "keepdims": False}, desc="all"),
        Sample((x2,), {"axes": (1,), "keepdims": False}, desc="axis1"),
        Sample((x3,), {"axes": (0, 2), "keepdims": True}, desc="axes02-keep"),
        Sample((x3,), {"axes": (), "keepdims": False}, desc="no-axes"),
    ]


def _reduce_prod_ref(x, axes, keepdims):
    return np.prod(x, axis=axes, keepdims=keepdims, dtype=np.int64 if x.dtype.kind in "iub" else x.dtype)


def _gather_p_samples(dtype, rng, domain):
    x = _arr(rng, (3, 4), dtype)
    return [
        Sample((x, rng.integers(0, 3, size=(5, 4))), {"axis": 0}, desc="axis0"),
        Sample((x, rng.integers(0, 4, size=(3, 2))), {"axis": 1}, desc="axis1"),
        Sample((_arr(rng, (2, 3, 2), dtype), rng.integers(0, 3, size=(2, 4, 2))), {"axis": 1}, desc="3d"),
    ]


def _scatter_add_p_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (3, 4), dtype), rng.integers(0, 3, size=(5, 4)), _arr(rng, (5, 4), dtype)), {"axis": 0},
               desc="dups axis0"),
        Sample((_arr(rng, (3, 4), dtype), rng.integers(0, 4, size=(3, 6)), _arr(rng, (3, 6), dtype)), {"axis": 1},
               desc="dups axis1"),
    ]


def _scatter_add_p_ref(base, idx, src, axis):
    out = base.copy()
    ix = [np.arange(s).reshape([-1 if d == k else 1 for k in range(idx.ndim)]) for d, s in enumerate(idx.shape)]
    ix[axis] = idx
    np.add.at(out, tuple(ix), src)
    return out


def _perm_index(rng, n, shape, axis):
    """Distinct indices along ``axis`` (scatter without duplicates is well defined)."""
    k = shape[axis]
    other = [s for i, s in enumerate(shape) if i != axis]
    cols = [rng.permutation(n)[:k] for _ in range(int(np.prod(other)))]
    a = np.stack(cols, axis=-1).reshape((k,) + tuple(other))
    return np.moveaxis(a, 0, axis).astype(np.int64)


def _scatter_p_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (4, 3), dtype), _perm_index(rng, 4, (2, 3), 0), _arr(rng, (2, 3), dtype)), {"axis": 0},
               desc="axis0"),
        Sample((_arr(rng, (3, 5), dtype), _perm_index(rng, 5, (3, 3), 1), _arr(rng, (3, 3), dtype)), {"axis": 1},
               desc="axis1"),
    ]


def _scatter_p_ref(base, idx, src, axis):
    out = base.copy()
    np.put_along_axis(out, idx, src, axis)
    return out


def _argsort_p_samples(dtype, rng, domain):
    x = _distinct(rng, (3, 4), dtype)
    ties = np.array([[1, 0, 1, 2, 0, 1]], dtype)
    return [Sample((x,), {"axis": a, "descending": d}, desc=f"axis={a},desc={d}") for a in (0, 1) for d in (False, True)] + [
        Sample((ties,), {"axis": 1, "descending": d}, desc=f"ties,desc={d}") for d in (False, True)]


def _argsort_ref(x, axis, descending=False):
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    return np.argsort(-x, axis=axis, kind="stable")  # distinct or tied: stable on the negation


def _sum_dtype_samples(dtype, rng, domain):
    x = _arr(rng, (2, 3, 4), dtype)
    return [Sample((x,), {"axis": 1, "keepdims": True}, desc="axis/keepdims"),
            Sample((x,), {"dim": (0, 2), "dtype": F64}, desc="dtype=f64"),
            Sample((x,), {"axis": -1}, desc="axis=-1")]


def _sum_dtype_ref(x, dim=None, keepdim=False, dtype=None, axis=None, keepdims=None):
    a = dim if axis is None else axis
    a = tuple(a) if isinstance(a, (list, tuple)) else a
    k = keepdim if keepdims is None else keepdims
    x = x.astype(dtype) if dtype is not None else x
    return np.sum(x, axis=a, keepdims=k)


def _prod_samples(dtype, rng, domain):
    return [Sample((_away_from_zero(rng, (2, 3, 4), dtype, (-1.5, 1.5)),), {"dim": d, "keepdim": k},
                   desc=f"dim={d},keep={k}") for d, k in [(None, False), (1, True), (-1, False)]] + [
        Sample((_with_zero(rng, (2, 3), dtype),), {"dim": 1}, desc="zero")]


def _prod_ref(x, dim=None, keepdim=False):
    return np.prod(x, axis=dim, keepdims=keepdim, dtype=np.int64 if x.dtype.kind in "iub" else x.dtype)


def _var_c_samples(dtype, rng, domain):
    x = _arr(rng, (3, 4), dtype)
    return [Sample((x,), {"dim": 1, "correction": c}, desc=f"c={c}") for c in (0, 1, 2)] + [
        Sample((x,), {"unbiased": False}, desc="unbiased=False"), Sample((x,), {"axis": 0, "keepdims": True}, desc="axis")]


def _var_c_ref(x, dim=None, correction=None, unbiased=None, axis=None, keepdims=None, keepdim=False):
    a = dim if axis is None else axis
    k = keepdim if keepdims is None else keepdims
    if correction is None:
        correction = 0 if unbiased is False else 1
    return np.var(x, axis=a, ddof=correction, keepdims=k)


def _amax_samples(dtype, rng, domain):
    x = _distinct(rng, (2, 3, 4), dtype)
    return [Sample((x,), {"dim": d, "keepdim": k}, desc=f"{d},{k}") for d, k in [((), False), (1, True), ((0, 2), False)]]


def _ax(dim):
    return None if dim == () else (tuple(dim) if isinstance(dim, (tuple, list)) else dim)


def _lse_samples(dtype, rng, domain):
    x = _arr(rng, (3, 4), dtype, (-3, 3))
    return [Sample((x,), {"dim": 1}, desc="dim1"), Sample((x,), {"dim": (0, 1), "keepdim": True}, desc="all-keep")]


def _lse_ref(x, dim, keepdim=False):
    a = tuple(dim) if isinstance(dim, (tuple, list)) else dim
    m = np.max(x, axis=a, keepdims=True)
    r = np.log(np.sum(np.exp(x - m), axis=a, keepdims=True)) + m
    return r if keepdim else np.squeeze(r, axis=a)


def _norm_samples(dtype, rng, domain):
    x = _distinct(rng, (3, 4), dtype)
    x = np.where(np.abs(x) < 0.1, x + 0.2, x).astype(dtype)
    return [Sample((x,), {"p": p, "dim": d}, desc=f"p={p},dim={d}")
            for p, d in [("fro", None), (2, 1), (1, 0), (math.inf, 1), (-math.inf, None), (3, 1), (0.5, None)]]


def _norm_ref(x, p="fro", dim=None):
    a = np.abs(x)
    if p in ("fro", 2):
        return np.sqrt(np.sum(x * x, axis=dim))
    if p == math.inf:
        return np.max(a, axis=dim)
    if p == -math.inf:
        return np.min(a, axis=dim)
    return np.sum(a ** p, axis=dim) ** (1 / p)


def _cum_samples(dtype, rng, domain):
    return [Sample((_arr(rng, (3, 4), dtype, (-1.5, 1.5)),), {"dim": d}, desc=f"dim={d}") for d in (0, 1, -1)] + [
        Sample((_with_zero(rng, (2, 5), dtype, (-1.5, 1.5)),), {"dim": 1}, desc="zero"),
        Sample((_arr(rng, (9,), dtype, (-1.5, 1.5)),), {"dim": 0}, desc="n=9")]


def _cumprod_ref(x, dim):
    return np.cumprod(x, axis=dim, dtype=np.int64 if x.dtype.kind in "iub" else x.dtype)


def _cumsum_ref(x, dim):
    return np.cumsum(x, axis=dim, dtype=np.int64 if x.dtype.kind in "iub" else x.dtype)


def _bool_red_samples(dtype, rng, domain):
    x = (rng.random((3, 4)) < 0.3).astype(dtype)
    return [Sample((x,), {"dim": d, "keepdim": k}, desc=f"{d},{k}") for d, k in [(None, False), (1, True), (0, False)]]


def _sort_samples(dtype, rng, domain):
    x = _distinct(rng, (3, 4), dtype)
    return [Sample((x,), {"dim": d, "descending": s}, desc=f"dim={d},desc={s}") for d in (0, -1) for s in (False, True)]


def _sort_vals_ref(x, dim=-1, descending=False):
    s = np.sort(x, axis=dim)
    return np.flip(s, axis=dim) if descending else s


def _sort_idx_ref(x, dim=-1, descending=False):
    return np.argsort(-x if descending else x, axis=dim, kind="stable")


def _topk_samples(dtype, rng, domain):
    x = _distinct(rng, (3, 5), dtype)
    return [Sample((x, 2), {"dim": 1}, desc="k=2"), Sample((x, 1), {"dim": 0, "largest": False}, desc="smallest"),
            Sample((x, 3), {}, desc="default dim")]


def _topk_ref(x, k, dim=-1, largest=True):
    idx = np.argsort(-x if largest else x, axis=dim, kind="stable")
    idx = np.take(idx, np.arange(k), axis=dim)
    return np.take_along_axis(x, idx, dim)


def _topk_idx_ref(x, k, dim=-1, largest=True):
    idx = np.argsort(-x if largest else x, axis=dim, kind="stable")
    return np.take(idx, np.arange(k), axis=dim)


REDUCTION_OPS = [
    OpInfo("reduce_prod", "primitive", lambda x, **kw: S.reduce_prod(x, **kw), _reduce_prod_ref, _reduce_prod_samples,
           _ARITH),
    OpInfo("gather", "primitive", lambda x, i, **kw: S.gather(x, i, **kw),
           lambda x, i, axis: np.take_along_axis(x, i, axis), _gather_p_samples, _ARITH),
    OpInfo("scatter_add", "primitive", lambda b, i, s, **kw: S.scatter_add(b, i, s, **kw), _scatter_add_p_ref,
           _scatter_add_p_samples, _ARITH),
    OpInfo("scatter", "primitive", lambda b, i, s, **kw: S.scatter(b, i, s, **kw), _scatter_p_ref, _scatter_p_samples,
           _ARITH),
    OpInfo("argsort", "primitive", lambda x, **kw: S.argsort(x, **kw), _argsort_ref, _argsort_p_samples, _ARITH,
           differentiable=False),
    OpInfo("dg.sum(dtype, axis)", "composite", dg.sum, _sum_dtype_ref, _sum_dtype_samples, _ARITH),
    OpInfo("dg.prod", "composite", dg.prod, _prod_ref, _prod_samples, _ARITH),
    OpInfo("Tensor.var(correction)", "composite", lambda x, **kw: x.var(**kw), _var_c_ref, _var_c_samples),
    OpInfo("dg.std", "composite", dg.std, lambda x, **kw: np.sqrt(_var_c_ref(x, **kw)), _var_c_samples),
    OpInfo("dg.amax", "composite", dg.amax, lambda x, dim, keepdim: np.max(x, axis=_ax(dim), keepdims=keepdim),
           _amax_samples, _ARITH),
    OpInfo("Tensor.amin", "composite", lambda x, **kw: x.amin(**kw),
           lambda x, dim, keepdim: np.min(x, axis=_ax(dim), keepdims=keepdim), _amax_samples, _ARITH),
    OpInfo("dg.logsumexp", "composite", dg.logsumexp, _lse_ref, _lse_samples),
    OpInfo("dg.norm", "composite", dg.norm, _norm_ref, _norm_samples, atol=1e-5, rtol=1e-5),
    OpInfo("dg.cumsum", "composite", dg.cumsum, _cumsum_ref, _cum_samples, _ARITH),
    OpInfo("dg.cumprod", "composite", dg.cumprod, _cumprod_ref, _cum_samples, _ARITH),
    OpInfo("dg.any", "composite", dg.any, lambda x, dim, keepdim: np.any(x, axis=dim, keepdims=keepdim),
           _bool_red_samples, (F32, I64, BOOL), differentiable=False),
    OpInfo("Tensor.all", "composite", lambda x, **kw: x.all(**kw),
           lambda x, dim, keepdim: np.all(x, axis=dim, keepdims=keepdim), _bool_red_samples, (F32, I64, BOOL),
           differentiable=False),
    OpInfo("dg.sort.values", "composite", lambda x, **kw: dg.sort(x, **kw).values, _sort_vals_ref, _sort_samples,
           _ARITH),
    OpInfo("dg.sort.indices", "composite", lambda x, **kw: dg.sort(x, **kw)[1], _sort_idx_ref, _sort_samples, _ARITH,
           differentiable=False),
    OpInfo("dg.argsort", "composite", dg.argsort, _sort_idx_ref, _sort_samples, _ARITH, differentiable=False),
    OpInfo("dg.topk.values", "composite", lambda x, k, **kw: dg.topk(x, k, **kw).values, _topk_ref, _topk_samples,
           _ARITH),
    OpInfo("Tensor.topk.indices", "composite", lambda x, k, **kw: x.topk(k, **kw).indices, _topk_idx_ref,
           _topk_samples, _ARITH, differentiable=False),
]

BREADTH_OPS = BREADTH_OPS + REDUCTION_OPS


# ========================================================================================
# 3. shape and indexing
# ========================================================================================


def _x(rng, dtype, *shape):
    return _arr(rng, shape, dtype)


def _flatten_samples(dtype, rng, domain):
    x = _x(rng, dtype, 2, 3, 4)
    return [Sample((x,), {"start_dim": s, "end_dim": e}, desc=f"{s}..{e}") for s, e in [(0, -1), (1, 2), (0, 1), (2, 2)]]


def _flatten_ref(x, start_dim=0, end_dim=-1):
    s, e = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])


def _repeat_samples(dtype, rng, domain):
    return [Sample((_x(rng, dtype, 2, 3), (2, 1)), desc="2x1"), Sample((_x(rng, dtype, 3), (2, 2)), desc="lead"),
            Sample((_x(rng, dtype, 2, 1), (1, 3, 2)), desc="3d")]


def _tile_samples(dtype, rng, domain):
    return [Sample((_x(rng, dtype, 2, 3), (2,)), desc="short dims"), Sample((_x(rng, dtype, 2, 3), (2, 1, 2)), desc="3d")]


def _flip_samples(dtype, rng, domain):
    x = _x(rng, dtype, 2, 3, 4)
    return [Sample((x,), {"dims": d}, desc=str(d)) for d in [(0,), (1, 2), (-1,), (0, 1, 2)]]


def _roll_samples(dtype, rng, domain):
    x = _x(rng, dtype, 3, 4)
    return [Sample((x,), {"shifts": 1, "dims": 0}, desc="1,0"), Sample((x,), {"shifts": (-1, 6), "dims": (0, 1)}, desc="2d"),
            Sample((x,), {"shifts": 5}, desc="flat")]


def _roll_ref(x, shifts, dims=None):
    return np.roll(x, shifts, dims)


def _tri_samples(dtype, rng, domain):
    return [Sample((_x(rng, dtype, 3, 4),), {"diagonal": d}, desc=f"d={d}") for d in (0, 1, -1)] + [
        Sample((_x(rng, dtype, 2, 3, 3),), {}, desc="batched")]


def _split_samples(dtype, rng, domain):
    x = _x(rng, dtype, 5, 4)
    return [Sample((x,), {"s": 2, "dim": 0}, desc="size2"), Sample((x,), {"s": [1, 3], "dim": 1}, desc="sections")]


def _split_op(x, s, dim):
    return dg.cat(list(dg.split(x, s, dim))[::-1], dim)


def _split_ref(x, s, dim):
    n = x.shape[dim]
    cuts = list(range(s, n, s)) if isinstance(s, int) else list(np.cumsum(s)[:-1])
    return np.concatenate(np.split(x, cuts, axis=dim)[::-1], axis=dim)


def _chunk_samples(dtype, rng, domain):
    x = _x(rng, dtype, 5, 4)
    return [Sample((x,), {"chunks": 2, "dim": 0}, desc="2 of 5"), Sample((x,), {"chunks": 4, "dim": 1}, desc="4 of 4")]


def _chunk_ref(x, chunks, dim):
    n = x.shape[dim]
    s = -(-n // chunks)
    return _split_ref(x, s, dim)


def _unbind_samples(dtype, rng, domain):
    x = _x(rng, dtype, 3, 2)
    return [Sample((x,), {"dim": 0}, desc="dim0"), Sample((x,), {"dim": 1}, desc="dim1")]


def _narrow_samples(dtype, rng, domain):
    x = _x(rng, dtype, 4, 5)
    return [Sample((x,), {"dim": 1, "start": 1, "length": 3}, desc="1,1,3"),
            Sample((x,), {"dim": 0, "start": -2, "length": 2}, desc="negative start")]


def _narrow_ref(x, dim, start, length):
    start %= x.shape[dim]
    return np.take(x, np.arange(start, start + length), axis=dim)


def _gather_c_samples(dtype, rng, domain):
    x = _x(rng, dtype, 3, 4)
    return [Sample((x, rng.integers(0, 3, size=(2, 3))), {"dim": 0}, desc="smaller index"),
            Sample((x, rng.integers(0, 4, size=(3, 5))), {"dim": 1}, desc="dim1")]


def _gather_c_ref(x, i, dim):
    sl = tuple(slice(0, s) if d != dim else slice(None) for d, s in enumerate(i.shape))
    return np.take_along_axis(x[sl], i, dim)


def _scatter_c_samples(dtype, rng, domain):
    return [
        Sample((_x(rng, dtype, 4, 3), _perm_index(rng, 4, (2, 3), 0), _x(rng, dtype, 3, 3)), {"dim": 0},
               desc="bigger src"),
        Sample((_x(rng, dtype, 3, 4), _perm_index(rng, 4, (3, 2), 1)), {"dim": 1, "value": 2}, desc="value"),
    ]


def _scatter_c_op(x, i, src=None, *, dim, value=None):
    return dg.scatter(x, dim, i, src=src, value=value)


def _scatter_c_ref(x, i, src=None, *, dim, value=None):
    out = x.copy()
    if src is None:
        src = np.full(i.shape, value, x.dtype)
    else:
        src = src[tuple(slice(0, s) for s in i.shape)]
    np.put_along_axis(out, i, src, dim)
    return out


def _scatter_add_c_samples(dtype, rng, domain):
    return [Sample((_x(rng, dtype, 3, 4), rng.integers(0, 3, size=(4, 4)), _x(rng, dtype, 4, 5)), {"dim": 0},
                   desc="dups, bigger src")]


def _scatter_add_c_ref(x, i, src, dim):
    return _scatter_add_p_ref(x, i, src[tuple(slice(0, s) for s in i.shape)], dim)


def _index_select_samples(dtype, rng, domain):
    x = _x(rng, dtype, 3, 4)
    return [Sample((x, np.array([2, 0, 2])), {"dim": 0}, desc="dups"), Sample((x, np.array([3, 1])), {"dim": 1}, desc="d1")]


def _masked_fill_samples(dtype, rng, domain):
    x = _x(rng, dtype, 3, 4)
    return [Sample((x, rng.random((3, 4)) < 0.4), {"value": 1.5 if dtype.kind == "f" else 7}, desc="full mask"),
            Sample((x, rng.random((4,)) < 0.5), {"value": -2}, desc="broadcast mask")]


def _masked_fill_ref(x, m, value):
    return np.where(m, np.asarray(value).astype(x.dtype), x)


def _take_along_samples(dtype, rng, domain):
    x = _x(rng, dtype, 3, 4)
    return [Sample((x, rng.integers(0, 4, size=(3, 2))), {"dim": 1}, desc="dim1"),
            Sample((x, rng.integers(0, 3, size=(2, 1))), {"dim": 0}, desc="broadcast"),
            Sample((x, rng.integers(0, 12, size=(5,))), {}, desc="flat")]


def _take_along_ref(x, i, dim=None):
    if dim is None:
        return x.reshape(-1)[i]
    bshape = list(np.broadcast_shapes(x.shape[:dim] + (1,) + x.shape[dim + 1:], i.shape[:dim] + (1,) + i.shape[dim + 1:]))
    xb = np.broadcast_to(x, tuple(bshape[:dim]) + (x.shape[dim],) + tuple(bshape[dim + 1:]))
    ib = np.broadcast_to(i, tuple(bshape[:dim]) + (i.shape[dim],) + tuple(bshape[dim + 1:]))
    return np.take_along_axis(xb, ib, dim)


def _pad_samples(dtype, rng, domain):
    x = _x(rng, dtype, 2, 3, 4)
    return [Sample((x,), {"pad": (1, 2)}, desc="const last"),
            Sample((x,), {"pad": (1, 0, 2, 1), "value": 3.5 if dtype.kind == "f" else 3}, desc="const 2d value"),
            Sample((x,), {"pad": (-1, 1, 0, -1)}, desc="negative crops"),
            Sample((x,), {"pad": (2, 1, 1, 2), "mode": "reflect"}, desc="reflect"),
            Sample((x,), {"pad": (2, 1, 3, 0), "mode": "replicate"}, desc="replicate"),
            Sample((x,), {"pad": (1, 3), "mode": "circular"}, desc="circular")]


def _pad_ref(x, pad, mode="constant", value=None):
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    if mode == "constant":
        crop = tuple(slice(max(-lo, 0), x.shape[d] - max(-hi, 0)) for d, (lo, hi) in enumerate(widths))
        x = x[crop]
        widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
        return np.pad(x, widths, constant_values=0 if value is None else value)
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode])


def _one_hot_samples(dtype, rng, domain):
    # (num_classes=-1 reads the values: eager only, tested in tests/test_breadth_ops.py)
    return [Sample((rng.integers(0, 4, size=(3,)),), {"num_classes": 5}, desc="n=5"),
            Sample((np.array([[0, 2], [1, 3]]),), {"num_classes": 4}, desc="2d")]


def _one_hot_ref(t, num_classes=-1):
    n = t.max() + 1 if num_classes == -1 else num_classes
    return (t[..., None] == np.arange(n)).astype(np.int64)


_EINSUM = [("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]), ("ii->i", [(3, 3)]),
           ("ij->", [(2, 3)]), ("i,j->ij", [(3,), (2,)]), ("ij,ij->i", [(2, 3), (2, 3)]),
           ("...ij,jk", [(2, 2, 3), (3, 2)]), ("ijk->kji", [(2, 3, 2)]), ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 2)]),
           ("bn,anm,bm->ba", [(2, 3), (2, 3, 2), (2, 2)])]


def _einsum_samples(dtype, rng, domain):
    return [Sample(tuple(_arr(rng, s, dtype) for s in shapes), {"equation": eq}, desc=eq) for eq, shapes in _EINSUM]


def _linalg_samples(kind):
    def fn(dtype, rng, domain):
        a = lambda *s: _arr(rng, s, dtype)  # noqa: E731
        return {"mm": [Sample((a(2, 3), a(3, 4)), desc="2x3@3x4")],
                "bmm": [Sample((a(2, 2, 3), a(2, 3, 2)), desc="batched")],
                "mv": [Sample((a(2, 3), a(3)), desc="mv")],
                "dot": [Sample((a(4), a(4)), desc="dot")],
                "outer": [Sample((a(3), a(2)), desc="outer")]}[kind]
    return fn


def _diag_samples(dtype, rng, domain):
    return [Sample((_x(rng, dtype, 3),), {}, desc="1d"), Sample((_x(rng, dtype, 3),), {"diagonal": -1}, desc="1d,-1"),
            Sample((_x(rng, dtype, 3, 4),), {"diagonal": 1}, desc="2d,1"), Sample((_x(rng, dtype, 4, 3),), {}, desc="2d")]


def _diag_ref(x, diagonal=0):
    return np.diag(x, diagonal)


def _diagonal_samples(dtype, rng, domain):
    return [Sample((_x(rng, dtype, 3, 4),), {"offset": o}, desc=f"off={o}") for o in (0, 2, -1)] + [
        Sample((_x(rng, dtype, 2, 3, 3),), {"dim1": 1, "dim2": 2}, desc="batched"),
        Sample((_x(rng, dtype, 3, 2, 3),), {"offset": 1, "dim1": 2, "dim2": 0}, desc="dims 2,0")]


def _diagonal_ref(x, offset=0, dim1=0, dim2=1):
    return np.diagonal(x, offset, dim1, dim2)


SHAPE_OPS = [
    OpInfo("Tensor.flatten(start, end)", "composite", lambda x, **kw: x.flatten(**kw), _flatten_ref, _flatten_samples,
           _ARITH),
    OpInfo("dg.unflatten", "composite", dg.unflatten, lambda x, dim, sizes: x.reshape(
        x.shape[:dim] + tuple(sizes if -1 not in sizes else [x.shape[dim] // -np.prod(sizes) if s == -1 else s
                                                              for s in sizes]) + x.shape[dim + 1:]),
           lambda d, r, dom: [Sample((_x(r, d, 2, 6, 3),), {"dim": 1, "sizes": (2, 3)}, desc="2x3"),
                              Sample((_x(r, d, 2, 6),), {"dim": 1, "sizes": (3, -1)}, desc="-1")], _ARITH),
    OpInfo("Tensor.repeat", "composite", lambda x, sizes: x.repeat(*sizes), lambda x, sizes: np.tile(x, sizes),
           _repeat_samples, _ARITH),
    OpInfo("dg.tile", "composite", dg.tile, np.tile, _tile_samples, _ARITH),
    OpInfo("Tensor.expand_as", "composite", lambda x, o: x.expand_as(o), lambda x, o: np.broadcast_to(x, o.shape),
           lambda d, r, dom: [Sample((_x(r, d, 3, 1), _x(r, d, 2, 3, 4)), grad_args=(0,), desc="3x1->2x3x4")], _ARITH),
    OpInfo("dg.flip", "composite", dg.flip, lambda x, dims: np.flip(x, dims), _flip_samples, _ARITH),
    OpInfo("dg.roll", "composite", dg.roll, _roll_ref, _roll_samples, _ARITH),
    OpInfo("dg.tril", "composite", dg.tril, lambda x, diagonal=0: np.tril(x, diagonal), _tri_samples, _ARITH),
    OpInfo("Tensor.triu", "composite", lambda x, **kw: x.triu(**kw), lambda x, diagonal=0: np.triu(x, diagonal),
           _tri_samples, _ARITH),
    OpInfo("dg.split", "composite", _split_op, _split_ref, _split_samples, _ARITH),
    OpInfo("dg.chunk", "composite", lambda x, chunks, dim: dg.cat(list(dg.chunk(x, chunks, dim))[::-1], dim),
           _chunk_ref, _chunk_samples, _ARITH),
    OpInfo("dg.unbind", "composite", lambda x, dim: dg.stack(list(dg.unbind(x, dim))[::-1], dim),
           lambda x, dim: np.flip(x, dim), _unbind_samples, _ARITH),
    OpInfo("dg.narrow", "composite", dg.narrow, _narrow_ref, _narrow_samples, _ARITH),
    OpInfo("dg.gather", "composite", lambda x, i, dim: dg.gather(x, dim, i), _gather_c_ref, _gather_c_samples, _ARITH),
    OpInfo("dg.scatter", "composite", _scatter_c_op, _scatter_c_ref, _scatter_c_samples, _ARITH),
    OpInfo("Tensor.scatter_add", "composite", lambda x, i, s, dim: x.scatter_add(dim, i, s), _scatter_add_c_ref,
           _scatter_add_c_samples, _ARITH),
    OpInfo("dg.index_select", "composite", lambda x, i, dim: dg.index_select(x, dim, i),
           lambda x, i, dim: np.take(x, i, axis=dim), _index_select_samples, _ARITH),
    OpInfo("Tensor.masked_fill", "composite", lambda x, m, value: x.masked_fill(m, value), _masked_fill_ref,
           _masked_fill_samples, _ARITH),
    OpInfo("dg.take_along_dim", "composite", dg.take_along_dim, _take_along_ref, _take_along_samples, _ARITH),
    OpInfo("F.pad", "composite", MC.pad, _pad_ref, _pad_samples, _ARITH),
    OpInfo("F.one_hot", "composite", MC.one_hot, _one_hot_ref, _one_hot_samples, (I64,), differentiable=False),
    OpInfo("dg.einsum", "composite", lambda *xs, equation: dg.einsum(equation, *xs),
           lambda *xs, equation: np.einsum(equation, *xs), _einsum_samples, _ARITH, atol=1e-5, rtol=1e-5),
    OpInfo("dg.mm", "composite", dg.mm, np.matmul, _linalg_samples("mm"), _ARITH),
    OpInfo("dg.bmm", "composite", dg.bmm, np.matmul, _linalg_samples("bmm"), _ARITH),
    OpInfo("Tensor.mv", "composite", lambda a, v: a.mv(v), np.matmul, _linalg_samples("mv"), _ARITH),
    OpInfo("dg.dot", "composite", dg.dot, np.dot, _linalg_samples("dot"), _ARITH),
    OpInfo("dg.outer", "composite", dg.outer, np.outer, _linalg_samples("outer"), _ARITH),
    OpInfo("dg.diag", "composite", dg.diag, _diag_ref, _diag_samples, _ARITH),
    OpInfo("dg.diagonal", "composite", dg.diagonal, _diagonal_ref, _diagonal_samples, _ARITH),
    OpInfo("Tensor.trace", "composite", lambda x: x.trace(), np.trace,
           lambda d, r, dom: [Sample((_x(r, d, 3, 3),), desc="3x3"), Sample((_x(r, d, 2, 4),), desc="2x4")], _ARITH),
    OpInfo("Tensor.clone", "composite", lambda x: x.clone(), lambda x: x.copy(), unary_samples(), _ARITH),
]

BREADTH_OPS = BREADTH_OPS + SHAPE_OPS
