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
ops to the exact check, never to a wrong answer.  The answers are kept as two bools,
``SPECIAL_ON`` and ``NO_GRAD_ON`` in ``FAST_NS``, written without a lock in an order that
never leaves one False while its set holds an id (``_flag_on``, ``_flag_off``; a flag may
stay True a moment too long, which only costs the exact check).
"""
from __future__ import annotations

import contextlib
import contextvars


SPECIAL: set = set()  # ids of live contexts with a handler or a trace (not ``plain``)
NO_GRAD: set = set()  # ids of live contexts with grad disabled
_SETS = (SPECIAL, NO_GRAD)
# bool(SPECIAL) and bool(NO_GRAD), what the eager fast path reads, kept as globals of the
# eager fast ops (eager/tensor.py runs them with this dict as their globals: testing a
# global is one step, cheaper than a set's truth value or a list item)
FAST_NS: dict = {"SPECIAL_ON": False, "NO_GRAD_ON": False}
_NAMES = ("SPECIAL_ON", "NO_GRAD_ON")


def flags() -> list:
    """``[SPECIAL_ON, NO_GRAD_ON]``: whether any live context has a handler or a trace, and
    whether any has grad disabled."""
    return [FAST_NS["SPECIAL_ON"], FAST_NS["NO_GRAD_ON"]]


# Each set operation and each list store is atomic (the GIL; ids are ints, so no Python
# code runs inside them).  A context is made visible (``CTX.set``) only after its id is in
# the set and the flag is True; whoever writes False reads the set again afterwards and
# writes True back if it is not empty, so the last write after any add is a True.
def _flag_on(k, i):
    _SETS[k].add(i)
    FAST_NS[_NAMES[k]] = True


def _flag_off(k, i):
    s = _SETS[k]
    s.discard(i)
    if not s:
        FAST_NS[_NAMES[k]] = False
        if s:
            FAST_NS[_NAMES[k]] = True


class Context:
    __slots__ = ("handler", "trace", "grad_enabled", "plain")

    def __new__(cls, handler, trace=None, grad_enabled=True):
        plain = trace is None and handler is _DEFAULT_HANDLER[0]
        self = _new(Context if plain and grad_enabled else _Flagged)
        self.handler = handler
        self.trace = trace
        self.grad_enabled = grad_enabled
        self.plain = plain
        if not plain:
            _flag_on(0, id(self))
        if not grad_enabled:
            _flag_on(1, id(self))
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
        if not self.plain:
            _flag_off(0, id(self))
        if not self.grad_enabled:  # _flag_off(1, id(self)) inlined: the no_grad exit
            NO_GRAD.discard(id(self))
            if not NO_GRAD:
                FAST_NS["NO_GRAD_ON"] = False
                if NO_GRAD:
                    FAST_NS["NO_GRAD_ON"] = True


_new = object.__new__


def _no_handler(prim, args, params):
    raise RuntimeError("dualgraph.eager is not imported: no handler for bind()")


_DEFAULT_HANDLER = [_no_handler]
ROOT = Context(_no_handler)
CTX: contextvars.ContextVar = contextvars.ContextVar("dualgraph", default=ROOT)
get = CTX.get
_set = CTX.set


def install_default_handler(fn):
    """The eager layer's handler becomes the default of every thread (done once, at import)."""
    _DEFAULT_HANDLER[0] = fn
    ROOT.handler = fn
    ROOT.plain = True
    _flag_off(0, id(ROOT))


def default_handler():
    return _DEFAULT_HANDLER[0]


def enter(**kw):
    """Set a new context for this thread with ``kw`` replaced; returns the token for ``exit``."""
    return CTX.set(CTX.get().replace(**kw))


def enter_grad(enabled: bool):
    """``enter(grad_enabled=enabled)``, in fewer steps (``no_grad``, backward); None (and
    nothing set) when this thread's mode already is ``enabled``."""
    c = get()
    if c.grad_enabled is enabled:
        return None
    if not c.plain:
        return _set(Context(c.handler, c.trace, enabled))
    # a plain context with the other grad mode (Context.__new__ inlined)
    if enabled:  # leaving no_grad: nothing to register
        n = _new(Context)
        n.handler = c.handler
        n.trace = None
        n.grad_enabled = True
        n.plain = True
        return _set(n)
    n = _new(_Flagged)
    n.handler = c.handler
    n.trace = None
    n.grad_enabled = False
    n.plain = True
    NO_GRAD.add(id(n))  # _flag_on(1, id(n)) inlined
    FAST_NS["NO_GRAD_ON"] = True
    return _set(n)


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
