"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad``, ``state_dict`` /
``load_state_dict`` (torch's layout: ``{"state": {index: {...}}, "param_groups": [...]}``).

Steps run under ``no_grad`` and update parameters and state tensors in place (the
Tensor in-place operators ``+= -= *= /=``), so the parameter objects the model holds are
the ones updated and memory does not grow from step to step."""
from __future__ import annotations

import copy
import functools
from collections import defaultdict

import numpy as np

from ..eager.grad_mode import enable_grad, no_grad
from ..eager.tensor import Tensor
from ..ops import context as _context
from ..ops.context import EagerFirst


class _RequiredParameter:
    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def _as_tensor(v, like=None):
    """A fresh Tensor holding a copy of ``v`` (a dualgraph/torch tensor or an array); cast to
    ``like``'s dtype when both are floating, as torch's load_state_dict does."""
    if isinstance(v, Tensor):
        a = v._value
    elif hasattr(v, "detach") and hasattr(v, "cpu"):  # a torch tensor
        a = v.detach().cpu().numpy()
    else:
        a = np.asarray(v)
    if like is not None and a.dtype.kind == "f" and like.dtype.kind == "f":
        a = a.astype(like.dtype)
    return Tensor(np.array(a, copy=True))


def _is_tensor_like(v):
    return isinstance(v, (Tensor, np.ndarray)) or (hasattr(v, "detach") and hasattr(v, "cpu"))


def step_under_no_grad(step):
    """Decorator of the built-in ``step`` methods: the closure (if any) runs under
    enable_grad and its loss is returned, the update itself runs under no_grad.  (A user's
    subclass decorates its own ``step``, as in torch.)"""

    @functools.wraps(step)
    def wrapped(self, closure=None):
        tr = _context.get().trace
        if tr is not None:  # under dg.compile: the program holds while these stay the same
            tr.guard(self._traced_state, ("optimizer", id(self)))
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            step(self)
        return loss

    return wrapped


_LABELS = {"lr": "learning rate", "eps": "epsilon value"}


def check_args(opt_name, differentiable=False, fused=None, **nonnegative):
    """torch's argument checks: each keyword must be >= 0 (``Invalid learning rate: -1``,
    ``Invalid momentum value: -1``), and ``differentiable``/``fused`` are not supported."""
    for name, v in nonnegative.items():
        if v < 0.0:
            raise ValueError(f"Invalid {_LABELS.get(name, name + ' value')}: {v}")
    if differentiable or fused:
        raise NotImplementedError(f"{opt_name}: differentiable and fused are not supported")


def grads(group):
    """``(p, g)`` for each parameter of ``group`` that has a gradient; ``g`` negated when the
    group maximizes (the loop head every update rule shares)."""
    for p in group["params"]:
        g = p.grad
        if g is None:
            continue
        yield p, (-g if group["maximize"] else g)


class Optimizer:
    """Base class: ``Optimizer(params, defaults)``; ``params`` is an iterable of tensors or
    of dicts (parameter groups, each with its own options)."""

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state: dict = defaultdict(dict)
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors "
                            "or dicts, but got Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self):
        s = type(self).__name__ + " ("
        for i, g in enumerate(self.param_groups):
            s += f"\nParameter Group {i}"
            for k in sorted(g):
                if k != "params":
                    s += f"\n    {k}: {g[k]}"
        return s + "\n)"

    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the "
                            "ordering of tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)
        group = dict(param_group)
        if params and all(isinstance(p, tuple) and len(p) == 2 for p in params):  # named_parameters()
            group["param_names"] = [n for n, _ in params]
            params = [p for _, p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        group["params"] = params
        for k, v in self.defaults.items():
            if v is required and k not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {k}")
            group.setdefault(k, v)
        self._epoch = getattr(self, "_epoch", 0) + 1  # a compiled step traces again
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:
                        p.grad.detach_()
                    with no_grad():
                        p.grad.zero_()

    def _traced_state(self):
        """What a traced step reads of the optimizer's Python state (checked before each
        call of a compiled step): the hyperparameters, and which parameters and state
        tensors there are (``_epoch`` moves when groups are added or state is loaded)."""
        return (getattr(self, "_epoch", 0), id(self.state), len(self.state),
                tuple(tuple(v for k, v in g.items() if k not in ("params", "lr"))
                      for g in self.param_groups))

    def step(self, closure=None):
        raise NotImplementedError(f"{type(self).__name__}.step is not implemented")

    # ---- state dicts --------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"state": {index: {name: value}}, "param_groups": [{options, "params": [index]}]}``;
        parameters are numbered in group order, state values are references (as torch)."""
        index = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            for p in g["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore options and per-parameter state (copied; floating state cast to each
        parameter's dtype).  Accepts dualgraph's or torch's state dicts."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for g, s in zip(self.param_groups, saved):
            if len(g["params"]) != len(s["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size "
                                 "of optimizer's group")
        id_map = {}
        for g, s in zip(self.param_groups, saved):
            for p, i in zip(g["params"], s["params"]):
                id_map[int(i)] = p
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            k = int(k)
            if k not in id_map:
                continue
            p = id_map[k]
            state[p] = {name: self._restore(name, val, p) for name, val in v.items()}
        self.state = state
        self._epoch = getattr(self, "_epoch", 0) + 1
        new_groups = []
        for g, s in zip(self.param_groups, saved):
            ng = {k: copy.deepcopy(v) for k, v in s.items() if k != "params"}
            ng["params"] = g["params"]
            new_groups.append(ng)
        self.param_groups = new_groups

    @staticmethod
    def _restore(name, val, p):
        if name == "step" and _is_tensor_like(val):
            return Tensor(np.asarray(float(np.asarray(_as_tensor(val)._value)), np.float32))
        if _is_tensor_like(val):
            return _as_tensor(val, p)
        return copy.deepcopy(val)


def first_step_eagerly(opt):
    """Called where a step creates its state lazily: under a trace (dg.compile) this call
    runs eagerly instead, and the compiled function traces the next one."""
    if _context.get().trace is not None:
        raise EagerFirst(f"{type(opt).__name__}.step creates its state on the first step")


def live_lr(group):
    """``group["lr"]``: under dg.compile a 0-d float64 tensor read at each call (so that a
    learning-rate scheduler needs no new trace), else the Python number."""
    tr = _context.get().trace
    lr = group["lr"]
    if tr is None or not isinstance(lr, (int, float)) or isinstance(lr, bool):
        return lr
    t = tr.live_scalar(lambda: group["lr"])
    return lr if t is None else t


def traced(t):
    """``t`` holds a traced value (inside dg.compile), not an array."""
    return t._value.__class__ is not np.ndarray


def _zeros_like(p):
    return Tensor(np.zeros(p.shape, p.dtype))


def _copy(t):
    return Tensor(np.array(t._value, copy=True, order="C"))


def _step_tensor():
    return Tensor(np.zeros((), np.float32))
