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
questions that need none: ``SPECIAL``, the set of ids of live contexts that are not plain
(a handler or a trace), and ``NO_GRAD``, of live contexts with grad disabled.  A context
is alive as long as any thread or task can still see it, so when ``SPECIAL`` is empty
every thread's context is plain, and when ``NO_GRAD`` is empty every thread records:
then the fast path need not read its own.  A context joins the sets when it is made and
leaves them when it is freed (its class becomes ``_Flagged``, which has ``__del__``), so
a context kept alive elsewhere (another thread, a copied context, a traceback) only sends
ops to the slower exact check, never to a wrong answer.  ``set.add``/``discard`` are
atomic under the GIL.
"""
from __future__ import annotations

import contextlib
import contextvars


SPECIAL: set = set()  # ids of live contexts with a handler or a trace (not ``plain``)
NO_GRAD: set = set()  # ids of live contexts with grad disabled


class Context:
    __slots__ = ("handler", "trace", "grad_enabled", "plain")

    def __init__(self, handler, trace=None, grad_enabled=True):
        self.handler = handler
        self.trace = trace
        self.grad_enabled = grad_enabled
        self.plain = plain = trace is None and handler is _DEFAULT_HANDLER[0]
        if not plain or not grad_enabled:
            self.__class__ = _Flagged
            if not plain:
                SPECIAL.add(id(self))
            if not grad_enabled:
                NO_GRAD.add(id(self))

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
        SPECIAL.discard(id(self))
        NO_GRAD.discard(id(self))


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
    SPECIAL.discard(id(ROOT))


def default_handler():
    return _DEFAULT_HANDLER[0]


def enter(**kw):
    """Set a new context for this thread with ``kw`` replaced; returns the token for ``exit``."""
    return CTX.set(CTX.get().replace(**kw))


def exit(token):  # noqa: A001
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
