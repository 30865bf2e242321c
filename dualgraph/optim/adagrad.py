"""Adagrad (torch's update rule, with learning-rate decay)."""
from __future__ import annotations

import numpy as np

from ..eager.tensor import Tensor
from .optimizer import Optimizer, live_lr, step_under_no_grad, traced, _step_tensor


class Adagrad(Optimizer):
    """``sum += g^2``; ``p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(sum) + eps)``."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if lr_decay < 0.0:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if initial_accumulator_value < 0.0:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if differentiable or fused:
            raise NotImplementedError("Adagrad: differentiable and fused are not supported")
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
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if group["maximize"]:
                    g = -g
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
