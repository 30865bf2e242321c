"""The tracer: runs a function on tensors whose payload is symbolic and records a Graph.

A traced tensor is an ordinary ``dg.Tensor`` whose ``_value`` is a ``Tracer`` (a variable
of the graph being built), so ``isinstance(x, dg.Tensor)`` holds in traced code and every
op goes through the same ``bind`` / registry entries as eager code.  The tape works on
traced tensors too: ``dg.grad`` inside a trace records the backward equations (IR autodiff).

Closures: an eager tensor captured by the traced function becomes a ``const`` equation (a
graph constant, no gradient through it) -- except under ``dg.compile``, which traces with a
``live`` registry (compile/effects.py): there a captured eager tensor becomes an extra graph
input read at call time, and in-place writes to it (and changes of its ``.grad``) become
outputs written back after each call; a traced tensor of an enclosing trace captured
by a sub-function (a cond branch, a loop body) becomes an extra input of the sub-graph,
bound to the outer value by the equation that carries it.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ..eager.tensor import Tensor
from ..ops import context as _context
from ..ops.primitives import const_p
from ..ops.registry import ShapedArray, user_source
from .ir import Eqn, Graph, Lit, Var, rule_avals
from .tree import tree_flatten, tree_unflatten

class TracerError(TypeError):
    """A concrete value was asked of a traced tensor, or a tracer escaped its trace."""


_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # dualgraph/
_NUMPY_DIR = os.path.dirname(np.__file__) + os.sep


def _user_line():
    """The user's line: the innermost frame outside dualgraph and numpy (numpy calls
    ``__array__`` on our behalf)."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not (fn.startswith(_PKG) or fn.startswith(_NUMPY_DIR) or fn.startswith("<frozen")
                or fn.startswith("<dualgraph")):
            return f"{fn}:{f.f_lineno}"
        f = f.f_back
    return "<unknown>"


def escaped_error(tracer):
    """The error for a traced tensor used after the trace that made it ended."""
    b = tracer.builder
    made = f"made at {tracer.source}" if tracer.source else "an input of the traced function"
    return TracerError(
        f"a traced tensor {tracer.var.aval.str_short()} ({made}, while tracing {b.name}) escaped "
        f"that trace and is used at {_user_line()} after the trace ended: it was kept in a "
        "global, a closure, a list or an attribute. It stands for a value of a graph, not a "
        "number: return it from the traced function (and use the graph's result) instead"
    )


def _concrete_error(what, tracer):
    if tracer.builder.finished:
        return escaped_error(tracer)
    return TracerError(
        f"{what} needs the value of a traced tensor {tracer.var.aval.str_short()} at {_user_line()}, "
        "but values are not known while tracing. Use dg.cond(pred, true_fn, false_fn, *operands) "
        "instead of `if`, dg.while_loop(cond_fn, body_fn, init) or dg.fori_loop(lower, upper, "
        "body_fn, init) instead of `while`/`for`, or pass the value as a non-tensor (static) "
        "argument."
    )


class Tracer:
    """The symbolic payload of a traced Tensor: a graph variable and its builder.

    ``source``: the user's line that made it (None for a graph input), for the error of
    a tracer used after its trace ended."""

    __slots__ = ("var", "builder", "source")

    def __init__(self, var, builder, source=None):
        self.var = var
        self.builder = builder
        self.source = source

    @property
    def aval(self):
        return self.var.aval

    @property
    def shape(self):
        return self.var.aval.shape

    @property
    def dtype(self):
        return self.var.aval.dtype

    @property
    def ndim(self):
        return len(self.var.aval.shape)

    @property
    def size(self):
        return self.var.aval.size

    def __repr__(self):
        ended = ", trace ended" if self.builder.finished else ""
        return f"Traced<{self.var.aval.str_short()}{ended}>"

    def __bool__(self):
        raise _concrete_error("bool() (an `if`, `while`, `and`/`or`/`not` on a tensor)", self)

    def __float__(self):
        raise _concrete_error("float()", self)

    def __int__(self):
        raise _concrete_error("int()", self)

    def __index__(self):
        raise _concrete_error("using a tensor as a Python index", self)

    def item(self):
        raise _concrete_error(".item()", self)

    def tolist(self):
        raise _concrete_error(".tolist()", self)

    def __array__(self, dtype=None, copy=None):
        raise _concrete_error(".numpy() / np.asarray()", self)

    def __getitem__(self, idx):
        # reached by a numpy implementation given a tracer: eager code after the trace
        raise _concrete_error("indexing a traced value with numpy", self)

    def __getattr__(self, name):
        # an array method or attribute asked of a tracer by a numpy implementation (eager
        # code running on a tracer that escaped its trace); special names stay missing,
        # as numpy probes them
        if name.startswith("__"):
            raise AttributeError(name)
        raise _concrete_error(f"the array attribute `.{name}`", self)




class Builder:
    """Collects the equations of one graph while a function runs on tracers."""

    def __init__(self, parent=None, name="a function", live=None):
        self.parent = parent
        self.name = name
        # dg.compile's registry of captured eager tensors (compile/effects.py), shared by
        # the sub-builders of cond branches and loop bodies; None: captures are constants
        self.live = parent.live if parent is not None else live
        self.inputs = []
        self.eqns = []
        self.captures = []  # (outer Tensor, inner Var)
        self._captured = {}  # id(outer Tensor) -> inner Var
        self._consts = {}  # id(array) -> (array, Var)
        self.finished = False
        # forward while outputs[0] -> (trip count, carry tapes) of its taped version
        # (control_flow._forward_tape)
        self.tapes = {}

    def new_input(self, aval):
        v = Var(aval)
        self.inputs.append(v)
        return Tracer(v, self)

    # -- operands --------------------------------------------------------------------
    def atom(self, x):
        if x.__class__ is Tensor:
            v = x._value
            if v.__class__ is Tracer:
                if v.builder is self:
                    return v.var
                return self._capture(x)
            if self.live is not None:
                self.live.adopt(x)  # x now holds a tracer of the top-level trace
                return self.atom(x)
            return self._const(v)
        if x.__class__ is Tracer:
            if x.builder is self:
                return x.var
            return self._capture(Tensor._make(x))
        if isinstance(x, (bool, int, float, np.generic)):
            return Lit(x)
        if isinstance(x, np.ndarray):
            return self._const(x)
        raise TypeError(f"cannot use a {type(x).__name__} as an operand of a traced op")

    def _capture(self, t):
        b = t._value.builder
        if b.finished:
            raise escaped_error(t._value)
        p = self.parent
        while p is not None and p is not b:
            p = p.parent
        if p is None:
            raise TracerError(
                "a tensor traced inside a cond branch or loop body is used outside of it; "
                "return it from the branch/body instead"
            )
        v = self._captured.get(id(t))
        if v is None:
            v = self._captured[id(t)] = Var(t._value.var.aval)
            self.captures.append((t, v))
        return v

    def _const(self, arr):
        hit = self._consts.get(id(arr))
        if hit is not None:
            return hit[1]
        # a read-only snapshot: neither an in-place update of the captured tensor nor one
        # of a graph result that is this constant changes the graph
        value = np.array(arr, copy=True)
        value.flags.writeable = False
        v = Var(ShapedArray(value.shape, value.dtype))
        self.eqns.append(Eqn(const_p, [], {"value": value}, [v], user_source(2)))
        self._consts[id(arr)] = (arr, v)  # keeps ``arr`` alive: its id is not reused
        return v

    # -- eager hooks (a traced function touching captured eager tensors) ----------------
    def note_read(self, t):
        """``t.grad`` is read."""
        if self.live is not None:
            self.live.register(t)

    def note_write(self, t):
        """``t`` is about to be written in place, or its ``.grad`` set."""
        if self.live is not None:
            self.live.note_write(t, self)

    def guard(self, fn, key=None):
        """The traced program is valid only while ``fn()`` returns what it returns now
        (Python state the trace read: an optimizer's hyperparameters, ...); one guard per
        ``key``."""
        if self.live is not None:
            self.live.guard(fn, key)

    def live_scalar(self, fn):
        """Under dg.compile: a 0-d float64 traced tensor read from ``fn()`` at each call
        (a learning rate a scheduler changes); elsewhere None."""
        if self.live is None or self is not self.live.root:
            return None
        return self.live.scalar(fn)

    def note_backward(self, roots=()):
        """``backward()`` from ``roots`` runs under this trace (accumulating into ``.grad``)."""
        if self.live is not None:
            self.live.note_backward(roots, self)

    def drops_grad(self, leaf):
        """Under dg.compile: this trace assumes the eager tape does not reach ``leaf`` (its
        ``.grad`` is left as it was, compile/effects.py)."""
        return self.live is not None and id(leaf) in self.live.assume

    # -- the tracer handler ------------------------------------------------------------
    def process(self, prim, args, params):
        ins = [self.atom(a) for a in args]
        outs = [Var(a) for a in rule_avals(prim, ins, params)]
        src = user_source(2)
        self.eqns.append(Eqn(prim, ins, params, outs, src))
        if prim.multiple_results:
            return tuple(Tracer(v, self, src) for v in outs)
        return Tracer(outs[0], self, src)

    def finish(self, outputs, in_tree=None, out_tree=None):
        outs = [self.atom(o) for o in outputs]
        self.finished = True
        return Graph(self.inputs + [v for _, v in self.captures], self.eqns, outs, in_tree, out_tree)


def _as_aval(x):
    if isinstance(x, Tensor):
        return ShapedArray(x.shape, x.dtype)
    if isinstance(x, ShapedArray):
        return x
    if isinstance(x, np.ndarray):
        return ShapedArray(x.shape, x.dtype)
    return None


def trace_function(fn, args, parent=None, requires_grad=False, live=None):
    """Trace ``fn(*args)``: Tensor (or ShapedArray) leaves of ``args`` become inputs.

    Returns ``(graph, captures)``: ``captures`` are the outer Tensors the graph's extra
    trailing inputs stand for (empty at the top level).  ``live`` (dg.compile's registry
    of captured eager tensors, compile/effects.py): captured tensors become trailing
    inputs, ``live.effect_outputs()`` trailing outputs (beyond ``out_tree``), and
    ``live.restore()`` runs when the trace ends."""
    leaves, in_tree = tree_flatten(tuple(args))
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    builder = Builder(parent, f"`{name}`", live)
    if live is not None:
        live.root = builder
    new_leaves = []
    for leaf in leaves:
        aval = _as_aval(leaf)
        if aval is None:
            new_leaves.append(leaf)  # static argument
            continue
        t = Tensor._make(builder.new_input(aval))
        if requires_grad and np.issubdtype(aval.dtype, np.floating):
            t._requires_grad = True
        new_leaves.append(t)
    if live is not None:  # the argument tensors, to see in-place writes to them
        live.args = [(i, t, t._value.var) for i, t in enumerate(new_leaves)
                     if t.__class__ is Tensor and t._value.__class__ is Tracer]
    elif builder.live is not None:  # a branch / loop body: which operands stand for what
        builder.live.note_operands(leaves, new_leaves)
    token = _context.enter(trace=builder)  # this thread's trace
    try:
        out = fn(*tree_unflatten(in_tree, new_leaves))
        out_leaves, out_tree = tree_flatten(out)
        for o in out_leaves:
            if not isinstance(o, (Tensor, bool, int, float, np.generic, np.ndarray)):
                raise TypeError(
                    f"a traced function must return Tensors (or tuples/lists/dicts of them), got "
                    f"{type(o).__name__}"
                )
        if live is not None:
            out_leaves = list(out_leaves) + live.effect_outputs(out_leaves)
        graph = builder.finish(out_leaves, in_tree, out_tree)
    finally:
        _context.exit(token)
        builder.finished = True
        if live is not None:
            live.restore()
    return graph, [t for t, _ in builder.captures]
