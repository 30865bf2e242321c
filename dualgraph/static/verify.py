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
            _check_read(x, bound, lambda: f"{where}: `{_fmt(eqn)}`")  # noqa: B023 - called at once
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
        raise VerifyError(f"{reader()} reads {x!r}, which is neither Var nor Lit")


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