"""``dg.autograd``: ``grad`` and ``gradcheck``, as torch.autograd."""
from __future__ import annotations

import numpy as np

from . import grad_mode
from .engine import run_backward
from .tensor import Tensor, _ones_like


def _as_list(x):
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, as a tuple (torch.autograd.grad).

    >>> x = dg.tensor([3.0], requires_grad=True)
    >>> dg.autograd.grad((x * x).sum(), x)
    (tensor([6.]),)
    """
    outputs = _as_list(outputs)
    inputs = _as_list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    else:
        grad_outputs = _as_list(grad_outputs) if not isinstance(grad_outputs, Tensor) else [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, t in enumerate(inputs):
        if not t._requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not require grad")
    roots, seeds = [], []
    for o, g in zip(outputs, grad_outputs):
        if not o._requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if np.prod(o.shape, dtype=int) != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs (got shape {o.shape})"
                )
            g = _ones_like(o)
        elif not isinstance(g, Tensor):
            g = Tensor(g, dtype=o.dtype)
        roots.append(o)
        seeds.append(g)
    if retain_graph is None:
        retain_graph = create_graph
    res = run_backward(roots, seeds, retain_graph, create_graph, inputs, allow_unused)
    if not create_graph:
        res = [None if g is None else (g._untaped() if g._requires_grad else g) for g in res]
    return tuple(res)


class GradcheckError(RuntimeError):
    pass


def _flat_outputs(out):
    if isinstance(out, Tensor):
        return [out]
    return [o for o in out if isinstance(o, Tensor)]


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Compare analytic gradients of ``fn`` with central finite differences in float64.

    Returns True, or raises ``GradcheckError`` naming the worst mismatch.
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    xs = []
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad:
            x64 = Tensor(x.detach()._value.astype(np.float64), requires_grad=True)
            xs.append(x64)
        else:
            xs.append(x)
    diff = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("gradcheck: no input requires grad")

    with grad_mode.enable_grad():
        outs = _flat_outputs(fn(*xs))
    worst = (0.0, None)
    for oi, out in enumerate(outs):
        if not np.issubdtype(out.dtype, np.floating):
            continue
        n_out = int(np.prod(out.shape, dtype=int))
        # analytic Jacobian, one output element at a time
        analytic = {i: np.zeros((n_out, xs[i].numel())) for i in diff}
        if out.requires_grad:
            for k in range(n_out):
                seed = np.zeros(out.shape, np.float64)
                seed.reshape(-1)[k] = 1.0
                with grad_mode.enable_grad():
                    gs = grad([out], [xs[i] for i in diff], [Tensor(seed)], retain_graph=True, allow_unused=True)
                for i, g in zip(diff, gs):
                    if g is not None:
                        analytic[i][k] = g._value.reshape(-1)
        for i in diff:
            x = xs[i]
            flat = x._value.reshape(-1)
            numeric = np.zeros((n_out, flat.size))
            for j in range(flat.size):
                orig = flat[j]
                flat[j] = orig + eps
                with grad_mode.no_grad():
                    plus = np.array(_flat_outputs(fn(*xs))[oi]._value, dtype=np.float64)
                flat[j] = orig - eps
                with grad_mode.no_grad():
                    minus = np.array(_flat_outputs(fn(*xs))[oi]._value, dtype=np.float64)
                flat[j] = orig
                numeric[:, j] = ((plus - minus) / (2 * eps)).reshape(-1)
            a = analytic[i]
            err = np.abs(a - numeric) - (atol + rtol * np.abs(numeric))
            if err.size and np.nanmax(err) > worst[0] or np.isnan(err).any():
                k, j = np.unravel_index(np.nanargmax(np.where(np.isnan(err), np.inf, err)), err.shape)
                worst = (float(np.nanmax(np.where(np.isnan(err), np.inf, err))),
                         (oi, i, int(k), int(j), float(a[k, j]), float(numeric[k, j])))
    if worst[1] is not None:
        oi, i, k, j, a, n = worst[1]
        msg = (
            f"Jacobian mismatch for output {oi} with respect to input {i}: element "
            f"[{k}, {j}] analytical={a!r} numerical={n!r} (atol={atol}, rtol={rtol})"
        )
        if raise_exception:
            raise GradcheckError(msg)
        return False
    return True
