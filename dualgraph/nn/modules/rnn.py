"""RNN, GRU and LSTM: cells (one step) and layers (multi-layer, optionally bidirectional),
with torch's parameter names, gate order and initialisation U(-1/sqrt(H), 1/sqrt(H))."""
from __future__ import annotations

import math

import numpy as np

from ...eager import factories as _f
from ...ops import composites as C
from ...ops import primitives as P
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def _rnn_step(mode):
    act = P.tanh if mode == "RNN_TANH" else C.relu

    def step(gi, h, w_hh, b_hh):
        return act(P.add(gi, F.linear(h, w_hh, b_hh)))

    return step


def _gru_step(gi, h, w_hh, b_hh):
    hs = h.shape[-1]
    gh = F.linear(h, w_hh, b_hh)
    r = P.sigmoid(P.add(gi[..., :hs], gh[..., :hs]))
    z = P.sigmoid(P.add(gi[..., hs:2 * hs], gh[..., hs:2 * hs]))
    n = P.tanh(P.add(gi[..., 2 * hs:], P.mul(r, gh[..., 2 * hs:])))
    return P.add(P.mul(P.sub(1.0, z), n), P.mul(z, h))


def _lstm_step(gi, state, w_hh, b_hh):
    h, c = state
    hs = h.shape[-1]
    g = P.add(gi, F.linear(h, w_hh, b_hh))
    i = P.sigmoid(g[..., :hs])
    f = P.sigmoid(g[..., hs:2 * hs])
    gg = P.tanh(g[..., 2 * hs:3 * hs])
    o = P.sigmoid(g[..., 3 * hs:])
    c = P.add(P.mul(f, c), P.mul(i, gg))
    return P.mul(o, P.tanh(c)), c


def _step_fn(mode):
    if mode == "GRU":
        return _gru_step
    if mode == "LSTM":
        return _lstm_step
    return _rnn_step(mode)


def _uniform_all(module, hidden_size):
    stdv = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0
    for p in module.parameters():
        init.uniform_(p, -stdv, stdv)


# ---- cells ---------------------------------------------------------------------------------


class _CellBase(Module):
    _mode = "RNN_TANH"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        dt = np.float32 if dtype is None else dtype
        g = _GATES[self._mode]
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(_f.zeros(g * hidden_size, input_size, dtype=dt))
        self.weight_hh = Parameter(_f.zeros(g * hidden_size, hidden_size, dtype=dt))
        if bias:
            self.bias_ih = Parameter(_f.zeros(g * hidden_size, dtype=dt))
            self.bias_hh = Parameter(_f.zeros(g * hidden_size, dtype=dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        _uniform_all(self, self.hidden_size)

    def _zeros(self, input):  # noqa: A002
        shape = (input.shape[0], self.hidden_size) if input.ndim == 2 else (self.hidden_size,)
        return _f.zeros(*shape, dtype=input.dtype)

    def _check(self, input):  # noqa: A002
        if input.ndim not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got {input.ndim}D instead")

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        return s


class RNNCell(_CellBase):
    """``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.__dict__["_mode"] = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):  # noqa: A002
        self._check(input)
        h = self._zeros(input) if hx is None else hx
        gi = F.linear(input, self.weight_ih, self.bias_ih)
        return _rnn_step(self._mode)(gi, h, self.weight_hh, self.bias_hh)


class GRUCell(_CellBase):
    """Gates r, z, n (torch's order): ``h' = (1 - z) n + z h``."""

    _mode = "GRU"

    def forward(self, input, hx=None):  # noqa: A002
        self._check(input)
        h = self._zeros(input) if hx is None else hx
        return _gru_step(F.linear(input, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)


class LSTMCell(_CellBase):
    """Gates i, f, g, o (torch's order); returns ``(h', c')``."""

    _mode = "LSTM"

    def forward(self, input, hx=None):  # noqa: A002
        self._check(input)
        if hx is None:
            hx = (self._zeros(input), self._zeros(input))
        return _lstm_step(F.linear(input, self.weight_ih, self.bias_ih), tuple(hx), self.weight_hh, self.bias_hh)


# ---- layers --------------------------------------------------------------------------------


class RNNBase(Module):
    """Multi-layer recurrent network over (L, N, H_in) inputs ((N, L, H_in) with
    ``batch_first``, or unbatched (L, H_in)); returns ``(output, h_n)`` (LSTM:
    ``(output, (h_n, c_n))``)."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        if proj_size:
            raise NotImplementedError("LSTM: proj_size is not supported")
        if not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1]")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        dt = np.float32 if dtype is None else dtype
        g = _GATES[mode] * hidden_size
        dirs = 2 if bidirectional else 1
        self._names = []
        for layer in range(num_layers):
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                in_size = input_size if layer == 0 else hidden_size * dirs
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                setattr(self, names[0], Parameter(_f.zeros(g, in_size, dtype=dt)))
                setattr(self, names[1], Parameter(_f.zeros(g, hidden_size, dtype=dt)))
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    setattr(self, names[2], Parameter(_f.zeros(g, dtype=dt)))
                    setattr(self, names[3], Parameter(_f.zeros(g, dtype=dt)))
                self._names.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        _uniform_all(self, self.hidden_size)

    def _weights(self, k):
        names = self._names[k]
        w = [getattr(self, n) for n in names]
        return (w[0], w[1], w[2], w[3]) if self.bias else (w[0], w[1], None, None)

    def forward(self, input, hx=None):  # noqa: A002
        lstm = self.mode == "LSTM"
        batched = input.ndim == 3
        if input.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.ndim}D instead")
        x = C.unsqueeze(input, 1) if not batched else (C.transpose(input, 0, 1) if self.batch_first else input)
        length, n = x.shape[0], x.shape[1]
        dirs = 2 if self.bidirectional else 1
        if hx is None:
            z = _f.zeros(self.num_layers * dirs, n, self.hidden_size, dtype=input.dtype)
            hx = (z, z) if lstm else z
        elif not batched:
            hx = tuple(C.unsqueeze(t, 1) for t in hx) if lstm else C.unsqueeze(hx, 1)
        step = _step_fn(self.mode)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                w_ih, w_hh, b_ih, b_hh = self._weights(k)
                gi = F.linear(x, w_ih, b_ih)  # all time steps at once
                state = (hx[0][k], hx[1][k]) if lstm else hx[k]
                seq = [None] * length
                for t in (range(length) if d == 0 else range(length - 1, -1, -1)):
                    state = step(gi[t], state, w_hh, b_hh)
                    seq[t] = state[0] if lstm else state
                outs.append(C.stack(seq, 0))
                if lstm:
                    h_n.append(state[0])
                    c_n.append(state[1])
                else:
                    h_n.append(state)
            x = outs[0] if dirs == 1 else C.cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h = C.stack(h_n, 0)
        hidden = (h, C.stack(c_n, 0)) if lstm else h
        if not batched:
            out = C.squeeze(x, 1)
            hidden = tuple(C.squeeze(t, 1) for t in hidden) if lstm else C.squeeze(hidden, 1)
        else:
            out = C.transpose(x, 0, 1) if self.batch_first else x
        return out, hidden

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.__dict__["nonlinearity"] = nonlinearity
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)


class GRU(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)


class LSTM(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device=device, dtype=dtype)
