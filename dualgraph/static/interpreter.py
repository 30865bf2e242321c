"""The reference interpreter: evaluates a Graph by binding each equation's primitive.

Run on eager tensors, every ``bind`` evaluates the registry's numpy implementation (and
records the tape when inputs require grad, so interpreted graphs are differentiable);
run under a trace, the same loop re-emits the graph into the enclosing trace.

Memory: ``ir.run`` drops every value after its last read, so an interpreted chain holds
what the same eager code holds.  A tape buffer write (``dynamic_update``, the growable
buffer of while-loop autodiff) whose buffer operand is dead after the write and owned by
this run (made by an earlier ``dynamic_update`` of the same graph, or an input the caller
donated: a loop carry the previous iteration made) is done in place, so filling a tape of
n entries costs O(n) in all rather than O(n) per write.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from ..eager import grad_mode
from ..eager.tensor import Tensor
from ..ops import context
from ..ops import primitives as P
from ..ops.registry import bind
from .ir import Var, _Namer, plan, pp_eqn, run, set_graph_call
from .tree import tree_unflatten


class GraphExecutionError(RuntimeError):
    """An equation failed while a graph ran; the message names it and its source line."""


class Abandoned(BaseException):
    """Raised out of a run whose caller gave it up (``abandon_when``).  A BaseException, so
    that no equation's error handling takes it for the equation's own error."""


_tls = threading.local()


@contextlib.contextmanager
def abandon_when(pred):
    """Within the block, ``eval_graph`` (at every graph it starts: each loop iteration and
    branch too) raises ``Abandoned`` once ``pred()`` is true.  dg.compile's tiered start
    gives up an interpreted call when its kernel is ready (compile/kernel.py)."""
    prev = getattr(_tls, "abort", None)
    _tls.abort = pred
    try:
        yield
    finally:
        _tls.abort = prev


def _eval_eqn(eqn, ins):
    try:
        return bind(eqn.prim, *ins, **eqn.params)
    except GraphExecutionError as e:
        # failed inside a sub-graph: say which cond/while it ran in
        raise GraphExecutionError(f"{e}\n  inside `{_headline(eqn)}`{_where(eqn)}") from e.__cause__
    except Exception as e:  # noqa: BLE001 - re-raised with the equation named
        raise GraphExecutionError(
            f"while executing `{_headline(eqn)}`{_where(eqn)}: {type(e).__name__}: {e}"
        ) from e


def _headline(eqn):
    return pp_eqn(eqn, _Namer()).strip().splitlines()[0]


def _where(eqn):
    return f" (traced from {eqn.source})" if eqn.source else ""


# ----------------------------------------------------------------------------------------
# in-place tape writes
# ----------------------------------------------------------------------------------------

# The primitive written in place when its first operand is owned and dead, and the numpy
# function doing it.  (Registry-side, this would be a field of the primitive, e.g.
# ``Primitive.inplace_impl``, beside ``_dynamic_update_impl``.)
_INPLACE_PRIM = P.dynamic_update_p


def _dynamic_update_inplace(buf, i, x):
    """``dynamic_update`` that may write into ``buf`` (the caller owns it and nobody reads
    it afterwards): the same result as the registry's ``_dynamic_update_impl``."""
    i = int(i)
    n = len(buf)
    if i >= n:  # grow by doubling, as the pure implementation does (amortised O(1))
        out = np.zeros((max(2 * n, i + 1),) + buf.shape[1:], buf.dtype)
        out[:n] = buf
    elif not buf.flags.writeable or buf.base is not None:
        out = np.array(buf, copy=True)
    else:
        out = buf
    out[i] = x
    return out


class _Ownership:
    """Per graph (cached): which ``dynamic_update`` equations may write in place, and
    which outputs are buffers the graph allocated itself.

    ``inplace[eqn]`` is ``-1`` when the buffer operand was made by a ``dynamic_update``
    of this graph, or the input position it is (in place only if the caller donated
    it); either way the operand is read by that equation only, once.
    ``fresh_outputs``: output positions holding such a buffer, output once and read by
    nothing else: the caller may donate them to the next run (a loop's next iteration)."""

    __slots__ = ("inplace", "fresh_outputs")

    def __init__(self, graph):
        p = plan(graph)
        pos = {v: i for i, v in enumerate(graph.inputs)}
        self.inplace = {}
        for eqn in graph.eqns:
            if eqn.prim is not _INPLACE_PRIM:
                continue
            buf = eqn.inputs[0]
            if buf.__class__ is not Var or p.uses.get(buf) != 1:
                continue
            made = p.producer.get(buf)
            if made is not None and made.prim is _INPLACE_PRIM:
                self.inplace[eqn] = -1
            elif buf in pos:
                self.inplace[eqn] = pos[buf]
        self.fresh_outputs = frozenset(
            k for k, x in enumerate(graph.outputs)
            if x.__class__ is Var and p.uses.get(x) == 1
            and (made := p.producer.get(x)) is not None and made.prim is _INPLACE_PRIM
        )


def _ownership(graph) -> _Ownership:
    o = graph.__dict__.get("_ownership")
    if o is None or o[0] is not plan(graph):
        o = graph._ownership = (plan(graph), _Ownership(graph))
    return o[1]


def fresh_outputs(graph) -> frozenset:
    """Output positions of ``graph`` holding a buffer it allocated and nobody else reads:
    a loop may donate them back to the next run of ``graph``."""
    return _ownership(graph).fresh_outputs


def _plain():
    """Eager evaluation by the default handler: no trace, no handler wrapping it."""
    ctx = context.get()
    return ctx.trace is None and ctx.handler is context.default_handler()


def _eval_inplace(eqn, ins):
    buf, i, x = ins
    if (
        buf.__class__ is not Tensor
        or not _plain()
        or (grad_mode.is_grad_enabled()
            and any(t.__class__ is Tensor and t._requires_grad for t in ins))
    ):
        return _eval_eqn(eqn, ins)
    try:
        out = _dynamic_update_inplace(
            buf._value, i._value if i.__class__ is Tensor else i, x._value if x.__class__ is Tensor else x
        )
    except Exception as e:  # noqa: BLE001 - re-raised with the equation named
        raise GraphExecutionError(
            f"while executing `{_headline(eqn)}`{_where(eqn)}: {type(e).__name__}: {e}"
        ) from e
    return Tensor._make(out)


def eval_graph(graph, args, donate=()):
    """Evaluate ``graph`` on a flat list of Tensors; returns a flat list of Tensors.

    ``donate``: input positions whose values the caller gives up (nobody reads them after
    this call); a tape buffer among them may be written in place."""
    ab = getattr(_tls, "abort", None)
    if ab is not None and ab():
        raise Abandoned
    inplace = _ownership(graph).inplace
    if inplace:
        def ev(eqn, ins):
            src = inplace.get(eqn)
            if src is not None and (src < 0 or src in donate):
                return _eval_inplace(eqn, ins)
            return _eval_eqn(eqn, ins)
    else:
        ev = _eval_eqn
    outs = run(graph, list(args), ev)
    return [o if isinstance(o, Tensor) else Tensor._make(np.asarray(o)) for o in outs]


def call_graph(graph, args):
    """``graph(*args)``: check the arguments against the graph's input types, run, and
    rebuild the traced function's result structure."""
    if len(args) != len(graph.inputs):
        raise TypeError(f"graph takes {len(graph.inputs)} tensor arguments, got {len(args)}")
    tensors = []
    for i, (a, v) in enumerate(zip(args, graph.inputs)):
        if isinstance(a, Tensor):
            t = a
        elif isinstance(a, (np.ndarray, np.generic)):
            t = Tensor(a)  # arrays keep their dtype, like Tensors: checked below
        else:
            # Python numbers and lists take the input's dtype if that keeps their kind (an
            # int for a float input; not a float for an int input: it would be truncated)
            t = Tensor(a)
            if np.can_cast(t.dtype, v.aval.dtype, casting="same_kind"):
                t = Tensor(a, dtype=v.aval.dtype)
        if tuple(t.shape) != v.aval.shape or t.dtype != v.aval.dtype:
            raise TypeError(
                f"graph argument {i}: expected {v.aval.str_short()}, got "
                f"{type(v.aval)(t.shape, t.dtype).str_short()} (retrace for other shapes or dtypes)"
            )
        tensors.append(t)
    outs = eval_graph(graph, tensors)
    if graph.out_tree is None:
        return outs[0] if len(outs) == 1 else tuple(outs)
    return tree_unflatten(graph.out_tree, outs)


set_graph_call(call_graph)


def eval_graph_eager_errors(graph, args):
    """``eval_graph``, but an error the graph's ops raised (a shape mismatch, an index out of
    range) comes out as that error itself, as eager code would raise it, not wrapped in
    ``GraphExecutionError``: what a compiled function run by the interpreter raises."""
    try:
        return eval_graph(graph, args)
    except GraphExecutionError as e:
        cause = e.__cause__
        while isinstance(cause, GraphExecutionError) and cause.__cause__ is not None:
            cause = cause.__cause__
        if cause is not None and not isinstance(cause, GraphExecutionError):
            raise cause.with_traceback(None) from None  # eager's own error
        raise
