"""dg.nn: the Module system (registration, iteration, state dicts, modes, conversion,
hooks, repr), Parameter, nn.init, and dg.save / dg.load."""
import copy
import io
import math
from collections import OrderedDict

import numpy as np
import pytest

import dualgraph as dg
from dualgraph import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.scale = nn.Parameter(dg.ones(1))
        self.register_buffer("steps", dg.zeros((), dtype=np.int64))
        self.register_buffer("cache", dg.zeros(2), persistent=False)
        self.plain = 5

    def forward(self, x):
        return self.bn(self.fc(x)) * self.scale


# ---- registration and iteration -------------------------------------------------------------


def test_attributes_register_parameters_buffers_and_submodules():
    m = Net()
    assert [n for n, _ in m.named_parameters()] == ["scale", "fc.weight", "fc.bias", "bn.weight", "bn.bias"]
    assert [n for n, _ in m.named_buffers()] == ["steps", "cache", "bn.running_mean", "bn.running_var",
                                                 "bn.num_batches_tracked"]
    assert [n for n, _ in m.named_children()] == ["fc", "bn"]
    assert [n for n, _ in m.named_modules()] == ["", "fc", "bn"]
    assert list(m.children()) == [m.fc, m.bn]
    assert m.plain == 5 and "plain" not in m._parameters
    assert isinstance(m.fc.weight, nn.Parameter) and m.fc.weight.requires_grad and m.fc.weight.is_leaf
    assert not isinstance(dg.ones(2), nn.Parameter)
    assert [p for p in m.parameters(recurse=False)] == [m.scale]
    assert m.get_submodule("bn") is m.bn and m.get_parameter("fc.bias") is m.fc.bias
    assert m.get_buffer("bn.running_var") is m.bn.running_var


def test_shared_parameters_and_modules_are_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    assert len(list(seq.modules())) == 3
    assert [n for n, _ in seq.named_parameters(remove_duplicate=False)] == ["0.weight", "0.bias", "2.weight",
                                                                             "2.bias"]


def test_assignment_rules():
    m = Net()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        m.scale = dg.ones(1)
    m.scale = None
    assert m.scale is None and "scale" in m._parameters
    assert [n for n, _ in m.named_parameters()][0] == "fc.weight"
    with pytest.raises(TypeError, match="child module 'fc'"):
        m.fc = 3
    m.steps = dg.ones((), dtype=np.int64)
    assert m._buffers["steps"].item() == 1
    with pytest.raises(TypeError, match="buffer 'steps'"):
        m.steps = 3
    m.fc = nn.Identity()
    assert isinstance(m.fc, nn.Identity)
    del m.bn
    assert "bn" not in m._modules
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'bn'"):
        m.bn
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("plain", dg.zeros(1))
    with pytest.raises(AttributeError, match="before Module.__init__"):

        class Bad(nn.Module):
            def __init__(self):
                self.w = nn.Parameter(dg.zeros(1))

        Bad()
    with pytest.raises(TypeError, match="nn.Parameter or None required"):
        m.register_parameter("q", dg.ones(2, requires_grad=True) * 2)


def test_parameter_shares_memory_and_honours_requires_grad():
    a = np.ones(3, np.float32)
    p = nn.Parameter(dg.from_numpy(a))
    a[0] = 7
    assert p.detach().numpy()[0] == 7
    q = nn.Parameter(dg.zeros(2), requires_grad=False)
    assert isinstance(q, nn.Parameter) and not q.requires_grad
    assert nn.Parameter().shape == (0,)


def test_containers():
    seq = nn.Sequential(OrderedDict([("a", nn.Linear(2, 3)), ("act", nn.Tanh()), ("b", nn.Linear(3, 1))]))
    assert [n for n, _ in seq.named_children()] == ["a", "act", "b"]
    assert seq[-1] is seq.b and len(seq) == 3
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    x = dg.randn(4, 2)
    np.testing.assert_allclose(seq(x).detach().numpy(), seq.b(seq.act(seq.a(x))).detach().numpy())
    seq.append(nn.ReLU())
    assert len(seq) == 4
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    ml.append(nn.Linear(2, 1))
    ml.insert(0, nn.Identity())
    assert len(ml) == 5 and isinstance(ml[0], nn.Identity) and len(list(ml.parameters())) == 8
    del ml[0]
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2", "3"]
    md = nn.ModuleDict({"enc": nn.Linear(2, 2), "dec": nn.Linear(2, 2)})
    md["head"] = nn.Linear(2, 1)
    assert list(md.keys()) == ["enc", "dec", "head"] and "enc" in md and len(md) == 3
    assert len(list(md.parameters())) == 6
    pl = nn.ParameterList([nn.Parameter(dg.ones(2)), dg.zeros(3)])
    assert len(pl) == 2 and isinstance(pl[1], nn.Parameter)
    assert [n for n, _ in pl.named_parameters()] == ["0", "1"]
    pd = nn.ParameterDict({"a": nn.Parameter(dg.ones(1))})
    pd.update([("b", dg.zeros(2))])
    assert list(pd.keys()) == ["a", "b"] and isinstance(pd["b"], nn.Parameter) and "b" in pd
    assert [n for n, _ in pd.named_parameters()] == ["a", "b"]
    assert pd.pop("a").shape == (1,) and list(pd) == ["b"] and len(pd) == 1
    assert isinstance(md.pop("dec"), nn.Linear) and list(md) == ["enc", "head"]
    with pytest.raises(NotImplementedError, match="ParameterDict is a container"):
        pd(x)
    with pytest.raises(NotImplementedError, match="container"):
        ml(x)


# ---- state dicts --------------------------------------------------------------------------------


def test_state_dict_holds_parameters_and_persistent_buffers_sharing_memory():
    m = Net()
    sd = m.state_dict()
    assert list(sd) == ["scale", "steps", "fc.weight", "fc.bias", "bn.weight", "bn.bias", "bn.running_mean",
                        "bn.running_var", "bn.num_batches_tracked"]
    assert not sd["fc.weight"].requires_grad
    with dg.no_grad():
        m.fc.weight += 1
    np.testing.assert_array_equal(sd["fc.weight"].numpy(), m.fc.weight.detach().numpy())
    assert m.state_dict(keep_vars=True)["fc.weight"] is m.fc.weight


def test_load_state_dict_copies_in_place_and_reports_keys():
    a, b = Net(), Net()
    w = b.fc.weight
    b.load_state_dict(a.state_dict())
    assert b.fc.weight is w  # copied into the same parameter
    for (n, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=n)
    # numpy arrays load too
    b.load_state_dict({k: v.numpy() * 0 for k, v in a.state_dict().items()})
    assert not np.any(b.fc.weight.detach().numpy())

    sd = a.state_dict()
    del sd["fc.bias"]
    sd["extra"] = dg.zeros(1)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "fc.bias"'):
        b.load_state_dict(sd)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra"'):
        b.load_state_dict(sd)
    res = b.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["fc.bias"] and res.unexpected_keys == ["extra"]
    sd = a.state_dict()
    sd["fc.weight"] = dg.zeros(5, 3)
    with pytest.raises(RuntimeError, match=r"size mismatch for fc.weight: .*\(5, 3\).*\(4, 3\)"):
        b.load_state_dict(sd)


def test_save_and_load_round_trip(tmp_path):
    m = Net()
    path = tmp_path / "model.pt"
    dg.save(m.state_dict(), path)
    assert path.exists()  # written under exactly that name
    loaded = dg.load(path)
    assert list(loaded) == list(m.state_dict())
    for k, v in m.state_dict().items():
        assert isinstance(loaded[k], dg.Tensor)
        assert loaded[k].dtype == v.dtype, k
        np.testing.assert_array_equal(loaded[k].numpy(), v.numpy())
    m2 = Net()
    m2.load_state_dict(loaded)
    x = dg.randn(5, 3)
    m.eval()
    m2.eval()
    np.testing.assert_array_equal(m(x).detach().numpy(), m2(x).detach().numpy())
    # the file is a plain .npz: numpy reads the tensors by name
    with np.load(path) as z:
        np.testing.assert_array_equal(z["fc.weight"], m.fc.weight.detach().numpy())


def test_save_and_load_nested_objects():
    obj = {"epoch": 3, "lr": 0.1, "name": "run", "flag": True, "none": None, 7: (1, [2.5, "x"]),
           "arr": np.arange(3), "t": dg.tensor([1.0, 2.0], requires_grad=True),
           "od": OrderedDict([("b", dg.zeros(2, dtype=np.float64)), ("a", dg.ones((), dtype=np.int64))]),
           "nan": float("nan"), "big": 2 ** 70, "np": np.float32(1.5)}
    buf = io.BytesIO()
    dg.save(obj, buf)
    buf.seek(0)
    out = dg.load(buf)
    assert out["epoch"] == 3 and out["lr"] == 0.1 and out["name"] == "run" and out["flag"] is True
    assert out["none"] is None and out[7] == (1, [2.5, "x"]) and out["big"] == 2 ** 70
    assert math.isnan(out["nan"]) and out["np"] == np.float32(1.5) and out["np"].dtype == np.float32
    np.testing.assert_array_equal(out["arr"], np.arange(3))
    assert out["t"].requires_grad and out["t"].tolist() == [1.0, 2.0]
    assert isinstance(out["od"], OrderedDict) and list(out["od"]) == ["b", "a"]
    assert out["od"]["b"].dtype == np.float64 and out["od"]["a"].dtype == np.int64
    with pytest.raises(TypeError, match="cannot save an object of type object"):
        dg.save({"x": object()}, io.BytesIO())
    # a plain npz (np.savez) loads as tensors by name
    buf = io.BytesIO()
    np.savez(buf, w=np.ones(2))
    buf.seek(0)
    assert dg.load(buf)["w"].tolist() == [1.0, 1.0]


# ---- modes, conversion, hooks ------------------------------------------------------------------


def test_train_eval_and_dropout():
    m = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Sequential(nn.Dropout(0.9)))
    assert all(mod.training for mod in m.modules())
    m.eval()
    assert not any(mod.training for mod in m.modules())
    x = dg.randn(4, 3)
    np.testing.assert_array_equal(m(x).detach().numpy(), m[0](x).detach().numpy())
    m.train()
    assert all(mod.training for mod in m.modules())
    with pytest.raises(ValueError, match="boolean"):
        m.train("no")


def test_zero_grad_and_requires_grad():
    m = nn.Linear(3, 2)
    m(dg.randn(4, 3)).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert not np.any(m.weight.grad.numpy())
    m.zero_grad()
    assert m.weight.grad is None
    m.requires_grad_(False)
    assert not m(dg.randn(1, 3)).requires_grad


def test_to_dtype_keeps_parameter_objects():
    m = Net()
    w = m.fc.weight
    opt = dg.optim.SGD(m.parameters(), lr=0.1)
    m.to(dg.float64)
    assert m.fc.weight is w and w.dtype == np.float64 and isinstance(w, nn.Parameter)
    assert m.bn.running_mean.dtype == np.float64 and m.steps.dtype == np.int64  # ints stay
    m(dg.randn(5, 3, dtype=np.float64)).sum().backward()
    opt.step()
    assert w.dtype == np.float64
    assert m.float() is m and w.dtype == np.float32 and m.double().fc.weight.dtype == np.float64
    assert m.to("cpu") is m
    with pytest.raises(RuntimeError, match="CPU only"):
        m.to("cuda")
    with pytest.raises(TypeError, match="floating point"):
        m.to(dg.int64)


def test_apply_hooks_and_deepcopy():
    m = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "ReLU", "Linear", "Sequential"]
    m.apply(lambda mod: nn.init.zeros_(mod.weight) if isinstance(mod, nn.Linear) else None)
    assert not np.any(m[0].weight.detach().numpy())

    calls = []
    h = m[0].register_forward_hook(lambda mod, args, out: calls.append(out.shape) or out * 2)
    hp = m.register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
    x = dg.randn(3, 2)
    out = m(x)
    assert calls == [(3, 2)]
    expected = m[2](m[1](m[0].forward(x + 1) * 2))
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy())
    h.remove()
    hp.remove()
    m(x)
    assert calls == [(3, 2)]

    c = copy.deepcopy(m)
    assert c[0].weight is not m[0].weight and isinstance(c[0].weight, nn.Parameter)
    np.testing.assert_array_equal(c[2].weight.detach().numpy(), m[2].weight.detach().numpy())
    with dg.no_grad():
        c[2].weight += 1
    assert not np.array_equal(c[2].weight.detach().numpy(), m[2].weight.detach().numpy())


def test_repr_reads_like_torch():
    m = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Sequential(nn.Linear(6, 3, bias=False), nn.Dropout(0.1)), nn.LayerNorm(3),
                      nn.BatchNorm2d(3), nn.Embedding(10, 3, padding_idx=0), nn.GELU(), nn.LSTM(3, 4, 2))
    assert repr(m) == """Sequential(
  (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
  (1): ReLU()
  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (3): Flatten(start_dim=1, end_dim=-1)
  (4): Sequential(
    (0): Linear(in_features=6, out_features=3, bias=False)
    (1): Dropout(p=0.1, inplace=False)
  )
  (5): LayerNorm((3,), eps=1e-05, elementwise_affine=True)
  (6): BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  (7): Embedding(10, 3, padding_idx=0)
  (8): GELU(approximate='none')
  (9): LSTM(3, 4, num_layers=2)
)"""


def test_models_trace_in_eval_mode_and_refuse_in_train_mode():
    """A model's forward traces like any function (parameters are captured); the graph
    computes what eager does, bit for bit.  Training-mode dropout and batch-norm updates
    are refused by the tracer with the way out named."""
    dg.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 3)).eval()
    rnn = nn.GRU(3, 5, num_layers=2, bidirectional=True).eval()
    att = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    cases = [(cnn, dg.randn(2, 2, 4, 4)), (lambda x: rnn(x)[0], dg.randn(4, 2, 3)),
             (lambda x: att(x, x, x)[0], dg.randn(2, 5, 8))]
    for fn, x in cases:
        g = dg.trace(fn, x)
        np.testing.assert_array_equal(g(x).numpy(), fn(x).detach().numpy())
    cnn.train()
    with pytest.raises(NotImplementedError, match="running statistics"):
        dg.trace(cnn, dg.randn(2, 2, 4, 4))
    cnn[1].eval()
    with pytest.raises(NotImplementedError, match="dropout"):
        dg.trace(cnn, dg.randn(2, 2, 4, 4))


def test_module_without_forward_raises():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(dg.ones(1))


# ---- nn.init --------------------------------------------------------------------------------------


def test_init_functions():
    assert nn.init.calculate_gain("relu") == math.sqrt(2)
    assert nn.init.calculate_gain("tanh") == 5 / 3
    assert nn.init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    assert nn.init.calculate_gain("conv2d") == 1
    w = dg.zeros(300, 200)
    dg.manual_seed(0)
    nn.init.xavier_uniform_(w)
    a = math.sqrt(6 / 500)
    assert np.abs(w.numpy()).max() <= a and np.abs(w.numpy()).max() > 0.95 * a
    v = dg.zeros(300, 200)
    dg.manual_seed(0)
    nn.init.xavier_uniform_(v)
    np.testing.assert_array_equal(w.numpy(), v.numpy())  # manual_seed reproduces
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    assert np.abs(w.numpy()).max() <= 1 / math.sqrt(200)
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    np.testing.assert_allclose(w.numpy().std(), math.sqrt(2 / 300), rtol=0.05)
    nn.init.normal_(w, 3.0, 0.5)
    np.testing.assert_allclose([w.numpy().mean(), w.numpy().std()], [3.0, 0.5], rtol=0.02)
    nn.init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert np.abs(w.numpy()).max() <= 0.5
    nn.init.orthogonal_(w)
    np.testing.assert_allclose(w.numpy().T @ w.numpy(), np.eye(200), atol=1e-5)
    nn.init.constant_(w, 2.0)
    assert np.all(w.numpy() == 2.0)
    nn.init.zeros_(w), nn.init.ones_(v)
    assert not np.any(w.numpy()) and np.all(v.numpy() == 1)
    nn.init.eye_(v)
    np.testing.assert_array_equal(v.numpy(), np.eye(300, 200))
    # initialisers run under no_grad on leaves that require grad
    p = nn.Parameter(dg.zeros(3, 4))
    nn.init.uniform_(p, -1, 1)
    assert p.requires_grad and p.grad_fn is None
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(dg.zeros(3))
