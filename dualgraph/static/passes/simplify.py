"""Algebraic simplification: a table of rewrite rules (tinygrad's ``PatternMatcher`` style).

A rule is a pattern over an equation and its operands' producers, and a function of the
matched atoms that returns a replacement (an existing Var, or one it emits), or None to
decline.  Every replacement is checked to have exactly the type of the output it
replaces (shape AND dtype): that is what keeps ``x + 0`` for an int ``x`` and a float
``0.0`` (a float result), or ``x * ones((2, 3))`` for an ``x`` of shape ``(3,)`` (a
broadcast), as they are.  Literals are never substituted for a Var (a weakly typed
literal would change the dtype of the reader).

Semantics: every rewrite is exact for every value, inf, nan and signed zeros included.
``x * 1``, ``x / 1``, ``-(-x)``, transposes, reshapes, broadcasts and same-dtype converts
always are.  ``x * 0`` is rewritten to zeros only for integer and bool results: for
floats ``inf * 0`` and ``nan * 0`` are nan.  For float ``x``, ``x + 0`` is kept (``-0.0 +
0.0`` is ``+0.0``, and ``1 / x`` then tells them apart: -inf vs inf); ``x + (-0.0)`` and
``x - 0.0`` are the exact identities and are rewritten (unlike XLA, which also rewrites
``x + 0.0``).

    >>> from dualgraph.static.passes import dce, simplify
    >>> g = dg.trace(lambda x: (x * 1 - 0).sum(), dg.ones(3))
    >>> print(dce(simplify(g)))
    { lambda a:f32[3] .
      let b:f32[] = reduce_sum[axes=(0,) keepdims=False] a
      in (b) }
"""
from __future__ import annotations

import numpy as np

from ...ops import primitives as P
from ..ir import Eqn, Graph, Var, rule_avals
from .rewrite import SubGraphs, constant_value, rebuild, results

_ANY = object()


class Pat:
    """Matches an atom: ``op`` names the primitive that produced it (None: any atom),
    ``src`` the patterns of that equation's operands, ``const`` a value every element of
    a constant operand must equal, ``name`` the keyword the atom is passed as."""

    __slots__ = ("const", "name", "op", "src")

    def __init__(self, op=None, src=None, *, const=_ANY, name=None):
        self.op = op
        self.src = src
        self.const = const
        self.name = name

    def __repr__(self):
        if self.op is None:
            return f"{self.name or ''}{'' if self.const is _ANY else f'={self.const}'}"
        return f"{self.op}({', '.join(map(repr, self.src or ()))})"


def X(name="x"):
    return Pat(name=name)


def C(value, name=None):
    return Pat(const=value, name=name)


# -- the rewrites: f(ctx, eqn, **matched) -> replacement Var or None -----------------------


def _first(ctx, eqn, x):
    return x


def _is_float(aval):
    return aval.dtype.kind in "fc"


def _add_zero(ctx, eqn, x, zero):
    # x + (-0.0) is x for every float x; x + (+0.0) turns -0.0 into +0.0
    if _is_float(eqn.outs[0].aval) and not np.all(np.signbit(ctx.value(zero))):
        return None
    return x


def _sub_zero(ctx, eqn, x, zero):
    # x - (+0.0) is x for every float x; x - (-0.0) turns -0.0 into +0.0
    if _is_float(eqn.outs[0].aval) and np.any(np.signbit(ctx.value(zero))):
        return None
    return x


def _zeros(ctx, eqn, x):
    out = eqn.outs[0].aval
    if out.dtype.kind not in "iub" or x.aval.dtype.kind not in "iub":
        return None  # inf * 0 and nan * 0 are nan
    return ctx.emit(P.full_p, [], {"shape": out.shape, "value": 0, "dtype": out.dtype})


def _transpose_transpose(ctx, eqn, t, x):
    inner = ctx.producer(t).params["perm"]
    outer = eqn.params["perm"]
    perm = tuple(inner[p] for p in outer)
    if perm == tuple(range(len(perm))):
        return x
    return ctx.emit(P.transpose_p, [x], {"perm": perm})


def _identity_perm(ctx, eqn, x):
    perm = eqn.params["perm"]
    return x if tuple(perm) == tuple(range(len(perm))) else None


def _reshape_reshape(ctx, eqn, r, x):
    shape = eqn.params["shape"]
    if tuple(shape) == x.aval.shape:
        return x
    return ctx.emit(P.reshape_p, [x], {"shape": shape})


def _broadcast_broadcast(ctx, eqn, b, x):
    return ctx.emit(P.broadcast_to_p, [x], {"shape": eqn.params["shape"]})


def _same_type(ctx, eqn, x):
    return x  # the result check keeps only the cases where x already has the output type


def _commute(op, a, b, fn):
    """The rule for ``op(a, b)`` and ``op(b, a)``."""
    return [(Pat(op, (a, b)), fn), (Pat(op, (b, a)), fn)]


# The table.  Order matters only among rules for the same primitive: the first match wins.
RULES = [
    *_commute("mul", X(), C(1), _first),
    *_commute("mul", X(), C(0), _zeros),
    *_commute("add", X(), C(0, "zero"), _add_zero),
    (Pat("sub", (X(), C(0, "zero"))), _sub_zero),
    (Pat("div", (X(), C(1))), _first),
    (Pat("pow", (X(), C(1))), _first),
    (Pat("neg", (Pat("neg", (X(),)),)), _first),
    (Pat("transpose", (Pat("transpose", (X(),), name="t"),)), _transpose_transpose),
    (Pat("transpose", (X(),)), _identity_perm),
    (Pat("reshape", (Pat("reshape", (X(),), name="r"),)), _reshape_reshape),
    (Pat("reshape", (X(),)), _same_type),
    (Pat("broadcast_to", (Pat("broadcast_to", (X(),), name="b"),)), _broadcast_broadcast),
    (Pat("broadcast_to", (X(),)), _same_type),
    (Pat("convert", (X(),)), _same_type),
]


class PatternMatcher:
    """Rules indexed by the primitive at the root of their pattern."""

    def __init__(self, rules):
        self.by_op = {}
        for pat, fn in rules:
            self.by_op.setdefault(pat.op, []).append((pat, fn))

    def rewrite(self, ctx, eqn, ins):
        """The first accepted replacement of ``eqn`` (operands ``ins``), or None."""
        for pat, fn in self.by_op.get(eqn.prim.name, ()):
            bound = {}
            if len(pat.src) != len(ins):
                continue
            if not all(_match(ctx, p, x, bound) for p, x in zip(pat.src, ins)):
                continue
            out = fn(ctx, eqn, **bound)
            if out is not None and isinstance(out, Var) and out.aval == eqn.outs[0].aval:
                return out
        return None


def _match(ctx, pat, x, bound):
    if pat.const is not _ANY:
        value = constant_value(x, ctx.producers)
        if value is None or not np.all(value == pat.const):
            return False
    if pat.op is not None:
        eqn = ctx.producers.get(x) if isinstance(x, Var) else None
        if eqn is None or eqn.prim.name != pat.op or len(eqn.inputs) != len(pat.src):
            return False
        if not all(_match(ctx, p, y, bound) for p, y in zip(pat.src, eqn.inputs)):
            return False
    if pat.name is not None:
        if pat.name in bound and bound[pat.name] is not x:
            return False
        bound[pat.name] = x
    return True


MATCHER = PatternMatcher(RULES)


def simplify(graph: Graph, matcher: PatternMatcher = MATCHER) -> Graph:
    """Apply the rewrite rules (recursing into cond/while)."""
    return _Simplify(matcher).subs.graph(graph)


class _Context:
    """What a rule sees: the producers of the new graph's Vars, and ``emit``."""

    def __init__(self, simp, em, source):
        self.simp = simp
        self.em = em
        self.producers = simp.producers
        self.source = source

    def producer(self, var):
        return self.producers[var]

    def value(self, atom):
        """The value of a constant operand (a literal, ``const`` or ``full``)."""
        return constant_value(atom, self.producers)

    def emit(self, prim, inputs, params):
        """A new equation (itself simplified); returns its output Var."""
        eqn = Eqn(prim, inputs, params, [Var(a) for a in rule_avals(prim, inputs, params)], self.source)
        return self.simp.eval_eqn(self.em, eqn, inputs)


class _Simplify:
    def __init__(self, matcher):
        self.matcher = matcher
        self.subs = SubGraphs(self.run)
        self.producers = {}  # new Var -> the new equation binding it

    def run(self, graph):
        return rebuild(graph, self.eval_eqn)

    def eval_eqn(self, em, eqn, ins):
        if not eqn.prim.multiple_results:
            out = self.matcher.rewrite(_Context(self, em, eqn.source), eqn, ins)
            if out is not None:
                return out
        outs = em.emit(eqn, ins, self.subs.params(eqn))
        for v in outs:
            self.producers[v] = em.eqns[-1]
        return results(eqn, outs)
