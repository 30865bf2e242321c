"""The examples of the autograd article (/work/shared/reference/autograd-article-zh.txt,
"PyTorch 自动微分机制"), run as written with ``dg`` for ``torch``; the printed output must be
what the article shows."""
import numpy as np
import pytest

import dualgraph as dg


def test_first_example_prints_12(capsys):
    # 创建需要计算梯度的张量
    x = dg.tensor([2.0], requires_grad=True)
    y = x**2
    z = y * 3

    # 自动计算梯度
    z.backward()
    print(x.grad)  # tensor([12.])
    assert capsys.readouterr().out == "tensor([12.])\n"


def test_graph_structure_x_pow_y_mul_z():
    # 计算图结构: x -> (pow) -> y -> (mul) -> z
    x = dg.tensor([2.0], requires_grad=True)
    y = x**2
    z = y * 3
    assert type(z.grad_fn).__name__ == "MulBackward"
    assert z.grad_fn.next_functions[0][0] is y.grad_fn
    assert type(y.grad_fn).__name__ == "PowBackward"
    leaf = y.grad_fn.next_functions[0][0]
    assert type(leaf).__name__ == "AccumulateGrad" and leaf.variable is x
    assert repr(y) == "tensor([4.], grad_fn=<PowBackward>)"
    assert x.requires_grad and x.data.tolist() == [2.0] and x.grad is None


def test_simplified_mul_backward_matches_engine():
    # 简化的乘法反向传播实现 (the article's class, verbatim)
    class MulBackward:
        def __init__(self, input1, input2):
            self.input1 = input1
            self.input2 = input2

        def backward(self, grad_output):
            # 链式法则:∂L/∂x = ∂L/∂z * ∂z/∂x
            grad_input1 = grad_output * self.input2
            grad_input2 = grad_output * self.input1
            return grad_input1, grad_input2

    a = dg.tensor([1.5, -2.0], requires_grad=True)
    b = dg.tensor([4.0, 0.5], requires_grad=True)
    g = dg.tensor([1.0, 3.0])
    expected = MulBackward(a.detach(), b.detach()).backward(g)
    got = dg.autograd.grad(a * b, [a, b], grad_outputs=g)
    assert [t.tolist() for t in got] == [t.tolist() for t in expected]


def test_backward_walkthrough():
    x = dg.tensor([2.0], requires_grad=True)
    y = x**2  # y = 4
    z = y * 3  # z = 12
    assert y.item() == 4.0 and z.item() == 12.0
    z.backward()
    # dz/dx = 3 * 2x = 3 * 4 = 12
    assert x.grad.item() == 12.0


def test_gradient_accumulation_prints_2_then_5(capsys):
    x = dg.tensor([1.0], requires_grad=True)

    y1 = x**2
    y1.backward()
    print(x.grad)  # tensor([2.])

    y2 = x**3
    y2.backward()  # 梯度会累积
    print(x.grad)  # tensor([5.]) = 2 + 3

    # 需要手动清零
    x.grad.zero_()
    assert capsys.readouterr().out == "tensor([2.])\ntensor([5.])\n"
    assert repr(x.grad) == "tensor([0.])"
    (x**2).backward()
    assert repr(x.grad) == "tensor([2.])"  # zeroed, so not 7


def test_graph_is_freed_after_backward():
    x = dg.tensor([1.0], requires_grad=True)
    y = x**2
    y.backward()  # 默认情况下,计算图会被释放
    with pytest.raises(RuntimeError, match=r"retain_graph=True"):
        y.backward()

    # 如果需要多次反向传播
    x.grad = None
    y = x**2
    y.backward(retain_graph=True)  # 保留计算图
    y.backward()
    assert x.grad.tolist() == [4.0]


def test_dynamic_graph_example():
    x = dg.tensor([3.0])
    y = x * 2  # 这一行执行时,同时构建图和计算结果
    assert repr(y) == "tensor([6.])"


def forward(x, n):
    result = x
    for i in range(n):  # n 可以是运行时变量
        if result.sum() > 0:
            result = result * 2
        else:
            result = result + 1
    return result


def _forward_reference(a, n):
    """The value and d(sum of result)/dx of ``forward``, by hand: each doubling doubles
    the derivative, adding 1 leaves it."""
    r, d = np.array(a, np.float64), 1.0
    for _ in range(n):
        if r.sum() > 0:
            r, d = r * 2, d * 2
        else:
            r = r + 1
    return r, np.full(r.shape, d)


@pytest.mark.parametrize(
    "values, n",
    [([0.5, 1.0], 3), ([-3.0, 0.5], 4), ([-1.5, 0.2], 5), ([-10.0], 3), ([1.0, -1.0], 2), ([2.0], 0)],
)
def test_forward_with_python_control_flow_differentiates(values, n):
    x = dg.tensor(values, requires_grad=True)
    result = forward(x, n)
    ref_value, ref_grad = _forward_reference(values, n)
    np.testing.assert_allclose(result.detach().numpy(), ref_value, rtol=1e-6)
    if not result.requires_grad:  # n == 0: result is x itself
        assert result is x
        return
    result.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), ref_grad)


def test_forward_gradient_depends_on_the_path_taken():
    # the same function, different branches: the tape records the path actually run
    g_pos = dg.grad(lambda t: forward(t, 3).sum())(dg.tensor([1.0]))
    g_neg = dg.grad(lambda t: forward(t, 3).sum())(dg.tensor([-5.0]))
    assert g_pos.tolist() == [8.0] and g_neg.tolist() == [1.0]
    x = dg.tensor([0.3, -0.1], dtype=dg.float64, requires_grad=True)
    assert dg.autograd.gradcheck(lambda t: forward(t, 4), [x])
