"""The static layer's foundation: memory of the interpreter, in-place tape writes, one
forward loop under IR autodiff, cond/fori_loop argument rules, the verifier's operand
rules, tracers used after their trace, and the static layer's import structure."""
import ast
import inspect
import os
import tracemalloc

import numpy as np
import pytest

import dualgraph as dg
from dualgraph.ops import primitives as P
from dualgraph.ops.registry import ShapedArray
from dualgraph.static import (
    ControlFlowError,
    Eqn,
    Graph,
    Lit,
    TracerError,
    Var,
    VerifyError,
    grad_graph,
    interpreter,
    run,
    verify,
)

HERE = os.path.abspath(__file__)
STATIC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "dualgraph", "static")


def np_(t):
    return t.detach().numpy()


def t64(a):
    return dg.tensor(np.asarray(a, np.float64))


def line_of(fn, marker):
    src, start = inspect.getsourcelines(fn)
    for k, line in enumerate(src):
        if marker in line:
            return f"{HERE}:{start + k}"
    raise AssertionError(marker)


def peak_bytes(fn, *args):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ----------------------------------------------------------------------------------------
# 1. the interpreter frees each value after its last use
# ----------------------------------------------------------------------------------------

MIB = 2**20


def chain(x):
    for k in range(100):
        x = x * 1.0001 if k % 2 else x + 0.5
    return x


def test_interpreted_chain_peak_memory_is_like_eager():
    x = dg.tensor(np.ones(1_000_000, np.float32))  # 4 MiB per value
    g = dg.trace(chain, x)
    np.testing.assert_allclose(np_(g(x)), np_(chain(x)), rtol=1e-6)
    eager = peak_bytes(chain, x)
    interp = peak_bytes(g, x)
    # holding all 100 values would be ~400 MiB; live values only: a few arrays
    assert interp < 2 * eager + 2 * MIB, (interp / MIB, eager / MIB)
    assert interp < 20 * MIB, interp / MIB


def test_loop_and_branch_bodies_free_their_values():
    x = dg.tensor(np.ones(1_000_000, np.float32))

    def f(x):
        y = dg.fori_loop(0, 2, lambda i, a: chain(a) * 0.5, x)
        return dg.cond(y.sum() > 0, chain, lambda a: a * 2.0, y)

    def f_py(x):
        for _ in range(2):
            x = chain(x) * 0.5
        return chain(x) if x.sum() > 0 else x * 2.0

    g = dg.trace(f, x)
    np.testing.assert_allclose(np_(g(x)), np_(f_py(x)), rtol=1e-5)
    eager = peak_bytes(f_py, x)
    interp = peak_bytes(g, x)
    assert interp < 2 * eager + 2 * MIB, (interp / MIB, eager / MIB)


class Probe:
    """A value whose live instances are counted."""

    live = 0

    def __init__(self):
        Probe.live += 1

    def __del__(self):
        Probe.live -= 1


def test_run_drops_values_after_their_last_read_and_unread_outputs_at_once():
    x = dg.ones(3)

    def f(x):
        a = x * 2
        b = a + 1  # last read of a
        c = b * 3  # last read of b
        _ = c - 1  # never read
        return c * c

    g = dg.trace(f, x)
    seen = []

    def eval_eqn(eqn, ins):
        seen.append(Probe.live)
        return Probe()

    Probe.live = 0
    outs = run(g, [Probe()], eval_eqn)
    # live before each equation: the input (its caller keeps it) and the one value the
    # chain needs; keeping every value would give [1, 2, 3, 4, 5]
    assert seen == [1, 2, 2, 2, 2], seen
    assert Probe.live == 1 and len(outs) == 1
    del outs
    assert Probe.live == 0


# ----------------------------------------------------------------------------------------
# 2. tape writes in place; the forward loop runs once under IR autodiff
# ----------------------------------------------------------------------------------------


def tanh_loop(x, n):
    def body(state):
        i, y = state
        return i + 1, dg.tanh(dg.exp(y * -0.5) * 0.9 + 0.01)

    _, y = dg.while_loop(lambda s: s[0] < n, body, (dg.tensor(0), x))
    return y.sum()


def tanh_loop_py(x, n):
    for _ in range(n):
        x = dg.tanh(dg.exp(x * -0.5) * 0.9 + 0.01)
    return x.sum()


def eager_value_and_grad(x, n):
    x_ = x.detach().requires_grad_()
    y = tanh_loop_py(x_, n)
    y.backward()
    return np_(y), np_(x_.grad)


def count_calls(monkeypatch, prim):
    calls = [0]
    impl = prim.impl

    def counted(*a, **k):
        calls[0] += 1
        return impl(*a, **k)

    monkeypatch.setattr(prim, "impl", counted)
    return calls


@pytest.mark.parametrize("route", ["trace(value_and_grad)", "grad_graph"])
def test_value_and_grad_through_while_runs_the_forward_loop_once(monkeypatch, route):
    x = t64(np.linspace(-1, 1, 7))
    n0 = dg.tensor(np.asarray(3, np.int64))
    if route == "grad_graph":
        g = verify(grad_graph(dg.trace(tanh_loop, x, n0)))
    else:
        g = verify(dg.trace(dg.value_and_grad(tanh_loop), x, n0))
    # one forward loop (taped) and one reverse loop, at top level
    assert [e.name for e in g.ops].count("while") == 2, g
    exps = count_calls(monkeypatch, P.exp_p)
    for n in (0, 1, 5, 40):
        exps[0] = 0
        value, grad = g(x, dg.tensor(np.asarray(n, np.int64)))
        # the forward body evaluates exp once per iteration; the reverse loop re-runs the
        # body for its VJP once per iteration: 2n (a replayed forward loop made it 3n)
        assert exps[0] == 2 * n, (n, exps[0])
        ref_value, ref_grad = eager_value_and_grad(x, n)
        np.testing.assert_allclose(np_(value), ref_value, rtol=1e-12)
        np.testing.assert_allclose(np_(grad), ref_grad, rtol=1e-10, atol=1e-14)


def test_two_gradients_of_one_loop_share_its_tape():
    x = t64([0.3, -0.4])
    n = dg.tensor(np.asarray(4, np.int64))

    def f(x, n):
        y = tanh_loop(x, n)
        g1 = dg.autograd.grad(y, [x], create_graph=False, retain_graph=True)[0]
        g2 = dg.autograd.grad(y * 3, [x])[0]
        return g1, g2

    def f_traced(x, n):
        return f(x.detach().requires_grad_(), n)

    g = verify(dg.trace(f_traced, x, n))
    assert [e.name for e in g.ops].count("while") == 3, g  # one forward, two reverse
    g1, g2 = g(x, n)
    ref = eager_value_and_grad(x, 4)[1]
    np.testing.assert_allclose(np_(g1), ref, rtol=1e-10)
    np.testing.assert_allclose(np_(g2), 3 * ref, rtol=1e-10)


def test_gradient_taken_in_a_branch_of_a_loop_traced_outside_it():
    # the backward of the loop runs inside a cond branch (another trace): the loop is
    # replayed there rather than taped in place; the gradient is still right
    x = t64([0.3, -0.4, 0.2])

    def f(x):
        x = x.detach().requires_grad_()
        y = tanh_loop(x, 3)
        return dg.cond(y > 0, lambda: dg.autograd.grad(y, [x])[0], lambda: x * 0.0)

    g = verify(dg.trace(f, x))
    ref = eager_value_and_grad(x, 3)[1]
    np.testing.assert_allclose(np_(g(x)), ref, rtol=1e-10)


def test_tape_writes_are_in_place_in_a_loop(monkeypatch):
    x = t64(np.linspace(-1, 1, 5))
    g = dg.trace(dg.value_and_grad(tanh_loop), x, dg.tensor(np.asarray(1, np.int64)))
    writes = []
    inplace = interpreter._dynamic_update_inplace

    def spy(buf, i, v):
        out = inplace(buf, i, v)
        writes.append(out is buf)
        return out

    monkeypatch.setattr(interpreter, "_dynamic_update_inplace", spy)
    n = 300
    value, grad = g(x, dg.tensor(np.asarray(n, np.int64)))
    np.testing.assert_allclose(np_(grad), eager_value_and_grad(x, n)[1], rtol=1e-10)
    # two tapes (counter and carry), n writes each; the first write of each is an
    # ordinary (copying) one: its buffer is not the loop's own; then only growing the
    # buffer (16 -> 32 -> ... -> 512 rows) copies
    assert len(writes) == 2 * (n - 1)
    assert writes.count(False) == 2 * 5, writes.count(False)
    assert writes[-1] and all(writes[2 * 20:2 * 31])


def test_in_place_write_never_changes_a_value_read_later():
    x = dg.tensor(np.array([1.0, 2.0, 3.0], np.float32))

    def f(x):
        b0 = P.dynamic_zeros(2, shape=(3,), dtype=np.float32)
        b1 = P.dynamic_update(b0, 0, x)
        b2 = P.dynamic_update(b1, 1, x * 2)  # b1 read once: in place
        b3 = P.dynamic_update(b2, 0, x * 5)  # b2 is also an output: must copy
        b4 = P.dynamic_update(b3, 5, x * 7)  # grows
        return b2, b4

    g = verify(dg.trace(f, x))
    b2, b4 = g(x)
    xv = np_(x)
    np.testing.assert_array_equal(np_(b2), np.stack([xv, 2 * xv]))
    expected = np.zeros((6, 3), np.float32)
    expected[0], expected[1], expected[5] = 5 * xv, 2 * xv, 7 * xv
    np.testing.assert_array_equal(np_(b4), expected)


def test_in_place_write_never_changes_a_graph_input_or_constant():
    buf_aval = ShapedArray((None, 3), np.float32)
    b, i, v, out = Var(buf_aval), Var(ShapedArray((), np.int64)), Var(ShapedArray((3,), np.float32)), Var(buf_aval)
    g = verify(Graph([b, i, v], [Eqn(P.dynamic_update_p, [b, i, v], {}, [out])], [out]))
    buf = np.zeros((4, 3), np.float32)
    res = interpreter.eval_graph(g, [dg.tensor(buf), dg.tensor(np.asarray(1)), dg.ones(3)])[0]
    assert not buf.any()  # the caller's buffer is untouched
    assert np_(res)[1].tolist() == [1.0, 1.0, 1.0]

    const = np.zeros((4, 3), np.float32)

    def f(v):
        return P.dynamic_update(dg.tensor(const), 2, v)

    g2 = dg.trace(f, dg.ones(3))
    r1, r2 = g2(dg.ones(3)), g2(dg.ones(3) * 2)
    assert np_(r1)[2].tolist() == [1, 1, 1] and np_(r2)[2].tolist() == [2, 2, 2]
    assert not const.any()


def test_loop_returning_its_buffer_keeps_each_iterations_rows():
    # a fori_loop filling a buffer row by row: rows written in place stay correct and
    # the result equals the numpy loop
    def f(x):
        buf = P.dynamic_zeros(1, shape=(2,), dtype=np.float64)

        def body(i, s):
            b, y = s
            return P.dynamic_update(b, i, y), y * 2.0

        return dg.fori_loop(0, 40, body, (buf, x))

    x = t64([1.0, -1.0])
    g = verify(dg.trace(f, x))
    b, y = g(x)
    rows = np.array([[2.0**k, -(2.0**k)] for k in range(40)])
    np.testing.assert_array_equal(np_(b)[:40], rows)
    np.testing.assert_array_equal(np_(y), [2.0**40, -(2.0**40)])


def test_interpreted_loop_with_gradients_writes_in_place_only_off_the_tape(monkeypatch):
    # on the eager tape (inputs require grad), a write of a grad-requiring value is
    # bound as usual (recorded); the trip counter's tape is still written in place
    x = t64([0.3, -0.4])
    g = dg.trace(tanh_loop, x, dg.tensor(np.asarray(2, np.int64)))
    bwd = grad_graph(g)
    used = []
    inplace = interpreter._dynamic_update_inplace
    monkeypatch.setattr(interpreter, "_dynamic_update_inplace",
                        lambda *a: used.append(a[0].dtype) or inplace(*a))
    n = dg.tensor(np.asarray(6, np.int64))
    xr = x.detach().requires_grad_()
    (gx,) = dg.autograd.grad(bwd(xr, n)[1].sum(), [xr])  # second order, eager tape
    assert used and set(used) == {np.dtype(np.int64)}, used
    eps = 1e-6
    fd = [(np_(bwd(x + e, n)[1]).sum() - np_(bwd(x - e, n)[1]).sum()) / (2 * eps)
          for e in (t64([eps, 0]), t64([0, eps]))]
    np.testing.assert_allclose(np_(gx), fd, rtol=1e-5)


# ----------------------------------------------------------------------------------------
# 3. cond and fori_loop arguments
# ----------------------------------------------------------------------------------------


def test_cond_with_a_known_predicate_traces_and_checks_both_branches():
    x = t64([1.0, 2.0])
    calls = []

    def f(x):
        return dg.cond(True, lambda a: calls.append("t") or a * 3, lambda a: calls.append("f") or a, x)

    g = verify(dg.trace(f, x))
    assert calls == ["t", "f"]  # both traced, as JAX does
    assert "cond" not in [e.name for e in g.ops]  # the taken branch is kept
    np.testing.assert_array_equal(np_(g(x)), [3.0, 6.0])

    def bad(x):
        return dg.cond(False, lambda a: a.sum(), lambda a: a, x)  # <bad cond>

    with pytest.raises(ControlFlowError) as info:
        dg.trace(bad, x)
    msg = str(info.value)
    assert "f64[]" in msg and "f64[2]" in msg and line_of(bad, "<bad cond>") in msg, msg
    # eagerly a cond is the Python `if`: only the taken branch runs
    np.testing.assert_array_equal(np_(bad(x)), [1.0, 2.0])


def test_cond_known_predicate_keeps_captures_and_gradients():
    x = t64([0.5, -1.5])
    y = t64([2.0, 3.0])

    def f(x, y):
        z = x * 2
        return dg.cond(False, lambda: (z * y).sum(), lambda: (dg.tanh(z) + y * x).sum())

    g = verify(dg.trace(dg.grad(f, argnums=(0, 1)), x, y))
    gx, gy = g(x, y)
    ref_x = 2 * (1 - np.tanh(2 * np_(x)) ** 2) + np_(y)
    np.testing.assert_allclose(np_(gx), ref_x, rtol=1e-12)
    np.testing.assert_allclose(np_(gy), np_(x), rtol=1e-12)


def _bad_preds():
    return [
        (lambda x: x.sum(), "f64[]"),  # a float
        (lambda x: (x.sum() > 0).reshape(1), "bool[1]"),  # not a scalar
        (lambda x: x > 0, "bool[2]"),
        (lambda x: dg.tensor(1), "i64[]"),  # an int tensor
        (lambda x: 1, "int"),  # a Python int
        (lambda x: None, "NoneType"),
    ]


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
@pytest.mark.parametrize("make_pred,shown", _bad_preds())
def test_cond_predicate_must_be_a_scalar_bool(traced, make_pred, shown):
    x = t64([1.0, -2.0])

    def f(x):
        return dg.cond(make_pred(x), lambda a: a, lambda a: -a, x)  # <pred>

    with pytest.raises(ControlFlowError) as info:
        dg.trace(f, x) if traced else f(x)
    msg = str(info.value)
    assert "scalar bool" in msg and shown in msg and line_of(f, "<pred>") in msg, msg


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
def test_while_predicate_must_be_a_scalar_bool(traced):
    x = t64([1.0, 1.0])  # (a Python `while` on the sum would stop after one step)

    def f(x):
        return dg.while_loop(lambda a: a.sum(), lambda a: a - 1, x)  # <while pred>

    with pytest.raises(ControlFlowError) as info:
        dg.trace(f, x) if traced else f(x)
    msg = str(info.value)
    assert "scalar bool" in msg and "f64[]" in msg and line_of(f, "<while pred>") in msg, msg


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
@pytest.mark.parametrize(
    "lower,upper,shown",
    [
        (0, 3.0, "float"),
        (0.0, 3, "float"),
        (0, dg.tensor([3]), "i64[1]"),
        (dg.tensor(0.0), 3, "f32[]"),
        (False, 3, "bool"),
    ],
)
def test_fori_loop_bounds_must_be_scalar_ints(traced, lower, upper, shown):
    x = t64([1.0])

    def f(x):
        return dg.fori_loop(lower, upper, lambda i, a: a * 2, x)  # <fori>

    with pytest.raises(ControlFlowError) as info:
        dg.trace(f, x) if traced else f(x)
    msg = str(info.value)
    assert "scalar int" in msg and shown in msg and line_of(f, "<fori>") in msg, msg


def test_fori_loop_integer_bounds_of_any_int_type():
    x = t64([1.0])
    for lo, hi in ((np.int32(1), 4), (dg.tensor(np.asarray(1, np.int32)), dg.tensor(np.asarray(4, np.int32)))):
        def f(x):
            return dg.fori_loop(lo, hi, lambda i, a: a * 2, x)  # noqa: B023

        assert np_(f(x)).tolist() == [8.0]
        assert np_(dg.trace(f, x)(x)).tolist() == [8.0]


def test_cond_operand_keyword():
    x = t64([1.0, 2.0])

    def f(x):
        return dg.cond(x.sum() > 0, lambda a: a * 2, lambda a: a, operand=x)

    np.testing.assert_array_equal(np_(f(x)), [2.0, 4.0])
    g = verify(dg.trace(f, x))
    np.testing.assert_array_equal(np_(g(-x)), [-1.0, -2.0])
    with pytest.raises(TypeError, match="not both"):
        dg.cond(True, lambda a, b: a, lambda a, b: b, x, operand=x)


# ----------------------------------------------------------------------------------------
# 4. the verifier's operand rules
# ----------------------------------------------------------------------------------------


def _add_graph(operand, as_output=False):
    a, b = Var(ShapedArray((3,), np.float32)), Var(ShapedArray((3,), np.float32))
    if as_output:
        return Graph([a], [Eqn(P.neg_p, [a], {}, [b], "model.py:3")], [b, operand])
    return Graph([a], [Eqn(P.add_p, [a, operand], {}, [b], "model.py:7")], [b])


@pytest.mark.parametrize(
    "operand,words",
    [
        (Lit(np.array([1.0, 2.0, 3.0], np.float32)), ["Lit", "ndarray"]),
        (Lit(np.array(2.0, np.float32)), ["Lit", "ndarray"]),  # 0-d arrays too
        (Lit([1.0, 2.0, 3.0]), ["Lit", "list"]),
        (2.0, ["raw float"]),
        (np.ones(3, np.float32), ["raw ndarray"]),
        (dg.ones(3), ["raw Tensor"]),
    ],
    ids=["array-lit", "0d-array-lit", "list-lit", "float", "ndarray", "tensor"],
)
def test_verifier_rejects_array_lits_and_raw_operands(operand, words):
    with pytest.raises(VerifyError) as info:
        verify(_add_graph(operand))
    msg = str(info.value)
    assert "= add a" in msg and "model.py:7" in msg, msg  # names the equation
    for w in words:
        assert w in msg, msg
    with pytest.raises(VerifyError, match="the output"):
        verify(_add_graph(operand, as_output=True))


def test_verifier_accepts_scalar_lits():
    for value in (2.0, 3, True):
        verify(_add_graph(Lit(value)))
    verify(_add_graph(Lit(np.float32(2.0))))


# ----------------------------------------------------------------------------------------
# 5. a tracer used after its trace ended
# ----------------------------------------------------------------------------------------


LEAKED = []


def leaky(x):
    LEAKED.append(dg.tanh(x) * 2)  # <made>
    return x


@pytest.mark.parametrize(
    "use",
    [
        lambda t: t + 1,
        lambda t: dg.ones(3) * t,
        lambda t: dg.exp(t),
        lambda t: t.sum(),
        lambda t: t[0],
        lambda t: t.numpy(),
        lambda t: float(t.sum()),
        lambda t: dg.grad(lambda a: (a * t).sum())(dg.ones(3)),
    ],
    ids=["add", "rmul", "exp", "sum", "index", "numpy", "float", "grad"],
)
def test_tracer_used_in_eager_code_after_its_trace_says_so(use):
    LEAKED.clear()
    dg.trace(leaky, dg.ones(3))
    t = LEAKED.pop()
    with pytest.raises(TracerError) as info:
        use(t)  # <used>
    msg = str(info.value)
    assert "escaped" in msg and "after the trace ended" in msg, msg
    assert line_of(leaky, "<made>") in msg and "`leaky`" in msg, msg
    assert line_of(test_tracer_used_in_eager_code_after_its_trace_says_so, "<used>") in msg or \
        f"{HERE}:" in msg.split("used at")[1], msg
    assert "trace ended" in repr(t)


def test_tracer_used_in_a_later_trace_says_so():
    LEAKED.clear()
    dg.trace(leaky, dg.ones(3))
    t = LEAKED.pop()
    with pytest.raises(TracerError) as info:
        dg.trace(lambda y: y + t, dg.ones(3))
    msg = str(info.value)
    assert "escaped" in msg and line_of(leaky, "<made>") in msg, msg


# ----------------------------------------------------------------------------------------
# 6. layering
# ----------------------------------------------------------------------------------------


def _static_imports():
    """module -> the dualgraph.static modules it imports (anywhere in the file)."""
    mods = {}
    for root, _, files in os.walk(STATIC):
        for fn in files:
            if not fn.endswith(".py"):
                continue
            path = os.path.join(root, fn)
            rel = os.path.relpath(path, STATIC)[:-3].replace(os.sep, ".")
            pkg = rel.rsplit(".", 1)[0] if "." in rel else ""
            deps = set()
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom) and node.level:
                    base = pkg.split(".") if pkg else []
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    if node.level - 1 > len(pkg.split(".") if pkg else []):
                        continue  # above static/
                    target = ".".join(base + ([node.module] if node.module else []))
                    names = [target] if node.module else []
                    names += [f"{target}.{a.name}".strip(".") for a in node.names]
                    deps.update(n for n in names if n)
            mods[rel] = deps
    return {m: {d for d in ds if d in mods and d != m} for m, ds in mods.items()}


def test_static_modules_import_one_way():
    graph = _static_imports()
    assert "interpreter" in graph["control_flow"]  # the walk sees imports
    assert not any(d == "interpreter" for d in graph["ir"]), graph["ir"]
    # no cycles (packages' __init__ re-export their modules: left out)
    edges = {m: {d for d in ds if not d.endswith("__init__") and d not in ("passes",)}
             for m, ds in graph.items() if not m.endswith("__init__")}
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in edges.get(m, ()):
            if state.get(d) == "open":
                raise AssertionError(f"import cycle: {' -> '.join(path + [m, d])}")
            if d not in state:
                visit(d, path + [m])
        state[m] = "done"

    for m in edges:
        if m not in state:
            visit(m, [])


def test_control_flow_binds_through_the_registry():
    src = open(os.path.join(STATIC, "control_flow.py")).read()
    tree = ast.parse(src)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert "apply" not in imported and "bind" in imported
    x = t64([1.0, -1.0])
    g = dg.trace(lambda x: dg.cond(x.sum() > 0, lambda a: a, lambda a: -a, x), x)
    assert [e.name for e in g.ops][-1] == "cond"
    assert np_(g(x)).tolist() == [-1.0, 1.0]


def test_cond_known_predicate_keeps_the_branch_source_lines():
    def f(x):
        def branch(a):
            return dg.exp(a) * 2  # <branch line>

        return dg.cond(True, branch, lambda a: a, x)

    g = dg.trace(f, t64([1.0]))
    assert [e.name for e in g.ops] == ["exp", "mul"]
    assert {e.source for e in g.ops} == {line_of(f, "<branch line>")}
