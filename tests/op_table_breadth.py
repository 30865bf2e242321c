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
    ((2, 2, 4, 5), (3, 2, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ((1, 4, 5, 4), (4, 2, 3, 2), (2, 1), ((0, 1), (2, 0)), (1, 2), 2),
    ((1, 2, 5, 4), (2, 1, 2, 2), (2, 2), ((1, 1), (0, 0)), (2, 1), 2),
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
        Sample((a(2, 2, 4, 4), a(3, 2, 3, 3), a(3)), {"padding": 1}, desc="pad1+bias"),
        Sample((a(1, 4, 5, 6), a(4, 2, 2, 3)), {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "groups": 2},
               desc="stride,dil,groups"),
        Sample((a(1, 2, 4, 5), a(2, 2, 2, 3)), {"padding": "same"}, desc="same-even-kernel"),
        Sample((a(2, 5, 5), a(2, 2, 3, 3), a(2)), {"stride": 2}, desc="unbatched"),
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
        Sample((a(2, 3, 4, 4), a(3, 2, 3, 3), a(2)), {"stride": 2, "padding": 1, "output_padding": 1}, desc="s2p1op1"),
        Sample((a(1, 4, 3, 5), a(4, 1, 2, 3)), {"stride": (1, 2), "groups": 2, "dilation": (2, 1)}, desc="groups,dil"),
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
    out = [Sample((_distinct(rng, (2, 2, 6, 7), dtype),), kw, desc=str(kw)) for kw in _pool_kwargs_cases()]
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
            out.append(Sample((_arr(rng, (1, 2, 6, 7), dtype),), dict(kw, count_include_pad=cip),
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
        Sample((_arr(rng, (2, 3, 7, 9), dtype),), {"output_size": (3, 4)}, desc="7x9->3x4"),
        Sample((_arr(rng, (2, 3, 6, 6), dtype),), {"output_size": 1}, desc="global"),
        Sample((_arr(rng, (2, 3, 5, 6), dtype),), {"output_size": (None, 4)}, desc="None"),
        Sample((_arr(rng, (3, 4, 4), dtype),), {"output_size": 2}, desc="unbatched"),
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

BREADTH_OPS = CONV_POOL_OPS
