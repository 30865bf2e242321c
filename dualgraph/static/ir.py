"""The typed SSA IR: ``Var``, ``Lit``, ``Eqn``, ``Graph``, its printer and the read/write loop.

A graph is jaxpr-shaped: typed input variables, a list of equations each applying one
primitive to variables or literals and binding fresh output variables, and a list of
outputs.  ``cond`` and ``while`` carry their sub-graphs as params.  Every consumer
(interpreter, passes, autodiff, codegen) walks a graph with ``run``.

Printed form (an interface, pinned by golden tests)::

    { lambda a:f32[3] .
      let b:f32[] = reduce_sum[axes=(0,) keepdims=False] a
          c:bool[] = gt b 0.0
      in (b, c) }
"""
from __future__ import annotations

import itertools

import numpy as np

from ..ops.registry import ShapedArray

_ids = itertools.count()


class Var:
    """A typed SSA variable; identity is the object."""

    __slots__ = ("aval", "id")

    def __init__(self, aval: ShapedArray):
        self.aval = aval
        self.id = next(_ids)

    def __repr__(self):
        return f"Var({self.id}:{self.aval.str_short()})"


class Lit:
    """A literal operand: a Python scalar (weakly typed, like in numpy 2 / JAX)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    @property
    def aval(self):
        return ShapedArray((), np.asarray(self.value).dtype)

    def __repr__(self):
        return f"Lit({self.value!r})"

    def __eq__(self, other):
        return isinstance(other, Lit) and lit_key(self.value) == lit_key(other.value)

    def __hash__(self):
        return hash(lit_key(self.value))


def lit_key(value):
    """The exact identity of a literal value: its type and bits (``0.0`` and ``-0.0``
    differ, a nan equals a nan with the same payload)."""
    return ("lit", type(value).__name__, np.asarray(value).tobytes())


class Eqn:
    """``outs = prim[params](*inputs)``; ``source`` is the user's ``file:line``."""

    __slots__ = ("prim", "inputs", "params", "outs", "source")

    def __init__(self, prim, inputs, params, outs, source=None):
        self.prim = prim
        self.inputs = list(inputs)
        self.params = dict(params)
        self.outs = list(outs)
        self.source = source

    @property
    def name(self):
        return self.prim.name

    def replace(self, **kw):
        new = Eqn(self.prim, self.inputs, self.params, self.outs, self.source)
        for k, v in kw.items():
            setattr(new, k, list(v) if k in ("inputs", "outs") else v)
        return new

    def __repr__(self):
        return pp_eqn(self, _Namer()).strip()


# ``graph(*args)``: set by static/interpreter.py at import (see ``Graph.__call__``)
_GRAPH_CALL = [None]


def set_graph_call(fn):
    """Install ``fn(graph, args)`` as what ``graph(*args)`` runs (the interpreter does)."""
    _GRAPH_CALL[0] = fn


class Graph:
    """A closed, typed program: ``inputs`` -> ``eqns`` -> ``outputs``.

    ``in_tree``/``out_tree`` (optional) rebuild the caller's argument and result
    structure; ``graph(*tensors)`` runs the reference interpreter.

    A graph is not changed once built (passes return new graphs): what consumers derive
    from it, such as the last use of each variable, is computed once and cached on it.
    ``source``: the converted Python source of the traced function (``dg.trace`` sets it;
    see autograph), None otherwise."""

    source = None

    def __init__(self, inputs, eqns, outputs, in_tree=None, out_tree=None):
        self.inputs = list(inputs)
        self.eqns = list(eqns)
        self.outputs = list(outputs)
        self.in_tree = in_tree
        self.out_tree = out_tree

    @property
    def ops(self):
        return self.eqns

    @property
    def in_avals(self):
        return [v.aval for v in self.inputs]

    @property
    def out_avals(self):
        return [v.aval for v in self.outputs]

    def replace(self, **kw):
        g = Graph(self.inputs, self.eqns, self.outputs, self.in_tree, self.out_tree)
        for k, v in kw.items():
            setattr(g, k, v)
        return g

    def __str__(self):
        return pp_graph(self, _Namer(), 0)

    def __repr__(self):
        return str(self)

    def __call__(self, *args):
        # the reference interpreter sits above this module (it imports ir.py); it installs
        # its entry point here when imported, so imports go one way
        call = _GRAPH_CALL[0]
        if call is None:
            raise RuntimeError("dualgraph.static.interpreter is not imported: cannot run a Graph")
        return call(self, args)

    def source_lines(self):
        """Equations with the user source line that produced them (for debugging)."""
        return [(pp_eqn(e, _Namer()).strip(), e.source) for e in self.eqns]


def rule_avals(prim, inputs, params):
    """The output types ``prim``'s shape rule gives for the operands ``inputs`` (atoms: a
    Var gives its type, a literal its Python value, weakly typed), as a list."""
    out = prim.shape_rule(*[x.aval if x.__class__ is Var else x.value for x in inputs], **params)
    return list(out) if prim.multiple_results else [out]


class Plan:
    """What every walk of a graph needs beyond its equations, computed once per graph.

    ``free[k]``: the variables whose last read is equation ``k`` (or that equation's
    outputs nobody reads): a loop drops them from its environment right after ``k``, so
    an interpreted chain holds only live values (as eager code does).
    ``dead_inputs``: inputs nothing reads.  ``uses``: how many times each variable is read
    (an operand occurrence or a graph output counts once each).  ``producer``: the
    equation binding each variable (graph inputs have none)."""

    __slots__ = ("free", "dead_inputs", "uses", "producer")

    def __init__(self, graph):
        last = {}
        uses = {}
        producer = {}
        for k, eqn in enumerate(graph.eqns):
            for x in eqn.inputs:
                if x.__class__ is Var:
                    last[x] = k
                    uses[x] = uses.get(x, 0) + 1
            for v in eqn.outs:
                producer[v] = eqn
        end = len(graph.eqns)
        for x in graph.outputs:
            if x.__class__ is Var:
                last[x] = end
                uses[x] = uses.get(x, 0) + 1
        free = [[] for _ in graph.eqns]
        for v, k in last.items():
            if k < end:
                free[k].append(v)
        for k, eqn in enumerate(graph.eqns):
            for v in eqn.outs:
                if v not in last:
                    free[k].append(v)  # bound but never read
        self.free = [tuple(f) for f in free]
        self.dead_inputs = tuple(v for v in graph.inputs if v not in last)
        self.uses = uses
        self.producer = producer


def plan(graph) -> Plan:
    """The graph's ``Plan`` (cached on the graph: graphs are not changed once built)."""
    p = graph.__dict__.get("_plan")
    if p is None or p[0] != (len(graph.inputs), len(graph.eqns), len(graph.outputs)):
        p = graph._plan = ((len(graph.inputs), len(graph.eqns), len(graph.outputs)), Plan(graph))
    return p[1]


def run(graph, args, eval_eqn, read_lit=lambda lit: lit.value):
    """The one read/write loop: bind inputs, evaluate each equation, return outputs.

    ``eval_eqn(eqn, in_values) -> out value or tuple of values`` decides what evaluating
    means (numpy through bind, re-tracing, emitting source, ...).  Each value is dropped
    from the environment after its last read, so the loop holds only live values."""
    if len(args) != len(graph.inputs):
        raise TypeError(f"graph takes {len(graph.inputs)} inputs, got {len(args)}")
    p = plan(graph)
    env = dict(zip(graph.inputs, args))
    for v in p.dead_inputs:
        del env[v]
    for eqn, dead in zip(graph.eqns, p.free):
        ins = [env[x] if x.__class__ is Var else read_lit(x) for x in eqn.inputs]
        out = eval_eqn(eqn, ins)
        ins = None  # the operands may be dead: do not keep them alive through the next eqn
        if eqn.prim.multiple_results:
            for v, o in zip(eqn.outs, out):
                env[v] = o
        else:
            env[eqn.outs[0]] = out
        out = None
        for v in dead:
            del env[v]
    return [env[x] if x.__class__ is Var else read_lit(x) for x in graph.outputs]


# ----------------------------------------------------------------------------------------
# printer
# ----------------------------------------------------------------------------------------


class _Namer:
    def __init__(self):
        self.names = {}

    def __call__(self, v):
        name = self.names.get(v)
        if name is None:
            name = self.names[v] = _name(len(self.names))
        return name


def _name(i):
    letters = "abcdefghijklmnopqrstuvwxyz"
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = letters[r] + s
    return s


def _atom(x, namer):
    if isinstance(x, Var):
        return namer(x)
    if isinstance(x, Lit):
        return _pp_value(x.value)
    return f"<raw {type(x).__name__} {_pp_value(x)}>"  # malformed: the verifier says so


def _pp_value(v):
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, np.dtype):
        return v.name
    if isinstance(v, type) and issubclass(v, np.generic):
        return np.dtype(v).name
    if isinstance(v, np.ndarray):
        if v.ndim == 0:
            return _pp_value(v.item())
        return f"array<{ShapedArray(v.shape, v.dtype).str_short()}>"
    if isinstance(v, tuple):
        inner = ",".join(_pp_value(x) for x in v)
        return f"({inner}{',' if len(v) == 1 else ''})"
    return repr(v)


def _pp_binder(v, namer):
    return f"{namer(v)}:{v.aval.str_short()}"


def pp_eqn(eqn, namer, indent=0):
    pad = " " * indent
    ins = " ".join(_atom(x, namer) for x in eqn.inputs)
    lhs = " ".join(_pp_binder(v, namer) for v in eqn.outs)
    simple, graphs = [], []
    for k, v in eqn.params.items():
        (graphs if isinstance(v, Graph) else simple).append((k, v))
    if not graphs:
        params = " ".join(f"{k}={_pp_value(v)}" for k, v in simple)
        head = f"{eqn.prim.name}[{params}]" if params else eqn.prim.name
        return f"{pad}{lhs} = {head}{' ' + ins if ins else ''}"
    lines = [f"{pad}{lhs} = {eqn.prim.name}["]
    for k, v in simple:
        lines.append(f"{pad}  {k}={_pp_value(v)}")
    for k, g in graphs:
        body = pp_graph(g, namer, indent + 2 + len(k) + 1)
        lines.append(f"{pad}  {k}={body.lstrip()}")
    lines.append(f"{pad}]{' ' + ins if ins else ''}")
    return "\n".join(lines)


def pp_graph(graph, namer, indent=0):
    pad = " " * indent
    binders = " ".join(_pp_binder(v, namer) for v in graph.inputs)
    lines = [f"{pad}{{ lambda {binders} ." if binders else f"{pad}{{ lambda ."]
    for i, eqn in enumerate(graph.eqns):
        text = pp_eqn(eqn, namer, indent + 6)
        if i == 0:
            text = f"{pad}  let " + text[indent + 6:]
        lines.append(text)
    outs = ", ".join(_atom(x, namer) for x in graph.outputs)
    lines.append(f"{pad}  in ({outs}) }}")
    return "\n".join(lines)
