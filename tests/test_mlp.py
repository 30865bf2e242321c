"""A small MLP trained for 300 steps with plain SGD: the loss falls and memory stays flat
(no tape, gradient or cache kept alive from one step to the next)."""
import gc
import tracemalloc

import numpy as np
import pytest

import dualgraph as dg
import dualgraph.nn.functional as F


def _spirals(n_per_class=40, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.1, 1.0, n_per_class)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, 0.2, n_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], 1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def _init(sizes, seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        w = rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32)
        params += [dg.tensor(w, requires_grad=True), dg.zeros(b, requires_grad=True)]
    return params


def _model(params, x):
    h = x
    for i in range(0, len(params) - 2, 2):
        h = (h @ params[i] + params[i + 1]).tanh()
    return h @ params[-2] + params[-1]


def _used_bytes():
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


@pytest.mark.parametrize("clear", ["set_none", "zero_"])
def test_mlp_training_loss_falls_and_memory_is_flat(clear):
    X, Y = _spirals()
    x, y = dg.tensor(X), dg.tensor(Y)
    params = _init([2, 32, 32, 3])
    lr = 0.5
    losses = []
    tracemalloc.start()
    try:
        for step in range(1, 301):
            loss = F.cross_entropy(_model(params, x), y)
            loss.backward()
            with dg.no_grad():
                for p in params:
                    p -= lr * p.grad
                    if clear == "set_none":
                        p.grad = None
                    else:
                        p.grad.zero_()
            losses.append(loss.item())
            if step == 50:
                mem_50 = _used_bytes()
        mem_300 = _used_bytes()
    finally:
        tracemalloc.stop()
    growth = mem_300 - mem_50
    # a leaked tape is tens of KB per step here (several MB over 250 steps)
    assert growth < 64 * 1024, f"memory grew by {growth} bytes between step 50 and step 300"
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    assert np.mean(losses[-10:]) < np.mean(losses[40:50])  # still falling after step 50
    for p in params:
        assert p.is_leaf and p.requires_grad and p.dtype == np.float32
    with dg.no_grad():
        acc = (_model(params, x).argmax(dim=1) == y).float().mean().item()
    assert acc > 0.6


def test_old_losses_release_their_graph():
    """A loss kept by the user (e.g. in a list) must not keep the tape alive after backward."""
    import weakref

    params = _init([2, 8, 3])
    x, y = dg.tensor(_spirals(5)[0]), dg.tensor(_spirals(5)[1])
    loss = F.cross_entropy(_model(params, x), y)
    hidden = loss.grad_fn.next_functions[0][0]
    saved = [weakref.ref(t) for t in (hidden.inputs or ()) if isinstance(t, dg.Tensor) and not t.is_leaf]
    assert saved, "expected saved intermediate tensors before backward"
    loss.backward()
    gc.collect()
    assert all(r() is None for r in saved), "saved intermediates survived backward"
