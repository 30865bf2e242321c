"""The runtime of converted code (autograph): what ``_ag__.if_stmt`` & co. do.

Every operator decides when it runs, from the values it is given, whether the condition
(or loop bound, or loop state) is a traced tensor -- then it stages a ``cond``/``while``
equation -- or a Python value -- then it runs exactly the Python statement it replaced.
So converted code run eagerly is the original code, and under a trace a Python ``if`` on
a Python bool leaves no trace in the graph.

Variables flow through the generated branch/body functions as arguments and results.
A variable that has no value yet is an ``Undefined`` placeholder, which raises a
precise error (the variable, why it has no value, the fix) when it is used.
"""
from __future__ import annotations

import contextlib
import operator
import sys
import threading

import numpy as np

from ..eager.tensor import Tensor
from ..ops import context as _context
from ..ops import primitives as P
from ..ops.registry import ShapedArray, bind, user_source
from .control_flow import ControlFlowError, _to_tensor, cond_p, while_loop
from .interpreter import eval_graph
from .ir import Eqn, Graph, Var
from .tracer import TracerError, trace_function
from .tree import tree_flatten, tree_unflatten


class AutographError(ControlFlowError):
    """Python control flow on tensors that cannot become a graph ``cond``/``while`` as
    written; the message names the variable, the user's line and the fix."""


def _builder():
    """The graph being built (None when running eagerly): the one place this module reads
    the active trace (this thread's)."""
    return _context.get().trace


def _captured(x):
    """``x`` is an eager tensor captured by a dg.compile trace: its in-place updates are
    effects of the compiled function (compile/effects.py), so ``x -= y`` stays in place."""
    live = getattr(_builder(), "live", None)
    return live is not None and live.tracked(x)


def is_traced(x):
    """Is ``x`` a tensor whose value is only known when the graph runs?"""
    return isinstance(x, Tensor) and not isinstance(x._value, np.ndarray)


_NUMBER = (bool, int, float, np.bool_, np.integer, np.floating)

_DISPLAY = {
    "_ag_retval": "the return value",
    "_ag_do_return": "the `return` flag",
    "_ag_item": "the loop target",
    "<expr>": "the value of the conditional expression",
    "<and>": "the value of `and`",
    "<or>": "the value of `or`",
}


def display(name):
    if name in _DISPLAY:
        return _DISPLAY[name]
    if name.startswith("_ag_break_"):
        return "the `break` flag"
    if name.startswith("_ag_continue_"):
        return "the `continue` flag"
    return f"'{name}'"


_PKG = __file__.rsplit("/", 2)[0] + "/"


def _user_frame():
    """The innermost frame outside dualgraph: the converted user code calling us."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_PKG):
        f = f.f_back
    return f or sys._getframe(1)


def _where(frame):
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def describe(v):
    if isinstance(v, Tensor):
        return f"a tensor {ShapedArray(v.shape, v.dtype).str_short()}"
    if isinstance(v, Undefined):
        return "undefined"
    if v is None:
        return "None"
    if isinstance(v, (tuple, list, dict)):
        leaves, tree = tree_flatten(v)
        return f"a {type(v).__name__} {tree!r} of ({', '.join(describe(x) for x in leaves)})"
    if isinstance(v, _NUMBER):
        return f"the Python {type(v).__name__} {v!r}"
    return f"a {type(v).__name__}"


# ----------------------------------------------------------------------------------------
# undefined variables
# ----------------------------------------------------------------------------------------


class Undefined:
    """The value of a variable that has none (yet); any use raises a precise error."""

    __slots__ = ("name", "reason", "where", "guarded")

    def __init__(self, name, reason="unbound", where=None, guarded=False):
        self.name = name
        self.reason = reason
        self.where = where
        self.guarded = guarded  # the return value: only read once the return flag is set

    def __repr__(self):
        return f"<undefined {self.name}>"

    def error(self):
        use = user_source() or "<unknown>"
        name = display(self.name)
        if self.reason == "branch":
            return AutographError(
                f"{name} is assigned in only one branch of the `if` at {self.where}, whose "
                f"condition is a traced tensor, and is used after it at {use}. Both branches of "
                "a graph cond are traced and must define the same variables. Fix: give "
                f"{name} a value before the `if` (e.g. `{self.name} = dg.zeros_like(...)`), or "
                "assign it in the other branch too."
            )
        if self.reason == "loop":
            return AutographError(
                f"{name} is first assigned inside the loop at {self.where}, which runs as a "
                f"graph `while` whose trip count is only known when it runs, and is used after "
                f"it at {use}: if the loop runs zero times it has no value. Fix: assign "
                f"{name} before the loop."
            )
        return UnboundLocalError(
            f"cannot access local variable {name} where it is not associated with a value "
            f"(at {use})"
        )

    def _fail(self, *args, **kwargs):
        raise self.error()

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        raise self.error()

    __hash__ = object.__hash__


for _m in ("add sub mul truediv floordiv mod pow matmul and or xor lshift rshift radd rsub "
           "rmul rtruediv rfloordiv rmod rpow rmatmul rand ror rxor neg pos abs invert lt le "
           "gt ge eq ne bool len iter getitem setitem call float int index contains array "
           "complex round").split():
    setattr(Undefined, f"__{_m}__", Undefined._fail)


def ld(locs, *names):
    """The current values of ``names`` (``Undefined`` for those without one)."""
    return tuple(locs[n] if n in locs else Undefined(n) for n in names)


def ret(value):
    """A function's result, checked for variables that have no value."""
    if isinstance(value, Undefined):
        raise value.error()
    if isinstance(value, (tuple, list, dict)):
        for leaf in tree_flatten(value)[0]:
            if isinstance(leaf, Undefined):
                raise leaf.error()
    return value


def undefined_return():
    return Undefined("_ag_retval", guarded=True)


# ----------------------------------------------------------------------------------------
# graph regions: where Python side effects would silently run once
# ----------------------------------------------------------------------------------------

_tls = threading.local()


def _regions():
    r = getattr(_tls, "regions", None)
    if r is None:
        r = _tls.regions = []
    return r


class _Region:
    __slots__ = ("kind", "where", "frame", "why")

    def __init__(self, kind, where, frame, why):
        self.kind = kind
        self.where = where
        self.frame = frame
        self.why = why


@contextlib.contextmanager
def _region(kind, where, frame, why):
    regions = _regions()
    regions.append(_Region(kind, where, frame, why))
    try:
        yield
    finally:
        regions.pop()


_CONTAINERS = (list, dict, set, bytearray)


def _holds(v, obj, depth):
    if v is obj:
        return True
    if depth <= 0:
        return False
    if isinstance(v, (tuple, list, set, frozenset)):
        return any(_holds(x, obj, depth - 1) for x in list(v)[:1000])
    if isinstance(v, dict):
        return any(_holds(x, obj, depth - 1) for x in list(v.values())[:1000])
    d = getattr(v, "__dict__", None)
    if isinstance(d, dict) and not isinstance(v, type) and not callable(v):
        return any(_holds(x, obj, depth - 1) for x in list(d.values())[:1000])
    return False


def _existed_before(obj, frame):
    """Was ``obj`` reachable from the frames that entered the graph region?"""
    seen_globals = set()
    f = frame
    while f is not None:
        for v in list(f.f_locals.values()):
            if _holds(v, obj, 3):
                return True
        g = f.f_globals
        if id(g) not in seen_globals:
            seen_globals.add(id(g))
            for v in list(g.values()):
                if v is obj or (isinstance(v, (list, tuple, dict)) and _holds(v, obj, 1)):
                    return True
        f = f.f_back
    return False


def mut(obj, src, method):
    """``obj`` (about to be changed in place by ``method``), after checking that this
    Python side effect is not inside a graph region."""
    regions = _regions()
    if not regions or not isinstance(obj, _CONTAINERS):
        return obj
    r = regions[-1]
    if not _existed_before(obj, r.frame):
        return obj  # made inside the region: a local of the traced body
    call = f"{src}[...] = ..." if method == "__setitem__" else f"{src}.{method}(...)"
    loop = r.kind in ("while", "for")
    body = "its body is traced once" if loop else "both of its branches are traced"
    raise AutographError(
        f"`{call}` at {user_source() or '<unknown>'} changes the Python {type(obj).__name__} "
        f"'{src}' inside the {_KIND_WORD[r.kind]} at {r.where}, which runs as a graph "
        f"{'while' if loop else 'cond'} because {r.why}: {body}, so this side effect "
        "would happen while tracing, not when the graph runs. Fix: keep the values in tensors "
        "that the loop carries (e.g. accumulate with `+` or dg.cat), or keep the loop in "
        f"Python by iterating over a Python list (e.g. `for i in list(range(n))`, the graph "
        f"then grows with n) and dg.stack('{src}') after it."
    )


_KIND_WORD = {"if": "`if`", "not": "`not`", "ifexp": "conditional expression", "and": "`and`", "or": "`or`",
              "while": "`while` loop", "for": "`for` loop"}


def _no_side_effects(side, kind, where, why):
    if side:
        names = ", ".join(f"'{n}'" for n in side)
        raise AutographError(
            f"the {_KIND_WORD[kind]} at {where} assigns the global/nonlocal variable(s) {names}, "
            f"but it runs as a graph {'while' if kind in ('while', 'for') else 'cond'} because {why}: the "
            "assignment would happen while tracing, not when the graph runs. Fix: return the "
            "value from the function instead of assigning it to an outer variable."
        )


# ----------------------------------------------------------------------------------------
# conditions
# ----------------------------------------------------------------------------------------


def _scalar_pred(pred, name):
    """A Python condition's value as a bool[] tensor: any one-element tensor is truthy as
    Python's ``bool()`` of it (nonzero), so the converted ``if x.sum():`` means the same."""
    p = _to_tensor(pred)
    if p.numel() != 1:
        raise ControlFlowError(
            f"{name}: the predicate must be a scalar, got shape {tuple(p.shape)} at {user_source()}"
        )
    if p.shape != ():
        p = P.reshape(p, shape=())
    if p.dtype != np.bool_:
        p = P.ne(p, 0)
    return p


def _pred(pred, kind, where):
    if isinstance(pred, Tensor) and pred.numel() != 1:
        raise AutographError(
            f"the condition of the {_KIND_WORD[kind]} at {where} is a tensor of shape "
            f"{tuple(pred.shape)}; a condition needs exactly one element (bool() of a tensor "
            "does too). Fix: reduce it, e.g. `(...).sum() > 0` or `(...).max() > 0`."
        )
    return _scalar_pred(pred, kind)


def _bool_operand(v, kind, where):
    if is_traced(v) and v.dtype != np.bool_:
        raise AutographError(
            f"`{kind}` at {where} has a traced operand {describe(v)}; with traced tensors "
            "`and`/`or` need boolean operands (comparisons). Fix: compare explicitly, e.g. "
            "`(x != 0)`, or use dg.where for a value."
        )
    return v


def _probe(fn, args):
    """``fn(*args)`` -> (Python truth value or None, is it traced?), without leaving its
    equations in the graph being built (they belong to a loop test not staged yet)."""
    builder = _builder()
    if builder is None:
        return bool(fn(*args)), False
    box = {}

    def run():
        v = fn(*args)
        box["traced"] = is_traced(v)
        if not box["traced"]:
            box["value"] = bool(v)
        return ()

    trace_function(run, (), parent=builder)
    return box.get("value"), box["traced"]


# ----------------------------------------------------------------------------------------
# cond
# ----------------------------------------------------------------------------------------


def _leaf_kind(x):
    if isinstance(x, Tensor):
        return "t"
    if isinstance(x, np.ndarray):
        return "a"
    if isinstance(x, _NUMBER):
        return "n"
    return "o"


def _describe_outputs(vals):
    """Per variable: ``("undef", v)`` or ``("tree", v, treedef, leaves, kinds)``; plus the
    tensor leaves, in order (the branch graph's outputs)."""
    descs, tensors = [], []
    for v in vals:
        if isinstance(v, Undefined):
            descs.append(("undef", v))
            continue
        leaves, tree = tree_flatten(v)
        kinds = []
        for j, x in enumerate(leaves):
            k = _leaf_kind(x)
            if k == "a":
                leaves[j] = x = Tensor(x)
                k = "t"
            if k == "t":
                kinds.append(("t", len(tensors)))
                tensors.append(x)
            else:
                kinds.append((k, None))
        descs.append(("tree", v, tree, leaves, kinds))
    return descs, tensors


def _num_dtype(*values):
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.dtype(np.bool_)
    if all(isinstance(v, (bool, int, np.bool_, np.integer)) for v in values):
        return np.dtype(np.int64)
    return np.dtype(np.float32)


def _weak_join(t_dtype, value):
    """The dtype of a tensor and a Python number on the other path (torch promotion)."""
    if t_dtype.kind == "b" and not isinstance(value, (bool, np.bool_)):
        return _num_dtype(value)
    if t_dtype.kind in "iu" and isinstance(value, (float, np.floating)):
        return np.dtype(np.float32)
    return t_dtype


def _mismatch(name, kind, where, a, b, fix=None):
    if name == "_ag_retval":
        what = (f"the function returns {describe(a)} on one path and {describe(b)} on another, "
                f"chosen by the `if` at {where} whose condition is a traced tensor")
        fix = fix or "return values of the same structure, shape and dtype on every path"
    else:
        what = (f"{display(name)} is {describe(a)} in the true branch and {describe(b)} in the "
                f"false branch of the {_KIND_WORD[kind]} at {where}, whose condition is a "
                "traced tensor")
        fix = fix or (f"give {display(name)} the same structure, shape and dtype on both paths "
                      "(cast with .float()/.double()/.long(), or start from dg.zeros_like(...))")
    return AutographError(f"{what}; both branches of a graph cond must agree. Fix: {fix}.")


def _merge(names, dt, df, kind, where):
    """The plan of a cond's results, per variable: ``("const", value)`` or
    ``("tree", treedef, [("static", v) | ("out", aval, src_t, src_f)])``, where a source is
    ``("t", index)``, ``("n", number)`` or ``("zero",)``."""
    plan = []
    for name, a, b in zip(names, dt, df):
        if a[0] == "undef" or b[0] == "undef":
            if a[0] == "undef" and b[0] == "undef":
                plan.append(("const", a[1]))
                continue
            u, d = (a[1], b) if a[0] == "undef" else (b[1], a)
            if not u.guarded:
                plan.append(("const", Undefined(name, "branch", where)))
                continue
            leaves = []
            for x, (k, idx) in zip(d[3], d[4]):
                if k == "o":
                    leaves.append(("static", x))
                    continue
                aval = ShapedArray(x.shape, x.dtype) if k == "t" else ShapedArray((), _num_dtype(x))
                src = ("t", idx) if k == "t" else ("n", x)
                pair = (src, ("zero",)) if a[0] == "tree" else (("zero",), src)
                leaves.append(("out", aval) + pair)
            plan.append(("tree", d[2], leaves))
            continue
        _, va, ta, la, ka = a
        _, vb, tb, lb, kb = b
        if ta != tb:
            raise _mismatch(name, kind, where, va, vb)
        leaves = []
        for xa, (k1, i1), xb, (k2, i2) in zip(la, ka, lb, kb):
            if k1 == "o" or k2 == "o":
                if xa is xb:
                    leaves.append(("static", xa))
                    continue
                raise _mismatch(name, kind, where, va, vb)
            if k1 == "n" and k2 == "n":
                if type(xa) is type(xb) and xa == xb:
                    leaves.append(("static", xa))
                else:
                    leaves.append(("out", ShapedArray((), _num_dtype(xa, xb)), ("n", xa), ("n", xb)))
                continue
            if k1 == "t" and k2 == "t":
                if xa.shape != xb.shape or xa.dtype != xb.dtype:
                    raise _mismatch(name, kind, where, va, vb)
                leaves.append(("out", ShapedArray(xa.shape, xa.dtype), ("t", i1), ("t", i2)))
                continue
            t, n = (xa, xb) if k1 == "t" else (xb, xa)
            if t.shape != ():
                raise _mismatch(
                    name, kind, where, va, vb,
                    fix=f"give {display(name)} a tensor of the same shape on both paths (e.g. "
                    "dg.full_like / dg.zeros_like instead of a Python number)")
            aval = ShapedArray((), _weak_join(np.dtype(t.dtype), n))
            sa = ("t", i1) if k1 == "t" else ("n", xa)
            sb = ("t", i2) if k2 == "t" else ("n", xb)
            leaves.append(("out", aval, sa, sb))
        plan.append(("tree", ta, leaves))
    return plan


def _finish_branch(g, srcs, where):
    """The branch graph with outputs ``srcs``: numbers become ``full`` equations, tensors
    of another dtype a ``convert``."""
    eqns, outs = list(g.eqns), []
    for aval, src in srcs:
        if src[0] == "t":
            v = g.outputs[src[1]]
            if v.aval.dtype != aval.dtype:
                nv = Var(aval)
                eqns.append(Eqn(P.convert_p, [v], {"dtype": aval.dtype}, [nv], where))
                v = nv
        else:
            value = src[1] if src[0] == "n" else 0
            value = aval.dtype.type(value).item()
            v = Var(aval)
            eqns.append(Eqn(P.full_p, [], {"shape": aval.shape, "value": value, "dtype": aval.dtype},
                            [v], where))
        outs.append(v)
    return Graph(g.inputs, eqns, outs)


def _cond(pred, fn_t, fn_f, names, kind, where, frame):
    """Stage ``fn_t() if pred else fn_f()`` (each returning one value per name) as one
    ``cond`` equation; values equal on both paths stay Python values."""
    builder = _builder()
    p = _pred(pred, kind, where)
    why = f"its condition is {describe(pred)}"
    traced = []
    for fn in (fn_t, fn_f):
        rec = {}

        def run(fn=fn, rec=rec):
            with _region(kind, where, frame, why):
                vals = tuple(fn())
            rec["descs"], tensors = _describe_outputs(vals)
            return tuple(tensors)

        g, caps = trace_function(run, (), parent=builder)
        traced.append((g, caps, rec["descs"]))
    (g_t, caps_t, d_t), (g_f, caps_f, d_f) = traced
    plan = _merge(names, d_t, d_f, kind, where)
    srcs_t, srcs_f = [], []
    for entry in plan:
        if entry[0] == "tree":
            for leaf in entry[2]:
                if leaf[0] == "out":
                    srcs_t.append((leaf[1], leaf[2]))
                    srcs_f.append((leaf[1], leaf[3]))
    outs = []
    if srcs_t:
        g_t = _finish_branch(g_t, srcs_t, where)
        g_f = _finish_branch(g_f, srcs_f, where)
        caps = []
        for c in caps_t + caps_f:
            if not any(c is d for d in caps):
                caps.append(c)

        def inputs(g, own):
            mine = {id(c): v for c, v in zip(own, g.inputs)}
            return [mine.get(id(c)) or Var(c._value.var.aval) for c in caps]

        params = {"true_branch": Graph(inputs(g_t, caps_t), g_t.eqns, g_t.outputs),
                  "false_branch": Graph(inputs(g_f, caps_f), g_f.eqns, g_f.outputs)}
        outs = list(bind(cond_p, p, *caps, **params))
    it = iter(outs)
    result = []
    for entry in plan:
        if entry[0] == "const":
            result.append(entry[1])
        else:
            leaves = [leaf[1] if leaf[0] == "static" else next(it) for leaf in entry[2]]
            result.append(tree_unflatten(entry[1], leaves))
    return tuple(result)


def if_stmt(pred, true_fn, false_fn, ins, outs, side=()):
    """``if pred: <true_fn> else: <false_fn>`` on the variables ``ins``; returns ``outs``."""
    if not is_traced(pred):
        return (true_fn if pred else false_fn)(*ins)
    frame = _user_frame()
    where = _where(frame)
    _no_side_effects(side, "if", where, f"its condition is {describe(pred)}")
    return _cond(pred, lambda: true_fn(*ins), lambda: false_fn(*ins), outs, "if", where, frame)


def if_exp(pred, true_fn, false_fn):
    """``true_fn() if pred else false_fn()``."""
    if not is_traced(pred):
        return true_fn() if pred else false_fn()
    frame = _user_frame()
    return _cond(pred, lambda: (true_fn(),), lambda: (false_fn(),), ("<expr>",), "ifexp",
                 _where(frame), frame)[0]


def _safe_to_hoist(graph):
    """Can ``graph`` run whatever the data (no equation that may raise for some values,
    as each registry entry says)?"""
    for e in graph.eqns:
        prim = e.prim
        if prim.higher_order or prim.raises_for([x.aval for x in e.inputs], e.params):
            return False
    return True


def _logic(kind, v, f, frame):
    """``v and f()`` / ``v or f()`` with ``v`` traced: ``f`` runs in the graph only when
    Python would run it (a cond), unless it cannot fail (then both sides run: ``&``/``|``)."""
    where = _where(frame)
    p = _pred(_bool_operand(v, kind, where), kind, where)
    builder = _builder()
    box = {}

    def run():
        r = f()
        box["r"] = r
        if is_traced(r) or isinstance(r, Tensor):
            return (_pred(_bool_operand(r, kind, where), kind, where),)
        return ()

    g, caps = trace_function(run, (), parent=builder)
    r = box["r"]
    if not isinstance(r, Tensor):
        if kind == "and":
            return p if r else P.logical_and(p, False)
        return P.logical_or(p, True) if r else p
    if _safe_to_hoist(g):
        (rv,) = eval_graph(g, caps)
        return P.logical_and(p, rv) if kind == "and" else P.logical_or(p, rv)
    name = "<and>" if kind == "and" else "<or>"

    def other():
        r = f()
        return (_pred(_bool_operand(r, kind, where), kind, where) if isinstance(r, Tensor) else bool(r),)

    if kind == "and":
        return _cond(p, other, lambda: (False,), (name,), kind, where, frame)[0]
    return _cond(p, lambda: (True,), other, (name,), kind, where, frame)[0]


def and_(v, *rest):
    """Python's ``v and rest[0]() and ...``; lazily staged where an operand is traced."""
    for f in rest:
        if is_traced(v):
            v = _logic("and", v, f, _user_frame())
        elif not v:
            return v
        else:
            v = f()
    return v


def or_(v, *rest):
    """Python's ``v or rest[0]() or ...``; lazily staged where an operand is traced."""
    for f in rest:
        if is_traced(v):
            v = _logic("or", v, f, _user_frame())
        elif v:
            return v
        else:
            v = f()
    return v


_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne, "in": lambda a, b: a in b,
            "not in": lambda a, b: a not in b, "is": operator.is_, "is not": operator.is_not}


def chain(a, ops, *operands):
    """``a op0 b op1 c ...`` (a chained comparison): ``a op0 b and b op1 c ...``, each
    operand evaluated once and lazily, like Python."""
    b = operands[0]()
    r = _COMPARE[ops[0]](a, b)
    if len(ops) == 1:
        return r
    return and_(r, lambda: chain(b, ops[1:], *operands[1:]))


def not_(v):
    """Python's ``not v``; on a traced tensor the logical not of its truth value."""
    if not is_traced(v):
        return not v
    return ~_pred(v, "not", user_source() or "<unknown>")


def not_any(*flags):
    """``not (f1 or f2 or ...)`` for the generated break/return flags."""
    acc = None
    for f in flags:
        if is_traced(f):
            acc = f if acc is None else acc | f
        elif f:
            return False
    return True if acc is None else ~acc


# ----------------------------------------------------------------------------------------
# augmented assignment: functional on traced tensors (a traced value cannot change)
# ----------------------------------------------------------------------------------------


def _aug(inplace, functional):
    def op(x, y):
        if isinstance(x, Tensor) and _builder() is not None and not _captured(x):
            return functional(x, y)
        if isinstance(x, _CONTAINERS):
            mut(x, "<augmented target>", inplace.__name__)
        return inplace(x, y)

    op.__name__ = inplace.__name__
    return op


iadd = _aug(operator.iadd, operator.add)
isub = _aug(operator.isub, operator.sub)
imul = _aug(operator.imul, operator.mul)
itruediv = _aug(operator.itruediv, operator.truediv)
ifloordiv = _aug(operator.ifloordiv, operator.floordiv)
imod = _aug(operator.imod, operator.mod)
ipow = _aug(operator.ipow, operator.pow)
imatmul = _aug(operator.imatmul, operator.matmul)
iand = _aug(operator.iand, operator.and_)
ior = _aug(operator.ior, operator.or_)
ixor = _aug(operator.ixor, operator.xor)
ilshift = _aug(operator.ilshift, operator.lshift)
irshift = _aug(operator.irshift, operator.rshift)


# ----------------------------------------------------------------------------------------
# loops
# ----------------------------------------------------------------------------------------


class RangeSpec:
    """``range(lo, hi, step)`` whose bounds may be traced tensors."""

    __slots__ = ("lo", "hi", "step")

    def __init__(self, lo, hi, step):
        self.lo, self.hi, self.step = lo, hi, step

    def __iter__(self):
        return iter(range(self.lo, self.hi, self.step))


def _bound(x):
    if isinstance(x, Tensor):
        if is_traced(x):
            if x.numel() != 1 or x.dtype.kind not in "iub":
                raise AutographError(
                    f"range() bound {describe(x)} at {user_source() or '<unknown>'}: a traced "
                    "loop bound must be one integer"
                )
            return x.reshape(()) if x.shape != () else x
        return operator.index(x)
    return operator.index(x)


def range_(rng, *args):
    """``range(*args)`` in a ``for`` header: bounds may be traced tensors."""
    if rng is not range:
        return rng(*args)
    if not 1 <= len(args) <= 3:
        return range(*args)  # Python's own error
    vals = [_bound(a) for a in args]
    lo, hi, step = (0, vals[0], 1) if len(vals) == 1 else (vals[0], vals[1], vals[2] if len(vals) == 3 else 1)
    if is_traced(step):
        raise AutographError(
            f"range() at {user_source() or '<unknown>'} has a traced step; the step of a "
            "converted loop must be a Python int (its sign decides the loop test)"
        )
    if step == 0:
        raise ValueError("range() arg 3 must not be zero")
    return RangeSpec(lo, hi, step)


class _Retry(Exception):
    def __init__(self, changes):
        super().__init__("retry")
        self.changes = changes


def _tensor_tree(v):
    """Leaves of ``v`` if it is a pytree of tensors and numbers with at least one tensor."""
    if isinstance(v, Undefined):
        return None
    leaves, tree = tree_flatten(v)
    if not leaves or not all(_leaf_kind(x) in "tan" for x in leaves):
        return None
    if not any(_leaf_kind(x) in "ta" for x in leaves):
        return None
    return leaves, tree


def _numbers_tree(v):
    if isinstance(v, Undefined):
        return None
    leaves, tree = tree_flatten(v)
    if not all(_leaf_kind(x) == "n" for x in leaves):
        return None
    return leaves, tree


def _same_python(a, b):
    if a is b:
        return True
    la, lb = _numbers_tree(a), _numbers_tree(b)
    if la is None or lb is None or la[1] != lb[1]:
        return False
    return all(type(x) is type(y) and x == y for x, y in zip(la[0], lb[0]))


def _carry_plan(value, init):
    """A carry plan from a value seen after one iteration (``value``) and the value the
    loop starts from (``init``: the entry value, or None for zeros)."""
    leaves, tree = tree_flatten(value)
    avals, weak = [], []
    for x in leaves:
        if isinstance(x, (Tensor, np.ndarray)):
            avals.append(ShapedArray(x.shape, x.dtype))
            weak.append(False)
        else:
            avals.append(ShapedArray((), _num_dtype(x)))
            weak.append(True)
    return ("carry", tree, avals, weak, init)


def _init_leaves(plan, value):
    _, tree, avals, weak, init = plan
    if init is None:
        return tree_unflatten(tree, [P.zeros(a.shape, a.dtype) for a in avals])
    leaves, t0 = tree_flatten(init)
    out = []
    for x, a in zip(leaves, avals):
        if isinstance(x, Tensor):
            if x.dtype != a.dtype:
                x = P.convert(x, dtype=a.dtype)
            if tuple(x.shape) != a.shape:
                x = P.broadcast_to(x, shape=a.shape)
            out.append(x)
        else:
            arr = np.asarray(x).astype(a.dtype)
            out.append(Tensor(np.broadcast_to(arr, a.shape).copy()))
    return tree_unflatten(tree, out)


_PY_FIX = ("a graph loop carries tensors and numbers only: compute {0} outside the loop, or keep "
           "the loop in Python by iterating over a Python list (e.g. `for i in list(range(n))`)")


def _carry_change(name, kind, where, before, after, fix=None):
    fix = fix or (f"keep {display(name)} the same shape and dtype in every iteration: cast "
                  "inside the loop (.float(), .double(), .long()) or initialise it before the "
                  "loop with the dtype and shape it gets in the loop")
    return AutographError(
        f"{display(name)} changes from {before} before the {_KIND_WORD[kind]} at {where} to "
        f"{after} after one iteration, but the loop runs as a graph `while`, whose carried "
        f"variables keep one type. Fix: {fix}."
    )


def _staged_loop(kind, where, frame, why, names, state, carried, live, cond_fn, body_fn,
                 hidden, trips, item_slot):
    """Stage the rest of a loop as one ``while``.  ``cond_fn(hidden, state)`` and
    ``body_fn(hidden, state) -> (hidden, state)`` see the full variable state; carried are
    the variables whose value crosses iterations or is read after the loop."""
    carried, live = set(carried), set(live)
    plan = {}
    for i, name in enumerate(names):
        v = state[i]
        needed = name in carried or name in live
        if item_slot and i == 0:
            needed = name in live
        # a variable written before it is read in every iteration, of a loop known to run:
        # its value before the loop is never seen
        overwritten = name not in carried and trips is not None and trips >= 1
        if not needed or isinstance(v, Undefined) or overwritten:
            plan[i] = ("drop",)
        elif _tensor_tree(v) is not None:
            plan[i] = _carry_plan(v, v)
        else:
            plan[i] = ("static",)
    for _ in range(2 * len(names) + 3):
        try:
            return _run_loop(kind, where, frame, why, names, state, live, plan, cond_fn,
                             body_fn, hidden, trips)
        except _Retry as r:
            plan.update(r.changes)
    raise AutographError(f"the types of the variables of the loop at {where} do not settle")


def _run_loop(kind, where, frame, why, names, state, live, plan, cond_fn, body_fn, hidden, trips):
    carry_ix = [i for i in range(len(names)) if plan[i][0] == "carry"]
    init = (tuple(hidden), tuple(_init_leaves(plan[i], state[i]) for i in carry_ix))
    static_trips = trips is not None and trips >= 1
    python_after = {}  # dropped variables that end the loop with an iteration-invariant Python value
    still_undefined = set()  # dropped variables the body leaves undefined

    def full(carry):
        h, trees = carry
        st = list(state)
        for i, t in zip(carry_ix, trees):
            st[i] = t
        return h, st

    def cond_w(carry):
        h, st = full(carry)
        return cond_fn(h, st)

    def body_w(carry):
        h, st = full(carry)
        with _region(kind, where, frame, why):
            h2, out = body_fn(h, st)
        out = list(out)
        changes, trees = {}, []
        for i, name in enumerate(names):
            p, o, v0 = plan[i], out[i], state[i]
            if p[0] == "drop":
                if isinstance(o, Undefined):
                    still_undefined.add(i)
                    continue
                still_undefined.discard(i)
                if _tensor_tree(o) is None and _numbers_tree(o) is None:
                    if name in live and static_trips and not _holds_tensor(o):
                        # a Python value made by the (traced) body does not depend on the
                        # iteration: it is the value after the last one
                        python_after[i] = o
                    continue
                guarded = isinstance(v0, Undefined) and v0.guarded
                if guarded or (name in live and static_trips):
                    changes[i] = _carry_plan(o, None)
                continue
            if p[0] == "static":
                if _same_python(o, v0):
                    continue
                nt, ot = _numbers_tree(v0), tree_flatten(o)
                if nt is not None and _tensor_tree(o) is not None and nt[1] == ot[1]:
                    plan2 = _carry_plan(o, v0)
                    shapes_ok = all(a.shape == () for a in plan2[2])
                    if shapes_ok or static_trips:
                        changes[i] = plan2
                        continue
                    raise _carry_change(
                        name, kind, where, describe(v0), describe(o),
                        fix=f"the loop may run zero times, so give {display(name)} its "
                        "shape before the loop (e.g. dg.zeros(...) instead of a Python number)")
                if nt is not None and _numbers_tree(o) is not None and nt[1] == ot[1]:
                    changes[i] = _carry_plan(o, v0)
                    continue
                fix = None if _tensor_tree(o) is not None or _tensor_tree(v0) is not None else \
                    _PY_FIX.format(display(name))
                if v0 is None and _tensor_tree(o) is not None:
                    fix = (f"give {display(name)} a tensor value of that shape and dtype before "
                           "the loop instead of None")
                raise _carry_change(name, kind, where, describe(v0), describe(o), fix=fix)
            _, tree, avals, weak, _init = p
            if isinstance(o, Undefined):
                raise _carry_change(name, kind, where, "defined", "undefined")
            leaves, t2 = tree_flatten(o)
            if t2 != tree:
                raise _carry_change(name, kind, where, describe(st[i]), describe(o))
            fixed, new_avals, retry = [], list(avals), False
            for j, (x, a, w) in enumerate(zip(leaves, avals, weak)):
                if isinstance(x, np.ndarray):
                    x = Tensor(x)
                if isinstance(x, Tensor):
                    if tuple(x.shape) == a.shape and x.dtype == a.dtype:
                        fixed.append(x)
                    elif w and tuple(x.shape) == a.shape:
                        new_avals[j] = ShapedArray(a.shape, x.dtype)
                        retry = True
                    elif w and static_trips:
                        new_avals[j] = ShapedArray(x.shape, x.dtype)
                        retry = True
                    else:
                        raise _carry_change(name, kind, where, describe(st[i]), describe(o))
                elif _leaf_kind(x) == "n":
                    if a.dtype.kind in "iub" and isinstance(x, (float, np.floating)) or (
                            a.dtype.kind == "b" and not isinstance(x, (bool, np.bool_))):
                        if w:
                            new_avals[j] = ShapedArray(a.shape, _weak_join(a.dtype, x))
                            retry = True
                            continue
                        raise _carry_change(name, kind, where, describe(st[i]), describe(o))
                    fixed.append(Tensor(np.full(a.shape, x, a.dtype)))
                else:
                    raise _carry_change(name, kind, where, describe(st[i]), describe(o),
                                        fix=_PY_FIX.format(display(name)))
            if retry:
                changes[i] = ("carry", tree, new_avals, [False] * len(new_avals), v0)
                continue
            trees.append(tree_unflatten(tree, fixed))
        if changes:
            raise _Retry(changes)
        return tuple(h2), tuple(trees)

    _, trees = while_loop(cond_w, body_w, init)
    result = list(state)
    for i, t in zip(carry_ix, trees):
        result[i] = t
    for i, name in enumerate(names):
        if plan[i][0] == "drop":
            if i in still_undefined and isinstance(state[i], Undefined):
                result[i] = state[i]  # undefined before and after (e.g. no return happened)
            else:
                result[i] = python_after.get(i, Undefined(name, "loop", where))
    return result


def _holds_tensor(v):
    return any(isinstance(x, Tensor) for x in tree_flatten(v)[0])


def _has_tensor(state, names, carried, live, skip_first):
    for i, (name, v) in enumerate(zip(names, state)):
        if skip_first and i == 0:
            continue
        if (name in carried or name in live) and _tensor_tree(v) is not None:
            return True
    return False


def while_stmt(test, body, init, names, carried=(), live=(), side=()):
    """``while test(*vars): vars = body(*vars)``; a graph ``while`` once the test is traced."""
    frame = _user_frame()
    state = list(init)
    while True:
        value, traced = _probe(test, state)
        if traced:
            break
        if not value:
            return tuple(state)
        state = list(body(*state))
    where = _where(frame)
    why = "its condition is a traced tensor"
    _no_side_effects(side, "while", where, why)

    def cond_fn(h, st):
        return test(*st)

    def body_fn(h, st):
        return (), body(*st)

    return tuple(_staged_loop("while", where, frame, why, names, state, carried, live,
                              cond_fn, body_fn, (), None, False))


def for_stmt(iterable, body, init, names, carried=(), live=(), extra_test=None, side=()):
    """``for names[0] in iterable: vars = body(*vars)``.  Over ``range(...)`` or a tensor
    (its first axis) the loop is one graph ``while`` as soon as it carries a tensor or a
    bound is traced; over other iterables it is the Python loop."""
    frame = _user_frame()
    state = list(init)
    if isinstance(iterable, (RangeSpec, Tensor)):
        return tuple(_for_indexed(iterable, body, state, names, carried, live, extra_test, side,
                                  frame))
    it = iter(iterable)
    for item in it:
        if extra_test is not None:
            value, traced = _probe(extra_test, state)
            if traced:
                return tuple(_for_guarded(item, it, body, state, names, extra_test, frame))
            if not value:
                break
        state[0] = item
        state = list(body(*state))
    return tuple(state)


def _for_guarded(item, it, body, state, names, extra_test, frame):
    """A Python loop whose ``break`` flag became a traced tensor: each remaining iteration
    runs under a cond on that flag (the loop is unrolled, as Python loops are)."""
    where = _where(frame)
    for x in [item, *it]:
        go = extra_test(*state)
        if not is_traced(go):
            if not go:
                break
            state[0] = x
            state = list(body(*state))
            continue
        cur = list(state)

        def run(x=x, cur=cur):
            s = list(cur)
            s[0] = x
            return body(*s)

        state = list(_cond(go, run, lambda cur=cur: tuple(cur), names, "for", where, frame))
    return state


def _for_indexed(iterable, body, state, names, carried, live, extra_test, side, frame):
    if isinstance(iterable, Tensor):
        if iterable.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        xs = iterable
        lo, hi, step = 0, iterable.shape[0], 1

        def item(k):
            return xs[k]
    else:
        lo, hi, step = iterable.lo, iterable.hi, iterable.step

        def item(k):
            return k
    static = not is_traced(lo) and not is_traced(hi)
    k = lo
    if static:
        while True:
            if (step > 0 and k >= hi) or (step < 0 and k <= hi):
                return state
            if _has_tensor(state, names, carried, live, True):
                break
            if extra_test is not None:
                value, traced = _probe(extra_test, state)
                if traced:
                    break
                if not value:
                    return state
            state[0] = item(k)
            state = list(body(*state))
            k += step
    where = _where(frame)
    why = ("its bound is a traced tensor" if not static
           else "it carries tensors (a loop over range() or a tensor with tensor variables is "
                "one graph while, whatever its trip count)")
    _no_side_effects(side, "for", where, why)
    trips = len(range(k, hi, step)) if static else None
    counter = Tensor(np.asarray(k, np.int64)) if not isinstance(k, Tensor) else k
    if counter.dtype != np.int64:
        counter = P.convert(counter, dtype=np.dtype(np.int64))

    def cond_fn(h, st):
        (i,) = h
        c = i < hi if step > 0 else i > hi
        if extra_test is not None:
            e = extra_test(*st)
            if is_traced(e):
                c = P.logical_and(c, e)
            elif not e:
                c = P.logical_and(c, False)
        return c

    def body_fn(h, st):
        (i,) = h
        st = list(st)
        st[0] = item(i)
        return (i + step,), body(*st)

    try:
        return _staged_loop("for", where, frame, why, names, state, carried, live, cond_fn,
                            body_fn, (counter,), trips, True)
    except TracerError:
        if not static:
            raise
    # the body needs the loop index as a Python value (``layers[i]``, ``range(i)``): the
    # loop stays a Python loop, unrolled into the graph (what Python does)
    rest = (item(j) for j in range(k, hi, step))
    for x in rest:
        return _for_guarded(x, rest, body, state, names, extra_test or _always, frame)
    return state


def _always(*state):
    return True
