"""``dg.compile``: per-signature cache of traced, optimized graphs run as numba kernels."""
from __future__ import annotations

import functools
import threading
import warnings

import numpy as np

from ..eager.grad_mode import is_grad_enabled
from ..eager.tensor import Tensor, _wrap
from ..ops.context import get as _ctx_get
from ..static.interpreter import eval_graph_eager_errors
from ..static.ir import Lit
from ..static.passes import optimize
from ..ops.context import EagerFirst
from ..static.tracer import TracerError
from ..static.tree import tree_flatten, tree_unflatten
from . import effects as _effects
from .codegen import CompileError
from .signature import signature

RETRACE_WARN = 8
_INTERPRET = object()  # _aot_call: run the graph on the tape instead
_NO_GRADS = object()  # _aot_call: no output requires grad: the plain kernel


class CompileWarning(UserWarning):
    """dg.compile fell back to eager execution, or keeps retracing."""


class _Entry:
    """One signature's compiled program."""

    __slots__ = ("graph", "kernel", "tensor_pos", "out_tree", "eager", "any_rg", "single", "py_outs",
                 "fx", "done", "aot")

    def __init__(self, graph=None, kernel=None, tensor_pos=(), out_tree=None, eager=False,
                 any_rg=True):
        self.graph = graph
        self.kernel = kernel
        self.tensor_pos = tensor_pos
        self.out_tree = out_tree
        self.eager = eager
        self.any_rg = any_rg  # some argument requires grad
        self.single = out_tree is not None and out_tree.kind == "leaf"
        self.py_outs = ()  # (position, value): Python numbers the function returned as is
        self.fx = None  # captured tensors and their write-backs (effects.py)
        self.done = None  # (result,) of the eager run made while building (not cached)
        self.aot = None  # aot.AOTPlan once called with grads (False: interpret on the tape)

    def result(self, outs):
        for i, v in self.py_outs:
            outs[i] = v
        return tree_unflatten(self.out_tree, outs)


def _as_tensor(x):
    return x if x.__class__ is Tensor else Tensor(np.asarray(x))


class CompiledFunction:
    """``dg.compile(fn)``: call it like ``fn``."""

    def __init__(self, fn, fullgraph=False, backend="numba"):
        if backend not in ("numba", "interpreter"):
            raise ValueError(f"dg.compile: unknown backend {backend!r} (numba or interpreter)")
        functools.update_wrapper(self, fn)
        self._fn = fn
        self.fullgraph = fullgraph
        self.backend = backend
        self._cache = {}
        self._stats = {"traces": 0, "hits": 0, "misses": 0}
        self._keys = []
        self._warned_retrace = False
        self._lock = threading.Lock()

    def __repr__(self):
        return f"<dg.compile of {getattr(self._fn, '__qualname__', self._fn)!r}>"

    def __get__(self, obj, objtype=None):  # methods
        return self if obj is None else functools.partial(self, obj)

    def cache_info(self):
        """``{"traces", "hits", "misses", "entries", "interpreted"}``; ``interpreted``: calls
        of the kernels run by the interpreter while numba compiled them (tiered start)."""
        return dict(self._stats, entries=len(self._cache),
                    interpreted=sum(k.n_interpreted for k in self._kernels()))

    def _kernels(self):
        """Every kernel of the cached entries (plain, forward and backward, and the
        variants of functions that capture tensors)."""
        seen = []
        for e in list(self._cache.values()):  # another thread may add an entry meanwhile
            for x in [e] + list(getattr(e.fx, "variants", None) or ()):
                for k in (x.kernel, getattr(x.aot, "fwd_kernel", None), getattr(x.aot, "bwd_kernel", None)):
                    if k is not None and all(k is not y for y in seen):
                        seen.append(k)
        return seen

    def cache_clear(self):
        self._cache.clear()

    def residual_counts(self):
        """Per signature called with gradients: how many values the forward kernel saves
        for the backward besides the inputs and outputs (see compile/aot.py)."""
        return [e.aot.n_res for e in self._cache.values() if e.aot]

    def graphs(self):
        """The optimized graphs compiled so far."""
        return [e.graph for e in self._cache.values() if e.graph is not None]

    def source(self, *args, **kwargs):
        """The generated numba source for these arguments (traced if needed)."""
        key, _ = signature(args, kwargs)
        e = self._cache.get(key) or self._build(key, args, kwargs)
        if e.kernel is None:
            raise CompileError("dg.compile: no kernel for this signature (eager fallback or "
                               "interpreter backend)")
        return e.kernel.source

    def __call__(self, *args, **kwargs):
        ctx = _ctx_get()
        if ctx.trace is not None:
            return self._fn(*args, **kwargs)  # inside another trace: inline
        key, fast = signature(args, kwargs)
        entry = self._cache.get(key)
        if fast and entry is not None and entry.kernel is not None and entry.fx is None and not (
                entry.any_rg and ctx.grad_enabled):
            # the hot path: a cache hit on Tensors
            self._stats["hits"] += 1
            try:
                res = entry.kernel.fast([t._value for t in args])
            except CompileError as e:
                return self._kernel_failed(entry, e, args, kwargs)
            if res is not None:
                if entry.single and not entry.py_outs:
                    return _wrap(res[0])
                return entry.result([_wrap(a) for a in res])
            return self._fn(*args, **kwargs)
        if entry is None:
            with self._lock:
                entry = self._cache.get(key)
                if entry is None:
                    self._stats["misses"] += 1
                    entry = self._build(key, args, kwargs)
                else:
                    self._stats["hits"] += 1
        else:
            self._stats["hits"] += 1
        if entry.eager:
            if entry.done is not None:  # the eager run that judged a capture failure
                return entry.done[0]
            return self._fn(*args, **kwargs)
        if entry.fx is not None:  # captured tensors: read at call time, written back after
            return _effects.call(self, key, entry, args, kwargs)
        if fast:
            tensors = args
        else:
            leaves, _ = tree_flatten((args, kwargs))
            tensors = [leaves[i] for i in entry.tensor_pos]
        k = entry.kernel
        if k is not None and entry.any_rg and is_grad_enabled():
            # gradients: one CompiledFunctionBackward node (compile/aot.py)
            res = _INTERPRET if entry.aot is False else self._aot_call(entry, tensors, args, kwargs)
            if res is _INTERPRET:
                k = None  # the optimized graph run on the tape
            elif res is not _NO_GRADS:
                return res
        if k is not None:
            try:
                res = k([t._value if t.__class__ is Tensor else np.asarray(t) for t in tensors])
            except CompileError as e:
                return self._kernel_failed(entry, e, args, kwargs)
            if res is not None:
                return entry.result([Tensor._make(a) for a in res])
            # a run-time check failed (an index out of range, ...): eager code raises its
            # own error, naming the user's line (or, if it does not raise, gives the result)
            return self._fn(*args, **kwargs)
        outs = eval_graph_eager_errors(entry.graph, [_as_tensor(t) for t in tensors])
        return entry.result(list(outs))

    def _aot_call(self, entry, tensors, args, kwargs):
        from .aot import AOTPlan

        ts = [t if t.__class__ is Tensor else Tensor._make(np.asarray(t)) for t in tensors]
        plan = entry.aot
        try:
            if plan is None:
                rg = [i for i, t in enumerate(ts) if t._requires_grad]
                plan = entry.aot = AOTPlan(entry.graph, rg, self.fullgraph,
                                           getattr(self._fn, "__qualname__", "function"))
            if not plan.active:
                return _NO_GRADS  # no output depends on an input that requires grad
            outs = plan.call(ts)
        except Exception as e:  # noqa: BLE001 - a gap in the compiled backward: interpret
            if self.fullgraph:
                if isinstance(e, CompileError):
                    raise
                raise CompileError(f"dg.compile: no compiled backward for "
                                   f"`{getattr(self._fn, '__qualname__', 'function')}`: "
                                   f"{type(e).__name__}: {e}") from e
            warnings.warn(f"dg.compile: no compiled backward ({type(e).__name__}: {e}); "
                          "running the graph on the eager tape", CompileWarning, stacklevel=3)
            entry.aot = False
            return _INTERPRET
        if outs is None:
            return self._fn(*args, **kwargs)  # a run-time check failed: eager's error
        return entry.result(outs)

    def _kernel_failed(self, entry, err, args, kwargs):
        """numba rejected the generated kernel (a code generator gap): CompileError with
        fullgraph=True, else one warning and eager execution for this signature."""
        if self.fullgraph:
            raise err
        warnings.warn(f"{err}; running eagerly", CompileWarning, stacklevel=3)
        entry.kernel = None
        entry.eager = True
        return self._fn(*args, **kwargs)

    # -- a miss ---------------------------------------------------------------------
    def _fail(self, key, reason):
        if self.fullgraph:
            raise CompileError(reason)
        warnings.warn(f"{reason}; running eagerly", CompileWarning, stacklevel=4)
        entry = _Entry(eager=True)
        self._cache[key] = entry
        return entry

    def _build(self, key, args, kwargs):
        self._stats["traces"] += 1
        self._keys.append(key)
        self._maybe_warn_retrace()
        fn = self._fn
        # ---- AutoGraph plug-in point (lead: wire dualgraph.static.autograph.convert here) ----
        try:
            from ..static.autograph import convert
        except ImportError:
            convert = None
        if convert is not None:
            try:
                fn = convert(fn)
            except Exception:  # noqa: BLE001 - unconvertible source: trace it as written
                fn = self._fn
        # -------------------------------------------------------------------------------------
        name = getattr(self._fn, "__qualname__", "function")
        try:
            # trace_function, not dg.trace: dg.trace may convert again (AutoGraph), and the
            # wrapper lambda is ours, not the user's code
            graph, fx = _effects.trace(fn, args, kwargs)
        except EagerFirst:
            # state made lazily on the first call (an optimizer's): that call runs eagerly
            self._stats["traces"] -= 1
            self._keys.pop()
            return _Entry(eager=True)  # not cached
        except TracerError as e:
            return self._fail(key, f"dg.compile: could not capture `{name}`: {e}")
        except Exception as e:  # noqa: BLE001
            # an error eager code raises too (a shape mismatch, ...)?  Then eager's own
            # error is what the caller gets; if eager runs, the function was not captured
            try:
                res = self._fn(*args, **kwargs)
            except Exception:  # noqa: BLE001
                self._stats["traces"] -= 1
                self._keys.pop()
                return _Entry(eager=True)  # not cached: the call runs eagerly and raises
            self._fail(key, f"dg.compile: could not capture `{name}`: {type(e).__name__}: {e}")
            done = _Entry(eager=True)  # this call's result: the function is not run twice
            done.done = (res,)  # (it may update parameters and optimizer state)
            return done
        out_tree = graph.out_tree
        py_outs = tuple((i, x.value) for i, x in enumerate(graph.outputs)
                        if isinstance(x, Lit) and isinstance(x.value, (bool, int, float)))
        leaves, _ = tree_flatten((args, kwargs))
        pos = tuple(i for i, x in enumerate(leaves) if isinstance(x, (Tensor, np.ndarray)))
        graph = optimize(graph)
        kernel = None
        if self.backend == "numba":
            from .kernel import Kernel

            try:
                kernel = Kernel(graph)
            except CompileError as e:
                return self._fail(key, str(e))
        any_rg = any(x._requires_grad for x in leaves if isinstance(x, Tensor))
        entry = _Entry(graph, kernel, pos, out_tree, any_rg=any_rg)
        entry.py_outs = py_outs
        if fx is not None:
            entry.fx = _effects.finish(entry, fx)
            specs = entry.fx.specs
            if not any(s.gnew is not None or s.gkind is not None for s in specs) and any(
                    s.rg and s.pos is not None for s in specs):
                # it reads parameters that require grad and takes no gradients itself: its
                # outputs need a grad_fn (one CompiledFunctionBackward node, or the tape)
                entry.any_rg = True
        self._cache[key] = entry
        return entry

    def _maybe_warn_retrace(self):
        n = self._stats["traces"]
        if n <= RETRACE_WARN or self._warned_retrace:
            return
        self._warned_retrace = True
        keys = self._keys[-RETRACE_WARN:]
        if len({repr(k) for k in keys}) == 1:
            return  # variants of one signature (compile/effects.py limits and warns about those)
        changing = []
        if all(isinstance(k, tuple) for k in keys) and len({len(k) for k in keys}) == 1:
            # fast keys: one entry per positional argument; slow keys: (tree, leaves)
            rows = keys if not (len(keys[0]) == 2 and hasattr(keys[0][0], "kind")) else [k[1] for k in keys]
            if len({len(r) for r in rows}) == 1:
                for i in range(len(rows[0])):
                    if len({repr(r[i]) for r in rows}) > 1:
                        changing.append(i)
        what = (", ".join(f"argument {i}" for i in changing) or "the argument structure")
        warnings.warn(
            f"dg.compile: `{getattr(self._fn, '__qualname__', self._fn)}` was retraced {n} times; "
            f"{what} keeps changing (shape, dtype, requires_grad or a non-tensor value). "
            "Pass changing numbers as tensors, or keep shapes fixed.",
            CompileWarning,
            stacklevel=4,
        )


def compile(fn=None, *, fullgraph=False, backend="numba"):  # noqa: A001 - dg.compile
    """``@dg.compile`` / ``dg.compile(fn, fullgraph=False, backend="numba")``."""
    if fn is None:
        return lambda f: CompiledFunction(f, fullgraph=fullgraph, backend=backend)
    return CompiledFunction(fn, fullgraph=fullgraph, backend=backend)
