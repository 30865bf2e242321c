"""Table-driven op tests: every entry of ``tests/op_table.OPS`` is checked forward against
its numpy reference, and (if differentiable) by finite differences in float64, first and
second order; binary ops also against hand-derived broadcasting gradients."""
import numpy as np
import pytest

import dualgraph as dg
from dualgraph.ops import PRIMITIVES, Primitive
from dualgraph.ops import primitives as P

from .op_table import F64, OPS, OPS_BY_NAME, Sample, to_tensors

DIFF_OPS = [o for o in OPS if o.differentiable]
SECOND_ORDER_OPS = [o for o in DIFF_OPS if o.second_order]


def _ids(infos):
    return [o.name for o in infos]


def _forward_cases():
    for info in OPS:
        for dt in info.dtypes:
            yield pytest.param(info, dt, id=f"{info.name}-{np.dtype(dt).name}")


def test_table_has_one_entry_per_primitive():
    covered = {o.name for o in OPS if o.kind == "primitive"}
    # the primitives declared in dualgraph.ops.primitives; control flow (cond, while) and the
    # tracer's own (const) live in dualgraph.static and are tested there
    wanted = {v.name for v in vars(P).values() if isinstance(v, Primitive)}
    assert wanted - covered == set(), f"primitives without an op-table entry: {sorted(wanted - covered)}"
    assert covered - set(PRIMITIVES) == set(), "op-table primitive entries that are not registered"


def test_table_samples_are_seeded():
    for info in OPS:
        dt = info.dtypes[0]
        a, b = info.samples(dt, seed=3), info.samples(dt, seed=3)
        assert len(a) == len(b) > 0, info.name
        for s, t in zip(a, b):
            for x, y in zip(s.args, t.args):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("info, dtype", list(_forward_cases()))
def test_forward_matches_numpy(info, dtype):
    for s in info.samples(dtype):
        expected = np.asarray(info.ref(*s.args, **s.kwargs))
        out = info.op(*to_tensors(s.args), **s.kwargs)
        assert isinstance(out, dg.Tensor), s.desc
        got = out.numpy()
        assert got.shape == expected.shape, f"{s.desc}: shape {got.shape} != {expected.shape}"
        assert got.dtype == expected.dtype, f"{s.desc}: dtype {got.dtype} != {expected.dtype}"
        assert not out.requires_grad
        if np.issubdtype(expected.dtype, np.floating):
            np.testing.assert_allclose(got, expected, err_msg=s.desc, **info.tol(dtype))
        else:
            np.testing.assert_array_equal(got, expected, err_msg=s.desc)


def _f64_args(s: Sample):
    return tuple(
        a.astype(np.float64) if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating) else a
        for a in s.args
    )


def _grad_samples(info):
    return [s for s in info.samples(F64) if s.gradcheck and s.diff_indices()]


@pytest.mark.parametrize("info", DIFF_OPS, ids=_ids(DIFF_OPS))
def test_gradcheck_first_order(info):
    samples = _grad_samples(info)
    assert samples, f"{info.name}: no sample to gradcheck"
    for s in samples:
        diff = s.diff_indices()
        inputs = to_tensors(_f64_args(s), requires_grad=diff)
        out = info.op(*inputs, **s.kwargs)
        assert out.requires_grad, s.desc
        if not any(out is t for t in inputs):  # x.double() of a float64 x is x, as in torch
            assert type(out.grad_fn).__name__.endswith("Backward"), s.desc
        assert dg.autograd.gradcheck(
            lambda *xs: info.op(*xs, **s.kwargs), inputs, atol=info.grad_atol, rtol=info.grad_rtol
        ), s.desc


def _first_gradient_fn(info, s, inputs):
    """x -> d<w, op(x)>/dx with create_graph=True: its gradcheck checks second order."""
    diff = s.diff_indices()
    with dg.no_grad():
        shape = info.op(*inputs, **s.kwargs).shape
    w = dg.tensor(np.random.default_rng(7).uniform(0.5, 1.5, size=shape))

    def first_grad(*xs):
        with dg.enable_grad():  # gradcheck evaluates finite differences under no_grad
            out = info.op(*xs, **s.kwargs)
            gs = dg.autograd.grad(
                (out * w).sum(), [xs[i] for i in diff], create_graph=True, allow_unused=True
            )
        return tuple(dg.zeros(xs[i].shape, dtype=F64) if g is None else g for g, i in zip(gs, diff))

    return first_grad


@pytest.mark.parametrize("info", SECOND_ORDER_OPS, ids=_ids(SECOND_ORDER_OPS))
def test_gradcheck_second_order(info):
    for s in _grad_samples(info):
        inputs = to_tensors(_f64_args(s), requires_grad=s.diff_indices())
        fn = _first_gradient_fn(info, s, inputs)
        grads = fn(*inputs)
        for g, i in zip(grads, s.diff_indices()):
            assert g.shape == inputs[i].shape, s.desc
        assert dg.autograd.gradcheck(fn, inputs, atol=info.grad_atol, rtol=info.grad_rtol), s.desc


def test_gradcheck_can_fail():
    """The checker itself must catch a wrong derivative (guards the two tests above)."""
    x = dg.tensor(np.array([0.3, -0.7]), requires_grad=True)

    def wrong(t):  # value of t*t, derivative of 3*t*t
        return t * t + (t * t * 2 - (t * t * 2).detach())

    with pytest.raises(RuntimeError, match="mismatch"):
        dg.autograd.gradcheck(wrong, [x])


NON_DIFF = [o for o in OPS if not o.differentiable and not o.name.startswith("bitwise_")]  # no floats


@pytest.mark.parametrize("info", NON_DIFF, ids=_ids(NON_DIFF))
def test_nondifferentiable_outputs_do_not_require_grad(info):
    for s in info.samples(F64):
        req = tuple(i for i, a in enumerate(s.args)
                    if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating))
        out = info.op(*to_tensors(_f64_args(s), requires_grad=req), **s.kwargs)
        if not np.issubdtype(out.dtype, np.floating) or info.name in ("sign", "full", "dynamic_zeros"):
            assert not out.requires_grad, s.desc
            assert out.grad_fn is None


# ---- broadcasting gradients against hand-derived partials -------------------------------

# d op / d x, d op / d y in numpy, before summing back to each input's shape
PARTIALS = {
    "add": lambda x, y: (np.ones_like(x + y), np.ones_like(x + y)),
    "sub": lambda x, y: (np.ones_like(x + y), -np.ones_like(x + y)),
    "mul": lambda x, y: (y + 0 * x, x + 0 * y),
    "div": lambda x, y: (1 / y + 0 * x, -x / y**2),
    "pow": lambda x, y: (y * x ** (y - 1), x**y * np.log(x)),
    "maximum": lambda x, y: ((x > y) + 0.0 * y, (y > x) + 0.0 * x),
    "minimum": lambda x, y: ((x < y) + 0.0 * y, (y < x) + 0.0 * x),
}


def _sum_to(g, shape):
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, d in enumerate(shape):
        if d == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


@pytest.mark.parametrize("name", sorted(PARTIALS))
def test_broadcasting_gradients_sum_back_to_input_shape(name):
    info = OPS_BY_NAME[name]
    n_broadcast = 0
    for s in info.samples(F64):
        x, y = s.args
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
            continue
        n_broadcast += x.shape != y.shape
        tx, ty = to_tensors((x, y), requires_grad=(0, 1))
        out = info.op(tx, ty)
        g = np.random.default_rng(1).normal(size=out.shape)
        out.backward(dg.tensor(g))
        dx, dy = PARTIALS[name](x, y)
        assert tx.grad.shape == x.shape and ty.grad.shape == y.shape, s.desc
        np.testing.assert_allclose(tx.grad.numpy(), _sum_to(g * dx, x.shape), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ty.grad.numpy(), _sum_to(g * dy, y.shape), rtol=1e-10, atol=1e-12)
    assert n_broadcast >= 3


def test_broadcasting_where_and_matmul_gradient_shapes():
    c = dg.tensor(np.array([True, False, True]))
    x = dg.tensor(np.ones((2, 1), np.float64), requires_grad=True)
    y = dg.tensor(np.float64(2.0), requires_grad=True)
    dg.where(c, x, y).sum().backward()
    assert x.grad.shape == (2, 1) and y.grad.shape == ()
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0], [2.0]])
    assert y.grad.item() == 2.0

    a = dg.tensor(np.ones((1, 3, 4)), requires_grad=True)
    b = dg.tensor(np.ones((5, 4, 2)), requires_grad=True)
    (a @ b).sum().backward()
    assert a.grad.shape == (1, 3, 4) and b.grad.shape == (5, 4, 2)
    np.testing.assert_array_equal(a.grad.numpy(), np.full((1, 3, 4), 10.0))  # 5 batches x 2 columns
    np.testing.assert_array_equal(b.grad.numpy(), np.full((5, 4, 2), 3.0))


# ---- property-based: random broadcastable shapes ----------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    name=st.sampled_from(sorted(PARTIALS)),
    seed=st.integers(0, 2**16),
)
def test_property_binary_ops_broadcast_forward_and_gradient(shapes, name, seed):
    rng = np.random.default_rng(seed)
    xs, ys = shapes.input_shapes
    x = rng.uniform(0.5, 2.0, xs)  # positive: valid for pow and div
    y = rng.uniform(0.5, 2.0, ys) * rng.choice([-1.0, 1.0], ys) if name != "pow" else rng.uniform(-1, 2, ys)
    info = OPS_BY_NAME[name]
    tx, ty = to_tensors((np.asarray(x), np.asarray(y)), requires_grad=(0, 1))
    out = info.op(tx, ty)
    np.testing.assert_allclose(out.detach().numpy(), info.ref(x, y), rtol=1e-12)
    assert out.shape == shapes.result_shape
    out.sum().backward()
    dx, dy = PARTIALS[name](np.asarray(x), np.asarray(y))
    assert tx.grad.shape == xs and ty.grad.shape == ys
    np.testing.assert_allclose(tx.grad.numpy(), _sum_to(np.ones(out.shape) * dx, xs), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ty.grad.numpy(), _sum_to(np.ones(out.shape) * dy, ys), rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                 elements=st.floats(-10, 10, allow_nan=False)),
    data=st.data(),
)
def test_property_sum_mean_over_random_dims(x, data):
    dims = data.draw(st.lists(st.integers(-x.ndim, x.ndim - 1), min_size=1, max_size=x.ndim, unique_by=lambda d: d % x.ndim))
    keep = data.draw(st.booleans())
    t = dg.tensor(x, requires_grad=True)
    s = t.sum(dim=tuple(dims), keepdim=keep)
    axes = tuple(d % x.ndim for d in dims)
    np.testing.assert_allclose(s.detach().numpy(), x.sum(axis=axes, keepdims=keep), rtol=1e-12, atol=1e-12)
    m = t.mean(dim=tuple(dims), keepdim=keep)
    np.testing.assert_allclose(m.detach().numpy(), x.mean(axis=axes, keepdims=keep), rtol=1e-12, atol=1e-12)
    (s.sum() + m.sum()).backward()
    n = int(np.prod([x.shape[a] for a in axes]))
    np.testing.assert_allclose(t.grad.numpy(), np.full(x.shape, 1 + 1 / n))
