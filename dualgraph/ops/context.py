"""Per-thread dispatch state: the active handler (the interpreter ``bind`` reaches), the
active trace and the grad mode, in one ``contextvars.ContextVar`` holding a ``Context``.

A ``Context`` is never mutated once in use: entering ``no_grad``, starting a trace or
installing a handler sets a new one and resets the previous token on exit, so each thread
(and each asyncio task) sees only its own state.  A new thread starts from ``ROOT``: the
eager handler, no trace, grad enabled.

``plain`` is true when the handler is the default eager one and no trace is active: the
eager layer's one-frame fast path runs only then; otherwise every op goes through
``ctx.handler``, so a handler wrapping the default one (a check mode, a profiler, a spy)
sees every op.

Reading the ContextVar costs a C call per op, so the fast path first asks two process-wide
questions that need none: is any context alive that is not plain (a handler or a trace:
``SPECIAL``, the set of their ids), or that has grad disabled (``NO_GRAD``)?  A context
is alive as long as any thread or task can still see it, so when ``SPECIAL`` is empty
every thread's context is plain, and when ``NO_GRAD`` is empty every thread records:
then an op need not read its own.  A context joins the sets when it is made and leaves
them when it is freed (it is then a ``_Flagged``, which has ``__del__``), so a
context kept alive elsewhere (another thread, a copied context, a traceback) only sends
ops to the exact check, never to a wrong answer.  The answers are kept as two bools in
``FLAGS``, updated under a lock with the sets.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading


SPECIAL: set = set()  # ids of live contexts with a handler or a trace (not ``plain``)
NO_GRAD: set = set()  # ids of live contexts with grad disabled
# [bool(SPECIAL), bool(NO_GRAD)], what the eager fast path reads (a list item: cheaper than
# a set's truth value); written only under the lock, with the sets
FLAGS: list = [False, False]
_LOCK = threading.RLock()  # re-entrant: a __del__ may run while a thread holds it


class Context:
    __slots__ = ("handler", "trace", "grad_enabled", "plain")

    def __new__(cls, handler, trace=None, grad_enabled=True):
        plain = trace is None and handler is _DEFAULT_HANDLER[0]
        self = _new(Context if plain and grad_enabled else _Flagged)
        self.handler = handler
        self.trace = trace
        self.grad_enabled = grad_enabled
        self.plain = plain
        if not plain or not grad_enabled:
            with _LOCK:
                if not plain:
                    SPECIAL.add(id(self))
                if not grad_enabled:
                    NO_GRAD.add(id(self))
                FLAGS[0] = bool(SPECIAL)
                FLAGS[1] = bool(NO_GRAD)
        return self

    def replace(self, **kw) -> "Context":
        return Context(
            kw.get("handler", self.handler),
            kw.get("trace", self.trace),
            kw.get("grad_enabled", self.grad_enabled),
        )

    def __repr__(self):
        return (f"Context(handler={getattr(self.handler, '__qualname__', self.handler)}, "
                f"trace={self.trace!r}, grad_enabled={self.grad_enabled})")


class _Flagged(Context):
    """A context in ``SPECIAL`` or ``NO_GRAD``: it leaves them when freed."""

    __slots__ = ()

    def __del__(self):
        with _LOCK:
            SPECIAL.discard(id(self))
            NO_GRAD.discard(id(self))
            FLAGS[0] = bool(SPECIAL)
            FLAGS[1] = bool(NO_GRAD)


_new = object.__new__


def _no_handler(prim, args, params):
    raise RuntimeError("dualgraph.eager is not imported: no handler for bind()")


_DEFAULT_HANDLER = [_no_handler]
ROOT = Context(_no_handler)
CTX: contextvars.ContextVar = contextvars.ContextVar("dualgraph", default=ROOT)
get = CTX.get


def install_default_handler(fn):
    """The eager layer's handler becomes the default of every thread (done once, at import)."""
    _DEFAULT_HANDLER[0] = fn
    ROOT.handler = fn
    ROOT.plain = True
    with _LOCK:
        SPECIAL.discard(id(ROOT))
        FLAGS[0] = bool(SPECIAL)


def default_handler():
    return _DEFAULT_HANDLER[0]


def enter(**kw):
    """Set a new context for this thread with ``kw`` replaced; returns the token for ``exit``."""
    return CTX.set(CTX.get().replace(**kw))


def enter_grad(enabled: bool):
    """``enter(grad_enabled=enabled)``, in fewer steps (``no_grad``, backward); None (and
    nothing set) when this thread's mode already is ``enabled``."""
    c = CTX.get()
    if c.grad_enabled is enabled:
        return None
    if not c.plain or not enabled:
        return CTX.set(Context(c.handler, c.trace, enabled))
    # leaving no_grad for plain grad-enabled: nothing to register (Context.__new__ inlined)
    n = _new(Context)
    n.handler = c.handler
    n.trace = None
    n.grad_enabled = True
    n.plain = True
    return CTX.set(n)


def exit(token):  # noqa: A001
    if token is not None:
        CTX.reset(token)


@contextlib.contextmanager
def using(**kw):
    """``with using(handler=f): ...`` / ``using(grad_enabled=False)`` / ``using(trace=t)``."""
    tok = CTX.set(CTX.get().replace(**kw))
    try:
        yield
    finally:
        CTX.reset(tok)


def set_handler(fn):
    """Install ``fn(prim, args, params)`` as this thread's handler (until changed again);
    returns the previous one, which ``fn`` may call to delegate."""
    prev = CTX.get().handler
    CTX.set(CTX.get().replace(handler=fn))
    return prev


class EagerFirst(Exception):
    """Raised under a trace by code whose first call creates state lazily (an optimizer's
    ``step``): ``dg.compile`` runs that call eagerly, without a warning, and traces the next."""
