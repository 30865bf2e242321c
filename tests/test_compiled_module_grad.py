"""A compiled module whose parameters require grad: gradients reach the parameters exactly as
eagerly (the parameters are captured tensors, not arguments)."""
import numpy as np

import dualgraph as dg


def _grads(model):
    return [p.grad.numpy().copy() for p in model.parameters()]


def _zero(model):
    for p in model.parameters():
        p.grad = None


def test_compiled_module_is_one_node_with_parameter_gradients():
    model = dg.nn.Sequential(dg.nn.Linear(4, 8), dg.nn.Tanh(), dg.nn.Linear(8, 3))
    cm = dg.compile(model, fullgraph=True)
    x = dg.tensor(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    model(x).sum().backward()
    want = _grads(model)
    for _ in range(3):  # the trace, then kernel calls
        _zero(model)
        y = cm(x)
        assert type(y.grad_fn).__name__ == "CompiledFunctionBackward"
        y.sum().backward()
        for g, w in zip(_grads(model), want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_compiled_module_with_running_stats_keeps_gradients_and_buffers():
    def make():
        dg.manual_seed(0)
        return dg.nn.Sequential(dg.nn.Linear(3, 6), dg.nn.BatchNorm1d(6), dg.nn.ReLU(),
                                dg.nn.Linear(6, 2))

    eager, comp = make(), make()
    cm = dg.compile(comp)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = dg.tensor(rng.standard_normal((8, 3)).astype(np.float32))
        _zero(eager)
        _zero(comp)
        (eager(x) ** 2).sum().backward()
        (cm(x) ** 2).sum().backward()
        for g, w in zip(_grads(comp), _grads(eager)):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(comp[1].running_mean.numpy(), eager[1].running_mean.numpy(),
                                   rtol=1e-5, atol=1e-6)
