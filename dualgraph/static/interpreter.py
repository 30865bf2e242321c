"""The reference interpreter: evaluates a Graph by binding each equation's primitive.

Run on eager tensors, every ``bind`` evaluates the registry's numpy implementation (and
records the tape when inputs require grad, so interpreted graphs are differentiable);
run under a trace, the same loop re-emits the graph into the enclosing trace.
"""
from __future__ import annotations

import numpy as np

from ..eager.tensor import Tensor
from ..ops.registry import bind
from .ir import pp_eqn, _Namer, run
from .tree import tree_unflatten


class GraphExecutionError(RuntimeError):
    """An equation failed while a graph ran; the message names it and its source line."""


def _eval_eqn(eqn, ins):
    try:
        return bind(eqn.prim, *ins, **eqn.params)
    except GraphExecutionError as e:
        # failed inside a sub-graph: say which cond/while it ran in
        raise GraphExecutionError(f"{e}\n  inside `{_headline(eqn)}`{_where(eqn)}") from e.__cause__
    except Exception as e:  # noqa: BLE001 - re-raised with the equation named
        raise GraphExecutionError(
            f"while executing `{_headline(eqn)}`{_where(eqn)}: {type(e).__name__}: {e}"
        ) from e


def _headline(eqn):
    return pp_eqn(eqn, _Namer()).strip().splitlines()[0]


def _where(eqn):
    return f" (traced from {eqn.source})" if eqn.source else ""


def eval_graph(graph, args):
    """Evaluate ``graph`` on a flat list of Tensors; returns a flat list of Tensors."""
    outs = run(graph, list(args), _eval_eqn)
    return [o if isinstance(o, Tensor) else Tensor._make(np.asarray(o)) for o in outs]


def call_graph(graph, args):
    """``graph(*args)``: check the arguments against the graph's input types, run, and
    rebuild the traced function's result structure."""
    if len(args) != len(graph.inputs):
        raise TypeError(f"graph takes {len(graph.inputs)} tensor arguments, got {len(args)}")
    tensors = []
    for i, (a, v) in enumerate(zip(args, graph.inputs)):
        if isinstance(a, Tensor):
            t = a
        elif isinstance(a, (np.ndarray, np.generic)):
            t = Tensor(a)  # arrays keep their dtype, like Tensors: checked below
        else:
            # Python numbers and lists take the input's dtype if that keeps their kind (an
            # int for a float input; not a float for an int input: it would be truncated)
            t = Tensor(a)
            if np.can_cast(t.dtype, v.aval.dtype, casting="same_kind"):
                t = Tensor(a, dtype=v.aval.dtype)
        if tuple(t.shape) != v.aval.shape or t.dtype != v.aval.dtype:
            raise TypeError(
                f"graph argument {i}: expected {v.aval.str_short()}, got "
                f"{type(v.aval)(t.shape, t.dtype).str_short()} (retrace for other shapes or dtypes)"
            )
        tensors.append(t)
    outs = eval_graph(graph, tensors)
    if graph.out_tree is None:
        return outs[0] if len(outs) == 1 else tuple(outs)
    return tree_unflatten(graph.out_tree, outs)
