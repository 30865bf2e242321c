"""Adam and AdamW (torch's single-tensor update rule: bias-corrected, optional AMSGrad)."""
from __future__ import annotations

import math


from ..eager.tensor import Tensor
from ..ops import primitives as P
from .optimizer import (Optimizer, check_args, grads, first_step_eagerly, live_lr, step_under_no_grad, traced, _step_tensor,
                        _zeros_like)


def _check(name, lr, eps, betas, weight_decay, differentiable, fused):
    check_args(name, differentiable, fused, lr=lr, eps=eps, weight_decay=weight_decay)
    for i in (0, 1):
        if not 0.0 <= betas[i] < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {betas[i]}")


class Adam(Optimizer):
    """``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``; ``weight_decay`` adds
    ``wd p`` to the gradient (L2; with ``decoupled_weight_decay`` it is AdamW's
    ``p *= 1 - lr wd``), ``amsgrad`` uses the running maximum of ``v``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        _check(type(self).__name__, lr, eps, betas, weight_decay, differentiable, fused)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                                      capturable=capturable, differentiable=False, fused=None,
                                      decoupled_weight_decay=decoupled_weight_decay))

    @step_under_no_grad
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (beta1, beta2), eps = live_lr(group), group["betas"], group["eps"]
            wd, amsgrad = group["weight_decay"], group["amsgrad"]
            decoupled = group.get("decoupled_weight_decay", False)
            for p, g in grads(group):
                state = self.state[p]
                if not state:
                    first_step_eagerly(self)
                    state["step"] = _step_tensor()
                    state["exp_avg"] = _zeros_like(p)
                    state["exp_avg_sq"] = _zeros_like(p)
                    if amsgrad:
                        state["max_exp_avg_sq"] = _zeros_like(p)
                state["step"] += 1
                if traced(state["step"]):
                    # inside dg.compile: the bias corrections as tensor ops on the step count,
                    # in float64 as the Python floats below, rounded to the parameter's dtype
                    # where eager code's Python floats meet float32 tensors
                    step = state["step"].double()
                    dt = p.dtype
                    bias1 = (lr / (1 - beta1 ** step))._cast(dt)
                    bias2_sqrt = (1 - beta2 ** step).sqrt()._cast(dt)
                else:
                    step = float(state["step"].item())
                    bias1 = lr / (1 - beta1 ** step)
                    bias2_sqrt = math.sqrt(1 - beta2 ** step)
                if wd != 0:
                    if decoupled:
                        decay = 1 - lr * wd
                        p *= decay._cast(p.dtype) if isinstance(decay, Tensor) else decay
                    else:
                        g = g + wd * p
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m += (g - m) * (1 - beta1)  # torch's lerp_
                v *= beta2
                v += g * g * (1 - beta2)
                if amsgrad:
                    vmax = state["max_exp_avg_sq"]
                    vmax.copy_(P.maximum(vmax, v))
                    v = vmax
                denom = v.sqrt() / bias2_sqrt + eps
                p -= bias1 * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * wd`` before the Adam update."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
