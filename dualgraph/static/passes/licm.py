"""Loop-invariant code motion out of ``while`` loops.

An equation of a loop's body (or predicate) whose operands are all loop constants --
the values the ``while`` equation passes in after the carries, or constants defined in
the body -- computes the same value in every iteration.  It is moved in front of the
``while`` equation, computed once, and its result passed back in as a new loop constant
(``body_nconsts``/``cond_nconsts`` grow).  Loops are processed inside out, so a value
invariant in two nested loops moves out of both.

What moves: first-order equations that read at least one loop constant and otherwise only
invariant values.  What stays:

* equations that read only constants defined in the loop (``const``, ``full`` and
  arithmetic on them): they are free, and left in the loop they stay visible to constant
  folding there (they are copied out if a hoisted equation needs them);
* ``cond``/``while`` equations (a nested loop is not hoisted as a whole);
* from the body only (the predicate always runs at least once, the body may run zero
  times): equations that can raise for some operand values (``may_raise``: index arrays
  out of range, integer powers with negative exponents, max of an empty array).

Like JAX, other pure work is hoisted even though a loop that runs zero times then
evaluates it once for nothing (cost: one evaluation; saved: one per further iteration);
floating-point errors do not raise in dualgraph (they give inf/nan), so that evaluation
cannot fail.
"""
from __future__ import annotations

from ..ir import Graph, Var
from .rewrite import Emitter, SubGraphs, rebuild, results, run_into

def may_raise(eqn) -> bool:
    """Can running ``eqn`` raise for some values of its (well-typed) operands?  The
    registry entry says (``Primitive.may_raise``)."""
    return eqn.prim.raises_for([x.aval for x in eqn.inputs], eqn.params)


def licm(graph: Graph) -> Graph:
    """Hoist loop-invariant equations out of ``while`` bodies and predicates."""
    return _LICM().subs.graph(graph)


class _LICM:
    def __init__(self):
        self.subs = SubGraphs(self.run)

    def run(self, graph):
        return rebuild(graph, self.eval_eqn)

    def eval_eqn(self, em, eqn, ins):
        params = self.subs.params(eqn)  # inner loops first
        if eqn.prim.name != "while":
            return results(eqn, em.emit(eqn, ins, params))
        p = params
        nc, nb = p["cond_nconsts"], p["body_nconsts"]
        n = len(ins) - nc - nb
        carry, cc, bc = ins[:n], ins[n:n + nc], ins[n + nc:]
        cond_graph, new_cc = _hoist(em, p["cond_graph"], n, cc, allow_raise=True)
        body_graph, new_bc = _hoist(em, p["body_graph"], n, bc, allow_raise=False)
        params = dict(
            p,
            cond_graph=cond_graph,
            body_graph=body_graph,
            cond_nconsts=nc + len(new_cc),
            body_nconsts=nb + len(new_bc),
        )
        outs = em.emit(eqn, carry + cc + new_cc + bc + new_bc, params)
        return results(eqn, outs)


class _Invariant:
    """A value the same in every iteration, known on both sides of the loop boundary:
    ``outer`` is its atom in the enclosing graph, ``inner`` its atom in the loop's graph
    (each made on demand).  ``free`` values come from operand-free equations in the loop
    (``eqn``); they stay in the loop and are copied out only if a hoisted equation reads
    them."""

    __slots__ = ("eqn", "free", "inner", "ins", "outer")

    def __init__(self, outer=None, inner=None, free=False, eqn=None, ins=()):
        self.outer = outer
        self.inner = inner
        self.free = free
        self.eqn = eqn
        self.ins = ins


def _hoist(outer_em, graph, ncarry, consts, allow_raise):
    """Move ``graph``'s invariant equations into ``outer_em``.

    ``graph``'s inputs are ``ncarry`` carries then constants bound (outside) to the atoms
    ``consts``.  Returns the rest of ``graph`` (its inputs gain the hoisted values it still
    reads) and the outer atoms to pass for them."""
    inner_em = Emitter()
    inputs = [Var(v.aval) for v in graph.inputs]
    extra_inputs, extra_outer = [], []

    def outer_atom(x):
        if not isinstance(x, _Invariant):
            return x  # a literal
        if x.outer is None:  # a free value: copy its equation out
            x.outer = outer_em.emit(x.eqn, [outer_atom(y) for y in x.ins])[0]
        return x.outer

    def inner_atom(x):
        if not isinstance(x, _Invariant):
            return x
        if x.inner is None:  # hoisted, read inside: a new loop constant
            x.inner = Var(x.outer.aval)
            extra_inputs.append(x.inner)
            extra_outer.append(x.outer)
        return x.inner

    def eval_eqn(inner_em, eqn, ins):
        var_ins = [x for x, old in zip(ins, eqn.inputs) if isinstance(old, Var)]
        # what may raise is not invariant: not even a free value may be copied out
        invariant = (
            not eqn.prim.higher_order
            and all(isinstance(x, _Invariant) for x in var_ins)
            and (allow_raise or not may_raise(eqn))
        )
        if invariant and all(x.free for x in var_ins) and len(eqn.outs) == 1:
            # constants (and arithmetic on them) stay in the loop, for folding there
            out = inner_em.emit(eqn, [inner_atom(x) for x in ins])[0]
            return _Invariant(inner=out, free=True, eqn=eqn, ins=ins)
        if invariant:
            outs = outer_em.emit(eqn, [outer_atom(x) for x in ins])
            return results(eqn, [_Invariant(outer=o) for o in outs])
        return results(eqn, inner_em.emit(eqn, [inner_atom(x) for x in ins]))

    args = inputs[:ncarry] + [_Invariant(outer=c, inner=v) for c, v in zip(consts, inputs[ncarry:])]
    outs = run_into(inner_em, graph, args, eval_eqn)
    outs = [inner_atom(x) for x in outs]
    new_graph = graph.replace(inputs=inputs + extra_inputs, eqns=inner_em.eqns, outputs=outs)
    return new_graph, extra_outer
