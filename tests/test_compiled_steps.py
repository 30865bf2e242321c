"""PyTorch-style compiled training steps: ``loss.backward()`` and in-place parameter /
optimizer-state updates inside ``dg.compile`` (compile/effects.py).

Every test runs the same step eagerly on one model and compiled on a copy with the same
initial weights, and compares losses, parameters, ``.grad`` and optimizer state after each
step.  Numba kernels are compiled serially only (``DUALGRAPH_PARALLEL=0``) to keep the file
short; several tests use the interpreter backend (same capture, same effects).
"""
import warnings

import numpy as np
import pytest

import dualgraph as dg
from dualgraph.compile.api import CompileWarning
from dualgraph.compile.codegen import CompileError

F = dg.nn.functional
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(autouse=True)
def _serial(monkeypatch):
    monkeypatch.setenv("DUALGRAPH_PARALLEL", "0")


def _mlp(seed=0):
    rng = np.random.default_rng(seed)
    m = dg.nn.Sequential(dg.nn.Linear(2, 32), dg.nn.ReLU(), dg.nn.Linear(32, 2))
    for p in m.parameters():
        p.data = dg.tensor((rng.standard_normal(p.shape) * 0.5).astype(np.float32))
    return m


def _data(n=20, batch=16, seed=1):
    rng = np.random.default_rng(seed)
    return [(dg.tensor(rng.standard_normal((batch, 2)).astype(np.float32)),
             dg.tensor(rng.integers(0, 2, batch))) for _ in range(n)]


def _close(a, b, what):
    np.testing.assert_allclose(np.asarray(a.detach()._value), np.asarray(b.detach()._value),
                               rtol=RTOL, atol=ATOL, err_msg=what)


def _same_state(m_eager, m_comp, o_eager=None, o_comp=None):
    for i, (p, q) in enumerate(zip(m_eager.parameters(), m_comp.parameters())):
        _close(p, q, f"parameter {i}")
        assert (p.grad is None) == (q.grad is None), f"grad {i}: {p.grad} vs {q.grad}"
        if p.grad is not None:
            _close(p.grad, q.grad, f"grad {i}")
            assert q.grad.grad_fn is None and not q.grad.requires_grad
        assert q.requires_grad and q.is_leaf
    if o_eager is not None:
        ps, qs = list(m_eager.parameters()), list(m_comp.parameters())
        for p, q in zip(ps, qs):
            se, sc = o_eager.state[p], o_comp.state[q]
            assert se.keys() == sc.keys()
            for k in se:
                _close(se[k], sc[k], f"optimizer state {k}")


def _opt_step(model, opt):
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _manual_step(model, zero):
    def step(x, y):
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        with dg.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
                if zero:
                    p.grad.zero_()
                else:
                    p.grad = None
        return loss

    return step


def _same_loss_graph(le, lc):
    """The loss of ``loss.backward(); ...; return loss`` comes back as eagerly (and as from
    torch.compile): requiring grad, not a leaf, with a grad_fn whose graph backward
    consumed, so a second backward raises eager's error."""
    assert lc.requires_grad and not lc.is_leaf and lc.grad_fn is not None
    assert le.requires_grad and not le.is_leaf and le.grad_fn is not None
    assert type(lc.grad_fn).__name__ == "CompiledFunctionBackward"
    msgs = []
    for t in (le, lc):
        with pytest.raises(RuntimeError, match="backward through the graph a second time") as e:
            t.backward()
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


@pytest.mark.parametrize("zero,backend", [(False, "numba"), (True, "interpreter")],
                         ids=["grad_none", "grad_zero_"])
def test_manual_step_updates_parameters_in_place(zero, backend):
    me, mc = _mlp(), _mlp()
    eager = _manual_step(me, zero)
    comp = dg.compile(_manual_step(mc, zero), fullgraph=True, backend=backend)
    arrays = [p._value for p in mc.parameters()]
    views = [p._value[..., :1] for p in mc.parameters()]  # numpy views of the buffers
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = dg.tensor(rng.standard_normal((16, 2)).astype(np.float32))
        y = dg.tensor(rng.standard_normal((16, 2)).astype(np.float32))
        le, lc = eager(x, y), comp(x, y)
        _close(le, lc, "loss")
        _same_loss_graph(le, lc)
        _same_state(me, mc)
    for p, a, v in zip(mc.parameters(), arrays, views):
        assert p._value is a  # the same buffer, written in place
        assert np.shares_memory(v, p._value) and np.array_equal(v, p._value[..., :1])
    # version counters move as eager code moves them
    for p, q in zip(me.parameters(), mc.parameters()):
        assert p._meta.version[0] == q._meta.version[0] > 0
    info = comp.cache_info()
    assert info["traces"] <= 3 and info["entries"] == 1


@pytest.mark.parametrize("make", [
    lambda ps: dg.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: dg.optim.Adam(ps, lr=0.01),
], ids=["sgd_momentum", "adam"])
def test_optimizer_step_matches_eager(make):
    me, mc = _mlp(), _mlp()
    oe, oc = make(list(me.parameters())), make(list(mc.parameters()))
    eager, comp = _opt_step(me, oe), dg.compile(_opt_step(mc, oc), fullgraph=True)
    arrays = [p._value for p in mc.parameters()]
    for x, y in _data():
        _close(eager(x, y), comp(x, y), "loss")
        _same_state(me, mc, oe, oc)
    assert [p._value for p in mc.parameters()] == arrays
    if isinstance(oc, dg.optim.Adam):
        assert all(float(s["step"].item()) == 20 for s in oc.state.values())
    # the first call ran eagerly (the optimizer made its state), then one program
    assert comp.cache_info()["traces"] <= 3
    assert comp.graphs() and not any(e.eager for e in comp._cache.values())


@pytest.mark.parametrize("make", [
    lambda ps: dg.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    lambda ps: dg.optim.Adam(ps, lr=0.01, amsgrad=True, weight_decay=0.01),
    lambda ps: dg.optim.SGD(ps, lr=0.05, momentum=0.8, dampening=0.2, weight_decay=0.01, nesterov=False),
    lambda ps: dg.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, maximize=True),
    lambda ps: dg.optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    lambda ps: dg.optim.Adagrad(ps, lr=0.1, lr_decay=0.01, weight_decay=0.01),
], ids=["adamw", "adam_amsgrad_l2", "sgd_dampening", "sgd_nesterov_maximize", "rmsprop", "adagrad"])
def test_optimizer_step_matches_eager_interpreter(make):
    me, mc = _mlp(), _mlp()
    oe, oc = make(list(me.parameters())), make(list(mc.parameters()))
    eager = _opt_step(me, oe)
    comp = dg.compile(_opt_step(mc, oc), fullgraph=True, backend="interpreter")
    for x, y in _data(8):
        _close(eager(x, y), comp(x, y), "loss")
        _same_state(me, mc, oe, oc)


def test_grad_accumulates_without_zero_grad():
    """backward() only, compiled; the optimizer steps and zeroes every other call outside:
    .grad is None at some calls and present at others (two traced variants)."""
    me, mc = _mlp(), _mlp()
    oe, oc = dg.optim.SGD(list(me.parameters()), lr=0.1), dg.optim.SGD(list(mc.parameters()), lr=0.1)

    def accum(model):
        def f(x, y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss
        return f

    eager, comp = accum(me), dg.compile(accum(mc), backend="interpreter")
    grads = None
    for i, (x, y) in enumerate(_data(9)):
        _close(eager(x, y), comp(x, y), "loss")
        _same_state(me, mc)
        if i == 1:
            grads = [p.grad for p in mc.parameters()]
        if i == 2:  # accumulated in place into the same .grad tensors, as eager does
            assert all(p.grad is g for p, g in zip(mc.parameters(), grads))
        if i % 3 == 2:
            oe.step(), oc.step()
            oe.zero_grad(), oc.zero_grad()
            _same_state(me, mc)
    assert comp.cache_info()["traces"] <= 4


def test_captured_parameters_are_read_at_call_time():
    m = _mlp()
    predict = dg.compile(lambda x: m(x), backend="interpreter")
    x = _data(1)[0][0]
    _close(predict(x), m(x), "before")
    with dg.no_grad():
        for p in m.parameters():
            p *= 0.5  # eagerly, outside the compiled function
    _close(predict(x), m(x), "after an eager update")
    assert predict.cache_info()["traces"] == 1


def test_step_that_cannot_be_captured_warns_and_runs_eagerly():
    me, mc = _mlp(), _mlp()
    oe, oc = dg.optim.Adam(list(me.parameters()), lr=0.01), dg.optim.Adam(list(mc.parameters()), lr=0.01)
    seen = []

    def logged(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            seen.append(loss.item())  # needs a value: not capturable
            return loss
        return step

    eager, comp = logged(me, oe), dg.compile(logged(mc, oc))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for x, y in _data(4):
            _close(eager(x, y), comp(x, y), "loss")
            _same_state(me, mc, oe, oc)  # each step applied exactly once
    msgs = [str(x.message) for x in w if issubclass(x.category, CompileWarning)]
    assert len(msgs) == 1 and ".item()" in msgs[0] and "test_compiled_steps.py" in msgs[0]
    assert seen[0::2] == pytest.approx(seen[1::2], rel=1e-5)

    strict = dg.compile(logged(_mlp(), dg.optim.SGD(list(_mlp().parameters()), lr=0.1)), fullgraph=True)
    x, y = _data(1)[0]
    with pytest.raises(CompileError, match=r"\.item\(\).*test_compiled_steps\.py:\d+"):
        strict(x, y)


def test_python_state_that_changes_between_calls_is_not_baked_in():
    """A step whose learning rate comes from a Python counter: each trace is right for its
    own call; the stability check sees the program change and the step ends up eager."""
    me, mc = _mlp(), _mlp()

    def decayed(model, box):
        def step(x, y):
            box[0] += 1
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            with dg.no_grad():
                for p in model.parameters():
                    p -= (0.5 / box[0]) * p.grad
                    p.grad = None
            return loss
        return step

    eager, comp = decayed(me, [0]), dg.compile(decayed(mc, [0]), backend="interpreter")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for x, y in _data(8):
            _close(eager(x, y), comp(x, y), "loss")
            _same_state(me, mc)
    assert any("different program" in str(x.message) for x in w)


def test_write_inside_a_branch_falls_back_with_the_right_result():
    me, mc = _mlp(), _mlp()

    def clipped(model):
        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            with dg.no_grad():
                for p in model.parameters():
                    if p.grad.abs().max() > 0.05:  # a branch on data: dg.cond after AutoGraph
                        p -= 0.1 * p.grad
                    p.grad = None
            return loss
        return step

    eager, comp = clipped(me), dg.compile(clipped(mc), backend="interpreter")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        for x, y in _data(3):
            _close(eager(x, y), comp(x, y), "loss")
            _same_state(me, mc)


@pytest.mark.parametrize("form", ["data_add_", "detach_sub_", "data_isub_grad_on"])
def test_detached_aliases_write_the_parameter(form):
    """``p.data`` and ``p.detach()`` share the parameter's memory eagerly: writes through
    them update the parameter in the compiled step too (no fallback)."""
    me, mc = _mlp(), _mlp()

    def old_style(model):
        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            for p in model.parameters():
                if form == "data_add_":
                    p.data.add_(p.grad, alpha=-0.1)
                elif form == "detach_sub_":
                    p.detach().sub_(0.1 * p.grad)
                else:
                    p.data -= 0.1 * p.grad
                p.grad = None
            return loss
        return step

    eager, comp = old_style(me), dg.compile(old_style(mc), fullgraph=True, backend="interpreter")
    for x, y in _data(3):
        _close(eager(x, y), comp(x, y), "loss")
        _same_state(me, mc)
    for p, q in zip(me.parameters(), mc.parameters()):
        assert p._meta.version[0] == q._meta.version[0]


def test_scalar_state_and_grad_writes_compile():
    """0-d state written with fill_, a .grad zeroed in place and kept (numba kernel)."""
    w = dg.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    w.grad = dg.tensor(np.array([5.0, 5.0], np.float32))
    g = w.grad
    count = dg.tensor(np.float32(3.0))

    @dg.compile(fullgraph=True)
    def f(x):
        with dg.no_grad():
            w.grad.zero_()
            w.add_(x)
            count.fill_(count + 1)
        return x * 2

    for k in range(3):
        np.testing.assert_array_equal(f(dg.ones(2)).numpy(), [2.0, 2.0])
        np.testing.assert_array_equal(w.detach().numpy(), [2.0 + k, 3.0 + k])
        assert w.grad is g and not g.numpy().any()
        assert float(count.item()) == 4.0 + k
    assert count._meta.version[0] == 3 and w._meta.version[0] == 3


def test_learning_rate_schedule_needs_no_new_trace():
    """The learning rate is read at each call: a scheduler changing it every step keeps one
    compiled program."""
    me, mc = _mlp(), _mlp()
    oe, oc = dg.optim.AdamW(list(me.parameters()), lr=0.02), dg.optim.AdamW(list(mc.parameters()), lr=0.02)
    se = dg.optim.lr_scheduler.ExponentialLR(oe, gamma=0.8)
    sc = dg.optim.lr_scheduler.ExponentialLR(oc, gamma=0.8)
    eager, comp = _opt_step(me, oe), dg.compile(_opt_step(mc, oc), fullgraph=True, backend="interpreter")
    for x, y in _data(12):
        _close(eager(x, y), comp(x, y), "loss")
        _same_state(me, mc, oe, oc)
        se.step(), sc.step()
    assert comp.cache_info()["traces"] <= 3


def test_in_place_writes_to_arguments_reach_the_caller():
    def ema(avg, x):
        avg.mul_(0.9)
        avg += 0.1 * x
        return avg.sum()

    a_e, a_c = dg.zeros(3), dg.zeros(3)
    buf = a_c._value
    comp = dg.compile(ema, fullgraph=True, backend="interpreter")
    for i in range(4):
        x = dg.tensor(np.arange(3, dtype=np.float32) + i)
        _close(ema(a_e, x), comp(a_c, x), "result")
        _close(a_e, a_c, "argument")
    assert a_c._value is buf and a_c._meta.version[0] == a_e._meta.version[0] == 8


@pytest.mark.parametrize("staged", [False, True])
def test_write_to_a_captured_tensor_in_a_loop(staged):
    """A loop with a Python trip count is unrolled and compiles; with a tensor trip count it
    is a graph while carrying the tensor, which cannot be written back: eager (warning)."""
    w_e, w_c = dg.ones(3), dg.ones(3)
    n = dg.tensor(3) if staged else 3

    def shrink(w):
        def f(x, n):
            v = w
            for _ in range(n):
                v -= 0.1 * x
            return x.sum()
        return f

    comp = dg.compile(shrink(w_c), backend="interpreter")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(2):
            comp(dg.ones(3), n)
            shrink(w_e)(dg.ones(3), n)
            _close(w_e, w_c, "captured tensor")
    msgs = [str(x.message) for x in w if issubclass(x.category, CompileWarning)]
    assert len(msgs) == staged and all("converted loop or branch" in m for m in msgs)


def test_train_eval_mode_is_a_guard():
    """A module's training flag is read by the trace (BatchNorm batch vs running statistics):
    switching it traces again instead of running the other mode's program; in training
    mode the running statistics are updated in place by the compiled function."""
    bn_e, bn_c = dg.nn.BatchNorm1d(3), dg.nn.BatchNorm1d(3)
    comp = dg.compile(lambda x: bn_c(x), backend="interpreter")
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)  # running statistics are effects too
        for mode in ("train", "eval", "train", "train", "eval"):
            for m in (bn_e, bn_c):
                getattr(m, mode)()
            x = dg.tensor(rng.standard_normal((8, 3)).astype(np.float32))
            _close(bn_e(x), comp(x), mode)
            _close(bn_e.running_mean, bn_c.running_mean, "running mean")
            _close(bn_e.running_var, bn_c.running_var, "running var")
            assert bn_e.num_batches_tracked.item() == bn_c.num_batches_tracked.item()
    assert comp.cache_info()["traces"] <= 4


def test_step_outputs_keep_their_eager_autograd_state():
    """Of a step's outputs, the loss it called backward() on keeps a spent grad_fn (as
    eagerly); a detached prediction and a Python number come back as eagerly too, and
    eager code after the call sees the same flags (an op on the loss records, its backward
    raises eager's error; parameters' .grad untouched by it)."""
    me, mc = _mlp(), _mlp()

    def make(model):
        def step(x, y):
            pred = model(x)
            loss = ((pred - y) ** 2).mean()
            loss.backward()
            with dg.no_grad():
                for p in model.parameters():
                    p -= 0.05 * p.grad
                    p.grad = None
            return loss, pred.detach(), 3

        return step

    eager, comp = make(me), dg.compile(make(mc), fullgraph=True, backend="interpreter")
    rng = np.random.default_rng(5)
    for _ in range(4):
        x = dg.tensor(rng.standard_normal((8, 2)).astype(np.float32))
        y = dg.tensor(rng.standard_normal((8, 2)).astype(np.float32))
        (le, pe, ne), (lc, pc, nc) = eager(x, y), comp(x, y)
        _close(le, lc, "loss")
        _close(pe, pc, "prediction")
        assert ne == nc == 3
        assert not pe.requires_grad and not pc.requires_grad and pc.grad_fn is None
        for l in (le, lc):
            twice = l * 2.0  # eager code after the call records on the spent loss
            assert twice.requires_grad and type(twice.grad_fn).__name__ == "MulBackward"
            with pytest.raises(RuntimeError, match="backward through the graph a second time"):
                twice.backward()
        _same_loss_graph(le, lc)
        _same_state(me, mc)
