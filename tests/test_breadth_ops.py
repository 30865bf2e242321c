"""Issue 10 (op breadth, conv, pooling, factories): what the op table cannot express --
registry coverage, factories and seeding, in-place initialisers, errors that name the op,
methods and top-level names, eager-only paths.  The ops themselves are checked by the op
table (tests/op_table_breadth.py) and against torch (tests/test_vs_torch_ops.py)."""
import numpy as np
import pytest

import dualgraph as dg
from dualgraph.ops import PRIMITIVES, math_ops, nn_ops, shape_ops
from dualgraph.ops import more_composites as MC
from dualgraph.ops.registry import KINDS

from .op_table import OPS_BY_NAME


NEW_PRIMS = list(math_ops.PRIMITIVES) + list(shape_ops.PRIMITIVES) + list(nn_ops.PRIMITIVES)


def test_every_new_primitive_is_registered_declared_and_in_the_op_table():
    assert len(NEW_PRIMS) >= 30
    for p in NEW_PRIMS:
        assert PRIMITIVES[p.name] is p
        assert p.kind in KINDS, p.name
        assert p.arity in (1, 2, 3), p.name
        assert p.grad_name and p.fn_name, p.name
        info = OPS_BY_NAME.get(p.name)
        assert info is not None and info.kind == "primitive", f"{p.name}: no op-table entry"
        assert info.differentiable == (p.vjp is not None), p.name


def test_tensor_methods_and_top_level_names_exist():
    x = dg.tensor([[1.0, -2.0], [3.0, 0.5]])
    for m in ["sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "floor", "ceil", "trunc", "round",
              "frac", "rsqrt", "reciprocal", "log2", "log10", "log1p", "exp2", "expm1", "isnan", "isinf", "isfinite",
              "nan_to_num", "clip", "clamp", "fmod", "remainder", "lerp", "square", "prod", "std", "var", "amax",
              "amin", "logsumexp", "norm", "cumsum", "cumprod", "any", "all", "sort", "topk", "argsort", "flatten",
              "unflatten", "permute", "repeat", "tile", "expand_as", "flip", "roll", "tril", "triu", "split", "chunk",
              "unbind", "narrow", "gather", "scatter", "scatter_add", "index_select", "masked_fill", "take_along_dim",
              "mm", "bmm", "mv", "dot", "outer", "diag", "diagonal", "trace", "new_zeros", "new_ones", "new_full",
              "clone", "contiguous", "normal_", "uniform_"]:
        assert callable(getattr(x, m)), m
    for f in ["square", "sin", "atan2", "floor", "rsqrt", "isnan", "nan_to_num", "clip", "fmod", "remainder", "lerp",
              "prod", "std", "amax", "logsumexp", "norm", "cumsum", "cumprod", "any", "all", "sort", "topk", "argsort",
              "flatten", "unflatten", "permute", "tile", "flip", "roll", "tril", "triu", "split", "chunk", "unbind",
              "narrow", "gather", "scatter", "scatter_add", "index_select", "masked_fill", "take_along_dim", "einsum",
              "mm", "bmm", "mv", "dot", "outer", "diag", "diagonal", "eye", "empty", "full_like", "zeros_like",
              "ones_like", "rand_like", "randn_like", "clone", "arange", "linspace", "logspace", "randint", "randperm",
              "manual_seed"]:
        assert callable(getattr(dg, f)), f
    # dg.trace stays the tracer; the matrix trace is the method
    assert dg.trace is dg.static.trace
    assert x.trace().item() == 1.5


def test_operators_floordiv_and_mod():
    x = dg.tensor([7.0, -7.0, 5.5])
    np.testing.assert_array_equal((x // 2).numpy(), [3.0, -4.0, 2.0])
    np.testing.assert_array_equal((x % 2).numpy(), [1.0, 1.0, 1.5])
    np.testing.assert_array_equal((10 // dg.tensor([3, -3])).numpy(), [3, -4])
    np.testing.assert_array_equal((10 % dg.tensor([3, -3])).numpy(), [1, -2])
    with pytest.raises(ZeroDivisionError, match="remainder"):
        dg.tensor([1, 2]) % dg.tensor([1, 0])


def test_max_min_and_sum_aliases():
    x = dg.tensor(np.arange(6.0).reshape(2, 3))
    assert x.sum(axis=1, keepdims=True).shape == (2, 1)
    assert dg.sum(x, dim=0, dtype=dg.float64).dtype == np.float64
    assert dg.sum(dg.tensor([True, True, False])).item() == 2
    assert dg.sum(dg.tensor(np.array([1, 2], np.int32))).dtype == np.int64
    np.testing.assert_allclose(x.std(dim=1, correction=0).numpy(), np.std(x.numpy(), axis=1))
    np.testing.assert_allclose(x.var(unbiased=False).item(), np.var(x.numpy()))
    for f, ref in [(dg.amax, np.max), (dg.amin, np.min), (dg.prod, np.prod), (dg.mean, np.mean), (dg.std, np.std)]:
        kw = {"correction": 0} if f is dg.std else {}
        np.testing.assert_allclose(f(x, axis=1, keepdims=True, **kw).numpy(),
                                   ref(x.numpy(), axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(dg.logsumexp(x, axis=0).numpy(), np.log(np.exp(x.numpy()).sum(0)), rtol=1e-6)
    np.testing.assert_allclose(dg.norm(x, axis=1).numpy(), np.linalg.norm(x.numpy(), axis=1), rtol=1e-6)
    np.testing.assert_array_equal(dg.cumsum(x, axis=1).numpy(), np.cumsum(x.numpy(), 1))
    assert dg.any(x > 4, axis=1).tolist() == [False, True] and dg.all(x >= 0, axis=0, keepdims=True).shape == (1, 3)
    with pytest.raises(TypeError, match="both dim and axis"):
        dg.sum(x, dim=0, axis=1)


# ---- factories ---------------------------------------------------------------------------


def test_manual_seed_reproduces_every_random_factory():
    def draw():
        dg.manual_seed(123)
        t = dg.zeros(3)
        with dg.no_grad():
            t.normal_(1.0, 2.0)
        u = dg.zeros(2).uniform_(-1, 1)
        return [dg.rand(2, 2), dg.randn(3), dg.rand_like(dg.ones(2)), dg.randn_like(dg.ones(2, dtype=dg.float64)),
                dg.randint(0, 10, (4,)), dg.randint(5, (3,)), dg.randperm(6), t, u]

    a, b = draw(), draw()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    dg.manual_seed(124)
    assert not np.array_equal(dg.rand(4).numpy(), a[0].numpy().reshape(-1))
    assert sorted(a[6].tolist()) == list(range(6)) and a[6].dtype == np.int64
    assert a[4].dtype == np.int64 and 0 <= a[4].numpy().min() and a[4].numpy().max() < 10
    assert a[3].dtype == np.float64


def test_inplace_initialisers_need_no_grad_on_leaves():
    w = dg.zeros(3, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w.normal_()
    with dg.no_grad():
        r = w.uniform_(-0.5, 0.5)
    assert r is w and w.requires_grad and w.dtype == np.float32
    assert np.all(np.abs(w.detach().numpy()) <= 0.5) and np.any(w.detach().numpy() != 0)
    with pytest.raises(RuntimeError, match="floating"):
        dg.zeros(2, dtype=dg.int64).normal_()


def test_factory_shapes_and_dtypes():
    assert dg.eye(3).dtype == np.float32 and dg.eye(2, 3).shape == (2, 3)
    np.testing.assert_array_equal(dg.eye(3, dtype=dg.int64).numpy(), np.eye(3, dtype=np.int64))
    assert dg.empty(2, 3).shape == (2, 3) and dg.empty((4,)).shape == (4,)
    x = dg.ones(2, 3, dtype=dg.float64)
    assert dg.full_like(x, 7).dtype == np.float64 and dg.full_like(x, 7).numpy()[0, 0] == 7
    assert dg.zeros_like(x, dtype=dg.int64).dtype == np.int64
    assert x.new_zeros(4).dtype == np.float64 and x.new_ones((2, 2)).shape == (2, 2)
    assert x.new_full((3,), 2.5).numpy().tolist() == [2.5] * 3
    assert x.new_tensor([1, 2]).dtype == np.float64
    np.testing.assert_allclose(dg.arange(0, 1, 0.25).numpy(), [0, 0.25, 0.5, 0.75])
    assert dg.arange(0, 1, 0.25).dtype == np.float32 and dg.arange(3).dtype == np.int64
    assert len(dg.arange(0, 1, 0.1)) == 10 and len(dg.arange(1, 0, -0.3)) == 4
    np.testing.assert_allclose(dg.logspace(0, 2, 3).numpy(), [1, 10, 100])
    np.testing.assert_allclose(dg.linspace(0, 1, 3).numpy(), [0, 0.5, 1])
    assert x.contiguous() is x and x.is_contiguous()


def test_clone_is_a_differentiable_copy():
    x = dg.tensor([1.0, 2.0], requires_grad=True)
    y = x.clone()
    assert y.grad_fn is not None
    with dg.no_grad():
        y2 = x.clone()
    y2._value[0] = 5.0
    assert x.detach().numpy()[0] == 1.0
    (y * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


# ---- eager-only and error paths ----------------------------------------------------------


def test_one_hot_infers_num_classes_eagerly_and_asks_for_it_when_traced():
    t = dg.tensor([0, 2, 1])
    np.testing.assert_array_equal(MC.one_hot(t).numpy(), np.eye(3, dtype=np.int64)[[0, 2, 1]])
    with pytest.raises(RuntimeError, match="num_classes"):
        dg.trace(lambda t: MC.one_hot(t), t)
    g = dg.trace(lambda t: MC.one_hot(t, 4), t)
    assert g(t).shape == (3, 4)
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        MC.one_hot(dg.tensor([0, 4]), 3)


def test_conv_errors_name_the_op_shapes_and_line():
    x = dg.randn(2, 4, 8, 8)
    w = dg.randn(6, 3, 3, 3)
    with pytest.raises(RuntimeError, match=r"conv2d: .*weight of size \[6, 3, 3, 3\].*3 channels, but got 4") as e:
        nn_ops.conv2d(x, w)
    assert "test_breadth_ops.py" in str(e.value)
    with pytest.raises(TypeError, match="conv2d: .*same dtype"):
        nn_ops.conv2d(dg.randn(1, 3, 5, 5), dg.randn(2, 3, 3, 3, dtype=dg.float64))
    with pytest.raises(RuntimeError, match="smaller than the"):
        nn_ops.conv2d(dg.randn(1, 3, 2, 2), dg.randn(2, 3, 3, 3))
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        nn_ops.max_pool2d(dg.randn(1, 1, 4, 4), 2, padding=2)
    with pytest.raises(RuntimeError, match="3-d .* or 4-d"):
        nn_ops.conv2d(dg.randn(5, 5), w)
    with pytest.raises(RuntimeError, match="floating point"):
        nn_ops.avg_pool2d(dg.ones(1, 1, 4, 4, dtype=dg.int64), 2)


def test_traced_conv_graph_prints_the_primitives_and_matches_eager():
    x = dg.randn(2, 3, 6, 6)
    w = dg.randn(4, 3, 3, 3, requires_grad=True)

    def f(x, w):
        y = nn_ops.max_pool2d(nn_ops.conv2d(x, w, padding=1), 2)
        return nn_ops.adaptive_avg_pool2d(y, 1).sum()

    g = dg.trace(f, x, w)
    names = [e.name for e in g.ops]
    assert "conv2d" in names and "max_pool2d_indices" in names
    np.testing.assert_array_equal(g(x, w).detach().numpy(), f(x, w).detach().numpy())
    gg = dg.trace(dg.grad(f, argnums=1), x, w)
    assert "conv2d_weight" in [e.name for e in gg.ops]
    np.testing.assert_allclose(gg(x, w).detach().numpy(), dg.grad(f, argnums=1)(x, w).detach().numpy(), rtol=1e-6)


def test_gather_bounds_and_index_dtype_errors():
    x = dg.tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(IndexError, match="out of bounds"):
        dg.gather(x, 1, dg.tensor([[0, 2], [1, 0]]))
    with pytest.raises(IndexError, match="out of bounds"):
        dg.gather(x, 1, dg.tensor([[0, -1], [1, 0]]))
    with pytest.raises(TypeError, match="int64"):
        dg.gather(x, 1, dg.tensor([[0.0, 1.0], [1.0, 0.0]]))


def test_topk_and_split_errors():
    with pytest.raises(RuntimeError, match="out of range"):
        dg.topk(dg.ones(3), 4)
    with pytest.raises(RuntimeError, match="sum exactly"):
        dg.split(dg.ones(5), [2, 2])


def test_einsum_errors_and_implicit_output():
    a, b = dg.randn(2, 3), dg.randn(3, 4)
    np.testing.assert_allclose(dg.einsum("ij,jk", a, b).numpy(), (a @ b).numpy(), rtol=1e-5)
    np.testing.assert_allclose(dg.einsum("ba", a).numpy(), a.numpy().T)  # implicit: sorted output
    with pytest.raises(RuntimeError, match="einsum"):
        dg.einsum("ij,jk->ik", a, dg.randn(4, 4))
    with pytest.raises(RuntimeError, match="subscript"):
        dg.einsum("ijk", a)


def test_pool_ceil_mode_window_starting_in_padding_is_dropped():
    # torch: the last window must start inside the input or the left padding
    x = dg.tensor(np.arange(25.0).reshape(1, 1, 5, 5))
    y = nn_ops.max_pool2d(x, 2, stride=2, padding=1, ceil_mode=True)
    assert y.shape == (1, 1, 3, 3)
    y = nn_ops.avg_pool2d(x, 3, stride=3, ceil_mode=True)
    assert y.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(y.numpy()[0, 0, 1, 1], np.mean([18.0, 19.0, 23.0, 24.0]))


def test_methods_take_torch_calling_conventions():
    x = dg.tensor(np.arange(6.0).reshape(2, 3))
    for flipped in (x.flip(0), x.flip([0]), x.flip(dims=(0,))):
        np.testing.assert_array_equal(flipped.numpy(), x.numpy()[::-1])
    np.testing.assert_array_equal(x.flip(0, 1).numpy(), x.numpy()[::-1, ::-1])
    np.testing.assert_array_equal(x.scatter(1, dg.tensor([[0], [2]]), 9.0).numpy(), [[9, 1, 2], [3, 4, 9]])
    np.testing.assert_allclose(x.std(1, True).numpy(), [1.0, 1.0])
    assert x.var(1, False, True).shape == (2, 1)
    values, indices = x.sort(descending=True)
    assert indices.tolist() == [[2, 1, 0], [2, 1, 0]]
    assert x.repeat(2, 1).shape == (4, 3) and x.repeat((1, 2)).shape == (2, 6)
    assert [t.shape for t in x.split(2, 1)] == [(2, 2), (2, 1)]
    assert x.unflatten(1, (3, 1)).shape == (2, 3, 1) and x.flatten(0).shape == (6,)
    assert x.new_zeros(2, 2).shape == (2, 2) and x.new_ones((3,)).dtype == np.float64  # x is float64
