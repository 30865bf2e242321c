"""The IR verifier: run after every pass in the tests.

Checks that a graph is closed and in single-assignment form, that every equation's output
types are what the registry's shape rule computes from its input types, and that the
sub-graphs of ``cond`` and ``while`` have the signatures their equation implies.
"""
from __future__ import annotations

import numpy as np

from ..ops.registry import ShapedArray
from .ir import Graph, Lit, Var, pp_eqn, rule_avals, _Namer


class VerifyError(Exception):
    """The graph is malformed; the message names the equation and what is wrong."""


def _fmt(eqn):
    return pp_eqn(eqn, _Namer()).strip().splitlines()[0]


def _src(eqn):
    return f" (traced from {eqn.source})" if eqn.source else ""


def _avals(xs):
    return [x.aval for x in xs]


def _sig(avals):
    return "(" + ", ".join(a.str_short() for a in avals) + ")"


def verify(graph: Graph) -> Graph:
    """Raise ``VerifyError`` if ``graph`` is malformed; return it unchanged otherwise."""
    _verify(graph, "graph")
    return graph


def _verify(graph, where):
    bound = set()
    for v in graph.inputs:
        if not isinstance(v, Var):
            raise VerifyError(f"{where}: input {v!r} is not a Var")
        if v in bound:
            raise VerifyError(f"{where}: input {v!r} bound twice")
        bound.add(v)
    for eqn in graph.eqns:
        for x in eqn.inputs:
            _check_read(x, bound, lambda: f"{where}: `{_fmt(eqn)}`{_src(eqn)}")  # noqa: B023 - called at once
        for v in eqn.outs:
            if not isinstance(v, Var):
                raise VerifyError(f"{where}: {eqn.prim.name} binds {v!r}, which is not a Var")
        _check_types(eqn, where)
        for name, sub in eqn.params.items():
            if isinstance(sub, Graph):
                _verify(sub, f"{where} / {eqn.prim.name}.{name}")
        _check_subgraphs(eqn, where)
        for v in eqn.outs:
            if v in bound:
                raise VerifyError(f"{where}: `{_fmt(eqn)}` assigns {v!r} a second time")
            bound.add(v)
    for x in graph.outputs:
        _check_read(x, bound, lambda: f"{where}: the output")


def _check_read(x, bound, reader):
    """``x``, read by ``reader()`` (formatted only for an error), is a Var bound before
    it or a Lit."""
    if isinstance(x, Var):
        if x not in bound:
            raise VerifyError(f"{reader()} reads {x!r}, which is not bound before it")
    elif not isinstance(x, Lit):
        raise VerifyError(
            f"{reader()} reads a raw {type(x).__name__} operand ({_short(x)}), which is neither a "
            "Var nor a Lit: an operand is a Var, or a Lit holding a Python or numpy scalar"
        )
    elif not isinstance(x.value, LIT_TYPES):
        raise VerifyError(
            f"{reader()} reads a Lit whose value is of type {type(x.value).__name__} ({_short(x.value)}): a "
            "Lit holds a Python or numpy scalar; an array is a graph constant (a `const` "
            "equation) or an input"
        )


# what a Lit may hold: a scalar, never an array (not even a 0-d one)
LIT_TYPES = (bool, int, float, complex, np.generic)


def _short(x):
    if isinstance(x, np.ndarray):
        return f"array {ShapedArray(x.shape, x.dtype).str_short()}"
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_types(eqn, where):
    prim = eqn.prim
    try:
        expected = rule_avals(prim, eqn.inputs, eqn.params)
    except Exception as e:  # noqa: BLE001
        raise VerifyError(f"{where}: `{_fmt(eqn)}`: the shape rule rejects its inputs: {e}") from e
    got = _avals(eqn.outs)
    if len(expected) != len(got) or any(
        not isinstance(e, ShapedArray) or e != g for e, g in zip(expected, got)
    ):
        raise VerifyError(
            f"{where}: `{_fmt(eqn)}` outputs {_sig(got)} but {prim.name}'s rule gives {_sig(expected)}"
        )


def _check_subgraphs(eqn, where):
    """A higher-order primitive checks its sub-graphs against its operands and results
    (its registry entry's ``type_check``)."""
    check = eqn.prim.type_check
    if check is None:
        return
    msg = check(_avals(eqn.inputs), _avals(eqn.outs), eqn.params)
    if msg is not None:
        raise VerifyError(f"{where}: `{_fmt(eqn)}`: {msg}")