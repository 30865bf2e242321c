"""``dg.nn.utils``: gradient clipping and parameter/vector conversion, as ``torch.nn.utils``."""
from __future__ import annotations

import math

import numpy as np

from ..eager.grad_mode import no_grad
from ..eager.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "parameters_to_vector",
           "vector_to_parameters"]


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _vector_norm(a, norm_type):
    a = a.astype(np.float64, copy=False).reshape(-1)
    if norm_type == math.inf:
        return float(np.max(np.abs(a))) if a.size else 0.0
    if norm_type == -math.inf:
        return float(np.min(np.abs(a))) if a.size else math.inf
    if norm_type == 0:
        return float(np.count_nonzero(a))
    if norm_type == 2:
        return float(math.sqrt(np.dot(a, a)))
    return float(np.sum(np.abs(a) ** norm_type) ** (1.0 / norm_type))


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The ``norm_type`` norm of all ``tensors`` together (a 0-d float tensor)."""
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    tensors = list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return Tensor(np.asarray(0.0, np.float32))
    norms = np.array([_vector_norm(t._value, norm_type) for t in tensors])
    total = _vector_norm(norms, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it "
            "cannot be clipped. To disable this error and scale the gradients by the non-finite norm "
            "anyway, set `error_if_nonfinite=False`"
        )
    return Tensor(np.asarray(total, dtype=tensors[0].dtype))


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale the gradients of ``parameters`` in place so their total norm is at most
    ``max_norm`` (by ``max_norm / (total + 1e-6)``, as torch); returns the total norm
    before clipping."""
    grads = _grads(list(parameters) if not isinstance(parameters, Tensor) else parameters)
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    if not grads:
        return total
    coef = min(float(max_norm) / (float(total.item()) + 1e-6), 1.0)
    with no_grad():
        for g in grads:
            g *= coef
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient of ``parameters`` to ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    for g in _grads(list(parameters) if not isinstance(parameters, Tensor) else parameters):
        g._value = np.clip(g._value, -clip_value, clip_value)


def parameters_to_vector(parameters):
    """One flat tensor holding all ``parameters`` (differentiable, as torch)."""
    from ..ops import composites as C

    return C.cat([C.reshape(p, (-1,)) for p in parameters], 0)


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of ``vec`` into ``parameters`` in place."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    v = vec._value
    offset = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p._value[...] = v[offset:offset + n].reshape(p.shape)
            offset += n
