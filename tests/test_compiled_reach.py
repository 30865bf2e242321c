"""Compiled gradients give None exactly where eager code does (compile/aot.py,
static/reach.py): an input that only a branch never taken, or a loop body that never ran,
reads gets no gradient (``.grad`` stays None, ``autograd.grad(allow_unused=True)`` gives
None), and an output whose history reaches no input that requires grad does not require
grad, at any nesting depth of ``cond`` and ``while``, decided per call by one kernel.

Each scenario is one compiled function called with many inputs (one forward and one
backward kernel), run through numba and as Python source."""
import numpy as np
import pytest

import dualgraph as dg
from dualgraph.compile import kernel as kernel_mod
from dualgraph.static import verify
from tests.test_compiled_grad import _PythonKernel


@pytest.fixture(autouse=True)
def _serial_kernels(monkeypatch):
    monkeypatch.setenv("DUALGRAPH_PARALLEL", "0")  # (prange variants are tested elsewhere)


@pytest.fixture(params=["numba", "python"])
def mode(request, monkeypatch):
    if request.param == "python":
        monkeypatch.setattr(kernel_mod, "Kernel", _PythonKernel)
    return request.param


@pytest.fixture
def python_kernels_only(monkeypatch):
    monkeypatch.setattr(kernel_mod, "Kernel", _PythonKernel)


def _plans(cf):
    return [e.aot for e in cf._cache.values() if e.aot]


def _plan(cf):
    (plan,) = _plans(cf)
    return plan


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _run(fn, arrays, rg, used=None, create_graph=False):
    """Call ``fn`` on tensors (``rg``: the positions that require grad) and differentiate
    the sum of squares of the outputs in ``used`` (default: all) that require grad:
    ``(outputs' requires_grad, autograd.grad results, .grad of the leaves)``; with
    ``create_graph`` the ``.grad`` are second-order (of the sum of squared gradients)."""
    ts = [dg.tensor(a, requires_grad=i in rg) for i, a in enumerate(arrays)]
    outs = _flat(fn(*ts))
    flags = tuple(o.requires_grad for o in outs)
    picked = [o for k, o in enumerate(outs) if (used is None or k in used) and o.requires_grad]
    leaves = [ts[i] for i in sorted(rg)]
    if not picked:
        return flags, None, None
    loss = sum(((o * o).sum() for o in picked[1:]), (picked[0] * picked[0]).sum())
    gs = dg.autograd.grad(loss, leaves, allow_unused=True, retain_graph=True, create_graph=create_graph)
    if create_graph:
        second = [(g * g).sum() for g in gs if g is not None and g.requires_grad]
        if second:
            sum(second[1:], second[0]).backward()
    else:
        loss.backward()
    return flags, list(gs), [t.grad for t in leaves]


def _same(got, want, label):
    assert got[0] == want[0], f"{label}: outputs require grad {got[0]}, eagerly {want[0]}"
    if want[1] is None:
        assert got[1] is None, label
        return
    for what, gs, ws in (("autograd.grad", got[1], want[1]), (".grad", got[2], want[2])):
        for k, (g, w) in enumerate(zip(gs, ws)):
            assert (g is None) == (w is None), f"{label} {what} leaf {k}: {g} vs eager {w}"
            if g is not None:
                np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=1e-5, atol=1e-6,
                                           err_msg=f"{label} {what} leaf {k}")


def _check(fn, cases, rgs, useds=(None,)):
    """eager == compiled for every case, requires-grad subset and differentiated outputs,
    first order and with create_graph; one trace (one plan) per requires-grad subset, used
    by all the cases; verified graphs.  Returns the plan of the first subset."""
    cf = dg.compile(fn, fullgraph=True)
    for name, arrays in cases:
        for rg in rgs:
            for used in useds:
                for cg in (False, True):
                    label = f"{name} rg={rg} used={used} create_graph={cg}"
                    _same(_run(cf, arrays, rg, used, cg), _run(fn, arrays, rg, used, cg), label)
    assert cf.cache_info()["traces"] == len(rgs)
    plans = _plans(cf)
    for plan in plans:
        verify(plan.forward)
        verify(plan.backward)
    return plans[0]


F = np.float32


def _v(*xs):
    return np.array(xs, F)


# ----------------------------------------------------------------------------------------
# a cond in a loop body
# ----------------------------------------------------------------------------------------


def loop_cond(s, x, y, n):
    def body(i, c):
        return dg.cond(s[i] > 0, lambda c, x: c * x, lambda c, x: c + 1.0, c, x)

    return dg.fori_loop(0, n, body, y)


def test_cond_in_a_loop_body(mode):
    x, y = _v(2.0, -0.5), _v(1.0, 3.0)
    cases = [
        ("never taken", [_v(-1, -1, -1), x, y, np.array(3)]),
        ("taken in iteration 1", [_v(-1, 1, -1), x, y, np.array(3)]),
        ("taken in the last iteration", [_v(-1, -1, 1), x, y, np.array(3)]),
        ("taken but the loop stops before", [_v(-1, -1, 1), x, y, np.array(2)]),
        ("zero trips", [_v(1, 1, 1), x, y, np.array(0)]),
    ]
    plan = _check(loop_cond, cases, [(1, 2), (1,), (2,)])
    assert plan.reach.n_flags >= 1
    # spelled out: never taken, x gets no gradient and y gets ones (three times `c + 1`)
    xs, ys = dg.tensor(x, requires_grad=True), dg.tensor(y, requires_grad=True)
    cf = dg.compile(loop_cond, fullgraph=True)
    cf(dg.tensor(_v(-1, -1, -1)), xs, ys, np.array(3)).sum().backward()
    assert xs.grad is None
    np.testing.assert_array_equal(ys.grad.numpy(), [1.0, 1.0])
    # with only x requiring grad, the output does not require grad (as eagerly)
    assert not cf(dg.tensor(_v(-1, -1, -1)), xs, dg.tensor(y), np.array(3)).requires_grad


def test_dg_grad_of_a_compiled_function_is_zero_where_eager_gives_none(mode):
    cf = dg.compile(loop_cond, fullgraph=True)
    for s in (_v(-1, -1, -1), _v(1, -1, 1)):
        args = (dg.tensor(s), dg.tensor(_v(2.0, -0.5)), dg.tensor(_v(1.0, 3.0)), np.array(3))
        f = lambda *a: (loop_cond(*a) ** 2).sum()  # noqa: E731
        c = lambda *a: (cf(*a) ** 2).sum()  # noqa: E731
        for want, got in zip(dg.grad(f, argnums=(1, 2))(*args), dg.grad(c, argnums=(1, 2))(*args)):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------------------
# a cond in a cond branch
# ----------------------------------------------------------------------------------------


def nested(p, q, x, y, z):
    def outer_true(x, y, z):
        return dg.cond(q.sum() > 0, lambda x, y, z: x * 2.0, lambda x, y, z: dg.tanh(y), x, y, z)

    return dg.cond(p.sum() > 0, outer_true, lambda x, y, z: z * 3.0, x, y, z)


def test_cond_in_a_cond_branch(mode):
    x, y, z = _v(1.0, -2.0), _v(0.5, 3.0), _v(-1.0, 2.0)
    cases = [(f"p={sp} q={sq}", [_v(sp), _v(sq), x, y, z]) for sp in (1, -1) for sq in (1, -1)]
    plan = _check(nested, cases, [(2, 3, 4), (2,), (3,), (4,), (2, 3)])
    assert plan.reach.n_flags >= 1


# ----------------------------------------------------------------------------------------
# while loops: zero or more trips; carries whose dependencies change from trip to trip
# ----------------------------------------------------------------------------------------


def wloop(x, w, n):
    def cond(st):
        return st[0] < n

    def body(st):
        i, h, a, b = st
        return i + 1, dg.tanh(h * w), b, a * 2.0  # a and b swap every trip

    _, h, a, b = dg.while_loop(cond, body, (0, x, x, w))
    return h, a, b


def test_while_loop_zero_or_more_trips(mode):
    x, w = _v(0.5, -1.5), _v(0.7, 0.2)
    cases = [(f"{n} trips", [x, w, np.array(n)]) for n in (0, 1, 2, 3)]
    plan = _check(wloop, cases, [(0, 1), (0,), (1,)], useds=(None, (0,), (1,), (2,)))
    assert plan.reach.n_flags >= 1


def test_a_loop_that_runs_zero_times_gives_the_body_inputs_no_gradient():
    cf = dg.compile(wloop, fullgraph=True)
    x = dg.tensor(_v(0.5, -1.5), requires_grad=True)
    w = dg.tensor(_v(0.7, 0.2), requires_grad=True)
    h, a, b = cf(x, w, np.array(0))
    assert h.requires_grad and a.requires_grad and b.requires_grad
    (h.sum() + a.sum()).backward()
    assert w.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def deep(s, x, y, z, n, m):
    """A cond in a loop in a cond branch in a loop: x is read four levels down."""

    def inner(j, c):
        return dg.cond(s[j] > 1, lambda c: c * x, lambda c: c - 1.0, c)

    def body(i, c):
        return dg.cond(s[i] > 0, lambda c: dg.fori_loop(0, m, inner, c) * y, lambda c: c * 0.5, c)

    return dg.fori_loop(0, n, body, z)


def test_deeper_nesting(python_kernels_only):
    x, y, z = _v(2.0, -0.5), _v(1.5, 0.5), _v(1.0, 3.0)
    cases = [(f"s={sv} n={n} m={m}", [_v(*sv), x, y, z, np.array(n), np.array(m)])
             for sv in ((-1, -1, -1), (1, 1, 1), (2, -1, 1), (1, 2, -1))
             for n, m in ((3, 3), (3, 0), (0, 3), (1, 1))]
    _check(deep, cases, [(1, 2, 3), (1,), (1, 2)])


# ----------------------------------------------------------------------------------------
# what costs nothing: no flags where the dependencies are known statically
# ----------------------------------------------------------------------------------------


def test_static_dependencies_add_no_outputs(python_kernels_only):
    def plain(x, w):
        return dg.tanh(x * w), x.sum()

    def newton(a):  # the carry depends on `a` before the loop and after every trip
        return dg.while_loop(lambda x: (x * x - a).abs().max() > 1e-4, lambda x: 0.5 * (x + a / x), a)

    for fn, arrays in ((plain, [_v(1, 2), _v(3, 4)]), (newton, [_v(2.0, 9.0)])):
        cf = dg.compile(fn, fullgraph=True)
        got = _run(cf, arrays, set(range(len(arrays))))
        _same(got, _run(fn, arrays, set(range(len(arrays)))), fn.__name__)
        plan = _plan(cf)
        assert plan.reach.n_flags == 0
        assert len(plan.forward.outputs) == plan.n_out + plan.n_res


def test_an_output_without_cotangent_gives_its_inputs_no_gradient(python_kernels_only):
    """Eagerly the outputs are separate histories: differentiating one of them leaves the
    inputs only the others read without a gradient (one multi-output node here)."""

    def two(x, y):
        return x * 2.0, dg.tanh(y) + x

    cases = [("", [_v(1, 2), _v(0.5, -1)])]
    _check(two, cases, [(0, 1), (1,)], useds=(None, (0,), (1,)))
