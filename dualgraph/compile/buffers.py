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
"""
from __future__ import annotations

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
            elif name == "while":
                self._walk_while(eqn)
            else:
                for sub in _subgraphs(eqn):
                    self._walk(sub, top=False)

    def _walk_while(self, eqn):
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
        self._walk(eqn.params["cond_graph"], top=False)
        self._walk(body, top=False)
        for k in carried:
            out = eqn.outs[k]
            self.owned.add(out)
            if eqn.inputs[k] in self.slot:
                self.slot[out] = self.slot[eqn.inputs[k]]
