"""RMSprop (torch's update rule, optional momentum and centering)."""
from __future__ import annotations

from ..eager.tensor import Tensor
from .optimizer import Optimizer, check_args, grads, first_step_eagerly, live_lr, step_under_no_grad, _step_tensor, _zeros_like


class RMSprop(Optimizer):
    """``s = alpha s + (1 - alpha) g^2``; ``avg = sqrt(s - gbar^2)`` (centered) or
    ``sqrt(s)``, plus ``eps``; ``p -= lr g / avg`` (or through a momentum buffer)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        check_args("RMSprop", differentiable, lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay,
                   alpha=alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, capturable=capturable, foreach=foreach,
                                      maximize=maximize, differentiable=False))

    @step_under_no_grad
    def step(self, closure=None):
        for group in self.param_groups:
            lr, alpha, eps = live_lr(group), group["alpha"], group["eps"]
            wd, momentum, centered = group["weight_decay"], group["momentum"], group["centered"]
            for p, g in grads(group):
                state = self.state[p]
                if not state:
                    first_step_eagerly(self)
                    state["step"] = _step_tensor()
                    state["square_avg"] = _zeros_like(p)
                    if momentum > 0:
                        state["momentum_buffer"] = _zeros_like(p)
                    if centered:
                        state["grad_avg"] = _zeros_like(p)
                state["step"] += 1
                if wd != 0:
                    g = g + wd * p
                sq = state["square_avg"]
                sq *= alpha
                sq += g * g * (1 - alpha)
                if centered:
                    ga = state["grad_avg"]
                    ga += (g - ga) * (1 - alpha)
                    avg = (sq - ga * ga).sqrt()
                else:
                    avg = sq.sqrt()
                avg = avg + eps
                if isinstance(lr, Tensor):  # traced: rounded to p's dtype as the Python float is
                    lr = lr._cast(p.dtype)
                if momentum > 0:
                    buf = state["momentum_buffer"]
                    buf *= momentum
                    buf += g / avg
                    p -= lr * buf
                else:
                    p -= lr * g / avg
