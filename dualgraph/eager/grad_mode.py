"""Gradient recording modes: ``no_grad``, ``enable_grad`` and ``set_grad_enabled``, as
context managers and decorators.  The mode is per thread (``ops.context``): ``no_grad``
in one thread does not turn recording off in another."""
from __future__ import annotations

import functools

from ..ops import context as _context

_enter_grad = _context.enter_grad
_exit = _context.exit
_reset = _context.CTX.reset
_FLAGS = _context.FAST_NS
_get = _context.get
_set = _context._set
_BASE = _context.BASE
_no_grad_off = _context._no_grad_off


def is_grad_enabled() -> bool:
    return _context.get().grad_enabled


class _GradMode:
    """Base: a context manager that is also a decorator (as torch's).

    ``@dg.no_grad()`` and bare ``@dg.no_grad`` both return a plain wrapped function."""

    _target = True

    def __new__(cls, orig_func=None):
        if orig_func is not None and callable(orig_func):  # used bare as @no_grad
            return cls()(orig_func)
        self = object.__new__(cls)
        self._tokens = []
        return self

    def __enter__(self):
        self._tokens.append(_enter_grad(self._target))
        return self

    def __exit__(self, *exc):
        token = self._tokens.pop()
        if token is not None:  # _exit(token), one frame less
            _reset(token)
            if _FLAGS["NO_GRAD_ON"]:
                _no_grad_off()
        return False

    def __call__(self, fn):
        target = self._target

        @functools.wraps(fn)
        def wrapper(*a, **kw):
            token = _enter_grad(target)
            try:
                return fn(*a, **kw)
            finally:
                _exit(token)

        return wrapper


class no_grad(_GradMode):  # noqa: N801 - torch's name
    """Disable gradient recording: ``with dg.no_grad(): ...`` or ``@dg.no_grad()``."""

    _target = False

    def __enter__(self):
        # _enter_grad(False) from the plain state (BASE) inlined, one frame less per with:
        # NG is set before the flag is written (see context._no_grad_off)
        if _get() is _BASE:
            token = _set(_context.NG)  # not a name here: NG's free count counts names
            _FLAGS["NO_GRAD_ON"] = True
        else:
            token = _enter_grad(False)
        self._tokens.append(token)
        return self


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
        self._token = _enter_grad(self._target)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _context.exit(self._token)
        return False

    def __call__(self, fn):
        # as a decorator the mode applies inside the function only
        _context.exit(self._token)
        return super().__call__(fn)
