"""The optimisation passes: each pass rewrites what it should, keeps results bit-for-bit
(run the original and the optimised graph with the interpreter), and leaves a graph the
verifier accepts -- at the top level and inside cond branches and while bodies."""
import numpy as np
import pytest

import dualgraph as dg
from dualgraph.ops import primitives as P
from dualgraph.static import Eqn, Graph, Var, eval_graph, grad_graph, verify, vjp_graph
from dualgraph.static.passes import DEFAULT, cse, dce, fold, licm, optimize, simplify
from dualgraph.static.tracer import const_p

ALL_PASSES = [dce, cse, fold, simplify, licm, optimize]


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def same_results(g, o, *args):
    """``o`` computes exactly what ``g`` computes on ``args``: values, nan, signed zeros,
    dtype and shape."""
    args = [a if isinstance(a, dg.Tensor) else dg.Tensor(a) for a in args]
    with np.errstate(all="ignore"):
        want, got = eval_graph(g, args), eval_graph(o, args)
    assert len(want) == len(got)
    for w, r in zip(want, got):
        w, r = w.numpy(), r.numpy()
        assert w.dtype == r.dtype and w.shape == r.shape
        np.testing.assert_array_equal(r, w)  # nan == nan here
        if w.dtype.kind == "f":  # and -0.0 is not 0.0
            num = ~np.isnan(w)
            np.testing.assert_array_equal(np.signbit(r[num]), np.signbit(w[num]))


def check(p, g, *args):
    """Apply pass ``p``; the result verifies, computes the same, and ``g`` is untouched."""
    before = str(g)
    o = p(g)
    verify(o)
    assert str(g) == before, "a pass must not mutate its input"
    same_results(g, o, *args)
    return o


def names(g):
    return [e.prim.name for e in g.eqns]


def all_names(g):
    out = []
    for e in g.eqns:
        out.append(e.prim.name)
        for sub in e.params.values():
            if isinstance(sub, Graph):
                out.extend(all_names(sub))
    return out


def only(g, name):
    (e,) = [e for e in g.eqns if e.prim.name == name]
    return e


def newton_sqrt(a):
    def cond_fn(s):
        _, i = s
        return i < 8

    def body_fn(s):
        x, i = s
        return (x + a / x) * 0.5, i + 1

    x, _ = dg.while_loop(cond_fn, body_fn, (a * 1.0, dg.tensor(0)))
    return x.sum()


A3 = dg.tensor([2.0, 9.0, 16.0])


# ----------------------------------------------------------------------------------------
# dce
# ----------------------------------------------------------------------------------------


def test_dce_golden():
    g = dg.trace(lambda x: (x * 2, x + 1, dg.exp(x))[0], dg.ones(3))
    assert names(g) == ["mul", "add", "exp"]
    o = check(dce, g, A3)
    assert str(o) == (
        "{ lambda a:f32[3] .\n"
        "  let b:f32[3] = mul a 2\n"
        "  in (b) }"
    )


def test_dce_keeps_everything_live_and_tree():
    g = dg.trace(lambda x: {"s": (x * 2).sum(), "t": x - 1}, dg.ones(3))
    o = check(dce, g, A3)
    assert names(o) == names(g)
    assert set(o(A3)) == {"s", "t"}


def test_dce_inside_cond_drops_dead_work_outputs_and_operands():
    def f(x, y):
        def t(x, y):
            dead = dg.exp(x) * 3  # noqa: F841 - dead inside the branch
            return x + 1, y * 2
        def e(x, y):
            return x - 1, y * 3
        a, _ = dg.cond(x.sum() > 0, t, e, x, y)
        return a  # the second output is unused: both branches drop it, and then y is read by neither

    g = dg.trace(f, dg.ones(3), dg.ones(2))
    o = check(dce, g, A3, dg.tensor([1.0, 2.0]))
    c = only(o, "cond")
    assert len(c.outs) == 1 and len(c.inputs) == 2  # pred, x
    assert names(c.params["true_branch"]) == ["add"]
    assert names(c.params["false_branch"]) == ["sub"]
    same_results(g, o, -A3, dg.tensor([1.0, 2.0]))


def test_dce_drops_unused_cond_entirely():
    g = dg.trace(lambda x: (dg.cond(x.sum() > 0, lambda v: v * 2, lambda v: v, x), x + 1)[1],
                 dg.ones(3))
    o = check(dce, g, A3)
    assert names(o) == ["add"]


def test_dce_while_prunes_carries_and_consts():
    def f(x, y):
        def c(s):
            return s[0] < 5

        def b(s):
            i, a, b_, d = s
            # a feeds d (live), b_ is dead (reads the constant y), the counter i is read by c
            return i + 1, a * 2, b_ + y, d + a

        return dg.while_loop(c, b, (dg.tensor(0), x, x, x * 0))[3]

    g = dg.trace(f, dg.ones(3), dg.ones(3))
    o = check(dce, g, A3, A3 + 1)
    w = only(o, "while")
    assert [v.aval.str_short() for v in w.outs] == ["i64[]", "f32[3]", "f32[3]"]
    assert w.params["body_nconsts"] == 0  # y only fed the dead carry
    assert len(w.params["body_graph"].inputs) == 3
    assert names(w.params["body_graph"]) == ["add", "mul", "add"]


def test_dce_drops_unused_while_and_dead_code_in_body():
    def f(x):
        def body(i, v):
            unused = dg.exp(v)  # noqa: F841
            return v + 1

        return dg.fori_loop(0, 3, body, x), x * 2

    g = dg.trace(lambda x: f(x)[0], dg.ones(3))
    o = check(dce, g, A3)
    assert "exp" not in all_names(o)
    g2 = dg.trace(lambda x: f(x)[1], dg.ones(3))
    assert names(check(dce, g2, A3)) == ["mul"]


# ----------------------------------------------------------------------------------------
# cse
# ----------------------------------------------------------------------------------------


def test_cse_golden():
    g = dg.trace(lambda x: dg.exp(x * 2) + dg.exp(x * 2), dg.ones(3))
    o = check(cse, g, A3)
    assert str(o) == (
        "{ lambda a:f32[3] .\n"
        "  let b:f32[3] = mul a 2\n"
        "      c:f32[3] = exp b\n"
        "      d:f32[3] = add c c\n"
        "  in (d) }"
    )


def test_cse_literals_compare_by_type_and_bits():
    x = dg.tensor([-0.0, 1.0, -2.0])
    g = dg.trace(lambda x: (x + 0.0, x + -0.0, x * 2, x * 2.0, x * 2), x)
    o = check(cse, g, x)
    assert names(o) == ["add", "add", "mul", "mul"]  # only the second `x * 2` merges
    assert np.signbit(o(x)[1].numpy()[0])  # -0.0 + -0.0 stayed -0.0


def test_cse_nan_literals_compare_by_bits():
    # two NaNs with different payloads (repr prints both as nan): x + nan gives nan's bits
    nan_a, nan_b = np.array([0x7FF8000000000001, 0x7FF8000000000002], np.uint64).view(np.float64)
    x = dg.tensor([1.0, 2.0], dtype=dg.float64)
    g = dg.trace(lambda x: (x + float(nan_a), x + float(nan_b)), x)
    o = check(cse, g, x)
    assert names(o) == ["add", "add"]
    a, b = (t.numpy().view(np.uint64) for t in o(x))
    assert (a != b).all()


def _const_graph(a, b):
    """A graph returning const a + const b (hand-built: the tracer already shares a
    captured array by identity)."""
    x = Var(P.ShapedArray(a.shape, a.dtype))
    ca, cb = Var(P.ShapedArray(a.shape, a.dtype)), Var(P.ShapedArray(b.shape, b.dtype))
    out_aval = P.add_p.shape_rule(ca.aval, cb.aval)
    s, t = Var(out_aval), Var(out_aval)
    eqns = [
        Eqn(const_p, [], {"value": a}, [ca]),
        Eqn(const_p, [], {"value": b}, [cb]),
        Eqn(P.add_p, [x, ca], {}, [s]),
        Eqn(P.add_p, [x, cb], {}, [t]),
    ]
    return verify(Graph([x], eqns, [s, t]))


def test_cse_constants_by_value_when_small_by_identity_when_large():
    small = np.arange(4, dtype=np.float32)
    o = check(cse, _const_graph(small, small.copy()), np.ones(4, np.float32))
    assert names(o) == ["const", "add"]
    # same bytes, other dtype: not merged
    o = check(cse, _const_graph(small, small.view(np.int32)), np.ones(4, np.float32))
    assert names(o) == ["const", "const", "add", "add"]
    # one bit apart: not merged
    neg0 = small.copy()
    neg0[0] = -0.0
    o = check(cse, _const_graph(small, neg0), np.ones(4, np.float32))
    assert names(o).count("const") == 2
    big = np.arange(1000, dtype=np.float32)
    o = check(cse, _const_graph(big, big.copy()), np.ones(1000, np.float32))
    assert names(o).count("const") == 2  # equal but not the same object: not compared
    o = check(cse, _const_graph(big, big), np.ones(1000, np.float32))
    assert names(o) == ["const", "add"]


def test_cse_merges_alpha_equivalent_conds_and_recurses():
    def f(x):
        def t(v):
            return dg.exp(v) * dg.exp(v)

        def e(v):
            return v - 1

        p = x.sum() > 0
        return dg.cond(p, t, e, x) + dg.cond(p, t, e, x)

    g = dg.trace(f, dg.ones(3))
    assert names(g).count("cond") == 2
    o = check(cse, g, A3)
    assert names(o).count("cond") == 1
    assert names(only(o, "cond").params["true_branch"]) == ["exp", "mul"]
    same_results(g, o, -A3)


def test_cse_inside_while_body():
    def f(x):
        return dg.fori_loop(0, 3, lambda i, v: dg.tanh(v) + dg.tanh(v), x)

    g = dg.trace(f, dg.ones(3))
    o = check(cse, g, A3)
    assert names(only(o, "while").params["body_graph"]).count("tanh") == 1


# ----------------------------------------------------------------------------------------
# fold
# ----------------------------------------------------------------------------------------


def test_fold_golden_and_exact_dtype():
    c = dg.tensor([1.0, 2.0, 3.0])  # captured: a const equation

    g = dg.trace(lambda x: x * (c * 2 + 1), dg.ones(3))
    assert names(g) == ["const", "mul", "add", "mul"]
    o = check(fold, g, A3)
    assert str(o) == (
        "{ lambda a:f32[3] .\n"
        "  let b:f32[3] = const[value=array<f32[3]>]\n"
        "      c:f32[3] = mul a b\n"
        "  in (c) }"
    )
    np.testing.assert_array_equal(o.eqns[0].params["value"], np.array([3, 5, 7], np.float32))
    assert o.eqns[0].source == g.eqns[2].source  # the line of the equation it replaces


def test_fold_scalar_becomes_literal_only_when_exact():
    one = dg.tensor(1.0)  # f32[]
    g = dg.trace(lambda x: x * (one * 3), dg.ones(2))
    o = check(fold, g, dg.tensor([1.5, 2.0]))
    assert str(o) == "{ lambda a:f32[2] .\n  let b:f32[2] = mul a 3.0\n  in (b) }"
    # an f64 constant compared with an f32 input: a literal would compare in f32
    c64 = dg.tensor(np.float64(0.1))
    x = dg.tensor(np.array([0.1, 0.2], np.float32))
    g = dg.trace(lambda x: x > c64 * 1, x)
    o = check(fold, g, x)
    assert names(o) == ["const", "gt"]
    # an int constant times a float input: the result stays what the graph computed
    k = dg.tensor(3)
    g = dg.trace(lambda x: x * (k + 1), dg.ones(2))
    o = check(fold, g, dg.tensor([0.5, 1.5]))
    assert o.out_avals == g.out_avals


def test_fold_uniform_results_become_full_and_nan_inf_are_computed():
    inf = dg.tensor(np.array([np.inf, 1.0], np.float32))
    g = dg.trace(lambda x: x + inf * 0, dg.ones(2))
    o = check(fold, g, dg.tensor([1.0, 2.0]))
    assert names(o) == ["const", "add"]
    assert np.isnan(o.eqns[0].params["value"][0])  # inf * 0 folded to nan, not 0
    z = dg.zeros(4, 5)
    g = dg.trace(lambda x: x + (z + 1).sum(0), dg.ones(5))
    o = check(fold, g, dg.ones(5))
    assert str(o.eqns[0]).endswith("full[shape=(5,) value=4.0 dtype=float32]")


def test_fold_inside_bodies_and_known_predicates():
    c = dg.tensor(2.0)

    def f(x):
        body = lambda i, v: v * (c * c)  # c * c folds inside the body
        y = dg.fori_loop(0, 3, body, x)
        # the predicate is a constant: the cond is replaced by the taken branch
        return dg.cond(c > 1, lambda v: v + 1, lambda v: v - 1, y)

    g = dg.trace(f, dg.ones(3))
    o = check(fold, g, A3)
    assert "cond" not in names(o) and "sub" not in names(o)
    assert names(only(o, "while").params["body_graph"]) == ["add", "mul"]


def test_fold_leaves_loops_and_raising_equations():
    def f(x):
        a = dg.tensor([1.0, 2.0])
        s = dg.fori_loop(0, 3, lambda i, v: v * 2, a)  # all-constant loop: not run at compile time
        return x * s.sum()

    g = dg.trace(f, dg.ones(2))
    o = check(fold, g, dg.ones(2))
    assert "while" in names(o)
    # an index out of range: left in place, it fails when run, where it is reported
    g = dg.trace(lambda x: x + dg.tensor([1.0, 2.0])[dg.tensor([5])], dg.ones(1))
    o = fold(g)
    verify(o)
    assert "getitem" in names(o)
    with pytest.raises(dg.GraphExecutionError, match="getitem"):
        o(dg.ones(1))


def test_fold_keeps_a_known_pow_exponent_an_array():
    # pow with a Python-number exponent multiplies (x * x * x), with an array exponent it
    # calls np.power: the two round differently, so the exponent must not become a literal
    three = dg.tensor(3.0)
    x = dg.tensor(np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 10)
    g = dg.trace(lambda x: x ** three, x)
    o = check(fold, g, x)
    assert names(o) == ["const", "pow"]


# ----------------------------------------------------------------------------------------
# simplify
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x * 1,
        lambda x: 1 * x,
        lambda x: x * 1.0,
        lambda x: x + -0.0,
        lambda x: -0.0 + x,
        lambda x: x - 0,
        lambda x: x - 0.0,
        lambda x: x - dg.zeros(3),
        lambda x: x / 1,
        lambda x: x ** 1,
        lambda x: P.neg(P.neg(x)),
        lambda x: x.transpose(0, 1).transpose(0, 1),
        lambda x: dg.reshape(dg.reshape(x, (3, 2)), (2, 3)),
        lambda x: dg.reshape(x, (2, 3)),
        lambda x: P.broadcast_to(x, shape=(2, 3)),
        lambda x: P.convert(x, dtype=np.dtype(np.float32)),
        lambda x: x * dg.ones(2, 3),
        lambda x: x + dg.tensor(-0.0),
    ],
)
def test_simplify_identities_vanish(fn):
    x = dg.tensor([[1.0, -0.5, np.inf], [np.nan, 0.0, -0.0]])
    g = dg.trace(fn, x)
    assert g.eqns
    o = check(lambda g: dce(simplify(g)), g, x)
    assert names(o) == [] or set(names(o)) <= {"const", "full"}
    assert o.outputs[0] is o.inputs[0]
    assert np.signbit(o(x).numpy()[1, 2])  # -0.0 stays -0.0


@pytest.mark.parametrize("fn", [lambda x: x + 0, lambda x: 0 + x, lambda x: x + dg.zeros(2, dtype=dg.int64),
                                lambda x: x + False, lambda x: x - 0, lambda x: x * 1, lambda x: 1 * x])
def test_simplify_integer_identities_vanish(fn):
    x = dg.tensor([3, -4])
    g = dg.trace(fn, x)
    o = check(lambda g: dce(simplify(g)), g, x)
    assert o.outputs[0] is o.inputs[0]


def test_simplify_composes_transposes_and_reshapes():
    x = dg.randn(2, 3, 4)
    g = dg.trace(lambda x: P.transpose(P.transpose(x, perm=(1, 2, 0)), perm=(1, 2, 0)), x)
    o = check(lambda g: dce(simplify(g)), g, x)
    assert str(o) == (
        "{ lambda a:f32[2,3,4] .\n"
        "  let b:f32[4,2,3] = transpose[perm=(2,0,1)] a\n"
        "  in (b) }"
    )
    g = dg.trace(lambda x: dg.reshape(dg.reshape(x, (6, 4)), (4, 6)), x)
    o = check(lambda g: dce(simplify(g)), g, x)
    assert names(o) == ["reshape"] and o.eqns[0].params["shape"] == (4, 6)
    g = dg.trace(lambda x: P.broadcast_to(P.broadcast_to(x, shape=(3, 4)), shape=(2, 3, 4)),
                 dg.ones(4))
    o = check(lambda g: dce(simplify(g)), g, dg.randn(4))
    assert names(o) == ["broadcast_to"]


@pytest.mark.parametrize(
    "fn, x",
    [
        (lambda x: x + 0.0, dg.tensor([1, 2])),  # int + 0.0 is a float tensor
        (lambda x: x * 1.0, dg.tensor([1, 2])),
        (lambda x: x / 1, dg.tensor([1, 2])),  # int / int is float
        (lambda x: x * 1, dg.tensor([True, False])),  # bool * 1 is int
        (lambda x: x * dg.ones(2, 2), dg.tensor([1.0, 2.0])),  # broadcasts
        (lambda x: x + np.float64(0), dg.tensor([1.0, 2.0])),  # f32 + f64 scalar is f64
        (lambda x: x * 0, dg.tensor([1.0, np.inf, np.nan, -2.0])),  # inf * 0 = nan
        (lambda x: 0.0 * x, dg.tensor([np.inf, np.nan])),
        (lambda x: x * dg.zeros(2), dg.tensor([np.inf, 1.0])),
        # -0.0 + 0.0 is +0.0 (and 1 / x tells them apart): float x + 0 stays
        (lambda x: 1 / (x + 0), dg.tensor([-0.0, 1.0])),
        (lambda x: 1 / (0.0 + x), dg.tensor([-0.0, 1.0])),
        (lambda x: 1 / (x + dg.zeros(2)), dg.tensor([-0.0, 1.0])),
        (lambda x: 1 / (x - -0.0), dg.tensor([-0.0, 1.0])),
    ],
)
def test_simplify_keeps_type_changing_and_nan_producing_ops(fn, x):
    g = dg.trace(fn, x)
    o = check(lambda g: dce(simplify(g)), g, x)
    assert names(o) == names(g)
    assert o.out_avals == g.out_avals


def test_simplify_int_times_zero_is_zeros():
    x = dg.tensor([3, -4, 5])
    g = dg.trace(lambda x: x * 0 + 0 * x, x)
    o = check(lambda g: dce(simplify(g)), g, x)
    assert str(o) == (
        "{ lambda a:i64[3] .\n"
        "  let b:i64[3] = full[shape=(3,) value=0 dtype=int64]\n"
        "  in (b) }"
    )  # the second zeros is then the 0 of `zeros + 0`


def test_simplify_inside_cond_and_while():
    def f(x):
        y = dg.cond(x.sum() > 0, lambda v: P.neg(P.neg(v)) * 1, lambda v: v - 0, x)
        return dg.fori_loop(0, 2, lambda i, v: (v - 0) * 1 + 1, y)

    g = dg.trace(f, dg.ones(3))
    o = check(lambda g: dce(simplify(g)), g, A3)
    c = only(o, "cond")
    assert names(c.params["true_branch"]) == [] and names(c.params["false_branch"]) == []
    assert names(only(o, "while").params["body_graph"]) == ["add", "add"]  # i + 1, v + 1
    same_results(g, o, -A3)


# ----------------------------------------------------------------------------------------
# licm
# ----------------------------------------------------------------------------------------


def test_licm_hoists_out_of_while_loop_body_and_predicate():
    def f(x, n):
        def c(s):
            return s[0] < n * 2  # n * 2 is invariant in the predicate

        def b(s):
            i, v = s
            return i + 1, v + dg.exp(x) * 2  # exp(x) * 2 is invariant in the body

        return dg.while_loop(c, b, (dg.tensor(0), x * 0.0))[1]

    g = dg.trace(f, dg.ones(3), dg.tensor(2))
    o = check(licm, g, A3, dg.tensor(2))
    same_results(g, o, A3, dg.tensor(0))
    w = only(o, "while")
    assert names(w.params["body_graph"]) == ["add", "add"]
    assert names(w.params["cond_graph"]) == ["lt"]
    assert names(o) == ["mul", "const", "mul", "exp", "mul", "while"]
    assert w.params["body_nconsts"] == 2 and w.params["cond_nconsts"] == 2
    assert str(o) == """\
{ lambda a:f32[3] b:i64[] .
  let c:f32[3] = mul a 0.0
      d:i64[] = const[value=0]
      e:i64[] = mul b 2
      f:f32[3] = exp a
      g:f32[3] = mul f 2
      h:i64[] i:f32[3] = while[
        cond_nconsts=2
        body_nconsts=2
        cond_graph={ lambda j:i64[] k:f32[3] l:i64[] m:i64[] .
                     let n:bool[] = lt j m
                     in (n) }
        body_graph={ lambda o:i64[] p:f32[3] q:f32[3] r:f32[3] .
                     let s:i64[] = add o 1
                         t:f32[3] = add p r
                     in (s, t) }
      ] d c b e a g
  in (i) }"""
    # dce then drops the constants the loop no longer reads
    w = only(dce(o), "while")
    assert w.params["body_nconsts"] == 1 and w.params["cond_nconsts"] == 1


def test_licm_fori_loop_nested_inside_out():
    def f(x, w):
        def outer(j, acc):
            def inner(i, v):
                return v + dg.tanh(w * 3)  # invariant in both loops

            return dg.fori_loop(0, 3, inner, acc) * 0.5

        return dg.fori_loop(0, 4, outer, x)

    g = dg.trace(f, dg.ones(3), dg.ones(3))
    w = dg.tensor([0.1, 0.2, 0.3])
    o = check(licm, g, A3, w)
    assert names(o) == ["const", "mul", "tanh", "while"]  # moved out of both loops
    outer_body = only(o, "while").params["body_graph"]
    inner_body = only(outer_body, "while").params["body_graph"]
    assert "tanh" not in all_names(outer_body) and names(inner_body) == ["add", "add"]


def test_licm_zero_trip_loop_and_body_constants():
    c = dg.tensor([1.0, 2.0, 3.0])

    def f(x, n):
        return dg.fori_loop(0, n, lambda i, v: v + dg.exp(x * c), x)

    g = dg.trace(f, dg.ones(3), dg.tensor(3))
    o = check(licm, g, A3, dg.tensor(3))
    same_results(g, o, A3, dg.tensor(0))  # runs zero times: hoisted exp is harmless
    assert "exp" in names(o)


def test_licm_does_not_hoist_raising_ops_from_body_but_does_from_predicate():
    idx = dg.tensor([7])  # out of range for x: only a problem if the body runs

    def f(x, n):
        def c(s):
            return s[0] < n

        def b(s):
            i, v = s
            return i + 1, v + x[idx].sum()

        return dg.while_loop(c, b, (dg.tensor(0), x.sum() * 0))[1]

    g = dg.trace(f, dg.ones(3), dg.tensor(0))
    o = check(licm, g, A3, dg.tensor(0))  # zero trips: must not raise
    assert "getitem" in names(only(o, "while").params["body_graph"])

    def f2(x, n):
        def c(s):
            return s[0] < x[dg.tensor([0])].sum() + n

        return dg.while_loop(c, lambda s: (s[0] + 1, s[1] * 2), (dg.tensor(0.0), x))[1]

    g = dg.trace(f2, dg.ones(3), dg.tensor(1.0))
    o = check(licm, g, A3, dg.tensor(1.0))
    assert "getitem" in names(o)  # the predicate runs at least once

    # static indices and slices cannot fail at run time: hoisted from the body
    g = dg.trace(lambda x, n: dg.fori_loop(0, n, lambda i, v: v + x[1:].sum() * x[0], x), A3,
                 dg.tensor(2))
    o = check(licm, g, A3, dg.tensor(0))
    assert names(only(o, "while").params["body_graph"]) == ["add", "add"]


def test_licm_does_not_copy_a_raising_body_constant_out_of_the_loop():
    # buf[idx] reads only constants made in the body, so it stays there; a hoisted
    # equation reading it must not copy it out: out of range, it raises if evaluated
    def f(x, c, n):
        def body(i, v):
            idx = P.full(shape=(1,), value=5, dtype=np.dtype(np.int64))
            buf = P.full(shape=(3,), value=1.0, dtype=np.dtype(np.float32))
            return v + (buf[idx] + c).sum()

        return dg.fori_loop(0, n, body, x)

    x, c = dg.tensor(1.0), dg.tensor([2.0])
    g = dg.trace(f, x, c, dg.tensor(0))
    o = check(licm, g, x, c, dg.tensor(0))  # zero trips: must not raise
    assert "getitem" not in names(o)
    check(optimize, g, x, c, dg.tensor(0))


# ----------------------------------------------------------------------------------------
# pipeline, autodiff graphs, debug output
# ----------------------------------------------------------------------------------------


def test_optimize_runs_the_default_pipeline():
    assert [p.__name__ for p in DEFAULT] == ["dce", "cse", "fold", "simplify", "licm", "dce"]
    c = dg.tensor([1.0, 2.0, 3.0])

    def f(x):
        y = (x * 1 - 0) * (c * 0 + 1)
        return dg.fori_loop(0, 3, lambda i, v: v + dg.exp(y) + dg.exp(y), y * 1).sum()

    g = dg.trace(f, dg.ones(3))
    o = check(optimize, g, A3)
    assert str(o) == """\
{ lambda a:f32[3] .
  let b:i64[] = const[value=0]
      c:f32[3] = exp a
      d:i64[] e:f32[3] = while[
        cond_nconsts=0
        body_nconsts=1
        cond_graph={ lambda f:i64[] g:f32[3] .
                     let h:bool[] = lt f 3
                     in (h) }
        body_graph={ lambda i:i64[] j:f32[3] k:f32[3] .
                     let l:i64[] = add i 1
                         m:f32[3] = add j k
                         n:f32[3] = add m k
                     in (l, n) }
      ] b a c
      o:f32[] = reduce_sum[axes=(0,) keepdims=False] e
  in (o) }"""


def test_debug_env_var_prints_ir_after_each_pass(monkeypatch, capsys):
    g = dg.trace(lambda x: x * 1, dg.ones(2))
    monkeypatch.setenv("DUALGRAPH_DEBUG_PASSES", "1")
    optimize(g)
    err = capsys.readouterr().err
    for name in ["dce", "cse", "fold", "simplify", "licm"]:
        assert f"=== after {name} ===" in err
    assert "mul a 1" in err and "{ lambda a:f32[2] .\n  let" in err
    monkeypatch.setenv("DUALGRAPH_DEBUG_PASSES", "0")
    optimize(g)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("p", ALL_PASSES, ids=lambda p: p.__name__)
def test_every_pass_on_autodiff_graphs_of_newton_sqrt(p):
    g = dg.trace(newton_sqrt, A3)
    gg = grad_graph(g)
    o = check(p, gg, A3)
    check(p, o, A3 * 3)  # idempotent enough to run twice
    bwd = vjp_graph(g)
    check(p, bwd, A3, dg.tensor(1.5))


def test_optimize_shrinks_the_grad_graph_and_keeps_its_values():
    g = dg.trace(newton_sqrt, A3)
    gg = grad_graph(g)
    o = check(lambda g: optimize(g, verify=True), gg, A3)
    assert len(all_names(o)) < len(all_names(gg))
    _, grad = o(A3)
    np.testing.assert_allclose(grad.numpy(), 0.5 / np.sqrt(A3.numpy()), rtol=1e-5)


def test_fold_then_dce_on_cond_of_while_in_grad_graph():
    def f(x):
        y = dg.cond(x.sum() > 0, lambda v: dg.fori_loop(0, 2, lambda i, w: w * w * 0.5, v),
                    lambda v: v * 1.0 + 0, x)
        return y.sum()

    g = dg.trace(f, dg.ones(3))
    gg = grad_graph(g)
    for p in ALL_PASSES:
        check(p, gg, A3)
        check(p, gg, -A3)


# ----------------------------------------------------------------------------------------
# random programs: every pass, every program, same results
# ----------------------------------------------------------------------------------------

_LITS = [0, 1, 0.0, 1.0, -0.0, 2, 0.5, True]


def _random_program(seed):
    rng = np.random.default_rng(seed)
    consts = [dg.tensor(np.array([[0.0, 1.0, -1.0], [np.inf, 0.5, -0.0]], np.float32)),
              dg.tensor(np.array([1, 0, 2])), dg.tensor(1.0), dg.tensor(2)]

    def step(pool):
        a = pool[rng.integers(len(pool))]
        b = pool[rng.integers(len(pool))] if rng.random() < 0.6 else _LITS[rng.integers(len(_LITS))]
        k = rng.integers(12)
        if k < 5:
            op = [P.add, P.sub, P.mul, P.maximum, P.div][k]
            try:
                return op(a, b)
            except (TypeError, ValueError, RuntimeError):
                return None
        if k == 5:
            return -a if a.dtype != np.bool_ else None
        if k == 6:
            return dg.tanh(a) if a.dtype.kind == "f" else P.convert(a, dtype=np.dtype(np.float32))
        if k == 7 and a.ndim == 2:
            return a.transpose(0, 1)
        if k == 8 and a.ndim >= 1:
            return dg.reshape(a, (a.numel(),))
        if k == 9:
            return P.convert(a, dtype=a.dtype)
        if k == 10 and a.dtype.kind == "f":
            return dg.cond(a.sum() > 0, lambda v: v * 1 + 0, lambda v: P.neg(P.neg(v)) * 2, a)
        if k == 11 and a.dtype.kind == "f":
            c0 = pool[rng.integers(len(pool))]
            return dg.fori_loop(0, 2, lambda i, v: v * 0.5 + P.mul(c0, 1).sum(), a)
        return None

    def fn(x, n):
        pool = [x, n] + consts
        for _ in range(10):
            r = step(pool)
            if r is not None:
                pool.append(r)
        return tuple(pool[-3:])

    return fn


@pytest.mark.parametrize("seed", [*range(12), 600])  # 600: 1 / (x + 0) with x = -0.0
def test_random_programs(seed):
    fn = _random_program(seed)
    x = dg.tensor([[1.5, -2.0, np.nan], [0.0, -0.0, 3.0]])
    n = dg.tensor([3, -1, 0])
    g = dg.trace(fn, x, n)
    for p in ALL_PASSES:
        check(p, g, x, n)
