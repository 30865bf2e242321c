"""The no_grad fast path of ops.context: numpy's ContextVars adopted per context, the one
shared no_grad context (NG) whose liveness is its reference count, and the fast ops'
shared code and 0-d results (benchmarks/eager_overhead_results.md says why)."""
from __future__ import annotations

import contextvars
import gc
import sys
import threading

import numpy as np
import pytest

import dualgraph as dg
from dualgraph.ops import context

_tensor_mod = sys.modules["dualgraph.eager.tensor"]


def _fresh(fn):
    """Run ``fn`` in an empty context, as a new thread or ``Context().run`` would."""
    return contextvars.Context().run(fn)


def _names():
    return {v.name for v in contextvars.copy_context()}


def test_first_no_grad_in_a_context_sets_numpy_vars_to_their_values_there_only():
    def body():
        before = _names()
        errs = np.geterr()
        with dg.no_grad():
            pass
        after = _names()
        return before, after, errs, np.geterr(), context.get() is context.BASE

    before, after, errs, errs_after, is_base = _fresh(body)
    assert "dualgraph" not in before and "numpy.ufunc.extobj" not in before
    assert {"dualgraph", "numpy.ufunc.extobj", "current_allocator"} <= after
    assert errs_after == errs and is_base
    assert not context.flags()[1]


def test_numpy_errstate_keeps_its_meaning_around_and_inside_no_grad():
    def body():
        a = np.ones(3, np.float32)
        z = np.zeros(3, np.float32)
        with np.errstate(divide="raise"):  # adopted inside: errstate's exit still restores
            with dg.no_grad():
                with pytest.raises(FloatingPointError):
                    a / z
        default = np.geterr()
        with dg.no_grad():
            with np.errstate(divide="ignore"):
                assert np.all(np.isinf(a / z))
            with np.errstate(divide="raise"):
                with pytest.raises(FloatingPointError):
                    dg.tensor(a) / dg.tensor(z)
        return default

    default = _fresh(body)
    assert default == np.geterr() and default["divide"] == "warn"


def test_adopting_in_one_context_changes_no_other():
    outer = np.geterr()

    def body():
        with dg.no_grad():
            np.seterr(over="ignore")  # permanent in this context only
        return np.geterr()

    inner = _fresh(body)
    assert inner["over"] == "ignore"
    assert np.geterr() == outer


def test_plain_no_grad_shares_one_context_and_clears_the_flag_on_exit():
    # (no local name holds context.get() here: a held NG keeps the flag True, correctly)
    w = dg.ones(2, requires_grad=True)
    with dg.no_grad():
        assert context.get() is context.NG
        assert context.FAST_NS["NO_GRAD_ON"] and not (w * 2).requires_grad
        with dg.enable_grad():
            assert (w * 2).requires_grad
            with dg.no_grad():
                assert context.get() is context.NG and not (w * 2).requires_grad
            assert (w * 2).requires_grad
        assert not (w * 2).requires_grad
    # the raw flag, not flags() (which re-checks): the fast path reads this one
    assert context.FAST_NS["NO_GRAD_ON"] is False
    assert (w * 2).requires_grad
    held = []
    with dg.no_grad():
        held.append(context.get())
    assert context.FAST_NS["NO_GRAD_ON"] is True  # still held: ops read their context
    assert (w * 2).requires_grad
    held.clear()
    assert context.flags() == [False, False]


def test_no_grad_decorator_and_set_grad_enabled_use_and_release_it():
    w = dg.ones(2, requires_grad=True)

    @dg.no_grad()
    def f():
        return (w * 2).requires_grad

    assert f() is False and context.FAST_NS["NO_GRAD_ON"] is False
    with dg.set_grad_enabled(False):
        assert not (w * 2).requires_grad
    assert context.FAST_NS["NO_GRAD_ON"] is False and (w * 2).requires_grad


def test_another_thread_leaving_no_grad_keeps_the_flag_while_this_one_is_inside():
    w = dg.ones(2, requires_grad=True)
    inside, left = threading.Event(), threading.Event()
    out = []

    def worker():
        with dg.no_grad():
            inside.set()
            left.wait(10)
            out.append((w * 2).requires_grad)

    th = threading.Thread(target=worker)
    th.start()
    inside.wait(10)
    with dg.no_grad():
        pass  # this thread leaves NG while the worker still holds it
    assert context.FAST_NS["NO_GRAD_ON"] is True
    assert (w * 2).requires_grad
    left.set()
    th.join()
    assert out == [False]
    assert context.flags() == [False, False]


def test_a_copied_no_grad_context_keeps_its_mode_and_the_flag_until_freed():
    w = dg.ones(2, requires_grad=True)
    with dg.no_grad():
        snap = contextvars.copy_context()
    assert context.flags()[1] is True
    assert (w * 2).requires_grad
    assert snap.run(lambda: (w * 2).requires_grad) is False
    del snap
    gc.collect()
    assert context.flags()[1] is False


def test_backward_leaves_no_no_grad_flag_behind():
    w = dg.ones(3, requires_grad=True)
    (dg.tanh(w * 2) - 1).sum().backward()
    assert context.FAST_NS["NO_GRAD_ON"] is False
    assert np.allclose(w.grad.numpy(), 2 * (1 - np.tanh(2.0) ** 2))


def test_fast_ops_with_the_same_text_share_code_and_0d_results_are_arrays():
    P = sys.modules["dualgraph.ops.primitives"]
    assert P.add.__code__ is P.mul.__code__ is P.sub.__code__
    assert P.tanh.__code__ is P.exp.__code__
    assert len(_tensor_mod._FAST_CODE) < 16
    a = dg.tensor(2.0)
    b = dg.tensor(3)
    for r in (a * a, a + 1.0, 1.0 - a, dg.tanh(a), dg.exp(b), a * b):
        assert r.shape == () and r._value.__class__ is np.ndarray
    with dg.no_grad():
        assert (a * a)._value.__class__ is np.ndarray
