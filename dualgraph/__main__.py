"""``python -m dualgraph``: a short eager demo (fits a small MLP and prints its loss falling).

The benchmark command (``python -m dualgraph bench``) arrives with the bench issue.
"""
from __future__ import annotations

import sys


def demo(steps: int = 200) -> list[float]:
    import numpy as np

    import dualgraph as dg

    dg.manual_seed(0)
    rng = np.random.default_rng(0)
    x = dg.tensor(rng.uniform(-2, 2, size=(256, 2)).astype(np.float32))
    y = dg.tensor((np.sin(x.numpy()[:, :1] * 1.5) * np.cos(x.numpy()[:, 1:])).astype(np.float32))
    w1 = (dg.randn(2, 32) * 0.5).requires_grad_()
    b1 = dg.zeros(32, requires_grad=True)
    w2 = (dg.randn(32, 1) * 0.2).requires_grad_()
    b2 = dg.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]
    lr = 0.1
    losses = []
    print("eager demo: 2-32-1 tanh MLP fitting sin(1.5x)cos(y) with plain SGD")
    for step in range(steps + 1):
        pred = dg.tanh(x @ w1 + b1) @ w2 + b2
        loss = dg.nn.functional.mse_loss(pred, y)
        loss.backward()
        with dg.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad = None
        losses.append(loss.item())
        if step % 25 == 0:
            print(f"step {step:4d}  loss {loss.item():.5f}")
    print(f"loss fell from {losses[0]:.5f} to {losses[-1]:.5f}")
    return losses


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] not in ("demo",):
        print(f"unknown command {argv[0]!r}; available: demo", file=sys.stderr)
        return 2
    demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
