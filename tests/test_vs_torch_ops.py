"""Issue 10 ops against torch: every op-table entry of ``tests/op_table_breadth.py`` that has
a torch counterpart runs on the entry's own (seeded, fixed) samples in both libraries:
forward values, shapes and dtypes in every dtype of the entry, and gradients (a random
cotangent backpropagated through both) in float64.  Skipped without torch.
"""
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
TF = torch.nn.functional

import dualgraph as dg  # noqa: E402

from . import op_table  # noqa: E402,F401 - first: it appends the breadth entries (import order)
from .op_table_breadth import BREADTH_OPS  # noqa: E402

TDT = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
       np.dtype(np.int64): torch.int64, np.dtype(np.int32): torch.int32, np.dtype(np.bool_): torch.bool}


def _tdt(dt):
    return TDT[np.dtype(dt)]


def _dims(kw, rename=None):
    """numpy-style kwargs of the dualgraph call -> torch's."""
    kw = dict(kw)
    if "axis" in kw:
        kw["dim"] = kw.pop("axis")
    if "keepdims" in kw:
        kw["keepdim"] = kw.pop("keepdims")
    if kw.get("dtype") is not None:
        kw["dtype"] = _tdt(kw["dtype"])
    for a, b in (rename or {}).items():
        if a in kw:
            kw[b] = kw.pop(a)
    return kw


def _t_scalar(x):
    return torch.tensor(x) if not isinstance(x, torch.Tensor) else x


def _prod(x, dim=None, keepdim=False):
    return torch.prod(x) if dim is None else torch.prod(x, dim, keepdim)


def _var(fn):
    def f(x, **kw):
        kw = _dims(kw)
        if "unbiased" in kw:
            kw["correction"] = 1 if kw.pop("unbiased") else 0
        return fn(x, **kw)
    return f


def _amax(fn):
    return lambda x, dim, keepdim: fn(x, dim=dim, keepdim=keepdim)


def _norm(x, p="fro", dim=None):
    return torch.linalg.vector_norm(x, ord=2 if p == "fro" else p, dim=dim)


def _anyall(fn):
    return lambda x, dim, keepdim: fn(x) if dim is None else fn(x, dim=dim, keepdim=keepdim)


def _split(f):
    return f


TORCH = {
    # 1. elementwise
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "asin": torch.asin, "acos": torch.acos,
    "atan": torch.atan, "sinh": torch.sinh, "cosh": torch.cosh, "log2": torch.log2, "log10": torch.log10,
    "log1p": torch.log1p, "exp2": torch.exp2, "expm1": torch.expm1, "floor": torch.floor, "ceil": torch.ceil,
    "trunc": torch.trunc, "round": lambda x, decimals=0: torch.round(x, decimals=decimals),
    "atan2": lambda y, x: torch.atan2(_t_scalar(y), _t_scalar(x)),
    "fmod": torch.fmod, "remainder": torch.remainder, "floor_divide": torch.floor_divide,
    "dg.square": torch.square, "Tensor.reciprocal": torch.reciprocal, "dg.rsqrt": torch.rsqrt, "dg.frac": torch.frac,
    "dg.isnan": torch.isnan, "dg.isinf": torch.isinf, "Tensor.isfinite": torch.isfinite,
    "dg.nan_to_num": torch.nan_to_num, "dg.clamp(tensor bounds)": torch.clamp, "dg.lerp": torch.lerp,
    "F.softplus": TF.softplus, "F.softsign": TF.softsign, "F.silu": TF.silu, "F.mish": TF.mish, "F.elu": TF.elu,
    "F.celu": TF.celu, "F.selu": TF.selu, "F.leaky_relu": TF.leaky_relu, "F.relu6": TF.relu6,
    "F.hardtanh": TF.hardtanh, "F.hardsigmoid": TF.hardsigmoid, "F.hardswish": TF.hardswish,
    "F.logsigmoid": TF.logsigmoid, "dg.div(rounding_mode)": torch.div,
    # 2. reductions
    "dg.sum(dtype, axis)": lambda x, **kw: torch.sum(x, **_dims(kw)),
    "dg.prod": _prod, "Tensor.var(correction)": _var(torch.var), "dg.std": _var(torch.std),
    "dg.amax": _amax(torch.amax), "Tensor.amin": _amax(torch.amin), "dg.logsumexp": torch.logsumexp,
    "dg.norm": _norm, "dg.cumsum": torch.cumsum, "dg.cumprod": torch.cumprod,
    "dg.any": _anyall(torch.any), "Tensor.all": _anyall(torch.all),
    "dg.sort.values": lambda x, **kw: torch.sort(x, stable=True, **kw).values,
    "dg.sort.indices": lambda x, **kw: torch.sort(x, stable=True, **kw).indices,
    "dg.argsort": lambda x, **kw: torch.argsort(x, stable=True, **kw),
    "dg.topk.values": lambda x, k, **kw: torch.topk(x, k, **kw).values,
    "Tensor.topk.indices": lambda x, k, **kw: torch.topk(x, k, **kw).indices,
    # 3. shape and indexing
    "Tensor.flatten(start, end)": lambda x, **kw: x.flatten(**kw),
    "dg.unflatten": lambda x, dim, sizes: torch.unflatten(x, dim, sizes),
    "Tensor.repeat": lambda x, sizes: x.repeat(*sizes), "dg.tile": torch.tile,
    "Tensor.expand_as": lambda x, o: x.expand_as(o), "dg.flip": torch.flip, "dg.roll": torch.roll,
    "dg.tril": torch.tril, "Tensor.triu": lambda x, **kw: x.triu(**kw),
    "dg.split": lambda x, s, dim: torch.cat(list(torch.split(x, s, dim))[::-1], dim),
    "dg.chunk": lambda x, chunks, dim: torch.cat(list(torch.chunk(x, chunks, dim))[::-1], dim),
    "dg.unbind": lambda x, dim: torch.stack(list(torch.unbind(x, dim))[::-1], dim),
    "dg.narrow": torch.narrow, "dg.gather": lambda x, i, dim: torch.gather(x, dim, i),
    "dg.scatter": lambda x, i, src=None, *, dim, value=None: (
        torch.scatter(x, dim, i, src) if src is not None else torch.scatter(x, dim, i, value)),
    "Tensor.scatter_add": lambda x, i, s, dim: x.scatter_add(dim, i, s),
    "dg.index_select": lambda x, i, dim: torch.index_select(x, dim, i),
    "Tensor.masked_fill": lambda x, m, value: x.masked_fill(m, value),
    "dg.take_along_dim": torch.take_along_dim, "F.pad": TF.pad, "F.one_hot": TF.one_hot,
    "dg.einsum": lambda *xs, equation: torch.einsum(equation, *xs),
    "dg.mm": torch.mm, "dg.bmm": torch.bmm, "Tensor.mv": torch.mv, "dg.dot": torch.dot, "dg.outer": torch.outer,
    "dg.diag": torch.diag, "dg.diagonal": torch.diagonal, "Tensor.trace": torch.trace, "Tensor.clone": torch.clone,
    # 5. convolution and pooling
    "F.conv2d": TF.conv2d, "F.conv1d": TF.conv1d, "F.conv_transpose2d": TF.conv_transpose2d,
    "F.max_pool2d": TF.max_pool2d, "F.avg_pool2d": TF.avg_pool2d, "F.adaptive_avg_pool2d": TF.adaptive_avg_pool2d,
}

ENTRIES = [o for o in BREADTH_OPS if o.name in TORCH]
# torch has no derivative for floor_divide (ours is zero, as for floor); the op table
# gradchecks it
NO_TORCH_GRAD = {"floor_divide"}
# torch computes hardsigmoid's double gradient with a float32 1/6 (relative error 3e-8)
GRAD_RTOL = {"F.hardsigmoid": 1e-7}


def test_every_public_entry_is_compared():
    internal = {"cumsum", "gather", "scatter", "scatter_add", "argsort", "reduce_prod", "conv2d", "conv_transpose2d",
                "conv2d_weight", "max_pool2d_indices"}  # primitives reached through the composites above
    missing = {o.name for o in BREADTH_OPS} - set(TORCH) - internal
    assert not missing, f"op-table entries without a torch comparison: {sorted(missing)}"


def _pair(a, rg):
    if not isinstance(a, np.ndarray):
        return a, a
    rg = rg and a.dtype.kind == "f"
    return dg.tensor(a, requires_grad=rg), torch.tensor(a, requires_grad=rg)


def _cmp(got, want, what, dtype, rtol=None):
    g = got.detach().numpy()
    w = want.detach().numpy()
    assert g.shape == w.shape, f"{what}: shape {g.shape} != torch {w.shape}"
    assert _tdt(g.dtype) == want.dtype, f"{what}: dtype {g.dtype} != torch {want.dtype}"
    if g.dtype.kind == "f":
        tol = {"rtol": 2e-5, "atol": 2e-5} if g.dtype == np.float32 else {"rtol": rtol or 1e-9, "atol": 1e-11}
        np.testing.assert_allclose(g, w, equal_nan=True, err_msg=what, **tol)
    else:
        np.testing.assert_array_equal(g, w, err_msg=what)


@pytest.mark.parametrize("info", ENTRIES, ids=[o.name for o in ENTRIES])
def test_forward_and_gradients_match_torch(info):
    tfn = TORCH[info.name]
    rng = np.random.default_rng(5)
    for dtype in info.dtypes:
        for s in info.samples(dtype):
            grad = info.differentiable and np.dtype(dtype) == np.float64 and s.gradcheck
            diff = set(s.diff_indices()) if grad else set()
            pairs = [_pair(a, i in diff) for i, a in enumerate(s.args)]
            what = f"{info.name} {np.dtype(dtype).name} {s.desc}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out_d = info.op(*[p[0] for p in pairs], **s.kwargs)
                try:
                    out_t = tfn(*[p[1] for p in pairs], **s.kwargs)
                except NotImplementedError:
                    # torch lacks the kernel (round of an int64 tensor): dualgraph's result
                    # is checked against numpy by the op table
                    assert np.dtype(dtype).kind in "iub", what
                    continue
            _cmp(out_d, out_t, what, dtype)
            if not grad or not out_t.requires_grad or info.name in NO_TORCH_GRAD:
                continue
            ct = rng.normal(size=out_t.shape)
            out_d.backward(dg.tensor(ct))
            try:
                out_t.backward(torch.tensor(ct))
            except RuntimeError as e:
                # torch's scatter/scatter_add backward rejects a src larger than the index
                assert "invalid gradient" in str(e), what
                continue
            for i in sorted(diff):
                gd, gt = pairs[i][0].grad, pairs[i][1].grad
                if gt is None:
                    assert gd is None or not np.any(gd.numpy()), f"{what}: d/d arg {i}"
                    continue
                assert gd is not None, f"{what}: no gradient for arg {i}"
                _cmp(gd, gt, f"{what}: d/d arg {i}", dtype, GRAD_RTOL.get(info.name))


# ---- behaviour at edges, against torch --------------------------------------------------


def _both(f, *arrays, rg=False):
    d = f(dg, *[dg.tensor(a, requires_grad=rg) for a in arrays])
    t = f(torch, *[torch.tensor(a, requires_grad=rg) for a in arrays])
    return d, t


def test_sort_nan_and_ties_as_torch():
    x = np.array([[2.0, np.nan, 1.0, 2.0, -np.inf, 1.0]])
    for desc in (False, True):
        d = dg.sort(dg.tensor(x), dim=1, descending=desc)
        t = torch.sort(torch.tensor(x), dim=1, descending=desc, stable=True)
        np.testing.assert_array_equal(d.values.numpy(), t.values.numpy())
        np.testing.assert_array_equal(d.indices.numpy(), t.indices.numpy())


def test_prod_gradient_with_zeros_as_torch():
    for x in (np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 5.0]]), np.array([[1.5, -2.0, 0.5], [4.0, 0.0, 2.0]])):
        for dim in (None, 1, 0):
            xd, xt = dg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
            (dg.prod(xd) if dim is None else dg.prod(xd, dim)).sum().backward()
            (torch.prod(xt) if dim is None else torch.prod(xt, dim)).sum().backward()
            np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
            xd, xt = dg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
            dg.cumprod(xd, 1).sum().backward()
            torch.cumprod(xt, 1).sum().backward()
            np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


def test_norm_gradient_at_zero_as_torch():
    x = np.zeros((2, 3))
    xd, xt = dg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    dg.norm(xd).backward()
    torch.norm(xt).backward()
    np.testing.assert_array_equal(xd.grad.numpy(), xt.grad.numpy())


def test_activations_far_out_have_finite_gradients_as_torch():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    from dualgraph.ops import more_composites as MC
    for name in ("softplus", "elu", "celu", "selu", "logsigmoid", "mish", "silu"):
        xd, xt = dg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yd, yt = getattr(MC, name)(xd), getattr(TF, name)(xt)
        np.testing.assert_allclose(yd.detach().numpy(), yt.detach().numpy(), rtol=1e-12, err_msg=name)
        yd.sum().backward()
        yt.sum().backward()
        np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-300, err_msg=name)


def test_operators_floordiv_mod_and_int_dtypes_as_torch():
    a = np.array([[7, -7, 5], [-3, 8, 0]])
    b = np.array([2, -3, 4])
    for f in (lambda m, x, y: x // y, lambda m, x, y: x % y, lambda m, x, y: 10 // y, lambda m, x, y: 10 % y,
              lambda m, x, y: m.fmod(x, y), lambda m, x, y: x.sin(), lambda m, x, y: m.atan2(x, y)):
        d, t = _both(f, a, b)
        assert _tdt(d.dtype) == t.dtype
        np.testing.assert_allclose(d.numpy(), t.numpy(), rtol=1e-6)


def test_max_pool_return_indices_as_torch():
    x = np.random.default_rng(0).normal(size=(2, 3, 7, 6))
    d = dg.ops.nn_ops.max_pool2d(dg.tensor(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    t = TF.max_pool2d(torch.tensor(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(d[1].numpy(), t[1].numpy())
    np.testing.assert_array_equal(d[0].numpy(), t[0].numpy())


def test_conv_float32_matches_torch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 9, 8)).astype(np.float32)
    w = rng.normal(size=(6, 3, 3, 3)).astype(np.float32)
    xd, wd = dg.tensor(x, requires_grad=True), dg.tensor(w, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yd = dg.ops.nn_ops.conv2d(xd, wd, stride=2, padding=1)
    yt = TF.conv2d(xt, wt, stride=2, padding=1)
    assert yd.dtype == np.float32
    np.testing.assert_allclose(yd.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    yd.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(wd.grad.numpy(), wt.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_factories_dtypes_as_torch():
    for f in (lambda m: m.arange(0, 1, 0.1), lambda m: m.arange(5), lambda m: m.arange(1, 2.5, 0.5),
              lambda m: m.arange(10, 0, -3), lambda m: m.linspace(0, 1, 5), lambda m: m.logspace(0, 2, 3),
              lambda m: m.eye(3), lambda m: m.eye(2, 3), lambda m: m.zeros_like(m.ones(2, dtype=m.float64)),
              lambda m: m.full_like(m.ones(2), 7), lambda m: m.ones(2).new_zeros(3),
              lambda m: m.ones(2, dtype=m.float64).new_full((2,), 3)):
        d, t = f(dg), f(torch)
        assert _tdt(d.dtype) == t.dtype
        assert tuple(d.shape) == tuple(t.shape)
        np.testing.assert_allclose(d.numpy(), t.numpy(), rtol=1e-6)
    d, t = dg.empty(2, 3), torch.empty(2, 3)  # values unspecified (dualgraph: zeros)
    assert _tdt(d.dtype) == t.dtype and tuple(d.shape) == tuple(t.shape)


def test_math_constants_sanity():
    assert math.isclose(dg.exp2(dg.tensor(3.0)).item(), 8.0)
