"""Op-table entries for ``dg.nn.functional`` (issue 10, item 6), in the ``OpInfo`` format
of ``tests/op_table.py``: each function with an independent numpy reference (explicit
loops where torch's definition is per sample), seeded samples, and gradcheck settings.

``tests/test_nn_functional.py`` runs the table-driven checks over ``NN_OPS`` (forward
against numpy in float32 and float64, gradcheck first and second order, eager == traced
interpreter, IR autodiff == tape); appending ``NN_OPS`` to ``OPS`` runs them there too.
"""
from __future__ import annotations

import math

import numpy as np

import dualgraph.nn.functional as F

from .op_table import FLOATS, OpInfo, Sample, _arr, _distinct

# ---- numpy references -------------------------------------------------------------------


def _log_softmax(x, axis):
    z = x - x.max(axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis, keepdims=True))


def _softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _red(loss, reduction):
    if reduction == "mean":
        return np.asarray(loss.mean(), loss.dtype)
    if reduction == "sum":
        return np.asarray(loss.sum(), loss.dtype)
    return loss


def ref_linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def ref_bilinear(x1, x2, w, b):
    return np.einsum("ni,oij,nj->no", x1, w, x2) + b


def ref_layer_norm(x, w, b, normalized_shape, eps=1e-5):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mu = x.mean(axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axes, keepdims=True)
    return ((x - mu) / np.sqrt(var + eps) * w + b).astype(x.dtype)


def ref_rms_norm(x, w, normalized_shape, eps=1e-6):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    return (x / np.sqrt((x * x).mean(axes, keepdims=True) + eps) * w).astype(x.dtype)


def _chan(v, nd):
    return v.reshape((1, -1) + (1,) * (nd - 2))


def ref_batch_norm_train(x, w, b, eps=1e-5):
    axes = tuple(i for i in range(x.ndim) if i != 1)
    mu = x.mean(axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axes, keepdims=True)
    return ((x - mu) / np.sqrt(var + eps) * _chan(w, x.ndim) + _chan(b, x.ndim)).astype(x.dtype)


def ref_batch_norm_eval(x, rm, rv, w, b, eps=1e-5):
    nd = x.ndim
    return ((x - _chan(rm, nd)) / np.sqrt(_chan(rv, nd) + eps) * _chan(w, nd) + _chan(b, nd)).astype(x.dtype)


def ref_group_norm(x, w, b, num_groups, eps=1e-5):
    out = np.empty_like(x)
    cg = x.shape[1] // num_groups
    for n in range(x.shape[0]):
        for g in range(num_groups):
            blk = x[n, g * cg:(g + 1) * cg]
            out[n, g * cg:(g + 1) * cg] = (blk - blk.mean()) / np.sqrt(blk.var() + eps)
    return (out * _chan(w, x.ndim) + _chan(b, x.ndim)).astype(x.dtype)


def ref_instance_norm(x, w, b, eps=1e-5):
    axes = tuple(range(2, x.ndim))
    mu = x.mean(axes, keepdims=True)
    var = x.var(axes, keepdims=True)
    return ((x - mu) / np.sqrt(var + eps) * _chan(w, x.ndim) + _chan(b, x.ndim)).astype(x.dtype)


def ref_embedding(w, idx, padding_idx=None):
    return w[idx]


def _per_sample(x, t):
    """(N, C, d...) and (N, d...) -> (M, C), (M,) with the class dim last."""
    if x.ndim == 1:
        return x[None], np.asarray(t).reshape(1)
    c = x.shape[1]
    return np.moveaxis(x, 1, -1).reshape(-1, c), np.asarray(t).reshape(-1)


def ref_nll_loss(logp, t, w=None, ignore_index=-100, reduction="mean"):
    x, tt = _per_sample(logp, t)
    w = np.ones(x.shape[1], x.dtype) if w is None else w
    losses, weights = [], []
    for row, k in zip(x, tt):
        if k == ignore_index:
            losses.append(0.0)
            weights.append(0.0)
        else:
            losses.append(-row[k] * w[k])
            weights.append(w[k])
    losses = np.array(losses, x.dtype)
    if reduction == "none":
        return losses.reshape(np.shape(t))
    if reduction == "sum":
        return np.asarray(losses.sum(), x.dtype)
    return np.asarray(losses.sum() / np.sum(weights), x.dtype)


def ref_cross_entropy(x, t, w=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    cdim = 1 if x.ndim > 1 else 0
    logp = _log_softmax(x, cdim)
    c = x.shape[cdim]
    nll = ref_nll_loss(logp, t, w, ignore_index, reduction)
    if not label_smoothing:
        return nll
    lp, tt = _per_sample(logp, t)
    ww = np.ones(c, x.dtype) if w is None else w
    smooth = np.array([0.0 if k == ignore_index else -(row * ww).sum() for row, k in zip(lp, tt)], x.dtype)
    if reduction == "none":
        ret = smooth.reshape(np.shape(t))
    elif reduction == "sum":
        ret = smooth.sum()
    else:
        counted = [ww[k] for k in tt if k != ignore_index]
        ret = smooth.sum() / np.sum(counted)
    return np.asarray((1 - label_smoothing) * nll + ret * (label_smoothing / c), x.dtype)


def ref_cross_entropy_probs(x, p, w=None, reduction="mean", label_smoothing=0.0):
    cdim = 1 if x.ndim > 1 else 0
    c = x.shape[cdim]
    p = p * (1 - label_smoothing) + label_smoothing / c
    ww = np.ones(c, x.dtype) if w is None else w
    per = -(_log_softmax(x, cdim) * p * ww.reshape((-1,) + (1,) * (x.ndim - 1 - cdim))).sum(cdim)
    if reduction == "none":
        return per.astype(x.dtype)
    if reduction == "sum":
        return np.asarray(per.sum(), x.dtype)
    return np.asarray(per.sum() / (x.size // c), x.dtype)


def ref_bce(x, y, w=None, reduction="mean"):
    loss = -(y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log(1 - x), -100))
    if w is not None:
        loss = loss * w
    return _red(loss.astype(x.dtype), reduction)


def ref_bce_logits(x, y, w=None, pos_weight=None, reduction="mean"):
    pw = 1.0 if pos_weight is None else pos_weight
    # -[pw y log s(x) + (1 - y) log(1 - s(x))], log s(x) = -log(1 + e^-x)
    loss = pw * y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x)
    if w is not None:
        loss = loss * w
    return _red(loss.astype(x.dtype), reduction)


def ref_l1(x, y, reduction="mean"):
    return _red(np.abs(x - y), reduction)


def ref_smooth_l1(x, y, reduction="mean", beta=1.0):
    d = np.abs(x - y)
    return _red(np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta).astype(x.dtype), reduction)


def ref_huber(x, y, reduction="mean", delta=1.0):
    d = np.abs(x - y)
    return _red(np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)).astype(x.dtype), reduction)


def ref_kl_div(x, t, reduction="mean", log_target=False):
    if log_target:
        loss = np.exp(t) * (t - x)
    else:
        loss = np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0) - t * x
    loss = loss.astype(x.dtype)
    if reduction == "batchmean":
        return np.asarray(loss.sum() / x.shape[0], x.dtype)
    return _red(loss, reduction)


def ref_cosine_similarity(a, b, dim=1, eps=1e-8):
    na = np.maximum(np.sqrt((a * a).sum(dim, keepdims=True)), eps)
    nb = np.maximum(np.sqrt((b * b).sum(dim, keepdims=True)), eps)
    return ((a / na) * (b / nb)).sum(dim).astype(np.result_type(a, b))


def ref_pairwise_distance(a, b, p=2.0, eps=1e-6, keepdim=False):
    return (np.abs(a - b + eps) ** p).sum(-1, keepdims=keepdim) ** (1 / p)


def ref_normalize(x, p=2.0, dim=1, eps=1e-12):
    n = (np.abs(x) ** p).sum(dim, keepdims=True) ** (1 / p)
    return (x / np.maximum(n, eps)).astype(x.dtype)


def ref_sdpa(q, k, v, mask=None, is_causal=False, scale=None):
    s = q @ np.swapaxes(k, -1, -2) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    elif mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    return (_softmax(s, -1) @ v).astype(q.dtype)


# ---- samples ------------------------------------------------------------------------------


def _s(*args, desc="", **kw):
    return Sample(tuple(args), kw, desc=desc)


def _targets(rng, shape, c, ignore=None, p=0.3):
    t = rng.integers(0, c, shape)
    if ignore is not None:
        t = np.where(rng.random(shape) < p, ignore, t)
        t.flat[0] = 0  # at least one counted target
    return np.asarray(t, np.int64)


def _probs(rng, shape, dtype, axis=1):
    p = rng.uniform(0.1, 1.0, shape)
    return (p / p.sum(axis, keepdims=True)).astype(dtype)


def _pos(rng, shape, dtype, lo=0.5, hi=2.0):
    return rng.uniform(lo, hi, shape).astype(dtype)


def linear_samples(dtype, rng, domain):
    return [_s(_arr(rng, (3, 4), dtype), _arr(rng, (2, 4), dtype), _arr(rng, (2,), dtype), desc="2d"),
            _s(_arr(rng, (2, 2, 3), dtype), _arr(rng, (4, 3), dtype), desc="3d, no bias")]


def norm_samples(dtype, rng, domain):
    return [_s(_distinct(rng, (2, 3, 4), dtype), _arr(rng, (4,), dtype), _arr(rng, (4,), dtype), normalized_shape=(4,),
               desc="last dim"),
            _s(_distinct(rng, (2, 2, 3), dtype), _arr(rng, (2, 3), dtype), _arr(rng, (2, 3), dtype),
               normalized_shape=(2, 3), eps=1e-3, desc="last two dims")]


def bn_train_samples(dtype, rng, domain):
    return [_s(_distinct(rng, (4, 3), dtype), _arr(rng, (3,), dtype), _arr(rng, (3,), dtype), desc="(N, C)"),
            _s(_distinct(rng, (2, 2, 3, 2), dtype), _arr(rng, (2,), dtype), _arr(rng, (2,), dtype), desc="(N, C, H, W)")]


def bn_eval_samples(dtype, rng, domain):
    return [_s(_arr(rng, (3, 2, 3), dtype), _arr(rng, (2,), dtype), _pos(rng, (2,), dtype), _arr(rng, (2,), dtype),
               _arr(rng, (2,), dtype), desc="(N, C, L)")]


def gn_samples(dtype, rng, domain):
    return [_s(_distinct(rng, (2, 4, 3), dtype), _arr(rng, (4,), dtype), _arr(rng, (4,), dtype), num_groups=2,
               desc="2 groups")]


def inorm_samples(dtype, rng, domain):
    return [_s(_distinct(rng, (2, 2, 2, 3), dtype), _arr(rng, (2,), dtype), _arr(rng, (2,), dtype), desc="2d")]


def emb_samples(dtype, rng, domain):
    return [_s(_arr(rng, (5, 3), dtype), np.array([[0, 4, 2], [2, 2, 1]]), desc="2-d index"),
            # forward only: the padding row gets no gradient by design (torch's), which finite
            # differences cannot confirm; tests/test_nn_functional.py checks it on the tape
            Sample((_arr(rng, (5, 2), dtype), np.array([1, 3, 3, 0])), {"padding_idx": 3}, gradcheck=False,
                   desc="padding_idx")]


def nll_samples(dtype, rng, domain):
    c = 4
    return [
        _s(_arr(rng, (5, c), dtype), _targets(rng, (5,), c), desc="mean"),
        _s(_arr(rng, (5, c), dtype), _targets(rng, (5,), c, -100), _pos(rng, (c,), dtype), desc="weight, ignore"),
        _s(_arr(rng, (5, c), dtype), _targets(rng, (5,), c, 1), ignore_index=1, reduction="sum", desc="sum"),
        _s(_arr(rng, (2, c, 3), dtype), _targets(rng, (2, 3), c, -100), _pos(rng, (c,), dtype), reduction="none",
           desc="k-dim none"),
    ]


def ce_samples(dtype, rng, domain):
    c = 4
    return [
        _s(_arr(rng, (5, c), dtype), _targets(rng, (5,), c), desc="plain"),
        _s(_arr(rng, (5, c), dtype), _targets(rng, (5,), c, -100), _pos(rng, (c,), dtype), desc="weight, ignore"),
        _s(_arr(rng, (5, c), dtype), _targets(rng, (5,), c, -100), label_smoothing=0.2, desc="smoothing"),
        _s(_arr(rng, (5, c), dtype), _targets(rng, (5,), c, 2), _pos(rng, (c,), dtype), ignore_index=2,
           label_smoothing=0.3, desc="weight, smoothing"),
        _s(_arr(rng, (5, c), dtype), _targets(rng, (5,), c, -100), _pos(rng, (c,), dtype), label_smoothing=0.1,
           reduction="sum", desc="sum"),
        _s(_arr(rng, (2, c, 3), dtype), _targets(rng, (2, 3), c, -100), label_smoothing=0.1, reduction="none",
           desc="k-dim none"),
        _s(_arr(rng, (c,), dtype), np.array(2), desc="unbatched"),
    ]


def ce_prob_samples(dtype, rng, domain):
    c = 4
    return [
        _s(_arr(rng, (5, c), dtype), _probs(rng, (5, c), dtype), desc="probs"),
        _s(_arr(rng, (5, c), dtype), _probs(rng, (5, c), dtype), _pos(rng, (c,), dtype), label_smoothing=0.2,
           desc="weight, smoothing"),
        _s(_arr(rng, (2, c, 3), dtype), _probs(rng, (2, c, 3), dtype), reduction="none", desc="k-dim none"),
    ]


def bce_samples(dtype, rng, domain):
    return [_s(_pos(rng, (3, 4), dtype, 0.05, 0.95), _pos(rng, (3, 4), dtype, 0.0, 1.0), desc="mean"),
            _s(_pos(rng, (3, 4), dtype, 0.05, 0.95), _pos(rng, (3, 4), dtype, 0.0, 1.0), _pos(rng, (3, 4), dtype),
               reduction="sum", desc="weight, sum")]


def bce_logits_samples(dtype, rng, domain):
    return [_s(_arr(rng, (3, 4), dtype, (-4, 4)), _pos(rng, (3, 4), dtype, 0.0, 1.0), desc="mean"),
            _s(_arr(rng, (3, 4), dtype, (-4, 4)), _pos(rng, (3, 4), dtype, 0.0, 1.0), _pos(rng, (3, 4), dtype),
               _pos(rng, (4,), dtype), reduction="none", desc="weight, pos_weight")]


def pair_samples(dtype, rng, domain, **kw):
    return [_s(_arr(rng, (3, 4), dtype, (-3, 3)), _arr(rng, (3, 4), dtype, (-3, 3)), desc="mean", **kw),
            _s(_arr(rng, (2, 3), dtype, (-3, 3)), _arr(rng, (2, 3), dtype, (-3, 3)), reduction="none", desc="none", **kw)]


def kl_samples(dtype, rng, domain):
    p, q = _probs(rng, (3, 4), dtype), _probs(rng, (3, 4), dtype)
    return [_s(np.log(p), q, reduction="batchmean", desc="batchmean"),
            _s(np.log(p), np.log(q), reduction="sum", log_target=True, desc="log target"),
            _s(np.log(p), q, reduction="none", desc="none")]


def cos_samples(dtype, rng, domain):
    return [_s(_arr(rng, (3, 4), dtype), _arr(rng, (3, 4), dtype), desc="dim 1"),
            _s(_arr(rng, (2, 3, 4), dtype), _arr(rng, (3, 4), dtype), dim=-1, desc="broadcast, dim -1")]


def sdpa_samples(dtype, rng, domain):
    return [
        _s(_arr(rng, (2, 3, 4), dtype), _arr(rng, (2, 5, 4), dtype), _arr(rng, (2, 5, 2), dtype), desc="plain"),
        _s(_arr(rng, (1, 4, 3), dtype), _arr(rng, (1, 4, 3), dtype), _arr(rng, (1, 4, 2), dtype), is_causal=True,
           desc="causal"),
        _s(_arr(rng, (2, 3, 4), dtype), _arr(rng, (2, 4, 4), dtype), _arr(rng, (2, 4, 2), dtype),
           (rng.random((3, 4)) < 0.6) | np.eye(3, 4, dtype=bool), desc="bool mask"),
        _s(_arr(rng, (2, 3, 4), dtype), _arr(rng, (2, 4, 4), dtype), _arr(rng, (2, 4, 2), dtype),
           _arr(rng, (3, 4), dtype), scale=0.7, desc="float mask, scale"),
    ]


def _ce_probs_op(x, p, w=None, **kw):
    return F.cross_entropy(x, p, weight=w, **kw)


def _ce_op(x, t, w=None, **kw):
    return F.cross_entropy(x, t, weight=w, **kw)


def _nll_op(x, t, w=None, **kw):
    return F.nll_loss(x, t, weight=w, **kw)


def _sdpa_op(q, k, v, mask=None, **kw):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)


def _ref_sdpa(q, k, v, mask=None, **kw):
    return ref_sdpa(q, k, v, mask, **kw)


NN_OPS = [
    OpInfo("F.linear", "composite", F.linear, ref_linear, linear_samples),
    OpInfo("F.bilinear", "composite", F.bilinear, ref_bilinear,
           lambda dt, rng, d: [_s(_arr(rng, (3, 2), dt), _arr(rng, (3, 3), dt), _arr(rng, (2, 2, 3), dt),
                                  _arr(rng, (2,), dt), desc="(3, 2) x (3, 3)")]),
    OpInfo("F.layer_norm", "composite", lambda x, w, b, **kw: F.layer_norm(x, weight=w, bias=b, **kw),
           ref_layer_norm, norm_samples, rtol=1e-4, atol=1e-5),
    OpInfo("F.rms_norm", "composite", lambda x, w, **kw: F.rms_norm(x, weight=w, **kw), ref_rms_norm,
           lambda dt, rng, d: [_s(_arr(rng, (2, 3), dt), _arr(rng, (3,), dt), normalized_shape=(3,), eps=1e-6,
                                  desc="last dim")], rtol=1e-4, atol=1e-5),
    OpInfo("F.batch_norm(train)", "composite",
           lambda x, w, b, **kw: F.batch_norm(x, None, None, w, b, training=True, **kw), ref_batch_norm_train,
           bn_train_samples, rtol=1e-4, atol=1e-5),
    OpInfo("F.batch_norm(eval)", "composite",
           lambda x, m, v, w, b, **kw: F.batch_norm(x, m, v, w, b, training=False, **kw), ref_batch_norm_eval,
           bn_eval_samples, rtol=1e-4, atol=1e-5),
    OpInfo("F.group_norm", "composite", lambda x, w, b, **kw: F.group_norm(x, weight=w, bias=b, **kw),
           ref_group_norm, gn_samples, rtol=1e-4, atol=1e-5),
    OpInfo("F.instance_norm", "composite", lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
           ref_instance_norm, inorm_samples, rtol=1e-4, atol=1e-5),
    OpInfo("F.embedding", "composite", lambda w, i, **kw: F.embedding(i, w, **kw), ref_embedding, emb_samples),
    OpInfo("F.nll_loss", "composite", _nll_op, ref_nll_loss, nll_samples),
    OpInfo("F.cross_entropy(index)", "composite", _ce_op, ref_cross_entropy, ce_samples),
    OpInfo("F.cross_entropy(probs)", "composite", _ce_probs_op, ref_cross_entropy_probs, ce_prob_samples),
    OpInfo("F.binary_cross_entropy", "composite", lambda x, y, w=None, **kw: F.binary_cross_entropy(x, y, w, **kw),
           ref_bce, bce_samples),
    OpInfo("F.binary_cross_entropy_with_logits", "composite",
           lambda x, y, w=None, pw=None, **kw: F.binary_cross_entropy_with_logits(x, y, w, pos_weight=pw, **kw),
           lambda x, y, w=None, pw=None, **kw: ref_bce_logits(x, y, w, pw, **kw), bce_logits_samples),
    OpInfo("F.l1_loss", "composite", F.l1_loss, ref_l1, pair_samples),
    OpInfo("F.smooth_l1_loss", "composite", F.smooth_l1_loss, ref_smooth_l1,
           lambda dt, rng, d: pair_samples(dt, rng, d, beta=0.7)),
    OpInfo("F.huber_loss", "composite", F.huber_loss, ref_huber,
           lambda dt, rng, d: pair_samples(dt, rng, d, delta=1.3)),
    OpInfo("F.kl_div", "composite", F.kl_div, ref_kl_div, kl_samples),
    OpInfo("F.cosine_similarity", "composite", F.cosine_similarity, ref_cosine_similarity, cos_samples),
    OpInfo("F.pairwise_distance", "composite", F.pairwise_distance, ref_pairwise_distance,
           lambda dt, rng, d: [_s(_arr(rng, (3, 4), dt), _arr(rng, (3, 4), dt), desc="p=2"),
                               _s(_arr(rng, (3, 4), dt), _arr(rng, (3, 4), dt), p=3.0, keepdim=True, desc="p=3")]),
    OpInfo("F.normalize", "composite", F.normalize, ref_normalize,
           lambda dt, rng, d: [_s(_arr(rng, (3, 4), dt), desc="p=2"), _s(_arr(rng, (3, 4), dt), p=3.0, dim=0,
                                                                          desc="p=3 dim 0")]),
    OpInfo("F.scaled_dot_product_attention", "composite", _sdpa_op, _ref_sdpa, sdpa_samples, rtol=1e-4, atol=1e-5),
]
assert all(o.dtypes == FLOATS for o in NN_OPS)
