"""The source-to-source passes of autograph (see ``autograph.py``), on ``ast`` trees.

Three passes over one function (and, separately, each function nested in it):

1. *Lowering* removes ``return``, ``break`` and ``continue`` from inside ``if``s and loops
   (AutoGraph's design): a ``return`` in tail position of an ``if`` tree assigns
   ``_ag_retval``; elsewhere it sets a flag ``_ag_do_return`` and later statements are
   guarded by ``if not _ag_do_return:``.  ``break`` sets ``_ag_break_<k>`` (the loop test
   checks it), ``continue`` sets ``_ag_continue_<k>`` (the rest of the body is guarded).
   A guard-clause ``if c: return a`` followed by more code first becomes
   ``if c: return a else: <the rest>`` so the common case needs no flags.
2. *Liveness* (a backward data-flow pass) finds, for each ``if``/``while``/``for``, the
   variables read after it, and for each loop the variables read before being written
   in an iteration (the loop-carried ones).
3. *Conversion* turns each ``if``/``while``/``for`` into nested functions (a branch, a
   loop test, a loop body) that take and return the statement's variables, called through
   the runtime (``_ag__.if_stmt``, ``_ag__.while_stmt``, ``_ag__.for_stmt``), and
   ``a if c else b``, ``and``/``or``/``not`` into ``_ag__.if_exp``/``and_``/``or_``/
   ``not_``.  Calls go through ``_ag__.cv`` so user functions they reach are converted
   too.  Every generated node carries the location of the statement it replaces, so
   errors, warnings and traced equations name the user's original lines.
"""
from __future__ import annotations

import ast
import copy
import itertools

RT = "_ag__"
RETVAL = "_ag_retval"
DO_RETURN = "_ag_do_return"
ITEM = "_ag_item"

# methods that change a Python container in place: checked inside graph regions
MUTATORS = frozenset(
    "append extend insert pop remove clear update setdefault popitem add discard sort "
    "reverse".split()
)
_AUG = {
    ast.Add: "iadd", ast.Sub: "isub", ast.Mult: "imul", ast.Div: "itruediv",
    ast.FloorDiv: "ifloordiv", ast.Mod: "imod", ast.Pow: "ipow", ast.MatMult: "imatmul",
    ast.BitAnd: "iand", ast.BitOr: "ior", ast.BitXor: "ixor", ast.LShift: "ilshift",
    ast.RShift: "irshift",
}
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp,
           ast.SetComp, ast.DictComp, ast.GeneratorExp)
_LOOPS = (ast.While, ast.For, ast.AsyncFor)


class ConversionUnsupported(Exception):
    """The function uses a construct the converter leaves to plain tracing."""


# ----------------------------------------------------------------------------------------
# small AST builders
# ----------------------------------------------------------------------------------------


def _load(name):
    return ast.Name(id=name, ctx=ast.Load())


def _store(name):
    return ast.Name(id=name, ctx=ast.Store())


def _rt(attr):
    return ast.Attribute(value=_load(RT), attr=attr, ctx=ast.Load())


def _call(func, args=(), keywords=()):
    return ast.Call(func=func, args=list(args), keywords=list(keywords))


def _const(v):
    return ast.Constant(value=v)


def _strs(names):
    return ast.Tuple(elts=[_const(n) for n in names], ctx=ast.Load())


def _assign(name, value):
    return ast.Assign(targets=[_store(name)], value=value, lineno=0)


def _args(names):
    return ast.arguments(posonlyargs=[], args=[ast.arg(arg=n) for n in names], vararg=None,
                         kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])


def _located(nodes, loc):
    """Give generated nodes (and their children without a location) ``loc``'s lines."""
    todo = list(nodes)
    while todo:
        n = todo.pop()
        if "lineno" in n._attributes:
            if getattr(n, "lineno", None) not in (None, 0):
                continue  # the user's node (its generated parts are located already)
            n.lineno = loc.lineno
            n.col_offset = loc.col_offset
            # a one-line span: the interpreter reports a call's line from its end
            n.end_lineno = loc.lineno
            n.end_col_offset = loc.col_offset
        todo.extend(ast.iter_child_nodes(n))
    return nodes


def _fill(node, loc):
    """``node`` (made from the user's expression ``loc``) with ``loc``'s start for every
    generated part without a location."""
    if getattr(loc, "lineno", None) is None:
        return node  # generated too: located with its statement
    ast.copy_location(node, loc)
    for n in ast.walk(node):
        if "lineno" in n._attributes and getattr(n, "lineno", None) in (None, 0):
            n.lineno, n.col_offset = loc.lineno, loc.col_offset
            n.end_lineno, n.end_col_offset = loc.lineno, loc.col_offset
    return node


def _not_flags(flags):
    if len(flags) == 1:
        return ast.UnaryOp(op=ast.Not(), operand=_load(flags[0]))
    return _call(_rt("not_any"), [_load(f) for f in flags])


# ----------------------------------------------------------------------------------------
# scopes and names
# ----------------------------------------------------------------------------------------


def walk_scope(node):
    """``node`` and its descendants, not entering nested scopes (which are yielded)."""
    todo = [node]
    while todo:
        n = todo.pop()
        yield n
        if n is not node and isinstance(n, _SCOPES):
            continue
        todo.extend(reversed(list(ast.iter_child_nodes(n))))


def _in_scope(stmts):
    for s in stmts:
        yield from walk_scope(s)


_STORED_MEMO: dict = {}  # id(stmt) -> (stmt, names): one conversion at a time (under a lock)


def stored_names(stmts):
    """Names bound by ``stmts`` in their own scope (in order of first binding)."""
    out = {}
    for s in stmts:
        hit = _STORED_MEMO.get(id(s))
        if hit is None or hit[0] is not s:
            hit = _STORED_MEMO[id(s)] = (s, _stored_names_one(s))
        for name in hit[1]:
            out.setdefault(name)
    return list(out)


def _stored_names_one(stmt):
    out = {}
    for n in walk_scope(stmt):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.setdefault(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.setdefault(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for a in n.names:
                out.setdefault(a.asname or a.name.split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.setdefault(n.name)
    return list(out)


def loaded_names(node):
    """Every name read anywhere in ``node`` (nested scopes included: conservative)."""
    if node is None:
        return set()
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _contains(stmts, kinds, through_loops=True):
    for s in stmts:
        todo = [s]
        while todo:
            n = todo.pop()
            if isinstance(n, kinds):
                return True
            if n is not s and isinstance(n, _SCOPES):
                continue
            if not through_loops and n is not s and isinstance(n, _LOOPS):
                # a nested loop's break/continue are its own (but its else clause is ours)
                todo.extend(n.orelse)
                continue
            todo.extend(ast.iter_child_nodes(n))
    return False


def declared(stmts, kind):
    names = set()
    for n in _in_scope(stmts):
        if isinstance(n, kind):
            names.update(n.names)
    return names


# ----------------------------------------------------------------------------------------
# pass 1: lowering of return / break / continue
# ----------------------------------------------------------------------------------------


def _always_returns(stmts):
    for s in stmts:
        if isinstance(s, ast.Return):
            return True
        if isinstance(s, ast.If) and _always_returns(s.body) and _always_returns(s.orelse):
            return True
    return False


def _lift(stmts):
    """``if c: ...return`` followed by more code -> the code moves into the else branch."""
    out = []
    for k, s in enumerate(stmts):
        if isinstance(s, ast.If):
            s.body = _lift(s.body)
            s.orelse = _lift(s.orelse)
            rest = stmts[k + 1:]
            rb, ro = _always_returns(s.body), _always_returns(s.orelse)
            if rest and rb != ro:
                if rb:
                    s.orelse = _lift(s.orelse + rest)
                else:
                    s.body = _lift(s.body + rest)
                out.append(s)
                return out
            out.append(s)
            if rest and rb and ro:
                return out  # the rest is dead code
            continue
        for field in ("body", "orelse", "finalbody"):
            if isinstance(s, (ast.While, ast.For, ast.With, ast.Try)) and hasattr(s, field):
                setattr(s, field, _lift(getattr(s, field)))
        out.append(s)
    return out


def _tail_only(stmts):
    for s in stmts[:-1]:
        if _contains([s], ast.Return):
            return False
    if not stmts:
        return True
    last = stmts[-1]
    if isinstance(last, ast.If):
        return _tail_only(last.body) and _tail_only(last.orelse)
    if isinstance(last, ast.Return):
        return True
    return not _contains([last], ast.Return)


class _Loop:
    __slots__ = ("brk", "cont")

    def __init__(self, brk, cont):
        self.brk = brk
        self.cont = cont


class Lowering:
    """Pass 1 on one function body (not entering nested functions)."""

    def __init__(self, counter):
        self.counter = counter
        self.mode = None
        self.ret_flag = None

    def function(self, fn):
        body = _lift(fn.body)
        returns = [n for n in _in_scope(body) if isinstance(n, ast.Return)]
        if returns:
            if _tail_only(body):
                if not (len(returns) == 1 and isinstance(body[-1], ast.Return)):
                    self.mode = "tail"
            else:
                self.mode = "flags"
                self.ret_flag = DO_RETURN
        always = _always_returns(body)
        new, _ = self.block(body, None)
        if self.mode is not None:
            pre = []
            if self.mode == "flags":
                pre.append(_assign(DO_RETURN, _const(False)))
            if not always:
                pre.append(_assign(RETVAL, _const(None)))
            elif self.mode == "flags":
                pre.append(_assign(RETVAL, _call(_rt("undefined_return"))))
            loc = fn.body[0] if fn.body else fn
            ret = ast.Return(value=_load(RETVAL))
            new = _located(pre, loc) + new + _located([ret], body[-1] if body else loc)
        fn.body = new or [ast.Pass()]

    def block(self, stmts, loop):
        out, sets = [], set()
        for i, s in enumerate(stmts):
            new, flags = self.stmt(s, loop)
            out.extend(new)
            sets |= flags
            if flags and i + 1 < len(stmts):
                rest, more = self.block(stmts[i + 1:], loop)
                sets |= more
                if rest:
                    guard = ast.If(test=_not_flags(sorted(flags)), body=rest, orelse=[])
                    out.extend(_located([guard], stmts[i + 1]))
                break
        return out, sets

    def stmt(self, s, loop):
        if isinstance(s, ast.Return):
            value = s.value if s.value is not None else _const(None)
            if self.mode == "tail":
                return _located([_assign(RETVAL, value)], s), set()
            if self.mode == "flags":
                return _located([_assign(DO_RETURN, _const(True)), _assign(RETVAL, value)], s), {DO_RETURN}
            return [s], set()
        if isinstance(s, ast.Break):
            return _located([_assign(loop.brk, _const(True))], s), {loop.brk}
        if isinstance(s, ast.Continue):
            return _located([_assign(loop.cont, _const(True))], s), {loop.cont}
        if isinstance(s, ast.If):
            s.body, a = self.block(s.body, loop)
            s.orelse, b = self.block(s.orelse, loop)
            if not s.body:
                s.body = [ast.Pass()]
            return [s], a | b
        if isinstance(s, (ast.While, ast.For)):
            return self.loop(s, loop)
        if isinstance(s, (ast.With, ast.AsyncWith)):
            s.body, a = self.block(s.body, loop)
            return [s], a
        if isinstance(s, ast.Try):
            s.body, a = self.block(s.body, loop)
            sets = set(a)
            for h in s.handlers:
                h.body, b = self.block(h.body, loop)
                sets |= b
            s.orelse, b = self.block(s.orelse, loop)
            s.finalbody, c = self.block(s.finalbody, loop)
            if not s.body:
                s.body = [ast.Pass()]
            return [s], sets | b | c
        return [s], set()

    def loop(self, s, loop):
        k = next(self.counter)
        has_break = _contains(s.body, ast.Break, through_loops=False)
        has_cont = _contains(s.body, ast.Continue, through_loops=False)
        may_return = self.mode == "flags" and _contains(s.body, ast.Return)
        inner = _Loop(f"_ag_break_{k}" if has_break else None,
                      f"_ag_continue_{k}" if has_cont else None)
        body, _ = self.block(s.body, inner)
        if inner.cont:
            body = _located([_assign(inner.cont, _const(False))], s.body[0]) + body
        s.body = body or [ast.Pass()]
        flags = [f for f in (inner.brk, self.ret_flag if may_return else None) if f]
        pre = _located([_assign(inner.brk, _const(False))], s) if inner.brk else []
        if isinstance(s, ast.While):
            if flags:
                s.test = _located([ast.BoolOp(op=ast.And(), values=[_not_flags(flags), s.test])], s.test)[0]
        else:
            s._ag_extra = flags
        orelse, so = self.block(s.orelse, loop)
        s.orelse = []
        post = []
        if orelse:
            if flags:
                post = _located([ast.If(test=_not_flags(flags), body=orelse, orelse=[])], orelse[0])
            else:
                post = orelse
        return pre + [s] + post, ({self.ret_flag} if may_return else set()) | so


# ----------------------------------------------------------------------------------------
# pass 2: liveness
# ----------------------------------------------------------------------------------------


def _target_names(target):
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _target_reads(target):
    """Names read by an assignment target (``a[i] = v`` reads ``a`` and ``i``)."""
    if isinstance(target, ast.Name):
        return set()
    if isinstance(target, (ast.Tuple, ast.List)):
        out = set()
        for e in target.elts:
            out |= _target_reads(e)
        return out
    if isinstance(target, ast.Starred):
        return _target_reads(target.value)
    return loaded_names(target)


class Liveness:
    """Pass 2: ``live_out[id(stmt)]`` for if/while/for, ``carried[id(loop)]``."""

    def __init__(self):
        self.live_out = {}
        self.carried = {}

    def block(self, stmts, out):
        live = set(out)
        for s in reversed(stmts):
            live = self.stmt(s, live)
        return live

    def stmt(self, s, out):
        if isinstance(s, ast.If):
            self.live_out[id(s)] = set(out)
            return loaded_names(s.test) | self.block(s.body, out) | self.block(s.orelse, out)
        if isinstance(s, ast.While):
            self.live_out[id(s)] = set(out)
            head = set(out) | loaded_names(s.test) | self.block(s.orelse, out)
            while True:
                body_in = self.block(s.body, head)
                new = head | body_in
                if new == head:
                    break
                head = new
            self.carried[id(s)] = body_in | loaded_names(s.test)
            return head
        if isinstance(s, ast.For):
            self.live_out[id(s)] = set(out)
            targets = _target_names(s.target)
            extra = set(getattr(s, "_ag_extra", ()))
            head = set(out) | self.block(s.orelse, out) | extra
            while True:
                body_in = self.block(s.body, head) - targets
                new = head | body_in
                if new == head:
                    break
                head = new
            self.carried[id(s)] = body_in | extra
            return head | loaded_names(s.iter) | _target_reads(s.target)
        if isinstance(s, ast.Return):
            return loaded_names(s.value)
        if isinstance(s, ast.Assign):
            kills, reads = set(), loaded_names(s.value)
            for t in s.targets:
                kills |= _target_names(t)
                reads |= _target_reads(t)
            return (set(out) - kills) | reads
        if isinstance(s, ast.AnnAssign):
            if s.value is None:
                return set(out)
            return (set(out) - _target_names(s.target)) | loaded_names(s.value) | _target_reads(s.target)
        if isinstance(s, ast.AugAssign):
            return set(out) | loaded_names(s.target) | loaded_names(s.value) | _target_names(s.target)
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return (set(out) - {s.name}) | loaded_names(s)
        if isinstance(s, ast.Try):
            fin = self.block(s.finalbody, out)
            els = self.block(s.orelse, fin)
            handlers = set()
            for h in s.handlers:
                handlers |= self.block(h.body, fin) | loaded_names(h.type)
            return self.block(s.body, els | handlers) | handlers
        if isinstance(s, (ast.With, ast.AsyncWith)):
            reads = set()
            for item in s.items:
                reads |= loaded_names(item.context_expr)
            return self.block(s.body, out) | reads
        if isinstance(s, ast.Delete):
            kills = set()
            for t in s.targets:
                if isinstance(t, ast.Name):
                    kills.add(t.id)
            return (set(out) - kills) | loaded_names(s)
        return set(out) | loaded_names(s)


# ----------------------------------------------------------------------------------------
# pass 3: conversion
# ----------------------------------------------------------------------------------------


class Resolver:
    """Decides at conversion time which calls need no ``_ag__.cv`` wrapper (for readable
    generated code): builtins and library functions that take no user callables."""

    def __init__(self, no_wrap_global, no_wrap_attr):
        self.no_wrap_global = no_wrap_global  # name -> bool
        self.no_wrap_attr = no_wrap_attr  # attribute name -> bool (Tensor methods)


class _Expr(ast.NodeTransformer):
    """Expression-level conversion: conditional expressions, and/or/not, calls."""

    def __init__(self, conv):
        self.conv = conv

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        if any(isinstance(n, ast.NamedExpr) for n in ast.walk(node)):
            return node
        first, *rest = node.values
        fn = "and_" if isinstance(node.op, ast.And) else "or_"
        lams = [ast.Lambda(args=_args([]), body=v) for v in rest]
        return _fill(_call(_rt(fn), [first] + lams), node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return _fill(_call(_rt("not_"), [node.operand]), node)
        return node

    def visit_IfExp(self, node):
        self.generic_visit(node)
        if any(isinstance(n, ast.NamedExpr) for n in ast.walk(node)):
            return node
        lam = [ast.Lambda(args=_args([]), body=b) for b in (node.body, node.orelse)]
        return _fill(_call(_rt("if_exp"), [node.test] + lam), node)

    _CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
            ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}

    def visit_Compare(self, node):
        self.generic_visit(node)
        if len(node.ops) < 2 or any(isinstance(n, ast.NamedExpr) for n in ast.walk(node)):
            return node
        ops = ast.Tuple(elts=[_const(self._CMP[type(o)]) for o in node.ops], ctx=ast.Load())
        lams = [ast.Lambda(args=_args([]), body=c) for c in node.comparators]
        return _fill(_call(_rt("chain"), [node.left, ops] + lams), node)

    def visit_Lambda(self, node):
        node.body = self.visit(node.body)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Name) and f.id == "super" and not node.args and self.conv.self_name:
            node.args = [_load("__class__"), _load(self.conv.self_name)]
            return node
        if isinstance(f, ast.Attribute) and f.attr in MUTATORS:
            f.value = _fill(_call(_rt("mut"), [f.value, _const(_src(f.value)), _const(f.attr)]),
                            f.value)
            return node
        if self.conv.needs_wrap(f):
            node.func = _fill(_call(_rt("cv"), [f]), f)
        return node


def _src(node):
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - only used in messages
        return "<expr>"


class FunctionConverter:
    """Passes 1-3 on one function node (a ``def`` or a ``lambda``); nested ``def``s get
    their own converter."""

    def __init__(self, counter, resolver, self_name=None, local_chain=frozenset()):
        self.counter = counter
        self.resolver = resolver
        self.self_name = self_name
        self.local_chain = local_chain
        self.expr_tf = _Expr(self)
        self.decl = set()
        self.glob = set()
        self.nonloc = set()
        self.live = None
        self.has_control_flow = False
        self.closure_reads = set()

    # -- calls that need no wrapper --------------------------------------------------
    def needs_wrap(self, f):
        r = self.resolver
        if isinstance(f, ast.Name):
            if f.id in self.local_chain:
                return True
            return not r.no_wrap_global(f.id)
        if isinstance(f, ast.Attribute):
            chain, base = [], f
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id not in self.local_chain:
                if r.no_wrap_global(base.id, tuple(reversed(chain))):
                    return False
            return not r.no_wrap_attr(f.attr)
        return True

    def expr(self, node):
        if node is None:
            return None
        return self.expr_tf.visit(node)

    # -- entry -----------------------------------------------------------------------
    def function(self, fn):
        if isinstance(fn, ast.Lambda):
            params = {a.arg for a in _all_args(fn.args)}
            self.local_chain = self.local_chain | params
            self._defaults(fn.args)
            fn.body = self.expr(fn.body)
            return fn
        if any(isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await)) for n in _in_scope(fn.body)):
            raise ConversionUnsupported("generator or coroutine")
        self._defaults(fn.args)
        fn.decorator_list = []
        Lowering(self.counter).function(fn)
        self.glob = declared(fn.body, ast.Global)
        self.nonloc = declared(fn.body, ast.Nonlocal)
        self.decl = self.glob | self.nonloc
        params = {a.arg for a in _all_args(fn.args)}
        self.local_chain = self.local_chain | params | set(stored_names(fn.body))
        self.live = Liveness()
        self.live.block(fn.body, set())
        self.has_control_flow = any(isinstance(n, (ast.If, ast.While, ast.For))
                                    for n in _in_scope(fn.body))
        # a nested function or lambda may read a variable whenever it is called: such
        # variables are live (and loop-carried) everywhere
        for n in _in_scope(fn.body):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                self.closure_reads |= loaded_names(n)
        fn.body = self.block(fn.body)
        return fn

    def _defaults(self, args):
        args.defaults = [self.expr(d) for d in args.defaults]
        args.kw_defaults = [self.expr(d) if d is not None else None for d in args.kw_defaults]

    def block(self, stmts):
        out = []
        for s in stmts:
            out.extend(self.stmt(s))
        return out or [ast.Pass()]

    # -- statements ------------------------------------------------------------------
    def stmt(self, s):
        if isinstance(s, ast.If):
            return self.if_(s)
        if isinstance(s, ast.While):
            return self.while_(s)
        if isinstance(s, ast.For):
            return self.for_(s)
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if isinstance(s, ast.AsyncFunctionDef):
                return [s]
            s.decorator_list = [self.expr(d) for d in s.decorator_list]
            inner = FunctionConverter(self.counter, self.resolver, None, self.local_chain)
            try:
                return [inner.function(s)]
            except ConversionUnsupported:
                return [s]
        if isinstance(s, ast.ClassDef):
            return [s]
        if isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                item.context_expr = self.expr(item.context_expr)
            s.body = self.block(s.body)
            return [s]
        if isinstance(s, ast.Try):
            s.body = self.block(s.body)
            for h in s.handlers:
                h.type = self.expr(h.type)
                h.body = self.block(h.body)
            if s.orelse:
                s.orelse = self.block(s.orelse)
            if s.finalbody:
                s.finalbody = self.block(s.finalbody)
            return [s]
        if isinstance(s, ast.AugAssign) and isinstance(s.target, ast.Name) and type(s.op) in _AUG:
            value = self.expr(s.value)
            call = _call(_rt(_AUG[type(s.op)]), [_load(s.target.id), value])
            return [_fill(ast.Assign(targets=[_store(s.target.id)], value=call), s)]
        if isinstance(s, ast.Return) and s.value is not None and self.has_control_flow:
            # a variable with no value (defined in one branch...) is reported, not returned
            s.value = _fill(_call(_rt("ret"), [self.expr(s.value)]), s.value)
            return [s]
        if isinstance(s, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = s.targets if isinstance(s, ast.Assign) else [s.target]
            for t in targets:
                self._mutation_target(t)
        if isinstance(s, ast.Delete):
            for t in s.targets:
                self._mutation_target(t)
        return [self.expr(s)]

    def _mutation_target(self, t):
        if isinstance(t, ast.Subscript):
            t.value = _fill(
                _call(_rt("mut"), [self.expr(t.value), _const(_src(t.value)), _const("__setitem__")]),
                t.value)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                self._mutation_target(e)

    def _decls(self, stmts):
        assigned = set(stored_names(stmts))
        out = []
        g = sorted(assigned & self.glob)
        n = sorted(assigned & self.nonloc)
        if g:
            out.append(ast.Global(names=g))
        if n:
            out.append(ast.Nonlocal(names=n))
        return out, g + n

    def _def(self, name, params, body, outs, loc, decls):
        body = [b for b in body if not isinstance(b, ast.Pass)]
        ret = ast.Return(value=ast.Tuple(elts=[_load(o) for o in outs], ctx=ast.Load()))
        fn = ast.FunctionDef(name=name, args=_args(params), body=decls + body + [ret],
                             decorator_list=[], returns=None, type_comment=None)
        return _located([fn], loc)[0]

    def _ld(self, names):
        if not names:
            return ast.Tuple(elts=[], ctx=ast.Load())
        return _call(_rt("ld"), [_call(_load("locals"))] + [_const(n) for n in names])

    def _result(self, names, call, loc):
        if names:
            target = ast.Tuple(elts=[_store(n) for n in names], ctx=ast.Store())
            node = ast.Assign(targets=[target], value=call)
        else:
            node = ast.Expr(value=call)
        return _located([node], loc)[0]

    def if_(self, s):
        k = next(self.counter)
        test = self.expr(s.test)
        decls, side = self._decls(s.body + s.orelse)
        names = [n for n in stored_names(s.body + s.orelse) if n not in self.decl]
        live = self.live.live_out.get(id(s), set(names)) | self.closure_reads
        outs = [n for n in names if n in live]
        tdef = self._def(f"_ag_if_true_{k}", names, self.block(s.body), outs, s, decls)
        fdef = self._def(f"_ag_if_false_{k}", names, self.block(s.orelse), outs, s, decls)
        kw = [ast.keyword(arg="side", value=_strs(side))] if side else []
        call = _call(_rt("if_stmt"), [test, _load(tdef.name), _load(fdef.name), self._ld(names),
                                      _strs(outs)], kw)
        return [tdef, fdef, self._result(outs, call, s)]

    def _loop_kw(self, s, names, side):
        carried = self.live.carried.get(id(s), set(names)) | self.closure_reads
        live = self.live.live_out.get(id(s), set(names)) | self.closure_reads
        kw = [ast.keyword(arg="carried", value=_strs([n for n in names if n in carried])),
              ast.keyword(arg="live", value=_strs([n for n in names if n in live]))]
        if side:
            kw.append(ast.keyword(arg="side", value=_strs(side)))
        return kw

    def while_(self, s):
        if any(isinstance(n, ast.NamedExpr) for n in ast.walk(s.test)):
            # `while (v := f()):` binds v for the body: left a Python loop
            s.test = self.expr(s.test)
            s.body = self.block(s.body)
            return [s]
        k = next(self.counter)
        decls, side = self._decls(s.body)
        names = [n for n in stored_names(s.body) if n not in self.decl]
        test = self.expr(s.test)
        tret = ast.Return(value=test)
        tdef = ast.FunctionDef(name=f"_ag_while_test_{k}", args=_args(names), body=[tret],
                               decorator_list=[], returns=None, type_comment=None)
        tdef = _located([tdef], s)[0]
        bdef = self._def(f"_ag_while_body_{k}", names, self.block(s.body), names, s, decls)
        call = _call(_rt("while_stmt"), [_load(tdef.name), _load(bdef.name), self._ld(names),
                                         _strs(names)], self._loop_kw(s, names, side))
        return [tdef, bdef, self._result(names, call, s)]

    def for_(self, s):
        k = next(self.counter)
        extra = list(getattr(s, "_ag_extra", ()))
        if isinstance(s.target, ast.Name):
            slot, pre = s.target.id, []
        else:
            self._mutation_target(s.target)
            slot = ITEM
            pre = _located([ast.Assign(targets=[s.target], value=_load(ITEM))], s)
        decls, side = self._decls(pre + s.body)
        others = [n for n in stored_names(pre + s.body) if n not in self.decl and n != slot]
        names = [slot] + others
        it = s.iter
        if (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                and not it.keywords and not any(isinstance(a, ast.Starred) for a in it.args)
                and "range" not in self.local_chain):
            iter_node = _fill(
                _call(_rt("range_"), [_load("range")] + [self.expr(a) for a in it.args]), it)
        else:
            iter_node = self.expr(it)
        bdef = self._def(f"_ag_for_body_{k}", names, pre + self.block(s.body), names, s, decls)
        kw = self._loop_kw(s, names, side)
        if extra:
            lam = ast.Lambda(args=_args(names), body=self.expr(_not_flags(extra)))
            kw.append(ast.keyword(arg="extra_test", value=_located([lam], s)[0]))
        call = _call(_rt("for_stmt"), [iter_node, _load(bdef.name), self._ld(names), _strs(names)], kw)
        return [bdef, self._result(names, call, s)]


def _all_args(a):
    out = list(a.posonlyargs) + list(a.args) + list(a.kwonlyargs)
    if a.vararg:
        out.append(a.vararg)
    if a.kwarg:
        out.append(a.kwarg)
    return out


def convert_node(node, resolver, self_name=None):
    """Convert a ``FunctionDef`` or ``Lambda`` node (a deep copy; the input is untouched)."""
    node = copy.deepcopy(node)
    conv = FunctionConverter(itertools.count(1), resolver, self_name)
    try:
        return conv.function(node)
    finally:
        _STORED_MEMO.clear()
