"""autograph: Python ``if``/``while``/``for`` on tensors traced unchanged into cond/while.

Every program here is plain Python control flow.  Its oracle is itself run eagerly (the
eager tape gives the reference gradients); the traced graph (``dg.trace(f)``), the trace
of its gradient (``dg.trace(dg.grad(f))``) and the backward graph built from the forward
graph (``grad_graph``) must all agree with it, on inputs that take every path.
"""
import inspect
import os
import traceback
import warnings

import numpy as np
import pytest

import dualgraph as dg
from dualgraph.static import AutographError, convert, grad_graph, optimize, to_source, verify

HERE = os.path.abspath(__file__)


def t64(a):
    return dg.tensor(np.asarray(a, np.float64))


def np_(t):
    return np.asarray(t.detach().numpy() if isinstance(t, dg.Tensor) else t)


def line_of(fn, marker):
    src, start = inspect.getsourcelines(fn)
    for k, line in enumerate(src):
        if marker in line:
            return start + k
    raise AssertionError(marker)


def op_names(graph):
    """Names of the equations of ``graph`` and of all its sub-graphs."""
    out = []
    for e in graph.eqns:
        out.append(e.name)
        for v in e.params.values():
            if isinstance(v, dg.Graph):
                out.extend(op_names(v))
    return out


def check(f, args, argnums=(0,), grads=True, rtol=1e-9, atol=1e-12):
    """The traced graph of ``f`` (also optimized) and its gradients equal ``f`` run eagerly."""
    g = verify(dg.trace(f, *args))
    want = f(*args)
    np.testing.assert_allclose(np_(g(*args)), np_(want), rtol=rtol, atol=atol)
    opt = optimize(g, verify=True)
    np.testing.assert_allclose(np_(opt(*args)), np_(want), rtol=rtol, atol=atol)
    if not grads:
        return g
    argnums = tuple(argnums)
    # the reference: the eager tape on the plain Python program
    leaves = [a.detach().requires_grad_() if i in argnums else a for i, a in enumerate(args)]
    out = f(*leaves)
    ref = dg.autograd.grad(out, [leaves[i] for i in argnums], allow_unused=True)
    ref = [np_(r) if r is not None else np.zeros(leaves[i].shape) for r, i in zip(ref, argnums)]
    traced = verify(dg.trace(dg.grad(f, argnums=argnums), *args))(*args)
    value, *from_graph = verify(grad_graph(g, argnums=argnums))(*args)
    np.testing.assert_allclose(np_(value), np_(want), rtol=rtol, atol=atol)
    for k, r in enumerate(ref):
        for name, got in (("trace(grad)", traced[k]), ("grad_graph", from_graph[k])):
            np.testing.assert_allclose(np_(got), r, rtol=rtol, atol=atol,
                                       err_msg=f"{name}, argument {argnums[k]}")
    return g


# ----------------------------------------------------------------------------------------
# the article's forward(x, n)
# ----------------------------------------------------------------------------------------


def forward(x, n):
    result = x
    for i in range(n):  # n 可以是运行时变量
        if result.sum() > 0:
            result = result * 2
        else:
            result = result + 1
    return result


def test_article_forward_is_one_while_containing_one_cond():
    g5 = dg.trace(forward, dg.ones(3), 5)
    g500 = dg.trace(forward, dg.ones(3), 500)
    assert [op.name for op in g5.ops] == ["const", "while"]
    (loop,) = [op for op in g5.ops if op.name == "while"]
    assert [e.name for e in loop.params["body_graph"].eqns].count("cond") == 1
    assert op_names(g5).count("cond") == 1 and op_names(g5).count("while") == 1
    assert len(str(g5).splitlines()) == len(str(g500).splitlines())
    assert str(g500) == str(g5).replace("lt e 5", "lt e 500")
    verify(g5)


@pytest.mark.parametrize("xv", [[1.0, -2.0, 3.0], [-5.0, 1.0, 1.0], [-9.0, -1.0, 0.0],
                                [0.0, 0.0, 0.0]])
@pytest.mark.parametrize("n", [0, 1, 5])
def test_article_forward_values_and_gradients(xv, n):
    # [-5, 1, 1] takes the else branch then the if branch; [-9, -1, 0] stays in else
    x = t64(xv)
    check(lambda x: forward(x, n).sum(), (x,))
    np.testing.assert_array_equal(np_(dg.trace(forward, x, n)(x)), np_(forward(x, n)))


def test_article_forward_float32_and_source():
    x = dg.tensor([-5.0, 1.0, 1.0])
    g = dg.trace(forward, x, 7)
    np.testing.assert_array_equal(np_(g(x)), np_(forward(x, 7)))
    assert "_ag__.for_stmt" in g.source and "_ag__.if_stmt" in g.source
    assert g.source == to_source(forward)
    # the source of what dg.grad wraps
    assert dg.trace(dg.grad(lambda x: forward(x, 2).sum()), x).source == (
        "lambda x: _ag__.cv(forward)(x, 2).sum()")
    compile(g.source, "<converted>", "exec")  # printable and valid Python


# ----------------------------------------------------------------------------------------
# the table of converted forms
# ----------------------------------------------------------------------------------------


def if_elif_else(x):
    s = x.sum()
    if s > 1.0:
        y = x * 2.0
    elif s > -1.0:
        y = dg.tanh(x)
    else:
        y = x * x
    return y.sum()


def nested_if_in_while(x):
    i = 0
    while x.sum() < 10.0:
        if x.max() > 2.0:
            x = x * 1.5
        else:
            x = x + 1.0
        i += 1
    return x.sum() * i


def while_with_break(x):
    while x.sum() < 100.0:
        x = x * 2.0
        if x.max() > 20.0:
            break
        x = x + 1.0
    return (x * x).sum()


def for_range_with_continue(x):
    acc = x * 0.0
    for i in range(5):
        x = dg.tanh(x * 1.1 + 0.2)
        if x.sum() < 0.0:
            continue
        acc = acc + x * i
    return acc.sum()


def early_return_in_loop(x):
    for i in range(8):
        x = x * 1.5 - 0.1
        if x.sum() > 4.0:
            return x.sum() * 10.0
    return x.sum()


def for_over_rows(x):
    h = x[0] * 0.0
    for x_t in x:
        h = dg.tanh(h * 0.5 + x_t)
    return h.sum()


def and_or_not(x, y):
    positive = x.sum() > 0
    if positive and y.sum() > 0:
        r = x * y
    elif x.sum() < -1.0 or not (y.max() < 0.5):
        r = x - y
    else:
        r = x + y
    return r.sum()


def conditional_expression(x):
    y = x * 2.0 if x.sum() > 0 else -x
    return (y * y).sum() + (1.0 if x.max() > 1.0 else 0.5)


def _halve_or_shift(v):
    if v.sum() > 1.0:
        return v * 0.5
    return v + 0.25


def helper_called_from_loop(x):
    for _ in range(4):
        x = _halve_or_shift(x)
    return (x * x).sum()


class Scaler:
    def __init__(self, k):
        self.k = k

    def apply(self, x):
        if x.sum() > 0:
            return x * self.k
        return x - self.k


def method_of_a_class(x):
    return Scaler(3.0).apply(x).sum()


X3 = [[1.0, 2.0, 0.5], [0.1, -0.2, 0.3], [-1.0, -1.0, -1.0], [-3.0, 0.5, 1.0]]
TABLE = [
    ("if/elif/else", if_elif_else, [(x,) for x in X3], "cond"),
    ("nested if in while", nested_if_in_while,
     [([0.5, 0.2],), ([3.0, 1.0],), ([20.0, 1.0],)], "while"),
    ("while with break", while_with_break,
     [(np.full(12, 5.0),), (np.r_[15.0, np.ones(11)],), (np.full(12, 10.0),)], "while"),
    ("for-range with continue", for_range_with_continue,
     [([0.5, -0.3],), ([-2.0, -1.0],), ([2.0, -2.5],)], "while"),
    ("early return inside a loop", early_return_in_loop,
     [([1.0, 1.0],), ([0.1, 0.1],), ([-1.0, -1.0],)], "while"),
    ("for over a tensor's rows", for_over_rows,
     [(np.arange(12.0).reshape(4, 3) / 10 - 0.5,)], "while"),
    ("and/or/not", and_or_not,
     [([1.0, 2.0], [1.0, 1.0]), ([1.0, 2.0], [-1.0, 0.2]), ([-2.0, 0.5], [0.1, 0.2]),
      ([-0.5, 0.0], [0.1, 0.2]), ([-0.5, 0.0], [0.1, 0.7])], "cond"),
    ("conditional expression", conditional_expression, [(x,) for x in X3], "cond"),
    ("helper with its own if, called from a loop", helper_called_from_loop,
     [([1.0, 0.8],), ([0.1, 0.1],), ([-2.0, 0.3],)], "while"),
    ("method of a class", method_of_a_class, [([1.0, 2.0],), ([-1.0, -2.0],)], "cond"),
]


@pytest.mark.parametrize("name,fn,inputs,op", TABLE, ids=[t[0] for t in TABLE])
def test_converted_forms_equal_eager(name, fn, inputs, op):
    for args in inputs:
        args = tuple(t64(a) for a in args)
        g = check(fn, args, argnums=tuple(range(len(args))))
        assert op in op_names(g), (name, str(g))


def test_paths_are_really_taken():
    # the inputs of the table exercise both sides (checked on the eager program)
    assert nested_if_in_while(t64([20.0, 1.0])).item() == 0.0  # zero trips
    assert early_return_in_loop(t64([1.0, 1.0])).item() > 40  # returned early (x10)
    assert early_return_in_loop(t64([0.1, 0.1])).item() < 4
    assert while_with_break(t64(np.full(12, 10.0))).item() == 1200.0  # zero trips


def test_python_bool_condition_stays_static():
    def f(x, flag, n):
        if flag:
            y = x * 2.0
        else:
            y = x * 3.0
        total = 0
        for i in range(n):  # pure Python bookkeeping: stays a Python loop
            total += i
        k = 0
        while k < 2 and not flag:
            y = y + 1.0
            k += 1
        return y.sum() + total

    x = t64([1.0, 2.0])
    for flag in (True, False):
        g = check(lambda x: f(x, flag, 4), (x,))
        names = op_names(g)
        assert "cond" not in names and "while" not in names, str(g)


def test_while_on_python_condition_is_a_python_loop():
    def f(x):
        n = 3
        while n > 0:
            x = x * 2.0
            n -= 1
        return x

    g = dg.trace(f, t64([1.0]))
    assert op_names(g).count("mul") == 3 and "while" not in op_names(g)


def test_for_over_python_list_is_unrolled():
    ws = [t64([[1.0, 0.5], [0.0, 1.0]]), t64([[0.3], [0.7]])]

    def f(x):
        for w in ws:
            x = dg.tanh(x @ w)
        return x.sum()

    g = check(f, (t64([[0.2, -0.4]]),))
    assert op_names(g).count("matmul") == 2 and "while" not in op_names(g)


def test_traced_range_bound():
    def f(x, n):
        for i in range(n):
            x = x * 0.5 + i
        return x.sum()

    x, n = t64([1.0, 2.0]), dg.tensor(3)
    g = verify(dg.trace(f, x, n))
    for k in (0, 1, 3, 6):
        np.testing.assert_allclose(np_(g(x, dg.tensor(k))), np_(f(x, k)))


def test_and_guards_an_index_like_python():
    # `i < 4 and x[i] <= 0`: x[i] must not run when i == 4 (a lazy cond, not `&`)
    def first_positive(x):
        i = 0
        while i < 4 and x[i] <= 0.0:
            i += 1
        return i

    g = verify(dg.trace(first_positive, t64([0.0, -1.0, 2.0, 3.0])))
    for xv in ([0.0, -1.0, 2.0, 3.0], [1.0, 0.0, 0.0, 0.0], [-1.0, -1.0, -1.0, -1.0]):
        assert int(g(t64(xv))) == first_positive(t64(xv))


def test_and_of_comparisons_is_one_and_equation():
    def f(x):
        if x.sum() > 0 and x.max() < 3.0:
            return x * 2.0
        return x

    g = dg.trace(f, t64([1.0, 2.0]))
    assert [op.name for op in g.ops].count("and") == 1 and op_names(g).count("cond") == 1
    for xv in ([1.0, 2.0], [1.0, 5.0], [-1.0, 0.0]):
        np.testing.assert_array_equal(np_(g(t64(xv))), np_(f(t64(xv))))


def test_python_numbers_become_tensor_branch_outputs_and_carries():
    def f(x):
        count = 0  # Python int, promoted to an int64 carry
        total = 0.0  # Python float, takes the dtype of what it is added to
        found = False  # Python bool, a bool branch output
        for i in range(6):
            x = x * 0.9
            if x.sum() > 1.0:
                count += 1
                found = True
            total = total + x.sum()
        return total * count + (10.0 if found else 0.0)

    for xv in ([1.0, 1.0], [0.3, 0.2]):
        check(f, (t64(xv),))


def test_tuples_lists_and_dicts_as_carries():
    def f(x):
        state = (x, x * 0.0)
        d = {"a": x.sum(), "b": [x.max(), x.min()]}
        for _ in range(3):
            h, c = state
            state = (dg.tanh(h + c), c + h * 0.5)
            if d["a"] > 0:
                d = {"a": d["a"] - 1.0, "b": [d["b"][1], d["b"][0] * 2.0]}
        return state[0].sum() + state[1].sum() + d["a"] + d["b"][0] + d["b"][1]

    for xv in ([1.0, 2.0], [-1.0, 0.5]):
        check(f, (t64(xv),))


def test_augmented_assignment_on_traced_tensors():
    def f(x):
        y = x * 1.0
        for i in range(3):
            y += x
            y *= 0.5
        y -= 1.0
        return y.sum()

    check(f, (t64([1.0, -2.0]),))


def test_lambdas_nested_functions_and_closures():
    scale = t64([2.0, 3.0])

    def outer(x):
        def inner(v):
            return v * scale if v.sum() > 0 else v / scale

        total = x.sum() * 0.0
        for k in range(3):
            x = inner(x) - 1.0
            total = total + x.sum()
        return total

    for xv in ([1.0, 2.0], [-1.0, 0.5]):
        check(outer, (t64(xv),))
    f = lambda x: (x * 2.0 if x.sum() > 0 else -x).sum()  # noqa: E731
    check(f, (t64([1.0, -3.0]),))
    check(f, (t64([1.0, 3.0]),))


def test_dg_cond_and_fori_loop_callables_are_converted():
    def f(x):
        def body(i, v):
            if v.sum() > 2.0:
                return v * 0.5
            return v + 1.0

        return dg.fori_loop(0, 4, body, x).sum()

    for xv in ([1.0, 2.0], [0.1, 0.1]):
        check(f, (t64(xv),))


def test_super_and_bound_methods():
    class Base:
        def scale(self, x):
            return x * 2.0

    class Child(Base):
        def scale(self, x):
            if x.sum() > 0:
                return super().scale(x) + 1.0
            return x

    c = Child()
    for xv in ([1.0, 2.0], [-1.0, -2.0]):
        x = t64(xv)
        np.testing.assert_array_equal(np_(dg.trace(c.scale, x)(x)), np_(c.scale(x)))


class _Private:
    def __init__(self):
        self.__k = 4.0

    def run(self, x):
        if x.sum() > 0:
            return x * self.__k
        return x


def test_private_names_are_mangled_in_converted_methods():
    p = _Private()
    x = t64([1.0])
    assert dg.trace(p.run, x)(x).item() == 4.0


# ----------------------------------------------------------------------------------------
# errors name the variable, the user's line and the fix
# ----------------------------------------------------------------------------------------


def one_branch(x):
    if x.sum() > 0:  # <if>
        y = x * 2.0
    return y.sum()  # <use>


def test_variable_defined_in_one_branch():
    with pytest.raises(AutographError) as info:
        dg.trace(one_branch, t64([1.0]))
    msg = str(info.value)
    assert "'y'" in msg
    assert f"{HERE}:{line_of(one_branch, '<if>')}" in msg
    assert f"{HERE}:{line_of(one_branch, '<use>')}" in msg
    assert "Fix:" in msg and "before the `if`" in msg
    # eagerly (a Python if), the same function works where it defines y
    assert one_branch(t64([1.0])).item() == 2.0


def dtype_change(x):
    for i in range(3):  # <loop>
        x = x.double()
    return x


def test_carry_changing_dtype():
    with pytest.raises(AutographError) as info:
        dg.trace(dtype_change, dg.ones(2))
    msg = str(info.value)
    assert "'x'" in msg and "f32[2]" in msg and "f64[2]" in msg
    assert f"{HERE}:{line_of(dtype_change, '<loop>')}" in msg
    assert "Fix:" in msg and "cast" in msg


def test_carry_changing_shape():
    def f(x):
        while x.sum() < 10.0:
            x = dg.cat([x, x])
        return x

    with pytest.raises(AutographError, match=r"'x' changes from a tensor f64\[2\]"):
        dg.trace(f, t64([1.0, 2.0]))


def list_append(x):
    outs = []
    for i in range(3):  # <loop>
        x = x * 2.0
        outs.append(x)  # <append>
    return dg.stack(outs).sum()


def test_list_append_in_tensor_loop():
    with pytest.raises(AutographError) as info:
        dg.trace(list_append, t64([1.0]))
    msg = str(info.value)
    assert "'outs'" in msg and "outs.append(...)" in msg
    assert f"{HERE}:{line_of(list_append, '<append>')}" in msg
    assert f"{HERE}:{line_of(list_append, '<loop>')}" in msg
    assert "list(range(n))" in msg


def test_list_append_fix_unrolled_loop_and_local_lists_work():
    def f(x):
        outs = []
        for i in list(range(3)):  # a Python loop, as the error suggests
            x = x * 2.0
            outs.append(x)
        return dg.stack(outs).sum()

    check(f, (t64([1.0, -0.5]),))

    def g(x):
        for i in range(3):
            parts = []  # made inside the traced body: appending to it is fine
            parts.append(x * 2.0)
            parts.append(x + 1.0)
            x = dg.stack(parts).sum(dim=0) * 0.25
        return x.sum()

    check(g, (t64([1.0, -0.5]),))


def test_list_append_in_tensor_branch():
    log = []

    def f(x):
        if x.sum() > 0:
            log.append(1)
            x = x * 2.0
        return x

    with pytest.raises(AutographError, match="'log'"):
        dg.trace(f, t64([1.0]))


def test_global_assigned_in_a_tensor_branch():
    def f(x):
        global _COUNTER
        if x.sum() > 0:
            _COUNTER = 1
            x = x * 2.0
        return x

    with pytest.raises(AutographError, match="'_COUNTER'"):
        dg.trace(f, t64([1.0]))


def test_variable_first_defined_in_a_loop_with_traced_trip_count():
    def f(x, n):
        for i in range(n):
            y = x * i
        return y  # <use>

    with pytest.raises(AutographError, match="'y' is first assigned inside the loop"):
        dg.trace(f, t64([1.0]), dg.tensor(2))
    # with a Python trip count (at least one iteration) y is the last iteration's value
    check(lambda x: f(x, 3).sum(), (t64([1.0, 2.0]),))


def test_branches_returning_different_types():
    def f(x):
        if x.sum() > 0:
            return x
        return x.double()

    with pytest.raises(AutographError, match="returns a tensor f32"):
        dg.trace(f, dg.ones(2))

    def g(x):
        if x.sum() > 0:
            return x

    with pytest.raises(AutographError, match="None"):
        dg.trace(g, dg.ones(2))


def test_non_scalar_condition():
    def f(x):
        if x > 0:
            return x
        return -x

    with pytest.raises(AutographError, match=r"shape \(2,\)"):
        dg.trace(f, dg.ones(2))


# ----------------------------------------------------------------------------------------
# what conversion keeps: eager behaviour, closures, globals, lines; what it skips
# ----------------------------------------------------------------------------------------


def test_eager_behaviour_is_untouched():
    code = forward.__code__
    cf = convert(forward)
    assert cf is not forward and forward.__code__ is code
    x = dg.tensor([-5.0, 1.0, 1.0], requires_grad=True)
    # the converted function run eagerly is the Python program too
    a, b = forward(x, 4), cf(x, 4)
    np.testing.assert_array_equal(np_(a), np_(b))
    assert type(b.grad_fn).__name__ == type(a.grad_fn).__name__


def test_conversion_is_cached_per_function_and_closure():
    assert convert(forward) is convert(forward)

    def make(k):
        def f(x):
            if x.sum() > 0:
                return x * k
            return x

        return f

    f2, f3 = make(2.0), make(3.0)
    c2, c3 = convert(f2), convert(f3)
    assert c2 is not c3 and c2.__code__ is c3.__code__  # one conversion of the code
    assert convert(f2) is c2
    x = t64([1.0])
    assert dg.trace(f2, x)(x).item() == 2.0 and dg.trace(f3, x)(x).item() == 3.0


def test_closures_and_globals_are_live():
    global GLOBAL_SCALE
    k = [2.0]

    def f(x):
        if x.sum() > 0:
            return x * GLOBAL_SCALE * k[0]
        return x

    x = t64([1.0])
    assert dg.trace(f, x)(x).item() == 2.0 * GLOBAL_SCALE
    old, GLOBAL_SCALE = GLOBAL_SCALE, 5.0
    try:
        assert dg.trace(f, x)(x).item() == 10.0
    finally:
        GLOBAL_SCALE = old


GLOBAL_SCALE = 3.0


def test_functions_without_source_are_traced_unconverted():
    ns = {}
    exec("def h(x):\n    return x * 2.0 if True else x\n", ns)  # noqa: S102
    h = ns["h"]
    assert convert(h) is h and to_source(h) is None
    g = dg.trace(h, t64([1.5]))
    assert g(t64([1.5])).item() == 3.0 and g.source is None
    exec("def k(x):\n    if x.sum() > 0:\n        return x\n    return -x\n", ns)  # noqa: S102
    with pytest.raises(dg.TracerError, match="dg.cond"):
        dg.trace(ns["k"], t64([1.0]))
    assert convert(np.sum) is np.sum and convert(len) is len


def test_do_not_convert():
    from dualgraph.static import do_not_convert

    @do_not_convert
    def f(x):
        if x.sum() > 0:
            return x
        return -x

    with pytest.raises(dg.TracerError):
        dg.trace(f, t64([1.0]))


def raises_in_branch(x):
    if x.sum() > 0:
        y = x * 2.0
        raise ValueError("boom")  # <raise>
    return x


def test_tracebacks_and_equations_point_at_the_original_lines():
    with pytest.raises(ValueError) as info:
        dg.trace(raises_in_branch, t64([1.0]))
    frames = traceback.extract_tb(info.tb)
    assert any(fr.filename == HERE and fr.lineno == line_of(raises_in_branch, "<raise>")
               and "raise ValueError" in fr.line for fr in frames)
    assert not any("_ag_" in (fr.line or "") or "_ag_" in fr.name for fr in frames)
    g = dg.trace(forward, dg.ones(3), 3)
    lines = {src for _, src in g.ops[1].params["body_graph"].source_lines()}
    assert f"{HERE}:{line_of(forward, 'result.sum() > 0')}" in lines


def test_warnings_point_at_the_original_lines():
    def f(x):
        if x.sum() > 0:
            warnings.warn("careful", stacklevel=1)  # <warn>
            x = x * 2.0
        return x

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dg.trace(f, t64([1.0]))
    ws = [w for w in caught if str(w.message) == "careful"]
    assert ws and all(w.filename == HERE and w.lineno == line_of(f, "<warn>") for w in ws)


# ----------------------------------------------------------------------------------------
# more forms
# ----------------------------------------------------------------------------------------


def _rec(x, depth):
    if depth == 0:
        return x
    if x.sum() > 0:
        return _rec(x * 0.5, depth - 1)
    return _rec(x + 1.0, depth - 1)


class _Cell:
    def __init__(self):
        self.w = t64([[1.0, 0.5], [0.2, 1.0]])

    def step(self, h):
        return dg.tanh(h @ self.w)

    def __call__(self, x, n):
        h = x
        for _ in range(n):
            h = self.step(h)
            if h.sum() < 0:
                h = -h
        return h.sum()


def nested_loops_with_return(x):
    for i in range(4):
        for j in range(i):  # the inner bound is the outer (traced) counter
            x = x + 0.5
            if x.sum() > 6.0:
                return x.sum() * 100.0
        x = x * 0.5
    return x.sum()


def while_else(x):
    while x.sum() < 10.0:
        x = x * 2.0
        if x.max() > 100.0:
            break
    else:
        x = x + 1000.0
    return x.sum()


def python_test_then_traced(x):
    k = 0
    while k < 10:  # a Python test: the first iteration runs in Python, then a graph while
        x = x * 1.3
        if x.sum() > 5.0:
            break
        k += 1
    return x.sum() + k


def chained_comparison(x):
    if 0.0 < x.sum() < 5.0:
        return x * 2.0
    return -x


def while_continue_and_return(x):
    k = 0
    while k < 6:
        k += 1
        x = x * 1.2
        if x.max() < 1.0:
            continue
        x = x - 0.5
        if x.sum() > 3.0:
            return x.sum()
    return -x.sum()


def python_list_with_tensor_break(x):
    for w in [1.0, 2.0, 3.0, 4.0]:
        x = x * w
        if x.sum() > 10.0:
            break
    return x.sum()


def rows_with_break(xs):
    h = xs[0] * 0.0
    for r in xs:
        if r.sum() > 3.0:
            break
        h = h + r
    return h.sum()


MORE = [
    ("while with continue and return", while_continue_and_return,
     [[0.5, 0.4], [2.0, 1.0], [0.1, -3.0]]),
    ("break on a tensor in a Python-list loop", python_list_with_tensor_break,
     [[1.0, 0.5], [0.01, 0.01]]),
    ("for over rows with break", rows_with_break,
     [np.arange(8.0).reshape(4, 2) / 2, -np.ones((3, 2))]),
    ("recursion on a Python depth", lambda x: _rec(x, 3).sum(), [[1.0, -3.0], [2.0, 2.0]]),
    ("callable object with methods", lambda x: _Cell()(x, 4), [[[0.3, -0.9]], [[-2.0, 0.1]]]),
    ("nested loops, return from the inner one", nested_loops_with_return,
     [[1.0, 1.0], [-5.0, 1.0]]),
    ("while/else", while_else, [[1.0, 1.0], [60.0, -55.0]]),
    ("Python test, then traced", python_test_then_traced, [[1.0, 1.0], [0.01, 0.01], [5.0, 1.0]]),
    ("chained comparison", lambda x: chained_comparison(x).sum(), [[1.0, 2.0], [3.0, 4.0], [-1.0, 0.0]]),
]


@pytest.mark.parametrize("name,fn,inputs", MORE, ids=[m[0] for m in MORE])
def test_more_forms_equal_eager(name, fn, inputs):
    for xv in inputs:
        check(fn, (t64(xv),))


def test_loop_index_used_as_python_index_unrolls():
    layers = [lambda h: h * 2.0, lambda h: h + 1.0, dg.tanh]

    def f(x):
        for i in range(len(layers)):  # layers[i] needs i as a Python int
            x = layers[i](x)
            if x.sum() > 0:
                x = x * 0.5
        return x.sum()

    g = check(f, (t64([1.0, -3.0]),))
    assert "while" not in op_names(g) and op_names(g).count("cond") == 3


def test_grad_mode_decorated_function_is_converted():
    @dg.no_grad()
    def f(x):
        if x.sum() > 0:
            return x
        return -x

    g = dg.trace(f, t64([1.0]))
    assert "cond" in op_names(g)
    assert g(t64([-2.0])).item() == 2.0


def test_verbose_flag_prints_the_converted_code(monkeypatch, capsys):
    monkeypatch.setenv("DUALGRAPH_AUTOGRAPH_VERBOSE", "1")

    def fresh(x):
        return x * 2.0 if x.sum() > 0 else x

    dg.trace(fresh, t64([1.0]))
    err = capsys.readouterr().err
    assert "fresh" in err and "_ag__.if_exp" in err


def test_conversion_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("DUALGRAPH_AUTOGRAPH", "0")
    with pytest.raises(dg.TracerError):
        dg.trace(one_branch, t64([1.0]))


def test_variable_read_later_by_a_closure_is_a_branch_output():
    def f(x):
        get = lambda: y  # noqa: E731 - reads y when called, after the if
        y = x
        if x.sum() > 0:
            y = y * 2.0
        return get().sum()

    for xv in ([1.0, 2.0], [-1.0, -2.0]):
        check(f, (t64(xv),))


def test_loop_variables_overwritten_in_every_iteration():
    def f(x):
        prev = None  # never seen: the loop runs and overwrites it first
        tag = ""
        for i in range(3):
            x = x * 2.0
            prev = x - 1.0
            tag = "done"
        assert tag == "done"
        return prev.sum()

    check(f, (t64([1.0, 2.0]),))


def test_python_object_changing_in_a_graph_loop():
    def f(x):
        name = "a"
        for i in range(3):
            x = x * 2.0
            name = name + "b"
        return x

    with pytest.raises(AutographError, match="'name' changes from a str .* carries tensors and numbers"):
        dg.trace(f, t64([1.0]))


# ----------------------------------------------------------------------------------------
# random programs: nested if/for/while/break/continue/return, traced == eager
# ----------------------------------------------------------------------------------------


class _ProgramGen:
    def __init__(self, rng):
        self.rng = rng
        self.loop_var = 0

    def cond(self):
        c = round(float(self.rng.uniform(-1.5, 1.5)), 2)
        return str(self.rng.choice([
            f"x.sum() > {c}", f"a < {c}", "k > 1", f"x.max() > {c} and a < {c + 0.5}",
            f"not (x.min() > {c})", f"x.sum() < {c} or k == 2", f"{c} < a < {c + 1.0}",
        ]))

    def simple(self):
        return str(self.rng.choice([
            "x = x * 1.1 + 0.1", "x = dg.tanh(x)", "a = a + x.sum() * 0.1", "x = x - a * 0.2",
            "k += 1", "a = a * 0.5 if a > 0.3 else a + 0.25",
        ]))

    def block(self, depth, in_loop, indent):
        out = []
        for _ in range(int(self.rng.integers(1, 4))):
            r = self.rng.random()
            pad = "    " * indent
            if depth > 0 and r < 0.25:
                out.append(f"{pad}if {self.cond()}:")
                out += self.block(depth - 1, in_loop, indent + 1)
                if self.rng.random() < 0.6:
                    out.append(f"{pad}else:")
                    out += self.block(depth - 1, in_loop, indent + 1)
            elif depth > 0 and r < 0.4:
                self.loop_var += 1
                v = f"i{self.loop_var}"
                out.append(f"{pad}for {v} in range({int(self.rng.integers(0, 4))}):")
                out += self.block(depth - 1, True, indent + 1)
            elif depth > 0 and r < 0.5:
                self.loop_var += 1
                v = f"j{self.loop_var}"
                out.append(f"{pad}{v} = 0")
                out.append(f"{pad}while {v} < 3 and ({self.cond()}):")
                out.append(f"{pad}    {v} += 1")
                out += self.block(depth - 1, True, indent + 1)
            elif in_loop and r < 0.58:
                out.append(f"{pad}if {self.cond()}:")
                out.append(f"{pad}    {self.rng.choice(['break', 'continue'])}")
            elif r < 0.62:
                out.append(f"{pad}if {self.cond()}:")
                out.append(f"{pad}    return x.sum() * 2.0 + a")
            else:
                out.append(pad + self.simple())
        return out

    def program(self, name):
        body = ["    a = x.mean()", "    k = 0"] + self.block(3, False, 1)
        return [f"def {name}(x):"] + body + ["    return x.sum() + a + k", ""]


def _random_programs(tmp_path, seed, count):
    import importlib.util

    rng = np.random.default_rng(seed)
    gen = _ProgramGen(rng)
    names = [f"prog{n}" for n in range(count)]
    src = "import dualgraph as dg\n\n\n" + "\n".join(
        "\n".join(gen.program(n)) for n in names)
    path = tmp_path / "random_programs.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("random_programs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    inputs = [t64(v) for v in ([0.5, -0.2, 0.9], [-1.0, -0.5, 0.2], [2.0, 1.0, 0.3])]
    for name in names:
        f = getattr(mod, name)
        g = dg.trace(f, inputs[0])
        gg = dg.trace(dg.grad(f), inputs[0])
        for x in inputs:
            want = f(x)
            np.testing.assert_allclose(np_(g(x)), np_(want), rtol=1e-9, atol=1e-12,
                                       err_msg=f"{name}:\n{inspect.getsource(f)}")
            np.testing.assert_allclose(np_(gg(x)), np_(dg.grad(f)(x)), rtol=1e-9, atol=1e-12,
                                       err_msg=f"grad {name}:\n{inspect.getsource(f)}")


def test_random_programs_trace_like_eager(tmp_path):
    _random_programs(tmp_path, 7, 20)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_random_programs_trace_like_eager_many(tmp_path, seed):
    _random_programs(tmp_path, 100 + seed, 40)


def test_article_forward_compiles_unchanged_with_fullgraph():
    """The unchanged Python function is one graph for dg.compile too: no fallback, values
    equal eager on inputs taking each branch, one trace per (shape, n)."""
    cf = dg.compile(forward, fullgraph=True)
    for xv in ([1.0, -2.0, 0.5], [-1.0, -2.0, 0.5], [0.0, 0.0, 0.0]):
        x = dg.tensor(xv)
        np.testing.assert_allclose(cf(x, 7).numpy(), forward(x, 7).numpy(), rtol=1e-6)
    assert cf.cache_info()["traces"] == 1
