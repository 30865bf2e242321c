"""``dg.nn.functional``: layers, losses and attention as composites of dualgraph ops.

Every function here is written with primitives (``ops.primitives``), composites
(``ops.composites``) and Tensor methods, so the eager engine, the tracer and the
interpreter all get it, with gradients, for free.  Names, defaults and results follow
``torch.nn.functional``.

    import dualgraph.nn.functional as F
    loss = F.cross_entropy(logits, target, label_smoothing=0.1)
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..eager import factories as _factories
from ..eager.grad_mode import is_grad_enabled, no_grad
from ..eager.tensor import Tensor
from ..ops import composites as C
from ..ops import context as _context
from ..ops import primitives as P
from ..ops import more_composites as _MC
from ..ops.composites import gelu, mse_loss
from ..ops.more_composites import logsigmoid, one_hot, pad, softplus, softsign
from ..ops.nn_ops import adaptive_avg_pool2d, avg_pool2d, conv1d, conv2d, conv_transpose2d, max_pool2d
from ..ops.primitives import sigmoid, tanh
from ..ops.registry import user_source

__all__ = [
    "linear", "dropout", "layer_norm", "batch_norm", "group_norm", "embedding", "nll_loss",
    "cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits", "l1_loss",
    "mse_loss", "smooth_l1_loss", "huber_loss", "kl_div", "cosine_similarity", "normalize",
    "scaled_dot_product_attention", "conv1d", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
    "adaptive_avg_pool2d", "bilinear", "rms_norm", "instance_norm", "logsigmoid", "pairwise_distance",
    "multi_head_attention_forward", "celu", "elu", "hardsigmoid", "hardswish", "hardtanh", "leaky_relu", "mish",
    "one_hot", "pad", "relu6", "selu", "silu", "softplus", "softsign", "softmin", "glu", "gelu", "log_softmax", "relu", "softmax", "sigmoid", "tanh",
]


# ---- helpers ------------------------------------------------------------------------------


def _traced(x) -> bool:
    """True for a value the tracer is recording (its payload is not a numpy array)."""
    return isinstance(x, Tensor) and x._value.__class__ is not np.ndarray


def _concrete(x):
    """The numpy payload of an eager tensor (or array), None for a traced value."""
    if isinstance(x, Tensor):
        return None if _traced(x) else x._value
    return np.asarray(x)


def _reduce(x, reduction, name):
    if reduction == "mean":
        return C.mean(x)
    if reduction == "sum":
        return C.sum(x)
    if reduction == "none":
        return x
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _legacy_reduction(size_average, reduce, reduction):
    # torch's deprecated size_average/reduce arguments, mapped as torch maps them
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _same_shape(name, input, target):  # noqa: A002
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(
            f"{name}: Using a target size ({tuple(target.shape)}) that is different to the input "
            f"size ({tuple(input.shape)}) is not supported (broadcasting here is nearly always "
            f"a bug)\n  at {user_source()}"
        )


def _float(name, x):
    if not np.issubdtype(x.dtype, np.floating):
        raise RuntimeError(
            f"{name}: expected a floating point tensor, got {np.dtype(x.dtype).name}\n  at {user_source()}"
        )


def _channel_shape(x, c_dim=1):
    """The shape that broadcasts a per-channel (C,) vector against ``x`` (N, C, ...)."""
    return tuple(x.shape[c_dim] if i == c_dim else 1 for i in range(x.ndim))


def _scalar_const(value, like):
    return np.asarray(value, dtype=like.dtype)


# ---- activations ----------------------------------------------------------------------------


def _with_inplace(fn, name):
    """``fn`` with torch's ``inplace`` flag: the result is written back into the input when
    that cannot corrupt a gradient (the input needs none, or grad mode is off); otherwise
    (as for an input in the graph) the result is returned out of place, as ``x = f(x)``
    code expects."""

    def f(input, *args, inplace=False, **kwargs):  # noqa: A002
        out = fn(input, *args, **kwargs)
        if inplace and not _traced(input) and (not input.requires_grad or not is_grad_enabled()):
            with no_grad():
                input.copy_(out)
            return input
        return out

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"``torch.nn.functional.{name}`` (see ``ops`` for the math; ``inplace`` as torch where safe)."
    return f


relu = _with_inplace(C.relu, "relu")
relu6 = _with_inplace(_MC.relu6, "relu6")
leaky_relu = _with_inplace(_MC.leaky_relu, "leaky_relu")
elu = _with_inplace(_MC.elu, "elu")
celu = _with_inplace(_MC.celu, "celu")
selu = _with_inplace(_MC.selu, "selu")
silu = _with_inplace(_MC.silu, "silu")
mish = _with_inplace(_MC.mish, "mish")
hardtanh = _with_inplace(_MC.hardtanh, "hardtanh")
hardsigmoid = _with_inplace(_MC.hardsigmoid, "hardsigmoid")
hardswish = _with_inplace(_MC.hardswish, "hardswish")


# ---- activations not among the ops ----------------------------------------------------------


def _softmax_dim(input, dim, name):  # noqa: A002
    if dim is not None:
        return dim
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", UserWarning, stacklevel=3)
    return 0 if input.ndim in (0, 1, 3) else 1  # torch's legacy choice


def _cast(input, dtype):  # noqa: A002
    return input if dtype is None or np.dtype(dtype) == input.dtype else P.convert(input, dtype=np.dtype(dtype))


def softmax(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002
    """``exp(x) / sum(exp(x), dim)`` (``dtype`` casts the input first, as torch)."""
    return C.softmax(_cast(input, dtype), _softmax_dim(input, dim, "softmax"))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002
    return C.log_softmax(_cast(input, dtype), _softmax_dim(input, dim, "log_softmax"))


def softmin(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002
    """``softmax(-x, dim)``."""
    return C.softmax(P.neg(_cast(input, dtype)), _softmax_dim(input, dim, "softmin"))


def glu(input, dim=-1):  # noqa: A002
    """Gated linear unit: ``a * sigmoid(b)`` with ``a, b`` the two halves of ``dim``."""
    d = dim % input.ndim
    n = input.shape[d]
    if n % 2:
        raise RuntimeError(f"glu: Halving dimension must be even, but dimension {d} is size {n}")
    lead = (slice(None),) * d
    return P.mul(input[lead + (slice(0, n // 2),)], P.sigmoid(input[lead + (slice(n // 2, n),)]))


# ---- layers -------------------------------------------------------------------------------


def linear(input, weight, bias=None):  # noqa: A002
    """``input @ weight.T + bias``; ``weight`` is (out_features, in_features)."""
    if input.ndim == 0 or input.shape[-1] != weight.shape[-1]:
        raise ValueError(
            f"linear: input shape {tuple(input.shape)} does not match weight shape {tuple(weight.shape)} "
            f"(in_features {weight.shape[-1]})\n  at {user_source()}"
        )
    if weight.ndim == 2:
        out = P.matmul(input, P.transpose(weight, perm=(1, 0)))
    elif weight.ndim == 1:
        out = P.matmul(input, weight)
    else:
        raise ValueError(f"linear: weight must be 1-D or 2-D, got shape {tuple(weight.shape)}")
    return out if bias is None else P.add(out, bias)


def bilinear(input1, input2, weight, bias=None):
    """``y_k = x1 @ W_k @ x2 + b_k`` with ``weight`` (out, in1, in2)."""
    # (N, in1) x (out, in1, in2) -> (out, N, in2), then contract with x2 (N, in2)
    t = P.matmul(C.unsqueeze(input1, -3), weight)
    out = C.sum(P.mul(t, C.unsqueeze(input2, -3)), -1)  # (out, N)
    out = C.transpose(out, -1, -2)
    return out if bias is None else P.add(out, bias)


def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``
    (when ``training``); the mask is drawn from dualgraph's generator (``dg.manual_seed``)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if _traced(input):
        raise NotImplementedError(
            "dropout: training-mode dropout draws a random mask, which cannot be traced yet "
            f"(it would be frozen into the graph); call model.eval() or pass training=False\n"
            f"  at {user_source()}"
        )
    if p == 1.0:
        out = P.mul(input, _scalar_const(0.0, input))
    else:
        keep = _factories.rand(*input.shape, dtype=np.float64)._value >= p
        out = P.mul(input, (keep / (1.0 - p)).astype(input.dtype))
    if inplace and (not input.requires_grad or not is_grad_enabled()):  # as the activations' inplace
        with no_grad():
            input.copy_(out)
        return input
    return out


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Normalise over the last ``len(normalized_shape)`` dims (biased variance)."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(int(s) for s in normalized_shape)
    k = len(normalized_shape)
    if k == 0 or tuple(input.shape[input.ndim - k:]) != normalized_shape:
        raise RuntimeError(
            f"layer_norm: Given normalized_shape={list(normalized_shape)}, expected input with "
            f"shape [*, {', '.join(map(str, normalized_shape))}], but got input of size "
            f"{list(input.shape)}\n  at {user_source()}"
        )
    _float("layer_norm", input)
    axes = tuple(range(input.ndim - k, input.ndim))
    mu = C.mean(input, axes, keepdim=True)
    d = P.sub(input, mu)
    var = C.mean(P.mul(d, d), axes, keepdim=True)
    y = P.mul(d, P.div(1.0, P.sqrt(P.add(var, eps))))
    if weight is not None:
        y = P.mul(y, weight)
    if bias is not None:
        y = P.add(y, bias)
    return y


def rms_norm(input, normalized_shape, weight=None, eps=None):  # noqa: A002
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dims (torch 2.4's F.rms_norm)."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    k = len(normalized_shape)
    if tuple(input.shape[input.ndim - k:]) != tuple(normalized_shape):
        raise RuntimeError(
            f"rms_norm: normalized_shape {list(normalized_shape)} does not match the trailing dims "
            f"of input shape {list(input.shape)}\n  at {user_source()}"
        )
    if eps is None:
        eps = float(np.finfo(input.dtype).eps)
    axes = tuple(range(input.ndim - k, input.ndim))
    ms = C.mean(P.mul(input, input), axes, keepdim=True)
    y = P.mul(input, P.div(1.0, P.sqrt(P.add(ms, eps))))
    return y if weight is None else P.mul(y, weight)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,  # noqa: A002
               momentum=0.1, eps=1e-5):
    """Batch normalisation over every dim but the channels (dim 1).

    ``training=True`` normalises with the batch statistics (biased variance) and, when
    running buffers are given, updates them in place: ``running = (1 - momentum) * running
    + momentum * batch`` with the unbiased batch variance, as torch.  ``training=False``
    normalises with the running statistics."""
    _float("batch_norm", input)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input of at least 2 dims (N, C, ...), got {tuple(input.shape)}")
    c = input.shape[1]
    bshape = _channel_shape(input)
    axes = tuple(i for i in range(input.ndim) if i != 1)
    if training:
        n = 1
        for a in axes:
            n *= input.shape[a]
        if n <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size "
                f"{list(input.shape)}\n  at {user_source()}"
            )
        mean = C.mean(input, axes, keepdim=True)
        d = P.sub(input, mean)
        var = C.mean(P.mul(d, d), axes, keepdim=True)
        if running_mean is not None or running_var is not None:
            if _traced(input) and getattr(_context.get().trace, "live", None) is None:
                # (under dg.compile the writes are effects of the compiled function)
                raise NotImplementedError(
                    "batch_norm: updating running statistics in place cannot be traced yet; "
                    f"trace the model in eval() mode\n  at {user_source()}"
                )
            with no_grad():
                if running_mean is not None:
                    running_mean *= 1.0 - momentum
                    running_mean += P.mul(C.reshape(mean.detach(), (c,)), momentum)
                if running_var is not None:
                    running_var *= 1.0 - momentum
                    running_var += P.mul(C.reshape(var.detach(), (c,)), momentum * n / (n - 1))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        mean = C.reshape(running_mean, bshape)
        var = C.reshape(running_var, bshape)
        d = P.sub(input, mean)
    y = P.mul(d, P.div(1.0, P.sqrt(P.add(var, eps))))
    if weight is not None:
        y = P.mul(y, C.reshape(weight, bshape))
    if bias is not None:
        y = P.add(y, C.reshape(bias, bshape))
    return y


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,  # noqa: A002
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Normalise each (sample, channel) over its spatial dims."""
    if not use_input_stats or running_mean is not None or running_var is not None:
        raise NotImplementedError("instance_norm: running statistics are not supported")
    _float("instance_norm", input)
    axes = tuple(range(2, input.ndim))
    mu = C.mean(input, axes, keepdim=True)
    d = P.sub(input, mu)
    var = C.mean(P.mul(d, d), axes, keepdim=True)
    y = P.mul(d, P.div(1.0, P.sqrt(P.add(var, eps))))
    bshape = _channel_shape(input)
    if weight is not None:
        y = P.mul(y, C.reshape(weight, bshape))
    if bias is not None:
        y = P.add(y, C.reshape(bias, bshape))
    return y


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Normalise the channels of each sample in ``num_groups`` groups (biased variance)."""
    _float("group_norm", input)
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise RuntimeError(
            f"group_norm: expected the number of channels of input {tuple(input.shape)} to be "
            f"divisible by num_groups={num_groups}\n  at {user_source()}"
        )
    n, c = input.shape[0], input.shape[1]
    g = C.reshape(input, (n, num_groups, -1))
    mu = C.mean(g, 2, keepdim=True)
    d = P.sub(g, mu)
    var = C.mean(P.mul(d, d), 2, keepdim=True)
    y = C.reshape(P.mul(d, P.div(1.0, P.sqrt(P.add(var, eps)))), tuple(input.shape))
    bshape = _channel_shape(input)
    if weight is not None:
        y = P.mul(y, C.reshape(weight, bshape))
    if bias is not None:
        y = P.add(y, C.reshape(bias, bshape))
    return y


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,  # noqa: A002
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` picked by the integer tensor ``input``; the row ``padding_idx``
    gets no gradient.  ``max_norm`` renormalises the looked-up rows of ``weight`` in place."""
    if not np.issubdtype(input.dtype, np.integer):
        raise RuntimeError(
            f"embedding: Expected tensor for argument 'indices' to have an integer dtype, got "
            f"{np.dtype(input.dtype).name}\n  at {user_source()}"
        )
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse are not supported")
    num = weight.shape[0]
    idx = _concrete(input)
    if idx is not None and idx.size and (idx.min() < 0 or idx.max() >= num):  # torch refuses negatives too
        bad = idx[(idx < 0) | (idx >= num)].flat[0]
        raise IndexError(f"embedding: index {bad} is out of range for {num} embeddings\n  at {user_source()}")
    if padding_idx is not None:
        padding_idx = int(padding_idx)
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx {padding_idx} must be within num_embeddings {num}")
        padding_idx %= num
    if max_norm is not None:
        if idx is None:
            raise NotImplementedError("embedding: max_norm renormalises weight in place and cannot be traced")
        with no_grad():
            w = weight._value
            rows = np.unique(idx)
            norms = np.linalg.norm(w[rows].astype(np.float64), ord=norm_type, axis=1)
            scale = np.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
            w[rows] = (w[rows] * scale[:, None]).astype(w.dtype)
    out = weight[input]
    if padding_idx is not None:
        pad = C.unsqueeze(P.eq(input, padding_idx), -1)
        out = P.where(pad, weight.detach()[input], out)
    return out


# ---- losses -------------------------------------------------------------------------------


def _classes_last(input, target):
    """(N, C, d1, ...) -> (N*d1*..., C) and target (N, d1, ...) -> (N*d1*...,); (C,) with a
    0-d target -> (1, C), (1,).  Returns the reshaped pair and the target's shape."""
    if input.ndim == 1:
        return C.reshape(input, (1, -1)), C.reshape(target, (1,)), tuple(target.shape)
    if input.ndim == 2:
        return input, target, tuple(target.shape)
    perm = (0,) + tuple(range(2, input.ndim)) + (1,)
    x = C.reshape(P.transpose(input, perm=perm), (-1, input.shape[1]))
    return x, C.reshape(target, (-1,)), tuple(target.shape)


def _check_class_target(name, input, target, ignore_index):
    if np.issubdtype(target.dtype, np.floating) or target.dtype == np.bool_:
        raise RuntimeError(f"{name}: expected an integer class-index target, got {target.dtype}")
    want = (input.shape[0],) + tuple(input.shape[2:]) if input.ndim >= 2 else ()
    if tuple(target.shape) != want:
        raise ValueError(
            f"{name}: Expected target of shape {want} for input of shape {tuple(input.shape)}, "
            f"got {tuple(target.shape)}\n  at {user_source()}"
        )
    n_classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    t = _concrete(target)
    if t is not None and t.size:
        bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
        if bad.any():
            raise IndexError(
                f"{name}: Target {t[bad].flat[0]} is out of bounds (classes 0..{n_classes - 1}, "
                f"ignore_index={ignore_index})\n  at {user_source()}"
            )
    return n_classes


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,  # noqa: A002
             reduction="mean"):
    """Negative log likelihood of log-probabilities ``input`` (N, C, ...) at the integer
    ``target`` (N, ...); ``weight`` per class, ``ignore_index`` targets contribute nothing.
    ``mean`` divides by the summed weights of the counted targets, as torch."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_class_target("nll_loss", input, target, ignore_index)
    x, t, tshape = _classes_last(input, target)
    valid = P.ne(t, ignore_index)
    safe = P.where(valid, t, 0)
    rows = np.arange(x.shape[0], dtype=np.int64)
    picked = P.getitem(x, rows, safe, spec=(("a", 0), ("a", 1)))
    w = P.convert(valid, dtype=np.dtype(x.dtype))
    if weight is not None:
        w = P.mul(w, P.getitem(weight, safe, spec=(("a", 0),)))
    loss = P.neg(P.mul(picked, w))
    if reduction == "none":
        return C.reshape(loss, tshape)
    if reduction == "sum":
        return C.sum(loss)
    if reduction == "mean":
        return P.div(C.sum(loss), C.sum(w))
    raise ValueError(f"nll_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,  # noqa: A002
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """``nll_loss(log_softmax(input, 1), target)`` as torch: class-index targets (with
    ``weight``, ``ignore_index``) or class-probability targets (same shape as ``input``),
    both with ``label_smoothing``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _float("cross_entropy", input)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    cdim = 1 if input.ndim >= 2 else 0
    n_classes = input.shape[cdim]
    logp = C.log_softmax(input, cdim)
    wshape = _channel_shape(input, cdim)
    if np.issubdtype(target.dtype, np.floating):  # class probabilities
        _same_shape("cross_entropy", input, target)
        if label_smoothing > 0:
            target = P.add(P.mul(target, 1.0 - label_smoothing), label_smoothing / n_classes)
        prod = P.mul(logp, target)
        if weight is not None:
            prod = P.mul(prod, C.reshape(weight, wshape))
        per = P.neg(C.sum(prod, cdim))
        if reduction == "none":
            return per
        total = C.sum(per)
        if reduction == "sum":
            return total
        n = int(np.prod(input.shape)) // n_classes if n_classes else 0
        return P.div(total, n) if n else P.mul(total, math.nan)
    nll = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0.0:
        return nll
    if weight is not None:
        smooth = P.neg(C.sum(P.mul(logp, C.reshape(weight, wshape)), cdim))
    else:
        smooth = P.neg(C.sum(logp, cdim))
    valid = P.ne(target, ignore_index)
    smooth = P.where(valid, smooth, 0.0)
    if reduction == "sum":
        ret = C.sum(smooth)
    elif reduction == "none":
        ret = smooth
    elif weight is not None:
        safe = P.where(valid, target, 0)
        wsum = C.sum(P.mul(P.getitem(weight, safe, spec=(("a", 0),)), P.convert(valid, dtype=np.dtype(input.dtype))))
        ret = P.div(C.sum(smooth), wsum)
    else:
        ret = P.div(C.sum(smooth), C.sum(P.convert(valid, dtype=np.dtype(input.dtype))))
    return P.add(P.mul(nll, 1.0 - label_smoothing), P.mul(ret, label_smoothing / n_classes))


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,  # noqa: A002
                         reduction="mean"):
    """``-w (y log x + (1 - y) log(1 - x))`` with the logs clamped at -100, as torch."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _same_shape("binary_cross_entropy", input, target)
    x = _concrete(input)
    if x is not None and x.size and ((x < 0).any() or (x > 1).any()):
        raise RuntimeError(
            f"binary_cross_entropy: all elements of input should be between 0 and 1\n  at {user_source()}"
        )
    log_x = P.maximum(P.log(input), -100.0)
    log_1mx = P.maximum(P.log(P.sub(1.0, input)), -100.0)
    loss = P.neg(P.add(P.mul(target, log_x), P.mul(P.sub(1.0, target), log_1mx)))
    if weight is not None:
        loss = P.mul(loss, weight)
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,  # noqa: A002
                                     reduce=None, reduction="mean", pos_weight=None):
    """``binary_cross_entropy(sigmoid(x), y)`` computed stably from the logits ``x``;
    ``pos_weight`` weighs the positive term (broadcast over the class dim, the last)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _same_shape("binary_cross_entropy_with_logits", input, target)
    ls = logsigmoid(input)
    if pos_weight is not None:
        log_weight = P.add(P.mul(P.sub(pos_weight, 1.0), target), 1.0)
        loss = P.sub(P.mul(P.sub(1.0, target), input), P.mul(log_weight, ls))
    else:
        loss = P.sub(P.mul(P.sub(1.0, target), input), ls)
    if weight is not None:
        loss = P.mul(loss, weight)
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):  # noqa: A002
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _same_shape("l1_loss", input, target)
    return _reduce(P.abs(P.sub(input, target)), reduction, "l1_loss")


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):  # noqa: A002
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _same_shape("smooth_l1_loss", input, target)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    d = P.sub(input, target)
    a = P.abs(d)
    if beta == 0.0:
        return _reduce(a, reduction, "smooth_l1_loss")
    loss = P.where(P.lt(a, beta), P.div(P.mul(P.mul(d, d), 0.5), beta), P.sub(a, 0.5 * beta))
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):  # noqa: A002
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``."""
    _same_shape("huber_loss", input, target)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    d = P.sub(input, target)
    a = P.abs(d)
    loss = P.where(P.lt(a, delta), P.mul(P.mul(d, d), 0.5), P.mul(P.sub(a, 0.5 * delta), delta))
    if weight is not None:
        loss = P.mul(loss, weight)
    return _reduce(loss, reduction, "huber_loss")


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):  # noqa: A002
    """Pointwise ``target * (log(target) - input)`` (``input`` holds log-probabilities;
    ``0 log 0 = 0``); ``reduction='batchmean'`` divides the sum by the batch size."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if log_target:
        loss = P.mul(P.exp(target), P.sub(target, input))
    else:
        pos = P.gt(target, 0)
        safe = P.where(pos, target, 1.0)  # keeps log (and its gradient) finite where target <= 0
        zero_or_nan = P.where(P.eq(target, 0), P.mul(target, 0.0), math.nan)  # (keeps target's dtype)
        xlogx = P.where(pos, P.mul(target, P.log(safe)), zero_or_nan)
        loss = P.sub(xlogx, P.mul(target, input))
    if reduction == "batchmean":
        total = C.sum(loss)
        return P.div(total, input.shape[0]) if input.ndim else total
    return _reduce(loss, reduction, "kl_div")


def _norm2(x, dim, keepdim):
    return P.sqrt(C.sum(P.mul(x, x), dim, keepdim=keepdim))


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """``sum(x1 * x2, dim) / (max(||x1||, eps) * max(||x2||, eps))`` (x1, x2 broadcast)."""
    shape = np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    if tuple(x1.shape) != shape:
        x1 = P.broadcast_to(x1, shape=shape)
    if tuple(x2.shape) != shape:
        x2 = P.broadcast_to(x2, shape=shape)
    n1 = P.maximum(_norm2(x1, dim, True), eps)
    n2 = P.maximum(_norm2(x2, dim, True), eps)
    return C.sum(P.mul(P.div(x1, n1), P.div(x2, n2)), dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """``||x1 - x2 + eps||_p`` over the last dim."""
    d = P.add(P.sub(x1, x2), eps)
    if p == 2.0:
        return _norm2(d, -1, keepdim)
    if p == 1.0:
        return C.sum(P.abs(d), -1, keepdim=keepdim)
    return P.pow(C.sum(P.pow(P.abs(d), float(p)), -1, keepdim=keepdim), 1.0 / p)


def normalize(input, p=2.0, dim=1, eps=1e-12):  # noqa: A002
    """``x / max(||x||_p, eps)`` along ``dim``."""
    if p == 2.0:
        n = _norm2(input, dim, True)
    elif p == 1.0:
        n = C.sum(P.abs(input), dim, keepdim=True)
    else:
        n = P.pow(C.sum(P.pow(P.abs(input), float(p)), dim, keepdim=True), 1.0 / p)
    return P.div(input, P.maximum(n, eps))


# ---- attention ----------------------------------------------------------------------------


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False):
    """``softmax(q k^T * scale + mask) v`` over the last two dims, as torch's math path.

    A bool ``attn_mask`` marks the positions that may be attended (True = keep); a float
    mask is added to the scores; ``is_causal`` keeps position ``j <= i`` (top-left aligned)."""
    if enable_gqa:
        raise NotImplementedError("scaled_dot_product_attention: enable_gqa is not supported")
    if is_causal and attn_mask is not None:
        raise RuntimeError("scaled_dot_product_attention: _scaled_dot_product_attention: Explicit "
                           "attn_mask should not be set when is_causal=True")
    length, source, e = query.shape[-2], key.shape[-2], query.shape[-1]
    scale = 1.0 / math.sqrt(e) if scale is None else float(scale)
    scores = P.mul(P.matmul(query, C.transpose(key, -2, -1)), scale)
    if is_causal:
        keep = np.tril(np.ones((length, source), dtype=np.bool_))
        scores = P.where(keep, scores, -math.inf)
    elif attn_mask is not None:
        if attn_mask.dtype == np.bool_:
            scores = P.where(attn_mask, scores, -math.inf)
        else:
            scores = P.add(scores, attn_mask)
    attn = C.softmax(scores, -1)
    if dropout_p > 0.0:
        attn = dropout(attn, dropout_p, training=True)
    return P.matmul(attn, value)


def _in_projection_packed(q, k, v, w, b):
    e = q.shape[-1]
    ws = (w[0:e], w[e:2 * e], w[2 * e:])
    bs = (None, None, None) if b is None else (b[0:e], b[e:2 * e], b[2 * e:])
    return linear(q, ws[0], bs[0]), linear(k, ws[1], bs[1]), linear(v, ws[2], bs[2])


def multi_head_attention_forward(query, key, value, num_heads, in_proj_weight, in_proj_bias,
                                 out_proj_weight, out_proj_bias, dropout_p=0.0, training=True,
                                 key_padding_mask=None, need_weights=True, attn_mask=None,
                                 average_attn_weights=True, is_causal=False):
    """torch's ``F.multi_head_attention_forward`` for sequence-first inputs (L, N, E) (or
    unbatched (L, E)).  Masks follow ``nn.MultiheadAttention``: a bool mask marks the
    positions NOT allowed to attend (True = masked), a float mask is added."""
    unbatched = query.ndim == 2
    if unbatched:
        query, key, value = (C.unsqueeze(t, 1) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = C.unsqueeze(key_padding_mask, 0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    head_dim = embed_dim // num_heads
    q, k, v = _in_projection_packed(query, key, value, in_proj_weight, in_proj_bias)

    def heads(t, n):  # (n, N, E) -> (N, H, n, Dh)
        return P.transpose(C.reshape(t, (n, bsz, num_heads, head_dim)), perm=(1, 2, 0, 3))

    q, k, v = heads(q, tgt_len), heads(k, src_len), heads(v, src_len)
    scores = P.mul(P.matmul(q, C.transpose(k, -2, -1)), 1.0 / math.sqrt(head_dim))
    if attn_mask is None and is_causal:
        attn_mask = np.triu(np.ones((tgt_len, src_len), dtype=np.bool_), 1)
    if attn_mask is not None:
        if attn_mask.ndim == 3:  # (N * H, L, S)
            attn_mask = C.reshape(attn_mask, (bsz, num_heads, tgt_len, src_len))
        if attn_mask.dtype == np.bool_:
            scores = P.where(attn_mask, -math.inf, scores)
        else:
            scores = P.add(scores, attn_mask)
    if key_padding_mask is not None:
        kpm = C.reshape(key_padding_mask, (bsz, 1, 1, src_len))
        if kpm.dtype == np.bool_:
            scores = P.where(kpm, -math.inf, scores)
        else:
            scores = P.add(scores, kpm)
    attn = C.softmax(scores, -1)
    if dropout_p > 0.0 and training:
        attn = dropout(attn, dropout_p, training=True)
    out = P.matmul(attn, v)  # (N, H, L, Dh)
    out = C.reshape(P.transpose(out, perm=(2, 0, 1, 3)), (tgt_len, bsz, embed_dim))
    out = linear(out, out_proj_weight, out_proj_bias)
    weights = None
    if need_weights:
        weights = C.mean(attn, 1) if average_attn_weights else attn
        if unbatched:
            weights = C.squeeze(weights, 0)
    if unbatched:
        out = C.squeeze(out, 1)
    return out, weights
