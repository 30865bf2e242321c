"""Gradient recording modes: ``no_grad`` and ``enable_grad``, as context managers and decorators."""
from __future__ import annotations

import functools


class _GradState:
    __slots__ = ("enabled",)

    def __init__(self):
        self.enabled = True


STATE = _GradState()


def is_grad_enabled() -> bool:
    return STATE.enabled


class _GradMode:
    """Base: a context manager that is also a decorator (as torch's)."""

    _target = True

    def __init__(self, orig_func=None):
        self._prev = []
        if orig_func is not None:  # used bare as @no_grad
            self._wrapped = self(orig_func)

    def __enter__(self):
        self._prev.append(STATE.enabled)
        STATE.enabled = self._target
        return self

    def __exit__(self, *exc):
        STATE.enabled = self._prev.pop()
        return False

    def __call__(self, fn=None, *args, **kwargs):
        if hasattr(self, "_wrapped"):
            return self._wrapped(fn, *args, **kwargs)
        mode = type(self)

        @functools.wraps(fn)
        def wrapper(*a, **kw):
            with mode():
                return fn(*a, **kw)

        return wrapper


class no_grad(_GradMode):  # noqa: N801 - torch's name
    """Disable gradient recording: ``with dg.no_grad(): ...`` or ``@dg.no_grad()``."""

    _target = False


class enable_grad(_GradMode):  # noqa: N801
    """Enable gradient recording inside a ``no_grad`` region."""

    _target = True


class set_grad_enabled(_GradMode):  # noqa: N801
    def __init__(self, mode: bool):
        self._prev = []
        self._target = bool(mode)
