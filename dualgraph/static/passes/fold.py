"""Constant folding.

An equation whose operands are all known (literals, ``const`` equations, or outputs of
equations folded before it) is evaluated at compile time with the registry's numpy
implementation (``prim.impl``), the same code the interpreter runs, so folded values are
bit-for-bit what the graph would compute.  A known value stays symbolic (``_Known``)
until an equation that is not folded reads it; only then is it materialised:

* as a ``Lit`` when it is 0-d and the reader's other array operands have its exact dtype
  (a Python scalar then converts back to the same value of the same dtype, and the
  reader's shape rule is checked to give the same output types), unless the reader is in
  ``literal_ok``;
* otherwise as a ``full`` equation (every element the same) or a ``const`` equation,
  keeping the dtype and the source line of the equation it replaces.

Not folded: ``while`` (it may run long or forever) and other higher-order primitives;
results with a dimension known only at run time; results larger than
``MAX_FOLD_SIZE`` elements (folding would bloat the graph); equations whose
implementation raises (the error stays where it happens at run time).  A ``cond`` whose
predicate is known is replaced by the taken branch, inlined.

    >>> g = dg.trace(lambda x: x * (dg.ones(()) * 3), dg.ones(2))
    >>> print(fold(g))
    { lambda a:f32[2] .
      let b:f32[2] = mul a 3.0
      in (b) }
"""
from __future__ import annotations

import numpy as np

from ...ops.primitives import full_p
from ...ops.registry import ShapedArray
from ..ir import Graph, Lit, Var, rule_avals
from ...ops.primitives import const_p
from .rewrite import SubGraphs, rebuild, results, run_into

MAX_FOLD_SIZE = 1 << 16

# A primitive whose implementation takes another path for a Python-number operand than for
# a 0-d array of the same value and dtype declares ``literal_ok=False`` in the registry: a
# known operand is not made a literal for it (``x ** 3`` multiplies, ``x ** array(3.0)``
# calls np.power: they round differently).


class _Known:
    """A value known at compile time (a numpy array) and, once materialised, its Var."""

    __slots__ = ("origin", "value", "var")

    def __init__(self, value, origin=None):
        self.value = value
        self.origin = origin  # the equation it comes from (for its source line)
        self.var = None


def fold(graph: Graph) -> Graph:
    """Evaluate the equations whose operands are all constants (recursing into cond/while)."""
    return _Fold().subs.graph(graph)


class _Fold:
    def __init__(self):
        self.subs = SubGraphs(self.run)

    def run(self, graph):
        def finish(em, outs):
            return [self.materialize(em, o) if isinstance(o, _Known) else o for o in outs]

        return rebuild(graph, self.eval_eqn, finish)

    # -- evaluation ------------------------------------------------------------------
    def eval_eqn(self, em, eqn, ins):
        rule = FOLD_RULES.get(eqn.prim.name)
        if rule is not None:
            done = rule(self, em, eqn, ins)
            if done is not None:
                return done
        if not eqn.prim.higher_order and all(isinstance(x, (Lit, _Known)) for x in ins):
            value = _evaluate(eqn, ins)
            if value is not None:
                return _Known(value, eqn)
        return self.emit(em, eqn, ins)

    def emit(self, em, eqn, ins):
        params = self.subs.params(eqn)
        if any(isinstance(x, _Known) for x in ins):
            ins = self.operands(em, eqn, ins, params)
        return results(eqn, em.emit(eqn, ins, params))

    # -- materialisation -------------------------------------------------------------
    def operands(self, em, eqn, ins, params):
        """Atoms for ``ins`` read by ``eqn``, which is not folded."""
        if not eqn.prim.higher_order and eqn.prim.literal_ok:
            lits = [_as_lit(x, ins) if isinstance(x, _Known) else x for x in ins]
            if all(x is not None for x in lits) and _same_types(eqn, lits, params):
                return lits
        return [self.materialize(em, x) if isinstance(x, _Known) else x for x in ins]

    def materialize(self, em, k):
        if k.var is None:
            value = k.value
            aval = ShapedArray(value.shape, value.dtype)
            src = k.origin.source if k.origin is not None else None
            if k.origin is not None and k.origin.prim.name in ("const", "full") and not k.origin.inputs:
                k.var = em.emit(k.origin, [])[0]  # as it was written
            elif value.size > 1 and _uniform(value):
                params = {"shape": value.shape, "value": value.flat[0].item(), "dtype": value.dtype}
                k.var = em.emit_prim(full_p, [], params, aval, src)
            else:
                k.var = em.emit_prim(const_p, [], {"value": value}, aval, src)
        return k.var


def _evaluate(eqn, ins):
    """``eqn``'s output value, or None if it should not be folded."""
    aval = eqn.outs[0].aval if len(eqn.outs) == 1 else None
    if aval is None or eqn.prim.impl is None or None in aval.shape or aval.size > MAX_FOLD_SIZE:
        return None
    if eqn.prim.name == "const":
        return eqn.params["value"]
    args = [x.value for x in ins]  # a literal's Python scalar or a known array
    try:
        with np.errstate(all="ignore"):
            out = eqn.prim.impl(*args, **eqn.params)
    except Exception:  # noqa: BLE001 - left to fail at run time, where it is reported
        return None
    out = np.asarray(out)
    if out.shape != aval.shape or out.dtype != aval.dtype:
        return None
    return np.array(out, copy=True)  # owned and writeable, not a view of an operand


def _as_lit(k, ins):
    """``k`` as a literal for a reader whose operands are ``ins``, if that is exact."""
    v = k.value
    if v.ndim != 0:
        return None
    others = [x.aval.dtype if isinstance(x, Var) else x.value.dtype for x in ins
              if isinstance(x, (Var, _Known)) and x is not k]
    if not others or any(d != v.dtype for d in others):
        return None
    return Lit(v.item())


def _same_types(eqn, ins, params):
    try:
        got = rule_avals(eqn.prim, ins, params)
    except Exception:  # noqa: BLE001
        return False
    return got == [v.aval for v in eqn.outs]


def _uniform(value):
    first = np.full(value.shape, value.flat[0], value.dtype)
    return first.tobytes() == np.ascontiguousarray(value).tobytes()


# -- per-primitive rules: (pass, emitter, eqn, ins) -> outputs, or None for the default
def _fold_cond(self, em, eqn, ins):
    pred = ins[0]
    if isinstance(pred, Lit):
        pred = _Known(np.asarray(pred.value))
    if not isinstance(pred, _Known):
        return None
    branch = eqn.params["true_branch" if bool(pred.value) else "false_branch"]
    outs = run_into(em, branch, ins[1:], self.eval_eqn)
    # a literal result would be weakly typed where the cond's output is not
    outs = [_Known(np.asarray(o.value, v.aval.dtype)) if isinstance(o, Lit) else o
            for o, v in zip(outs, eqn.outs)]
    return tuple(outs)


FOLD_RULES = {"cond": _fold_cond}
