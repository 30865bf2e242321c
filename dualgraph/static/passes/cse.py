"""Common-subexpression elimination.

Every primitive is pure, so two equations applying the same primitive with the same
params to the same operands compute the same values: the second is replaced by the
first's outputs.  The key of an equation is its primitive, its operands (new-graph Vars
by identity, literals by type and exact bits: ``0.0`` and ``-0.0`` differ) and its
params:

* array params (the ``value`` of a ``const``) are equal if they are bit-for-bit equal
  arrays of the same dtype and shape, for arrays of at most ``SMALL_ARRAY`` elements;
  larger arrays only if they are the same object;
* sub-graph params (``cond`` branches, ``while`` bodies) are equal if alpha-equivalent
  (the same equations up to renaming), after CSE has run inside them;
* an equation with a param that has no key is never merged.

    >>> g = dg.trace(lambda x: (x * 2) + (x * 2), dg.ones(3))
    >>> print(cse(g))
    { lambda a:f32[3] .
      let b:f32[3] = mul a 2
          c:f32[3] = add b b
      in (c) }
"""
from __future__ import annotations

from ..ir import Graph, Lit
from .rewrite import SubGraphs, Unhashable, lit_key, params_key, rebuild, results


def cse(graph: Graph) -> Graph:
    """Merge equations that compute the same values (recursing into cond/while)."""
    return _CSE().subs.graph(graph)


class _CSE:
    def __init__(self):
        self.subs = SubGraphs(self.run)
        self.graph_keys = {}

    def run(self, graph):
        seen = {}  # key -> outputs of the first equation with that key

        def eval_eqn(em, eqn, ins):
            params = self.subs.params(eqn)
            try:
                key = (
                    eqn.prim.name,
                    tuple(lit_key(x.value) if isinstance(x, Lit) else x for x in ins),
                    params_key(params, self.graph_keys),
                )
            except Unhashable:
                key = None
            if key is not None:
                hit = seen.get(key)
                if hit is not None:
                    return results(eqn, hit)
            outs = em.emit(eqn, ins, params)
            if key is not None:
                seen[key] = outs
            return results(eqn, outs)

        return rebuild(graph, eval_eqn)
