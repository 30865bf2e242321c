"""Which inputs the eager tape would reach, decided per call: "reached" flags in the graph.

Eagerly, ``dg.cond`` is a Python ``if`` and ``while_loop``/``fori_loop`` are Python loops:
the tape records the branch taken and the iterations run, nothing else.  So whether an
output's history reaches an input that requires grad (whether the output requires grad,
whether the input's ``.grad`` stays None after ``backward()``) can depend on the data.
A compiled function decides it per call the same way (compile/aot.py).

The rule is the eager tape's: a result depends on input ``i`` when one of its operands
does, its primitive has a VJP and it is a float; a ``cond`` result depends on what the
taken branch's result depends on; a ``while`` result on what its carry depends on after
the last iteration run (the initial carry after zero iterations).

``reach_graph`` adds the run-time part to a graph as extra bool outputs, one per (output,
input) pair known only at run time, computed by ``and``/``or``/``not`` equations on bool
scalars.  A dependency is an *atom*: ``None`` (never), ``ALWAYS``, or a frozenset of bool
Vars (it holds when one of them is true).

- a ``cond`` whose branches hold no control flow of their own keeps its equation: its
  results' flags are ``pred and <true branch's> or not pred and <false branch's>``,
  made next to it from the operands' flags;
- otherwise the branches take the operands' flags as extra operands and return the
  results' flags they compute as extra results;
- a ``while`` carries one flag per (carry, input) pair the carry may depend on (a
  fixpoint over the body), which the body updates: after zero trips they hold the
  initial carry's flags.  A pair the initial carry always has and every iteration keeps
  needs no flag.

A graph whose dependencies are all known statically (no control flow on values that
require grad) is returned unchanged.
"""
from __future__ import annotations

import numpy as np

from ..ops import primitives as P
from ..ops.registry import ShapedArray
from .ir import Eqn, Graph, Lit, Var

ALWAYS = True  # the atom of a dependency that holds on every run
_BOOL = ShapedArray((), np.dtype(np.bool_))
_INSIDE = object()  # an atom that reads a flag made inside a branch


def _is_float(aval):
    return aval.dtype.kind == "f"


def _or(a, b):
    if a is None:
        return b
    if b is None or a is b:
        return a
    if a is ALWAYS or b is ALWAYS:
        return ALWAYS
    return a | b


def _merge(flags):
    """The union of ``{input bit: atom}`` dicts (the first one itself when alone)."""
    if len(flags) == 1:
        return flags[0]
    out = dict(flags[0])
    for f in flags[1:]:
        for b, a in f.items():
            out[b] = _or(out.get(b), a)
    return out


def _bits(mask):
    b = 0
    while mask:
        if mask & 1:
            yield b
        mask >>= 1
        b += 1


# ----------------------------------------------------------------------------------------
# the static over-approximation: which inputs each output may depend on
# ----------------------------------------------------------------------------------------


def may_depend(graph, masks):
    """For each output of ``graph``: the bit set (an int) of the inputs it may depend on,
    given ``masks`` ({input Var: bit set}).  Exact for a graph without control flow; a
    ``cond`` counts both branches, a ``while`` any number of trips (a fixpoint per
    carry)."""
    dep = {v: m for v, m in masks.items() if m}
    for e in graph.eqns:
        m = 0
        for x in e.inputs:
            if x.__class__ is Var:
                m |= dep.get(x, 0)
        if not m or e.prim.vjp is None:
            continue
        name = e.prim.name
        if name == "cond":
            outs = [0] * len(e.outs)
            for key in ("true_branch", "false_branch"):
                g = e.params[key]
                got = may_depend(g, {v: dep.get(x, 0) for v, x in zip(g.inputs, e.inputs[1:])
                                     if x.__class__ is Var})
                outs = [a | b for a, b in zip(outs, got)]
        elif name == "while":
            outs = _carry_masks(e, dep)
        else:
            outs = [m] * len(e.outs)
        for v, mv in zip(e.outs, outs):
            if mv and _is_float(v.aval):
                dep[v] = mv
    return [dep.get(x, 0) if x.__class__ is Var else 0 for x in graph.outputs]


def _carry_masks(e, dep):
    """What each carry of the ``while`` equation ``e`` may depend on after any number of
    trips."""
    p = e.params
    n = len(e.inputs) - p["cond_nconsts"] - p["body_nconsts"]
    body = p["body_graph"]
    get = lambda x: dep.get(x, 0) if x.__class__ is Var else 0  # noqa: E731
    carry = [get(x) for x in e.inputs[:n]]
    consts = [get(x) for x in e.inputs[n + p["cond_nconsts"]:]]
    while True:
        out = may_depend(body, dict(zip(body.inputs, carry + consts)))
        new = [a | b for a, b in zip(carry, out)]
        if new == carry:
            return carry
        carry = new


# ----------------------------------------------------------------------------------------
# the instrumented graph
# ----------------------------------------------------------------------------------------


class _Scope:
    """The equations of one graph (or sub-graph) being rebuilt, and the flag equations made
    in it (each once)."""

    def __init__(self):
        self.eqns = []
        self.memo = {}

    def bind(self, prim, *ins):
        key = (prim.name,) + ins
        v = self.memo.get(key)
        if v is None:
            v = self.memo[key] = Var(_BOOL)
            self.eqns.append(Eqn(prim, ins, {}, [v]))
        return v

    def atom(self, a):
        """The atom ``a`` as one Var: a constant, a flag, or the ``or`` of flags.  (Never
        a literal: control flow operands and results stay arrays when a ``while`` is taped
        or interpreted.)"""
        if a is None or a is ALWAYS:
            key = ("full", a is ALWAYS)
            v = self.memo.get(key)
            if v is None:
                v = self.memo[key] = Var(_BOOL)
                self.eqns.append(Eqn(P.full_p, [], {"shape": (), "value": a is ALWAYS, "dtype": _BOOL.dtype},
                                     [v]))
            return v
        vs = sorted(a, key=lambda v: v.id)
        out = vs[0]
        for v in vs[1:]:
            out = self.bind(P.or_p, out, v)
        return out

    def select(self, pred, t, f):
        """The atom ``t if pred else f`` (``pred`` a bool operand)."""
        if t == f:
            return t
        if pred.__class__ is Lit:
            return t if pred.value else f
        if t is ALWAYS:  # pred or (not pred and f) == pred or f
            return frozenset((pred,)) | (f or frozenset())
        if f is ALWAYS:
            return frozenset((self.bind(P.not_p, pred),)) | (t or frozenset())
        terms = []
        if t is not None:
            terms.append(self.bind(P.and_p, pred, self.atom(t)))
        if f is not None:
            terms.append(self.bind(P.and_p, self.bind(P.not_p, pred), self.atom(f)))
        return frozenset(terms)


def _flags_of(x, flags):
    return flags.get(x, {}) if x.__class__ is Var else {}


def _walk(graph, in_flags, scope):
    """Emit ``graph``'s equations into ``scope`` (control flow rebuilt to carry flags);
    return each output's ``{input bit: atom}``.  ``in_flags``: the inputs' ones."""
    flags = {v: f for v, f in zip(graph.inputs, in_flags) if f}
    for e in graph.eqns:
        fl = [flags[x] for x in e.inputs if x.__class__ is Var and x in flags]
        if not fl or e.prim.vjp is None:
            scope.eqns.append(e)
            continue
        name = e.prim.name
        if name == "cond":
            outs = _cond(e, flags, scope)
        elif name == "while":
            outs = _while(e, flags, scope)
        else:
            scope.eqns.append(e)
            outs = [_merge(fl)] * len(e.outs)
        for v, f in zip(e.outs, outs):
            if f and _is_float(v.aval):
                flags[v] = f
    return [_flags_of(x, flags) for x in graph.outputs]


def _pass_in(atoms, xs, flags):
    """Sub-graph inputs for the run-time ``atoms`` of the enclosing graph: fresh bool Vars,
    the flags of the operands ``xs`` in their terms, and the fresh Var -> atom map."""
    fresh = {a: Var(_BOOL) for a in atoms}
    in_flags = [{b: a if a is ALWAYS else frozenset((fresh[a],)) for b, a in _flags_of(x, flags).items()}
                for x in xs]
    return list(fresh.values()), in_flags, {v: a for a, v in fresh.items()}


def _runtime_atoms(xs, flags):
    return list(dict.fromkeys(a for x in xs for a in _flags_of(x, flags).values() if a is not ALWAYS))


def _outside(a, outer):
    """A branch's atom in the enclosing graph's terms (``outer``: fresh Var -> atom), or
    ``_INSIDE`` if it reads a flag the branch made."""
    if a is None or a is ALWAYS:
        return a
    out = None
    for v in a:
        o = outer.get(v)
        if o is None:
            return _INSIDE
        out = _or(out, o)
    return out


def _cond(e, flags, scope):
    pred, ops = e.inputs[0], e.inputs[1:]
    atoms = _runtime_atoms(ops, flags)
    branches = []
    for key in ("true_branch", "false_branch"):
        fresh, in_flags, outer = _pass_in(atoms, ops, flags)
        sub = _Scope()
        branches.append((key, fresh, sub, _walk(e.params[key], in_flags, sub), outer))
    (_, _, _, out_t, outer_t), (_, _, _, out_f, outer_f) = branches
    res = [{} for _ in e.outs]
    extra = []  # (result, bit): flags only the branches can compute
    for j, v in enumerate(e.outs):
        if not _is_float(v.aval):
            continue
        for b in dict.fromkeys(list(out_t[j]) + list(out_f[j])):
            t, f = _outside(out_t[j].get(b), outer_t), _outside(out_f[j].get(b), outer_f)
            if t is _INSIDE or f is _INSIDE:
                extra.append((j, b))
                continue
            a = scope.select(pred, t, f)
            if a is not None:
                res[j][b] = a
    if not extra:
        scope.eqns.append(e)
        return res
    params = dict(e.params)
    for key, fresh, sub, out, _ in branches:
        g = e.params[key]
        more = [sub.atom(out[j].get(b)) for j, b in extra]
        params[key] = Graph(g.inputs + fresh, sub.eqns, g.outputs + more)
    new = [Var(_BOOL) for _ in extra]
    scope.eqns.append(Eqn(e.prim, e.inputs + [scope.atom(a) for a in atoms], params, e.outs + new,
                          e.source))
    for (j, b), v in zip(extra, new):
        res[j][b] = frozenset((v,))
    return res


def _while(e, flags, scope):
    p = e.params
    nc, nb = p["cond_nconsts"], p["body_nconsts"]
    n = len(e.inputs) - nc - nb
    carry, cc, bc = e.inputs[:n], e.inputs[n:n + nc], e.inputs[n + nc:]
    dep = {}
    for x in carry + bc:
        if x.__class__ is Var and x in flags:
            dep[x] = sum(1 << b for b in flags[x])
    pairs = [(c, b) for c, m in enumerate(_carry_masks(e, dep)) for b in _bits(m)]
    if not pairs:
        scope.eqns.append(e)
        return [{} for _ in e.outs]
    init = {(c, b): _flags_of(carry[c], flags).get(b) for c, b in pairs}
    atoms = _runtime_atoms(bc, flags)
    body = p["body_graph"]
    # a pair the initial carry always has and every iteration keeps needs no flag: assume
    # it of all such pairs, and drop the assumption where the body breaks it
    always = {q for q in pairs if init[q] is ALWAYS}
    while True:
        carried = [q for q in pairs if q not in always]
        fresh_c = {q: Var(_BOOL) for q in carried}
        fresh_b, in_b, _ = _pass_in(atoms, bc, flags)
        in_c = [{} for _ in carry]
        for c, b in pairs:
            in_c[c][b] = ALWAYS if (c, b) in always else frozenset((fresh_c[(c, b)],))
        sub = _Scope()
        out = _walk(body, in_c + in_b, sub)
        broken = {(c, b) for c, b in always if out[c].get(b) is not ALWAYS}
        if not broken:
            break
        always -= broken
    for c in range(n):
        for b in out[c]:
            if (c, b) not in init:  # the fixpoint covers every flag the body makes
                raise AssertionError(f"reach: while carry {c} reaches input {b} outside its fixpoint")
    res = [{} for _ in e.outs]
    for c, b in always:
        res[c][b] = ALWAYS
    if not carried:
        scope.eqns.append(e)
        return res
    ins = (carry + [scope.atom(init[q]) for q in carried] + cc + bc
           + [scope.atom(a) for a in atoms])
    new_body = Graph(body.inputs[:n] + list(fresh_c.values()) + body.inputs[n:] + fresh_b, sub.eqns,
                     body.outputs + [sub.atom(out[c].get(b)) for c, b in carried])
    cg = p["cond_graph"]
    new_cond = Graph(cg.inputs[:n] + [Var(_BOOL) for _ in carried] + cg.inputs[n:], cg.eqns, cg.outputs)
    new = [Var(_BOOL) for _ in carried]
    scope.eqns.append(Eqn(e.prim, ins, dict(p, cond_graph=new_cond, body_graph=new_body,
                                             body_nconsts=nb + len(atoms)), e.outs + new, e.source))
    for (c, b), v in zip(carried, new):
        res[c][b] = frozenset((v,))
    return res


class Reach:
    """Per output ``k`` of the graph ``reach_graph`` was given: ``static[k]``, the bit set
    of the inputs it depends on on every run, and ``dynamic[k]``, ``(input, flag)`` pairs:
    it depends on the input when that flag (the ``flag``-th extra output) is true.
    ``n_flags`` extra outputs follow the graph's own."""

    def __init__(self, static, dynamic, n_flags):
        self.static = tuple(static)
        self.dynamic = tuple(dynamic)
        self.n_flags = n_flags

    def may(self):
        """Per output: the bit set of the inputs it may depend on."""
        return [s | sum(1 << b for b, _ in d) for s, d in zip(self.static, self.dynamic)]

    def deps(self, flags):
        """Per output: the bit set of the inputs it depends on, given the flags' values."""
        return tuple(s | sum(1 << b for b, f in d if flags[f]) for s, d in zip(self.static, self.dynamic))


def reach_graph(graph, rg_inputs):
    """``(graph', Reach)``: ``graph'`` is ``graph`` computing, after its outputs, the flags
    of the (output, input in ``rg_inputs``) dependencies known only at run time (the bit
    of input ``i`` is ``1 << i``); ``graph`` itself when there are none."""
    rg = set(rg_inputs)
    scope = _Scope()
    outs = _walk(graph, [{i: ALWAYS} if i in rg else {} for i in range(len(graph.inputs))], scope)
    flags = {}
    static, dynamic = [], []
    for f in outs:
        s, d = 0, []
        for b, a in sorted(f.items()):
            if a is ALWAYS:
                s |= 1 << b
            else:
                d.append((b, flags.setdefault(scope.atom(a), len(flags))))
        static.append(s)
        dynamic.append(tuple(d))
    reach = Reach(static, dynamic, len(flags))
    if not flags:
        return graph, reach
    return Graph(graph.inputs, scope.eqns, list(graph.outputs) + list(flags)), reach
