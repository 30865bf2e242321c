"""``dg.grad`` and ``dg.value_and_grad``: JAX-style functional gradients on the tape.

They run ``fn`` with grad-requiring copies of the chosen arguments and differentiate the
tape.  Because the tape also records on tracer tensors, the same transform produces IR
autodiff under ``dg.trace`` and composes with itself (grad of grad).
"""
from __future__ import annotations

import functools

import numpy as np

from ..ops import primitives as P
from . import grad_mode
from .autograd import grad as _autograd_grad
from .tensor import Tensor
from ..ops import context as _context


def _prepare(x, outer):
    if not isinstance(x, Tensor):
        raise TypeError(f"dg.grad: differentiated argument must be a Tensor, got {type(x).__name__}")
    if outer and x.requires_grad:
        # an outer transform is differentiating x: an alias keeps that connection while
        # giving this transform its own variable to differentiate by
        return P.reshape(x, shape=x.shape)
    if _context.get().trace is not None and isinstance(x._value, np.ndarray):
        # an eager tensor is a constant to a trace (no tape through it): differentiate
        # by a traced copy of it instead
        return P.reshape(x._untaped(), shape=x.shape).requires_grad_(True)
    return x._untaped().requires_grad_(True)


def _zeros_like(x):
    return P.zeros(tuple(x.shape), x.dtype)


def _reaches_other_leaves(out, own):
    """Whether ``out``'s tape reaches a grad-requiring leaf other than ``own``."""
    own_ids = {id(x) for x in own}
    seen = set()
    stack = [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.inputs is None:
            return True  # freed by an earlier backward: assume the worst
        for t, need in zip(node.inputs, node.need):
            if not need or not isinstance(t, Tensor):
                continue
            if t._grad_fn is None:
                if id(t) not in own_ids:
                    return True
            else:
                stack.append(t._grad_fn)
    return False


def value_and_grad(fn, argnums=0):
    """``dg.value_and_grad(f)(x) == (f(x), df/dx)``; ``argnums`` an int or a tuple of ints."""
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        args = list(args)
        # under no_grad nothing outside wants our graph; the gradient is still computed
        outer = grad_mode.is_grad_enabled() and any(
            isinstance(args[i], Tensor) and args[i].requires_grad for i in nums
        )
        with grad_mode.enable_grad():
            for i in nums:
                args[i] = _prepare(args[i], outer)
            out = fn(*args, **kwargs)
        if not outer and grad_mode.is_grad_enabled() and isinstance(out, Tensor) and out.requires_grad:
            # fn may close over tensors an outer transform differentiates (grad of grad
            # with the inner function reading the outer variable): keep the connection
            outer = _reaches_other_leaves(out, [args[i] for i in nums])
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise TypeError(
                "dg.grad: the function must return a scalar Tensor, got "
                + (f"shape {out.shape}" if isinstance(out, Tensor) else type(out).__name__)
            )
        if out.dtype.kind not in "fc":
            raise TypeError(
                "dg.grad requires real- or complex-valued outputs (output dtype that is a sub-dtype "
                f"of np.inexact), but got {out.dtype.name} (as jax.grad)"
            )
        # a gradient that is zero is an exact zero (never x * 0: NaN where x is inf or NaN)
        if not out.requires_grad:
            gs = tuple(_zeros_like(args[i]) for i in nums)
        else:
            gs = _autograd_grad(out, [args[i] for i in nums], create_graph=outer, allow_unused=True)
            gs = tuple(g if g is not None else _zeros_like(args[i]) for g, i in zip(gs, nums))
        value = out if outer else out._untaped()
        return value, (gs[0] if single else gs)

    return wrapped


def grad(fn, argnums=0):
    """``dg.grad(f)(x)``: the gradient of scalar-valued ``f`` at ``x`` (as jax.grad)."""
    vg = value_and_grad(fn, argnums)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    return wrapped
