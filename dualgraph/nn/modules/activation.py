"""Activation modules (each calls the ``nn.functional`` function of the same name) and
MultiheadAttention."""
from __future__ import annotations


import numpy as np

from ...eager import factories as _f
from ...ops import composites as C
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from .linear import Linear


class _Elementwise(Module):
    """An activation with keyword parameters ``_args`` forwarded to ``F.<_fn>``."""

    _fn = ""
    _args: tuple = ()

    def __init__(self, *args, **kwargs):
        super().__init__()
        names = self._args
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} arguments")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise TypeError(f"{type(self).__name__} got an unexpected keyword argument '{k}'")
            values[k] = v
        for k, default in zip(names, self._defaults):
            setattr(self, k, values.get(k, default))

    _defaults: tuple = ()

    def forward(self, input):  # noqa: A002
        kw = {k: getattr(self, k) for k in self._args}
        return getattr(F, self._fn)(input, **kw)

    def extra_repr(self):
        parts = [f"{k}={getattr(self, k)!r}" for k in self._args if k != "inplace"]
        if getattr(self, "inplace", False):
            parts.append("inplace=True")
        return ", ".join(parts)


def _act(name, fn, args=(), defaults=(), doc=""):
    cls = type(name, (_Elementwise,), {"_fn": fn, "_args": args, "_defaults": defaults,
                                       "__doc__": doc or f"Applies ``F.{fn}`` elementwise."})
    cls.__module__ = __name__
    return cls


ReLU = _act("ReLU", "relu", ("inplace",), (False,))
ReLU6 = _act("ReLU6", "relu6", ("inplace",), (False,))
Sigmoid = _act("Sigmoid", "sigmoid")
Tanh = _act("Tanh", "tanh")
GELU = _act("GELU", "gelu", ("approximate",), ("none",))
SiLU = _act("SiLU", "silu", ("inplace",), (False,))
Mish = _act("Mish", "mish", ("inplace",), (False,))
LeakyReLU = _act("LeakyReLU", "leaky_relu", ("negative_slope", "inplace"), (0.01, False))
ELU = _act("ELU", "elu", ("alpha", "inplace"), (1.0, False))
CELU = _act("CELU", "celu", ("alpha", "inplace"), (1.0, False))
SELU = _act("SELU", "selu", ("inplace",), (False,))
Softplus = _act("Softplus", "softplus", ("beta", "threshold"), (1.0, 20.0))
Softsign = _act("Softsign", "softsign")
Hardtanh = _act("Hardtanh", "hardtanh", ("min_val", "max_val", "inplace"), (-1.0, 1.0, False))
Hardsigmoid = _act("Hardsigmoid", "hardsigmoid", ("inplace",), (False,))
Hardswish = _act("Hardswish", "hardswish", ("inplace",), (False,))
LogSigmoid = _act("LogSigmoid", "logsigmoid")


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):  # noqa: A002
        return C.softmax(input, -1 if self.dim is None else self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, input):  # noqa: A002
        return C.log_softmax(input, -1 if self.dim is None else self.dim)


class MultiheadAttention(Module):
    """torch's ``nn.MultiheadAttention`` with packed ``in_proj_weight`` (3E, E), xavier
    initialised, zero biases, and ``out_proj``; inputs (L, N, E), or (N, L, E) with
    ``batch_first``, or unbatched (L, E).  Returns ``(output, weights)``; ``weights`` is
    averaged over heads unless ``average_attn_weights=False``, None if not ``need_weights``.
    Bool masks mark positions NOT allowed to attend (True = masked), as torch."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError("embed_dim and num_heads must be greater than 0")
        if embed_dim % num_heads:
            raise AssertionError("embed_dim must be divisible by num_heads")
        if (kdim not in (None, embed_dim)) or (vdim not in (None, embed_dim)):
            raise NotImplementedError("MultiheadAttention: kdim/vdim different from embed_dim are not supported")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported")
        dt = np.float32 if dtype is None else dtype
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        self.kdim = self.vdim = embed_dim
        self._qkv_same_embed_dim = True
        self.in_proj_weight = Parameter(_f.zeros(3 * embed_dim, embed_dim, dtype=dt))
        if bias:
            self.in_proj_bias = Parameter(_f.zeros(3 * embed_dim, dtype=dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dt)
        self._reset_parameters()

    def _reset_parameters(self):
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        batched = query.ndim == 3
        if self.batch_first and batched:
            query, key, value = (C.transpose(t, 0, 1) for t in (query, key, value))
        out, w = F.multi_head_attention_forward(
            query, key, value, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.out_proj.weight, self.out_proj.bias, dropout_p=self.dropout, training=self.training,
            key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
            average_attn_weights=average_attn_weights, is_causal=is_causal,
        )
        if self.batch_first and batched:
            out = C.transpose(out, 0, 1)
        return out, w

    def extra_repr(self):
        return ""


