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
    """Base: a context manager that is also a decorator (as torch's).

    ``@dg.no_grad()`` and bare ``@dg.no_grad`` both return a plain wrapped function."""

    _target = True

    def __new__(cls, orig_func=None):
        if callable(orig_func):  # used bare as @no_grad: decorate right away
            return cls()(orig_func)
        return super().__new__(cls)

    def __init__(self, orig_func=None):
        self._prev = []

    def __enter__(self):
        self._prev.append(STATE.enabled)
        STATE.enabled = self._target
        return self

    def __exit__(self, *exc):
        STATE.enabled = self._prev.pop()
        return False

    def __call__(self, fn):
        target = self._target

        @functools.wraps(fn)
        def wrapper(*a, **kw):
            prev = STATE.enabled
            STATE.enabled = target
            try:
                return fn(*a, **kw)
            finally:
                STATE.enabled = prev

        return wrapper


class no_grad(_GradMode):  # noqa: N801 - torch's name
    """Disable gradient recording: ``with dg.no_grad(): ...`` or ``@dg.no_grad()``."""

    _target = False


class enable_grad(_GradMode):  # noqa: N801
    """Enable gradient recording inside a ``no_grad`` region."""

    _target = True


class set_grad_enabled(_GradMode):  # noqa: N801
    """Set gradient recording on or off, as torch's: the call itself switches the mode
    (``dg.set_grad_enabled(False)``); used with ``with`` the previous mode comes back on exit."""

    def __new__(cls, mode: bool):
        return object.__new__(cls)

    def __init__(self, mode: bool):
        self._target = bool(mode)
        self._prev = [STATE.enabled]
        STATE.enabled = self._target

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        STATE.enabled = self._prev[0]
        return False

    def __call__(self, fn):
        # as a decorator the mode applies inside the function only
        STATE.enabled = self._prev[0]
        return super().__call__(fn)
