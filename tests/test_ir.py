"""The IR as an interface: golden prints, the verifier, ``graph.ops``, ``graph(*args)``."""
import numpy as np
import pytest

import dualgraph as dg
from dualgraph.ops import primitives as P
from dualgraph.ops.registry import ShapedArray
from dualgraph.static import Eqn, Graph, Lit, Var, VerifyError, grad_graph, optimize, vjp_graph, verify
from dualgraph.static.control_flow import cond_p, while_p

# ----------------------------------------------------------------------------------------
# golden prints
# ----------------------------------------------------------------------------------------


def test_print_simple():
    g = dg.trace(lambda x: (x * 2).sum() > 0, dg.ones(8))
    assert str(g) == (
        "{ lambda a:f32[8] .\n"
        "  let b:f32[8] = mul a 2\n"
        "      c:f32[] = reduce_sum[axes=(0,) keepdims=False] b\n"
        "      d:bool[] = gt c 0\n"
        "  in (d) }"
    )
    assert repr(g) == str(g)


def test_print_multiple_inputs_and_outputs():
    def f(w, x, b):
        y = dg.relu(w @ x + b)
        return y.mean(), y.argmax(dim=1)

    g = dg.trace(f, dg.ones(2, 3), dg.ones(3, 4), dg.ones(4))
    assert str(g) == (
        "{ lambda a:f32[2,3] b:f32[3,4] c:f32[4] .\n"
        "  let d:f32[2,4] = matmul a b\n"
        "      e:f32[2,4] = add d c\n"
        "      f:bool[2,4] = le e 0\n"
        "      g:f32[2,4] = where f 0 e\n"
        "      h:f32[] = reduce_sum[axes=(0,1) keepdims=False] g\n"
        "      i:f32[] = div h 8\n"
        "      j:i64[2] = argmax[axis=1 keepdims=False] g\n"
        "  in (i, j) }"
    )


def forward(x, n):
    """The article's ``forward(x, n)`` with dualgraph's control-flow operators."""

    def body(i, result):
        return dg.cond(result.sum() > 0, lambda r: r * 2, lambda r: r + 1, result)

    return dg.fori_loop(0, n, body, x)


def forward_py(x, n):
    """The article's dynamic-graph version: plain Python control flow."""
    result = x
    for _ in range(n):
        if result.sum() > 0:
            result = result * 2
        else:
            result = result + 1
    return result


FORWARD_GOLDEN = """\
{ lambda a:f32[3] .
  let b:i64[] = const[value=0]
      c:i64[] d:f32[3] = while[
        cond_nconsts=0
        body_nconsts=0
        cond_graph={ lambda e:i64[] f:f32[3] .
                     let g:bool[] = lt e 4
                     in (g) }
        body_graph={ lambda h:i64[] i:f32[3] .
                     let j:i64[] = add h 1
                         k:f32[] = reduce_sum[axes=(0,) keepdims=False] i
                         l:bool[] = gt k 0
                         m:f32[3] = cond[
                           true_branch={ lambda n:f32[3] .
                                         let o:f32[3] = mul n 2
                                         in (o) }
                           false_branch={ lambda p:f32[3] .
                                          let q:f32[3] = add p 1
                                          in (q) }
                         ] l i
                     in (j, m) }
      ] b a
  in (d) }"""


def test_print_article_forward():
    g = dg.trace(forward, dg.ones(3), 4)
    assert str(g) == FORWARD_GOLDEN
    # one while and one cond, whatever n is
    assert [op.name for op in g.ops] == ["const", "while"]
    assert str(dg.trace(forward, dg.ones(3), 1000)) == FORWARD_GOLDEN.replace("lt e 4", "lt e 1000")
    for xv in ([1.0, -2.0, -3.0], [-5.0, 1.0, 1.0], [0.0, 0.0, 0.0]):
        x = dg.tensor(xv)
        np.testing.assert_array_equal(g(x).numpy(), forward_py(x, 4).numpy())
        np.testing.assert_array_equal(forward(x, 4).numpy(), forward_py(x, 4).numpy())


def test_print_while_with_captured_constants():
    def newton(a):
        return dg.while_loop(lambda x: dg.abs(x * x - a).max() > 1e-6, lambda x: 0.5 * (x + a / x), a)

    g = dg.trace(newton, dg.ones(2))
    assert str(g) == (
        "{ lambda a:f32[2] .\n"
        "  let b:f32[2] = while[\n"
        "        cond_nconsts=1\n"
        "        body_nconsts=1\n"
        "        cond_graph={ lambda c:f32[2] d:f32[2] .\n"
        "                     let e:f32[2] = mul c c\n"
        "                         f:f32[2] = sub e d\n"
        "                         g:f32[2] = abs f\n"
        "                         h:f32[] = reduce_max[axes=(0,) keepdims=False] g\n"
        "                         i:bool[] = gt h 1e-06\n"
        "                     in (i) }\n"
        "        body_graph={ lambda j:f32[2] k:f32[2] .\n"
        "                     let l:f32[2] = div k j\n"
        "                         m:f32[2] = add j l\n"
        "                         n:f32[2] = mul 0.5 m\n"
        "                     in (n) }\n"
        "      ] a a a\n"
        "  in (b) }"
    )


def test_print_backward_graph():
    g = vjp_graph(dg.trace(lambda x: dg.exp(x) * 3, dg.ones(2)))
    assert str(g) == (
        "{ lambda a:f32[2] b:f32[2] .\n"
        "  let c:f32[2] = exp a\n"
        "      d:f32[2] = mul c 3\n"
        "      e:f32[2] = mul b 3\n"
        "      f:f32[2] = mul e c\n"
        "  in (d, f) }"
    )


def test_print_empty_graph_and_literal_output():
    g = dg.trace(lambda x: x, dg.ones(2, dtype=dg.float64))
    assert str(g) == "{ lambda a:f64[2] .\n  in (a) }"


# ----------------------------------------------------------------------------------------
# graph.ops and graph(*args)
# ----------------------------------------------------------------------------------------


def test_graph_ops_names():
    def f(x, y):
        z = dg.exp(x) + y
        w = dg.cond(z.sum() > 0, lambda a: a * 2, lambda a: a - 1, z)
        return dg.while_loop(lambda a: a.sum() < 100, lambda a: a * 3, w).sum()

    g = dg.trace(f, dg.ones(3), dg.ones(3))
    assert [op.name for op in g.ops] == ["exp", "add", "reduce_sum", "gt", "cond", "while", "reduce_sum"]
    assert all(isinstance(op, Eqn) for op in g.ops)


def test_graph_call_checks_arguments():
    g = dg.trace(lambda x, n: (x * n).sum(), dg.ones(2, 3), dg.tensor(2))
    assert [v.aval.str_short() for v in g.inputs] == ["f32[2,3]", "i64[]"]
    out = g(dg.ones(2, 3), dg.tensor(4))
    assert out.dtype == dg.float32 and float(out) == 24.0
    assert float(g(np.ones((2, 3), np.float32), 4)) == 24.0  # numpy arrays and numbers
    with pytest.raises(TypeError, match="takes 2 tensor arguments, got 1"):
        g(dg.ones(2, 3))
    with pytest.raises(TypeError, match=r"argument 0: expected f32\[2,3\], got f32\[3,2\]"):
        g(dg.ones(3, 2), dg.tensor(4))
    with pytest.raises(TypeError, match=r"argument 0: expected f32\[2,3\], got f64\[2,3\]"):
        g(dg.ones(2, 3, dtype=dg.float64), dg.tensor(4))
    with pytest.raises(TypeError, match=r"argument 0: expected f32\[2,3\], got f64\[2,3\]"):
        g(np.ones((2, 3)), dg.tensor(4))  # an array's dtype is not silently changed
    with pytest.raises(TypeError, match=r"argument 1: expected i64\[\], got f32\[\]"):
        g(dg.ones(2, 3), dg.tensor(4.0))


def test_graph_call_does_not_truncate_python_numbers():
    g = dg.trace(lambda x, n: x * n, dg.ones(2), dg.tensor(2))
    assert float(g(dg.ones(2), 4).sum()) == 8.0
    assert float(g([1, 2], 4).sum()) == 12.0  # ints into a float input: exact
    with pytest.raises(TypeError, match=r"argument 1: expected i64\[\], got f32\[\]"):
        g(dg.ones(2), 2.5)  # not silently 2
    with pytest.raises(TypeError, match=r"argument 0: expected i64\[\], got f32\[\]"):
        dg.trace(lambda n: n + 1, dg.tensor(1))(1.5)


def test_captured_eager_tensor_is_a_snapshot():
    # a graph constant does not follow later in-place updates of the tensor it came from:
    # the optimised graph (which folded it) and the original agree
    w = dg.tensor([1.0, 2.0])
    g = dg.trace(lambda x: x * (w * 2), dg.ones(2))
    o = optimize(g)
    w += 10
    np.testing.assert_array_equal(g(dg.ones(2)).numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(o(dg.ones(2)).numpy(), [2.0, 4.0])
    # nor does an in-place update of a result that is the constant itself
    g = dg.trace(lambda x: (x, w), dg.ones(2))
    out = g(dg.ones(2))[1]
    out += 1
    np.testing.assert_array_equal(g(dg.ones(2))[1].numpy(), [11.0, 12.0])


def test_graph_call_static_arguments_are_fixed():
    g = dg.trace(forward, dg.ones(3), 2)
    assert len(g.inputs) == 1
    x = dg.tensor([1.0, -2.0, -3.0])
    np.testing.assert_array_equal(g(x).numpy(), forward_py(x, 2).numpy())


def test_graph_call_rebuilds_result_structure():
    g = dg.trace(lambda x: {"s": x.sum(), "p": (x * 2, x + 1)}, dg.ones(2))
    out = g(dg.tensor([1.0, 2.0]))
    assert set(out) == {"p", "s"} and isinstance(out["p"], tuple)
    assert float(out["s"]) == 3.0
    np.testing.assert_array_equal(out["p"][1].numpy(), [2.0, 3.0])


def test_interpreted_graph_is_differentiable():
    g = dg.trace(forward, dg.ones(3), 3)
    x = dg.tensor([0.5, -0.2, 0.1], requires_grad=True)
    g(x).sum().backward()
    x2 = x.detach().requires_grad_()
    forward_py(x2, 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), x2.grad.numpy())


# ----------------------------------------------------------------------------------------
# the verifier
# ----------------------------------------------------------------------------------------


def _traced_samples():
    yield dg.trace(forward, dg.ones(3), 4)
    yield dg.trace(lambda x: (x * 2).sum() > 0, dg.ones(8))
    yield dg.trace(lambda x: dg.softmax(x, 1).sum(0), dg.ones(2, 3))
    yield dg.trace(lambda x, i: x[i, 1:] * x[0, 1:], dg.ones(4, 3), dg.tensor([1, 2]))
    yield dg.trace(dg.grad(lambda x: forward(x, 3).sum()), dg.ones(3))
    yield vjp_graph(dg.trace(forward, dg.ones(3), 4))
    yield grad_graph(dg.trace(lambda x: forward(x, 3).sum(), dg.ones(3)))
    yield dg.trace(lambda x: dg.cond(x.sum() > 0, lambda: (x, x.sum()), lambda: (-x, x.max())), dg.ones(2))


@pytest.mark.parametrize("k", range(8))
def test_verifier_accepts_traced_graphs(k):
    g = list(_traced_samples())[k]
    assert verify(g) is g


F3 = ShapedArray((3,), np.float32)
F = ShapedArray((), np.float32)
B = ShapedArray((), np.bool_)
I64 = ShapedArray((), np.int64)


def _ok_graph():
    a, b, c = Var(F3), Var(F3), Var(F)
    eqns = [Eqn(P.mul_p, [a, Lit(2.0)], {}, [b]),
            Eqn(P.reduce_sum_p, [b], {"axes": (0,), "keepdims": False}, [c])]
    return Graph([a], eqns, [c])


def test_verifier_accepts_hand_made_graph():
    g = _ok_graph()
    verify(g)
    assert float(g(dg.ones(3))) == 6.0


def test_verifier_rejects_unbound_variable():
    a, b, stray = Var(F3), Var(F3), Var(F3)
    g = Graph([a], [Eqn(P.add_p, [a, stray], {}, [b])], [b])
    with pytest.raises(VerifyError, match="not bound"):
        verify(g)


def test_verifier_rejects_use_before_definition():
    a, b, c = Var(F3), Var(F3), Var(F3)
    g = Graph([a], [Eqn(P.add_p, [a, c], {}, [b]), Eqn(P.neg_p, [a], {}, [c])], [b])
    with pytest.raises(VerifyError, match="not bound before"):
        verify(g)


def test_verifier_rejects_unbound_output():
    a, b = Var(F3), Var(F3)
    g = Graph([a], [], [b])
    with pytest.raises(VerifyError, match="output .* not bound"):
        verify(g)


def test_verifier_rejects_double_assignment():
    a, b = Var(F3), Var(F3)
    g = Graph([a], [Eqn(P.neg_p, [a], {}, [b]), Eqn(P.exp_p, [a], {}, [b])], [b])
    with pytest.raises(VerifyError, match="second time"):
        verify(g)
    # assigning a graph input is a double assignment too
    g = Graph([a], [Eqn(P.neg_p, [a], {}, [a])], [a])
    with pytest.raises(VerifyError, match="second time"):
        verify(g)
    c = Var(F3)
    with pytest.raises(VerifyError, match="bound twice"):
        verify(Graph([c, c], [], [c]))


def test_verifier_rejects_wrong_output_type():
    a, c = Var(F3), Var(ShapedArray((3,), np.float64))
    g = Graph([a], [Eqn(P.exp_p, [a], {}, [c])], [c])
    with pytest.raises(VerifyError, match=r"outputs \(f64\[3\]\) but exp's rule gives \(f32\[3\]\)"):
        verify(g)
    c = Var(F3)
    g = Graph([a], [Eqn(P.reduce_sum_p, [a], {"axes": (0,), "keepdims": False}, [c])], [c])
    with pytest.raises(VerifyError, match="reduce_sum"):
        verify(g)


def test_verifier_rejects_inputs_the_shape_rule_rejects():
    a, b, c = Var(F3), Var(ShapedArray((2,), np.float32)), Var(F3)
    g = Graph([a, b], [Eqn(P.add_p, [a, b], {}, [c])], [c])
    with pytest.raises(VerifyError, match="shape rule rejects"):
        verify(g)


def _branch(in_avals, fn_prim, out_aval=None):
    xs = [Var(a) for a in in_avals]
    y = Var(out_aval or in_avals[0])
    return Graph(xs, [Eqn(fn_prim, [xs[0]], {}, [y])], [y])


def _cond_graph(true_branch, false_branch, pred_aval=B):
    p, x, y = Var(pred_aval), Var(F3), Var(F3)
    eqn = Eqn(cond_p, [p, x], {"true_branch": true_branch, "false_branch": false_branch}, [y])
    return Graph([p, x], [eqn], [y])


def test_verifier_cond():
    good = _cond_graph(_branch([F3], P.neg_p), _branch([F3], P.exp_p))
    verify(good)
    out = good(dg.tensor(True), dg.ones(3))
    np.testing.assert_allclose(out.numpy(), -np.ones(3))
    with pytest.raises(VerifyError, match=r"cond.false_branch takes \(f32\[3\], f32\[\]\)"):
        verify(_cond_graph(_branch([F3], P.neg_p), _branch([F3, F], P.exp_p)))
    x64, y32 = Var(ShapedArray((3,), np.float64)), Var(F3)
    takes_f64 = Graph([x64], [Eqn(P.convert_p, [x64], {"dtype": np.dtype(np.float32)}, [y32])], [y32])
    with pytest.raises(VerifyError, match=r"cond.true_branch takes \(f64\[3\]\) but is given \(f32\[3\]\)"):
        verify(_cond_graph(takes_f64, _branch([F3], P.exp_p)))
    with pytest.raises(VerifyError, match="predicate"):
        verify(_cond_graph(_branch([F3], P.neg_p), _branch([F3], P.exp_p), pred_aval=F))


def test_verifier_cond_branch_output_mismatch():
    # a false branch returning f32[] where the cond binds f32[3]
    xs = Var(F3)
    s = Var(F)
    bad_false = Graph([xs], [Eqn(P.reduce_sum_p, [xs], {"axes": (0,), "keepdims": False}, [s])], [s])
    with pytest.raises(VerifyError, match=r"cond.false_branch returns \(f32\[\]\)"):
        verify(_cond_graph(_branch([F3], P.neg_p), bad_false))


def test_verifier_checks_inside_sub_graphs():
    x, y, stray = Var(F3), Var(F3), Var(F3)
    bad = Graph([x], [Eqn(P.add_p, [x, stray], {}, [y])], [y])
    with pytest.raises(VerifyError, match="cond.true_branch"):
        verify(_cond_graph(bad, _branch([F3], P.exp_p)))


def _while_graph(body_out_aval=F3, cond_out_aval=B):
    # carry: (i64[], f32[3]); cond: i < 3; body: (i + 1, neg x)
    ci, cx, cb = Var(I64), Var(F3), Var(cond_out_aval)
    cprim = P.lt_p if cond_out_aval == B else P.add_p
    cond_graph = Graph([ci, cx], [Eqn(cprim, [ci, Lit(3)], {}, [cb])], [cb])
    bi, bx, bi2, bx2 = Var(I64), Var(F3), Var(I64), Var(body_out_aval)
    prim = P.neg_p if body_out_aval == F3 else P.convert_p
    params = {} if body_out_aval == F3 else {"dtype": body_out_aval.dtype}
    body_graph = Graph(
        [bi, bx],
        [Eqn(P.add_p, [bi, Lit(1)], {}, [bi2]), Eqn(prim, [bx], params, [bx2])],
        [bi2, bx2],
    )
    i, x, i_out, x_out = Var(I64), Var(F3), Var(I64), Var(body_out_aval)
    eqn = Eqn(
        while_p,
        [i, x],
        {"cond_graph": cond_graph, "body_graph": body_graph, "cond_nconsts": 0, "body_nconsts": 0},
        [i_out, x_out],
    )
    return Graph([i, x], [eqn], [x_out])


def test_verifier_while():
    good = _while_graph()
    verify(good)
    np.testing.assert_allclose(good(dg.tensor(0), dg.ones(3)).numpy(), -np.ones(3))
    with pytest.raises(VerifyError, match="body_graph returns .*f64"):
        verify(_while_graph(body_out_aval=ShapedArray((3,), np.float64)))
    with pytest.raises(VerifyError, match="cond_graph must return one bool"):
        verify(_while_graph(cond_out_aval=I64))


def test_verifier_while_const_counts_must_fit_the_operands():
    # two operands, but cond_nconsts=3: the split of the operands is meaningless
    g = _while_graph()
    (eqn,) = g.eqns
    for nc, nb in [(3, 0), (2, -1), (-1, 0)]:
        bad = g.replace(eqns=[eqn.replace(params=dict(eqn.params, cond_nconsts=nc, body_nconsts=nb))])
        with pytest.raises(VerifyError, match="nconsts"):
            verify(bad)


def test_verifier_outputs_and_binders_must_be_vars():
    a = Var(F3)
    with pytest.raises(VerifyError, match="output"):
        verify(Graph([a], [], [3.0]))
    with pytest.raises(VerifyError, match="binds"):
        verify(Graph([a], [Eqn(P.neg_p, [a], {}, [Lit(np.float32(1.0))])], [a]))


def test_verifier_error_names_the_equation():
    a, b = Var(F3), Var(ShapedArray((3,), np.int64))
    g = Graph([a], [Eqn(P.neg_p, [a], {}, [b])], [b])
    with pytest.raises(VerifyError) as info:
        verify(g)
    assert "neg" in str(info.value) and "i64[3]" in str(info.value)
