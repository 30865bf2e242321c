"""The foundation: the registry as the only op list, one dispatch point per thread,
layering, in-place semantics with version counters, exact zero gradients, parity fixes."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import dualgraph as dg
from dualgraph.ops import context, registry
from dualgraph.ops import primitives as P
from dualgraph.ops.registry import KINDS, PRIMITIVES, Primitive, ShapedArray

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---- the registry walk -------------------------------------------------------------------


def test_primitive_has_no_instance_dict():
    assert not hasattr(P.add_p, "__dict__")
    with pytest.raises(AttributeError):
        P.add_p.some_side_table_entry = 1


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_registry_entry_has_what_every_consumer_needs(name):
    prim = PRIMITIVES[name]
    assert isinstance(prim, Primitive)
    assert prim.kind in KINDS, f"{name}: kind"
    assert prim.arity is None or (isinstance(prim.arity, int) and prim.arity >= 0), f"{name}: arity"
    assert callable(prim.shape_rule), f"{name}: shape rule (tracer, verifier)"
    assert prim.grad_name and prim.grad_name[0].isupper(), f"{name}: eager grad_fn name"
    assert isinstance(prim.may_raise, bool) or callable(prim.may_raise), f"{name}: may_raise (licm)"
    assert isinstance(prim.literal_ok, bool), f"{name}: literal_ok (fold)"
    assert prim.saves is None or callable(prim.saves), f"{name}: saves (in-place checks)"
    assert hasattr(prim, "lowering"), f"{name}: the compiler's lowering slot"
    if prim.kind != "control":  # the function the rules call is generated from the entry
        f = getattr(P, prim.fn_name)
        assert f.primitive is prim
    if prim.kind == "control":
        assert prim.higher_order and callable(prim.eager_rule), f"{name}: eager rule"
        assert callable(prim.type_check), f"{name}: type check (verifier)"
    else:
        assert callable(prim.impl), f"{name}: numpy implementation"
        assert callable(prim.dtype_rule), f"{name}: dtype rule"
        assert not prim.higher_order
    for m in prim.tensor_methods:
        assert hasattr(dg.Tensor, m), f"{name}: Tensor.{m} not installed"


_DTYPES = [np.dtype(d) for d in (np.float32, np.float64, np.int64, np.bool_)]


def _operands(arity):
    """Every combination of array (dimensioned and 0-d) and Python-scalar operands."""
    kinds = [ShapedArray((3,), d) for d in _DTYPES] + [ShapedArray((), d) for d in _DTYPES] + [1.5, 2, True]
    return itertools.product(kinds, repeat=arity)


def _dummy(a):
    return np.ones(a.shape, a.dtype) if isinstance(a, ShapedArray) else a


@pytest.mark.parametrize("name", sorted(n for n, p in PRIMITIVES.items()
                                        if p.kind == "elementwise" and p.arity in (1, 2)))
def test_elementwise_dtype_rule_agrees_with_impl(name):
    """The dtype rule (which never runs impl) gives impl's dtype, or both refuse."""
    prim = PRIMITIVES[name]
    params = {"dtype": np.dtype(np.float64)} if name == "convert" else {}
    for ops in _operands(prim.arity):
        if all(not isinstance(a, ShapedArray) for a in ops):
            continue
        try:
            with np.errstate(all="ignore"):
                want = np.asarray(prim.impl(*[_dummy(a) for a in ops], **params)).dtype
        except TypeError:
            with pytest.raises(TypeError):
                prim.dtype_rule(*ops, **params)
            continue
        assert prim.dtype_rule(*ops, **params) == want, f"{name}{ops}"


def test_no_side_tables_of_ops_outside_the_registry():
    """The lists that used to live in the layers are gone."""
    import dualgraph.eager.engine as engine
    import dualgraph.eager.tensor as tensor
    import dualgraph.static.passes.fold as fold
    import dualgraph.static.passes.licm as licm

    assert not hasattr(engine, "_TORCH_NAMES")
    assert not hasattr(licm, "MAY_RAISE")
    assert not hasattr(fold, "NO_LITERALS")
    assert not hasattr(tensor, "_INPLACE_PRIMS")
    assert not hasattr(P, "FUNCTIONS")


def test_a_new_primitive_is_one_entry():
    """Registering an entry gives a generated function, a Tensor method and eager autograd."""
    prim = registry.register(Primitive(
        "twice_test", lambda x: x * 2, lambda x: ShapedArray(x.shape, x.dtype),
        lambda g, out, ins, need: (P.mul(g, 2),), kind="elementwise", arity=1,
        dtype_rule=lambda x: x.dtype, tensor_methods=("twice_test",)))
    try:
        from dualgraph.eager.tensor import _install_methods

        _install_methods()
        x = dg.tensor([1.0, 2.0], requires_grad=True)
        y = x.twice_test()
        assert type(y.grad_fn).__name__ == "TwiceTestBackward"
        y.sum().backward()
        assert x.grad.tolist() == [2.0, 2.0]
        g = dg.trace(lambda x: P.twice_test(x), dg.ones(2))
        assert [e.name for e in g.ops] == ["twice_test"]
    finally:
        del PRIMITIVES["twice_test"]
        delattr(dg.Tensor, "twice_test")


# ---- one dispatch point --------------------------------------------------------------------


def _program(x, w):
    y = x * w + 1.0           # operators
    y = dg.tanh(y) - w        # dg.* functions
    y = y.exp().sqrt()        # Tensor methods
    z = -y / 2.0
    z = abs(z) ** 2
    return (z @ w).sum() + dg.maximum(z, w).mean() + z.sum(dim=0).max()


def _spy(seen):
    prev = context.get().handler

    def spy(prim, args, params):
        seen.append(prim.name)
        return prev(prim, args, params)

    return spy


_EXPECTED = ["mul", "add", "tanh", "sub", "exp", "sqrt", "neg", "div", "abs", "pow", "matmul",
             "reduce_sum", "maximum", "reduce_sum", "div", "add", "reduce_sum", "reduce_max", "add"]


def test_spy_handler_sees_every_op_eagerly():
    x, w = dg.randn(3, 3), dg.randn(3, 3)
    plain = _program(x, w).item()
    seen = []
    with context.using(handler=_spy(seen)):
        spied = _program(x, w).item()
    assert seen == _EXPECTED
    assert spied == plain
    seen.clear()
    _program(x, w)  # out of the `with`: the default handler again
    assert seen == []


def test_spy_handler_sees_every_op_with_autograd_and_under_a_trace():
    x = dg.randn(3, 3)
    w = dg.randn(3, 3, requires_grad=True)
    seen = []
    with context.using(handler=_spy(seen)):
        _program(x, w).backward()
    assert seen[:len(_EXPECTED)] == _EXPECTED
    assert len(seen) > len(_EXPECTED)  # the VJP rules' ops went through it too
    seen.clear()
    with context.using(handler=_spy(seen)):
        g = dg.trace(_program, x, w)
    assert seen == _EXPECTED
    assert [e.name for e in g.ops] == _EXPECTED


def test_set_handler_returns_the_previous_and_is_per_thread():
    seen = []
    prev = registry.set_handler(_spy(seen))
    try:
        dg.ones(2) + 1
        other = []
        th = threading.Thread(target=lambda: other.append(context.get().handler))
        th.start()
        th.join()
        assert other == [context.default_handler()]
    finally:
        registry.set_handler(prev)
    assert seen == ["add"]


# ---- per-thread state -----------------------------------------------------------------------


def test_a_trace_in_one_thread_holds_only_its_own_equations():
    stop = threading.Event()
    errors = []

    def eager_worker():
        try:
            a = dg.ones(4, requires_grad=True)
            while not stop.is_set():
                (a * 3 + 1).exp().sum().backward()
                with dg.no_grad():
                    b = a * 2
                    assert not b.requires_grad
                assert (a * 2).requires_grad
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    th = threading.Thread(target=eager_worker)
    th.start()
    try:
        for _ in range(200):
            g = dg.trace(lambda x: (x * 2).tanh().sum(), dg.ones(3))
            assert [e.name for e in g.ops] == ["mul", "tanh", "reduce_sum"]
    finally:
        stop.set()
        th.join()
    assert not errors, errors


def test_grad_mode_is_per_thread():
    ready, done = threading.Event(), threading.Event()
    seen = {}

    def worker():
        ready.wait()
        a = dg.ones(2, requires_grad=True)
        seen["enabled"] = dg.is_grad_enabled()
        seen["records"] = (a * 2).requires_grad
        done.set()

    th = threading.Thread(target=worker)
    th.start()
    with dg.no_grad():
        ready.set()
        done.wait(10)
        assert not dg.is_grad_enabled()
    th.join()
    assert seen == {"enabled": True, "records": True}
    assert dg.is_grad_enabled()


def test_many_threads_no_grad_and_tracing_interleaved():
    results = []

    def work(k):
        for i in range(50):
            if (i + k) % 2:
                with dg.no_grad():
                    assert not (dg.ones(2, requires_grad=True) * 2).requires_grad
            else:
                g = dg.trace(lambda x: x + k, dg.ones(1))
                assert len(g.ops) == 1
        results.append(k)

    ths = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert sorted(results) == [0, 1, 2, 3]


def test_a_context_kept_alive_elsewhere_still_sees_every_op():
    """The fast path skips reading this thread's context only while no context with a
    handler/trace (or with grad off) is alive anywhere: a copied context that outlives
    its ``with`` keeps its spy seeing ops and its grad mode, and the flags clear once it
    is freed."""
    import contextvars
    import gc

    seen = []
    with context.using(handler=_spy(seen)):
        snapshot = contextvars.copy_context()
    with dg.no_grad():
        nograd = contextvars.copy_context()
    assert context.flags() == [True, True]
    w = dg.ones(2, requires_grad=True)
    snapshot.run(lambda: dg.tanh(w * 2) - 1)
    assert seen == ["mul", "tanh", "sub"]
    assert not nograd.run(lambda: (w * 2).requires_grad)
    assert (w * 2).requires_grad and seen == ["mul", "tanh", "sub"]
    del snapshot, nograd
    gc.collect()
    assert context.flags() == [False, False]
    assert (dg.tanh(w * 2) - 1).requires_grad and seen == ["mul", "tanh", "sub"]


# ---- layering ------------------------------------------------------------------------------

_LAYERS = ["ops", "eager", "static", "compile"]


@pytest.mark.parametrize("layer", ["ops", "eager", "static"])
def test_each_layer_imports_no_higher_layer(layer):
    """Imported alone (the package's __init__ not run), a layer pulls in no module of a
    layer above it."""
    higher = _LAYERS[_LAYERS.index(layer) + 1:]
    code = f"""
import sys, types
pkg = types.ModuleType("dualgraph")
pkg.__path__ = [{os.path.join(ROOT, 'dualgraph')!r}]
sys.modules["dualgraph"] = pkg
import dualgraph.{layer}
bad = sorted(m for m in sys.modules if m.split(".")[:2] in [["dualgraph", h] for h in {higher!r}])
print(",".join(bad))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"dualgraph.{layer} imports {out.stdout.strip()}"


# ---- in-place semantics ------------------------------------------------------------------------

MODIFIED = "modified by an inplace operation"


def test_write_to_a_saved_tensor_between_two_uses_raises():
    w = dg.tensor([1.0, 2.0], requires_grad=True)
    buf = dg.zeros(2)
    buf[:] = dg.tensor([3.0, 4.0])
    a = buf * w
    buf[:] = dg.tensor([10.0, 20.0])
    b = buf * w
    with pytest.raises(RuntimeError, match=MODIFIED) as e:
        (a + b).sum().backward()
    assert "MulBackward" in str(e.value)


def test_write_to_an_unsaved_input_is_fine():
    a = dg.tensor([1.0, 2.0], requires_grad=True)
    y = a * 1
    z = y + 1  # add saves nothing
    y *= 3
    (z.sum() + y.sum()).backward()
    assert a.grad.tolist() == [4.0, 4.0]
    assert z.tolist() == [2.0, 3.0] and y.tolist() == [3.0, 6.0]


def test_write_to_a_saved_output_raises():
    x = dg.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y += 1
    with pytest.raises(RuntimeError, match=r"output 0 of ExpBackward.*version 1; expected version 0"):
        y.sum().backward()


def test_write_through_a_view_updates_the_base_and_its_history():
    w = dg.tensor([1.0, 1.0, 1.0, 1.0], requires_grad=True)
    y = w * 2
    v = y[1:3]
    v += 10
    assert y.tolist() == [2.0, 12.0, 12.0, 2.0]
    (y * y).sum().backward()
    assert w.grad.tolist() == [8.0, 48.0, 48.0, 8.0]


def test_setitem_on_a_plain_tensor_records_the_gradient():
    w = dg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = dg.zeros(3)
    x[1:] = w[1:] * 3
    assert x.requires_grad and type(x.grad_fn).__name__ == "CopySlicesBackward"
    (x * x).sum().backward()
    assert w.grad.tolist() == [0.0, 36.0, 54.0]


def test_fill_and_copy_cut_the_old_history():
    w = dg.tensor([1.0, 2.0], requires_grad=True)
    s = dg.tensor([5.0, 6.0], requires_grad=True)
    y = w * 2
    y.copy_(s * 3)
    y.sum().backward()
    assert w.grad.tolist() == [0.0, 0.0] and s.grad.tolist() == [3.0, 3.0]
    w.grad = None
    y = w * 2
    y.fill_(7.0)
    assert y.tolist() == [7.0, 7.0]
    y.sum().backward()
    assert w.grad.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("op", [
    lambda t: t.__iadd__(1.0), lambda t: t.add_(1.0), lambda t: t.mul_(2.0), lambda t: t.sub_(1.0),
    lambda t: t.div_(2.0), lambda t: t.pow_(2.0), lambda t: t.fill_(0.0), lambda t: t.zero_(),
    lambda t: t.copy_(dg.ones(2)), lambda t: t.__setitem__(0, 1.0),
])
def test_every_in_place_op_on_a_leaf_that_requires_grad_raises(op):
    w = dg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        op(w)
    with dg.no_grad():
        op(w)  # allowed, as torch: an optimizer step


def test_views_see_writes_and_versions_move_together():
    x = dg.zeros(4)
    v = x[1:3]
    x += 1
    assert v.tolist() == [1.0, 1.0]
    v *= 5
    assert x.tolist() == [1.0, 5.0, 5.0, 1.0]
    assert x._meta.version is v._meta.version and x._meta.version[0] == 2


def test_a_sibling_view_written_through_another_view_is_re_derived():
    w = dg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    u = dg.tensor([10.0], requires_grad=True)
    y = w * 1
    a, b = y[0:2], y[1:3]
    a[1:] = u * 2  # writes y[1], which b sees
    assert b.tolist() == [20.0, 3.0]
    (b * b).sum().backward()
    assert u.grad.tolist() == [80.0]
    assert w.grad.tolist() == [0.0, 0.0, 6.0]


def test_in_place_dtype_rules_as_torch():
    x = dg.tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast"):
        x += 0.5
    x[0] = 7.9  # setitem casts, as torch
    assert x.tolist() == [7, 2]
    e = dg.ones(3).expand(2, 3) if False else None  # noqa: F841 (expand copies small tensors)


def test_in_place_shape_mismatch_raises():
    x = dg.zeros(3)
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        x += dg.ones(2, 3)


def test_traced_in_place_updates_are_functional():
    def f(x, v):
        y = x * 1
        y += 1
        y[0] = v
        y[1:] *= 2
        return y

    g = dg.trace(f, dg.ones(3), dg.tensor(5.0))
    names = [e.name for e in g.ops]
    # y[1:] *= 2 is `t = y[1:]; t *= 2; y[1:] = t` in Python: the write through the view
    # and the setitem each update y
    assert names.count("index_set") == 3 and "add" in names
    x = dg.tensor([1.0, 2.0, 3.0])
    assert g(x, dg.tensor(5.0)).tolist() == f(x, dg.tensor(5.0)).tolist() == [5.0, 6.0, 8.0]
    # and differentiable: the gradient of the traced graph equals eager
    gx = dg.grad(lambda x: f(x, dg.tensor(5.0)).sum())
    assert gx(x).tolist() == [0.0, 2.0, 2.0]
    tg = dg.trace(gx, dg.ones(3))
    assert tg(x).tolist() == [0.0, 2.0, 2.0]


def test_traced_in_place_errors_name_the_user_line():
    def f(x):
        y = x * 1
        y[0] = dg.ones(2)  # shape mismatch
        return y

    with pytest.raises(RuntimeError, match=r"index_set.*\n  at .*test_foundation.py"):
        dg.trace(f, dg.ones(3))


# ---- exact zeros -------------------------------------------------------------------------------


def test_gradient_of_a_constant_is_an_exact_zero():
    x = dg.tensor([np.inf, np.nan, -1.0])
    assert dg.grad(lambda x: dg.tensor(3.0))(x).tolist() == [0.0, 0.0, 0.0]
    g = dg.grad(lambda x: (x * 0).sum() * 0 + dg.tensor(1.0))(dg.tensor([1.0, 2.0]))
    assert g.tolist() == [0.0, 0.0]


def test_zero_cotangents_are_exact_at_inf_and_nan():
    x = dg.tensor([-1.0, 2.0, 3.0], requires_grad=True)
    with np.errstate(invalid="ignore"):
        (dg.relu(x) * float("inf")).sum().backward()
    assert x.grad.tolist() == [0.0, np.inf, np.inf]
    a = dg.tensor([1.0, 5.0], requires_grad=True)
    b = dg.tensor([3.0, 2.0], requires_grad=True)
    (dg.maximum(a, b) * float("inf")).sum().backward()
    assert a.grad.tolist() == [0.0, np.inf] and b.grad.tolist() == [np.inf, 0.0]
    c = dg.tensor([True, False])
    x = dg.tensor([1.0, 2.0], requires_grad=True)
    (dg.where(c, x, 0.0) * float("nan")).sum().backward()
    assert np.isnan(x.grad.numpy()[0]) and x.grad.numpy()[1] == 0.0


def test_grad_of_an_integer_output_raises():
    with pytest.raises(TypeError, match="real- or complex-valued"):
        dg.grad(lambda x: (x > 0).sum())(dg.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="int64"):
        dg.grad(lambda x: x.argmax())(dg.tensor([1.0, 2.0]))


# ---- parity fixes ------------------------------------------------------------------------------


def test_hooks_run_before_retained_grad_is_stored():
    x = dg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    h.register_hook(lambda g: g * 10)
    h.retain_grad()  # twice: not doubled
    assert h.retains_grad and not x.retains_grad
    h.sum().backward()
    assert h.grad.tolist() == [10.0, 10.0]
    assert x.grad.tolist() == [20.0, 20.0]


def test_max_min_with_dim_return_values_and_indices():
    x = dg.tensor([[1.0, 5.0], [3.0, 2.0]], requires_grad=True)
    r = x.max(dim=1)
    values, indices = r
    assert values.tolist() == [5.0, 3.0] and indices.tolist() == [1, 0]
    assert r.values is values and r.indices is indices and indices.dtype == np.int64
    assert dg.min(x, 0).indices.tolist() == [0, 1]
    values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_numpy_scalars_promote_like_python_scalars():
    t = dg.tensor([1.0, 4.0])
    assert (t / np.float64(2.0)).dtype == np.float32
    assert (t * np.sqrt(4)).dtype == np.float32
    assert (dg.tensor([1, 2]) * np.int64(8)).dtype == np.int64
    assert (np.float64(2.0) + t).dtype == np.float32
    assert dg.where(dg.tensor([True, False]), 1.0, 0.0).dtype == np.float32
    assert dg.where(dg.tensor([True, False]), 1, 0).dtype == np.int64


def test_shape_mismatch_is_a_runtime_error():
    with pytest.raises(RuntimeError, match=r"add: shapes \(2,\) and \(3,\)"):
        dg.ones(2) + dg.ones(3)
    with pytest.raises(RuntimeError, match="matmul"):
        dg.ones(2, 3) @ dg.ones(2, 3)


def test_detach_under_a_trace_stops_ir_autodiff_too():
    from dualgraph.static import grad_graph

    w = dg.tensor([1.0, 2.0, 3.0])
    g = dg.trace(lambda w: (w.detach() * w).sum(), w)
    assert [e.name for e in g.ops] == ["stop_gradient", "mul", "reduce_sum"]
    assert grad_graph(g)(w)[1].tolist() == [1.0, 2.0, 3.0]  # as the tape: d/dw = detach(w)
    assert dg.grad(lambda w: (w.detach() * w).sum())(w).tolist() == [1.0, 2.0, 3.0]
