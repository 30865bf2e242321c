"""cond / while_loop / fori_loop: values and reverse-mode gradients, eager and traced.

The oracle of every control-flow operator is the plain Python control flow it stands for
(STYLE.md #10): each program here is written twice, once with ``dg.cond``/``dg.while_loop``/
``dg.fori_loop`` and once with Python ``if``/``while``/``for``, and the gradients of the
traced program (``dg.trace(dg.grad(f))`` and ``grad_graph(dg.trace(f))``) must equal the
eager tape's gradients of the plain loop.
"""
import inspect
import os

import numpy as np
import pytest

import dualgraph as dg
from dualgraph.static import (
    ControlFlowError,
    GraphExecutionError,
    TracerError,
    grad_graph,
    verify,
)

HERE = os.path.abspath(__file__)
rng = np.random.default_rng(1234)


def t64(a, requires_grad=False):
    return dg.tensor(np.asarray(a, np.float64), requires_grad=requires_grad)


def np_(t):
    return t.detach().numpy()


def tape_grads(f, args, argnums):
    """Gradients of ``f`` at ``args`` by the eager tape (``backward`` on leaves)."""
    leaves = [a.detach().requires_grad_() if i in argnums else a for i, a in enumerate(args)]
    out = f(*leaves)
    assert out.shape == ()
    out.backward()
    return [np_(leaves[i].grad) if leaves[i].grad is not None else np.zeros(leaves[i].shape)
            for i in argnums]


def assert_grads_match(f_dg, f_py, args, argnums=(0,), rtol=1e-9, atol=1e-12):
    """Traced gradients of ``f_dg`` (both routes) == eager tape gradients of ``f_py``."""
    argnums = tuple(argnums)
    ref = tape_grads(f_py, args, argnums)
    # the dg program differentiated eagerly agrees with the plain Python one
    eager = dg.grad(f_dg, argnums=argnums)(*args)
    # route 1: the backward equations emitted by the tape under the tracer
    g1 = verify(dg.trace(dg.grad(f_dg, argnums=argnums), *args))
    traced = g1(*args)
    # route 2: a backward graph built from the forward graph
    fwd = verify(dg.trace(f_dg, *args))
    g2 = verify(grad_graph(fwd, argnums=argnums))
    value, *from_graph = g2(*args)
    np.testing.assert_allclose(np_(value), np_(f_py(*args)), rtol=rtol, atol=atol)
    np.testing.assert_allclose(np_(fwd(*args)), np_(f_py(*args)), rtol=rtol, atol=atol)
    for k, r in enumerate(ref):
        for name, got in (("eager dg", eager[k]), ("trace(grad)", traced[k]),
                          ("grad_graph", from_graph[k])):
            np.testing.assert_allclose(np_(got), r, rtol=rtol, atol=atol,
                                       err_msg=f"{name}, argument {argnums[k]}")
    return ref


def count_eqns(graph):
    """Equations in ``graph`` and all its sub-graphs."""
    n = 0
    for e in graph.eqns:
        n += 1
        for v in e.params.values():
            if isinstance(v, dg.Graph):
                n += count_eqns(v)
    return n


# ----------------------------------------------------------------------------------------
# cond
# ----------------------------------------------------------------------------------------


def cond_dg(x, y):
    # y is captured from the closure by the true branch only
    return dg.cond(
        (x * x).sum() > 1.0,
        lambda a: (dg.tanh(a) * y).sum() + dg.exp(y).sum(),
        lambda a: (a * a * a).sum() - (a / 3).sum(),
        x,
    )


def cond_py(x, y):
    if (x * x).sum() > 1.0:
        return (dg.tanh(x) * y).sum() + dg.exp(y).sum()
    return (x * x * x).sum() - (x / 3).sum()


@pytest.mark.parametrize("xv", [[0.9, -0.8, 0.4], [0.1, 0.2, -0.3]], ids=["true", "false"])
def test_cond_gradients_both_branches(xv):
    x, y = t64(xv), t64([0.5, -1.5, 2.0])
    taken = (np.asarray(xv) ** 2).sum() > 1.0
    ref = assert_grads_match(cond_dg, cond_py, (x, y), argnums=(0, 1))
    # the branch not taken contributes nothing: y's gradient is zero on the false side
    assert np.any(ref[1] != 0) == taken


def test_cond_gradcheck_traced_and_eager():
    for xv in ([0.9, -0.8, 0.4], [0.1, 0.2, -0.3]):
        x, y = t64(xv, True), t64([0.5, -1.5, 2.0], True)
        assert dg.autograd.gradcheck(cond_dg, [x, y])
        g = dg.trace(cond_dg, x.detach(), y.detach())
        assert dg.autograd.gradcheck(g, [x, y])


def test_cond_one_branch_ignores_an_operand():
    def f(x, y):
        return dg.cond(x.sum() > 0, lambda a, b: (a * 2).sum(), lambda a, b: (a * b).sum(), x, y)

    def f_py(x, y):
        return (x * 2).sum() if x.sum() > 0 else (x * y).sum()

    for xv in ([1.0, 2.0], [-1.0, -2.0]):
        assert_grads_match(f, f_py, (t64(xv), t64([3.0, 4.0])), argnums=(0, 1))


def test_cond_int_and_float_outputs_gradients():
    # a branch returning an int alongside a float: only the float output carries a cotangent
    def f(x):
        n, v = dg.cond(x.sum() > 0, lambda a: (dg.tensor(1), a * 3), lambda a: (dg.tensor(2), a * a), x)
        return (v * n.double()).sum()

    def f_py(x):
        n, v = (1, x * 3) if x.sum() > 0 else (2, x * x)
        return (v * n).sum()

    for xv in ([1.0, 2.0], [-1.0, -2.0]):
        assert_grads_match(f, f_py, (t64(xv),))


def test_cond_pytree_operands_and_results_and_no_operands():
    x = t64([0.3, -0.2, 0.5])

    def f(x):
        a = dg.cond(x.sum() > 0, lambda: x * 2, lambda: x + 1)  # captures only
        b, c = dg.cond(x.sum() != 0, lambda u: (u, u.sum()), lambda u: (u * 0, u.max()), a)
        d = dg.cond(x.sum() > 0, lambda u: {"k": u}, lambda u: {"k": -u}, x)["k"]
        e = dg.cond(True, lambda u: u * 3, lambda u: u, x)  # static predicate: no cond
        return (a + b + c + d + e).sum()

    def f_py(x):
        a = x * 2 if x.sum() > 0 else x + 1
        b, c = (a, a.sum()) if x.sum() != 0 else (a * 0, a.max())
        d = x if x.sum() > 0 else -x
        return (a + b + c + d + x * 3).sum()

    g = verify(dg.trace(f, x))
    assert [op.name for op in g.ops].count("cond") == 3
    for v in ([0.3, -0.2, 0.5], [-0.3, -0.2, 0.1]):
        assert_grads_match(f, f_py, (t64(v),))


# ----------------------------------------------------------------------------------------
# while_loop: Newton's method for sqrt, a data-dependent trip count
# ----------------------------------------------------------------------------------------


def newton_dg(a):
    def keep_going(s):
        x, it = s
        return (dg.abs(x * x - a).max() > 1e-12) & (it < 60)

    def step(s):
        x, it = s
        return 0.5 * (x + a / x), it + 1

    x, _ = dg.while_loop(keep_going, step, (a, dg.tensor(0)))
    return x.sum()


def newton_py(a):
    x, it = a, 0
    while (dg.abs(x * x - a).max() > 1e-12) and it < 60:
        x, it = 0.5 * (x + a / x), it + 1
    return x.sum()


def newton_trips(a):
    x, it = np.asarray(a, np.float64), 0
    while np.abs(x * x - a).max() > 1e-12 and it < 60:
        x, it = 0.5 * (x + a / x), it + 1
    return it


@pytest.mark.parametrize("av", [[2.0, 9.0], [1.0, 1.0], [1e4, 0.25, 3.0]])
def test_while_newton_sqrt_gradients(av):
    a = t64(av)
    ref = assert_grads_match(newton_dg, newton_py, (a,), rtol=1e-7)
    # x0 = a: with no iteration (a == 1) the loop is the identity, else d sqrt(a) / da
    expected = np.ones(len(av)) if newton_trips(av) == 0 else 0.5 / np.sqrt(av)
    np.testing.assert_allclose(ref[0], expected, rtol=1e-6)


def test_while_newton_one_graph_many_trip_counts():
    # one traced graph serves inputs whose loops run different numbers of times
    a0 = t64([2.0, 9.0])
    fwd = dg.trace(newton_dg, a0)
    bwd = grad_graph(fwd)
    trips = set()
    for av in ([2.0, 9.0], [1.0, 1.0], [1e6, 7.0], [0.01, 50.0]):
        trips.add(newton_trips(av))
        a = t64(av)
        np.testing.assert_allclose(np_(fwd(a)), np.sqrt(av).sum(), rtol=1e-10)
        value, g = bwd(a)
        expected = np.ones(len(av)) if newton_trips(av) == 0 else 0.5 / np.sqrt(av)
        np.testing.assert_allclose(np_(g), expected, rtol=1e-6)
    assert len(trips) >= 3  # the stop really depends on the data (including 0 trips)
    assert 0 in trips


def test_while_newton_gradcheck():
    a = t64([2.0, 9.0, 0.7], True)
    assert dg.autograd.gradcheck(newton_dg, [a])
    assert dg.autograd.gradcheck(dg.trace(newton_dg, a.detach()), [a])


# ----------------------------------------------------------------------------------------
# fori_loop: an RNN with a weight matrix
# ----------------------------------------------------------------------------------------

T_STEPS, H = 6, 4
W0 = rng.normal(size=(H, H)) * 0.5
U0 = rng.normal(size=(H, 3)) * 0.5
H0 = rng.normal(size=H)
XS = rng.normal(size=(T_STEPS, 3))


def rnn_py(W, U, h, xs):
    for t in range(T_STEPS):
        h = dg.tanh(W @ h + U @ xs[t])
    return (h * h).sum()


def rnn_closure(W, U, h, xs):
    # W, U and xs are captured from the enclosing function by the loop body
    return (lambda h: (h * h).sum())(
        dg.fori_loop(0, T_STEPS, lambda t, h: dg.tanh(W @ h + U @ xs[t]), h)
    )


def rnn_carry(W, U, h, xs):
    # W travels through the loop as a carry, unchanged
    def body(t, s):
        W, h = s
        return W, dg.tanh(W @ h + U @ xs[t])

    _, h = dg.fori_loop(0, T_STEPS, body, (W, h))
    return (h * h).sum()


@pytest.mark.parametrize("rnn", [rnn_closure, rnn_carry], ids=["closure", "carry"])
def test_rnn_fori_loop_gradients(rnn):
    args = (t64(W0), t64(U0), t64(H0), t64(XS))
    assert_grads_match(rnn, rnn_py, args, argnums=(0, 1, 2, 3))


def test_rnn_eager_constant_weights():
    # W an eager tensor captured by the traced function: a graph constant, no gradient
    W = t64(W0)

    def f(h):
        return dg.fori_loop(0, 3, lambda t, h: dg.tanh(W @ h), h).sum()

    def f_py(h):
        for _ in range(3):
            h = dg.tanh(W @ h)
        return h.sum()

    g = dg.trace(f, t64(H0))
    assert "const" in str(g)
    assert_grads_match(f, f_py, (t64(H0),))


def test_rnn_gradcheck():
    args = [t64(W0, True), t64(U0, True), t64(H0, True), t64(XS, True)]
    assert dg.autograd.gradcheck(rnn_closure, args)
    g = dg.trace(rnn_carry, *[a.detach() for a in args])
    assert dg.autograd.gradcheck(g, args)


def test_fori_loop_traced_bounds():
    # the upper bound a traced int: the trip count is data
    def f(x, n):
        return dg.fori_loop(0, n, lambda i, a: a * 1.5 + i.double(), x).sum()

    def f_py(x, n):
        for i in range(int(n)):
            x = x * 1.5 + i
        return x.sum()

    x = t64([1.0, -2.0])
    g = verify(dg.trace(f, x, dg.tensor(3)))
    for n in (0, 1, 3, 20):
        np.testing.assert_allclose(np_(g(x, dg.tensor(n))), np_(f_py(x, dg.tensor(n))))
        gg = grad_graph(g)
        np.testing.assert_allclose(np_(gg(x, dg.tensor(n))[1]), np.full(2, 1.5 ** n))


# ----------------------------------------------------------------------------------------
# loop corner cases: zero trips, trips beyond the tape's initial capacity, list carries
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 40])
def test_loop_trip_counts_around_tape_capacity(n):
    def f(x):
        return dg.fori_loop(0, n, lambda i, a: dg.tanh(a) * 1.01 + 0.01, x).sum()

    def f_py(x):
        for _ in range(n):
            x = dg.tanh(x) * 1.01 + 0.01
        return x.sum()

    assert_grads_match(f, f_py, (t64([0.3, -0.4, 1.2]),))


def test_while_loop_list_carry_and_zero_trips():
    def f(x):
        s = dg.while_loop(lambda s: s[1].sum() < 10.0, lambda s: [s[0] + 1, s[1] * 1.5], [0, x])
        assert isinstance(s, list)
        return s[1].sum() * s[0].double()

    def f_py(x):
        k = 0
        while x.sum() < 10.0:
            k, x = k + 1, x * 1.5
        return x.sum() * k

    assert_grads_match(f, f_py, (t64([1.0, 2.0]),))
    assert_grads_match(f, f_py, (t64([6.0, 7.0]),))  # the loop never runs: gradient 0


def test_multiple_carries_mixed_dtypes():
    def body(s):
        i, a32, b64, flag, cnt = s
        a32 = a32 * 1.5
        b64 = b64 + a32.double().sum() * b64
        flag = flag | (a32.sum() > 3)
        return i + 1, a32, b64, flag, cnt + flag.long()

    def f(x, y):
        s = (dg.tensor(0), x.float(), y, dg.tensor(False), dg.tensor(0))
        i, a32, b64, flag, cnt = dg.while_loop(lambda s: s[0] < 4, body, s)
        assert (a32.dtype, b64.dtype, flag.dtype, cnt.dtype) == (dg.float32, dg.float64, dg.bool, dg.int64)
        return a32.double().sum() + b64.sum() * cnt.double() + dg.where(flag, 1.0, 0.0)

    def f_py(x, y):
        s = (0, x.float(), y, dg.tensor(False), dg.tensor(0))
        while s[0] < 4:
            s = body(s)
        i, a32, b64, flag, cnt = s
        return a32.double().sum() + b64.sum() * cnt.double() + dg.where(flag, 1.0, 0.0)

    x, y = t64([0.5, 0.25]), t64([0.1, -0.2, 0.3])
    g = verify(dg.trace(f, x, y))
    (w,) = [op for op in g.ops if op.name == "while"]
    assert [v.aval.str_short() for v in w.outs] == ["i64[]", "f32[2]", "f64[3]", "bool[]", "i64[]"]
    # float32 inside the loop: compare at float32 accuracy
    assert_grads_match(f, f_py, (x, y), argnums=(0, 1), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------
# closures and nesting
# ----------------------------------------------------------------------------------------


def test_closures_capture_outer_traced_values():
    def f(x, y):
        s = (x * y).sum()  # an outer traced value, captured two levels deep below

        def body(i, a):
            return dg.cond(a.sum() > s, lambda b: b - y * s, lambda b: b + x, a)

        return dg.fori_loop(0, 4, body, x * 0.5).sum()

    def f_py(x, y):
        s = (x * y).sum()
        a = x * 0.5
        for _ in range(4):
            a = a - y * s if a.sum() > s else a + x
        return a.sum()

    x, y = t64([0.3, 0.8, -0.1]), t64([0.5, -0.25, 1.0])
    g = verify(dg.trace(f, x, y))
    (w,) = [op for op in g.ops if op.name == "while"]
    # the captured values are inputs of the body and bound by the while equation
    assert w.params["body_nconsts"] >= 2
    assert len(w.params["body_graph"].inputs) == 2 + w.params["body_nconsts"]
    assert_grads_match(f, f_py, (x, y), argnums=(0, 1))


def test_captured_value_in_loop_condition():
    def f(x, t):
        return dg.while_loop(lambda a: a.sum() < t.sum(), lambda a: a + dg.exp(t) * 0.1, x).sum()

    def f_py(x, t):
        while x.sum() < t.sum():
            x = x + dg.exp(t) * 0.1
        return x.sum()

    assert_grads_match(f, f_py, (t64([0.0, 0.1]), t64([1.0, 0.5])), argnums=(0, 1))


def nested_dg(x):
    # cond inside while inside cond, with a closure over x at the innermost level
    def inner(a):
        def body(s):
            k, v = s
            v = dg.cond(v.sum() > 0, lambda u: u * 0.9 - 0.1, lambda u: u * 1.1 + x, v)
            return k + 1, v

        return dg.while_loop(lambda s: (s[0] < 6) & (s[1].abs().sum() < 50), body, (dg.tensor(0), a))[1]

    return dg.cond(x.sum() < 1, inner, lambda a: a * a, x).sum()


def nested_py(x):
    if x.sum() < 1:
        k, v = 0, x
        while k < 6 and v.abs().sum() < 50:
            v = v * 0.9 - 0.1 if v.sum() > 0 else v * 1.1 + x
            k += 1
        return v.sum()
    return (x * x).sum()


@pytest.mark.parametrize("xv", [[0.3, -0.2, 0.5], [0.9, 0.5, 0.5], [-2.0, -1.0, 0.4]])
def test_nested_control_flow(xv):
    g = verify(dg.trace(nested_dg, t64(xv)))
    assert [op.name for op in g.ops if op.name in ("cond", "while")] == ["cond"]
    text = str(g)
    assert text.count("cond[") == 2 and text.count("while[") == 1
    assert_grads_match(nested_dg, nested_py, (t64(xv),))
    assert dg.autograd.gradcheck(g, [t64(xv, True)])


# ----------------------------------------------------------------------------------------
# the IR of a loop does not grow with its trip count
# ----------------------------------------------------------------------------------------


def test_loop_ir_size_independent_of_trip_count():
    def make(n):
        def f(x):
            return dg.fori_loop(0, n, lambda i, a: dg.tanh(a) * 2, x).sum()

        return f

    x = t64([1.0, 2.0])
    sizes = {n: count_eqns(dg.trace(make(n), x)) for n in (1, 10, 1000)}
    assert len(set(sizes.values())) == 1, sizes
    bwd_sizes = {n: count_eqns(grad_graph(dg.trace(make(n), x))) for n in (1, 10, 1000)}
    assert len(set(bwd_sizes.values())) == 1, bwd_sizes
    tg_sizes = {n: count_eqns(dg.trace(dg.grad(make(n)), x)) for n in (1, 10, 1000)}
    assert len(set(tg_sizes.values())) == 1, tg_sizes
    # and the 1000-trip graph still computes the 1000-trip result
    g = dg.trace(make(1000), x)
    np.testing.assert_allclose(np_(g(x)), np_(make(1000)(x)))


# ----------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "true_fn, false_fn, types",
    [
        (lambda a: a, lambda a: a.sum(), ("f64[2]", "f64[]")),
        (lambda a: a, lambda a: a.float(), ("f64[2]", "f32[2]")),
        (lambda a: (a, a.sum()), lambda a: (a, a.sum().long()), ("f64[]", "i64[]")),
    ],
)
def test_cond_branch_type_mismatch(true_fn, false_fn, types):
    x = t64([1.0, 2.0])
    with pytest.raises(ControlFlowError) as info:
        dg.trace(lambda x: dg.cond(x.sum() > 0, true_fn, false_fn, x), x)
    msg = str(info.value)
    assert "cond" in msg and all(t in msg for t in types), msg
    assert HERE in msg  # the user's line


def test_cond_branch_structure_mismatch():
    x = t64([1.0, 2.0])
    with pytest.raises(ControlFlowError, match="true_fn returned .* but false_fn returned"):
        dg.trace(lambda x: dg.cond(x.sum() > 0, lambda a: (a, a), lambda a: a, x), x)


@pytest.mark.parametrize(
    "loop, types",
    [
        (lambda x: dg.while_loop(lambda a: a.sum() < 5, lambda a: a.sum(), x), ("f64[2]", "f64[]")),
        (lambda x: dg.while_loop(lambda a: a.sum() < 5, lambda a: a.float(), x), ("f64[2]", "f32[2]")),
        (lambda x: dg.fori_loop(0, 3, lambda i, a: a.float(), x), ("f64[2]", "f32[2]")),
        (lambda x: dg.fori_loop(0, 3, lambda i, a: a[None], x), ("f64[2]", "f64[1,2]")),
    ],
)
def test_loop_body_changing_carry_type(loop, types):
    with pytest.raises(ControlFlowError) as info:
        dg.trace(loop, t64([1.0, 2.0]))
    msg = str(info.value)
    assert all(t in msg for t in types), msg
    assert HERE in msg


def test_fori_loop_error_names_fori_loop_and_user_carry():
    with pytest.raises(ControlFlowError) as info:
        dg.trace(lambda x: dg.fori_loop(0, 3, lambda i, a: (a[0].float(), a[1]), x), (t64([1.0]), t64([2.0])))
    msg = str(info.value)
    # the counter is an implementation detail: carry numbers count the user's carries
    assert msg.startswith("fori_loop"), msg
    assert "carry 0 " in msg, msg


def test_while_predicate_must_be_scalar():
    with pytest.raises(ControlFlowError, match="scalar"):
        dg.trace(lambda x: dg.while_loop(lambda a: a > 0, lambda a: a - 1, x), t64([1.0, 2.0]))


def _line_of(marker):
    src, start = inspect.getsourcelines(_concrete_uses)
    for k, line in enumerate(src):
        if marker in line:
            return start + k
    raise AssertionError(marker)


@dg.static.do_not_convert  # unconverted: if/while on a traced tensor raise (autograph converts them)
def _concrete_uses(kind, x):
    if kind == "bool":
        return bool(x.sum() > 0)  # <bool>
    if kind == "if":
        if x.sum() > 0:  # <if>
            return x
        return -x
    if kind == "while":
        while x.sum() < 10:  # <while>
            x = x * 2
        return x
    if kind == "float":
        return float(x.sum())  # <float>
    if kind == "item":
        return x.sum().item()  # <item>
    if kind == "numpy":
        return x.numpy()  # <numpy>
    if kind == "asarray":
        return np.asarray(x)  # <asarray>
    if kind == "int":
        return int(x.sum())  # <int>
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bool", "if", "while", "float", "item", "numpy", "asarray", "int"])
@pytest.mark.parametrize("under_grad", [False, True], ids=["trace", "trace-grad"])
def test_concrete_value_of_traced_tensor_raises(kind, under_grad):
    def f(x):
        out = _concrete_uses(kind, x)
        return dg.sum(out) if under_grad else out

    fn = dg.grad(f) if under_grad else f
    with pytest.raises(TracerError) as info:
        dg.trace(fn, t64([1.0, 2.0]))
    msg = str(info.value)
    assert f"{HERE}:{_line_of(f'<{kind}>')}" in msg, msg
    assert "dg.cond" in msg and "dg.while_loop" in msg


def test_escaped_tracer_raises():
    leaked = []

    def f(x):
        leaked.append(x * 2)
        return x

    dg.trace(f, t64([1.0]))
    with pytest.raises(TracerError, match="escaped"):
        dg.trace(lambda y: y + leaked[0], t64([1.0]))


def test_value_from_inside_a_branch_used_outside_raises():
    inner = []

    def f(x):
        def tf(a):
            inner.append(a * 3)
            return a

        y = dg.cond(x.sum() > 0, tf, lambda a: a, x)
        return y + inner[0]

    with pytest.raises(TracerError):
        dg.trace(f, t64([1.0]))


def test_interpreter_error_names_equation_and_source_line():
    line = []

    def f(x, i):
        y = x * 2
        line.append(inspect.currentframe().f_lineno + 1)
        z = y[i]
        return z + 1

    x, i = t64(np.arange(4.0)), dg.tensor(np.array([1, 2]))
    g = dg.trace(f, x, i)
    np.testing.assert_allclose(np_(g(x, i)), [3.0, 5.0])
    with pytest.raises(GraphExecutionError) as info:
        g(x, dg.tensor(np.array([1, 7])))
    msg = str(info.value)
    assert "getitem" in msg and f"{HERE}:{line[0]}" in msg, msg
    assert "out of bounds" in msg


def test_interpreter_error_inside_loop_body_names_the_line():
    line = []

    def f(x, i):
        def body(k, a):
            line.append(inspect.currentframe().f_lineno + 1)
            return a + a[i].sum()

        return dg.fori_loop(0, 2, body, x)

    x = t64(np.arange(4.0))
    g = dg.trace(f, x, dg.tensor(np.array([0])))
    with pytest.raises(GraphExecutionError) as info:
        g(x, dg.tensor(np.array([9])))
    msg = str(info.value)
    assert "getitem" in msg and f"{HERE}:{line[0]}" in msg, msg


# ----------------------------------------------------------------------------------------
# higher order
# ----------------------------------------------------------------------------------------


def loop3(x):
    return dg.fori_loop(0, 3, lambda i, a: dg.tanh(a * 1.3 + 0.1), x).sum()


def loop3_py(x):
    for _ in range(3):
        x = dg.tanh(x * 1.3 + 0.1)
    return x.sum()


def test_second_order_through_traced_while_is_unsupported():
    x = t64([0.3, -0.2, 0.5])
    with pytest.raises(NotImplementedError, match="second-order"):
        dg.trace(dg.grad(lambda x: dg.grad(loop3)(x).sum()), x)
    g = grad_graph(dg.trace(loop3, x))
    with pytest.raises(NotImplementedError, match="second-order"):
        grad_graph(dg.trace(lambda x: g(x)[1].sum(), x))


def test_second_order_eager_loop_and_interpreted_graph():
    # what the error suggests works: the eager loop (and the interpreted graph, which runs
    # the while's VJP on the eager tape) differentiates twice
    x = t64([0.3, -0.2, 0.5])
    x_ = x.detach().requires_grad_()
    (gx,) = dg.autograd.grad(loop3_py(x_), [x_], create_graph=True)
    (ref,) = dg.autograd.grad(gx.sum(), [x_])
    hvp = dg.grad(lambda x: dg.grad(loop3)(x).sum())(x)
    np.testing.assert_allclose(np_(hvp), np_(ref), rtol=1e-10)
    g = dg.trace(loop3, x)
    np.testing.assert_allclose(np_(dg.grad(lambda x: dg.grad(g)(x).sum())(x)), np_(ref), rtol=1e-10)


def test_second_order_through_traced_cond():
    def f(x):
        return dg.cond(x.sum() > 0, lambda a: (a ** 3).sum(), lambda a: dg.exp(a).sum(), x)

    for xv in ([0.3, -0.2, 0.5], [-0.3, -0.2, 0.1]):
        x = t64(xv)
        h = verify(dg.trace(dg.grad(lambda x: dg.grad(f)(x).sum()), x))(x)
        ref = 6 * np.asarray(xv) if sum(xv) > 0 else np.exp(xv)
        np.testing.assert_allclose(np_(h), ref, rtol=1e-12)


# ----------------------------------------------------------------------------------------
# eager semantics: the operators are the Python control flow they stand for
# ----------------------------------------------------------------------------------------


def test_eager_control_flow_is_python_control_flow():
    x = t64([1.0, 2.0], True)
    calls = []
    y = dg.cond(x.sum() > 0, lambda a: calls.append("t") or a * 2, lambda a: calls.append("f") or a, x)
    assert calls == ["t"]  # only the taken branch runs eagerly
    assert type(y.grad_fn).__name__ == "MulBackward"
    seen = []
    out = dg.fori_loop(2, 5, lambda i, a: seen.append(int(i)) or a + i.double(), x)
    assert seen == [2, 3, 4]
    np.testing.assert_allclose(np_(out), [10.0, 11.0])
    k = dg.while_loop(lambda s: s < 5, lambda s: s + 2, dg.tensor(0))
    assert int(k) == 6


# ----------------------------------------------------------------------------------------
# gradients inside control flow
# ----------------------------------------------------------------------------------------

XD = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.1]])
YD = np.array([1.0, -1.0, 0.5])


def _loss(w):
    return ((t64(XD) @ w - t64(YD)) ** 2).mean()


def meta_dg(w0, lr):
    # five steps of gradient descent in a fori_loop (dg.grad inside the body), then the loss
    return _loss(dg.fori_loop(0, 5, lambda i, w: w - lr * dg.grad(_loss)(w), w0))


def meta_py(w0, lr):
    w = w0
    for _ in range(5):
        (g,) = dg.autograd.grad(_loss(w), [w], create_graph=True)
        w = w - lr * g
    return _loss(w)


def test_gradient_descent_in_a_loop_and_its_meta_gradient():
    w0, lr = t64([0.1, 0.2]), t64(0.1)
    # the oracle differentiates through the Python loop's inner gradients (create_graph)
    leaves = [w0.detach().requires_grad_(), lr.detach().requires_grad_()]
    ref = dg.autograd.grad(meta_py(*leaves), leaves)
    for got in (
        dg.grad(meta_dg, argnums=(0, 1))(w0, lr),
        verify(dg.trace(dg.grad(meta_dg, argnums=(0, 1)), w0, lr))(w0, lr),
        verify(grad_graph(dg.trace(meta_dg, w0, lr), argnums=(0, 1)))(w0, lr)[1:],
    ):
        for a, b in zip(got, ref):
            np.testing.assert_allclose(np_(a), np_(b), rtol=1e-10, atol=1e-14)
    assert dg.autograd.gradcheck(meta_dg, [t64([0.1, 0.2], True), t64(0.1, True)])


def test_concrete_value_inside_a_loop_body_names_the_body_line():
    line = []

    def f(x):
        def body(i, a):
            line.append(inspect.currentframe().f_lineno + 1)
            return a * float(a.sum())  # (an `if` here would be converted by autograph)
        return dg.fori_loop(0, 3, body, x)

    with pytest.raises(TracerError) as info:
        dg.trace(f, t64([1.0]))
    assert f"{HERE}:{line[0]}" in str(info.value)
    assert "dg.cond" in str(info.value)


def test_grad_under_no_grad_still_differentiates():
    # gradcheck evaluates under no_grad: dg.grad inside the function must not go silent
    x = t64([0.3, -0.7], True)
    with dg.no_grad():
        g = dg.grad(lambda a: (a ** 3).sum())(x)
    np.testing.assert_allclose(np_(g), 3 * np.array([0.3, -0.7]) ** 2)
    assert not g.requires_grad


W_CONST = np.array([1.0, 2.0, -0.5])


def _inner_closes_over(lr):
    # the inner gradient reads lr from the closure, not from its argument
    w0 = t64(W_CONST)  # an eager constant, also under a trace
    return dg.grad(lambda w: ((w - lr) ** 2 * w).sum())(w0).sum()


def test_grad_of_grad_through_a_closure():
    lr = t64(0.5)
    # d/dlr sum(3 w^2 - 4 w lr + lr^2) = sum(-4 w + 2 lr)
    expected = (-4 * W_CONST + 2 * 0.5).sum()
    assert float(dg.grad(_inner_closes_over)(lr)) == pytest.approx(expected)
    g = verify(dg.trace(dg.grad(_inner_closes_over), lr))
    assert float(g(lr)) == pytest.approx(expected)
    assert float(grad_graph(dg.trace(_inner_closes_over, lr))(lr)[1]) == pytest.approx(expected)


def test_cond_passes_a_value_both_branches_capture_once():
    def f(x, y):
        return dg.cond(x.sum() > 0, lambda: x * y, lambda: x + y)

    g = dg.trace(f, dg.ones(3), dg.ones(3))
    (c,) = [op for op in g.ops if op.name == "cond"]
    assert len(c.inputs) == 3  # pred, x, y: each capture once
    x, y = dg.tensor([1.0, 2.0, 3.0]), dg.tensor([2.0, 2.0, 2.0])
    np.testing.assert_array_equal(g(x, y).numpy(), f(x, y).numpy())
    np.testing.assert_array_equal(g(-x, y).numpy(), f(-x, y).numpy())


def test_error_inside_a_loop_body_names_the_equation_and_the_enclosing_while():
    def f(x, idx):
        def body(i, v):
            return v + x[idx]

        return dg.fori_loop(0, 3, body, dg.zeros(()))

    g = dg.trace(f, dg.ones(3), dg.tensor(1))
    with pytest.raises(dg.GraphExecutionError) as info:
        g(dg.ones(3), dg.tensor(7))
    msg = str(info.value)
    assert "getitem" in msg and "out of bounds" in msg
    assert "inside `" in msg and "= while[" in msg
    assert msg.count("test_control_flow.py:") >= 2  # the body's line and the loop's line
