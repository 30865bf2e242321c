"""The reference workloads of ``python -m dualgraph bench``, each written once per system as a
user of that system would write it.

Systems: ``dg eager`` and ``dg.compile`` (the same plain Python function; Python ``if``/
``while``/``for`` on tensors is converted by AutoGraph under ``dg.compile``), ``numpy`` (the
reference every other result is checked against; gradients written by hand), ``numba``
(hand-written ``@njit`` loops, where that is the practical limit a user would reach for),
``torch`` (eager), ``torch.compile``, ``jax.jit``.

Each system entry is a *builder*: ``build(inputs) -> run`` takes the workload's numpy
inputs, converts them once (outside the timing) and returns a thunk that computes the
result once per call (synchronously: jax results are blocked on).

=========  ===========================================================================
seed_loop  ``r = x; for _ in range(100): r = r * 2 if r.sum() > 0 else r + 1``, 1000 floats
gelu       ``0.5*x*(1+tanh(0.7978845608*(x+0.044715*x**3)))``, 4M floats
softmax    row softmax of a 2048x1024 matrix
newton     elementwise Newton square root of 100k values in [1, 101],
           ``while max(abs(x*x-a)/a) > 1e-5: x = 0.5*(x + a/x)``
mlp        784-512-10 relu MLP, batch 128, cross-entropy: forward, backward, one SGD step
rnn        ``h = tanh(x_t @ Wx + h @ Wh)``, input 32, hidden 64, batch 8, 200 steps,
           loss ``h.sum()``: the loss and its gradients with respect to Wx and Wh
=========  ===========================================================================

``--quick`` sizes are smaller (see ``SIZES``).  All data is float32.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

import dualgraph as dg
from dualgraph.static.autograph import always_convert

F = dg.nn.functional

SYSTEMS = ("dg eager", "dg.compile", "numpy", "numba", "torch", "torch.compile", "jax.jit")
#: the module a system needs, with the command that installs it
_TORCH = "pip install torch==2.13.0  (pinned: an unpinned torch pulls a multi-GB CUDA build)"
PEERS = {
    "torch": ("torch", _TORCH),
    "torch.compile": ("torch", _TORCH),
    "jax.jit": ("jax", "pip install jax"),
}
#: the eager counterpart of each compiled system (for the "speedup over eager" column)
EAGER_OF = {"dg.compile": "dg eager", "torch.compile": "torch", "jax.jit": None}

SIZES = {
    #          full                      quick
    "seed_loop": ({"n": 1000}, {"n": 1000}),
    "gelu": ({"n": 4 * 1024 * 1024}, {"n": 256 * 1024}),
    "softmax": ({"rows": 2048, "cols": 1024}, {"rows": 256, "cols": 1024}),
    "newton": ({"n": 100_000}, {"n": 10_000}),
    "mlp": ({"batch": 128, "d_in": 784, "hidden": 512, "classes": 10},
            {"batch": 32, "d_in": 784, "hidden": 512, "classes": 10}),
    "rnn": ({"steps": 200, "batch": 8, "d_in": 32, "hidden": 64},
            {"steps": 20, "batch": 8, "d_in": 32, "hidden": 64}),
}

#: cells --quick leaves out, with the reason shown in their cell
QUICK_SKIP = {
    (n, "torch.compile"): "in --quick: torch.compile of a training step compiles for 20-30 s; "
                          "run without --quick"
    for n in ("mlp", "rnn")
}

LR = 0.1  # the SGD step of the mlp workload


@dataclasses.dataclass
class Workload:
    name: str
    what: str
    make_inputs: Callable[[dict], dict]
    systems: dict  # system name -> builder(inputs) -> run()
    rtol: float = 1e-5
    atol: float = 1e-6  # relative to max |reference|
    #: maps a system's result (a list of numpy arrays) to the quantities compared
    compared: Callable[[list, dict], list] = staticmethod(lambda out, inputs: out)

    def size(self, quick: bool) -> dict:
        return SIZES[self.name][1 if quick else 0]

    def inputs(self, quick: bool) -> dict:
        return self.make_inputs(self.size(quick))

    def size_text(self, quick: bool) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.size(quick).items())


def _rng():
    return np.random.default_rng(0)


prange = range  # numba.prange once numba is imported (below)


def _lazy_njit(**opts):
    """``numba.njit(**opts)``, applied on first use (numba's import is not paid by the CLI's help)."""

    def deco(py):
        cell = {}

        def get():
            if "f" not in cell:
                import numba

                globals()["prange"] = numba.prange
                cell["f"] = numba.njit(**opts)(py)
            return cell["f"]

        return get

    return deco


# ============================================================================================
# seed_loop
# ============================================================================================


@always_convert
def dg_seed_loop(x):
    r = x
    for _ in range(100):
        r = r * 2 if r.sum() > 0 else r + 1
    return r


def np_seed_loop(x):
    r = x
    for _ in range(100):
        r = r * 2 if r.sum() > 0 else r + 1
    return r


def torch_seed_loop(x):
    r = x
    for _ in range(100):
        r = r * 2 if r.sum() > 0 else r + 1
    return r


def jax_seed_loop(x):
    from jax import lax

    return lax.fori_loop(0, 100, lambda i, r: lax.cond(r.sum() > 0, lambda r: r * 2, lambda r: r + 1, r), x)


@_lazy_njit(error_model="numpy")
def nb_seed_loop(x):
    r = x.copy()
    for _ in range(100):
        if r.sum() > 0:
            for i in range(r.size):
                r[i] *= np.float32(2)
        else:
            for i in range(r.size):
                r[i] += np.float32(1)
    return r


# ============================================================================================
# gelu
# ============================================================================================


def dg_gelu(x):
    return 0.5 * x * (1 + dg.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


def np_gelu(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


def torch_gelu(x):
    import torch

    return 0.5 * x * (1 + torch.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


def jax_gelu(x):
    import jax.numpy as jnp

    return 0.5 * x * (1 + jnp.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


def _nb_gelu_py(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        v = x[i]
        out[i] = np.float32(0.5) * v * (np.float32(1) + np.tanh(
            np.float32(0.7978845608) * (v + np.float32(0.044715) * v * v * v)))
    return out


nb_gelu = _lazy_njit(parallel=True, fastmath=True, error_model="numpy")(_nb_gelu_py)


# ============================================================================================
# softmax
# ============================================================================================


def dg_softmax(x):
    return dg.softmax(x, 1)


def np_softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def torch_softmax(x):
    import torch

    return torch.softmax(x, 1)


def jax_softmax(x):
    import jax

    return jax.nn.softmax(x, axis=1)


def _nb_softmax_py(x):
    out = np.empty_like(x)
    for i in prange(x.shape[0]):
        m = x[i, 0]
        for j in range(1, x.shape[1]):
            m = max(m, x[i, j])
        s = np.float32(0)
        for j in range(x.shape[1]):
            e = np.exp(x[i, j] - m)
            out[i, j] = e
            s += e
        inv = np.float32(1) / s
        for j in range(x.shape[1]):
            out[i, j] *= inv
    return out


nb_softmax = _lazy_njit(parallel=True, fastmath=True, error_model="numpy")(_nb_softmax_py)


# ============================================================================================
# newton
# ============================================================================================


@always_convert
def dg_newton(a):
    x = a
    while dg.max(dg.abs(x * x - a) / a) > 1e-5:
        x = 0.5 * (x + a / x)
    return x


def np_newton(a):
    x = a
    while np.max(np.abs(x * x - a) / a) > 1e-5:
        x = 0.5 * (x + a / x)
    return x


def torch_newton(a):
    import torch

    x = a
    while torch.max(torch.abs(x * x - a) / a) > 1e-5:
        x = 0.5 * (x + a / x)
    return x


def jax_newton(a):
    import jax.numpy as jnp
    from jax import lax

    return lax.while_loop(lambda x: jnp.max(jnp.abs(x * x - a) / a) > 1e-5, lambda x: 0.5 * (x + a / x), a)


@_lazy_njit(error_model="numpy")
def nb_newton(a):
    x = a.copy()
    while True:
        err = np.float32(0)
        for i in range(a.size):
            err = max(err, abs(x[i] * x[i] - a[i]) / a[i])
        if err <= 1e-5:
            return x
        for i in range(a.size):
            x[i] = np.float32(0.5) * (x[i] + a[i] / x[i])


# ============================================================================================
# mlp: forward, backward, SGD step
# ============================================================================================


def dg_mlp_loss(w1, b1, w2, b2, x, y):
    return F.cross_entropy(dg.relu(x @ w1 + b1) @ w2 + b2, y)


def dg_mlp_step(w1, b1, w2, b2, x, y):
    """The compiled form (JAX style): loss and updated parameters."""
    loss, grads = dg.value_and_grad(dg_mlp_loss, argnums=(0, 1, 2, 3))(w1, b1, w2, b2, x, y)
    return (loss,) + tuple(p - LR * g for p, g in zip((w1, b1, w2, b2), grads))


def np_mlp_step(w1, b1, w2, b2, x, y):
    n = x.shape[0]
    z1 = x @ w1 + b1
    h = np.maximum(z1, 0)
    logits = h @ w2 + b2
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    s = e.sum(1, keepdims=True)
    rows = np.arange(n)
    loss = -(z[rows, y] - np.log(s[:, 0])).mean()
    d = e / s
    d[rows, y] -= 1
    d /= n
    gw2, gb2 = h.T @ d, d.sum(0)
    dh = d @ w2.T
    dh[z1 <= 0] = 0
    gw1, gb1 = x.T @ dh, dh.sum(0)
    lr = np.float32(LR)
    return loss, w1 - lr * gw1, b1 - lr * gb1, w2 - lr * gw2, b2 - lr * gb2


def _mlp_inputs(s):
    r = _rng()
    d, hdim, c, b = s["d_in"], s["hidden"], s["classes"], s["batch"]
    f = np.float32
    return {
        "w1": (r.standard_normal((d, hdim)) / np.sqrt(d)).astype(f), "b1": np.zeros(hdim, f),
        "w2": (r.standard_normal((hdim, c)) / np.sqrt(hdim)).astype(f), "b2": np.zeros(c, f),
        "x": r.standard_normal((b, d)).astype(f), "y": r.integers(0, c, b).astype(np.int64),
    }


def _mlp_compared(out, inp):
    """The loss and the gradients recovered from the SGD update (so a wrong gradient shows)."""
    ps = [inp[k] for k in ("w1", "b1", "w2", "b2")]
    return [out[0]] + [(p.astype(np.float64) - q) / LR for p, q in zip(ps, out[1:])]


# ============================================================================================
# rnn: loss and gradients through 200 steps
# ============================================================================================


@always_convert
def dg_rnn_loss(wx, wh, xs):
    h = dg.zeros(xs.shape[1], wh.shape[0])
    for t in range(xs.shape[0]):
        h = dg.tanh(xs[t] @ wx + h @ wh)
    return h.sum()


def np_rnn_grads(wx, wh, xs):
    steps, batch, _ = xs.shape
    hs = np.zeros((steps + 1, batch, wh.shape[0]), np.float32)
    for t in range(steps):
        hs[t + 1] = np.tanh(xs[t] @ wx + hs[t] @ wh)
    gwx, gwh = np.zeros_like(wx), np.zeros_like(wh)
    dh = np.ones_like(hs[0])
    for t in reversed(range(steps)):
        dz = dh * (1 - hs[t + 1] * hs[t + 1])
        gwx += xs[t].T @ dz
        gwh += hs[t].T @ dz
        dh = dz @ wh.T
    return hs[steps].sum(), gwx, gwh


def _rnn_inputs(s):
    r = _rng()
    f = np.float32
    return {
        "wx": (r.standard_normal((s["d_in"], s["hidden"])) * 0.1).astype(f),
        "wh": (r.standard_normal((s["hidden"], s["hidden"])) * 0.1).astype(f),
        "xs": r.standard_normal((s["steps"], s["batch"], s["d_in"])).astype(f),
    }


# ============================================================================================
# builders
# ============================================================================================


def _dg_unary(fn):
    return {
        "dg eager": lambda inp: (lambda t: lambda: fn(t))(dg.tensor(inp["x"])),
        "dg.compile": lambda inp: (lambda f, t: lambda: f(t))(dg.compile(fn, fullgraph=True),
                                                              dg.tensor(inp["x"])),
    }


def _torch_unary(fn):
    def eager(inp):
        import torch

        t = torch.from_numpy(inp["x"])
        return lambda: fn(t)

    def compiled(inp):
        import torch

        f, t = torch.compile(fn), torch.from_numpy(inp["x"])
        return lambda: f(t)

    return {"torch": eager, "torch.compile": compiled}


def _jax_unary(fn):
    def build(inp):
        import jax

        f, t = jax.jit(fn), jax.device_put(inp["x"])
        return lambda: f(t).block_until_ready()

    return {"jax.jit": build}


def _np_unary(fn):
    return {"numpy": lambda inp: (lambda x: lambda: fn(x))(inp["x"])}


def _nb_unary(get):
    def build(inp):
        f, x = get(), inp["x"]
        return lambda: f(x)

    return {"numba": build}


def _unary(dgf, npf, nbf, tf, jf):
    s = {}
    s.update(_dg_unary(dgf))
    s.update(_np_unary(npf))
    if nbf is not None:
        s.update(_nb_unary(nbf))
    s.update(_torch_unary(tf))
    s.update(_jax_unary(jf))
    return s


# ---- mlp ----


def _mlp_dg_eager(inp):
    ps = [dg.tensor(inp[k], requires_grad=True) for k in ("w1", "b1", "w2", "b2")]
    x, y = dg.tensor(inp["x"]), dg.tensor(inp["y"])

    def run():
        loss = dg_mlp_loss(*ps, x, y)
        loss.backward()
        with dg.no_grad():
            new = [p - LR * p.grad for p in ps]
        for p in ps:
            p.grad = None
        return [loss.detach()] + new

    return run


def _mlp_dg_compile(inp):
    step = dg.compile(dg_mlp_step, fullgraph=True)
    args = [dg.tensor(inp[k]) for k in ("w1", "b1", "w2", "b2", "x", "y")]
    return lambda: step(*args)


def _mlp_numpy(inp):
    args = [inp[k] for k in ("w1", "b1", "w2", "b2", "x", "y")]
    return lambda: np_mlp_step(*args)


def _torch_mlp_loss(w1, b1, w2, b2, x, y):
    import torch

    return torch.nn.functional.cross_entropy(torch.relu(x @ w1 + b1) @ w2 + b2, y)


def _mlp_torch(compiled):
    def build(inp):
        import torch

        ps = [torch.tensor(inp[k], requires_grad=True) for k in ("w1", "b1", "w2", "b2")]
        x, y = torch.from_numpy(inp["x"]), torch.from_numpy(inp["y"])
        loss_fn = torch.compile(_torch_mlp_loss) if compiled else _torch_mlp_loss

        def run():
            loss = loss_fn(*ps, x, y)
            loss.backward()
            with torch.no_grad():
                new = [p - LR * p.grad for p in ps]
            for p in ps:
                p.grad = None
            return [loss.detach()] + new

        return run

    return build


def _mlp_jax(inp):
    import jax

    def loss_fn(w1, b1, w2, b2, x, y):
        logits = jax.nn.relu(x @ w1 + b1) @ w2 + b2
        logp = jax.nn.log_softmax(logits, axis=1)
        return -logp[jax.numpy.arange(x.shape[0]), y].mean()

    @jax.jit
    def step(w1, b1, w2, b2, x, y):
        loss, grads = jax.value_and_grad(loss_fn, argnums=(0, 1, 2, 3))(w1, b1, w2, b2, x, y)
        return (loss,) + tuple(p - LR * g for p, g in zip((w1, b1, w2, b2), grads))

    args = [jax.device_put(inp[k]) for k in ("w1", "b1", "w2", "b2", "x")]
    args.append(jax.device_put(inp["y"].astype(np.int32)))
    return lambda: jax.block_until_ready(step(*args))


# ---- rnn ----


def _rnn_dg_eager(inp):
    wx, wh = dg.tensor(inp["wx"], requires_grad=True), dg.tensor(inp["wh"], requires_grad=True)
    xs = dg.tensor(inp["xs"])

    def run():
        loss = dg_rnn_loss(wx, wh, xs)
        loss.backward()
        out = [loss.detach(), wx.grad, wh.grad]
        wx.grad = wh.grad = None
        return out

    return run


def _rnn_dg_compile(inp):
    f = dg.compile(dg.value_and_grad(dg_rnn_loss, argnums=(0, 1)), fullgraph=True)
    wx, wh, xs = (dg.tensor(inp[k]) for k in ("wx", "wh", "xs"))
    return lambda: f(wx, wh, xs)


def _rnn_numpy(inp):
    return lambda: np_rnn_grads(inp["wx"], inp["wh"], inp["xs"])


def _torch_rnn_loss(wx, wh, xs):
    import torch

    h = torch.zeros(xs.shape[1], wh.shape[0])
    for t in range(xs.shape[0]):
        h = torch.tanh(xs[t] @ wx + h @ wh)
    return h.sum()


def _rnn_torch(compiled):
    def build(inp):
        import torch

        wx, wh = (torch.tensor(inp[k], requires_grad=True) for k in ("wx", "wh"))
        xs = torch.from_numpy(inp["xs"])
        loss_fn = torch.compile(_torch_rnn_loss) if compiled else _torch_rnn_loss

        def run():
            loss = loss_fn(wx, wh, xs)
            loss.backward()
            out = [loss.detach(), wx.grad, wh.grad]
            wx.grad = wh.grad = None
            return out

        return run

    return build


def _rnn_jax(inp):
    import jax
    import jax.numpy as jnp

    def loss_fn(wx, wh, xs):
        def cell(h, x_t):
            return jnp.tanh(x_t @ wx + h @ wh), None

        h, _ = jax.lax.scan(cell, jnp.zeros((xs.shape[1], wh.shape[0]), xs.dtype), xs)
        return h.sum()

    f = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))
    args = [jax.device_put(inp[k]) for k in ("wx", "wh", "xs")]
    return lambda: jax.block_until_ready(f(*args))


# ============================================================================================
# the table of workloads
# ============================================================================================


WORKLOADS = {
    "seed_loop": Workload(
        "seed_loop", "100 data-dependent branches on a 1000-float vector (Python if in a for loop)",
        lambda s: {"x": _rng().standard_normal(s["n"]).astype(np.float32)},
        _unary(dg_seed_loop, np_seed_loop, nb_seed_loop, torch_seed_loop, jax_seed_loop),
        rtol=1e-6, atol=0.0),
    "gelu": Workload(
        "gelu", "tanh-form gelu, elementwise",
        lambda s: {"x": _rng().standard_normal(s["n"]).astype(np.float32)},
        _unary(dg_gelu, np_gelu, nb_gelu, torch_gelu, jax_gelu),
        rtol=1e-5, atol=1e-6),
    "softmax": Workload(
        "softmax", "row softmax",
        lambda s: {"x": _rng().standard_normal((s["rows"], s["cols"])).astype(np.float32)},
        _unary(dg_softmax, np_softmax, nb_softmax, torch_softmax, jax_softmax),
        rtol=1e-5, atol=1e-6),
    "newton": Workload(
        "newton", "elementwise Newton square root, while loop on a max reduction",
        lambda s: {"x": _rng().uniform(1.0, 101.0, s["n"]).astype(np.float32)},
        _unary(dg_newton, np_newton, nb_newton, torch_newton, jax_newton),
        rtol=2e-5, atol=0.0),
    "mlp": Workload(
        "mlp", "one SGD training step of a relu MLP with cross-entropy (forward, backward, update)",
        _mlp_inputs,
        {"dg eager": _mlp_dg_eager, "dg.compile": _mlp_dg_compile, "numpy": _mlp_numpy,
         "torch": _mlp_torch(False), "torch.compile": _mlp_torch(True), "jax.jit": _mlp_jax},
        rtol=1e-4, atol=1e-4, compared=_mlp_compared),
    "rnn": Workload(
        "rnn", "tanh RNN: loss and gradients of Wx, Wh through the time loop",
        _rnn_inputs,
        {"dg eager": _rnn_dg_eager, "dg.compile": _rnn_dg_compile, "numpy": _rnn_numpy,
         "torch": _rnn_torch(False), "torch.compile": _rnn_torch(True), "jax.jit": _rnn_jax},
        rtol=1e-4, atol=1e-4),
}
