"""``Parameter``: a Tensor that a Module registers as a learnable weight.

The eager engine dispatches on ``type(t) is Tensor`` (one class keeps its hot path
monomorphic), so a Parameter is a plain ``Tensor`` that requires grad, remembered in a
registry keyed by identity: ``isinstance(p, nn.Parameter)`` is True for it, ``type(p)`` is
``Tensor``.  ``Parameter(data)`` shares ``data``'s memory, as torch does.
"""
from __future__ import annotations

import weakref

import numpy as np

from ..eager.tensor import Tensor

_PARAMS: dict[int, weakref.ref] = {}


def _forget(key):
    def drop(_ref):
        if _PARAMS.get(key) is _ref:
            del _PARAMS[key]

    return drop


def _mark(t: Tensor) -> Tensor:
    key = id(t)
    _PARAMS[key] = weakref.ref(t, _forget(key))
    return t


def _is_parameter(obj) -> bool:
    if obj.__class__ is not Tensor:
        return False
    ref = _PARAMS.get(id(obj))
    return ref is not None and ref() is obj


class _ParameterMeta(type):
    def __instancecheck__(cls, obj):
        return _is_parameter(obj)


class Parameter(metaclass=_ParameterMeta):
    """``nn.Parameter(data, requires_grad=True)``: returns a leaf Tensor marked as a
    parameter (sharing ``data``'s memory); Modules register it when assigned as an attribute.

        w = nn.Parameter(dg.randn(3, 4))
        isinstance(w, nn.Parameter)  # True
    """

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            value = np.empty((0,), np.float32)
        elif isinstance(data, Tensor):
            value = data._value
        else:
            value = np.asarray(data)
        if not isinstance(value, np.ndarray):
            raise TypeError("Parameter: data must be an eager tensor or array (not a traced value)")
        if not value.flags.writeable:  # e.g. a broadcast view: parameters are updated in place
            value = np.array(value, copy=True)
        t = Tensor._make(value)
        if requires_grad:
            t.requires_grad_(True)
        return _mark(t)


class Buffer:
    """``nn.Buffer(data, persistent=True)``: marks a tensor to register as a buffer when
    assigned to a Module attribute (torch 2.5's ``nn.Buffer``)."""

    def __init__(self, data, persistent=True):
        self.data = data if isinstance(data, Tensor) else Tensor(data)
        self.persistent = persistent
