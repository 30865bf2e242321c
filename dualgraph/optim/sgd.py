"""SGD with momentum, dampening, Nesterov momentum and weight decay (torch's update rule)."""
from __future__ import annotations

from ..eager.tensor import Tensor
from .optimizer import Optimizer, check_args, grads, first_step_eagerly, live_lr, step_under_no_grad, _copy, required


class SGD(Optimizer):
    """``g += wd p``; with momentum ``buf = momentum buf + (1 - dampening) g`` (the first
    step ``buf = g``), ``g = g + momentum buf`` (nesterov) or ``g = buf``; ``p -= lr g``."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        check_args("SGD", differentiable, fused, lr=0.0 if lr is required else lr, momentum=momentum,
                   weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, foreach=foreach,
                                      differentiable=False, fused=None))

    @step_under_no_grad
    def step(self, closure=None):
        for group in self.param_groups:
            lr, momentum, dampening = live_lr(group), group["momentum"], group["dampening"]
            wd, nesterov = group["weight_decay"], group["nesterov"]
            for p, g in grads(group):
                if wd != 0:
                    g = g + wd * p
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        first_step_eagerly(self)
                        buf = state["momentum_buffer"] = _copy(g)
                    else:
                        buf *= momentum
                        buf += (1 - dampening) * g
                    g = g + momentum * buf if nesterov else buf
                # (a traced learning rate: rounded to p's dtype as the Python float is)
                p -= (lr._cast(p.dtype) if isinstance(lr, Tensor) else lr) * g
