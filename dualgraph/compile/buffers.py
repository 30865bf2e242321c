"""Which tape buffers a kernel may write in place, read through views, and keep across calls.

The tape ops (``dynamic_zeros``/``dynamic_update``/``dynamic_index``, the growable buffers
of reverse mode through ``while``) are pure in the IR: an update returns a new buffer.
Lowered literally, every taped iteration would copy the whole tape.  This pass decides,
per equation, when the generated code may do better without changing any value:

* **owned** buffers: made by ``dynamic_zeros`` or ``dynamic_update`` in this kernel, or a
  ``while`` carry whose initial value is owned and read by that ``while`` only, and whose
  body returns an owned buffer (made in the body, or the carry itself).
* **in place**: a ``dynamic_update`` whose buffer operand is owned and read by it alone
  writes into that buffer (growing it by doubling when the row is past the end).  So the
  buffer's previous value is dead, and no other name can see the write.
* **views**: a ``dynamic_index`` returns a view of its row (no copy) when its result is
  read only by equations that read (it is no graph output and no ``cond``/``while``
  operand, so it cannot outlive its region).  Taking a view means the buffer has a second
  reader, so it is never written in place afterwards.
* **workspaces**: a top-level ``dynamic_zeros`` marked ``scratch`` (every row is written
  before it is read: the carry tapes of while-loop autodiff) takes its memory from a
  buffer the kernel keeps between calls and hands back grown (``Kernel`` keeps a pool, one
  set per concurrent call).  Only when no output of the kernel has a dynamic shape, so no
  result can alias a kept buffer.
* **accumulating products**: ``add(x, matmul(a, b))`` whose product is read by that add
  alone and whose ``x`` is a 2-d buffer no other equation reads, made in this kernel (a
  ``full``, or an owned ``while`` carry: the gradient accumulators of a loop's VJP,
  ``dW = dW + h.T @ dz`` per step), may be one BLAS call with ``beta = 1`` into ``x``'s
  buffer (``acc``: the matmul's id -> (the add, ``x``)): no product buffer, no add loop,
  no new buffer per step.  The code generator makes the final decision (``x`` must be
  materialized, the sum not fused into its readers).
* **ping-pong carries** (``pingpong``: (id(while eqn), k)): a ``while`` carry whose body
  computes the next value afresh (an elementwise result, a reduction, a product, or a
  ``cond`` whose branches compute theirs) from a current value that no body result can
  alias (no view, reshape or pass-through of it is returned), and whose next value no other
  carry can keep (through a ``cond`` passing it through), is written into one of two
  buffers made before the loop -- the one not holding the current value, chosen at run time
  -- instead of a new buffer per iteration (seed_loop: 100 allocations per call).
"""
from __future__ import annotations

import numpy as np

from ..static.ir import Graph, Var

_ESCAPING = ("cond", "while", "reshape")  # readers that may alias their operand


def _subgraphs(eqn):
    return [v for v in eqn.params.values() if isinstance(v, Graph)]


class BufferPlan:
    def __init__(self, graph):
        self.uses = {}  # Var -> reads (equation operands and graph outputs)
        self.readers = {}  # Var -> reading equations
        self.outputs = set()  # Vars that are an output of some (sub-)graph
        self.owned = set()
        self.inplace = set()  # id(eqn)
        self.views = set()  # id(eqn)
        self.slot = {}  # Var -> workspace number
        self.slots = []  # (row shape, dtype) per workspace
        self.fresh = set()  # results of ``full``: a new buffer per call when materialized
        self.acc = {}  # id(matmul eqn) -> (the add that accumulates it, the buffer operand)
        self.acc_adds = set()  # id(add eqn) of ``acc``
        # (id(while eqn), k): carry k starts in a new zeroed buffer of its own (its initial
        # value is zeros shared with other readers -- CSE merges equal zeros -- or a zero
        # constant, which the kernel must not write)
        self.fresh_carry = set()
        self.pingpong = set()  # (id(while eqn), k)
        self._count(graph)
        self._walk(graph, top=True)
        if any(isinstance(v, Var) and None in v.aval.shape for v in graph.outputs):
            self.slot.clear()  # a dynamic result could alias a kept buffer
            self.slots = []

    def _count(self, g):
        for eqn in g.eqns:
            for x in eqn.inputs:
                if isinstance(x, Var):
                    self.uses[x] = self.uses.get(x, 0) + 1
                    self.readers.setdefault(x, []).append(eqn)
            for sub in _subgraphs(eqn):
                self._count(sub)
        for x in g.outputs:
            if isinstance(x, Var):
                self.uses[x] = self.uses.get(x, 0) + 1
                self.outputs.add(x)

    def _sole(self, x):
        return isinstance(x, Var) and x in self.owned and self.uses.get(x, 0) == 1

    def _sole_acc(self, x):
        return isinstance(x, Var) and (x in self.owned or x in self.fresh) \
            and self.uses.get(x, 0) == 1

    def _plan_acc(self, eqn, made):
        """``eqn`` (an add): ``x + a @ b`` computed by BLAS into ``x``'s buffer?"""
        (out,) = eqn.outs
        if len(eqn.inputs) != 2 or out.aval.ndim != 2 or None in out.aval.shape \
                or out.aval.dtype not in (np.float32, np.float64):
            return
        for x, m in (eqn.inputs, eqn.inputs[::-1]):
            p = made.get(m) if isinstance(m, Var) else None
            if p is None or p.prim.name != "matmul" or self.uses.get(m) != 1 or x is m:
                continue
            if not all(isinstance(y, Var) and y.aval.ndim == 2 for y in p.inputs):
                continue
            if not isinstance(x, Var) or tuple(x.aval.shape) != tuple(out.aval.shape) \
                    or tuple(m.aval.shape) != tuple(out.aval.shape) \
                    or not (x.aval.dtype == m.aval.dtype == out.aval.dtype):
                continue
            if not self._sole_acc(x):
                continue
            self.acc[id(p)] = (eqn, x)
            self.acc_adds.add(id(eqn))
            self.owned.add(out)
            return

    def _walk(self, g, top):
        made = {}
        for eqn in g.eqns:
            for v in eqn.outs:
                made[v] = eqn
            name = eqn.prim.name
            if name == "dynamic_zeros":
                (out,) = eqn.outs
                self.owned.add(out)
                if top and eqn.params.get("scratch"):
                    self.slot[out] = len(self.slots)
                    self.slots.append((tuple(eqn.params["shape"]), eqn.params["dtype"]))
            elif name == "dynamic_update":
                buf = eqn.inputs[0]
                (out,) = eqn.outs
                self.owned.add(out)
                if self._sole(buf):
                    self.inplace.add(id(eqn))
                    if buf in self.slot:
                        self.slot[out] = self.slot[buf]
            elif name == "dynamic_index":
                (out,) = eqn.outs
                if out.aval.ndim > 0 and out not in self.outputs and all(
                        r.prim.name not in _ESCAPING for r in self.readers.get(out, [])):
                    self.views.add(id(eqn))
            elif name == "full":
                self.fresh.add(eqn.outs[0])
            elif name == "add":
                self._plan_acc(eqn, made)
            elif name == "while":
                self._walk_while(eqn, made)
            else:
                for sub in _subgraphs(eqn):
                    self._walk(sub, top=False)

    def _pingpong_ok(self, body, k):
        b_in, b_out = body.inputs[k], body.outputs[k]
        if not isinstance(b_out, Var) or b_in.aval.ndim == 0 or None in b_in.aval.shape:
            return False
        if sum(1 for o in body.outputs if o is b_out) != 1:
            return False
        made = {v: e for e in body.eqns for v in e.outs}
        e = made.get(b_out)
        if e is None or not _computes_afresh(e):
            return False
        al = _aliases(body, {b_in})
        if any(isinstance(o, Var) and o in al for o in body.outputs):
            return False  # the current value lives on: its buffer is not free next time
        # nor may another carry keep the next value (a cond passing it through: "keep the
        # best iterate"), or two iterations later it is overwritten under that carry
        al = _aliases(body, {b_out})
        return not any(isinstance(o, Var) and o in al
                       for j, o in enumerate(body.outputs) if j != k)

    @staticmethod
    def _zero_full(x, made):
        e = made.get(x) if isinstance(x, Var) else None
        if e is None or e.prim.name not in ("full", "const"):  # dg.zeros(...) traces to a const
            return False
        v = np.asarray(e.params["value"]).astype(x.aval.dtype)
        return None not in x.aval.shape and not v.tobytes().strip(b"\0")

    def _walk_while(self, eqn, outer):
        body = eqn.params["body_graph"]
        ncarry = len(eqn.inputs) - eqn.params["cond_nconsts"] - eqn.params["body_nconsts"]
        made = {v for e in body.eqns for v in e.outs
                if e.prim.name in ("dynamic_zeros", "dynamic_update")}
        carried = []
        for k in range(ncarry):
            init, b_in, b_out = eqn.inputs[k], body.inputs[k], body.outputs[k]
            if not (self._sole(init) and isinstance(b_out, Var)):
                continue
            if b_out is not b_in and b_out not in made:
                continue
            if sum(1 for o in body.outputs if o is b_out) != 1 or self.uses.get(b_out) != 1:
                continue
            carried.append(k)
            self.owned.add(b_in)
            if init in self.slot:
                self.slot[b_in] = self.slot[init]
        body_made = {v: e for e in body.eqns for v in e.outs}
        for k in range(ncarry):
            # an accumulator: the body returns ``b_in + a @ b`` and reads b_in nowhere else
            init, b_in, b_out = eqn.inputs[k], body.inputs[k], body.outputs[k]
            if k in carried or not isinstance(b_out, Var) or b_in.aval.ndim != 2:
                continue
            shared = not self._sole_acc(init)
            if shared and not self._zero_full(init, outer):
                continue
            e = body_made.get(b_out)
            if e is None or e.prim.name != "add" or b_in not in e.inputs \
                    or self.uses.get(b_in) != 1 or self.uses.get(b_out) != 1 \
                    or sum(1 for o in body.outputs if o is b_out) != 1:
                continue
            carried.append(k)
            self.owned.add(b_in)
            if shared:
                self.fresh_carry.add((id(eqn), k))
        for k in range(ncarry):
            if k not in carried and self._pingpong_ok(body, k):
                self.pingpong.add((id(eqn), k))
        self._walk(eqn.params["cond_graph"], top=False)
        self._walk(body, top=False)
        for k in carried:
            out = eqn.outs[k]
            self.owned.add(out)
            if eqn.inputs[k] in self.slot:
                self.slot[out] = self.slot[eqn.inputs[k]]


# results computed into a buffer of their own (or inline by their readers): never a view
_FRESH = ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "matmul", "full")


def _computes_afresh(eqn):
    """Does ``eqn`` write its (single) result into a buffer it allocates?"""
    if eqn.prim.multiple_results or eqn.prim.lowering is None:
        return eqn.prim.name == "cond" and all(
            _computes_afresh_out(eqn.params[b], j)
            for b in ("true_branch", "false_branch") for j in range(len(eqn.outs)))
    return eqn.prim.lowering.kind == "elementwise" or eqn.prim.name in _FRESH


def _computes_afresh_out(g, j):
    o = g.outputs[j]
    if not isinstance(o, Var) or o in g.inputs:
        return True  # a literal, or passed through (not written: the alias check rules it)
    e = next((e for e in g.eqns if o in e.outs), None)
    return e is not None and _computes_afresh(e)


def _aliases(g, seeds):
    """The values of ``g`` that may share a buffer with one of ``seeds``: views, reshapes,
    pass-throughs (a ``cond``'s outputs through its branches); any equation not known to
    compute afresh may alias each of its operands."""
    al = set(seeds)
    for eqn in g.eqns:
        ins = [x for x in eqn.inputs if isinstance(x, Var) and x in al]
        if eqn.prim.name == "dynamic_update":  # the row is copied into the buffer
            ins = [x for x in ins if x is eqn.inputs[0]]
        if not ins:
            continue
        if eqn.prim.name == "cond":
            for b in ("true_branch", "false_branch"):
                br = eqn.params[b]
                inner = _aliases(br, {v for v, x in zip(br.inputs, eqn.inputs[1:]) if x in al})
                al.update(o for o, bo in zip(eqn.outs, br.outputs)
                          if isinstance(bo, Var) and bo in inner)
            continue
        if not eqn.prim.multiple_results and eqn.prim.lowering is not None and (
                eqn.prim.lowering.kind == "elementwise" or eqn.prim.name in _FRESH):
            continue
        al.update(eqn.outs)
    return al
