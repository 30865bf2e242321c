"""dg.nn.functional: the table-driven op checks run over ``tests/op_table_nn.NN_OPS``
(forward against numpy, gradcheck first and second order, eager == traced interpreter,
IR autodiff == tape), plus what a table cannot say: dropout's randomness, running-stat
updates, the errors for refused calls."""
import numpy as np
import pytest

import dualgraph as dg
import dualgraph.nn.functional as F

from . import test_ops as _ops
from . import test_static_ops as _static
from .op_table_nn import NN_OPS


def _cases():
    for info in NN_OPS:
        for dt in info.dtypes:
            yield pytest.param(info, dt, id=f"{info.name}-{np.dtype(dt).name}")


IDS = [o.name for o in NN_OPS]


@pytest.mark.parametrize("info, dtype", list(_cases()))
def test_forward_matches_numpy(info, dtype):
    _ops.test_forward_matches_numpy(info, dtype)


@pytest.mark.parametrize("info", NN_OPS, ids=IDS)
def test_gradcheck_first_order(info):
    _ops.test_gradcheck_first_order(info)


@pytest.mark.parametrize("info", NN_OPS, ids=IDS)
def test_gradcheck_second_order(info):
    _ops.test_gradcheck_second_order(info)


@pytest.mark.parametrize("info, dtype", list(_cases()))
def test_eager_equals_interpreter(info, dtype):
    _static.test_eager_equals_interpreter(info, dtype)


@pytest.mark.parametrize("info", NN_OPS, ids=IDS)
def test_ir_autodiff_equals_eager(info):
    _static.test_ir_autodiff_equals_eager(info)


@pytest.mark.parametrize("info", NN_OPS, ids=IDS)
def test_ir_second_order_equals_eager(info):
    _static.test_ir_second_order_equals_eager(info)


def test_the_names_torch_users_reach_for_exist():
    names = """linear bilinear dropout layer_norm rms_norm batch_norm group_norm instance_norm embedding
    nll_loss cross_entropy binary_cross_entropy binary_cross_entropy_with_logits l1_loss mse_loss
    smooth_l1_loss huber_loss kl_div cosine_similarity pairwise_distance normalize
    scaled_dot_product_attention multi_head_attention_forward conv1d conv2d conv_transpose2d max_pool2d
    avg_pool2d adaptive_avg_pool2d relu gelu sigmoid tanh softmax log_softmax logsigmoid""".split()
    missing = [n for n in names if not callable(getattr(F, n, None))]
    assert not missing, missing


# ---- dropout ------------------------------------------------------------------------------


def test_dropout_zeroes_and_scales_with_gradient_through_the_mask():
    dg.manual_seed(0)
    x = dg.ones(200, 50, requires_grad=True)
    y = F.dropout(x, p=0.3, training=True)
    v = y.detach().numpy()
    kept = v != 0
    assert 0.66 < kept.mean() < 0.74
    np.testing.assert_allclose(v[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), v)  # d/dx = mask / (1 - p)
    assert y.dtype == np.float32


def test_dropout_is_reproducible_and_the_identity_when_not_training():
    x = dg.randn(8, 8)
    dg.manual_seed(3)
    a = F.dropout(x, 0.5).numpy()
    dg.manual_seed(3)
    b = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert F.dropout(x, 0.5, training=False) is x
    assert not np.any(F.dropout(x, 1.0).numpy())
    y = dg.ones(4, 5)
    assert F.dropout(y, 0.5, inplace=True) is y and set(np.unique(y.numpy())) <= {0.0, 2.0}
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


def test_dropout_in_training_mode_refuses_to_be_traced():
    with pytest.raises(NotImplementedError, match="dropout.*eval"):
        dg.trace(lambda x: F.dropout(x, 0.5, training=True), dg.randn(3))
    g = dg.trace(lambda x: F.dropout(x, 0.5, training=False) * 2, dg.randn(3))
    x = dg.randn(3)
    np.testing.assert_array_equal(g(x).numpy(), x.numpy() * 2)


def test_inplace_flag_writes_back_only_where_no_gradient_can_be_corrupted():
    x = dg.tensor([-1.0, 2.0])
    assert F.relu(x, inplace=True) is x and x.tolist() == [0.0, 2.0]
    a = dg.tensor([-1.0, 2.0], requires_grad=True)
    h = a * 1
    y = F.leaky_relu(h, 0.1, inplace=True)  # part of the graph: out of place, as x = f(x) expects
    assert y is not h and h.tolist() == [-1.0, 2.0]
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [0.1, 1.0])
    with dg.no_grad():
        assert F.hardtanh(a, inplace=True) is a
    assert a.tolist() == [-1.0, 1.0]
    m = dg.nn.ReLU(inplace=True)
    x = dg.tensor([-3.0, 1.0])
    assert m(x) is x and repr(m) == "ReLU(inplace=True)"


# ---- running statistics and other state -----------------------------------------------------


def test_batch_norm_training_updates_running_stats_in_place():
    x = np.random.default_rng(0).normal(size=(8, 3, 4)).astype(np.float32)
    rm, rv = dg.zeros(3), dg.ones(3)
    rm_buf = rm._value
    F.batch_norm(dg.tensor(x), rm, rv, training=True, momentum=0.25)
    assert rm._value is rm_buf  # in place
    mu = x.mean((0, 2))
    var = x.var((0, 2), ddof=1)
    np.testing.assert_allclose(rm.numpy(), 0.25 * mu, rtol=1e-5)
    np.testing.assert_allclose(rv.numpy(), 0.75 + 0.25 * var, rtol=1e-5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(dg.randn(1, 3), rm, rv, training=True)
    with pytest.raises(NotImplementedError, match="running statistics"):
        dg.trace(lambda t: F.batch_norm(t, rm, rv, training=True), dg.randn(4, 3))


def test_embedding_padding_row_gets_no_gradient():
    w = dg.randn(5, 2, requires_grad=True)
    F.embedding(dg.tensor([[1, 3], [3, 0]]), w, padding_idx=3).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[1, 1], [1, 1], [0, 0], [0, 0], [0, 0]])


# ---- refused calls ----------------------------------------------------------------------------


def test_errors_name_the_problem():
    x = dg.randn(4, 3)
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        F.cross_entropy(x, dg.tensor([0, 1, 7, 2]))
    with pytest.raises(IndexError, match="out of bounds"):
        F.nll_loss(x, dg.tensor([0, -3, 1, 2]))
    with pytest.raises(ValueError, match="Expected target of shape"):
        F.cross_entropy(x, dg.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="integer class-index target"):
        F.nll_loss(x, dg.tensor([0.0, 1.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="target size"):
        F.cross_entropy(x, dg.rand(4, 2))
    with pytest.raises(RuntimeError, match="normalized_shape"):
        F.layer_norm(x, (4,))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(dg.tensor([0.5, 1.5]), dg.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="target size"):
        F.l1_loss(dg.randn(3), dg.randn(1))
    with pytest.raises(ValueError, match="reduction"):
        F.huber_loss(dg.randn(3), dg.randn(3), reduction="avg")
    with pytest.raises(IndexError, match="index 5 is out of range for 5 embeddings"):
        F.embedding(dg.tensor([0, 5]), dg.randn(5, 2))
    with pytest.raises(IndexError, match="index -1 is out of range"):
        F.embedding(dg.tensor([0, -1]), dg.randn(5, 2))
    with pytest.raises(RuntimeError, match="is_causal"):
        q = dg.randn(2, 3, 4)
        F.scaled_dot_product_attention(q, q, q, attn_mask=dg.ones(3, 3), is_causal=True)
    with pytest.raises(ValueError, match=r"linear: input shape \(2, 5\) does not match weight shape \(3, 4\)"):
        dg.nn.Linear(4, 3)(dg.randn(2, 5))
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        F.group_norm(dg.randn(2, 5, 3), 2)
