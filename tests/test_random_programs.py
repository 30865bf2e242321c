"""Random programs (hypothesis): eager == traced interpreter, the verifier accepts every
graph, and IR-autodiff gradients == the eager tape's gradients.

A program is data: a list of statements, each appending one float64 value to an
environment that starts with the inputs.  Values have one of three shapes, (), (3,) and
(2, 3), so any two broadcast.  ``cond`` and loop statements carry sub-programs that read
the enclosing environment (closures).  One interpreter, ``run``, executes a program in
two modes: ``"dg"`` with ``dg.cond``/``dg.fori_loop``/``dg.while_loop`` (run eagerly or
traced) and ``"py"`` with plain Python ``if``/``for``/``while`` (the oracle).
"""
import importlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dualgraph as dg
from dualgraph.static import grad_graph, verify

SHAPES = [(), (3,), (2, 3)]
F64 = np.float64

UNARY = {
    "neg": lambda a: -a,
    "tanh": dg.tanh,
    "sigmoid": dg.sigmoid,
    "abs": dg.abs,
    "exp_t": lambda a: dg.exp(dg.tanh(a)),
    "log1p2": lambda a: dg.log(a * a + 1.0),
    "sqrt1p2": lambda a: dg.sqrt(1.0 + a * a),
    "square": lambda a: a**2,
    "relu": dg.relu,
    "scale": lambda a: a * 0.5 - 0.25,
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
    "maximum": dg.maximum,
    "minimum": dg.minimum,
}
# reductions: (name, input shape, output shape, function)
REDUCE = [
    ("sum", (3,), (), lambda a: a.sum()),
    ("mean", (2, 3), (), lambda a: a.mean()),
    ("sum0", (2, 3), (3,), lambda a: a.sum(0)),
    ("max0", (2, 3), (3,), lambda a: a.max(0).values),
    ("max", (3,), (), lambda a: a.max()),
    ("softmax1", (2, 3), (2, 3), lambda a: dg.softmax(a, 1)),
    ("row1", (2, 3), (3,), lambda a: a[1]),
    ("elem", (3,), (), lambda a: a[-1]),
    ("cols", (2, 3), (2, 3), lambda a: a[:, np.array([2, 0, 0])]),
    ("dot", (3,), (), lambda a: a @ dg.tanh(a)),
    ("stack", (3,), (2, 3), lambda a: dg.stack([a, a * 2.0])),
    ("T", (2, 3), (2, 3), lambda a: (a.T * 1.5).T),
]


def bshape(*shapes):
    return tuple(np.broadcast_shapes(*shapes))


# ----------------------------------------------------------------------------------------
# generation
# ----------------------------------------------------------------------------------------


@st.composite
def block(draw, env_shapes, depth, min_len=1, max_len=4):
    """A list of statements over an environment of ``env_shapes``; returns (stmts, shapes)."""
    shapes = list(env_shapes)
    stmts = []
    n = draw(st.integers(min_len, max_len))
    for _ in range(n):
        idx = st.integers(0, len(shapes) - 1)
        kinds = ["un", "bin", "bin", "red", "where"] + (["cond", "fori", "while"] if depth > 0 else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "un":
            i = draw(idx)
            stmts.append(("un", draw(st.sampled_from(sorted(UNARY))), i))
            shapes.append(shapes[i])
        elif kind == "bin":
            i, j = draw(idx), draw(idx)
            stmts.append(("bin", draw(st.sampled_from(sorted(BINARY))), i, j))
            shapes.append(bshape(shapes[i], shapes[j]))
        elif kind == "red":
            cands = [(k, r) for k, r in enumerate(REDUCE) if r[1] in shapes]
            if not cands:
                i = draw(idx)
                stmts.append(("un", "tanh", i))
                shapes.append(shapes[i])
                continue
            k, r = draw(st.sampled_from(cands))
            i = draw(st.sampled_from([p for p, s in enumerate(shapes) if s == r[1]]))
            stmts.append(("red", k, i))
            shapes.append(r[2])
        elif kind == "where":
            i, j, k, m = (draw(idx) for _ in range(4))
            stmts.append(("where", i, j, k, m))
            shapes.append(bshape(shapes[i], shapes[j], shapes[k], shapes[m]))
        elif kind == "cond":
            p = draw(idx)
            out = draw(st.sampled_from(SHAPES))
            op_shapes = shapes[-2:] if len(shapes) >= 2 else shapes * 2
            t, _ = draw(block(shapes + op_shapes, depth - 1, 1, 3))
            f, _ = draw(block(shapes + op_shapes, depth - 1, 1, 3))
            # operands passed explicitly (the last two values) or captured by closure
            explicit = draw(st.booleans())
            stmts.append(("cond", p, t, f, out, explicit))
            shapes.append(out)
        elif kind == "fori":
            c = draw(idx)
            n_trips = draw(st.integers(0, 3))
            body, _ = draw(block(shapes + [shapes[c], ()], depth - 1, 1, 3))
            stmts.append(("fori", c, n_trips, body))
            shapes.append(shapes[c])
        else:  # while with a data-dependent stop and at most max_trips trips
            c = draw(idx)
            max_trips = draw(st.integers(0, 5))
            limit = draw(st.sampled_from([-1.0, 0.0, 0.5, 1.5, 3.0]))
            body, _ = draw(block(shapes + [shapes[c]], depth - 1, 1, 3))
            stmts.append(("while", c, max_trips, limit, body))
            shapes.append(shapes[c])
    return stmts, shapes


@st.composite
def programs(draw, depth=2, max_len=6):
    in_shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3))
    stmts, _ = draw(block(in_shapes, depth, 1, max_len))
    seed = draw(st.integers(0, 2**31 - 1))
    return in_shapes, stmts, seed


def inputs_for(in_shapes, seed):
    rng = np.random.default_rng(seed)
    return [dg.tensor(rng.uniform(-2.0, 2.0, size=s).astype(F64)) for s in in_shapes]


# ----------------------------------------------------------------------------------------
# the one interpreter of programs, in two modes
# ----------------------------------------------------------------------------------------


def adapt(v, shape):
    """Bring ``v`` to ``shape`` (so branches and loop bodies keep their types)."""
    if tuple(v.shape) == shape:
        return v
    v = v.sum()
    if shape != ():
        v = v + dg.zeros(*shape, dtype=dg.float64)
    return v


def run(stmts, env, mode):
    env = list(env)
    for st_ in stmts:
        env.append(step(st_, env, mode))
    return env[-1]


def step(s, env, mode):
    kind = s[0]
    if kind == "un":
        return UNARY[s[1]](env[s[2]])
    if kind == "bin":
        return BINARY[s[1]](env[s[2]], env[s[3]])
    if kind == "red":
        return REDUCE[s[1]][3](env[s[2]])
    if kind == "where":
        _, i, j, k, m = s
        return dg.where(env[i] > env[j], env[k], env[m])
    if kind == "cond":
        _, p, t, f, out, explicit = s
        pred = env[p].sum() > 0
        ops = env[-2:] if len(env) >= 2 else env * 2

        def tf(*a):
            return adapt(run(t, env + list(a if explicit else ops), mode), out)

        def ff(*a):
            return adapt(run(f, env + list(a if explicit else ops), mode), out)

        if mode == "dg":
            return dg.cond(pred, tf, ff, *ops) if explicit else dg.cond(pred, tf, ff)
        return tf(*ops) if pred else ff(*ops)
    if kind == "fori":
        _, c, n_trips, body = s
        shape = tuple(env[c].shape)

        def fbody(i, v):
            # the carry always feeds the next one, so trip order matters to the gradient;
            # the counter is visible to the body as a float
            return dg.tanh(adapt(run(body, env + [v, i.double() * 0.25], mode), shape) + v)

        if mode == "dg":
            return dg.fori_loop(0, n_trips, fbody, env[c])
        v = env[c]
        for i in range(n_trips):
            v = fbody(dg.tensor(i), v)
        return v
    if kind == "while":
        _, c, max_trips, limit, body = s
        shape = tuple(env[c].shape)

        def wbody(v):
            return 0.8 * dg.tanh(adapt(run(body, env + [v], mode), shape) + v) + 0.25

        if mode == "dg":
            k, v = dg.while_loop(
                lambda kv: (kv[0] < max_trips) & (kv[1].sum() < limit),
                lambda kv: (kv[0] + 1, wbody(kv[1])),
                (dg.tensor(0), env[c]),
            )
            return v
        k, v = 0, env[c]
        while k < max_trips and v.sum() < limit:
            k, v = k + 1, wbody(v)
        return v
    raise AssertionError(kind)


def program_fn(stmts, mode):
    def f(*xs):
        return run(stmts, xs, mode)

    return f


def scalar_fn(stmts, mode):
    def f(*xs):
        return adapt(run(stmts, xs, mode), ()) * 1.0

    return f


# ----------------------------------------------------------------------------------------
# the properties
# ----------------------------------------------------------------------------------------

try:
    _passes = importlib.import_module("dualgraph.static.passes")
except ImportError:  # pragma: no cover
    _passes = None


def _np(t):
    return t.detach().numpy()


def _optimizers():
    """``optimize`` and every individual pass the passes package lists, if it exists."""
    if _passes is None or not hasattr(_passes, "optimize"):
        return []
    fns = [("optimize", _passes.optimize)]
    for attr in ("DEFAULT", "PASSES", "DEFAULT_PASSES", "ALL_PASSES"):
        for p in getattr(_passes, attr, None) or ():
            name = getattr(p, "__name__", repr(p))
            if name not in dict(fns):
                fns.append((name, p))
    return fns


def check_program(prog):
    in_shapes, stmts, seed = prog
    xs = inputs_for(in_shapes, seed)

    # values: plain Python == dg eager == traced interpreter (bit for bit: same numpy ops)
    ref = program_fn(stmts, "py")(*xs)
    eager = program_fn(stmts, "dg")(*xs)
    g = verify(dg.trace(program_fn(stmts, "dg"), *xs))
    out = g(*xs)
    np.testing.assert_array_equal(_np(eager), _np(ref))
    np.testing.assert_array_equal(_np(out), _np(ref))
    assert tuple(g.outputs[0].aval.shape) == tuple(ref.shape)

    for name, opt in _optimizers():
        og = verify(opt(g))
        np.testing.assert_allclose(_np(og(*xs)), _np(ref), rtol=1e-12, atol=1e-12, err_msg=name)

    # gradients of the scalar program with respect to every input
    argnums = tuple(range(len(xs)))
    leaves = [x.detach().requires_grad_() for x in xs]
    scalar_fn(stmts, "py")(*leaves).backward()
    tape = [np.zeros(x.shape) if x.grad is None else _np(x.grad) for x in leaves]

    f = scalar_fn(stmts, "dg")
    g1 = verify(dg.trace(dg.grad(f, argnums=argnums), *xs))
    fwd = verify(dg.trace(f, *xs))
    g2 = verify(grad_graph(fwd, argnums=argnums))
    got1 = g1(*xs)
    value, *got2 = g2(*xs)
    np.testing.assert_allclose(_np(value), _np(scalar_fn(stmts, "py")(*xs)), rtol=1e-12)
    for k, t in enumerate(tape):
        np.testing.assert_allclose(_np(got1[k]), t, rtol=1e-9, atol=1e-12, err_msg=f"trace(grad) arg {k}")
        np.testing.assert_allclose(_np(got2[k]), t, rtol=1e-9, atol=1e-12, err_msg=f"grad_graph arg {k}")
    for name, opt in _optimizers():
        for bg in (g1, g2):
            og = verify(opt(bg))
            for a, b in zip(og(*xs), bg(*xs)):
                np.testing.assert_allclose(_np(a), _np(b), rtol=1e-12, atol=1e-12, err_msg=name)


COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=50, derandomize=True, **COMMON)
@given(programs())
def test_random_programs(prog):
    check_program(prog)


@pytest.mark.slow
@settings(max_examples=1000, **COMMON)
@given(programs(depth=3, max_len=8))
def test_random_programs_long(prog):
    check_program(prog)


def test_generator_covers_control_flow():
    # the strategy really produces nested cond/while programs (guards against a generator
    # that silently degenerates to straight-line code)
    seen = set()

    @settings(max_examples=60, derandomize=True, **COMMON)
    @given(programs())
    def collect(prog):
        def walk(stmts, depth):
            for s in stmts:
                seen.add(s[0])
                if s[0] == "cond":
                    seen.add("nested") if depth else None
                    walk(s[2], depth + 1)
                    walk(s[3], depth + 1)
                elif s[0] in ("fori", "while"):
                    seen.add("nested") if depth else None
                    walk(s[-1], depth + 1)

        walk(prog[1], 0)

    collect()
    assert {"un", "bin", "red", "where", "cond", "fori", "while", "nested"} <= seen, seen


def test_known_program():
    # a fixed program through the same checker: cond inside a while inside a cond
    inner = [("bin", "mul", 2, 0), ("un", "tanh", 3)]
    loop = ("while", 1, 3, 2.0, inner)
    prog = ([(3,), (2, 3)], [("cond", 0, [loop], [("un", "exp_t", 1)], (2, 3), True), ("red", 1, 2)], 5)
    check_program(prog)
