"""What the rewriting passes share: building a new graph while ``ir.run`` walks the old one.

A rewriting pass runs the old graph with values that are atoms of the NEW graph (``Var``
or ``Lit``).  Its ``eval_eqn(emitter, eqn, inputs)`` either returns atoms that already
exist (a simplification, a CSE hit) or emits a new equation and returns its fresh outputs.
Literals are read as themselves, so a pass sees them as atoms too.

Also here: the keys by which equations are compared (CSE) and the recognition of
constant operands (folding, simplification).
"""
from __future__ import annotations

import numpy as np

from ..ir import Eqn, Graph, Lit, Var, lit_key, run

# constants up to this many elements are compared by value (CSE), larger ones by identity
SMALL_ARRAY = 64


class Emitter:
    """The equations of the graph being built, in order."""

    def __init__(self):
        self.eqns = []

    def emit(self, eqn, inputs, params=None):
        """Append ``eqn`` applied to ``inputs`` (new atoms) with fresh outputs; returns them."""
        outs = [Var(v.aval) for v in eqn.outs]
        new_params = eqn.params if params is None else params
        self.eqns.append(Eqn(eqn.prim, inputs, new_params, outs, eqn.source))
        return outs

    def emit_prim(self, prim, inputs, params, out_aval, source=None):
        """Append a single-output equation of ``prim``; returns its output Var."""
        out = Var(out_aval)
        self.eqns.append(Eqn(prim, inputs, params, [out], source))
        return out


def results(eqn, atoms):
    """Package ``atoms`` the way ``ir.run`` expects ``eqn``'s outputs."""
    return tuple(atoms) if eqn.prim.multiple_results else atoms[0]


def _same(lit):
    return lit


def rebuild(graph: Graph, eval_eqn, finish=None) -> Graph:
    """Run ``graph`` with fresh input Vars, collecting what ``eval_eqn`` emits.

    ``eval_eqn(emitter, eqn, inputs) -> new atoms`` (a tuple for multiple-result
    primitives); ``finish(emitter, outputs) -> outputs`` may post-process the outputs.
    ``in_tree``/``out_tree`` are kept."""
    em = Emitter()
    inputs = [Var(v.aval) for v in graph.inputs]
    outs = run_into(em, graph, inputs, eval_eqn)
    if finish is not None:
        outs = finish(em, outs)
    return graph.replace(inputs=inputs, eqns=em.eqns, outputs=list(outs))


def run_into(em, graph, inputs, eval_eqn):
    """Evaluate ``graph``'s equations into ``em`` on ``inputs`` (inlining it)."""
    return run(graph, list(inputs), lambda eqn, ins: eval_eqn(em, eqn, ins), read_lit=_same)


class SubGraphs:
    """Applies a pass to the sub-graphs an equation carries, once per sub-graph object
    (so equations that shared a sub-graph still share the rewritten one)."""

    def __init__(self, fn):
        self.fn = fn
        self.memo = {}  # id(graph) -> (graph, result); the graph is kept alive

    def graph(self, g: Graph) -> Graph:
        hit = self.memo.get(id(g))
        if hit is not None and hit[0] is g:
            return hit[1]
        out = self.fn(g)
        self.memo[id(g)] = (g, out)
        return out

    def params(self, eqn):
        if not any(isinstance(v, Graph) for v in eqn.params.values()):
            return eqn.params
        return {k: self.graph(v) if isinstance(v, Graph) else v for k, v in eqn.params.items()}


# ----------------------------------------------------------------------------------------
# keys: equal keys mean "computes the same value"
# ----------------------------------------------------------------------------------------


class Unhashable(Exception):
    pass


def value_key(v, graph_keys=None):
    """A hashable key for a param value; raises ``Unhashable`` if there is none."""
    if isinstance(v, Graph):
        return ("graph", graph_key(v, graph_keys))
    if isinstance(v, np.ndarray):
        if v.size <= SMALL_ARRAY:
            return ("array", v.dtype.str, v.shape, np.ascontiguousarray(v).tobytes())
        return ("array-id", id(v))  # the graph keeps the array alive while the pass runs
    if isinstance(v, (tuple, list)):
        return (type(v).__name__,) + tuple(value_key(x, graph_keys) for x in v)
    if isinstance(v, (float, np.floating)):
        return lit_key(v)
    try:
        hash(v)
    except TypeError:
        raise Unhashable from None
    return (type(v).__name__, v)


def params_key(params, graph_keys=None):
    return tuple((k, value_key(params[k], graph_keys)) for k in sorted(params))


def graph_key(g: Graph, memo=None):
    """A key equal for alpha-equivalent graphs (same equations up to renaming)."""
    if memo is not None:
        hit = memo.get(id(g))
        if hit is not None and hit[0] is g:
            return hit[1]
    names = {v: ("in", i) for i, v in enumerate(g.inputs)}

    def atom(x):
        if isinstance(x, Lit):
            return lit_key(x.value)
        try:
            return names[x]
        except KeyError:
            raise Unhashable from None

    eqns = []
    for i, e in enumerate(g.eqns):
        eqns.append((e.prim.name, tuple(atom(x) for x in e.inputs), params_key(e.params, memo),
                     tuple(v.aval for v in e.outs)))
        for j, v in enumerate(e.outs):
            names[v] = ("eqn", i, j)
    key = (tuple(v.aval for v in g.inputs), tuple(eqns), tuple(atom(x) for x in g.outputs))
    if memo is not None:
        memo[id(g)] = (g, key)
    return key


# ----------------------------------------------------------------------------------------
# constant operands
# ----------------------------------------------------------------------------------------


def constant_value(x, producers):
    """The value of atom ``x`` if it is a literal or the output of a ``const``/``full``
    equation (``producers`` maps new-graph Vars to the equations that bind them).

    A ``full`` gives its 0-d fill value: the value up to broadcasting, which is all that
    elementwise pattern checks need (callers check the result type separately)."""
    if isinstance(x, Lit):
        return np.asarray(x.value)
    eqn = producers.get(x)
    if eqn is None:
        return None
    if eqn.prim.name == "const":
        return eqn.params["value"]
    if eqn.prim.name == "full":
        p = eqn.params
        return np.full((), p["value"], p["dtype"])
    return None
