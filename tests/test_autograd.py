"""The autograd half of the API contract (API.md, "Autograd" and the Tensor autograd rows):
backward, graph structure, hooks, grad modes, autograd.grad, dg.grad/value_and_grad,
gradient conventions at ties, and the composite ops against analytic gradients."""
import math

import numpy as np
import pytest

import dualgraph as dg
import dualgraph.nn.functional as F

# ---- backward ---------------------------------------------------------------------------


def test_backward_accumulates_and_zero_grad():
    x = dg.tensor([1.0, -2.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, -4.0]
    (x * 3).sum().backward()
    assert x.grad.tolist() == [5.0, -1.0]
    x.grad.zero_()
    assert x.grad.tolist() == [0.0, 0.0]


def test_backward_through_shared_subexpression():
    x = dg.tensor([3.0], requires_grad=True)
    y = x * x
    z = y * y + y * x  # x^4 + x^3
    z.backward()
    assert x.grad.item() == pytest.approx(4 * 27 + 3 * 9)


def test_nonscalar_backward_needs_gradient():
    x = dg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    y.backward(dg.tensor([1.0, 0.5, 0.0]))
    assert x.grad.tolist() == [2.0, 1.0, 0.0]
    with pytest.raises(RuntimeError):
        (x * 2).backward(dg.ones(2))  # wrong gradient shape


def test_backward_of_tensor_not_requiring_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        dg.tensor([1.0]).backward()
    x = dg.tensor([1.0], requires_grad=True)
    with dg.no_grad():
        y = x * 2
    with pytest.raises(RuntimeError):
        y.backward()


def test_second_backward_through_freed_graph_raises_naming_retain_graph():
    x = dg.tensor([2.0], requires_grad=True)
    y = (x**2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"retain_graph=True"):
        y.backward()
    z = (x**2).sum()
    x.grad = None
    z.backward(retain_graph=True)
    z.backward()  # the graph was kept for this second pass
    assert x.grad.item() == 8.0


def test_freed_graph_error_through_intermediate():
    x = dg.tensor([2.0], requires_grad=True)
    h = x.exp()
    a = (h * 2).sum()
    b = (h * 3).sum()
    a.backward()  # frees h's node too
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        b.backward()


def test_deep_chain_does_not_recurse():
    x = dg.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.item() == 1.0


def test_detach_stops_gradient():
    x = dg.tensor([2.0], requires_grad=True)
    y = x * x.detach()  # d/dx = x.detach() only
    y.backward()
    assert x.grad.item() == 2.0
    assert not x.detach().requires_grad and x.detach().is_leaf


def test_requires_grad_flag_and_non_leaf():
    t = dg.tensor([1.0]).requires_grad_()
    assert t.requires_grad and t.is_leaf
    y = t * 2
    with pytest.raises(RuntimeError):
        y.requires_grad_(False)
    t.requires_grad_(False)
    assert not (t * 2).requires_grad


# ---- graph structure --------------------------------------------------------------------


def test_grad_fn_names_and_next_functions():
    x = dg.tensor([2.0], requires_grad=True)
    w = dg.tensor([1.0], requires_grad=True)
    y = x**2
    z = y * 3 + w
    assert type(z.grad_fn).__name__ == "AddBackward"
    assert type(y.grad_fn).__name__ == "PowBackward"
    nf = z.grad_fn.next_functions
    assert isinstance(nf, tuple) and len(nf) == 2
    mul_node, idx = nf[0]
    assert type(mul_node).__name__ == "MulBackward" and idx == 0
    acc_w, _ = nf[1]
    assert type(acc_w).__name__ == "AccumulateGrad" and acc_w.variable is w
    pow_node = mul_node.next_functions[0][0]
    assert pow_node is y.grad_fn
    assert mul_node.next_functions[1][0] is None  # the Python scalar 3
    acc_x = pow_node.next_functions[0][0]
    assert type(acc_x).__name__ == "AccumulateGrad" and acc_x.variable is x
    # the same leaf has one AccumulateGrad node
    assert (x * x).grad_fn.next_functions[0][0] is (x * x).grad_fn.next_functions[1][0]
    for name, t in [("Sum", x.sum()), ("Exp", x.exp()), ("Div", x / 2), ("Neg", -x), ("Sub", x - 1)]:
        assert type(t.grad_fn).__name__ == name + "Backward"
    assert all(type(t.grad_fn).__name__.endswith("Backward")
               for t in (x.reshape(1, 1), x[0], x @ x, dg.cat([x, x]), x.tanh(), x.sigmoid()))


def test_next_functions_survive_backward():
    x = dg.tensor([2.0], requires_grad=True)
    y = (x * 3).sum()
    y.backward()
    nf = y.grad_fn.next_functions
    assert type(nf[0][0]).__name__ == "MulBackward"
    assert type(nf[0][0].next_functions[0][0]).__name__ == "AccumulateGrad"


# ---- hooks and retain_grad --------------------------------------------------------------


def test_leaf_hook_replaces_gradient_and_can_be_removed():
    x = dg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h = x.register_hook(lambda g: g * 10)
    x.register_hook(lambda g: seen.append(g.tolist()))  # returning None keeps the gradient
    (x * x).sum().backward()
    assert x.grad.tolist() == [20.0, 40.0] and seen == [[20.0, 40.0]]
    h.remove()
    x.grad = None
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_leaf_hook_sees_the_total_gradient_once():
    # x is used twice: the hook runs once, on 2x, not once per use (torch)
    x = dg.tensor([2.0, 0.25], requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(1) or g.clamp(-1.0, 1.0))
    (x * x).sum().backward()
    assert x.grad.tolist() == [1.0, 0.5] and len(calls) == 1
    (g,) = dg.autograd.grad((x * x).sum(), x)
    assert g.tolist() == [1.0, 0.5] and len(calls) == 2


def test_nonleaf_hook_changes_what_flows_back():
    x = dg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g + 1)
    (y * y).sum().backward()  # dL/dy = 2y = [4, 8] -> [5, 9]; dL/dx = 2 * that
    assert x.grad.tolist() == [10.0, 18.0]
    assert y.grad is None  # non-leaf grads are not kept without retain_grad


def test_hook_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError):
        dg.tensor([1.0]).register_hook(lambda g: g)


def test_retain_grad():
    x = dg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.retain_grad()
    z = (y * y).sum()
    z.backward()
    assert y.grad.tolist() == [6.0, 12.0] and x.grad.tolist() == [18.0, 36.0]
    assert not y.grad.requires_grad
    x.retain_grad()  # a no-op on leaves
    x.grad = None
    (x * 1).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]


# ---- grad modes -------------------------------------------------------------------------


def test_no_grad_and_enable_grad_context_managers():
    x = dg.tensor([1.0], requires_grad=True)
    assert dg.is_grad_enabled()
    with dg.no_grad():
        assert not dg.is_grad_enabled()
        y = x * 2
        with dg.enable_grad():
            z = x * 2
        assert not dg.is_grad_enabled()
    assert dg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad


def test_grad_mode_restored_after_exception():
    with pytest.raises(ValueError):
        with dg.no_grad():
            raise ValueError
    assert dg.is_grad_enabled()


def test_grad_modes_as_decorators():
    x = dg.tensor([1.0], requires_grad=True)

    @dg.no_grad()
    def f(a):
        return a * 2

    @dg.no_grad
    def f_bare(a):
        return a * 2

    @dg.enable_grad()
    def g(a):
        return a * 2

    @dg.enable_grad
    def g_bare(a):
        return a * 2

    assert not f(x).requires_grad and not f_bare(x).requires_grad
    assert f_bare.__name__ == "f_bare"
    with dg.no_grad():
        assert g(x).requires_grad and g_bare(x).requires_grad
        assert not dg.is_grad_enabled()
    assert dg.is_grad_enabled()


def test_set_grad_enabled():
    x = dg.tensor([1.0], requires_grad=True)
    with dg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert dg.is_grad_enabled()
    dg.set_grad_enabled(False)
    try:
        assert not dg.is_grad_enabled()
    finally:
        dg.set_grad_enabled(True)
    assert (x * 2).requires_grad


# ---- dg.autograd.grad -------------------------------------------------------------------


def test_autograd_grad_returns_tuple_and_leaves_grad_untouched():
    x = dg.tensor([3.0], requires_grad=True)
    y = dg.tensor([2.0], requires_grad=True)
    out = dg.autograd.grad((x * x * y).sum(), [x, y])
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0].tolist() == [12.0] and out[1].tolist() == [9.0]
    assert x.grad is None and y.grad is None
    (g,) = dg.autograd.grad((x * 2).sum(), x)
    assert g.tolist() == [2.0] and not g.requires_grad


def test_autograd_grad_outputs():
    x = dg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (g,) = dg.autograd.grad(x * x, x, grad_outputs=dg.tensor([1.0, 0.0, 2.0]))
    assert g.tolist() == [2.0, 0.0, 12.0]
    with pytest.raises(RuntimeError, match="scalar"):
        dg.autograd.grad(x * x, x)
    a, b = dg.tensor([1.0], requires_grad=True), dg.tensor([1.0], requires_grad=True)
    # several outputs: the seeded gradients add up
    (g,) = dg.autograd.grad([a * 2, a * 5], [a], grad_outputs=[dg.tensor([1.0]), dg.tensor([3.0])])
    assert g.tolist() == [17.0]
    del b


def test_autograd_grad_create_graph_higher_order():
    x = dg.tensor([2.0], requires_grad=True)
    (g1,) = dg.autograd.grad((x**4).sum(), x, create_graph=True)
    assert g1.requires_grad and g1.item() == 32.0  # 4x^3
    (g2,) = dg.autograd.grad(g1.sum(), x, create_graph=True)
    assert g2.item() == 48.0  # 12x^2
    (g3,) = dg.autograd.grad(g2.sum(), x)
    assert g3.item() == 48.0  # 24x
    # mixed partials
    y = dg.tensor([3.0], requires_grad=True)
    (gx,) = dg.autograd.grad((x * x * y).sum(), x, create_graph=True)
    (gxy,) = dg.autograd.grad(gx.sum(), y)
    assert gxy.item() == 4.0  # d/dy 2xy = 2x


def test_autograd_grad_allow_unused():
    x = dg.tensor([1.0], requires_grad=True)
    z = dg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        dg.autograd.grad((x * 2).sum(), [x, z])
    gx, gz = dg.autograd.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gx.tolist() == [2.0] and gz is None


def test_autograd_grad_wrt_intermediate():
    x = dg.tensor([2.0], requires_grad=True)
    h = x * 3
    (gh,) = dg.autograd.grad((h * h).sum(), h)
    assert gh.tolist() == [12.0]


def test_create_graph_backward_accumulates_differentiable_grad():
    x = dg.tensor([2.0], requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad and g.item() == 12.0
    (g2,) = dg.autograd.grad(g.sum(), x)
    assert g2.item() == 12.0


# ---- dg.grad / dg.value_and_grad --------------------------------------------------------


def test_grad_and_value_and_grad():
    def f(a):
        return (a**3).sum()

    x = dg.tensor([1.0, 2.0])
    assert dg.grad(f)(x).tolist() == [3.0, 12.0]
    v, g = dg.value_and_grad(f)(x)
    assert v.item() == 9.0 and g.tolist() == [3.0, 12.0]
    assert not x.requires_grad and x.grad is None  # the input is not touched


def test_grad_argnums():
    def h(a, b, c):
        return (a * b * b + c).sum()

    a, b, c = dg.tensor([2.0]), dg.tensor([3.0]), dg.tensor([1.0])
    assert dg.grad(h, argnums=1)(a, b, c).tolist() == [12.0]
    ga, gb = dg.grad(h, argnums=(0, 1))(a, b, c)
    assert ga.tolist() == [9.0] and gb.tolist() == [12.0]
    v, (gc,) = dg.value_and_grad(h, argnums=(2,))(a, b, c)
    assert v.item() == 19.0 and gc.tolist() == [1.0]


def test_grad_of_grad():
    def f(x):
        return (x**3).sum()

    x = dg.tensor([2.0])
    d2 = dg.grad(lambda t: dg.grad(f)(t).sum())(x)
    assert d2.tolist() == [12.0]  # 6x
    d3 = dg.grad(lambda t: dg.grad(lambda u: dg.grad(f)(u).sum())(t).sum())(x)
    assert d3.tolist() == [6.0]

    def g(x):
        return x.tanh().sum()  # (x.sin() exists since issue 10; this checks tanh)

    t = dg.tensor([0.3], dtype=dg.float64)
    gg = dg.grad(lambda u: dg.grad(g)(u).sum())(t).item()
    y = math.tanh(0.3)
    assert gg == pytest.approx(-2 * y * (1 - y * y))


def test_grad_with_python_control_flow_and_errors():
    def f(x):
        total = x.sum() * 0
        for i in range(3):
            total = total + (x * i).sum() if x.sum() > 0 else total - x.sum()
        return total

    assert dg.grad(f)(dg.tensor([1.0, 2.0])).tolist() == [3.0, 3.0]
    assert dg.grad(f)(dg.tensor([-1.0, -2.0])).tolist() == [-3.0, -3.0]
    with pytest.raises(TypeError, match="scalar"):
        dg.grad(lambda x: x * 2)(dg.tensor([1.0, 2.0]))


# ---- gradient conventions at ties (torch's) ---------------------------------------------


def _grad(fn, values):
    x = dg.tensor(values, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.tolist()


def test_relu_gradient_at_zero_is_zero():
    assert _grad(dg.relu, [-1.0, 0.0, 2.0]) == [0.0, 0.0, 1.0]
    assert _grad(F.relu, [0.0]) == [0.0]


def test_abs_gradient_at_zero_is_zero():
    assert _grad(lambda x: x.abs(), [-2.0, 0.0, 3.0]) == [-1.0, 0.0, 1.0]


def test_clamp_passes_gradient_at_the_bounds():
    # torch: the gradient flows where min <= x <= max (the bounds included)
    assert _grad(lambda x: x.clamp(-1.0, 1.0), [-2.0, -1.0, 0.0, 1.0, 2.0]) == [0, 1, 1, 1, 0]
    assert _grad(lambda x: x.clamp(min=0.0), [-1.0, 0.0, 1.0]) == [0, 1, 1]
    assert _grad(lambda x: x.clamp(max=0.0), [-1.0, 0.0, 1.0]) == [1, 1, 0]


def test_maximum_minimum_split_gradient_at_ties():
    a = dg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = dg.tensor([2.0, 2.0, 1.0], requires_grad=True)
    dg.maximum(a, b).sum().backward()
    assert a.grad.tolist() == [0.0, 0.5, 1.0] and b.grad.tolist() == [1.0, 0.5, 0.0]
    a.grad = b.grad = None
    dg.minimum(a, b).sum().backward()
    assert a.grad.tolist() == [1.0, 0.5, 0.0] and b.grad.tolist() == [0.0, 0.5, 1.0]


def test_max_min_reductions_at_ties_follow_torch():
    # torch's max()/amax() without dim: ties share the gradient evenly
    assert _grad(lambda x: x.max(), [1.0, 3.0, 3.0, 2.0]) == [0.0, 0.5, 0.5, 0.0]
    assert _grad(lambda x: x.min(), [1.0, 3.0, 1.0, 1.0]) == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3])
    # torch's max(dim)/min(dim): the gradient goes to the index argmax/argmin returns
    x = dg.tensor([[1.0, 5.0, 5.0], [4.0, 2.0, 0.0]], requires_grad=True)
    x.max(dim=1).values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    assert x.argmax(dim=1).tolist() == [1, 0]
    x.grad = None
    x.min(dim=0, keepdim=True).values.sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
    # several dims at once (amax-like): even split again
    y = dg.tensor([[2.0, 2.0], [1.0, 0.0]], requires_grad=True)
    y.max(dim=(0, 1)).backward()
    assert y.grad.tolist() == [[0.5, 0.5], [0.0, 0.0]]


# ---- composites against analytic results ------------------------------------------------


def test_cross_entropy_value_and_gradient_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4))
    target = np.array([0, 3, 3, 1, 2])
    x = dg.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, dg.tensor(target))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ref = -np.mean(np.log(p[np.arange(5), target]))
    assert loss.shape == () and loss.item() == pytest.approx(ref, rel=1e-12)
    loss.backward()
    onehot = np.eye(4)[target]
    np.testing.assert_allclose(x.grad.numpy(), (p - onehot) / 5, rtol=1e-10, atol=1e-12)
    # float32 logits stay float32; big logits do not overflow
    big = F.cross_entropy(dg.tensor([[1000.0, 0.0]]), dg.tensor([1]))
    assert big.dtype == np.float32 and big.item() == pytest.approx(1000.0)
    with pytest.raises(ValueError):
        F.cross_entropy(dg.tensor(logits), dg.tensor(logits[:, 0]))


def test_gelu_both_forms():
    a = np.array([-3.0, -1.0, -0.1, 0.0, 0.5, 2.0])
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in a])
    tanh = 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))
    np.testing.assert_allclose(F.gelu(dg.tensor(a)).numpy(), exact, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(F.gelu(dg.tensor(a), approximate="tanh").numpy(), tanh, rtol=1e-12)
    assert not np.allclose(exact, tanh, rtol=1e-6)  # the two forms differ
    x = dg.tensor(a, requires_grad=True)
    F.gelu(x).sum().backward()
    pdf = np.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    cdf = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in a])
    np.testing.assert_allclose(x.grad.numpy(), cdf + a * pdf, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError):
        F.gelu(x, approximate="fast")


def test_softmax_and_log_softmax_gradients():
    a = np.array([[0.5, -1.0, 2.0], [0.0, 0.1, -0.3]])
    w = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
    s = np.exp(a) / np.exp(a).sum(1, keepdims=True)
    x = dg.tensor(a, requires_grad=True)
    (dg.softmax(x, dim=1) * dg.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), s * (w - (s * w).sum(1, keepdims=True)), rtol=1e-10)
    x.grad = None
    (x.log_softmax(1) * dg.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), w - s * w.sum(1, keepdims=True), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dg.softmax(x, 1).detach().numpy().sum(1), [1.0, 1.0])


def test_mean_and_var_gradients():
    a = np.array([1.0, 2.0, 4.0, 7.0])
    x = dg.tensor(a, requires_grad=True)
    x.mean().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(4, 0.25))
    x.grad = None
    v = x.var()
    assert v.item() == pytest.approx(np.var(a, ddof=1))
    v.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (a - a.mean()) / 3, rtol=1e-12)
    assert x.var(unbiased=False).item() == pytest.approx(np.var(a))


def test_mse_loss():
    a, t = np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0, 5.0])
    x = dg.tensor(a, requires_grad=True)
    loss = F.mse_loss(x, dg.tensor(t))
    assert loss.item() == pytest.approx(5 / 3)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (a - t) / 3)


def test_cat_stack_gradients_split_back():
    a = dg.tensor([1.0, 2.0], requires_grad=True)
    b = dg.tensor([3.0], requires_grad=True)
    (dg.cat([a, b]) * dg.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert a.grad.tolist() == [1.0, 2.0] and b.grad.tolist() == [3.0]
    c = dg.tensor([1.0, 1.0], requires_grad=True)
    (dg.stack([a, c], dim=1) * dg.tensor([[1.0, 10.0], [2.0, 20.0]])).sum().backward()
    assert c.grad.tolist() == [10.0, 20.0]


def test_matmul_gradients_1d_and_batched():
    rng = np.random.default_rng(0)
    for sa, sb in [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((4, 2, 3), (3, 5)), ((4, 2, 3), (4, 3, 5))]:
        A, B = rng.normal(size=sa), rng.normal(size=sb)
        a, b = dg.tensor(A, requires_grad=True), dg.tensor(B, requires_grad=True)
        out = a @ b
        G = rng.normal(size=out.shape)
        out.backward(dg.tensor(G))
        np.testing.assert_allclose(out.detach().numpy(), A @ B, rtol=1e-12)
        # reference gradients via einsum on explicit 2-D views
        A2 = A[None, :] if A.ndim == 1 else A
        B2 = B[:, None] if B.ndim == 1 else B
        G2 = np.asarray(G).reshape(np.broadcast_shapes(A2.shape[:-2], B2.shape[:-2]) + (A2.shape[-2], B2.shape[-1]))
        gA = G2 @ np.swapaxes(B2, -1, -2)
        gB = np.swapaxes(A2, -1, -2) @ G2
        while gA.ndim > A2.ndim:
            gA = gA.sum(0)
        while gB.ndim > B2.ndim:
            gB = gB.sum(0)
        np.testing.assert_allclose(a.grad.numpy(), gA.reshape(A.shape), rtol=1e-10, err_msg=f"{sa}@{sb}")
        np.testing.assert_allclose(b.grad.numpy(), gB.reshape(B.shape), rtol=1e-10, err_msg=f"{sa}@{sb}")


def test_gradcheck_returns_true_and_reports_worst_mismatch():
    x = dg.tensor([0.5, -0.3], requires_grad=True)
    assert dg.autograd.gradcheck(lambda t: (t.tanh() * t).sum(), [x]) is True
    bad = dg.tensor([0.5, 1.5], requires_grad=True)

    def wrong(t):  # forward t*t, backward 4t
        return t * t + (t * t - (t * t).detach())

    with pytest.raises(RuntimeError, match=r"analytical.*numerical"):
        dg.autograd.gradcheck(wrong, [bad])


def test_leaf_gradient_has_the_leaf_dtype():
    # float32 x times a float64 constant: the product is float64, x.grad stays float32 (torch)
    x = dg.tensor([1.0, 2.0], requires_grad=True)
    c = dg.tensor(np.array([3.0, 4.0]))
    y = x * c
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [3.0, 4.0]
    (g,) = dg.autograd.grad((x * c).sum(), x)
    assert g.dtype == np.float32
    x.grad = None
    x.double().sum().backward()
    assert x.grad.dtype == np.float32
