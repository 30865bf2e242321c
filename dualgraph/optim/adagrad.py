"""Adagrad (torch's update rule, with learning-rate decay)."""
from __future__ import annotations

import numpy as np

from ..eager.tensor import Tensor
from .optimizer import Optimizer, check_args, grads, live_lr, step_under_no_grad, traced, _step_tensor


class Adagrad(Optimizer):
    """``sum += g^2``; ``p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(sum) + eps)``."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        check_args("Adagrad", differentiable, fused, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                   initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                                      maximize=maximize, differentiable=False, fused=None))
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = _step_tensor()
                state["sum"] = Tensor(np.full(p.shape, group["initial_accumulator_value"], p.dtype))

    @step_under_no_grad
    def step(self, closure=None):
        for group in self.param_groups:
            lr, lr_decay, eps, wd = live_lr(group), group["lr_decay"], group["eps"], group["weight_decay"]
            for p, g in grads(group):
                state = self.state[p]
                state["step"] += 1
                if traced(state["step"]):  # inside dg.compile: float64 tensor ops, as below
                    clr = (lr / (1 + (state["step"].double() - 1) * lr_decay))._cast(p.dtype)
                else:
                    step = float(state["step"].item())
                    clr = lr / (1 + (step - 1) * lr_decay)
                if wd != 0:
                    g = g + wd * p
                s = state["sum"]
                s += g * g
                std = s.sqrt() + eps
                p -= clr * g / std
