"""dg.nn.functional, dg.nn modules and dg.optim against torch on fixed inputs: forward
values, gradients of every floating input and parameter, running buffers, optimizer
trajectories over 20 steps and state_dict round trips.  Skipped where torch is absent."""
import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import dualgraph as dg  # noqa: E402
import dualgraph.nn.functional as F  # noqa: E402
from dualgraph import nn  # noqa: E402

TOL = {np.dtype(np.float64): dict(rtol=1e-9, atol=1e-11), np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6)}


def _np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t.detach())


def close(got, want, what="", tol=None):
    g, w = _np(got), _np(want)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != torch {w.shape}"
    assert g.dtype == w.dtype, f"{what}: dtype {g.dtype} != torch {w.dtype}"
    np.testing.assert_allclose(g, w, err_msg=what, equal_nan=True, **(tol or TOL.get(g.dtype, {})))


def rnd(*shape, seed=0, dtype=np.float64, low=None, high=None):
    r = np.random.default_rng(seed)
    if low is not None:
        return r.uniform(low, high, shape).astype(dtype)
    return r.standard_normal(shape).astype(dtype)


class Const:
    """An input passed as a tensor that does not require grad (torch refuses to
    differentiate e.g. class weights)."""

    def __init__(self, a):
        self.a = a


def _make(mk, a):
    if isinstance(a, Const):
        return mk(a.a)
    if isinstance(a, np.ndarray):
        return mk(a, requires_grad=a.dtype.kind == "f")
    return a


def run_functional(fn, *arrays, what="", tol=None, seed=1):
    """``fn(lib, *tensors)`` with lib = dg.nn.functional / torch.nn.functional: compare the
    output and, after backward of a random cotangent, the gradient of each float input."""
    dts = [_make(dg.tensor, a) for a in arrays]
    tts = [_make(torch.tensor, a) for a in arrays]
    out_d, out_t = fn(F, *dts), fn(TF, *tts)
    close(out_d, out_t, what + " forward", tol)
    if not out_t.requires_grad:
        return
    ct = np.random.default_rng(seed).standard_normal(out_t.shape).astype(_np(out_t).dtype)
    out_d.backward(dg.tensor(ct))
    out_t.backward(torch.tensor(ct))
    for k, (d, t) in enumerate(zip(dts, tts)):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            if t.grad is None:
                assert d.grad is None or not np.any(_np(d.grad)), f"{what}: grad {k}"
            else:
                assert d.grad is not None, f"{what}: no gradient for input {k}"
                close(d.grad, t.grad, f"{what} grad of input {k}", tol)


# ---- nn.functional ------------------------------------------------------------------------

X45 = rnd(4, 5)
T4 = np.array([1, 0, 4, 2])
T4I = np.array([1, -100, 4, 2])
W5 = Const(rnd(5, seed=3, low=0.2, high=2.0))
P45 = np.random.default_rng(4).dirichlet(np.ones(5), 4)
X2534 = rnd(2, 5, 3, 4, seed=5)
T234 = np.random.default_rng(6).integers(0, 5, (2, 3, 4))
T234I = np.where(np.random.default_rng(7).random((2, 3, 4)) < 0.3, -100, T234)

FUNCTIONAL = {
    "linear": (lambda L, x, w, b: L.linear(x, w, b), rnd(2, 3, 4), rnd(5, 4, seed=1), rnd(5, seed=2)),
    "linear_nobias": (lambda L, x, w: L.linear(x, w), rnd(3, 4), rnd(5, 4, seed=1)),
    "linear_f32": (lambda L, x, w, b: L.linear(x, w, b), rnd(3, 4, dtype=np.float32),
                   rnd(5, 4, seed=1, dtype=np.float32), rnd(5, seed=2, dtype=np.float32)),
    "bilinear": (lambda L, a, b, w, c: L.bilinear(a, b, w, c), rnd(3, 4), rnd(3, 2, seed=1), rnd(5, 4, 2, seed=2),
                 rnd(5, seed=3)),
    "dropout_eval": (lambda L, x: L.dropout(x, 0.5, training=False), rnd(3, 4)),
    "dropout_p0": (lambda L, x: L.dropout(x, 0.0, training=True) * 2, rnd(3, 4)),
    "layer_norm": (lambda L, x, w, b: L.layer_norm(x, (4,), w, b), rnd(3, 2, 4), rnd(4, seed=1), rnd(4, seed=2)),
    "layer_norm_2d_noaffine": (lambda L, x: L.layer_norm(x, (2, 4), eps=1e-3), rnd(3, 2, 4)),
    "layer_norm_f32": (lambda L, x, w, b: L.layer_norm(x, (4,), w, b), rnd(3, 4, dtype=np.float32),
                       rnd(4, seed=1, dtype=np.float32), rnd(4, seed=2, dtype=np.float32)),
    "rms_norm": (lambda L, x, w: L.rms_norm(x, (4,), w, eps=1e-6), rnd(3, 4), rnd(4, seed=1)),
    "group_norm": (lambda L, x, w, b: L.group_norm(x, 2, w, b), rnd(2, 4, 3, 3), rnd(4, seed=1), rnd(4, seed=2)),
    "instance_norm": (lambda L, x, w, b: L.instance_norm(x, weight=w, bias=b), rnd(2, 3, 4, 4), rnd(3, seed=1),
                      rnd(3, seed=2)),
    "batch_norm_eval": (lambda L, x, m, v, w, b: L.batch_norm(x, m, v, w, b, training=False),
                        rnd(4, 3, 2), Const(rnd(3, seed=1)), Const(rnd(3, seed=2, low=0.5, high=2)), rnd(3, seed=3),
                        rnd(3, seed=4)),
    "batch_norm_train_nostats": (lambda L, x, w, b: L.batch_norm(x, None, None, w, b, training=True),
                                 rnd(4, 3, 2, 2), rnd(3, seed=3), rnd(3, seed=4)),
    "embedding": (lambda L, w: L.embedding(torch.tensor(IDX) if L is TF else dg.tensor(IDX), w), rnd(6, 3)),
    "embedding_padding": (lambda L, w: L.embedding(torch.tensor(IDX) if L is TF else dg.tensor(IDX), w, padding_idx=2),
                          rnd(6, 3)),
    "nll_loss": (lambda L, x, t: L.nll_loss(x, t), X45, T4),
    "nll_loss_weight_ignore": (lambda L, x, t, w: L.nll_loss(x, t, w, ignore_index=-100), X45, T4I, W5),
    "nll_loss_sum": (lambda L, x, t, w: L.nll_loss(x, t, w, reduction="sum"), X45, T4, W5),
    "nll_loss_none": (lambda L, x, t, w: L.nll_loss(x, t, w, reduction="none", ignore_index=0), X45, T4, W5),
    "nll_loss_kdim": (lambda L, x, t, w: L.nll_loss(x, t, w), X2534, T234I, W5),
    "cross_entropy": (lambda L, x, t: L.cross_entropy(x, t), X45, T4),
    "cross_entropy_f32": (lambda L, x, t: L.cross_entropy(x, t), X45.astype(np.float32), T4),
    "cross_entropy_weight": (lambda L, x, t, w: L.cross_entropy(x, t, weight=w), X45, T4, W5),
    "cross_entropy_ignore": (lambda L, x, t: L.cross_entropy(x, t, ignore_index=-100), X45, T4I),
    "cross_entropy_ignore_class": (lambda L, x, t: L.cross_entropy(x, t, ignore_index=4), X45, T4),
    "cross_entropy_smoothing": (lambda L, x, t: L.cross_entropy(x, t, label_smoothing=0.2), X45, T4I),
    "cross_entropy_smoothing_weight": (lambda L, x, t, w: L.cross_entropy(x, t, weight=w, label_smoothing=0.3),
                                       X45, T4I, W5),
    "cross_entropy_smoothing_sum": (lambda L, x, t, w: L.cross_entropy(x, t, weight=w, label_smoothing=0.3,
                                                                        reduction="sum"), X45, T4I, W5),
    "cross_entropy_smoothing_none": (lambda L, x, t: L.cross_entropy(x, t, label_smoothing=0.1, reduction="none"),
                                     X45, T4I),
    "cross_entropy_kdim": (lambda L, x, t, w: L.cross_entropy(x, t, weight=w, label_smoothing=0.1), X2534, T234I, W5),
    "cross_entropy_unbatched": (lambda L, x, t: L.cross_entropy(x, t), rnd(5), np.array(3)),
    "cross_entropy_probs": (lambda L, x, p: L.cross_entropy(x, p), X45, P45),
    "cross_entropy_probs_weight_smooth": (lambda L, x, p, w: L.cross_entropy(x, p, weight=w, label_smoothing=0.25),
                                          X45, P45, W5),
    "cross_entropy_probs_none": (lambda L, x, p: L.cross_entropy(x, p, reduction="none"), X45, P45),
    "cross_entropy_probs_kdim": (lambda L, x, p: L.cross_entropy(x, p, reduction="sum"), X2534,
                                 np.random.default_rng(8).dirichlet(np.ones(5), (2, 3, 4)).transpose(0, 3, 1, 2).copy()),
    "binary_cross_entropy": (lambda L, x, y: L.binary_cross_entropy(x, y), rnd(3, 4, low=0.05, high=0.95),
                             rnd(3, 4, seed=1, low=0, high=1)),
    "binary_cross_entropy_weight_sum": (lambda L, x, y, w: L.binary_cross_entropy(x, y, w, reduction="sum"),
                                        rnd(3, 4, low=0.05, high=0.95), rnd(3, 4, seed=1, low=0, high=1),
                                        Const(rnd(3, 4, seed=2, low=0, high=2))),
    "bce_with_logits": (lambda L, x, y: L.binary_cross_entropy_with_logits(x, y), rnd(3, 4) * 4,
                        rnd(3, 4, seed=1, low=0, high=1)),
    "bce_with_logits_pos_weight": (lambda L, x, y, w, pw: L.binary_cross_entropy_with_logits(
        x, y, w, pos_weight=pw, reduction="none"), rnd(3, 4) * 4, rnd(3, 4, seed=1, low=0, high=1),
        Const(rnd(3, 4, seed=2, low=0, high=2)), Const(rnd(4, seed=3, low=0.5, high=3))),
    "bce_with_logits_f32": (lambda L, x, y: L.binary_cross_entropy_with_logits(x, y), (rnd(3, 4) * 30).astype(np.float32),
                            rnd(3, 4, seed=1, low=0, high=1, dtype=np.float32)),
    "l1_loss": (lambda L, x, y: L.l1_loss(x, y), rnd(3, 4), rnd(3, 4, seed=1)),
    "l1_loss_sum": (lambda L, x, y: L.l1_loss(x, y, reduction="sum"), rnd(3, 4), rnd(3, 4, seed=1)),
    "mse_loss": (lambda L, x, y: L.mse_loss(x, y), rnd(3, 4), rnd(3, 4, seed=1)),
    "smooth_l1_loss": (lambda L, x, y: L.smooth_l1_loss(x, y), rnd(3, 4) * 2, rnd(3, 4, seed=1)),
    "smooth_l1_loss_beta": (lambda L, x, y: L.smooth_l1_loss(x, y, beta=0.5, reduction="none"), rnd(3, 4) * 2,
                            rnd(3, 4, seed=1)),
    "smooth_l1_loss_beta0": (lambda L, x, y: L.smooth_l1_loss(x, y, beta=0.0), rnd(3, 4) * 2, rnd(3, 4, seed=1)),
    "huber_loss": (lambda L, x, y: L.huber_loss(x, y), rnd(3, 4) * 2, rnd(3, 4, seed=1)),
    "huber_loss_delta": (lambda L, x, y: L.huber_loss(x, y, delta=0.7, reduction="sum"), rnd(3, 4) * 2,
                         rnd(3, 4, seed=1)),
    "kl_div": (lambda L, x, t: L.kl_div(x, t, reduction="batchmean"), np.log(P45), P45[::-1].copy()),
    # (torch's gradient with respect to a target holding zeros is NaN at its nonzeros)
    "kl_div_zero_target": (lambda L, x, t: L.kl_div(x, t, reduction="sum"), np.log(P45),
                           Const(np.where(P45 > 0.2, P45, 0.0))),
    "kl_div_mean_none": (lambda L, x, t: L.kl_div(x, t, reduction="none"), np.log(P45), P45[::-1].copy()),
    "kl_div_log_target": (lambda L, x, t: L.kl_div(x, t, reduction="batchmean", log_target=True), np.log(P45),
                          np.log(P45[::-1].copy())),
    "cosine_similarity": (lambda L, a, b: L.cosine_similarity(a, b), rnd(3, 4), rnd(3, 4, seed=1)),
    "cosine_similarity_dim_bcast": (lambda L, a, b: L.cosine_similarity(a, b, dim=-1), rnd(2, 3, 4), rnd(3, 4, seed=1)),
    "pairwise_distance": (lambda L, a, b: L.pairwise_distance(a, b), rnd(3, 4), rnd(3, 4, seed=1)),
    "pairwise_distance_p1": (lambda L, a, b: L.pairwise_distance(a, b, p=1.0, keepdim=True), rnd(3, 4),
                             rnd(3, 4, seed=1)),
    "normalize": (lambda L, a: L.normalize(a, dim=-1), rnd(3, 4)),
    "normalize_p1": (lambda L, a: L.normalize(a, p=1.0, dim=0), rnd(3, 4)),
    "logsigmoid": (lambda L, x: L.logsigmoid(x), rnd(3, 4) * 10),
    "softmin": (lambda L, x: L.softmin(x, dim=0), rnd(3, 4)),
    "softmax_dtype": (lambda L, x: L.softmax(x, dim=-1, dtype=TF_OR_DG(L).float64), rnd(3, 4, dtype=np.float32)),
    "log_softmax_dim1": (lambda L, x: L.log_softmax(x, 1), rnd(3, 4, 2)),
    "glu": (lambda L, x: L.glu(x, dim=0), rnd(4, 3)),
    "pad_reflect": (lambda L, x: L.pad(x, (1, 2), mode="reflect"), rnd(2, 3, 4)),
    "silu": (lambda L, x: L.silu(x), rnd(3, 4)),
    "leaky_relu": (lambda L, x: L.leaky_relu(x, 0.2), rnd(3, 4)),
    "sdpa": (lambda L, q, k, v: L.scaled_dot_product_attention(q, k, v), rnd(2, 3, 4, 8), rnd(2, 3, 6, 8, seed=1),
             rnd(2, 3, 6, 5, seed=2)),
    "sdpa_causal": (lambda L, q, k, v: L.scaled_dot_product_attention(q, k, v, is_causal=True), rnd(2, 5, 8),
                    rnd(2, 5, 8, seed=1), rnd(2, 5, 4, seed=2)),
    "sdpa_bool_mask": (lambda L, q, k, v, m: L.scaled_dot_product_attention(q, k, v, attn_mask=m), rnd(2, 4, 8),
                       rnd(2, 6, 8, seed=1), rnd(2, 6, 3, seed=2),
                       (np.random.default_rng(3).random((4, 6)) < 0.7) | np.eye(4, 6, dtype=bool)),
    "sdpa_float_mask_scale": (lambda L, q, k, v, m: L.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.3),
                              rnd(2, 4, 8), rnd(2, 6, 8, seed=1), rnd(2, 6, 3, seed=2), rnd(2, 4, 6, seed=4)),
    "sdpa_f32": (lambda L, q, k, v: L.scaled_dot_product_attention(q, k, v, is_causal=True),
                 rnd(2, 5, 8, dtype=np.float32), rnd(2, 5, 8, seed=1, dtype=np.float32),
                 rnd(2, 5, 4, seed=2, dtype=np.float32)),
}
IDX = np.array([[0, 2, 5], [2, 2, 1]])


def TF_OR_DG(L):  # noqa: N802 - the top-level namespace (dtypes) of a functional namespace
    return torch if L is TF else dg


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_functional_vs_torch(name):
    fn, *arrays = FUNCTIONAL[name]
    run_functional(fn, *arrays, what=name)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_running_stats_vs_torch(training):
    x = rnd(6, 3, 2, 2)
    rm, rv = rnd(3, seed=1), rnd(3, seed=2, low=0.5, high=2.0)
    rm_d, rv_d, rm_t, rv_t = dg.tensor(rm), dg.tensor(rv), torch.tensor(rm), torch.tensor(rv)
    fn = lambda L, x, w, b, m, v: L.batch_norm(x, m, v, w, b, training=training, momentum=0.3, eps=1e-4)  # noqa: E731
    # the running buffers are captured (not differentiated): bind them per library
    run_functional(lambda L, x, w, b: fn(L, x, w, b, rm_d if L is F else rm_t, rv_d if L is F else rv_t),
                   x, rnd(3, seed=3), rnd(3, seed=4), what="batch_norm")
    close(rm_d, rm_t, "running_mean")
    close(rv_d, rv_t, "running_var")


def test_embedding_max_norm_renormalises_weight_like_torch():
    w = rnd(6, 3) * 3
    wd, wt = dg.tensor(w.copy()), torch.tensor(w.copy())
    idx = np.array([0, 2, 2, 4])
    out_d = F.embedding(dg.tensor(idx), wd, max_norm=1.5)
    with torch.no_grad():
        out_t = TF.embedding(torch.tensor(idx), wt, max_norm=1.5)
    close(out_d, out_t, "embedding max_norm", tol=dict(rtol=1e-6, atol=1e-7))
    close(wd, wt, "weight after max_norm", tol=dict(rtol=1e-6, atol=1e-7))


# ---- modules ------------------------------------------------------------------------------


def _pair_module(make_dg, make_t, dtype=torch.float64):
    """The same layer in both libraries, dualgraph's loaded from torch's state_dict (which
    also checks that parameter and buffer names match torch's)."""
    mt = make_t().to(dtype)
    md = make_dg().to(np.float64 if dtype == torch.float64 else np.float32)
    assert list(md.state_dict().keys()) == list(mt.state_dict().keys())
    md.load_state_dict(mt.state_dict())
    return md, mt


def _compare_module(md, mt, *arrays, what, tol=None, out_index=None, extra_t=(), extra_d=()):
    xs_d = [dg.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    xs_t = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out_d, out_t = md(*xs_d, *extra_d), mt(*xs_t, *extra_t)
    outs_d = out_d if isinstance(out_d, tuple) else (out_d,)
    outs_t = out_t if isinstance(out_t, tuple) else (out_t,)

    def flat(o):
        for v in o:
            if isinstance(v, tuple):
                yield from flat(v)
            elif v is not None:
                yield v

    outs_d, outs_t = list(flat(outs_d)), list(flat(outs_t))
    assert len(outs_d) == len(outs_t)
    loss_d, loss_t = 0, 0
    for k, (a, b) in enumerate(zip(outs_d, outs_t)):
        close(a, b, f"{what} output {k}", tol)
        if b.requires_grad:
            ct = np.random.default_rng(k).standard_normal(b.shape).astype(_np(b).dtype)
            loss_d = loss_d + (a * dg.tensor(ct)).sum()
            loss_t = loss_t + (b * torch.tensor(ct)).sum()
    if not isinstance(loss_t, torch.Tensor):
        return
    loss_d.backward()
    loss_t.backward()
    for (n, p), (nt, pt) in zip(md.named_parameters(), mt.named_parameters()):
        assert n == nt
        if pt.grad is None:
            assert p.grad is None or not np.any(_np(p.grad)), f"{what}: grad of {n}"
        else:
            close(p.grad, pt.grad, f"{what} grad of {n}", tol)
    for k, (a, b) in enumerate(zip(xs_d, xs_t)):
        if b.grad is not None:
            close(a.grad, b.grad, f"{what} grad of input {k}", tol)


MODULES = {
    "Linear": (lambda M: M.Linear(4, 3), [rnd(2, 4)]),
    "Linear_nobias": (lambda M: M.Linear(4, 3, bias=False), [rnd(5, 2, 4)]),
    "Bilinear": (lambda M: M.Bilinear(4, 2, 3), [rnd(5, 4), rnd(5, 2, seed=1)]),
    "Identity": (lambda M: M.Identity(3, foo=1), [rnd(2, 3)]),
    "Conv1d": (lambda M: M.Conv1d(3, 4, 3, stride=2, padding=1), [rnd(2, 3, 9)]),
    "Conv2d": (lambda M: M.Conv2d(4, 6, 3, padding=1, groups=2), [rnd(2, 4, 6, 5)]),
    "Conv2d_stride_dilation": (lambda M: M.Conv2d(3, 2, (3, 2), stride=(2, 1), dilation=(1, 2), bias=False),
                               [rnd(1, 3, 7, 6)]),
    "ConvTranspose2d": (lambda M: M.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
                        [rnd(2, 3, 4, 4)]),
    "MaxPool2d": (lambda M: M.MaxPool2d(2), [rnd(2, 3, 6, 6)]),
    "MaxPool2d_ceil": (lambda M: M.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), [rnd(2, 3, 7, 6)]),
    "AvgPool2d": (lambda M: M.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), [rnd(2, 3, 7, 6)]),
    "AdaptiveAvgPool2d": (lambda M: M.AdaptiveAvgPool2d((3, 2)), [rnd(2, 3, 7, 5)]),
    "Flatten": (lambda M: M.Flatten(), [rnd(2, 3, 4)]),
    "Flatten_range": (lambda M: M.Flatten(0, 1), [rnd(2, 3, 4)]),
    "Unflatten": (lambda M: M.Unflatten(1, (2, 3)), [rnd(4, 6)]),
    "Embedding": (lambda M: M.Embedding(7, 3, padding_idx=1), [np.array([[0, 1, 6], [1, 2, 2]])]),
    "LayerNorm": (lambda M: M.LayerNorm(4), [rnd(2, 3, 4)]),
    "LayerNorm_noaffine": (lambda M: M.LayerNorm((3, 4), elementwise_affine=False), [rnd(2, 3, 4)]),
    "RMSNorm": (lambda M: M.RMSNorm(4, eps=1e-6), [rnd(2, 3, 4)]),
    "GroupNorm": (lambda M: M.GroupNorm(2, 4), [rnd(2, 4, 3)]),
    "InstanceNorm2d": (lambda M: M.InstanceNorm2d(3, affine=True), [rnd(2, 3, 4, 4)]),
    "Dropout_eval": (lambda M: M.Dropout(0.3).eval(), [rnd(2, 3)]),
    "ReLU": (lambda M: M.ReLU(), [rnd(3, 4)]),
    "GELU": (lambda M: M.GELU(), [rnd(3, 4)]),
    "GELU_tanh": (lambda M: M.GELU(approximate="tanh"), [rnd(3, 4)]),
    "Tanh": (lambda M: M.Tanh(), [rnd(3, 4)]),
    "Sigmoid": (lambda M: M.Sigmoid(), [rnd(3, 4)]),
    "Softmax": (lambda M: M.Softmax(dim=0), [rnd(3, 4)]),
    "LogSoftmax": (lambda M: M.LogSoftmax(dim=1), [rnd(3, 4)]),
    "LogSigmoid": (lambda M: M.LogSigmoid(), [rnd(3, 4) * 5]),
    "Sequential": (lambda M: M.Sequential(M.Linear(4, 8), M.Tanh(), M.Linear(8, 2)), [rnd(5, 4)]),
    "MultiheadAttention": (lambda M: M.MultiheadAttention(8, 2), [rnd(5, 3, 8), rnd(4, 3, 8, seed=1),
                                                                   rnd(4, 3, 8, seed=2)]),
    "MultiheadAttention_self_batch_first_nobias": (
        lambda M: M.MultiheadAttention(6, 3, bias=False, batch_first=True), [rnd(2, 4, 6)] * 3),
    "MultiheadAttention_unbatched": (lambda M: M.MultiheadAttention(4, 1), [rnd(3, 4)] * 3),
    "RNNCell": (lambda M: M.RNNCell(3, 4), [rnd(2, 3), rnd(2, 4, seed=1)]),
    "RNNCell_relu_unbatched": (lambda M: M.RNNCell(3, 4, nonlinearity="relu"), [rnd(3)]),
    "GRUCell": (lambda M: M.GRUCell(3, 4), [rnd(2, 3), rnd(2, 4, seed=1)]),
    "LSTMCell": (lambda M: M.LSTMCell(3, 4), [rnd(2, 3)]),
    "RNN": (lambda M: M.RNN(3, 4, num_layers=2), [rnd(5, 2, 3)]),
    "RNN_relu_bidir_batch_first": (lambda M: M.RNN(3, 4, nonlinearity="relu", bidirectional=True, batch_first=True),
                                   [rnd(2, 5, 3), rnd(2, 2, 4, seed=1)]),
    "GRU": (lambda M: M.GRU(3, 4, num_layers=2, bidirectional=True), [rnd(5, 2, 3)]),
    "GRU_unbatched": (lambda M: M.GRU(3, 4), [rnd(5, 3), rnd(1, 4, seed=1)]),
    "LSTM": (lambda M: M.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True), [rnd(2, 5, 3)]),
    "LSTM_nobias": (lambda M: M.LSTM(3, 4, bias=False), [rnd(5, 2, 3)]),
    "TransformerEncoderLayer": (lambda M: M.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0),
                                [rnd(5, 3, 8)]),
    "TransformerEncoderLayer_norm_first_gelu": (
        lambda M: M.TransformerEncoderLayer(8, 4, 12, dropout=0.0, activation="gelu", norm_first=True,
                                            batch_first=True), [rnd(3, 5, 8)]),
    "TransformerEncoder_eval": (lambda M: M.TransformerEncoder(M.TransformerEncoderLayer(8, 2, 16), 2,
                                                               norm=M.LayerNorm(8), enable_nested_tensor=False).eval(),
                                [rnd(5, 3, 8)]),
    "CrossEntropyLoss": (lambda M: M.CrossEntropyLoss(label_smoothing=0.1), [X45, T4]),
    "NLLLoss": (lambda M: M.NLLLoss(reduction="sum"), [X45, T4]),
    "MSELoss": (lambda M: M.MSELoss(), [rnd(3, 4), rnd(3, 4, seed=1)]),
    "L1Loss": (lambda M: M.L1Loss(), [rnd(3, 4), rnd(3, 4, seed=1)]),
    "SmoothL1Loss": (lambda M: M.SmoothL1Loss(beta=0.5), [rnd(3, 4), rnd(3, 4, seed=1)]),
    "HuberLoss": (lambda M: M.HuberLoss(delta=0.5), [rnd(3, 4), rnd(3, 4, seed=1)]),
    "BCELoss": (lambda M: M.BCELoss(), [rnd(3, 4, low=0.1, high=0.9), rnd(3, 4, seed=1, low=0, high=1)]),
    "BCEWithLogitsLoss": (lambda M: M.BCEWithLogitsLoss(), [rnd(3, 4), rnd(3, 4, seed=1, low=0, high=1)]),
    "KLDivLoss": (lambda M: M.KLDivLoss(reduction="batchmean"), [np.log(P45), P45]),
    "CosineSimilarity": (lambda M: M.CosineSimilarity(dim=1), [rnd(3, 4), rnd(3, 4, seed=1)]),
}

# activation modules (their functional forms come from ops/more_composites.py)
ACTIVATIONS = {
    "SiLU": (), "Mish": (), "LeakyReLU": (0.2,), "ELU": (0.7,), "CELU": (1.3,), "SELU": (), "Softplus": (2.0, 5.0),
    "Softsign": (), "Hardtanh": (-0.5, 0.8), "Hardsigmoid": (), "Hardswish": (), "ReLU6": (),
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_vs_torch(name):
    make, arrays = MODULES[name]
    md, mt = _pair_module(lambda: make(nn), lambda: make(torch.nn))
    _compare_module(md, mt, *arrays, what=name)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_module_vs_torch(name):
    args = ACTIVATIONS[name]
    md, mt = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    # (torch's float64 backward of celu and hardsigmoid uses float32 constants: 1e-7 relative)
    _compare_module(md, mt, rnd(3, 5) * 3, what=name, tol=dict(rtol=1e-6, atol=1e-9))
    assert repr(md) == repr(mt)


def test_containers_name_parameters_as_torch():
    def make(M):
        class Net(M.Module):
            def __init__(self):
                super().__init__()
                self.blocks = M.ModuleList([M.Linear(3, 3), M.Linear(3, 3)])
                self.heads = M.ModuleDict({"a": M.Linear(3, 2), "b": M.Sequential(M.Tanh(), M.Linear(3, 2))})
                self.scales = M.ParameterList([M.Parameter(M.init.ones_(dg_or_torch(M).empty(3)))])
                self.extra = M.ParameterDict({"shift": M.Parameter(M.init.zeros_(dg_or_torch(M).empty(2)))})

            def forward(self, x):
                for b in self.blocks:
                    x = b(x).tanh() * self.scales[0]
                return self.heads["a"](x) + self.heads["b"](x) + self.extra["shift"]

        return Net()

    md, mt = _pair_module(lambda: make(nn), lambda: make(torch.nn))
    assert [n for n, _ in md.named_parameters()] == [n for n, _ in mt.named_parameters()]
    _compare_module(md, mt, rnd(4, 3), what="containers")


def dg_or_torch(M):
    """``dg`` or ``torch`` for the ``nn`` namespace ``M`` (factories live at the top level)."""
    return torch if M is torch.nn else dg


def test_module_float32_vs_torch():
    make = lambda M: M.Sequential(M.Conv2d(3, 4, 3), M.ReLU(), M.MaxPool2d(2), M.Flatten(), M.Linear(16, 5))  # noqa: E731
    md, mt = _pair_module(lambda: make(nn), lambda: make(torch.nn), dtype=torch.float32)
    _compare_module(md, mt, rnd(2, 3, 6, 6, dtype=np.float32), what="cnn f32", tol=dict(rtol=1e-4, atol=1e-5))


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
def test_multihead_attention_masks_vs_torch():
    rng = np.random.default_rng(0)
    attn_mask = rng.random((5, 4)) < 0.3
    attn_mask[:, 0] = False
    kpm = np.zeros((3, 4), bool)
    kpm[1, 3] = True
    float_mask = rnd(5, 4, seed=9)
    for kw in (dict(attn_mask=attn_mask), dict(key_padding_mask=kpm), dict(attn_mask=float_mask, key_padding_mask=kpm),
               dict(attn_mask=attn_mask, average_attn_weights=False), dict(need_weights=False, attn_mask=attn_mask)):
        md, mt = _pair_module(lambda: nn.MultiheadAttention(8, 2), lambda: torch.nn.MultiheadAttention(8, 2))
        kd = {k: (dg.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        kt = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        q, k = rnd(5, 3, 8), rnd(4, 3, 8, seed=1)
        od, wd = md(dg.tensor(q), dg.tensor(k), dg.tensor(k), **kd)
        ot, wt = mt(torch.tensor(q), torch.tensor(k), torch.tensor(k), **kt)
        close(od, ot, f"mha {sorted(kw)}")
        if wt is None:
            assert wd is None
        else:
            close(wd, wt, f"mha weights {sorted(kw)}")


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_with_masks_vs_torch(norm_first):
    make = lambda M: M.TransformerEncoder(  # noqa: E731
        M.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=norm_first), 2,
        enable_nested_tensor=False)
    md, mt = _pair_module(lambda: make(nn), lambda: make(torch.nn))
    causal = np.triu(np.ones((5, 5), bool), 1)
    kpm = np.zeros((3, 5), bool)
    kpm[0, 4] = True
    _compare_module(md, mt, rnd(3, 5, 8), what="encoder with masks",
                    extra_d=(dg.tensor(causal), dg.tensor(kpm)), extra_t=(torch.tensor(causal), torch.tensor(kpm)))


@pytest.mark.parametrize("cls,x", [("BatchNorm1d", rnd(6, 3)), ("BatchNorm1d", rnd(4, 3, 5)),
                                   ("BatchNorm2d", rnd(4, 3, 2, 2))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_module_train_then_eval_vs_torch(cls, x, momentum):
    md, mt = _pair_module(lambda: getattr(nn, cls)(3, momentum=momentum),
                          lambda: getattr(torch.nn, cls)(3, momentum=momentum))
    for step in range(3):
        xs = x * (step + 1) + step
        _compare_module(md, mt, xs, what=f"{cls} train step {step}")
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        got, want = getattr(md, name), getattr(mt, name)
        if name == "num_batches_tracked":
            assert int(got.item()) == int(want.item()) == 3
        else:
            close(got, want, name)
    md.eval()
    mt.eval()
    _compare_module(md, mt, x, what=f"{cls} eval")


def test_default_init_follows_torch():
    """Each layer's default initialisation has torch's distribution: same bounds, same
    spread (different random streams, so compared in distribution)."""
    dg.manual_seed(0)
    torch.manual_seed(0)
    cases = [
        (lambda M: M.Linear(400, 300), ["weight", "bias"]),
        (lambda M: M.Conv2d(16, 32, 3), ["weight", "bias"]),
        (lambda M: M.Conv1d(8, 64, 5), ["weight", "bias"]),
        (lambda M: M.Embedding(500, 64), ["weight"]),
        (lambda M: M.LSTM(64, 128), ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0"]),
        (lambda M: M.GRUCell(32, 64), ["weight_ih", "bias_hh"]),
        (lambda M: M.MultiheadAttention(64, 4), ["in_proj_weight", "in_proj_bias", "out_proj.weight",
                                                 "out_proj.bias"]),
        (lambda M: M.LayerNorm(10), ["weight", "bias"]),
        (lambda M: M.BatchNorm2d(10), ["weight", "bias", "running_mean", "running_var"]),
    ]
    for make, names in cases:
        sd_d, sd_t = make(nn).state_dict(), make(torch.nn).state_dict()
        for n in names:
            a, b = _np(sd_d[n]).astype(np.float64), _np(sd_t[n]).astype(np.float64)
            assert a.dtype == b.dtype and a.shape == b.shape, n
            if np.all(b == b.flat[0]):
                np.testing.assert_array_equal(a, b, err_msg=n)
                continue
            assert np.abs(a).max() <= np.abs(b).max() * 1.02 + 1e-7, n
            np.testing.assert_allclose(a.std(), b.std(), rtol=0.1, err_msg=n)
            assert abs(a.mean()) < 5 * b.std() / math.sqrt(b.size), n  # zero-mean, as torch's


def test_padding_idx_row_zero_and_frozen_like_torch():
    md, mt = nn.Embedding(5, 3, padding_idx=2), torch.nn.Embedding(5, 3, padding_idx=2)
    assert not np.any(_np(md.weight)[2]) and not np.any(_np(mt.weight)[2])


# ---- optimizers ---------------------------------------------------------------------------

OPTIMIZERS = {
    "SGD": ("SGD", dict(lr=0.1)),
    "SGD_momentum": ("SGD", dict(lr=0.05, momentum=0.9)),
    "SGD_dampening_wd": ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    "SGD_nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    "SGD_maximize": ("SGD", dict(lr=0.01, momentum=0.5, maximize=True)),
    "Adam": ("Adam", dict(lr=0.05)),
    "Adam_wd_amsgrad": ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    "Adam_maximize": ("Adam", dict(lr=0.01, maximize=True)),
    "AdamW": ("AdamW", dict(lr=0.05)),
    "Adam_decoupled": ("Adam", dict(lr=0.05, weight_decay=0.2, decoupled_weight_decay=True)),
    "AdamW_amsgrad": ("AdamW", dict(lr=0.02, weight_decay=0.3, amsgrad=True)),
    "RMSprop": ("RMSprop", dict(lr=0.01)),
    "RMSprop_centered_momentum_wd": ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True,
                                                     weight_decay=0.05)),
    "Adagrad": ("Adagrad", dict(lr=0.1)),
    "Adagrad_decay_wd_init": ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.02,
                                              initial_accumulator_value=0.3)),
}


def _problem(dtype=np.float64):
    w0, b0 = rnd(3, 4, seed=10, dtype=dtype), rnd(3, seed=11, dtype=dtype)
    x, y = rnd(8, 4, seed=12, dtype=dtype), rnd(8, 3, seed=13, dtype=dtype)
    return w0, b0, x, y


def _loss(lib, w, b, x, y):
    h = x @ w.T + b
    return ((h.tanh() - y) ** 2).sum() + (w ** 2).sum() * 0.01


def _trajectories(cls, kw, steps=20, dtype=np.float64, groups=False, scheduler=None):
    w0, b0, x, y = _problem(dtype)
    out = []
    for lib, mk, opt_mod in ((dg, dg.tensor, dg.optim), (torch, torch.tensor, torch.optim)):
        w, b = mk(w0.copy(), requires_grad=True), mk(b0.copy(), requires_grad=True)
        params = [{"params": [w]}, {"params": [b], "lr": kw.get("lr", 0.01) * 0.5}] if groups else [w, b]
        opt = getattr(opt_mod, cls)(params, **kw)
        sched = scheduler(opt_mod, opt) if scheduler else None
        xs, ys = mk(x), mk(y)
        hist = []
        for _ in range(steps):
            opt.zero_grad()
            loss = _loss(lib, w, b, xs, ys)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            hist.append((_np(w).copy(), _np(b).copy(), [g["lr"] for g in opt.param_groups]))
        out.append((hist, opt, (w, b)))
    return out


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_20_steps_vs_torch(name):
    cls, kw = OPTIMIZERS[name]
    (hd, opt_d, _), (ht, opt_t, _) = _trajectories(cls, kw)
    for i, ((wd, bd, _), (wt, bt, _)) in enumerate(zip(hd, ht)):
        np.testing.assert_allclose(wd, wt, rtol=1e-9, atol=1e-12, err_msg=f"{name} weight step {i}")
        np.testing.assert_allclose(bd, bt, rtol=1e-9, atol=1e-12, err_msg=f"{name} bias step {i}")
    # the state has torch's names and values
    sd, st = opt_d.state_dict(), opt_t.state_dict()
    assert sd["state"].keys() == st["state"].keys()
    for k in st["state"]:
        assert sd["state"][k].keys() == st["state"][k].keys()
        for n, v in st["state"][k].items():
            np.testing.assert_allclose(np.asarray(_np(sd["state"][k][n]), np.float64), _np(v), rtol=1e-9,
                                       err_msg=f"{name} state {n}")
    assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in st["param_groups"]]


@pytest.mark.parametrize("name", ["SGD_nesterov", "Adam", "AdamW_amsgrad", "RMSprop_centered_momentum_wd", "Adagrad"])
def test_optimizer_float32_and_param_groups_vs_torch(name):
    cls, kw = OPTIMIZERS[name]
    (hd, _, _), (ht, _, _) = _trajectories(cls, kw, dtype=np.float32, groups=True)
    for i, ((wd, bd, ld), (wt, bt, lt)) in enumerate(zip(hd, ht)):
        assert wd.dtype == np.float32
        np.testing.assert_allclose(wd, wt, rtol=1e-4, atol=1e-5, err_msg=f"{name} weight step {i}")
        np.testing.assert_allclose(bd, bt, rtol=1e-4, atol=1e-5, err_msg=f"{name} bias step {i}")
        assert ld == lt


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_state_dict_round_trip(name):
    """10 steps, state_dict through dg.save/dg.load into a fresh optimizer, 10 more steps:
    the same trajectory as 20 uninterrupted torch steps; torch's state dict loads too."""
    cls, kw = OPTIMIZERS[name]
    (_, _, _), (ht, _, _) = _trajectories(cls, kw)
    w0, b0, x, y = _problem()
    w, b = dg.tensor(w0.copy(), requires_grad=True), dg.tensor(b0.copy(), requires_grad=True)
    opt = getattr(dg.optim, cls)([w, b], **kw)
    for _ in range(10):
        opt.zero_grad()
        _loss(dg, w, b, dg.tensor(x), dg.tensor(y)).backward()
        opt.step()
    buf = io.BytesIO()
    dg.save(opt.state_dict(), buf)
    buf.seek(0)
    fresh = getattr(dg.optim, cls)([w, b], **{**kw, "lr": 123.0})  # options come from the state dict
    fresh.load_state_dict(dg.load(buf))
    assert fresh.param_groups[0]["lr"] == kw["lr"]
    for i in range(10, 20):
        fresh.zero_grad()
        _loss(dg, w, b, dg.tensor(x), dg.tensor(y)).backward()
        fresh.step()
        np.testing.assert_allclose(_np(w), ht[i][0], rtol=1e-9, atol=1e-12, err_msg=f"{name} step {i}")

    # torch's own state dict (tensor steps, same layout) loads into dualgraph's optimizer
    wt, bt = torch.tensor(w0.copy(), requires_grad=True), torch.tensor(b0.copy(), requires_grad=True)
    opt_t = getattr(torch.optim, cls)([wt, bt], **kw)
    for _ in range(10):
        opt_t.zero_grad()
        _loss(torch, wt, bt, torch.tensor(x), torch.tensor(y)).backward()
        opt_t.step()
    w2, b2 = dg.tensor(_np(wt).copy(), requires_grad=True), dg.tensor(_np(bt).copy(), requires_grad=True)
    opt2 = getattr(dg.optim, cls)([w2, b2], **kw)
    opt2.load_state_dict(opt_t.state_dict())
    for i in range(10, 20):
        opt2.zero_grad()
        _loss(dg, w2, b2, dg.tensor(x), dg.tensor(y)).backward()
        opt2.step()
    np.testing.assert_allclose(_np(w2), ht[19][0], rtol=1e-9, atol=1e-12, err_msg=f"{name} from torch state")


SCHEDULERS = {
    "StepLR": lambda O, opt: O.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),
    "CosineAnnealingLR": lambda O, opt: O.lr_scheduler.CosineAnnealingLR(opt, T_max=7, eta_min=0.001),
    "LambdaLR": lambda O, opt: O.lr_scheduler.LambdaLR(opt, lambda e: 0.9 ** e),
    "MultiStepLR": lambda O, opt: O.lr_scheduler.MultiStepLR(opt, milestones=[2, 5, 5, 11], gamma=0.3),
    "ExponentialLR": lambda O, opt: O.lr_scheduler.ExponentialLR(opt, gamma=0.9),
    "LinearLR": lambda O, opt: O.lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=0.9, total_iters=8),
}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_lr_scheduler_vs_torch(name):
    (hd, opt_d, _), (ht, opt_t, _) = _trajectories("SGD", dict(lr=0.1, momentum=0.9), groups=True,
                                                   scheduler=SCHEDULERS[name])
    for i, ((wd, _, ld), (wt, _, lt)) in enumerate(zip(hd, ht)):
        assert ld == pytest.approx(lt, rel=1e-13, abs=1e-15), f"{name} lr at step {i}"
        np.testing.assert_allclose(wd, wt, rtol=1e-9, atol=1e-12, err_msg=f"{name} step {i}")


@pytest.mark.parametrize("kw", [dict(), dict(mode="max", factor=0.5, patience=2, threshold=0.05, cooldown=1),
                                dict(patience=1, threshold_mode="abs", threshold=0.01, min_lr=[0.02, 0.001])])
def test_reduce_lr_on_plateau_vs_torch(kw):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.94, 0.96, 0.5, 0.6, 0.6, 0.6, 0.6, 0.7, 0.2, 0.2, 0.2, 0.2, 0.25, 0.3] * 2
    lrs = []
    for lib in (dg, torch):
        a, b = lib.zeros(2, requires_grad=True), lib.zeros(2, requires_grad=True)
        opt = lib.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.05}], lr=0.1)
        s = lib.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
        hist = []
        for m in metrics:
            s.step(m)
            hist.append((s.get_last_lr(), s.num_bad_epochs, s.cooldown_counter, s.best))
        lrs.append(hist)
    assert lrs[0] == lrs[1]
    assert lrs[0][-1][0] != lrs[0][0][0]  # the lr was reduced along the way


def test_lr_scheduler_state_dict_round_trip_vs_torch():
    w = dg.tensor(np.ones(2), requires_grad=True)
    wt = torch.tensor(np.ones(2), requires_grad=True)
    opt, opt_t = dg.optim.SGD([w], lr=0.1), torch.optim.SGD([wt], lr=0.1)
    s = dg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    s_t = torch.optim.lr_scheduler.CosineAnnealingLR(opt_t, T_max=10)
    for _ in range(4):
        opt.step()
        s.step()
        opt_t.step()
        s_t.step()
    state = s.state_dict()
    assert set(state) >= {"T_max", "eta_min", "base_lrs", "last_epoch", "_step_count"}
    opt2 = dg.optim.SGD([w], lr=0.1)
    opt2.load_state_dict(opt.state_dict())
    s2 = dg.optim.lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    s2.load_state_dict(state)
    for _ in range(5):
        opt2.step()
        s2.step()
        opt_t.step()
        s_t.step()
        assert s2.get_last_lr() == pytest.approx(s_t.get_last_lr(), rel=1e-13)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_vs_torch(norm_type, max_norm):
    grads = [rnd(3, 4, seed=1), rnd(5, seed=2), rnd(2, 2, seed=3)]
    pd = [dg.tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    pt = [torch.tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    for p, q, g in zip(pd, pt, grads):
        p.grad = dg.tensor(g.copy())
        q.grad = torch.tensor(g.copy())
    nd = nn.utils.clip_grad_norm_(pd, max_norm, norm_type)
    nt = torch.nn.utils.clip_grad_norm_(pt, max_norm, norm_type)
    close(nd, nt, "total norm")
    for p, q in zip(pd, pt):
        close(p.grad, q.grad, "clipped grad")


def test_named_parameters_to_an_optimizer_as_torch():
    md, mt = _pair_module(lambda: nn.Linear(3, 2), lambda: torch.nn.Linear(3, 2))
    od, ot = dg.optim.AdamW(md.named_parameters(), lr=0.1), torch.optim.AdamW(mt.named_parameters(), lr=0.1)
    for m, o, lib in ((md, od, dg), (mt, ot, torch)):
        m(lib.tensor(rnd(4, 3))).sum().backward()
        o.step()
    close(md.weight, mt.weight, "weight")
    assert od.state_dict()["param_groups"][0]["param_names"] == ot.state_dict()["param_groups"][0]["param_names"]


def test_clip_grad_value_and_vectors_vs_torch():
    g = rnd(3, 4) * 2
    p, q = dg.tensor(np.zeros((3, 4)), requires_grad=True), torch.tensor(np.zeros((3, 4)), requires_grad=True)
    p.grad, q.grad = dg.tensor(g.copy()), torch.tensor(g.copy())
    nn.utils.clip_grad_value_([p], 0.7)
    torch.nn.utils.clip_grad_value_([q], 0.7)
    close(p.grad, q.grad, "clip value")
    a, b = [dg.tensor(rnd(2, 3)), dg.tensor(rnd(4, seed=1))], [torch.tensor(rnd(2, 3)), torch.tensor(rnd(4, seed=1))]
    close(nn.utils.parameters_to_vector(a), torch.nn.utils.parameters_to_vector(b), "to vector")
