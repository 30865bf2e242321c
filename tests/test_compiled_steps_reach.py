"""``loss.backward()`` inside a compiled step leaves ``.grad`` as eager code does when the
tape does not reach a parameter on this call (a branch not taken, a loop that ran zero
times): None stays None, an existing gradient stays unchanged, and an optimizer step
after it skips the parameter (compile/effects.py, static/reach.py).

Each test runs the same step eagerly on one set of parameters and compiled on a copy and
compares after every call.
"""
import numpy as np
import pytest

import dualgraph as dg
from dualgraph.eager.tensor import _version_of


@pytest.fixture(autouse=True)
def _serial(monkeypatch):
    monkeypatch.setenv("DUALGRAPH_PARALLEL", "0")


def _params(k=2, seed=0):
    rng = np.random.default_rng(seed)
    return [dg.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True) for _ in range(k)]


def _same(ps, qs, what=""):
    for i, (p, q) in enumerate(zip(ps, qs)):
        np.testing.assert_allclose(q._value, p._value, rtol=1e-5, atol=1e-6, err_msg=f"{what} parameter {i}")
        assert (p.grad is None) == (q.grad is None), f"{what} grad {i}: eager {p.grad}, compiled {q.grad}"
        if p.grad is not None:
            np.testing.assert_allclose(q.grad._value, p.grad._value, rtol=1e-5, atol=1e-6, err_msg=f"{what} grad {i}")


def _loop_cond(w, v, zero):
    """The probe: a parameter read only by one branch of a cond inside a fori_loop."""
    def step(x, n):
        if zero:
            w.grad = None
            v.grad = None
        body = lambda i, c: dg.cond(x.sum() > 0, lambda c: c * w, lambda c: c * v, c)  # noqa: E731
        loss = dg.fori_loop(0, n, body, x).sum()
        loss.backward()
        return loss
    return step


# (x sign, trips): branch taken, not taken, zero trips, back again
CALLS = [(1, 2), (1, 2), (-1, 2), (-1, 3), (1, 0), (1, 0), (-1, 2), (1, 1), (-1, 0), (1, 2)]


@pytest.mark.parametrize("backend", ["numba", "interpreter"])
def test_grad_none_where_the_branch_is_not_taken(backend):
    pe, pc = _params(), _params()
    eager, comp = _loop_cond(*pe, True), dg.compile(_loop_cond(*pc, True), fullgraph=True, backend=backend)
    for k, (sign, n) in enumerate(CALLS):
        x = np.full(3, sign * (1 + 0.1 * k), np.float32)
        if n == 0:  # the loss reaches no parameter: it does not require grad
            for fn in (eager, comp):
                with pytest.raises(RuntimeError, match="does not require grad"):
                    fn(dg.tensor(x), dg.tensor(n))
        else:
            le, lc = eager(dg.tensor(x), dg.tensor(n)), comp(dg.tensor(x), dg.tensor(n))
            np.testing.assert_allclose(lc._value, le._value, rtol=1e-6)
        _same(pe, pc, f"call {k} (x {sign:+d}, {n} trips)")
    # variants: which parameter is not reached (w, v, or none assumed: the first trace for
    # a state) x which .grad are None on entry (a guard: 3 states); fullgraph=True: none
    # of the calls fell back to eager code
    (head,) = comp._cache.values()
    assert {frozenset(e.fx.assumed) for e in head.fx.variants} == {frozenset([id(pc[0])]), frozenset([id(pc[1])]),
                                                                  frozenset()}
    assert len(head.fx.variants) <= 9


def test_existing_grad_is_left_unchanged_when_not_reached():
    """Without zeroing, gradients accumulate: a parameter not reached keeps its .grad --
    the same tensor, the same values, the same version -- as eagerly."""
    pe, pc = _params(), _params()
    eager, comp = _loop_cond(*pe, False), dg.compile(_loop_cond(*pc, False), fullgraph=True)
    for k, (sign, n) in enumerate(CALLS):
        held = [q.grad for q in pc]
        versions = [None if g is None else _version_of(g) for g in held]
        x = np.full(3, sign * (1 + 0.1 * k), np.float32)
        if n == 0:
            continue
        eager(dg.tensor(x), dg.tensor(n))
        comp(dg.tensor(x), dg.tensor(n))
        _same(pe, pc, f"call {k}")
        reached = [sign > 0 and n > 0, sign < 0 and n > 0]
        for q, g, ver, r in zip(pc, held, versions, reached):
            if not r and g is not None:
                assert q.grad is g and _version_of(g) == ver


SGD = lambda ps: dg.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.05)  # noqa: E731
ADAMW = lambda ps: dg.optim.AdamW(ps, lr=0.05, weight_decay=0.1)  # noqa: E731


@pytest.mark.parametrize("make_opt,backend,calls", [
    (SGD, "interpreter", CALLS + CALLS),
    (ADAMW, "interpreter", CALLS + CALLS),
    # numba: the same capture, flags and write-backs (test 1 runs them in kernels), and
    # ~3 s of kernel compilation per variant
    pytest.param(SGD, "numba", CALLS + CALLS, marks=pytest.mark.slow),
    pytest.param(ADAMW, "numba", CALLS + CALLS, marks=pytest.mark.slow),
], ids=["sgd_momentum_wd", "adamw", "sgd_numba", "adamw_numba"])
def test_optimizer_skips_a_parameter_not_reached(make_opt, backend, calls):
    """opt.step() after backward(): eagerly a None .grad makes the optimizer skip the
    parameter (no weight decay, no momentum, no state); the compiled step leaves it and its
    state as eager code does, after every step."""
    pe, pc = _params(3), _params(3)

    def make(ps):
        w, v, u = ps
        opt = make_opt(ps)

        def step(x, n):
            opt.zero_grad()
            body = lambda i, c: dg.cond(x.sum() > 0, lambda c: c * w, lambda c: c * v, c)  # noqa: E731
            loss = (dg.fori_loop(0, n, body, x) * u).sum()
            loss.backward()
            opt.step()
            return loss
        return step, opt

    eager, oe = make(pe)
    cstep, oc = make(pc)
    comp = dg.compile(cstep, fullgraph=True, backend=backend)
    for k, (sign, n) in enumerate(calls):
        x = np.full(3, sign * (0.5 + 0.05 * k), np.float32)
        le, lc = eager(dg.tensor(x), dg.tensor(n)), comp(dg.tensor(x), dg.tensor(n))
        np.testing.assert_allclose(lc._value, le._value, rtol=1e-5)
        _same(pe, pc, f"call {k} (x {sign:+d}, {n} trips)")
        for p, q in zip(pe, pc):
            se, sc = oe.state[p], oc.state[q]
            assert se.keys() == sc.keys(), f"call {k}: state {se.keys()} vs {sc.keys()}"
            for key in se:
                np.testing.assert_allclose(sc[key]._value, se[key]._value, rtol=1e-5, atol=1e-6)
    (head,) = comp._cache.values()
    assert len({e.fx.assumed for e in head.fx.variants}) >= 3  # (v), (w), (w, v) not reached


def test_manual_update_of_a_grad_none_raises_as_eagerly():
    """``p.sub_(lr * p.grad)`` with p not reached: eagerly a TypeError (None), compiled too."""
    def make(w, v):
        def step(x, flag):
            w.grad = None
            v.grad = None
            loss = dg.cond(flag, lambda x: x * w, lambda x: x * v, x).sum()
            loss.backward()
            with dg.no_grad():
                w.sub_(0.1 * w.grad)
            return loss
        return step

    pe, pc = _params(), _params()
    eager, comp = make(*pe), dg.compile(make(*pc), fullgraph=True)  # (never eager instead)
    x = dg.tensor(np.ones(3, np.float32))
    for flag in (True, True, False, True, True, False, False, True):
        f = dg.tensor(np.array(flag))
        if flag:
            eager(x, f)
            comp(x, f)
        else:
            with pytest.raises(TypeError):
                eager(x, f)
            with pytest.raises(TypeError):
                comp(x, f)
        _same(pe, pc, f"flag {flag}")


def test_static_dependencies_keep_the_program_unchanged():
    """No control flow on parameters: no reach flags, no variant per reached set."""
    pc = _params()
    w, v = pc

    def step(x):
        w.grad = None
        v.grad = None
        loss = (x * w + dg.cond(x.sum() > 0, lambda x: x * 2, lambda x: x * 3, x) * v).sum()
        loss.backward()
        return loss

    comp = dg.compile(step, fullgraph=True)
    for s in (1, -1, 1, -1):
        comp(dg.tensor(np.full(3, s, np.float32)))
        assert w.grad is not None and v.grad is not None
    (head,) = comp._cache.values()
    for e in head.fx.variants:  # (one per .grad None or not on entry)
        assert e.fx.dyn == () and not e.fx.assumed
        assert len(e.graph.outputs) == e.fx.n_user + 2  # the two .grad, nothing else
