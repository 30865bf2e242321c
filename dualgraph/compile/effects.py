"""Captured tensors and side effects of compiled functions (PyTorch-style training steps).

``dg.compile`` traces with a *live* registry (``Live``), so that a compiled function may
read and update the eager tensors it closes over -- model parameters, their ``.grad``,
optimizer state -- exactly as the eager function does:

* **reads**: the first time the trace uses a captured eager tensor, the tensor is *adopted*:
  its payload becomes a tracer of a new trailing input of the graph, bound at call time to
  the tensor's current array (never a constant baked in at trace time).  For the rest of
  the trace the tensor is an ordinary traced tensor (a leaf that requires grad stays one,
  so the tape records through parameters and ``loss.backward()`` works on the trace).
* **writes** (functionalization): in-place updates (``p -= lr * p.grad``,
  ``exp_avg.mul_(b1)``, ``p.grad.zero_()``), gradient accumulation by ``backward()`` and
  ``.grad`` assignments happen on the traced tensors during the trace; when it ends every
  adopted tensor is restored to its state before the trace, and its final traced value
  becomes an extra graph output.  After each call the runtime writes those outputs back
  into the *same* numpy buffers (``np.copyto``: parameters are not copied per call, views
  see the update), bumps version counters by as many writes as the eager code makes, and
  sets / accumulates / clears ``.grad`` as eager code does.
* **guards**: the trace depends on Python-visible state (is ``p.grad`` None?  do
  ``requires_grad`` flags, shapes, optimizer hyperparameters still match?).  Each traced
  variant records it and is used only when it still holds; otherwise the function is
  traced again (a new variant for the same argument signature).
* **stability**: a Python branch on state that changes from call to call (an optimizer's
  lazily created state, a Python counter) would be baked into the trace.  A variant is
  therefore traced a second time on its second use; if the two traces differ, the new one
  replaces it (and is checked again), and after ``MAX_RETRACES`` changes the function runs
  eagerly with a warning (``dg.CompileError`` with ``fullgraph=True``).  Code that knows
  its first call creates state (``dg.optim``'s optimizers) raises ``ops.context.EagerFirst``
  under a trace: that call runs eagerly, without a warning, and the next one is traced.

* **reach**: eagerly, ``backward()`` leaves the ``.grad`` of a parameter its tape does not
  reach on this call (read only by a ``dg.cond`` branch not taken, or by a loop body that
  ran zero times) as it was, and the code after it sees that (an optimizer skips a None
  grad).  Where that depends on the data, the program returns "reached" flags
  (``Live._reach``, static/reach.py) and each variant assumes a set of parameters not
  reached (their ``.grad`` left alone while tracing); a call whose flags disagree is run
  again, before any write-back, by the variant for what they say (``call``).

Temporaries: an eager tensor created inside the traced function (``dg.tensor(...)``) and
unreachable once the trace ended (reference counts of the tensor and of its array) stays
a graph constant, as before; its writes are dropped (nobody can see them).
"""
from __future__ import annotations

import gc
import hashlib
import sys
import threading
import warnings

import numpy as np

from ..eager.engine import INPLACE
from ..eager.grad_mode import is_grad_enabled
from ..eager.tensor import _LEAF_MSG, Tensor, _counter, _wrap
from ..ops.primitives import const_p
from ..ops.registry import ShapedArray
from ..static.interpreter import eval_graph_eager_errors
from ..static.ir import Eqn, Graph, Var
from ..static.reach import reach_graph
from ..static.tracer import Tracer, TracerError, trace_function
from ..static.tree import tree_flatten
from .aot import spent_node
from .codegen import CompileError

_nd = np.ndarray
MAX_VARIANTS = 8  # traced variants (guard sets) per argument signature
MAX_RETRACES = 4  # stability re-traces that came out different
# per thread: the leaves (ids) the next trace of this thread assumes backward() does not reach
_ASSUME = threading.local()


class _Rec:
    """One adopted (or registered) eager tensor: its state before the trace."""

    __slots__ = ("t", "var", "value", "shape", "grad", "grad_fn", "out_index", "rg", "meta",
                 "version", "history", "view", "had_graph", "write", "delta", "gfx", "rg_after")

    def __init__(self, t):
        self.t = t
        self.var = None
        self.value = t._value
        self.shape = t.shape
        self.grad = t._grad
        self.grad_fn = t._grad_fn
        self.out_index = t._out_index
        self.rg = t._requires_grad
        m = self.meta = t._meta
        self.version = None if m is None or m.version is None else m.version[0]
        self.history = None if m is None or m.history is None else list(m.history)
        self.view = None if m is None else m.view
        self.had_graph = False
        self.write = None  # the output atom of the final value, if written
        self.delta = 0  # version counter increments
        self.gfx = None  # what happened to .grad
        self.rg_after = None

    def restore(self):
        t = self.t
        t._value = self.value
        t.shape = self.shape
        t._grad = self.grad
        t._grad_fn = self.grad_fn
        t._out_index = self.out_index
        t._requires_grad = self.rg
        m = t._meta
        if self.meta is None:
            t._meta = None
        else:
            t._meta = self.meta
            if self.version is not None:
                m.version[0] = self.version
            else:
                m.version = None
            m.history = None if self.history is None else list(self.history)
            m.view = self.view


class Live:
    """The registry of the eager tensors one ``dg.compile`` trace touches."""

    def __init__(self):
        self.root = None  # the top-level Builder (set by trace_function)
        self.recs = {}  # id(tensor) -> _Rec, in first-touch order
        self.backward_ran = False
        self.backward_roots = []  # the Vars backward() was called on
        self.assume = getattr(_ASSUME, "ids", frozenset())  # leaves this trace takes as not reached
        self.guards = []  # (fn, value): Python state the trace depends on
        self.guard_keys = set()
        self.n_effect_outs = 0
        self.spent = ()  # user outputs whose autograd graph backward() consumed (see Effects)
        self.dropped = set()  # ids of unreachable temporaries (constants)
        self.scalars = []  # (fn, var): Python numbers read at call time (a learning rate)
        self.args = []  # (leaf position, traced argument, its input var): set by trace_function
        self.user_leaves = []  # the caller's argument leaves, by position (set by trace)
        self.arg_writes = []  # [leaf position, output atom, version increments]
        # id(operand of a branch / loop body) -> (it, the outer tensor it stands for), where
        # that is a captured tensor or an argument (or stands for one)
        self.origins = {}

    # -- during the trace (from the Builder's hooks) --------------------------------------
    def register(self, t):
        r = self.recs.get(id(t))
        if r is not None:
            return r
        if t._value.__class__ is not _nd:
            return None  # a tensor of the trace itself
        r = _Rec(t)
        if t._grad_fn is not None:
            # a non-leaf of an eager graph made outside: a value here; backward() inside
            # the trace would have to flow into that graph (checked in effect_outputs)
            r.had_graph = True
            t._grad_fn = None
            t._requires_grad = False
        self.recs[id(t)] = r
        return r

    def adopt(self, t):
        """``t``'s payload becomes a tracer of a new trailing input of the top-level graph."""
        r = self.register(t)
        if r is None or r.var is not None:
            return
        tracer = self.root.new_input(ShapedArray(r.value.shape, r.value.dtype))
        r.var = tracer.var
        t._value = tracer

    def note_operands(self, outer, inner):
        for o, i in zip(outer, inner):
            if o.__class__ is Tensor and i.__class__ is Tensor and self.tracked(o):
                self.origins[id(i)] = (i, o)

    def tracked(self, t):
        """``t`` is, or stands for, a tensor the caller sees: a captured one, an argument."""
        if t._value.__class__ is _nd or id(t) in self.recs:
            return True
        o = self.origins.get(id(t))
        return (o is not None and o[0] is t) or any(t is a for _, a, _ in self.args)

    def note_backward(self, roots, builder):
        self.backward_ran = True
        if builder is self.root:
            self.backward_roots += [t._value.var for t in roots
                                    if t._value.__class__ is Tracer and t._value.builder is builder]

    def note_write(self, t, builder):
        if is_grad_enabled():
            for pos, a, _ in self.args:
                u = self.user_leaves[pos] if a is t else None
                if u.__class__ is Tensor and u._requires_grad and u._grad_fn is None:
                    # as eagerly (tensor._write): the caller's leaf would be written in place
                    raise RuntimeError(f"{_LEAF_MSG}\n  at {_line()}")
        o = self.origins.get(id(t))
        if o is not None and o[0] is t:
            raise TracerError(
                f"an in-place write at {_line()} to a tensor {_desc(t)} that a converted loop or "
                "branch carries for a tensor the caller sees (an argument or a tensor captured "
                "from outside the compiled function): dg.compile cannot write it back")
        if t._value.__class__ is not _nd and id(t) not in self.recs:
            return  # a traced tensor made by this trace: an ordinary traced write
        if builder is not self.root:
            raise TracerError(
                f"an in-place write (or a .grad change) of a tensor {_desc(t)} captured from outside "
                f"the compiled function, inside a dg.cond branch or a loop body, at {_line()}: "
                "dg.compile supports such writes only at the top level of the function")
        self.adopt(t)

    def guard(self, fn, key=None):
        if key is not None:
            if key in self.guard_keys:
                return
            self.guard_keys.add(key)
        self.guards.append((fn, fn()))

    def scalar(self, fn, dtype=np.float64):
        """A 0-d traced tensor whose value is ``fn()`` at each call (not baked in)."""
        np.asarray(fn(), dtype)  # fails now rather than at call time
        tracer = self.root.new_input(ShapedArray((), np.dtype(dtype)))
        self.scalars.append((fn, tracer.var, np.dtype(dtype)))
        return Tensor._make(tracer)

    # -- when the function returned ----------------------------------------------------
    def effect_outputs(self, out_leaves):
        """The extra graph outputs: final values of written tensors and new gradients."""
        root = self.root
        for o in out_leaves:
            if o.__class__ is Tensor:
                root.atom(o)  # a captured tensor returned as is: adopted now
        # ``loss`` of ``loss.backward(); return loss``: eagerly it keeps its grad_fn, whose
        # saved values backward freed
        self.spent = tuple(k for k, o in enumerate(out_leaves)
                           if o.__class__ is Tensor and o._grad_fn is not None
                           and o._grad_fn.inputs is None)
        outs = []
        for r in list(self.recs.values()):
            t = r.t
            if r.had_graph and self.backward_ran:
                raise TracerError(
                    f"backward() inside the compiled function while it uses a tensor {_desc(t)} that "
                    "is part of an eager autograd graph made outside it (its gradient would have to "
                    "flow back into that graph)")
            v = t._value
            if v.__class__ is Tracer:
                if v.builder is not root:
                    raise TracerError(f"a captured tensor {_desc(t)} was given a value of a dg.cond "
                                      "branch or loop body")
                if v.var is not r.var:
                    r.write = v.var
            elif v is not r.value:  # ``t.data = array``
                if v.shape != r.value.shape or v.dtype != r.value.dtype:
                    raise TracerError(f"the compiled function changes the shape or dtype of a captured "
                                      f"tensor {_desc(t)}")
                r.write = root._const(v)
            if r.write is not None and (t.shape != r.shape or r.write.aval.shape != r.value.shape
                                        or r.write.aval.dtype != r.value.dtype):
                raise TracerError(f"the compiled function changes the shape or dtype of a captured "
                                  f"tensor {_desc(t)}")
            if t._grad_fn is not None and not r.had_graph:
                raise TracerError(
                    f"a tensor {_desc(t)} captured from outside the compiled function is written in "
                    "place with gradient recording on (it would join the autograd graph); write it "
                    "under dg.no_grad()")
            m = t._meta
            now = 0 if m is None or m.version is None else m.version[0]
            r.delta = now - (r.version or 0)
            g = t._grad
            if g is not r.grad:
                if g is None:
                    r.gfx = ("none",)
                elif id(g) in self.recs:
                    r.gfx = ("obj", self.recs[id(g)])
                elif g._value.__class__ is Tracer:
                    if g._value.builder is not root:
                        raise TracerError(f"the .grad of a captured tensor {_desc(t)} was set inside a "
                                          "dg.cond branch or loop body")
                    r.gfx = ("new", root.atom(g))
                else:  # a concrete tensor the trace did not otherwise touch
                    r.gfx = ("obj", self.register(g))
            if not r.had_graph and t._requires_grad != r.rg:
                r.rg_after = t._requires_grad
            for a in (r.write, r.gfx[1] if r.gfx and r.gfx[0] == "new" else None):
                if a is not None:
                    outs.append(Tracer(a, root))
        for pos, w, var in self.args:  # in-place writes to arguments (eagerly: the caller's)
            if w._grad is not None:
                raise TracerError(f"the compiled function sets the .grad of argument {_desc(w)}")
            v = w._value
            if v.__class__ is Tracer and v.var is not var:
                if v.builder is not root:
                    raise TracerError(f"an argument {_desc(w)} was given a value of a dg.cond "
                                      "branch or loop body")
                m = w._meta
                delta = 0 if m is None or m.version is None else m.version[0]
                self.arg_writes.append((pos, v.var, delta))
                outs.append(Tracer(v.var, root))
        self.n_effect_outs = len(outs)
        return outs

    def restore(self):
        """Put every touched tensor back as it was before the trace, then find the
        temporaries (made inside the function, unreachable now)."""
        for r in self.recs.values():
            r.restore()
        self.origins.clear()  # (holds tensors: would count as references below)
        held = {}
        for r in self.recs.values():
            if r.grad is not None:
                held[id(r.grad)] = held.get(id(r.grad), 0) + 1
        if not self._find_dropped(held):
            # something looks reachable: maybe only through garbage cycles the trace left
            # (frames of a caught exception, ...): collect them, the old generation too (a
            # temporary kept only by a cycle would become a live input of every call)
            gc.collect()
            self._find_dropped(held)

    def _find_dropped(self, held):
        """Adds the unreachable temporaries to ``dropped``; True if that is all records."""
        every = True
        for k, r in self.recs.items():
            if k in self.dropped:
                continue
            # references: the record, getrefcount's argument, other records' snapshots;
            # the array's: the record, the tensor, getrefcount's argument
            if sys.getrefcount(r.t) - held.get(k, 0) > 2 or sys.getrefcount(r.value) > 3:
                every = False
                continue
            self.dropped.add(k)
        return every

    # -- the program ---------------------------------------------------------------------
    def program(self, graph):
        """``(graph', Effects)``: dropped temporaries become constants, unused inputs go."""
        recs = list(self.recs.values())
        live_vars = [r.var for r in recs if r.var is not None]
        n_live = len(live_vars) + len(self.scalars)
        n_args = len(graph.inputs) - n_live
        arg_inputs = graph.inputs[:n_args]
        n_user = len(graph.outputs) - self.n_effect_outs
        user_outs = graph.outputs[:n_user]
        consts = []
        kept = []
        for r in recs:
            if id(r.t) in self.dropped:
                if r.var is not None:
                    value = np.array(r.value, copy=True)
                    value.flags.writeable = False
                    consts.append(Eqn(const_p, [], {"value": value}, [r.var], None))
                continue
            kept.append(r)
        body, flag_vars, dyn = self._reach(graph, kept)
        eqns = consts + body
        used = set()
        for e in eqns:
            for a in e.inputs:
                if isinstance(a, Var):
                    used.add(a)
        out_atoms = list(user_outs)
        specs = []
        for r in kept:
            write = gnew = None
            if r.write is not None:
                write = len(out_atoms)
                out_atoms.append(r.write)
            if r.gfx is not None and r.gfx[0] == "new":
                gnew = len(out_atoms)
                out_atoms.append(r.gfx[1])
            specs.append([r, write, gnew])
        for a in out_atoms:
            if isinstance(a, Var):
                used.add(a)
        inputs = list(arg_inputs)
        owner = {}
        for r in recs:
            if r.grad is not None and id(r.grad) not in owner:
                owner[id(r.grad)] = r.t
        entries = []
        for r, write, gnew in specs:
            pos = None
            if r.var is not None and r.var in used:
                pos = len(inputs)
                inputs.append(r.var)
            entries.append(_Spec(r, owner.get(id(r.t)), pos, write, gnew))
        arg_writes = []
        for pos, atom, delta in self.arg_writes:
            arg_writes.append((pos, len(out_atoms) - n_user, delta))
            out_atoms.append(atom)
            if isinstance(atom, Var):
                used.add(atom)
        at = len(out_atoms) - n_user
        dyn = [(tid, tuple(at + f for f in fl)) for tid, fl in dyn]
        out_atoms += flag_vars
        used.update(flag_vars)
        scalars = []
        for fn, var, dt in self.scalars:
            if var in used:
                inputs.append(var)
                scalars.append((fn, dt))
        for e in entries:  # a .grad set to another captured tensor: where to find it
            if e.gkind == "obj":
                target = e.gobj
                e.gobj = next((x for x in entries if x.tid == id(target.t)), None) or _Spec(
                    target, owner.get(id(target.t)), None, None, None)
        g = Graph(inputs, eqns, out_atoms, graph.in_tree, graph.out_tree)
        fx = Effects(entries, [(fn, v) for fn, v in self.guards], n_user, n_args, scalars, arg_writes,
                     self.spent, dyn, self.assume)
        return g, fx

    def _reach(self, graph, kept):
        """``(equations, flag outputs, dyn)``: which leaves the ``backward()`` calls reach
        is decided per call as eagerly (static/reach.py) -- a parameter read only by a
        branch not taken, or by a loop body that ran zero times, keeps its ``.grad``.
        ``dyn``: ``(id of the leaf, indices of its flags in the flag outputs)`` for the
        leaves reached on some runs only (it is reached when one of its flags is true),
        then ``(None, its flags)`` for each root that may reach no leaf.  Without such leaves:
        the graph's equations, no flags."""
        none = list(graph.eqns), [], []
        roots = list(dict.fromkeys(self.backward_roots))
        index = {v: i for i, v in enumerate(graph.inputs)}
        leaves = [r for r in kept if r.var in index and r.rg and r.grad_fn is None and not r.had_graph]
        if not leaves or not roots:
            return none
        # the forward part: up to the last root's equation (taping a loop for backward()
        # may have put equations before it since)
        want = set(roots)
        end = 1 + max((k for k, e in enumerate(graph.eqns) if want.intersection(e.outs)), default=-1)
        flagged, reach = reach_graph(Graph(graph.inputs, graph.eqns[:end], roots),
                                     [index[r.var] for r in leaves])
        dyn = []
        for r in leaves:
            b = index[r.var]
            if any(m >> b & 1 for m in reach.static):
                continue
            fl = sorted({f for d in reach.dynamic for bit, f in d if bit == b})
            if fl:
                dyn.append((id(r.t), fl))
        if not dyn:
            return none
        # a root reaching no leaf on this run does not require grad: eager backward() raises
        dyn += [(None, [f for _, f in d]) for s, d in zip(reach.static, reach.dynamic) if not s and d]
        return list(flagged.eqns) + list(graph.eqns[end:]), list(flagged.outputs[len(roots):]), dyn


class _Spec:
    """Where one captured tensor is at call time, its guards and its effects."""

    __slots__ = ("t", "tid", "owner", "pos", "write", "gnew", "gkind", "gobj", "shape", "dtype",
                 "grad_none", "rg", "leaf", "delta", "rg_after")

    def __init__(self, r, owner, pos, write, gnew):
        # a .grad found through its owner is not kept alive by the program (a new one is
        # made whenever the owner's .grad is set to None and back)
        self.t = r.t if owner is None else None
        self.tid = id(r.t)
        self.owner = owner  # the tensor whose .grad this was when traced (found through it)
        self.pos = pos  # graph input position, or None
        self.write = write  # output position of the new value, or None
        self.gnew = gnew  # output position of a new .grad
        self.gkind = r.gfx[0] if r.gfx is not None else None
        self.gobj = r.gfx[1] if self.gkind == "obj" else None
        self.shape = r.value.shape
        self.dtype = r.value.dtype
        self.grad_none = r.grad is None
        self.rg = r.rg
        self.leaf = r.grad_fn is None
        self.delta = r.delta
        self.rg_after = r.rg_after

    def locate(self):
        """The tensor this stands for now, or None if the trace's assumptions fail."""
        o = self.owner
        t = self.t if o is None else o._grad
        if t is None:
            return None
        v = t._value
        if (v.__class__ is not _nd or v.shape != self.shape or v.dtype != self.dtype
                or (t._grad is None) != self.grad_none or t._requires_grad != self.rg
                or (t._grad_fn is None) != self.leaf):
            return None
        return t

    def key(self):
        return (self.tid if self.owner is None else None, id(self.owner), self.pos, self.write,
                self.gnew, self.gkind, None if self.gobj is None else self.gobj.key()[:2],
                self.shape, str(self.dtype),
                self.grad_none, self.rg, self.leaf, self.delta, self.rg_after)


class Effects:
    """The captured inputs, guards and write-backs of one traced variant.

    ``spent``: the user outputs that, eagerly, come back with a ``grad_fn`` whose graph
    ``backward()`` already consumed (``loss = model(x); loss.backward(); opt.step();
    return loss``).  The compiled call returns them as torch.compile does: requiring grad,
    with a ``CompiledFunctionBackward`` node whose saved values are freed, so
    ``loss.requires_grad`` / ``loss.grad_fn`` read as eagerly and a second
    ``loss.backward()`` raises eager's "backward through the graph a second time" error.
    (An output whose graph is still live -- the function did not call backward on it --
    comes back without one: its gradient would flow into the captured tensors, which the
    compiled program cannot do after the call.)

    ``dyn``: the leaves whose ``.grad`` a ``backward()`` inside the function sets on some
    runs only (a parameter read only by one branch of a ``dg.cond``, or by a loop body),
    each with the effect outputs of its bool flags (reached when one is true, see
    ``Live._reach``); ``assumed``: those the trace took as not reached (their ``.grad``
    left as it was, the code after ``backward()`` seeing it so: an optimizer skips them).
    A call whose flags say otherwise is run again by the variant traced for what they
    say (``unreached``, ``call``)."""

    def __init__(self, specs, guards, n_user, n_args, scalars=(), arg_writes=(), spent=(), dyn=(),
                 assumed=frozenset()):
        self.specs = specs
        self.dyn = tuple(dyn)
        self.assumed = assumed
        self.want = frozenset()  # (first variant of a signature) the last call's unreached set
        self.spent = tuple(spent)
        self.arg_writes = list(arg_writes)  # (argument leaf position, effect output, versions)
        self.scalars = list(scalars)  # (fn, dtype): trailing inputs after the tensors
        self.guards = guards
        self.n_user = n_user
        self.n_args = n_args
        self.variants = None  # on the first entry of a signature: all its entries
        self.calls = 0
        self.retraces = 0
        self.fingerprint = None
        self._plan = None
        # a program that writes nothing needs no stability check (see call)
        self.checked = not self.arg_writes and not any(
            s.write is not None or s.gkind is not None or s.delta or s.rg_after is not None
            for s in specs)

    def bind(self):
        """``(located tensors, input arrays)`` or None when a guard fails."""
        for fn, v in self.guards:
            try:
                if fn() != v:
                    return None
            except Exception:  # noqa: BLE001 - the state it reads is gone
                return None
        located = []
        arrays = []
        for s in self.specs:
            t = s.locate()
            if t is None:
                return None
            located.append(t)
            if s.pos is not None:
                arrays.append(t._value)
            if s.gobj is not None and s.gobj.locate() is None:
                return None
        for fn, dt in self.scalars:
            try:
                arrays.append(np.asarray(fn(), dt))
            except Exception:  # noqa: BLE001 - the state it reads is gone
                return None
        return located, arrays

    def apply(self, located, outs, inputs, args=None):
        """Write the effect outputs ``outs`` (the graph's outputs past the user's);
        ``args``: the call's arguments (flattened leaves), if the program writes some."""
        for pos, k, d in self.arg_writes:
            a = args[pos]
            t = a if a.__class__ is Tensor else None
            v = a._value if t is not None else a
            if v.flags.writeable:
                np.copyto(v, outs[k], casting="unsafe")
            elif t is not None:
                t._value = np.array(outs[k], dtype=v.dtype, copy=True)
            if d and t is not None:
                c = _counter(t)
                c[0] += d
                INPLACE[0] += d
        plan = self._plan
        if plan is None:
            plan = self._plan = self._make_plan()
        writes, deltas, slots = plan
        for i, k in writes:
            t = located[i]
            new = outs[k]
            v = t._value
            if v.flags.writeable:
                np.copyto(v, new, casting="unsafe")
            else:
                t._value = np.array(new, dtype=v.dtype, copy=True)
        if deltas:
            total = 0
            for i, d in deltas:
                t = located[i]
                m = t._meta
                c = None if m is None else m.version
                if c is None:
                    c = _counter(t)
                c[0] += d
                total += d
            INPLACE[0] += total
        if slots:
            seen = None
            for i, kind, arg, rg in slots:
                t = located[i]
                if kind == "none":
                    t._grad = None
                elif kind == "new":
                    a = outs[arg]
                    if a.__class__ is not _nd:
                        a = np.asarray(a)
                    if seen is None:
                        seen = {id(x) for x in inputs}
                    if id(a) in seen or not a.flags.writeable or a.base is not None:
                        a = np.array(a, copy=True)
                    seen.add(id(a))
                    t._grad = Tensor._make(a)
                elif kind == "obj":
                    t._grad = arg.locate()
                if rg is not None:
                    t._requires_grad = rg

    def unreached(self, outs):
        """None when the call's flags (in the effect outputs ``outs``) say the trace's
        assumption held; else the leaves (ids) its backward() did not reach, or False
        when it was called on a root that reached none (eagerly: an error)."""
        u = frozenset(tid for tid, fl in self.dyn if not any(outs[k] for k in fl))
        if None in u:
            return False
        return None if u == self.assumed else u

    def _make_plan(self):
        n = self.n_user
        writes = [(i, s.write - n) for i, s in enumerate(self.specs) if s.write is not None]
        deltas = [(i, s.delta) for i, s in enumerate(self.specs) if s.delta]
        slots = []
        for i, s in enumerate(self.specs):
            if s.gkind is None and s.rg_after is None:
                continue
            arg = s.gnew - n if s.gkind == "new" else s.gobj
            slots.append((i, s.gkind, arg, s.rg_after))
        return writes, deltas, slots

    def key(self):
        return (tuple(s.key() for s in self.specs), tuple(v for _, v in self.guards), self.n_user,
                tuple(str(dt) for _, dt in self.scalars), tuple(self.arg_writes), self.spent, self.dyn,
                tuple(sorted(self.assumed)))


def _desc(t):
    return f"{t.dtype.name}{list(t.shape)}"


def _line():
    from ..static.tracer import _user_line

    return _user_line()


def trace(fn, args, kwargs):
    """Trace ``fn(*args, **kwargs)`` for dg.compile: ``(graph, Effects or None)``; None
    when the function touches no captured eager tensor (then the graph has no extra
    inputs or outputs)."""
    live = Live()
    live.user_leaves, _ = tree_flatten((args, kwargs))
    graph, _ = trace_function(lambda a, k: fn(*a, **k), (args, kwargs), live=live)
    if live.backward_ran:
        if any(isinstance(x, Tensor) and x._requires_grad for x in live.user_leaves):
            raise TracerError(
                "backward() inside a compiled function called with tensors that require grad "
                "(their .grad would be set too): not supported by dg.compile")
    if not live.recs and not live.guards and not live.scalars and not live.arg_writes:
        return graph, None
    graph, fx = live.program(graph)
    if not fx.specs and not fx.guards and not fx.scalars and not fx.arg_writes:
        return graph, None  # only temporaries (now constants): a plain graph
    return graph, fx


def fingerprint(graph, fx):
    """What two traces of one variant must share to be the same program."""
    h = hashlib.sha1(str(graph).encode())
    _hash_consts(graph, h)
    return (h.hexdigest(), fx.key())


def _hash_consts(graph, h):
    for e in graph.eqns:
        for k, v in e.params.items():
            if isinstance(v, np.ndarray):
                h.update(k.encode())
                h.update(str(v.dtype).encode())
                h.update(np.ascontiguousarray(v).tobytes())
            elif isinstance(v, Graph):
                _hash_consts(v, h)
            elif isinstance(v, (tuple, list)):
                for x in v:
                    if isinstance(x, Graph):
                        _hash_consts(x, h)


# ----------------------------------------------------------------------------------------
# dg.compile's side (api.py): variants of one signature, stability, the call
# ----------------------------------------------------------------------------------------


def finish(entry, fx):
    """``fx`` of a freshly built entry: the first (and so far only) variant."""
    fx.variants = [entry]
    fx.fingerprint = fingerprint(entry.graph, fx)
    return fx


def _eager_after(cf, key, head, reason, args, kwargs):
    """Give up compiling this signature: warn (or raise with fullgraph) and run eagerly."""
    cf._cache.pop(key, None)
    e = cf._fail(key, reason)
    return cf._fn(*args, **kwargs) if e.eager else None


def call(cf, key, head, args, kwargs, again=False):
    """One call of a compiled function with captured tensors (``again``: run a second
    time, by the variant for the leaves the first run's backward() did not reach)."""
    variants = head.fx.variants
    want = head.fx.want  # the leaves the last run did not reach: its variants first
    entry = bound = None
    order = variants if len(variants) == 1 else sorted(
        variants, key=lambda e: bool(e.fx.dyn) and e.fx.assumed != want)
    for e in order:
        if e.eager:
            return cf._fn(*args, **kwargs)
        if again and e.fx.dyn and e.fx.assumed != want:
            break  # (the ones left assume other leaves not reached)
        bound = e.fx.bind()
        if bound is not None:
            entry = e
            break
    name = getattr(cf._fn, "__qualname__", "function")
    if entry is None:
        # the state the traces assumed has changed (a .grad appeared or went, flags,
        # hyperparameters): trace a new variant -- taking every leaf as reached unless
        # this call's first run said which are not (code that reads a .grad eager code
        # leaves None must fail only where it fails eagerly)
        if not again:
            want = frozenset()
        # (the limit is per set of leaves assumed not reached, see Effects)
        if sum(1 for e in variants if not e.fx.dyn or e.fx.assumed == want) >= MAX_VARIANTS:
            return _eager_after(cf, key, head, (
                f"dg.compile: `{name}` needed more than {MAX_VARIANTS} traces for one argument "
                "signature (the Python-side state it reads -- .grad being None or not, "
                "requires_grad flags, optimizer hyperparameters -- keeps changing)"), args, kwargs)
        new = _retrace(cf, key, head, args, kwargs, want)
        if new.eager:
            return _eager_call(cf, new, args, kwargs)
        variants.append(new)
        entry = new
        bound = new.fx.bind()
        if bound is None:
            return _eager_after(cf, key, head, (
                f"dg.compile: `{name}`: a fresh trace does not accept the state it was traced "
                "in (captured tensors change while tracing?)"), args, kwargs)
    fx = entry.fx
    fx.calls += 1
    if fx.calls == 2 and not fx.checked:
        # the second use of a variant: trace again; a different program means the first
        # trace saw Python state that changed since (lazily made state, a counter)
        new = _retrace(cf, key, head, args, kwargs, fx.assumed)
        if new.eager:
            return _eager_call(cf, new, args, kwargs)
        if new.fx.fingerprint == fx.fingerprint:
            fx.checked = True
        else:
            # the new trace is this call's (its Python code ran once, in the trace): run it
            variants[variants.index(entry)] = new
            new.fx.calls = 1
            entry = new
            fx = new.fx
            bound = fx.bind()
            if bound is None:
                return cf._fn(*args, **kwargs)
            head.fx.retraces += 1
            if head.fx.retraces >= MAX_RETRACES:
                # from the next call on: eager
                cf._cache.pop(key, None)
                cf._fail(key, f"dg.compile: `{name}` gives a different program each time it is "
                              "traced (it branches on Python state that changes between calls)")
    return _run(cf, entry, bound, args, kwargs, (key, head, again))


def _eager_call(cf, entry, args, kwargs):
    return entry.done[0] if entry.done is not None else cf._fn(*args, **kwargs)


def _retrace(cf, key, head, args, kwargs, assume=frozenset()):
    """A new traced entry for ``key`` (``head`` stays the cached one), or an eager entry:
    a capture failure (cached by _fail: the signature runs eagerly from now on), or a call
    that must run eagerly (not cached).  ``assume``: the leaves (ids) the trace takes as
    not reached by its backward() calls."""
    _ASSUME.ids = assume
    try:
        new = cf._build(key, args, kwargs)
    finally:
        _ASSUME.ids = frozenset()
    if new.eager:
        return new
    cf._cache[key] = head
    if new.fx is None:  # no captured tensor this time: a variant without guards
        new.fx = Effects([], [], len(new.graph.outputs), len(new.graph.inputs))
        new.fx.fingerprint = fingerprint(new.graph, new.fx)
    return new


def _run(cf, entry, bound, args, kwargs, where):
    located, live_arrays = bound
    fx = entry.fx
    if kwargs or any(a.__class__ is not Tensor for a in args):
        leaves, _ = tree_flatten((args, kwargs))
        args_t = [leaves[i] for i in entry.tensor_pos]
        arrays = [t._value if t.__class__ is Tensor else np.asarray(t) for t in args_t]
    else:
        arrays = [t._value for t in args]
    arrays += live_arrays
    k = entry.kernel
    if entry.any_rg and is_grad_enabled():
        k = None  # arguments that require grad: the graph runs on the tape (as api.py does)
    if k is not None:
        try:
            res = k.fast(arrays)
        except CompileError as e:
            if cf.fullgraph:
                raise
            from .api import CompileWarning

            warnings.warn(f"{e}; running eagerly", CompileWarning, stacklevel=4)
            entry.kernel = None
            entry.eager = True
            return cf._fn(*args, **kwargs)
        if res is None:  # a run-time check failed: eager code raises its own error
            return cf._fn(*args, **kwargs)
    else:
        if kwargs or any(a.__class__ is not Tensor for a in args):
            ins = [t if t.__class__ is Tensor else Tensor(np.asarray(t)) for t in args_t]
        else:
            ins = list(args)
        # the captured tensors themselves: gradients reach parameters as eagerly
        ins += [t for s, t in zip(fx.specs, located) if s.pos is not None]
        ins += [Tensor._make(a) for a in arrays[len(ins):]]  # live scalars
        if fx.n_user == len(entry.graph.outputs) and entry.aot is not False and not fx.arg_writes:
            # a pure function of its arguments and captured tensors (a module's forward):
            # one CompiledFunctionBackward node, the captured parameters among its inputs
            from .api import _INTERPRET, _NO_GRADS

            res = cf._aot_call(entry, ins, args, kwargs)
            if res is not _INTERPRET and res is not _NO_GRADS:
                return res
        outs = eval_graph_eager_errors(entry.graph, ins)
        n = fx.n_user
        effect_outs = [o._value for o in outs[n:]]
        if fx.dyn:
            u = fx.unreached(effect_outs)
            if u is not None:
                return _again(cf, u, args, kwargs, where)
        fx.apply(located, effect_outs, arrays, _leaves(fx, args, kwargs))
        if fx.spent:
            return entry.result(_with_spent(fx.spent, [o._value for o in outs[:n]]))
        return entry.result(list(outs[:n]))
    n = fx.n_user
    if fx.dyn:
        u = fx.unreached(res[n:])
        if u is not None:
            return _again(cf, u, args, kwargs, where)
    fx.apply(located, res[n:], arrays, _leaves(fx, args, kwargs))
    if entry.single and not entry.py_outs:
        if fx.spent:  # the loss of ``loss.backward(); ...; return loss``
            return _wrap(res[0], spent_node(), 0)
        return Tensor._make(res[0])
    if fx.spent:
        return entry.result(_with_spent(fx.spent, res[:n]))
    return entry.result([Tensor._make(a) for a in res[:n]])


def _again(cf, u, args, kwargs, where):
    """The call's backward() did not reach the leaves ``u`` (ids), not those the variant
    assumed (nothing was written back yet): run the variant traced for ``u`` (made if
    needed).  ``u`` False: it was called on a root that reached none."""
    key, head, again = where
    if u is False or again:  # (again: cannot happen, both runs compute the same flags)
        return cf._fn(*args, **kwargs)  # eager code raises its error
    head.fx.want = u
    return call(cf, key, head, args, kwargs, True)


def _with_spent(spent, values):
    """The user outputs, those in ``spent`` with a grad_fn backward already consumed."""
    outs = [Tensor._make(a) for a in values]
    node = spent_node()
    for k in spent:
        outs[k] = _wrap(values[k], node, k)
    return outs


def _leaves(fx, args, kwargs):
    if not fx.arg_writes:
        return None
    if not kwargs:
        return args if all(a.__class__ is Tensor for a in args) else tree_flatten((args, kwargs))[0]
    return tree_flatten((args, kwargs))[0]
