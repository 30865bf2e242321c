"""dg.optim without torch: in-place steps under no_grad with no per-step allocation growth,
parameter groups, closures, state dicts, schedulers against their closed forms, and
clip_grad_norm_ against numpy.  (tests/test_nn_vs_torch.py compares trajectories with torch.)"""
import gc
import math
import tracemalloc

import numpy as np
import pytest

import dualgraph as dg
from dualgraph import nn
from dualgraph.optim import lr_scheduler

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
]
IDS = [f"{c}-{'-'.join(k for k in kw if k != 'lr') or 'plain'}" for c, kw in CONFIGS]


def _model():
    dg.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))


def _step(model, opt, x, y):
    opt.zero_grad()
    loss = dg.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


@pytest.mark.parametrize("cls, kw", CONFIGS, ids=IDS)
def test_step_is_in_place_under_no_grad_and_loss_falls(cls, kw):
    model = _model()
    opt = getattr(dg.optim, cls)(model.parameters(), **kw)
    x, y = dg.randn(32, 8), dg.randn(32, 2)
    params = list(model.parameters())
    buffers = [p._value for p in params]
    addresses = [b.ctypes.data for b in buffers]
    losses = [_step(model, opt, x, y) for _ in range(30)]
    assert losses[-1] < losses[0]
    for p, b, a in zip(params, buffers, addresses):
        assert p._value is b and b.ctypes.data == a  # the very same memory was updated
        assert p.is_leaf and p.grad_fn is None and p.requires_grad
    for st in opt.state.values():
        for v in st.values():
            if isinstance(v, dg.Tensor):
                assert not v.requires_grad and v.grad_fn is None


@pytest.mark.parametrize("cls, kw", CONFIGS, ids=IDS)
def test_no_per_step_allocation_growth(cls, kw):
    model = _model()
    opt = getattr(dg.optim, cls)(model.parameters(), **kw)
    x, y = dg.randn(32, 8), dg.randn(32, 2)
    for _ in range(3):  # state is created lazily on the first step
        _step(model, opt, x, y)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(5):
            _step(model, opt, x, y)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(60):
            _step(model, opt, x, y)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 8_000, f"{cls}: {after - before} bytes kept over 60 steps"


def test_step_inside_enable_grad_still_records_nothing():
    w = dg.tensor([1.0, 2.0], requires_grad=True)
    opt = dg.optim.SGD([w], lr=0.5, momentum=0.9)
    (w * w).sum().backward()
    with dg.enable_grad():
        opt.step()
    assert w.is_leaf and w.grad_fn is None
    np.testing.assert_allclose(w.detach().numpy(), [0.0, 0.0])


def test_closure_runs_with_grad_enabled():
    w = dg.tensor([3.0], requires_grad=True)
    opt = dg.optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with dg.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 9.0
    assert w.item() == 1.5


def test_a_user_optimizer_subclass_gets_its_closure():
    class PlainSGD(dg.optim.Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, dict(lr=lr))

        def step(self, closure=None):
            loss = closure() if closure is not None else None
            with dg.no_grad():
                for g in self.param_groups:
                    for p in g["params"]:
                        p -= g["lr"] * p.grad
            return loss

    w = dg.tensor([2.0], requires_grad=True)
    opt = PlainSGD([w], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 4.0 and w.item() == 0.0


def test_param_groups_and_their_validation():
    a, b = dg.zeros(2, requires_grad=True), dg.zeros(3, requires_grad=True)
    opt = dg.optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[0]["momentum"] == 0.0
    a.grad, b.grad = dg.ones(2), dg.ones(3)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), [-0.1, -0.1])
    np.testing.assert_allclose(b.detach().numpy(), [-0.5] * 3)
    c = dg.zeros(1, requires_grad=True)
    opt.add_param_group({"params": [c], "lr": 2.0})
    assert len(opt.param_groups) == 3 and opt.param_groups[2]["momentum"] == 0.0
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="duplicate parameters"):
        dg.optim.Adam([a, a])
    with pytest.raises(ValueError, match="empty parameter list"):
        dg.optim.Adam([])
    with pytest.raises(TypeError, match="iterable of Tensors"):
        dg.optim.Adam(a)
    with pytest.raises(ValueError, match="non-leaf"):
        dg.optim.SGD([a * 2], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        dg.optim.SGD([{"params": {a}}], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        dg.optim.Adam([a], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        dg.optim.SGD([a], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        dg.optim.AdamW([a], betas=(0.9, 1.0))
    for make, msg in [(lambda: dg.optim.SGD([a], lr=0.1, momentum=-1), "Invalid momentum value: -1"),
                      (lambda: dg.optim.Adam([a], eps=-1), "Invalid epsilon value: -1"),
                      (lambda: dg.optim.RMSprop([a], alpha=-0.5), "Invalid alpha value: -0.5"),
                      (lambda: dg.optim.Adagrad([a], lr_decay=-1), "Invalid lr_decay value: -1"),
                      (lambda: dg.optim.Adagrad([a], initial_accumulator_value=-1),
                       "Invalid initial_accumulator_value value: -1")]:
        with pytest.raises(ValueError, match=msg):
            make()
    with pytest.raises(NotImplementedError, match="AdamW: differentiable and fused"):
        dg.optim.AdamW([a], fused=True)
    assert "Parameter Group 0" in repr(opt)


def test_parameters_without_grad_are_skipped_and_zero_grad():
    a, b = dg.ones(2, requires_grad=True), dg.ones(2, requires_grad=True)
    opt = dg.optim.Adam([a, b], lr=0.1)
    (a * 2).sum().backward()
    opt.step()
    assert b.tolist() == [1.0, 1.0] and len(opt.state) == 1
    opt.zero_grad(set_to_none=False)
    assert a.grad.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert a.grad is None


def test_state_dict_layout_and_load_errors():
    model = _model()
    opt = dg.optim.Adam(model.parameters(), lr=0.01)
    x, y = dg.randn(4, 8), dg.randn(4, 2)
    _step(model, opt, x, y)
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "step"]
    assert sd["state"][0]["step"].item() == 1.0
    assert sd["param_groups"][0]["params"] == [0, 1, 2, 3] and sd["param_groups"][0]["lr"] == 0.01
    # loading copies: later steps of the source do not leak into the loaded state
    other = dg.optim.Adam(_model().parameters(), lr=0.5)
    other.load_state_dict(sd)
    before = other.state_dict()["state"][0]["exp_avg"].numpy().copy()
    _step(model, opt, x, y)
    np.testing.assert_array_equal(other.state_dict()["state"][0]["exp_avg"].numpy(), before)
    assert other.param_groups[0]["lr"] == 0.01
    with pytest.raises(ValueError, match="number of parameter groups"):
        other.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="doesn't match the size"):
        dg.optim.Adam(list(_model().parameters())[:2]).load_state_dict(sd)
    # a float32 state loads into float64 parameters cast to their dtype
    m64 = _model().double()
    o64 = dg.optim.Adam(m64.parameters())
    o64.load_state_dict(sd)
    assert o64.state[next(iter(m64.parameters()))]["exp_avg"].dtype == np.float64


def _lrs(make, n=25, lr=0.1):
    w = dg.zeros(1, requires_grad=True)
    opt = dg.optim.SGD([w], lr=lr)
    s = make(opt)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(n):
        opt.step()
        s.step()
        out.append(opt.param_groups[0]["lr"])
        assert s.get_last_lr() == [out[-1]]
    return out


def test_schedulers_follow_their_closed_forms():
    got = _lrs(lambda o: lr_scheduler.StepLR(o, step_size=4, gamma=0.5))
    np.testing.assert_allclose(got, [0.1 * 0.5 ** (t // 4) for t in range(26)], rtol=1e-12)
    got = _lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.01))
    want = [0.01 + 0.09 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(26)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)  # and it keeps going past T_max
    got = _lrs(lambda o: lr_scheduler.LambdaLR(o, lambda e: 1 / (1 + e)))
    np.testing.assert_allclose(got, [0.1 / (1 + t) for t in range(26)], rtol=1e-12)
    got = _lrs(lambda o: lr_scheduler.MultiStepLR(o, [3, 7], gamma=0.1))
    np.testing.assert_allclose(got[:10], [0.1] * 3 + [0.01] * 4 + [0.001] * 3, rtol=1e-12)
    got = _lrs(lambda o: lr_scheduler.ExponentialLR(o, 0.9), n=5)
    np.testing.assert_allclose(got, [0.1 * 0.9 ** t for t in range(6)], rtol=1e-12)


def test_scheduler_state_dict_and_resume():
    w = dg.zeros(1, requires_grad=True)
    opt = dg.optim.SGD([w], lr=1.0)
    s = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        s.step()
    state = s.state_dict()
    assert state["last_epoch"] == 3 and "optimizer" not in state
    opt2 = dg.optim.SGD([w], lr=1.0)
    opt2.load_state_dict(opt.state_dict())
    s2 = lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5, last_epoch=-1)
    s2.load_state_dict(state)
    s.step()
    s2.step()
    assert s.get_last_lr() == s2.get_last_lr() == [0.25]
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(dg.optim.SGD([w], lr=1.0), step_size=2, last_epoch=4)

    class Warmup:  # a callable object's state is saved, a lambda's is not
        def __init__(self):
            self.k = 2

        def __call__(self, e):
            return min(1.0, (e + 1) / self.k)

    ls = lr_scheduler.LambdaLR(dg.optim.SGD([w], lr=1.0), [Warmup()])
    assert ls.state_dict()["lr_lambdas"] == [{"k": 2}]
    assert lr_scheduler.LambdaLR(dg.optim.SGD([w], lr=1.0), lambda e: 1.0).state_dict()["lr_lambdas"] == [None]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clip_grad_norm_matches_numpy(norm_type):
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=s) for s in [(3, 4), (5,), ()]]
    ps = [dg.zeros(g.shape, dtype=np.float64, requires_grad=True) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = dg.tensor(g.copy())
    flat = np.concatenate([g.ravel() for g in grads])
    total = np.linalg.norm(flat, ord=norm_type)
    got = nn.utils.clip_grad_norm_(ps, max_norm=1.0, norm_type=norm_type)
    np.testing.assert_allclose(got.item(), total, rtol=1e-12)
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(p.grad.numpy(), g / (total + 1e-6), rtol=1e-12)
    again = nn.utils.clip_grad_norm_(ps, max_norm=10.0, norm_type=norm_type)  # below max: unchanged
    np.testing.assert_allclose(again.item(), total / (total + 1e-6), rtol=1e-9)
    w = dg.zeros(2, requires_grad=True)
    w.grad = dg.tensor([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([w], 1.0, error_if_nonfinite=True)
    assert nn.utils.clip_grad_norm_([dg.zeros(2, requires_grad=True)], 1.0).item() == 0.0
