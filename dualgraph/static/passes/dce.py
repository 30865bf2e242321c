"""Dead-code elimination.

Liveness flows from the outputs back to the inputs, so this pass first walks the
equations backwards (an analysis: which outputs of each equation are used, and which of
its inputs that makes live), then rebuilds the graph with the shared forward loop,
emitting only the live equations.  Per-primitive rules (``DCE_RULES``, like JAX's
``dce_rules``) decide what a used output needs; the default keeps an equation whole if
any of its outputs is used.  All primitives are pure, so an equation none of whose
outputs is used is dropped -- a ``while`` loop too (its non-termination is not treated as
an effect, as in JAX).

``cond`` drops the outputs nobody uses from both branches and then the operands neither
branch reads.  ``while`` drops the carries that neither the loop predicate nor any used
carry depends on (a fixpoint over the body), and the constants its pruned predicate
and body no longer read.

    >>> g = dg.trace(lambda x: (x * 2, x + 1)[0], dg.ones(3))  # the add is dead
    >>> print(dce(g))
    { lambda a:f32[3] .
      let b:f32[3] = mul a 2
      in (b) }
"""
from __future__ import annotations

from ..ir import Graph, Var
from .rewrite import rebuild, results


class _Plan:
    """What survives of one equation: the kept input and output positions, new params."""

    __slots__ = ("keep_in", "keep_out", "params")

    def __init__(self, keep_in, keep_out, params):
        self.keep_in = keep_in
        self.keep_out = keep_out
        self.params = params


def dce(graph: Graph) -> Graph:
    """Remove the equations whose outputs are not used (recursing into cond/while)."""
    new, _ = dce_graph(graph, [True] * len(graph.outputs))
    return new


def dce_graph(graph: Graph, used_outputs):
    """DCE ``graph`` keeping only the outputs flagged in ``used_outputs``.

    Returns ``(new_graph, used_inputs)``: the new graph keeps all of ``graph``'s inputs;
    ``used_inputs`` flags those it still reads (the caller may drop the others with
    ``drop_inputs``)."""
    live = {x for x, u in zip(graph.outputs, used_outputs) if u and isinstance(x, Var)}
    plans = {}
    for eqn in reversed(graph.eqns):
        used = [v in live for v in eqn.outs]
        if not any(used):
            plans[eqn] = None  # pure: nothing needs it
            continue
        rule = DCE_RULES.get(eqn.prim.name, _default_rule)
        plan = rule(eqn, used)
        plans[eqn] = plan
        if plan is not None:
            for i in plan.keep_in:
                x = eqn.inputs[i]
                if isinstance(x, Var):
                    live.add(x)

    def eval_eqn(em, eqn, ins):
        plan = plans[eqn]
        if plan is None:
            return results(eqn, [None] * len(eqn.outs))
        kept = [eqn.outs[j] for j in plan.keep_out]
        new_eqn = eqn.replace(outs=kept)
        outs = em.emit(new_eqn, [ins[i] for i in plan.keep_in], plan.params)
        full = [None] * len(eqn.outs)
        for j, v in zip(plan.keep_out, outs):
            full[j] = v
        return results(eqn, full)

    def finish(em, outs):
        return [o for o, u in zip(outs, used_outputs) if u]

    new = rebuild(graph, eval_eqn, finish)
    used_inputs = [v in live for v in graph.inputs]
    return new, used_inputs


def drop_inputs(graph: Graph, keep) -> Graph:
    """``graph`` without the inputs not flagged in ``keep`` (which it must not read)."""
    return graph.replace(inputs=[v for v, k in zip(graph.inputs, keep) if k])


def _default_rule(eqn, used_outputs):
    return _Plan(list(range(len(eqn.inputs))), list(range(len(eqn.outs))), eqn.params)


def _dce_cond(eqn, used_outputs):
    tb, ut = dce_graph(eqn.params["true_branch"], used_outputs)
    fb, uf = dce_graph(eqn.params["false_branch"], used_outputs)
    keep_ops = [a or b for a, b in zip(ut, uf)]
    params = dict(eqn.params, true_branch=drop_inputs(tb, keep_ops), false_branch=drop_inputs(fb, keep_ops))
    keep_in = [0] + [1 + i for i, k in enumerate(keep_ops) if k]
    keep_out = [j for j, u in enumerate(used_outputs) if u]
    return _Plan(keep_in, keep_out, params)


def _dce_while(eqn, used_outputs):
    p = eqn.params
    nc, nb = p["cond_nconsts"], p["body_nconsts"]
    n = len(eqn.inputs) - nc - nb
    cg, cond_used = dce_graph(p["cond_graph"], [True])
    live = [u or c for u, c in zip(used_outputs, cond_used[:n])]
    while True:  # a carry is live if the predicate or a live carry's update reads it
        bg, body_used = dce_graph(p["body_graph"], live)
        grown = [a or b for a, b in zip(live, body_used[:n])]
        if grown == live:
            break
        live = grown
    keep_cc = cond_used[n:]
    keep_bc = body_used[n:]
    params = dict(
        p,
        cond_graph=drop_inputs(cg, live + keep_cc),
        body_graph=drop_inputs(bg, live + keep_bc),
        cond_nconsts=sum(keep_cc),
        body_nconsts=sum(keep_bc),
    )
    keep_in = (
        [i for i in range(n) if live[i]]
        + [n + k for k in range(nc) if keep_cc[k]]
        + [n + nc + k for k in range(nb) if keep_bc[k]]
    )
    keep_out = [i for i in range(n) if live[i]]
    return _Plan(keep_in, keep_out, params)


# primitive name -> rule(eqn, used_outputs) -> _Plan (at least one output is used)
DCE_RULES = {"cond": _dce_cond, "while": _dce_while}
