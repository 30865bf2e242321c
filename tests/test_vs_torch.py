"""Differential tests: dualgraph's eager mode against torch (the reference for eager
semantics).  Forward values, result dtypes and shapes, gradients (``.backward()`` on
both), NaN/Inf behaviour and which calls raise.  CI has no torch: these are an extra check.
"""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dualgraph as dg

F32, F64 = np.float32, np.float64
TDT = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
       np.dtype(np.int64): torch.int64, np.dtype(np.int32): torch.int32,
       np.dtype(np.bool_): torch.bool}


# ---- harness -----------------------------------------------------------------------------


def _pair(a, rg=False):
    """The same input as a dualgraph and a torch tensor (Python scalars pass through)."""
    if not isinstance(a, np.ndarray):
        return a, a
    rg = rg and a.dtype.kind == "f"
    return dg.tensor(a, requires_grad=rg), torch.tensor(a, requires_grad=rg)


def _np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t.detach())


def _tol(dtype):
    return {"rtol": 1e-5, "atol": 1e-6} if np.dtype(dtype) == np.float32 else {"rtol": 1e-10, "atol": 1e-12}


def assert_same(got, want, what=""):
    """``got`` (dualgraph) equals ``want`` (torch): shape, dtype, values (NaN where NaN)."""
    g, w = _np(got), _np(want)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != torch {w.shape}"
    assert TDT[g.dtype] == want.dtype, f"{what}: dtype {g.dtype} != torch {want.dtype}"
    if g.dtype.kind == "f":
        np.testing.assert_allclose(g, w, equal_nan=True, err_msg=what, **_tol(g.dtype))
    else:
        np.testing.assert_array_equal(g, w, err_msg=what)


def check(f_dg, f_t, *args, grad=True, seed=0, what=None):
    """Run ``f_dg`` on dualgraph tensors and ``f_t`` on torch tensors built from ``args``
    (numpy arrays; floats require grad), compare outputs, then backward a random cotangent
    through both and compare the gradients of every float input."""
    what = what or getattr(f_dg, "__name__", "fn")
    pairs = [_pair(a, grad) for a in args]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            out_d = f_dg(*[p[0] for p in pairs])
            out_t = f_t(*[p[1] for p in pairs])
    assert_same(out_d, out_t, what)
    assert out_d.requires_grad == out_t.requires_grad, f"{what}: requires_grad"
    if not (grad and out_t.requires_grad):
        return out_d, out_t
    rng = np.random.default_rng(seed)
    ct = rng.standard_normal(out_t.shape).astype(_np(out_t).dtype)
    with np.errstate(all="ignore"):
        out_d.backward(dg.tensor(ct))
    out_t.backward(torch.tensor(ct))
    for k, (d, t) in enumerate(pairs):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            if t.grad is None:
                assert d.grad is None or not np.any(_np(d.grad)), f"{what}: grad of input {k}"
            else:
                assert d.grad is not None, f"{what}: no grad for input {k}"
                assert_same(d.grad, t.grad, f"{what}: grad of input {k}")
    return out_d, out_t


# what torch and dualgraph raise for a refused call (the types differ: torch's
# RuntimeError is often a ValueError or TypeError here, naming the op and the user's line)
ERRORS = (RuntimeError, TypeError, IndexError, ValueError, NotImplementedError, OverflowError)


def check_raises(f_dg, f_t, *args):
    """Torch raises on this call, and so does dualgraph."""
    pairs = [_pair(a) for a in args]
    with pytest.raises(ERRORS):
        f_t(*[p[1] for p in pairs])
    with pytest.raises(ERRORS):
        f_dg(*[p[0] for p in pairs])


def check_or_raises(f_dg, f_t, *args, **kw):
    """``check``, or where torch refuses the call (``-`` with bools, ...), dualgraph must too."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f_t(*[_pair(a)[1] for a in args])
    except ERRORS:
        with pytest.raises(ERRORS):
            f_dg(*[_pair(a)[0] for a in args])
        return None
    return check(f_dg, f_t, *args, **kw)


def rnd(shape, dtype=F32, seed=0, ties=False, special=False, positive=False):
    rng = np.random.default_rng(seed)
    if ties:
        a = rng.integers(-2, 3, size=shape).astype(dtype)  # small ints: many ties and zeros
    else:
        a = rng.standard_normal(shape).astype(dtype)
    if positive:
        a = np.abs(a) + dtype(0.1)
    if special and a.size >= 4:
        flat = a.reshape(-1)
        flat[:4] = [0.0, np.inf, -np.inf, np.nan]
    return a


DTYPES = [F32, F64]
BROADCAST_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 4)), ((), (2, 3)), ((4, 1, 3), (2, 1)),
                    ((2, 3), ())]


# ---- arithmetic ----------------------------------------------------------------------------

BINOPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("op", list(BINOPS))
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_binary_broadcasting(op, shapes, dtype):
    f = BINOPS[op]
    a, b = rnd(shapes[0], dtype, 1, ties=True), rnd(shapes[1], dtype, 2)
    if op == "div":
        b = rnd(shapes[1], dtype, 2, positive=True)
    check(f, f, a, b, what=op)


@pytest.mark.parametrize("op", list(BINOPS))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_binary_special_values(op, dtype):
    f = BINOPS[op]
    a = np.array([0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 0.0, 2.0], dtype)
    b = np.array([0.0, 0.0, 0.0, np.inf, 1.0, 1.0, -0.0, np.inf], dtype)
    check(f, f, a, b, what=op)


SCALARS = [2, -3, 0, 0.5, -1.5, True]


@pytest.mark.parametrize("op", list(BINOPS))
@pytest.mark.parametrize("s", SCALARS, ids=repr)
@pytest.mark.parametrize("dtype", [F32, F64, np.int64], ids=lambda d: np.dtype(d).name)
def test_python_scalar_operands(op, s, dtype):
    f = BINOPS[op]
    a = rnd((2, 3), dtype, 3, ties=True) if dtype != np.int64 else np.arange(-3, 3).reshape(2, 3)
    check_or_raises(lambda x: f(x, s), lambda x: f(x, s), a, what=f"{op} x,{s!r}")
    check_or_raises(lambda x: f(s, x), lambda x: f(s, x), a, what=f"{op} {s!r},x")


MIXED = [(np.int64, F32), (np.int64, F64), (F32, F64), (np.int32, np.int64), (np.bool_, F32),
         (np.bool_, np.int64), (np.int32, F32)]


@pytest.mark.parametrize("op", list(BINOPS) + ["pow", "maximum", "minimum"])
@pytest.mark.parametrize("dts", MIXED, ids=lambda d: f"{np.dtype(d[0]).name}-{np.dtype(d[1]).name}")
def test_mixed_dtype_promotion(op, dts):
    f = {**BINOPS, "pow": lambda a, b: a ** b}.get(op)
    fd = f or getattr(dg, op)
    ft = f or getattr(torch, op)
    a = np.array([[1, 2, 3], [0, 1, 2]]).astype(dts[0])
    b = np.array([1, 2, 2]).astype(dts[1])
    # torch's own pow backward fails with a bool exponent (it computes exponent - 1);
    # dualgraph differentiates it: compare the forward only
    grad = not (op == "pow" and np.bool_ in dts)
    check_or_raises(fd, ft, a, b, what=op, grad=grad)
    check_or_raises(lambda x, y: fd(y, x), lambda x, y: ft(y, x), a, b, what=op + " swapped", grad=grad)


@pytest.mark.parametrize("dtype", [F32, F64, np.int64], ids=lambda d: np.dtype(d).name)
def test_unary_minus_abs(dtype):
    a = rnd((3, 4), F32, 4, ties=True).astype(dtype)
    check(lambda x: -x, lambda x: -x, a)
    check(lambda x: abs(x), lambda x: abs(x), a)
    check(lambda x: x.abs(), lambda x: x.abs(), a)
    check(dg.abs, torch.abs, a)


def test_int_division():
    a = np.array([7, -7, 6, 0, 3])
    b = np.array([2, 2, -4, 5, 3])
    check(lambda x, y: x / y, lambda x, y: x / y, a, b)
    check(lambda x: x / 2, lambda x: x / 2, a)
    check(lambda x: 3 / x, lambda x: 3 / x, b)
    # int / 0: torch gives inf/nan in float32
    check(lambda x, y: x / y, lambda x, y: x / y, np.array([1, -1, 0]), np.array([0, 0, 0]))


# ---- pow -----------------------------------------------------------------------------------

POW_EXPONENTS = [2, 3, 1, 0, -1, 0.5, -0.5, 2.5, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("e", POW_EXPONENTS, ids=repr)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_pow_scalar_exponent(e, dtype):
    a = rnd((2, 3), dtype, 5, positive=True)
    check(lambda x: x ** e, lambda x: x ** e, a, what=f"x**{e}")
    b = np.array([0.0, -1.0, 2.0, -2.0, np.inf, np.nan], dtype)
    if isinstance(e, int) or float(e).is_integer():
        check(lambda x: x ** e, lambda x: x ** e, b, what=f"x**{e} special")
    else:
        check(lambda x: x ** e, lambda x: x ** e, b, grad=False, what=f"x**{e} special")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_pow_tensor_exponent(dtype):
    a = rnd((2, 3), dtype, 6, positive=True)
    b = rnd((3,), dtype, 7)
    check(lambda x, y: x ** y, lambda x, y: x ** y, a, b)
    check(lambda x: 2.0 ** x, lambda x: 2.0 ** x, b)
    check(lambda x: 2 ** x, lambda x: 2 ** x, b)
    check(lambda x, y: x.pow(y), lambda x, y: x.pow(y), a, b)


def test_pow_int():
    a = np.array([0, 1, 2, -3])
    check(lambda x: x ** 2, lambda x: x ** 2, a)
    check(lambda x: x ** 0.5, lambda x: x ** 0.5, np.array([0, 1, 4, 9]))
    check(lambda x: x ** 2.0, lambda x: x ** 2.0, a)


# ---- unary ---------------------------------------------------------------------------------

UNARY = ["exp", "log", "tanh", "sigmoid", "relu", "sqrt", "abs"]


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_unary(name, dtype):
    fd, ft = getattr(dg, name), getattr(torch, name)
    a = rnd((3, 4), dtype, 8, ties=True)
    if name in ("log", "sqrt"):
        a = rnd((3, 4), dtype, 8, positive=True)
    check(fd, ft, a, what=name)
    check(lambda x: getattr(x, name)(), lambda x: getattr(x, name)(), a, what="method " + name)
    # special values (and zero, where relu/abs/sqrt have their kinks)
    s = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 30.0, -30.0, 100.0, -100.0], dtype)
    check(fd, ft, s, what=name + " special")


@pytest.mark.parametrize("name", UNARY)
def test_unary_int_input(name):
    fd, ft = getattr(dg, name), getattr(torch, name)
    a = np.array([0, 1, 2, 3])
    try:
        want = ft(torch.tensor(a))
    except ERRORS:
        with pytest.raises(ERRORS):
            fd(dg.tensor(a))
        return
    # numpy warns (RuntimeWarning) on log(0), 1/0 ... where torch is silent: not asserted
    with np.errstate(divide="ignore"):
        assert_same(fd(dg.tensor(a)), want, name)


# ---- reductions ----------------------------------------------------------------------------

DIMS = [None, 0, 1, -1, (0, 1), (0, 2)]


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_reductions(name, dim, keepdim, dtype):
    a = rnd((2, 3, 4), dtype, 9, ties=True)  # ties: max/min gradient routing matters

    def fd(x):
        if dim is None and not keepdim:
            return getattr(x, name)()
        r = getattr(x, name)(dim=dim, keepdim=keepdim)
        if name in ("max", "min") and isinstance(dim, int):
            return r.values  # (values, indices), as torch
        return r

    def ft(x):
        if name in ("max", "min"):
            if dim is None and not keepdim:
                return getattr(x, name)()
            if isinstance(dim, int):
                return getattr(x, name)(dim=dim, keepdim=keepdim).values
            # torch: max over several dims is amax (gradient spread over ties, as max())
            return getattr(x, "a" + name)(dim=dim if dim is not None else tuple(range(x.ndim)),
                                          keepdim=keepdim)
        if dim is None:
            return getattr(x, name)(dim=tuple(range(x.ndim)), keepdim=keepdim)
        return getattr(x, name)(dim=dim, keepdim=keepdim)

    check(fd, ft, a, what=f"{name}(dim={dim}, keepdim={keepdim})")


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_reductions_functions_and_special(name):
    a = np.array([[1.0, np.nan, 3.0], [np.inf, 2.0, 2.0]], F32)
    fd, ft = getattr(dg, name), getattr(torch, name)
    check(fd, ft, a, what=name)
    if name in ("sum", "mean"):
        check(lambda x: fd(x, 1), lambda x: ft(x, 1), a, what=name)
    else:
        check(lambda x: fd(x, 1).values, lambda x: ft(x, 1).values, a, what=name)
        np.testing.assert_array_equal(fd(dg.tensor(a), 1).indices.numpy(), ft(torch.tensor(a), 1).indices.numpy())
    b = np.array([[1.0, -np.inf, 3.0], [np.inf, 2.0, 2.0]], F32)
    check(fd, ft, b, what=name)


def test_max_ties_gradient():
    a = np.array([[3.0, 1.0, 3.0], [2.0, 2.0, 2.0]], F32)
    check(lambda x: x.max(), lambda x: x.max(), a)
    check(lambda x: x.min(), lambda x: x.min(), a)
    check(lambda x: x.max(dim=1).values, lambda x: x.max(dim=1).values, a)
    check(lambda x: x.max(dim=0).values, lambda x: x.max(dim=0).values, a)
    check(lambda x: x.min(dim=1, keepdim=True).values, lambda x: x.min(dim=1, keepdim=True).values, a)


@pytest.mark.parametrize("dtype", [F32, F64, np.int64, np.bool_], ids=lambda d: np.dtype(d).name)
def test_reductions_dtypes(dtype):
    a = rnd((2, 3), F32, 10, ties=True).astype(dtype)
    check(lambda x: x.sum(), lambda x: x.sum(), a)
    check(lambda x: x.sum(0), lambda x: x.sum(0), a)
    if dtype != np.bool_:
        check(lambda x: x.max(), lambda x: x.max(), a)
        check(lambda x: x.min(dim=1).values, lambda x: x.min(dim=1).values, a)
    if np.dtype(dtype).kind != "f":
        check_raises(lambda x: x.mean(), lambda x: x.mean(), a)


def test_reduction_0d_and_empty():
    s = np.array(2.5, F32)
    check(lambda x: x.sum(), lambda x: x.sum(), s)
    check(lambda x: x.sum(0), lambda x: x.sum(0), s)
    check(lambda x: x.max(), lambda x: x.max(), s)
    check(lambda x: x.mean(-1, keepdim=True), lambda x: x.mean(-1, keepdim=True), s)
    e = np.zeros((0, 3), F32)
    check(lambda x: x.sum(), lambda x: x.sum(), e)
    check(lambda x: x.sum(0), lambda x: x.sum(0), e)
    check(lambda x: x.mean(), lambda x: x.mean(), e, grad=False)
    check_raises(lambda x: x.max(), lambda x: x.max(), e)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_argmin(name, dim, keepdim):
    a = rnd((3, 4), F32, 11, ties=True)  # ties: first occurrence, as torch
    fd = lambda x: getattr(x, name)(dim=dim, keepdim=keepdim)
    ft = lambda x: getattr(x, name)(dim=dim, keepdim=keepdim)
    check(fd, ft, a, grad=False)
    check(lambda x: getattr(dg, name)(x, dim), lambda x: getattr(torch, name)(x, dim), a, grad=False)
    b = np.array([[1.0, np.nan, 3.0], [2.0, 5.0, np.nan]], F32)  # torch: NaN wins
    check(fd, ft, b, grad=False)


# ---- shapes ----------------------------------------------------------------------------------

SHAPE_OPS = [
    ("reshape", lambda x: x.reshape(4, 6), lambda x: x.reshape(4, 6)),
    ("reshape-1", lambda x: x.reshape(-1, 3), lambda x: x.reshape(-1, 3)),
    ("reshape tuple", lambda x: x.reshape((2, -1)), lambda x: x.reshape((2, -1))),
    ("view", lambda x: x.view(6, 4), lambda x: x.view(6, 4)),
    ("view-1", lambda x: x.view(-1), lambda x: x.view(-1)),
    ("transpose", lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2)),
    ("transpose neg", lambda x: x.transpose(-1, -2), lambda x: x.transpose(-1, -2)),
    ("permute", lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    ("permute tuple", lambda x: x.permute((1, 2, 0)), lambda x: x.permute((1, 2, 0))),
    ("permute neg", lambda x: x.permute(-1, 0, 1), lambda x: x.permute(-1, 0, 1)),
    ("unsqueeze", lambda x: x.unsqueeze(1), lambda x: x.unsqueeze(1)),
    ("unsqueeze-1", lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(-1)),
    ("unsqueeze0", lambda x: x.unsqueeze(0), lambda x: x.unsqueeze(0)),
    ("T", lambda x: x.T, lambda x: x.permute(2, 1, 0)),  # torch deprecates .T on 3-d
    ("flatten", lambda x: x.flatten(), lambda x: x.flatten()),
]


@pytest.mark.parametrize("name, fd, ft", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_ops(name, fd, ft):
    check(fd, ft, rnd((2, 3, 4), F32, 12), what=name)


def test_squeeze_expand_T():
    a = rnd((1, 3, 1, 2), F64, 13)
    for d in [None, 0, 2, -2, 1]:
        f = lambda x, d=d: x.squeeze(d) if d is not None else x.squeeze()
        check(f, f, a, what=f"squeeze({d})")
    check(lambda x: dg.squeeze(x), lambda x: torch.squeeze(x), a)
    check(lambda x: dg.unsqueeze(x, 0), lambda x: torch.unsqueeze(x, 0), a)
    b = rnd((3, 1), F32, 14)
    check(lambda x: x.expand(3, 4), lambda x: x.expand(3, 4), b)
    check(lambda x: x.expand(2, 3, 4), lambda x: x.expand(2, 3, 4), b)
    check(lambda x: x.expand(-1, 5), lambda x: x.expand(-1, 5), b)
    check(lambda x: x.expand((2, -1, 2)), lambda x: x.expand((2, -1, 2)), b)
    m = rnd((2, 3), F32, 15)
    check(lambda x: x.T, lambda x: x.T, m)
    check(lambda x: x.T, lambda x: x.T, rnd((4,), F32, 15))
    check(lambda x: x.t(), lambda x: x.t(), m)
    check(lambda x: dg.transpose(x, 0, 1), lambda x: torch.transpose(x, 0, 1), m)
    check(lambda x: dg.reshape(x, (3, 2)), lambda x: torch.reshape(x, (3, 2)), m)


def test_shape_errors():
    a = rnd((2, 3), F32, 16)
    check_raises(lambda x: x.reshape(4, 2), lambda x: x.reshape(4, 2), a)
    check_raises(lambda x: x.reshape(-1, -1), lambda x: x.reshape(-1, -1), a)
    check_raises(lambda x: x.expand(3, 3), lambda x: x.expand(3, 3), a)
    check_raises(lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2), a)
    check_raises(lambda x: x.permute(0, 0), lambda x: x.permute(0, 0), a)
    check_raises(lambda x: x.permute(0), lambda x: x.permute(0), a)
    check_raises(lambda x: x.unsqueeze(3), lambda x: x.unsqueeze(3), a)
    check_raises(lambda x: x.squeeze(2), lambda x: x.squeeze(2), a)
    check_raises(lambda x: x.sum(2), lambda x: x.sum(2), a)
    check_raises(lambda x: x.softmax(2), lambda x: x.softmax(2), a)
    check_raises(lambda x: x + x.T, lambda x: x + x.T, a)
    check_raises(lambda x: x.view(-1, 4), lambda x: x.view(-1, 4), a)


# ---- clamp, softmax, cat/stack, where, maximum/minimum -------------------------------------------

CLAMPS = [(-0.5, 0.5), (None, 0.0), (0.0, None), (1.0, -1.0), (-1, 1), (0, None)]


@pytest.mark.parametrize("lo, hi", CLAMPS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_clamp(lo, hi, dtype):
    a = np.concatenate([rnd((8,), dtype, 17), np.array([-0.5, 0.5, 0.0, 1.0, -1.0, np.nan, np.inf,
                                                        -np.inf], dtype)])
    check(lambda x: x.clamp(lo, hi), lambda x: x.clamp(lo, hi), a, what=f"clamp({lo}, {hi})")
    check(lambda x: x.clamp(min=lo, max=hi), lambda x: x.clamp(min=lo, max=hi), a)
    check(lambda x: dg.clamp(x, lo, hi), lambda x: torch.clamp(x, lo, hi), a)


def test_clamp_int():
    a = np.array([-3, -1, 0, 2, 5])
    check(lambda x: x.clamp(-1, 2), lambda x: x.clamp(-1, 2), a)
    check(lambda x: x.clamp(-1.5, 2.5), lambda x: x.clamp(-1.5, 2.5), a)
    check_raises(lambda x: x.clamp(), lambda x: x.clamp(), a)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_softmax(name, dim, dtype):
    a = rnd((3, 4), dtype, 18, ties=True)
    check(lambda x: getattr(x, name)(dim), lambda x: getattr(x, name)(dim), a, what=name)
    check(lambda x: getattr(dg, name)(x, dim), lambda x: getattr(torch, name)(x, dim), a, what=name)
    big = np.array([[1000.0, 0.0, -1000.0], [-np.inf, 0.0, 1.0], [np.inf, 0.0, 1.0],
                    [-np.inf, -np.inf, -np.inf]], dtype)
    check(lambda x: getattr(x, name)(-1), lambda x: getattr(x, name)(-1), big, what=name + " special")


def test_softmax_int_and_0d():
    check(lambda x: x.softmax(0), lambda x: x.softmax(0), np.array(1.5, F32))
    check(lambda x: x.log_softmax(-1), lambda x: x.log_softmax(-1), np.array(1.5, F32))
    check_raises(lambda x: x.softmax(0), lambda x: x.softmax(0), np.array([1, 2]))


@pytest.mark.parametrize("dim", [0, 1, -1, -2])
def test_cat_stack(dim):
    a, b = rnd((2, 3), F32, 19), rnd((2, 3), F32, 20)
    check(lambda x, y: dg.cat([x, y], dim), lambda x, y: torch.cat([x, y], dim), a, b)
    check(lambda x, y: dg.stack((x, y, x), dim), lambda x, y: torch.stack((x, y, x), dim), a, b)
    check(lambda x, y: dg.cat([x, y], dim=dim), lambda x, y: torch.cat([x, y], dim=dim), a, b)


def test_cat_stack_more():
    a, b = rnd((2, 3), F32, 21), rnd((4, 3), F32, 22)
    check(lambda x, y: dg.cat([x, y]), lambda x, y: torch.cat([x, y]), a, b)
    check(lambda x, y: dg.stack([x, x], 2), lambda x, y: torch.stack([x, x], 2), a, b)
    # mixed dtypes promote; only one input requires grad
    c = np.arange(6).reshape(2, 3)
    check(lambda x, y: dg.cat([x, y]), lambda x, y: torch.cat([x, y]), a, c)
    check(lambda x, y: dg.cat([x, y]), lambda x, y: torch.cat([x, y]), a, a.astype(F64))
    check_raises(lambda x, y: dg.cat([x, y], 1), lambda x, y: torch.cat([x, y], 1), a, b)
    check_raises(lambda x, y: dg.stack([x, y]), lambda x, y: torch.stack([x, y]), a, b)
    check_raises(lambda x: dg.cat([], 0), lambda x: torch.cat([], 0), a)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_where(dtype):
    c = rnd((2, 3), F32, 23) > 0
    a, b = rnd((2, 3), dtype, 24), rnd((3,), dtype, 25)
    check(lambda c, x, y: dg.where(c, x, y), lambda c, x, y: torch.where(c, x, y), c, a, b)
    check(lambda x, y: dg.where(x > 0, x, y), lambda x, y: torch.where(x > 0, x, y), a, b)
    check(lambda x: dg.where(x > 0, x, 0.0), lambda x: torch.where(x > 0, x, 0.0), a)
    check(lambda x: dg.where(x > 0, 1.0, x), lambda x: torch.where(x > 0, 1.0, x), a)
    check(lambda x: dg.where(x > 0, x, 0), lambda x: torch.where(x > 0, x, 0), a)
    # NaN in the branch not taken still propagates no NaN gradient, as torch
    d = np.array([0.0, 1.0, 4.0, -1.0], dtype)
    check(lambda x: dg.where(x > 0, dg.sqrt(x), x), lambda x: torch.where(x > 0, torch.sqrt(x), x), d)
    i = np.arange(6).reshape(2, 3)
    check(lambda x, y: dg.where(x > 0, x, y), lambda x, y: torch.where(x > 0, x, y), a, i)
    check(lambda x: dg.where(x > 2, x, 0.5), lambda x: torch.where(x > 2, x, 0.5), i)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_maximum_minimum(name, dtype):
    fd, ft = getattr(dg, name), getattr(torch, name)
    a, b = rnd((3, 4), dtype, 26, ties=True), rnd((4,), dtype, 27, ties=True)  # ties
    check(fd, ft, a, b, what=name)
    s = np.array([1.0, np.nan, 2.0, np.inf, -np.inf, 0.0], dtype)
    t = np.array([1.0, 1.0, np.nan, np.inf, 0.0, -0.0], dtype)
    check(fd, ft, s, t, what=name + " special")


# ---- indexing ------------------------------------------------------------------------------

INDEXES = [
    ("int", lambda: 1),
    ("neg int", lambda: -1),
    ("slice", lambda: slice(1, 3)),
    ("slice step", lambda: slice(None, None, 2)),
    ("slice open", lambda: (slice(None), slice(1, None))),
    ("tuple int", lambda: (0, 2)),
    ("ellipsis", lambda: (Ellipsis, 1)),
    ("none", lambda: (None, slice(None), 0)),
    ("int array repeats", lambda: np.array([0, 2, 0, 0])),
    ("int list", lambda: [1, 1, -1]),
    ("int array 2d", lambda: np.array([[0, 1], [1, 1]])),
    ("two arrays", lambda: (np.array([0, 1, 1]), np.array([2, 0, 2]))),
    ("array and slice", lambda: (slice(None), np.array([3, 3, 0]))),
    ("bool mask 1d", lambda: np.array([True, False, True])),
    ("bool mask 2d", lambda: rnd((3, 4), F32, 28) > 0),
    ("slice out of range", lambda: slice(1, 100)),
    ("empty slice", lambda: slice(2, 1)),
]


@pytest.mark.parametrize("name, mk", INDEXES, ids=[i[0] for i in INDEXES])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_indexing(name, mk, as_tensor):
    a = rnd((3, 4), F64, 29)
    idx = mk()

    def conv(i, lib):
        if isinstance(i, (np.ndarray, list)):
            return lib.tensor(np.asarray(i)) if as_tensor else i
        return i

    def fd(x):
        return x[tuple(conv(i, dg) for i in idx) if isinstance(idx, tuple) else conv(idx, dg)]

    def ft(x):
        return x[tuple(conv(i, torch) for i in idx) if isinstance(idx, tuple) else conv(idx, torch)]

    check(fd, ft, a, what=name)


def test_indexing_errors():
    a = rnd((3, 4), F32, 30)
    check_raises(lambda x: x[3], lambda x: x[3], a)
    check_raises(lambda x: x[0, 0, 0], lambda x: x[0, 0, 0], a)
    check_raises(lambda x: x[np.array([5])], lambda x: x[np.array([5])], a)
    check_raises(lambda x: x[np.array([True, False])], lambda x: x[np.array([True, False])], a)
    check_raises(lambda x: x[np.array([0.5])], lambda x: x[torch.tensor([0.5])], a)
    # negative steps: torch refuses, numpy (so dualgraph) allows them; not compared


def test_indexing_int_tensor_and_0d():
    a = np.arange(12).reshape(3, 4)
    check(lambda x: x[1], lambda x: x[1], a)
    check(lambda x: x[:, np.array([0, 0])], lambda x: x[:, np.array([0, 0])], a)
    b = rnd((3,), F32, 31)
    check(lambda x: x[dg.tensor(1)], lambda x: x[torch.tensor(1)], b)
    check(lambda x: x[0] * x[0], lambda x: x[0] * x[0], b)


# ---- matmul ----------------------------------------------------------------------------------

MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
                 ((2, 3), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)), ((3,), (2, 3, 4)), ((2, 2, 3), (3,)),
                 ((0, 3), (3, 2))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_matmul(shapes, dtype):
    a, b = rnd(shapes[0], dtype, 32), rnd(shapes[1], dtype, 33)
    check(lambda x, y: x @ y, lambda x, y: x @ y, a, b)
    check(dg.matmul, torch.matmul, a, b)
    check(lambda x, y: x.matmul(y), lambda x, y: x.matmul(y), a, b)


def test_matmul_errors_and_dtypes():
    a, b = rnd((2, 3), F32, 34), rnd((2, 3), F32, 35)
    check_raises(lambda x, y: x @ y, lambda x, y: x @ y, a, b)
    check_raises(lambda x: x @ x, lambda x: x @ x, np.array(2.0, F32))
    i = np.arange(6).reshape(2, 3)
    check(lambda x, y: x @ y, lambda x, y: x @ y, i, i.T.copy())
    # torch refuses float32 @ float64 (numpy would promote); so does dualgraph
    check_raises(lambda x, y: x @ y, lambda x, y: x @ y, a, b.T.astype(F64).copy())


# ---- nn.functional ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cross_entropy(dtype):
    logits = rnd((5, 4), dtype, 36, ties=True)
    target = np.array([0, 3, 3, 1, 2])
    check(dg.nn.functional.cross_entropy, torch.nn.functional.cross_entropy, logits, target)
    extreme = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]], dtype)
    check(dg.nn.functional.cross_entropy, torch.nn.functional.cross_entropy, extreme, np.array([2, 1]))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_mse_loss(dtype):
    a, b = rnd((3, 4), dtype, 37), rnd((3, 4), dtype, 38, ties=True)
    check(dg.nn.functional.mse_loss, torch.nn.functional.mse_loss, a, b)
    check(lambda x: dg.nn.functional.mse_loss(x, x * 2), lambda x: torch.nn.functional.mse_loss(x, x * 2), a)
    s = np.array(1.5, dtype)
    check(dg.nn.functional.mse_loss, torch.nn.functional.mse_loss, s, np.array(s * 3, dtype))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_gelu(approximate, dtype):
    a = np.concatenate([rnd((10,), dtype, 39) * 3,
                        np.array([0.0, -0.0, 10.0, -10.0, 50.0, -50.0, np.inf, -np.inf, np.nan], dtype)])
    check(lambda x: dg.nn.functional.gelu(x, approximate=approximate),
          lambda x: torch.nn.functional.gelu(x, approximate=approximate), a)
    if approximate == "none":
        check(dg.nn.functional.gelu, torch.nn.functional.gelu, a)


def test_functional_others():
    a = rnd((3, 4), F32, 40)
    F, TF = dg.nn.functional, torch.nn.functional
    check(F.relu, TF.relu, a)
    check(lambda x: F.softmax(x, 1), lambda x: TF.softmax(x, 1), a)
    check(lambda x: F.log_softmax(x, dim=0), lambda x: TF.log_softmax(x, dim=0), a)


# ---- hypothesis: random elementwise chains -------------------------------------------------

from hypothesis import given, settings
from hypothesis import strategies as st

CHAIN_OPS = {
    "add": (lambda x, y: x + y, lambda x, y: x + y),
    "mul": (lambda x, y: x * y, lambda x, y: x * y),
    "sub": (lambda x, y: y - x, lambda x, y: y - x),
    "tanh": (lambda x, y: x.tanh(), lambda x, y: x.tanh()),
    "sigmoid": (lambda x, y: x.sigmoid(), lambda x, y: x.sigmoid()),
    "relu": (lambda x, y: x.relu(), lambda x, y: x.relu()),
    "max": (lambda x, y: dg.maximum(x, y), lambda x, y: torch.maximum(x, y)),
    "clamp": (lambda x, y: x.clamp(-0.5, 0.5), lambda x, y: x.clamp(-0.5, 0.5)),
    "abs": (lambda x, y: abs(x), lambda x, y: abs(x)),
    "sq": (lambda x, y: x ** 2, lambda x, y: x ** 2),
    "softmax": (lambda x, y: x.softmax(-1), lambda x, y: x.softmax(-1)),
    "sumk": (lambda x, y: x.sum(-1, keepdim=True) * y, lambda x, y: x.sum(-1, keepdim=True) * y),
    "maxk": (lambda x, y: x.max(-1, keepdim=True).values + y, lambda x, y: x.max(-1, keepdim=True).values + y),
}


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(st.sampled_from(sorted(CHAIN_OPS)), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([F32, F64]),
)
def test_random_chains(ops, seed, dtype):
    # no ties here: a computed value that is exactly 0 in one library and 1e-16 in the other
    # (summation order) meets abs/relu/maximum at their kinks; ties are tested op by op above
    a, b = rnd((2, 3), dtype, seed), rnd((3,), dtype, seed + 1)

    def run(x, y, k):
        for name in ops:
            x = CHAIN_OPS[name][k](x, y)
        return x

    check(lambda x, y: run(x, y, 0), lambda x, y: run(x, y, 1), a, b, what="->".join(ops))


# ---- autograd ------------------------------------------------------------------------------


def test_higher_order_create_graph():
    a = rnd((4,), F64, 41)
    xd, xt = _pair(a, True)
    fd = lambda x: (x.tanh() * x ** 3).sum()
    (gd,) = dg.autograd.grad(fd(xd), xd, create_graph=True)
    (gt,) = torch.autograd.grad(fd(xt), xt, create_graph=True)
    assert_same(gd, gt, "first")
    assert gd.requires_grad and gt.requires_grad
    (ggd,) = dg.autograd.grad(gd.sum(), xd, create_graph=True)
    (ggt,) = torch.autograd.grad(gt.sum(), xt, create_graph=True)
    assert_same(ggd, ggt, "second")
    (gggd,) = dg.autograd.grad(ggd.sum(), xd)
    (gggt,) = torch.autograd.grad(ggt.sum(), xt)
    assert_same(gggd, gggt, "third")


HIGHER = [
    ("sigmoid", lambda x: x.sigmoid()),
    ("exp*log", lambda x: x.exp() * (x * x + 1).log()),
    ("sqrt", lambda x: (x * x + 1).sqrt()),
    ("div", lambda x: 1 / (x * x + 1)),
    ("softmax", lambda x: x.softmax(0) * x),
    ("log_softmax", lambda x: x.log_softmax(0) ** 2),
    ("max", lambda x: x.max() * x),
    ("maximum", lambda x: dg.maximum(x, x * 0.5) * x if isinstance(x, dg.Tensor)
     else torch.maximum(x, x * 0.5) * x),
    ("matmul", lambda x: (x.reshape(2, 2) @ x.reshape(2, 2)).reshape(-1)),
    ("getitem", lambda x: x[[0, 0, 3]] * x[1:]),
    ("pow", lambda x: x.abs() ** 2.5),
    ("pow tensor exponent", lambda x: (x * x + 0.5) ** x),
    ("relu", lambda x: x.relu() * x),
    ("clamp", lambda x: x.clamp(-1.0, 1.0) * x),
    ("max dim", lambda x: x.reshape(2, 2).max(1).values * x[:2] if isinstance(x, dg.Tensor)
     else x.reshape(2, 2).max(1).values * x[:2]),
    ("where", lambda x: dg.where(x > 0, x * x, x.exp()) if isinstance(x, dg.Tensor)
     else torch.where(x > 0, x * x, x.exp())),
    ("mse", lambda x: (dg.nn.functional if isinstance(x, dg.Tensor) else torch.nn.functional)
     .mse_loss(x * x, x.exp()).reshape(1)),
    ("cross_entropy", lambda x: (dg.nn.functional if isinstance(x, dg.Tensor) else torch.nn.functional)
     .cross_entropy(x.reshape(2, 2) * x[:2].reshape(2, 1),
                    (dg if isinstance(x, dg.Tensor) else torch).tensor([1, 0])).reshape(1)),
    ("gelu", lambda x: dg.nn.functional.gelu(x) if isinstance(x, dg.Tensor)
     else torch.nn.functional.gelu(x)),
    ("gelu tanh", lambda x: dg.nn.functional.gelu(x, approximate="tanh") if isinstance(x, dg.Tensor)
     else torch.nn.functional.gelu(x, approximate="tanh")),
]


@pytest.mark.parametrize("name, f", HIGHER, ids=[h[0] for h in HIGHER])
def test_second_order(name, f):
    a = np.array([0.3, -1.2, 2.0, 0.7], F64)
    xd, xt = _pair(a, True)
    w = np.array([1.0, -2.0, 0.5, 3.0][: f(xt).numel()] if f(xt).numel() <= 4 else np.ones(f(xt).numel()))
    yd, yt = f(xd), f(xt)
    sd = (yd * dg.tensor(w.reshape(yt.shape))).sum()
    st_ = (yt * torch.tensor(w.reshape(yt.shape))).sum()
    (gd,) = dg.autograd.grad(sd, xd, create_graph=True)
    (gt,) = torch.autograd.grad(st_, xt, create_graph=True)
    assert_same(gd, gt, name + " first")
    (hd,) = dg.autograd.grad((gd * gd).sum(), xd)
    (ht,) = torch.autograd.grad((gt * gt).sum(), xt)
    assert_same(hd, ht, name + " second")


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_backward_create_graph_accumulates():
    a = np.array([0.5, -1.0, 2.0], F64)
    xd, xt = _pair(a, True)
    (xd ** 3).sum().backward(create_graph=True)
    (xt ** 3).sum().backward(create_graph=True)
    assert_same(xd.grad, xt.grad)
    assert xd.grad.requires_grad == xt.grad.requires_grad
    gd, gt = xd.grad, xt.grad
    xd.grad, xt.grad = None, None
    gd.sum().backward()
    gt.sum().backward()
    assert_same(xd.grad, xt.grad)


def test_retain_graph():
    # both accumulate twice the gradient, then refuse a third pass through freed buffers
    res = {}
    for lib in (dg, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = (x.exp() * x).sum()
        y.backward(retain_graph=True)
        y.backward()
        res[lib.__name__] = x.grad
        with pytest.raises(RuntimeError, match="retain_graph"):
            y.backward()
    assert_same(res["dualgraph"], res["torch"])


def test_retain_graph_errors_match():
    # (x * x saves tensors; torch would allow a second pass through e.g. (x + 1).sum(): see
    # the note at the end of this file)
    for lib in (dg, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = (x * x).sum()
        y.backward()
        with pytest.raises(RuntimeError, match="retain_graph"):
            y.backward()
        # autograd.grad frees too
        y = (x * x).sum()
        lib.autograd.grad(y, x)
        with pytest.raises(RuntimeError, match="retain_graph"):
            lib.autograd.grad(y, x)


def test_backward_errors():
    for lib in (dg, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        with pytest.raises(RuntimeError):
            (x * 2).backward()  # non-scalar without gradient
        with pytest.raises(RuntimeError):
            lib.tensor([1.0]).backward()  # does not require grad
        with pytest.raises(RuntimeError):
            lib.tensor([1, 2], requires_grad=True)  # int tensors cannot require grad
        with pytest.raises(RuntimeError):
            x.numpy()
        y = lib.tensor([3.0], requires_grad=True)
        with pytest.raises(RuntimeError):
            lib.autograd.grad((x * 2).sum(), [x, y])  # y unused
        g = lib.autograd.grad((x * 2).sum(), [x, y], allow_unused=True)
        assert g[1] is None


def test_grad_accumulation_and_shared_inputs():
    a = rnd((3,), F32, 42)
    check(lambda x: x * x + x.exp() * x, lambda x: x * x + x.exp() * x, a)
    check(lambda x: (x[0] + x[1:].sum()) * x, lambda x: (x[0] + x[1:].sum()) * x, a)
    xd, xt = _pair(a, True)
    for _ in range(2):
        (xd * 3).sum().backward()
        (xt * 3).sum().backward()
    assert_same(xd.grad, xt.grad)


def test_no_grad_and_detach():
    a = rnd((3,), F32, 43)
    xd, xt = _pair(a, True)
    with dg.no_grad():
        yd = xd * 2
    with torch.no_grad():
        yt = xt * 2
    assert yd.requires_grad == yt.requires_grad == False
    assert (xd.detach() * 2).requires_grad == (xt.detach() * 2).requires_grad
    # comparisons, argmax and integer casts never require grad
    for fd, ft in [(lambda x: x > 0, lambda x: x > 0), (lambda x: x.argmax(), lambda x: x.argmax()),
                   (lambda x: x.long(), lambda x: x.long()), (lambda x: x == x, lambda x: x == x)]:
        assert fd(xd).requires_grad == ft(xt).requires_grad


def test_casts():
    a = rnd((3,), F32, 44) * 3
    check(lambda x: x.double() * x, lambda x: x.double() * x, a)
    check(lambda x: x.float(), lambda x: x.float(), a.astype(F64))
    check(lambda x: x.long(), lambda x: x.long(), a)
    check(lambda x: x.bool(), lambda x: x.bool(), a)
    check(lambda x: x.float(), lambda x: x.float(), np.array([1, 2]))


def test_factories_and_tensor_dtypes():
    for data in [1.5, 2, True, [1, 2], [1.0, 2], [[1.0]], np.float64(2.0), np.int32(3),
                 np.array([1, 2], np.int32),
                 np.array(1.5), [True, False]]:
        assert_same(dg.tensor(data), torch.tensor(data), repr(data))
    for f in ["zeros", "ones", "rand", "randn"]:
        assert getattr(dg, f)(2, 3).dtype == np.float32
        assert getattr(dg, f)(2, 3).shape == getattr(torch, f)(2, 3).shape
        assert getattr(dg, f)((2, 3)).shape == (2, 3)
    assert_same(dg.arange(5), torch.arange(5))
    assert_same(dg.arange(5, dtype=dg.float64), torch.arange(5, dtype=torch.float64))
    assert_same(dg.full((2,), 1.5), torch.full((2,), 1.5))
    # torch.full infers int64 / bool from an int / bool fill value; API.md documents
    # dg.full as float32 by default, so that difference is deliberate and not asserted
    assert dg.full((2,), 3).dtype == np.float32


def test_comparisons():
    a, b = rnd((2, 3), F32, 45, ties=True), rnd((3,), F32, 46, ties=True)
    for op in ["__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"]:
        f2 = lambda x, y, op=op: getattr(x, op)(y)
        f1 = lambda x, op=op: getattr(x, op)(0.0)
        check(f2, f2, a, b, grad=False, what=op)
        check(f1, f1, a, grad=False, what=op)
    n = np.array([np.nan, 1.0], F32)
    check(lambda x: x == x, lambda x: x == x, n, grad=False)
    check(lambda x: x != x, lambda x: x != x, n, grad=False)


# ---- promotion with 0-d tensors, and calls torch refuses -----------------------------------


@pytest.mark.parametrize("dts", [(F32, F64), (F64, F32), (np.int32, np.int64), (np.int64, F64),
                                 (F32, np.int64), (np.bool_, np.int64)], ids=str)
@pytest.mark.parametrize("op", ["add", "mul", "maximum", "where"])
def test_zero_dim_tensor_promotion(dts, op):
    # a 0-d tensor of the same kind does not widen a dimensioned one (float32[n] + float64 0-d
    # is float32 in torch); one of a higher kind decides the kind (int64[n] + float64 0-d)
    a = np.array([1, 2, 3]).astype(dts[0])
    b = np.array(2).astype(dts[1])
    fns = {"add": (lambda x, y: x + y, lambda x, y: x + y),
           "mul": (lambda x, y: y * x, lambda x, y: y * x),
           "maximum": (dg.maximum, torch.maximum),
           "where": (lambda x, y: dg.where(x > 1, x, y), lambda x, y: torch.where(x > 1, x, y))}
    check_or_raises(*fns[op], a, b, what=op)


def test_refused_like_torch():
    a = rnd((2, 3), F32, 47)
    check_raises(lambda x: dg.where(x, x, x), lambda x: torch.where(x, x, x), a)  # non-bool condition
    check_raises(lambda x: x.sum((0, 0)), lambda x: x.sum((0, 0)), a)  # repeated dim
    check_raises(lambda x: x.mean((1, -1)), lambda x: x.mean((1, -1)), a)
    check_raises(lambda x: dg.nn.functional.gelu(x), lambda x: torch.nn.functional.gelu(x), np.array([1, 2]))
    check_raises(lambda x: dg.stack([x, x], 3), lambda x: torch.stack([x, x], 3), a)
    check_raises(lambda x: x.log_softmax(0), lambda x: x.log_softmax(0), np.array([1, 2]))
    logits = rnd((2, 3), F32, 48)
    for bad in ([0, 3], [0, -1]):  # out-of-range classes are an IndexError, not a wrapped index
        check_raises(dg.nn.functional.cross_entropy, torch.nn.functional.cross_entropy, logits, np.array(bad))
    with pytest.raises(ERRORS):
        torch.tensor(2 ** 63)
    with pytest.raises(OverflowError):
        dg.tensor(2 ** 63)


def test_max_dim_with_nan():
    a = np.array([[1.0, np.nan, 3.0], [np.nan, 2.0, np.nan], [1.0, 1.0, 0.0]], F32)
    for d in (0, 1):
        check(lambda x, d=d: x.max(d).values, lambda x, d=d: x.max(d).values, a, what=f"max({d})")
        check(lambda x, d=d: x.min(d).values, lambda x, d=d: x.min(d).values, a, what=f"min({d})")
        for name in ("max", "min"):
            np.testing.assert_array_equal(getattr(dg.tensor(a), name)(d).indices.numpy(),
                                          getattr(torch.tensor(a), name)(d).indices.numpy())
    check(lambda x: x.max(), lambda x: x.max(), a)
    check(lambda x: x.softmax(1), lambda x: x.softmax(1), a)


# Deliberate differences, not asserted:
# - repr prints `dtype=float64`, not `dtype=torch.float64`; dtypes are numpy dtypes.
# - numpy emits RuntimeWarnings (log(0), 1/0, ...) where torch is silent.
# - dg.full infers no integer dtype from its fill value (API.md: factories are float32).
# - view() never fails on a non-contiguous tensor (there are no strides: it is reshape).
# - mse_loss refuses different shapes where torch broadcasts with a warning.
# - cross_entropy takes (N, C) logits and (N,) integer targets only: no unbatched (C,)
#   input, no (N, C, d...) inputs, no ignore_index / label smoothing / class weights; int32
#   targets are accepted (torch wants int64).
# - indexing with a Python bool or a 0-d bool tensor raises (torch adds a dimension);
#   negative slice steps work (numpy) where torch refuses them.
# - dg.maximum / dg.minimum accept a Python scalar (torch wants a Tensor); matmul of two
#   different dtypes raises, as torch, but with TypeError rather than RuntimeError.
# - a second backward without retain_graph=True always raises; torch allows it through
#   graphs whose nodes saved no tensors (e.g. (x + 1).sum(), x[0]).
# - sub with a bool operand, and the pow gradient for a bool exponent: torch refuses both
#   (the latter in its own backward); dualgraph refuses the first and computes the second.


# ---- the foundation: in-place semantics, exact zeros, parity (beside torch) -----------------


def _both(fn):
    """Run ``fn(lib)`` with lib = dualgraph and torch: both results, or both errors."""
    out = []
    for lib in (dg, torch):
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                out.append(("ok", fn(lib)))
        except (RuntimeError, TypeError, IndexError) as e:
            out.append(("raises", type(e).__name__ + ": " + str(e).splitlines()[0]))
    (kd, vd), (kt, vt) = out
    assert kd == kt, f"dualgraph {kd} {vd if kd == 'raises' else ''} / torch {kt} {vt if kt == 'raises' else ''}"
    return vd, vt


def _same_tree(d, t):
    if isinstance(d, str):  # both raised (checked by _both)
        return
    if isinstance(d, (tuple, list)):
        assert len(d) == len(t)
        for a, b in zip(d, t):
            _same_tree(a, b)
    elif d is None or t is None:
        assert d is None and t is None or np.all(_np(d if d is not None else t) == 0)
    else:
        assert_same(d, t)


INPLACE_CASES = {
    "saved buf written between two uses": lambda lib: _inplace_buf(lib),
    "unsaved input written": lambda lib: _inplace_unsaved(lib),
    "saved output written": lambda lib: _inplace_saved_out(lib),
    "write through a view": lambda lib: _inplace_view(lib),
    "setitem on a plain tensor": lambda lib: _inplace_setitem(lib),
    "copy_ cuts history": lambda lib: _inplace_copy(lib),
    "fill_ cuts history": lambda lib: _inplace_fill(lib),
    "leaf += outside no_grad": lambda lib: _inplace_leaf(lib),
    "sibling view re-derived": lambda lib: _inplace_sibling(lib),
    "int += float": lambda lib: _inplace_int(lib),
}


def _leaf(lib, v):
    return lib.tensor(v, requires_grad=True)


def _inplace_buf(lib):
    w = _leaf(lib, [1.0, 2.0])
    buf = lib.zeros(2)
    buf[:] = lib.tensor([3.0, 4.0])
    a = buf * w
    buf[:] = lib.tensor([10.0, 20.0])
    (a + buf * w).sum().backward()
    return w.grad


def _inplace_unsaved(lib):
    a = _leaf(lib, [1.0, 2.0])
    y = a * 1
    z = y + 1
    y *= 3
    (z.sum() + y.sum()).backward()
    return a.grad, y, z


def _inplace_saved_out(lib):
    x = _leaf(lib, [1.0, 2.0])
    y = x.exp()
    y += 1
    y.sum().backward()
    return x.grad


def _inplace_view(lib):
    w = _leaf(lib, [1.0, 1.0, 1.0, 1.0])
    y = w * 2
    v = y[1:3]
    v += 10
    (y * y).sum().backward()
    return y, w.grad


def _inplace_setitem(lib):
    w = _leaf(lib, [1.0, 2.0, 3.0])
    x = lib.zeros(3)
    x[1:] = w[1:] * 3
    (x * x).sum().backward()
    return x, w.grad


def _inplace_copy(lib):
    w, s = _leaf(lib, [1.0, 2.0]), _leaf(lib, [5.0, 6.0])
    y = w * 2
    y.copy_(s * 3)
    y.sum().backward()
    return y, w.grad, s.grad


def _inplace_fill(lib):
    w = _leaf(lib, [1.0, 2.0])
    y = w * 2
    y.fill_(7.0)
    (y * w).sum().backward()
    return y, w.grad


def _inplace_leaf(lib):
    w = _leaf(lib, [1.0, 2.0])
    w += 1


def _inplace_sibling(lib):
    w, u = _leaf(lib, [1.0, 2.0, 3.0]), _leaf(lib, [10.0])
    y = w * 1
    a, b = y[0:2], y[1:3]
    a[1:] = u * 2
    (b * b).sum().backward()
    return b, w.grad, u.grad


def _inplace_int(lib):
    x = lib.tensor([1, 2])
    x += 0.5


@pytest.mark.parametrize("case", sorted(INPLACE_CASES))
def test_inplace_semantics_as_torch(case):
    d, t = _both(INPLACE_CASES[case])
    _same_tree(d, t)


def test_exact_zeros_as_torch():
    def relu_inf(lib):
        x = _leaf(lib, [-1.0, 2.0, 3.0])
        (lib.relu(x) * float("inf")).sum().backward()
        return x.grad

    def maximum_inf(lib):
        a, b = _leaf(lib, [1.0, 5.0]), _leaf(lib, [3.0, 2.0])
        (lib.maximum(a, b) * float("inf")).sum().backward()
        return a.grad, b.grad

    def where_nan(lib):
        x = _leaf(lib, [1.0, 2.0])
        (lib.where(lib.tensor([True, False]), x, lib.tensor(0.0)) * float("nan")).sum().backward()
        return x.grad

    for fn in (relu_inf, maximum_inf, where_nan):
        _same_tree(*_both(fn))


def test_grad_of_constant_and_int_output_as_jax():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    x = np.array([np.inf, np.nan, -1.0], np.float32)
    want = jax.grad(lambda x: jnp.float32(3.0) + 0 * jnp.sum(jnp.zeros_like(x)))(x)
    got = dg.grad(lambda x: dg.tensor(3.0))(dg.tensor(x))
    np.testing.assert_array_equal(got.numpy(), np.asarray(want))
    with pytest.raises(TypeError):
        jax.grad(lambda x: jnp.sum(x > 0))(x)
    with pytest.raises(TypeError):
        dg.grad(lambda x: (x > 0).sum())(dg.tensor(x))


def test_parity_fixes_as_torch():
    def hooks(lib):
        x = _leaf(lib, [1.0, 2.0])
        h = x * 2
        h.retain_grad()
        h.register_hook(lambda g: g * 10)
        h.retain_grad()
        h.sum().backward()
        assert h.retains_grad
        return h.grad, x.grad

    def maxdim(lib):
        x = _leaf(lib, [[1.0, 5.0], [3.0, 2.0]])
        r = x.max(dim=1)
        r.values.sum().backward()
        return r.values, r.indices, x.grad

    def scalars(lib):
        t = lib.tensor([1.0, 4.0])
        return (t / np.float64(2.0), t * np.sqrt(4), lib.tensor([1, 2]) * np.int64(8),
                lib.where(lib.tensor([True, False]), 1.0, 0.0))

    def mismatch(lib):
        return lib.ones(2) + lib.ones(3)

    for fn in (hooks, maxdim, scalars, mismatch):
        _same_tree(*_both(fn))


def _run_program(lib, prog, init):
    """Run a random in-place program (see test_random_inplace_programs_as_torch) on ``lib``;
    returns ("ok", values, grads) or ("raises", step, message)."""
    w = lib.tensor(init[0], requires_grad=True)
    u = lib.tensor(init[1], requires_grad=True)
    c = lib.tensor(init[2])
    ts = [w, u, c]
    step = -1
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            for step, (op, i, j) in enumerate(prog):
                if op in _WRITES and i % 8:  # writes mostly to non-leaves (a leaf write raises)
                    a = ts[2 + i % (len(ts) - 2)]
                else:
                    a = ts[i % len(ts)]
                same = [t for t in ts if tuple(t.shape) == tuple(a.shape)]
                b = same[j % len(same)]
                if op == "mul":
                    ts.append(a * b)
                elif op == "add":
                    ts.append(a + b)
                elif op == "exp":
                    ts.append((a * 0.1).exp())
                elif op == "tanh":
                    ts.append(a.tanh())
                elif op == "view":
                    if a.shape[0] >= 3:
                        ts.append(a[1:3])
                elif op == "iadd":
                    a += b
                elif op == "imul":
                    a *= b
                elif op == "mul_":
                    a.mul_(1.5)
                elif op == "setitem":
                    a[0:1] = b[0:1]
                elif op == "fill":
                    a.fill_(0.5)
                elif op == "copy":
                    a.copy_(b)
                elif op == "zero":
                    a.zero_()
            loss = None
            for k, t in enumerate(ts):
                if t.requires_grad:
                    term = (t * (k + 1)).sum()
                    loss = term if loss is None else loss + term
            step = len(prog)
            if loss is not None:
                loss.backward()
    except RuntimeError as e:
        msg = str(e).splitlines()[0]
        if lib is torch and "leaf Variable" in msg and all(a is not x for x in (w, u)):
            # torch quirk: a write to a view made while its base was a leaf that did not
            # require grad raises once the base requires grad (dualgraph records it)
            return ("quirk", step, msg)
        return ("raises", step, msg)
    return ("ok", [_np(t) for t in ts], [None if x.grad is None else _np(x.grad) for x in (w, u)])


_WRITES = {"iadd", "imul", "mul_", "setitem", "fill", "copy", "zero"}
_PROG_OPS = ["mul", "add", "exp", "tanh", "view", "view", "iadd", "imul", "mul_", "setitem", "fill", "copy",
             "zero"]


def test_random_inplace_programs_as_torch():
    """Hypothesis programs mixing out-of-place ops, views and in-place writes: dualgraph and
    torch give the same values and gradients, or raise at the same step."""
    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import strategies as st

    instr = st.tuples(st.sampled_from(_PROG_OPS), st.integers(0, 30), st.integers(0, 30))

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(instr, min_size=1, max_size=12), st.integers(0, 2**16))
    def run(prog, seed):
        rng = np.random.default_rng(seed)
        init = [rng.uniform(-1, 1, 4).astype(np.float32) for _ in range(3)]
        t = _run_program(torch, prog, init)
        assume(t[0] != "quirk")
        d = _run_program(dg, prog, init)
        assert d[0] == t[0], f"{prog}: dualgraph {d} / torch {t}"
        if d[0] == "raises":
            assert d[1] == t[1], f"{prog}: dualgraph raised at step {d[1]} ({d[2]}), torch at {t[1]} ({t[2]})"
            return
        for k, (a, b) in enumerate(zip(d[1], t[1])):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=f"{prog}: tensor {k}")
        for k, (a, b) in enumerate(zip(d[2], t[2])):
            a = np.zeros(4, np.float32) if a is None else a
            b = np.zeros(4, np.float32) if b is None else b
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=f"{prog}: grad {k}")

    run()
