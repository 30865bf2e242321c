"""IR autodiff: reverse mode over graphs, producing a backward graph.

The backward graph is what the tape's VJP rules (the registry's, written in dualgraph
ops) emit when the forward graph is re-run under a trace with grad-requiring inputs:
``vjp_graph(g)`` traces ``(inputs, cotangents) -> (outputs, input cotangents)``.
``cond`` differentiates into a ``cond`` of the branches' VJPs and ``while`` into a
taped forward replay and a reverse loop (control_flow.py).
"""
from __future__ import annotations

import numpy as np

from ..eager import autograd, grad_mode
from ..ops import primitives as P
from .interpreter import eval_graph
from .tracer import trace_function


def _is_float(aval):
    return np.issubdtype(aval.dtype, np.floating)


def eval_with_vjp(graph, xs, wrt, cts):
    """Run ``graph`` on ``xs`` taping ``xs[i] for i in wrt``, then pull back ``cts``.

    ``cts`` holds one cotangent per graph output (None: no cotangent).  Returns the
    outputs and the cotangents of ``xs[i] for i in wrt``, zeros where the outputs do not
    depend on an input.  The pull-back is itself recorded (``create_graph``), so under a
    trace it becomes backward equations.  The VJPs of graphs, cond branches and while
    bodies all use this."""
    xs = list(xs)
    for i in wrt:
        xs[i] = xs[i]._untaped().requires_grad_()
    with grad_mode.enable_grad():
        ys = eval_graph(graph, xs)
    pairs = [(y, c) for y, c in zip(ys, cts) if c is not None and y.requires_grad]
    targets = [xs[i] for i in wrt]
    if pairs and targets:
        gs = autograd.grad([y for y, _ in pairs], targets, [c for _, c in pairs],
                           create_graph=True, allow_unused=True)
    else:
        gs = [None] * len(targets)
    return ys, [g if g is not None else P.zeros(t.shape, t.dtype) for g, t in zip(gs, targets)]


def vjp_graph(graph, wrt=None, ct_outputs=None):
    """The backward graph of ``graph``.

    Its inputs are the forward inputs followed by one cotangent per float output (or per
    output listed in ``ct_outputs``); its outputs are the forward outputs followed by the
    cotangent of each input listed in ``wrt`` (default: every float input).  Zero
    cotangents stand for inputs the outputs do not depend on.
    """
    n_in = len(graph.inputs)
    wrt = [i for i, v in enumerate(graph.inputs) if _is_float(v.aval)] if wrt is None else list(wrt)
    float_outs = ([k for k, v in enumerate(graph.outputs) if _is_float(v.aval)]
                  if ct_outputs is None else list(ct_outputs))

    def fwd_bwd(*args):
        cts = [None] * len(graph.outputs)
        for k, c in zip(float_outs, args[n_in:]):
            cts[k] = c
        ys, gs = eval_with_vjp(graph, args[:n_in], wrt, cts)
        return tuple(y._untaped() for y in ys) + tuple(g._untaped() for g in gs)

    in_avals = graph.in_avals + [graph.outputs[k].aval for k in float_outs]
    bwd, captures = trace_function(fwd_bwd, in_avals)
    assert not captures
    return bwd.replace(in_tree=None, out_tree=None)


def grad_graph(graph, argnums=0):
    """For a graph with one scalar float output: a graph ``inputs -> (value, grads...)``."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if len(graph.outputs) != 1 or graph.outputs[0].aval.shape != () or not _is_float(graph.outputs[0].aval):
        raise TypeError(
            "grad_graph needs a graph with one scalar float output, got outputs "
            + ", ".join(v.aval.str_short() for v in graph.outputs)
        )
    bwd = vjp_graph(graph, wrt=nums)

    def value_and_grads(*xs):
        one = P.full(shape=(), value=1, dtype=graph.outputs[0].aval.dtype)
        return tuple(eval_graph(bwd, list(xs) + [one]))

    g, captures = trace_function(value_and_grads, graph.in_avals)
    assert not captures
    return g.replace(in_tree=None, out_tree=None)
