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

The common ``no_grad`` (default handler, no trace) sets one shared context, ``NG``, and
leaving it sets ``BASE`` (ROOT's twin, see ``_adopt``): no context is made or freed per
``with``.  ``NG`` is alive in some thread or task exactly while a context holds it, which
its reference count tells (``_no_grad_off``, checked when a grad mode is left and by
``flags()``): a copied context that keeps it after its ``with`` keeps ``NO_GRAD_ON`` True
until the next such check after the copy is freed (again only the exact check).
"""
from __future__ import annotations

import contextlib
import contextvars
import sys


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
    if FAST_NS["NO_GRAD_ON"]:
        _no_grad_off()
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
    if k:
        _no_grad_off()
    elif not s:
        FAST_NS[_NAMES[k]] = False
        if s:
            FAST_NS[_NAMES[k]] = True


def _no_grad_off():
    """``NO_GRAD_ON = False`` if no context with grad disabled is alive: ``NO_GRAD`` is
    empty and no context holds ``NG`` (its reference count is back to ``_NG_FREE``).  Both
    are read again after the write (True written back if either changed), and entering
    ``NG`` sets it before writing True, so the last write after any entry is a True."""
    if not NO_GRAD and _refs(NG) == _NG_FREE:
        FAST_NS["NO_GRAD_ON"] = False
        if NO_GRAD or _refs(NG) != _NG_FREE:
            FAST_NS["NO_GRAD_ON"] = True


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
        if not self.grad_enabled:
            _flag_off(1, id(self))


_new = object.__new__


def _no_handler(prim, args, params):
    raise RuntimeError("dualgraph.eager is not imported: no handler for bind()")


_DEFAULT_HANDLER = [_no_handler]
ROOT = Context(_no_handler)
# ROOT's twin, the value ``_adopt`` sets: a context holding BASE has its numpy variables set
BASE = Context(_no_handler)
# BASE with grad disabled, shared by every plain no_grad (a Context: it never leaves a set)
NG = _new(Context)
NG.handler = _no_handler
NG.trace = None
NG.grad_enabled = False
NG.plain = False
_refs = sys.getrefcount
_NG_FREE = _refs(NG)  # NG's count while no context holds it: this module's name, the argument
CTX: contextvars.ContextVar = contextvars.ContextVar("dualgraph", default=ROOT)
get = CTX.get
_set = CTX.set


def install_default_handler(fn):
    """The eager layer's handler becomes the default of every thread (done once, at import)."""
    _DEFAULT_HANDLER[0] = fn
    for c in (ROOT, BASE, NG):
        c.handler = fn
        c.plain = True
        _flag_off(0, id(c))


def _numpy_vars() -> tuple:
    """The ContextVars numpy reads on every ufunc call (its errstate) and every array it
    allocates (its allocator), or those of them this numpy lets us reach.

    CPython caches a ContextVar lookup only when the variable is found: once any variable
    is set in a context (ours, on entering ``no_grad``), each lookup of an unset one walks
    the context's map, and a 16-element ``np.add`` gets ~6% slower in wall time.  Set to
    their current values (``_adopt``) these two are found, as fast as in an empty context,
    and they mean what they meant: numpy reads the same objects.  The errstate variable is
    a module attribute; the allocator's is reached through numpy's C API (ABI-stable slots
    304 and 305 since numpy 1.22: ``PyDataMem_SetHandler(PyDataMem_GetHandler())``, run in
    a throwaway context, so nothing is set anywhere else) and found by name."""
    found = []
    try:
        from numpy._core._ufunc_config import _extobj_contextvar

        found.append(_extobj_contextvar)
    except ImportError:  # numpy 1.x: errstate is not a ContextVar
        pass
    try:
        import ctypes

        from numpy._core import _multiarray_umath as mu  # numpy >= 2: the table has 304, 305

        get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
        get_ptr.restype = ctypes.c_void_p
        get_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]
        table = ctypes.cast(get_ptr(mu._ARRAY_API, None), ctypes.POINTER(ctypes.c_void_p))
        if table[304] and table[305]:
            get_handler = ctypes.PYFUNCTYPE(ctypes.py_object)(table[305])
            set_handler = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object)(table[304])

            def probe():
                set_handler(get_handler())
                return [v for v in contextvars.copy_context() if v.name == "current_allocator"]

            found += contextvars.Context().run(probe)
    except Exception:  # noqa: BLE001 - another numpy: its lookups stay misses (slower, not wrong)
        pass
    return tuple(found)


_NUMPY_VARS: list = []  # filled by the first _adopt


def _adopt():
    """Called the first time this context (thread, task, ``Context().run``) sets ours: set
    CTX to BASE and numpy's per-call variables to their current values, here, for good.
    Contexts entered later then reset to BASE rather than to nothing, so the next entry
    sees BASE, not ROOT, and does not come here again."""
    if not _NUMPY_VARS:
        _NUMPY_VARS.append(_numpy_vars())
    for v in _NUMPY_VARS[0]:
        v.set(v.get())
    _set(BASE)
    return BASE


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
    if c is ROOT:
        c = _adopt()
    if c is BASE:  # (so enabled is False) the shared no_grad context, held before the flag
        tok = _set(NG)
        FAST_NS["NO_GRAD_ON"] = True
        return tok
    if c is NG:  # enable_grad inside the plain no_grad
        return _set(BASE)
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
    """Undo ``enter`` or ``enter_grad``."""
    if token is not None:
        CTX.reset(token)
        if FAST_NS["NO_GRAD_ON"]:
            _no_grad_off()


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
