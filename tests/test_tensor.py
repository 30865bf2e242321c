"""The Tensor half of the API contract (API.md, "Tensors"): factories, dtypes, numpy
interop, repr, operators, indexing, in-place updates, error messages."""
import numpy as np
import pytest

import dualgraph as dg

# ---- factories and dtypes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data, dtype",
    [
        (1.5, np.float32),
        ([1.0, 2.0], np.float32),
        ([[1, 2], [3, 4]], np.int64),
        (7, np.int64),
        ([True, False], np.bool_),
        ([1, 2.5], np.float32),  # mixed Python numbers: float wins, as in torch
        (np.array([1.0, 2.0]), np.float64),
        (np.array([1, 2], np.int32), np.int32),
        (np.array([1.0], np.float16), np.float16),
        (np.float64(3.0), np.float64),
    ],
)
def test_tensor_dtype_inference(data, dtype):
    t = dg.tensor(data)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))


def test_tensor_dtype_argument_and_dtype_objects():
    assert dg.tensor([1, 2], dtype=dg.float64).dtype == np.float64
    assert dg.tensor([1.7], dtype=np.int64).tolist() == [1]
    assert dg.float32 == np.float32 and dg.float64 == np.float64
    assert dg.int64 == np.int64 and dg.bool == np.bool_
    t = dg.tensor([1.0])
    assert t.dtype == np.float32 and t.dtype == dg.float32 and t.dtype != np.float64


def test_tensor_copies_its_input_and_from_numpy_shares():
    a = np.array([1.0, 2.0])
    t = dg.tensor(a)
    a[0] = 10.0
    assert t.tolist() == [1.0, 2.0]
    s = dg.from_numpy(a)
    a[1] = 20.0
    assert s.tolist() == [10.0, 20.0] and s.dtype == np.float64
    with pytest.raises(TypeError):
        dg.from_numpy([1.0, 2.0])


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda **kw: dg.zeros(2, 3, **kw), (2, 3)),
        (lambda **kw: dg.zeros((2, 3), **kw), (2, 3)),
        (lambda **kw: dg.ones(4, **kw), (4,)),
        (lambda **kw: dg.full((2, 2), 1.5, **kw), (2, 2)),
        (lambda **kw: dg.randn(3, 2, **kw), (3, 2)),
        (lambda **kw: dg.rand(5, **kw), (5,)),
    ],
)
def test_factories_default_float32_and_take_dtype_and_requires_grad(make, shape):
    t = make()
    assert t.shape == shape and t.dtype == np.float32 and not t.requires_grad
    t64 = make(dtype=dg.float64, requires_grad=True)
    assert t64.dtype == np.float64 and t64.requires_grad and t64.is_leaf
    assert make(dtype=np.float64).dtype == np.float64  # numpy dtypes accepted too


def test_factory_values():
    np.testing.assert_array_equal(dg.zeros(2).numpy(), [0, 0])
    np.testing.assert_array_equal(dg.ones(2, 1).numpy(), [[1], [1]])
    np.testing.assert_array_equal(dg.full((3,), 2.5).numpy(), [2.5, 2.5, 2.5])
    r = dg.rand(1000).numpy()
    assert r.min() >= 0 and r.max() < 1
    n = dg.randn(4000).numpy()
    assert abs(n.mean()) < 0.1 and 0.9 < n.std() < 1.1


def test_arange_dtypes():
    a = dg.arange(5)
    assert a.dtype == np.int64 and a.tolist() == [0, 1, 2, 3, 4]  # torch: integer arange is int64
    f = dg.arange(0.0, 1.0, 0.25)
    assert f.dtype == np.float32 and f.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert dg.arange(3, dtype=dg.float32).dtype == np.float32
    assert dg.arange(3, dtype=dg.float64, requires_grad=True).requires_grad


def test_manual_seed_reproducible():
    dg.manual_seed(123)
    a = dg.randn(5).numpy()
    b = dg.rand(2).numpy()
    dg.manual_seed(123)
    np.testing.assert_array_equal(dg.randn(5).numpy(), a)
    np.testing.assert_array_equal(dg.rand(2).numpy(), b)
    dg.manual_seed(124)
    assert not np.array_equal(dg.randn(5).numpy(), a)


# ---- attributes and numpy interop -------------------------------------------------------


def test_shape_attributes():
    t = dg.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.size() == (2, 3, 4) and t.size(1) == 3
    assert len(t) == 2
    with pytest.raises(TypeError):
        len(dg.tensor(1.0))


def test_numpy_interop():
    t = dg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(np.asarray(t), [[1, 2], [3, 4]])
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert dg.tensor([2.5]).item() == 2.5 and isinstance(dg.tensor(3).item(), int)
    with pytest.raises((RuntimeError, ValueError)):
        t.item()


def test_numpy_of_requires_grad_tensor_raises_detach_works():
    x = dg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    y = x * 2
    with pytest.raises(RuntimeError):
        y.numpy()
    np.testing.assert_array_equal(x.detach().numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(y.detach().numpy(), [2.0, 4.0])
    assert (x.sum() * 1).item() == 3.0  # item() works on a graph tensor, as torch


def test_data_grad_leaf_attributes():
    x = dg.tensor([2.0], requires_grad=True)
    assert x.is_leaf and x.grad is None and x.grad_fn is None and x.requires_grad
    y = x * 3
    assert not y.is_leaf and y.requires_grad and y.grad_fn is not None
    d = y.data
    assert not d.requires_grad and d.grad_fn is None and d.tolist() == [6.0]
    y.backward()
    assert isinstance(x.grad, dg.Tensor) and x.grad.tolist() == [3.0]
    assert not x.grad.requires_grad


# ---- repr -------------------------------------------------------------------------------


def test_repr_forms_of_the_contract():
    x = dg.tensor([2.0], requires_grad=True)
    y = x**2
    (y * 3).backward()
    assert repr(x.grad) == "tensor([12.])"
    assert repr(y) == "tensor([4.], grad_fn=<PowBackward>)"
    assert repr(x) == "tensor([2.], requires_grad=True)"
    assert repr(y * 3) == "tensor([12.], grad_fn=<MulBackward>)"
    assert str(x.grad) == "tensor([12.])"


def test_repr_other_forms():
    assert repr(dg.tensor([1.5, 2.25])) == "tensor([1.5000, 2.2500])"
    assert repr(dg.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(dg.tensor([True, False])) == "tensor([True, False])"
    assert repr(dg.tensor(3.0)) == "tensor(3.)"
    assert repr(dg.tensor([[1.0, 2.0], [3.0, 4.0]])) == "tensor([[1., 2.],\n        [3., 4.]])"
    assert "float64" in repr(dg.tensor(np.array([1.0])))


# ---- operators --------------------------------------------------------------------------


def test_arithmetic_operators_and_reflected_forms():
    a = dg.tensor([1.0, 2.0])
    b = dg.tensor([3.0, 4.0])
    assert (a + b).tolist() == [4, 6] and (a - b).tolist() == [-2, -2]
    assert (a * b).tolist() == [3, 8] and (b / a).tolist() == [3, 2]
    assert (a**2).tolist() == [1, 4] and (2**a).tolist() == [2, 4]
    assert (1 + a).tolist() == [2, 3] and (1 - a).tolist() == [0, -1]
    assert (2 * a).tolist() == [2, 4] and (2 / a).tolist() == [2, 1]
    assert (-a).tolist() == [-1, -2] and abs(-a).tolist() == [1, 2] and (-a).abs().tolist() == [1, 2]
    assert (a @ b).item() == 11.0
    assert (np.float32(2) * a).tolist() == [2, 4]  # numpy scalars defer to the Tensor
    for r in (a + b, 2 * a, -a, a @ b):
        assert isinstance(r, dg.Tensor) and r.dtype == np.float32


def test_integer_division_is_float32_as_torch():
    assert (dg.tensor([1, 2]) / dg.tensor([2, 4])).dtype == np.float32
    assert (dg.tensor([1, 2]) / 2).dtype == np.float32
    assert (dg.tensor([1, 3]) * dg.tensor([0.5, 0.5])).dtype == np.float32


def test_comparisons_are_bool_without_grad():
    x = dg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for r in (x < 2, x <= 2, x > 2, x >= 2, x == 2, x != 2, x < x * 1):
        assert r.dtype == np.bool_ and not r.requires_grad and r.grad_fn is None
    assert (x < 2).tolist() == [True, False, False]
    assert (x == 2).tolist() == [False, True, False]
    assert (x != 2).tolist() == [True, False, True]
    assert ((x > 1) & (x < 3)).tolist() == [False, True, False]
    assert ((x < 2) | (x > 2)).tolist() == [True, False, True]
    assert (~(x > 1)).tolist() == [True, False, False]


def test_bool_of_one_element_tensor():
    assert bool(dg.tensor([1.0]) > 0) is True
    assert bool(dg.tensor(0.0)) is False
    x = dg.tensor([2.0], requires_grad=True)
    assert bool((x * x).sum() > 3)
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(dg.tensor([1.0, 2.0]))


def test_int_and_bool_tensors_never_require_grad():
    for data in ([1, 2], [True]):
        with pytest.raises(RuntimeError, match="floating point"):
            dg.tensor(data, requires_grad=True)
        with pytest.raises(RuntimeError):
            dg.tensor(data).requires_grad_()
    x = dg.tensor([1.5, -2.5], requires_grad=True)
    for r in (x.long(), x.bool(), x.to(dg.int64), x.argmax(), dg.argmin(x), x > 0, x.sign()):
        assert not r.requires_grad and r.grad_fn is None
    assert x.long().tolist() == [1, -2]
    assert (dg.tensor([1, 2]) * 3).requires_grad is False


# ---- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, op, shapes",
    [
        (lambda a, b: a + b, "add", ("(2, 3)", "(4,)")),
        (lambda a, b: a * b, "mul", ("(2, 3)", "(4,)")),
        (lambda a, b: a - b, "sub", ("(2, 3)", "(4,)")),
        (lambda a, b: a / b, "div", ("(2, 3)", "(4,)")),
        (lambda a, b: dg.maximum(a, b), "maximum", ("(2, 3)", "(4,)")),
    ],
)
def test_shape_mismatch_errors_name_op_and_both_shapes(fn, op, shapes):
    for rg in (False, True):
        a = dg.ones(2, 3, requires_grad=rg)
        b = dg.ones(4)
        with pytest.raises(RuntimeError) as e:
            fn(a, b)
        msg = str(e.value)
        assert op in msg and all(s in msg for s in shapes), msg


def test_more_shape_errors_name_the_op_and_shapes():
    a, b = dg.ones(2, 3), dg.ones(4, 2)
    with pytest.raises(RuntimeError, match=r"matmul.*\(2, 3\).*\(4, 2\)"):
        a @ b
    with pytest.raises(RuntimeError, match=r"(cat|concatenate).*\(2, 3\).*\(4, 2\)"):
        dg.cat([a, b], dim=0)
    with pytest.raises(RuntimeError, match=r"reshape.*\(2, 3\)"):
        a.reshape(4, 2)
    with pytest.raises(RuntimeError, match=r"where.*\(2, 3\).*\(4, 2\)"):
        dg.where(a > 0, a, b)
    with pytest.raises(RuntimeError, match=r"stack"):
        dg.stack([a, b])
    with pytest.raises(IndexError):
        a[5]
    with pytest.raises(IndexError):
        a.sum(dim=2)


# ---- indexing ---------------------------------------------------------------------------


def test_indexing_forward():
    a = np.arange(12.0).reshape(3, 4)
    t = dg.tensor(a)
    for idx in [1, -1, slice(1, None), (slice(None), 2), (1, slice(None, None, 2)), (Ellipsis, 1),
                (None, 0), np.array([2, 0, 2]), [0, 0], (np.array([0, 2]), np.array([3, 3])),
                a > 5, np.array([True, False, True])]:
        np.testing.assert_array_equal(t[idx].numpy(), a[idx], err_msg=str(idx))
    np.testing.assert_array_equal(t[dg.tensor([1, 1])].numpy(), a[[1, 1]])
    np.testing.assert_array_equal(t[t > 5].numpy(), a[a > 5])
    assert [r.tolist() for r in t] == a.tolist()


def test_indexing_gradients():
    x = dg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    x[1:3].sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 0]
    x.grad = None
    x[np.array([0, 2, 0])].sum().backward()  # repeated indices accumulate
    assert x.grad.tolist() == [2, 0, 1, 0]
    x.grad = None
    (x[dg.tensor([3, 3, 3])] * dg.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [0, 0, 0, 6]
    x.grad = None
    x[x > 2].sum().backward()  # bool mask
    assert x.grad.tolist() == [0, 0, 1, 1]
    x.grad = None
    (x[::2] * x[1::2]).sum().backward()
    assert x.grad.tolist() == [2, 1, 4, 3]
    m = dg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    (m[:, [2, 2]] ** 2).sum().backward()
    np.testing.assert_array_equal(m.grad.numpy(), [[0, 0, 8], [0, 0, 20]])


# ---- in-place updates -------------------------------------------------------------------


def test_inplace_leaf_update_under_no_grad():
    w = dg.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    with dg.no_grad():
        w -= 0.1 * w.grad
    np.testing.assert_allclose(w.detach().numpy(), [0.8, 1.6], rtol=1e-6)
    assert w.is_leaf and w.requires_grad and w.grad_fn is None
    w.grad = None
    assert w.grad is None
    (w * 3).sum().backward()
    assert w.grad.tolist() == [3, 3]  # fresh gradient after clearing, not accumulated


def test_inplace_on_leaf_requiring_grad_raises_in_grad_mode():
    w = dg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w += 1
    with pytest.raises(RuntimeError, match="leaf"):
        w *= 2
    assert w.tolist() == [1.0, 2.0]


def test_inplace_ops_on_plain_tensors():
    t = dg.tensor([1.0, 2.0])
    t += 1
    t *= 2
    t -= dg.tensor([1.0, 1.0])
    t /= 2
    assert t.tolist() == [1.5, 2.5]
    t.zero_()
    assert t.tolist() == [0, 0]


def test_grad_zero_and_assignment_checks():
    x = dg.tensor([1.0], requires_grad=True)
    (x * 2).backward()
    g = x.grad
    g.zero_()
    assert x.grad.tolist() == [0.0]
    (x * 5).backward()
    assert x.grad.tolist() == [5.0]
    with pytest.raises((TypeError, RuntimeError)):
        x.grad = np.zeros(1)
    with pytest.raises(RuntimeError):
        x.grad = dg.zeros(3)


# ---- methods ----------------------------------------------------------------------------


def test_reduction_methods_with_dim():
    a = np.array([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]], np.float32)
    t = dg.tensor(a)
    assert t.sum().item() == 21 and t.mean().item() == 3.5
    for name in ("sum", "mean", "max", "min"):
        r = getattr(t, name)(dim=1)
        if name in ("max", "min"):  # (values, indices), as torch
            values, indices = r
            assert values is r.values and indices is r.indices
            assert indices.tolist() == getattr(np, "arg" + name)(a, axis=1).tolist()
            assert indices.dtype == np.int64
            r = r.values
        assert isinstance(r, dg.Tensor)
        np.testing.assert_allclose(r.numpy(), getattr(np, name)(a, axis=1))
        k = getattr(t, name)(dim=0, keepdim=True)
        assert (k.values if name in ("max", "min") else k).shape == (1, 3)
    assert t.argmax(dim=1).tolist() == [1, 2] and t.argmin().item() == 0
    assert t.max().item() == 6.0 and dg.max(t).item() == 6.0
    np.testing.assert_allclose(t.var(dim=1).numpy(), np.var(a, axis=1, ddof=1))


def test_shape_methods():
    t = dg.tensor(np.arange(24.0).reshape(2, 3, 4))
    assert t.reshape(6, 4).shape == (6, 4) and t.reshape((4, -1)).shape == (4, 6)
    assert t.view(-1).shape == (24,) and t.view(2, 12).shape == (2, 12)
    assert t.transpose(0, 2).shape == (4, 3, 2) and t.permute(2, 0, 1).shape == (4, 2, 3)
    assert t.T.shape == (4, 3, 2)
    assert t.unsqueeze(1).shape == (2, 1, 3, 4) and t.unsqueeze(-1).squeeze(-1).shape == (2, 3, 4)
    assert dg.ones(3, 1).expand(3, 5).shape == (3, 5) and dg.ones(3, 1).expand(2, -1, 4).shape == (2, 3, 4)
    assert dg.ones(1, 3, 1).squeeze().shape == (3,)
    assert t.float().dtype == np.float32 and t.double().dtype == np.float64
    np.testing.assert_array_equal(t.permute(1, 2, 0).numpy(), np.arange(24.0).reshape(2, 3, 4).transpose(1, 2, 0))


def test_functions_namespace():
    x = dg.tensor([[0.5, -1.0], [2.0, 0.25]])
    a = x.numpy()
    np.testing.assert_allclose(dg.exp(x).numpy(), np.exp(a), rtol=1e-6)
    np.testing.assert_allclose(dg.tanh(x).numpy(), np.tanh(a), rtol=1e-6)
    np.testing.assert_allclose(dg.abs(x).numpy(), np.abs(a))
    np.testing.assert_allclose(dg.sqrt(dg.abs(x)).numpy(), np.sqrt(np.abs(a)), rtol=1e-6)
    np.testing.assert_allclose(dg.log(dg.abs(x)).numpy(), np.log(np.abs(a)), rtol=1e-6)
    np.testing.assert_allclose(dg.sigmoid(x).numpy(), 1 / (1 + np.exp(-a)), rtol=1e-6)
    np.testing.assert_allclose(dg.relu(x).numpy(), np.maximum(a, 0))
    np.testing.assert_allclose(dg.sum(x, 0).numpy(), a.sum(0))
    np.testing.assert_allclose(dg.mean(x, 1).numpy(), a.mean(1))
    np.testing.assert_allclose(dg.matmul(x, x).numpy(), a @ a, rtol=1e-6)
    np.testing.assert_allclose(dg.maximum(x, 0.3).numpy(), np.maximum(a, 0.3))
    np.testing.assert_allclose(dg.minimum(x, 0.3).numpy(), np.minimum(a, 0.3))
    np.testing.assert_allclose(dg.where(x > 0, x, 0.0).numpy(), np.where(a > 0, a, 0))
    np.testing.assert_allclose(dg.cat([x, x], dim=1).numpy(), np.concatenate([a, a], 1))
    np.testing.assert_allclose(dg.stack([x, x], dim=1).numpy(), np.stack([a, a], 1))
    np.testing.assert_allclose(dg.softmax(x, 1).numpy(), np.exp(a) / np.exp(a).sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(
        dg.log_softmax(x, 0).numpy(), a - np.log(np.exp(a).sum(0, keepdims=True)), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(x.softmax(-1).numpy(), dg.softmax(x, -1).numpy())
    np.testing.assert_allclose(x.clamp(-0.5, 1.0).numpy(), np.clip(a, -0.5, 1.0))
    np.testing.assert_allclose(x.clamp(min=0.0).numpy(), np.clip(a, 0.0, None))


def test_expand_rejects_minus_one_for_new_dimensions():
    with pytest.raises(RuntimeError, match="expand"):
        dg.ones(3, 1).expand(-1, 3, 4)
    with pytest.raises(RuntimeError, match=r"(expand|broadcast_to).*\(3, 1\)"):
        dg.ones(3, 1).expand(3, 5, 2)
    with pytest.raises(RuntimeError):
        dg.ones(2, 3).expand(3)


def test_int_tensor_with_python_float_promotes_to_float32_as_torch():
    i = dg.tensor([1, 2])
    assert (i * 2.5).dtype == np.float32
    assert (2.5 - i).dtype == np.float32
    assert (i * 2).dtype == np.int64
    np.testing.assert_allclose((i * 2.5).numpy(), [2.5, 5.0])
    g = dg.trace(lambda x: x * 2.5, i)
    assert g(i).dtype == np.float32


def test_clamp_matches_torch_at_infinities_and_when_min_exceeds_max():
    x = dg.tensor([-np.inf, -1.0, 0.2, 5.0, np.inf], requires_grad=True)
    y = x.clamp(-0.5, 1.0)
    assert y.tolist() == pytest.approx([-0.5, -0.5, 0.2, 1.0, 1.0])
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert dg.tensor([1.0, 2.0, 3.0]).clamp(2.5, 1.0).tolist() == [1.0, 1.0, 1.0]  # min(max(x, 2.5), 1)
    assert np.isnan(dg.tensor([np.nan]).clamp(0.0, 1.0).item())


def test_mean_of_an_integer_tensor_raises_as_torch():
    with pytest.raises(RuntimeError, match="floating point"):
        dg.tensor([1, 2]).mean()
    assert dg.tensor([1, 2]).float().mean().item() == 1.5
