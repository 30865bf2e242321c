"""Graph -> readable Python source of one numba function.

The generated function takes the graph's inputs (arrays; 0-d inputs as scalars), the
graph constants, and one preallocated output buffer per result (0-d results: a 1-element
array), and returns a status: 0, or 1 when a run-time check failed (an index out of
range, ...): the caller then re-runs the graph eagerly, which raises eager's own error.

Fusion: an elementwise or index-map equation (transpose, broadcast, getitem, full, ...)
whose result is only read by other fusing consumers is *virtual*: no array is made, its
consumers compute it inline at their own index (``Codegen.read``).  So a chain of
elementwise ops is one loop nest with no temporaries, and a reduction's inner loop holds
its producers (softmax: one pass for the max, one for exp-and-sum, one to scale).  ``cond``
is an ``if``, ``while`` a ``while`` in the same function.  The rules that produce the text
are the registry's lowerings (each primitive's ``lowering``, given in its declaration;
rule classes and large emitters in ``dualgraph/ops/lowering.py``).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from ..ops import lowering as L
from ..ops.registry import PRIMITIVES
from ..static.ir import Graph, Lit, Var, _Namer, pp_eqn
from .math_names import MATH  # not mathlib itself: that imports numba


class CompileError(Exception):
    """A graph (or a function) that the compiler cannot lower; the message names the op
    and the user's source line."""


# prange thresholds (elements of a loop nest), from NUMBA-FACTS (prange paid off above ~1e5
# elements for cheap ops, ~5e3 for transcendentals): below them no prange variant is made.
# Above them the kernel is compiled both ways and the faster is kept after timing the first
# calls (kernel.py): the machines here vary, and a loaded one gains nothing from threads.
PRANGE_MIN_CHEAP = 1 << 17
PRANGE_MIN_HEAVY = 1 << 13
# a matmul of the prange variant is split in blocks over numba's threads, BLAS on one
# (compile/blas.py), from this many multiply-adds; each block keeps at least SPLIT_MIN_ROWS
# rows (or columns) of the output
SPLIT_MIN_MACS = 1 << 22
SPLIT_MIN_ROWS = 16


def should_split(m, n, k):
    return m * n * k >= SPLIT_MIN_MACS and max(m, n) >= 2 * SPLIT_MIN_ROWS and min(m, n, k) >= 2

# Kernel fastmath flags: ``contract`` (fused multiply-adds), plus ``reassoc`` in kernels
# with reductions.  Not the issue's ``nsz``/``arcp``/``afn``, each of which gave values that
# differ from eager's (found by a fuzzing helper; tests/test_compile_ops.py): ``arcp`` made
# float32 ``c / sqrt(x)`` an approximate reciprocal square root (NaN at 0 and inf, -inf for
# subnormals) and ``x / s`` a product with ``1 / s`` (inf where that overflows); ``nsz`` folded
# ``x + 0.0`` to ``x`` (``1 / (-0.0 + 0.0)`` gave -inf); ``afn`` expanded ``x ** 2.5`` to
# ``x * x * sqrt(x)`` (NaN at -inf, -0.0 at -0.0).  The math library's own functions keep
# their flags (mathlib.FASTMATH, checked over every float32 input).  Never nnan/ninf.
FASTMATH = ("contract",)

_FUSING_READERS = None


def _headline(eqn):
    return pp_eqn(eqn, _Namer()).strip().splitlines()[0]


def _where(eqn):
    return f" (traced from {eqn.source})" if eqn.source else ""


def _np_name(dt):
    return f"np.{np.dtype(dt).name}" if np.dtype(dt).kind != "b" else "np.bool_"


def _rule(eqn):
    rule = eqn.prim.lowering
    if rule is None:
        raise CompileError(
            f"dg.compile: no lowering for op `{eqn.prim.name}`{_where(eqn)}; "
            f"`{_headline(eqn)}` cannot be compiled"
        )
    return rule


def _fusible(eqn):
    """Can ``eqn``'s result be computed inline by its consumers?"""
    rule = eqn.prim.lowering
    if rule is None or eqn.prim.multiple_results:
        return False
    if rule.kind == "elementwise":
        return True
    return rule.kind == "indexmap" and rule.ok(eqn)


def _fuses_operands(eqn):
    rule = eqn.prim.lowering
    if rule is None:
        return False
    if rule.kind == "elementwise":
        return True
    if rule.kind == "indexmap":
        return rule.ok(eqn)
    return getattr(rule, "fuses", False)


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class Codegen:
    def __init__(self, graph: Graph, math_resolver=None, parallel=True):
        self.graph = graph
        self.allow_parallel = parallel
        self.lines = []
        self.ind = 1
        self.names = {}
        self.virtual = {}  # Var -> producing Eqn
        self.memo = [{}]
        self.counter = 0
        self.consts = []  # values passed as kernel arguments
        self.const_params = []
        self.imports = {}  # function name -> module
        self.checks = 0
        self.parallel = False
        self.has_reduction = False
        self.in_prange = False
        self.out_param = {}
        self.dyn_outs = []  # results whose shape is only known at run time: returned
        self.direct = set()
        self.cur_eqn = None
        self.math_resolver = math_resolver or default_math
        self.row = None  # (index name, extent) inside a row-fused group
        self.flat = False  # inside a flat loop: arrays of >= 2 dims read as ``x.flat[i]``
        self.depth = 0  # nesting of ``nest`` calls
        self.prealloc = set()
        self.rowlocal = set()  # row-fused temporaries holding one row
        self.uses = {}
        self.graph_outputs = set()
        self.pending_store = {}  # Var -> its map Eqn, computed by the reduction that reads it
        self.stored = set()
        # buffer reuse (top-level straight-line code): a temporary whose readers have all been
        # emitted gives its buffer to the next allocation of the same shape and dtype
        self.level = 0           # nesting of cond/while subgraphs
        self.owned = {}          # Var -> buffer name, allocated here at the top level
        self.pool = {}           # (shape, dtype) -> free buffer names
        self.emitted = set()     # ids of top-level equations already emitted
        self.reused = 0
        self.bufplan = None  # buffers.BufferPlan: tape buffers in place / views / workspaces
        self.skip = set()  # id(eqn): emitted as part of another (an accumulating matmul)
        self.prefer = {}  # Var -> the buffer ``alloc`` gives it (buffers.py: ping-pong carries)
        self.graph_inputs = set(graph.inputs)

    # -- the ctx API used by the lowering rules ----------------------------------------
    def tmp(self, prefix="t"):
        self.counter += 1
        return f"{prefix}{self.counter}"

    def name(self, v):
        n = self.names.get(v)
        if n is None:
            n = self.names[v] = self.tmp("v")
        return n

    def line(self, text):
        for t in text.split("\n"):
            self.lines.append("    " * self.ind + t)

    @contextlib.contextmanager
    def indented(self):
        self.ind += 1
        self.memo.append({})
        try:
            yield
        finally:
            self.memo.pop()
            self.ind -= 1

    def shape_of(self, x):
        if isinstance(x, Lit):
            return ()
        if None in x.aval.shape:
            raise CompileError(
                f"dg.compile: dynamic shape {x.aval.str_short()} in `{_headline(self.cur_eqn)}`"
                f"{_where(self.cur_eqn)} is not supported"
            )
        return tuple(x.aval.shape)

    def dtype_of(self, x):
        if isinstance(x, Lit):
            return np.asarray(x.value).dtype
        return x.aval.dtype

    def literal(self, k):
        x = self.cur_eqn.inputs[k]
        return x.value if isinstance(x, Lit) else None

    def const(self, value, dt):
        dt = np.dtype(dt)
        if dt.kind == "b":
            return "True" if bool(value) else "False"
        if dt.kind == "f":
            v = float(dt.type(value))
            if math.isnan(v):
                body = "np.nan"
            elif math.isinf(v):
                body = "np.inf" if v > 0 else "-np.inf"
            else:
                body = repr(v)
            return body if dt == np.float64 and not body.startswith("np") else f"{_np_name(dt)}({body})"
        v = int(value)
        return str(v) if dt == np.int64 else f"{_np_name(dt)}({v})"

    def cast(self, expr, src, dst):
        src, dst = np.dtype(src), np.dtype(dst)
        if src == dst:
            return expr
        if dst.kind == "b":
            return f"({expr} != 0)"
        return f"{_np_name(dst)}({expr})"

    def math(self, name, dt):
        fname, module = self.math_resolver(name, np.dtype(dt))
        self.imports[fname] = module
        return fname

    def check(self, cond):
        self.checks += 1
        self.line(f"if {cond}:")
        self.line(f"    return {self.ret(1)}")

    def ret(self, status):
        """The return value: the status, plus the dynamically shaped results (if any),
        plus the workspaces (kept by the kernel for the next call)."""
        ws = self.ws_params()
        if not self.dyn_outs and not ws:
            return str(status)
        return ", ".join([str(status)] + [self.names[v] for v in self.dyn_outs] + ws)

    def ws_params(self):
        return [f"w{k}" for k in range(len(self.bufplan.slots))] if self.bufplan else []

    def workspace(self, slot):
        """The name of workspace ``slot``: a kernel argument, returned grown."""
        return f"w{slot}"

    def reduction_used(self):
        self.has_reduction = True

    @staticmethod
    def broadcast_idx(idx, out_shape, in_shape):
        lead = len(out_shape) - len(in_shape)
        return ["0" if d == 1 else idx[lead + k] for k, d in enumerate(in_shape)]

    def bind(self, var, expr):
        self.line(f"{self.name(var)} = {expr}")

    def bind_const(self, var, value):
        p = f"c{len(self.consts)}"
        value = np.asarray(value)
        if value.ndim == 0:
            self.consts.append(value[()])
        else:
            self.consts.append(np.array(value, copy=True, order="C"))
        self.const_params.append(p)
        self.names[var] = p

    def alloc(self, var, zero=False):
        """The buffer of ``var``: its output parameter, a dead buffer of its shape, or a new
        array (``zero``: zero-filled; only with ``_fresh(var)``)."""
        shape = self.shape_of(var)
        if var in self.prealloc:
            return self.names[var]
        spare = self.prefer.pop(var, None) if self.row is None and var not in self.rowlocal \
            else None
        if spare is not None:  # a while carry's next value: the loop's spare buffer
            n = self.name(var)
            self.line(f"{n} = {spare}  # the loop's spare buffer")
            return n
        p = self.out_param.get(var)
        if p is not None:
            self.names[var] = p
            self.direct.add(var)
            return p
        n = self.name(var)
        key = (shape, np.dtype(var.aval.dtype).str)
        top = self.level == 0 and self.row is None
        free = self.pool.get(key) if top and not zero else None  # zeros: a memset, no loop
        if free:
            self.line(f"{n} = {free.pop()}  # a dead buffer, reused")
            self.reused += 1
        else:
            self.line(f"{n} = {self.new_array(shape, var.aval.dtype, zero)}")
        if top:
            self.owned[var] = n
        return n

    def new_array(self, shape, dt, zero=False):
        """The expression of a new C-order array: ``empty``/``zeros`` of compile/inline_ops.py
        (intrinsics: numba compiles no ``np.empty`` implementation per kernel and dtype).
        ``shape``: a tuple of ints, an int, or the source text of either."""
        fn = "zeros" if zero else "empty"
        self.imports[fn] = "dualgraph.compile.inline_ops"
        return f"{fn}({shape!r}, {_np_name(dt)})" if not isinstance(shape, str) else \
            f"{fn}({shape}, {_np_name(dt)})"

    def int_minmax(self, fn, a, b):
        """``imax(a, b)``/``imin(a, b)`` of two int expressions (compile/inline_ops.py: the
        builtins ``max``/``min`` would each compile a function)."""
        self.imports[fn] = "dualgraph.compile.inline_ops"
        return f"{fn}({a}, {b})"

    _READ_ONLY = ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod")

    def _readers(self, v, out):
        """The emitted equations that read ``v`` (through fused values); False if one of them
        might keep a reference to its buffer (a view, a control-flow carry, ...)."""
        for u in self.uses.get(v, []):
            if not u.prim.multiple_results and u.outs[0] in self.virtual:
                if not self._readers(u.outs[0], out):
                    return False
                continue
            kind = u.prim.lowering.kind if u.prim.lowering is not None else None
            if not (_fusible(u) or u.prim.name in self._READ_ONLY) and kind != "elementwise":
                return False
            out.append(u)
        return True

    def _release_dead(self):
        for v, n in list(self.owned.items()):
            if v in self.graph_outputs:
                del self.owned[v]
                continue
            readers = []
            if not self._readers(v, readers):
                del self.owned[v]  # pinned: never reused
                continue
            if all(id(u) in self.emitted for u in readers):
                del self.owned[v]
                self.pool.setdefault((self.shape_of(v), np.dtype(v.aval.dtype).str), []).append(n)

    def array(self, x):
        if isinstance(x, Lit) or x.aval.ndim == 0:
            raise CompileError(f"internal: {x} used as an array{_where(self.cur_eqn)}")
        return self.names[x]

    def operand(self, x, dt):
        if isinstance(x, Lit):
            t = self.tmp("k")
            self.line(f"{t} = {self.const(x.value, dt)}")
            return t
        if x in self.virtual:  # cannot happen: operands of control flow are materialized
            raise CompileError("internal: virtual operand of control flow")
        return self.names[x]

    def is_heavy(self, x, _seen=None, store=False):
        """Does computing ``x`` inline involve a heavy elementwise op (``Elementwise.heavy``:
        worth a prange at smaller sizes)?  ``store``: one worth computing once and storing
        when several loops read it (``Elementwise.store_shared``: transcendentals, not a
        division, which a store and reload of its array costs as much as)."""
        eqn = self.virtual.get(x)
        if eqn is None:
            return False
        rule = eqn.prim.lowering
        if getattr(rule, "store_shared" if store else "heavy", False):
            return True
        return any(self.is_heavy(y, store=store) for y in eqn.inputs if isinstance(y, Var))

    @contextlib.contextmanager
    def nest(self, extents, parallel=None, total=None, heavy=False):
        """Nested ``for`` loops over ``extents``; yields the index names.  The outermost is
        a ``prange`` above the size threshold (unless the body holds a run-time check)."""
        extents = list(extents)
        if self.row is not None and self.depth == 0 and extents and extents[0] == self.row[1]:
            # inside a row-fused group: the outer dim is the group's row loop
            self.depth += 1
            try:
                if len(extents) == 1:
                    self.memo.append({})
                    try:
                        yield [self.row[0]]
                    finally:
                        self.memo.pop()
                else:
                    with self.nest(extents[1:], parallel=False) as rest:
                        yield [self.row[0]] + list(rest)
            finally:
                self.depth -= 1
            return
        self.depth += 1
        try:
            with self._nest(extents, parallel, total, heavy) as names:
                yield names
        finally:
            self.depth -= 1

    @contextlib.contextmanager
    def _nest(self, extents, parallel=None, total=None, heavy=False):
        if not extents:
            self.memo.append({})
            try:
                yield []
            finally:
                self.memo.pop()
            return
        # a dim of extent 1 is index 0, no loop
        names = ["0" if n == 1 else self.tmp("i") for n in extents]
        looped = [(i, n) for i, n in zip(names, extents) if n != 1]
        total = _size(extents) if total is None else total
        thresh = PRANGE_MIN_HEAVY if heavy else PRANGE_MIN_CHEAP
        want = (parallel is not False and self.allow_parallel and not self.in_prange and total >= thresh
                and bool(looped) and looped[0][1] >= 2)
        head = len(self.lines)
        checks0 = self.checks
        was = self.in_prange
        for k, (i, n) in enumerate(looped):
            rng = "prange" if (k == 0 and want) else "range"
            self.line(f"for {i} in {rng}({n}):")
            self.ind += 1
            if k == 0 and want:
                self.in_prange = True
        self.memo.append({})
        try:
            yield names
        finally:
            self.memo.pop()
            self.ind -= len(looped)
            self.in_prange = was
            if want:
                if self.checks != checks0:
                    self.lines[head] = self.lines[head].replace("prange(", "range(", 1)
                else:
                    self.parallel = True

    def subgraph(self, g, ins):
        for v, n in zip(g.inputs, ins):
            self.names[v] = n
        saved = self.cur_eqn
        self.level += 1
        try:
            self.emit_graph(g, top=False)
        finally:
            self.level -= 1
        self.cur_eqn = saved
        return [self.operand(o, o.aval.dtype) for o in g.outputs]

    # -- reading values: materialized names or fused producers --------------------------
    def read(self, x, idx):
        if isinstance(x, Lit):
            return self.const(x.value, np.asarray(x.value).dtype)
        eqn = self.virtual.get(x)
        if eqn is None and x in self.pending_store:
            return self._store_on_read(x, idx)
        if eqn is None:
            n = self.names[x]
            if x.aval.ndim == 0:
                return n
            if self.flat and x.aval.ndim > 1:
                return f"{n}.flat[{idx[0]}]"
            if x in self.rowlocal:
                idx = idx[1:]
            return f"{n}[{', '.join(idx)}]"
        return self._memo_eval(x, eqn, idx)

    def _memo_eval(self, x, eqn, idx, store=False):
        """The value of ``x`` (made by ``eqn``) at ``idx``, computed once per loop body into a
        local; ``store``: also written into its buffer."""
        key = (x, tuple(idx))
        for m in reversed(self.memo):
            hit = m.get(key)
            if hit is not None:
                return hit
        saved = self.cur_eqn
        self.cur_eqn = eqn
        expr = self.eval_at(eqn, list(idx))
        self.cur_eqn = saved
        t = self.tmp("t")
        self.line(f"{t} = {expr}")
        if store:
            n = self.names[x]
            self.line(f"{n}[{', '.join(idx[1:] if x in self.rowlocal else idx)}] = {t}")
            self.stored.add(x)
        self.memo[-1][key] = t
        return t

    def _store_on_read(self, x, idx):
        """The first read of a row-local map fused into the reduction after it: compute the
        value here, store it into its row buffer, and let the reduction use it (one pass)."""
        return self._memo_eval(x, self.pending_store[x], idx, store=True)

    def _literal_in(self, eqn, value, cd, compute):
        """A literal operand of ``eqn`` in its compute dtype ``cd``.  A Python integer that
        ``cd`` cannot hold (``int8_x < 300``) is not cast (numba would wrap it to 44): a
        comparison uses it as it is, exactly as numpy compares; ``where`` keeps eager's
        wrapped value; arithmetic is refused, as eager code raises OverflowError there."""
        cd = np.dtype(cd)
        if cd.kind in "iu" and np.asarray(value).dtype.kind in "iu":
            v, info = int(value), np.iinfo(cd)
            if not info.min <= v <= info.max:
                if compute == "promote":  # a comparison (bool result)
                    return str(v) if -2 ** 63 <= v < 2 ** 63 else repr(float(v))
                if compute != "where":
                    raise CompileError(
                        f"dg.compile: cannot lower `{_headline(eqn)}`{_where(eqn)}: Python "
                        f"integer {v} out of bounds for {cd.name} (eager code raises "
                        f"OverflowError)")
        if cd == np.float64:
            # a Python float operand would make the source, run as Python (NUMBA_DISABLE_JIT),
            # raise ZeroDivisionError where numpy gives inf (1.0 / (x if x > 0 else 0.0))
            return f"np.float64({self.const(value, cd)})"
        return self.const(value, cd)

    def eval_at(self, eqn, idx):
        rule = eqn.prim.lowering
        if rule.kind == "indexmap":
            return rule.at(self, eqn, idx)
        out = eqn.outs[0]
        odt = out.aval.dtype
        oshape = out.aval.shape
        ins = eqn.inputs
        if rule.compute == "out":
            cdts = [odt] * len(ins)
        elif rule.compute == "promote":
            cd = np.result_type(*[x.value if isinstance(x, Lit) else x.aval.dtype for x in ins])
            cdts = [cd] * len(ins)
        elif rule.compute == "bool":
            cdts = [np.dtype(bool)] * len(ins)
        elif rule.compute == "where":
            cdts = [np.dtype(bool), odt, odt]
        else:
            raise CompileError(f"internal: compute rule {rule.compute!r}")
        args = []
        for x, cd in zip(ins, cdts):
            if isinstance(x, Lit):
                args.append(self._literal_in(eqn, x.value, cd, rule.compute))
            else:
                v = self.read(x, idx if self.flat else self.broadcast_idx(idx, oshape, x.aval.shape))
                args.append(self.cast(v, x.aval.dtype, cd))
        cd = cdts[-1]
        expr = rule.fn(self, args, cd, **eqn.params) if getattr(rule, "params", False) else rule.fn(self, args, cd)
        res = np.dtype(bool) if rule.compute in ("promote", "bool") else cd
        return self.cast(expr, res, odt)

    # -- graphs -----------------------------------------------------------------------
    def analyze(self, g):
        """Decide which results stay virtual (computed inline by their consumers)."""
        uses = {}
        for eqn in g.eqns:
            for x in eqn.inputs:
                if isinstance(x, Var):
                    uses.setdefault(x, []).append(eqn)
        outs = {x for x in g.outputs if isinstance(x, Var)}
        self.uses.update(uses)  # Vars are unique across graphs: one map for all
        for eqn in g.eqns:
            if not _fusible(eqn):
                continue
            (v,) = eqn.outs
            if v in outs or v.aval.ndim == 0 or None in v.aval.shape:
                continue
            us = uses.get(v, [])
            if us and (self._transpose_view(eqn, us) or self._row_view_for_matmul(eqn, us)):
                self.virtual[v] = eqn  # read by matmuls as ``x.T`` (a view, no copy)
                continue
            if not us or not all(_fuses_operands(u) for u in us):
                continue
            if eqn.prim.lowering.kind == "elementwise" and len({id(u) for u in us}) > 1 and (
                    eqn.prim.lowering.store_shared
                    or any(self.is_heavy(y, store=True) for y in eqn.inputs if isinstance(y, Var))):
                continue  # a transcendental read by several loops: computed once, stored
            if eqn.prim.lowering.kind == "elementwise":
                # read at more points than it has (broadcast): compute once instead
                size = _size(v.aval.shape)
                big = False
                for u in us:
                    if u.prim.lowering.kind in ("elementwise", "indexmap"):
                        us_size = _size(u.outs[0].aval.shape) if None not in u.outs[0].aval.shape else size
                        if us_size > size:
                            big = True
                if big:
                    continue
            self.virtual[v] = eqn

    def _transpose_view(self, eqn, us):
        """A 2-D transpose of a materialized array read only by matmuls (or fusing
        readers): BLAS reads it as the view ``x.T``."""
        if eqn.prim.name != "transpose" or tuple(eqn.params["perm"]) != (1, 0):
            return False
        x = eqn.inputs[0]
        if not isinstance(x, Var) or x.aval.ndim != 2 or None in x.aval.shape:
            return False
        if x in self.virtual and not self._row_view(self.virtual[x]):
            return False
        if np.dtype(x.aval.dtype).kind != "f":
            return False
        return any(u.prim.name == "matmul" for u in us) and all(
            u.prim.name == "matmul" or _fuses_operands(u) for u in us)

    def _row_view(self, eqn):
        """``x[i]`` (one integer index on the leading dim of a materialized array, the
        other dims whole): readable as the C-contiguous view ``x[i]``."""
        if eqn.prim.name != "getitem":
            return False
        x, *arrays = eqn.inputs
        if not isinstance(x, Var) or x in self.virtual or x.aval.ndim < 2 or None in x.aval.shape:
            return False
        if any(a.aval.ndim != 0 for a in arrays):
            return False
        plan = L.getitem_plan(x.aval.shape, eqn.params["spec"], [a.aval.shape for a in arrays])
        if plan is None:
            return False
        out_shape, items = plan
        if tuple(out_shape) != tuple(x.aval.shape[1:]) or items[0][0] not in ("fix", "arr"):
            return False
        return all(it[0] == "out" and it[2] == 0 and it[3] == 1 and out_shape[it[1]] == d
                   for it, d in zip(items[1:], x.aval.shape[1:]))

    def _row_view_for_matmul(self, eqn, us):
        return (np.dtype(eqn.outs[0].aval.dtype).kind == "f" and self._row_view(eqn)
                and any(u.prim.name == "matmul" for u in us)
                and all(u.prim.name == "matmul" or _fuses_operands(u) for u in us))

    def _row_view_expr(self, eqn):
        x, *arrays = eqn.inputs
        _, items = L.getitem_plan(x.aval.shape, eqn.params["spec"], [a.aval.shape for a in arrays])
        it = items[0]
        if it[0] == "fix":
            return f"{self.names[x]}[{it[1]}]"
        size = x.aval.shape[0]
        w = self.tmp("ix")
        self.line(f"{w} = np.int64({self.read(arrays[it[1]], [])})")
        self.line(f"if {w} < 0: {w} += {size}")
        self.check(f"{w} < 0 or {w} >= {size}")
        return f"{self.names[x]}[{w}]"

    def matmul_operand(self, x):
        """The array expression of a matmul operand: ``a.T`` for a virtual transpose,
        ``a[i]`` for a virtual row of ``a`` (views, no copies)."""
        eqn = self.virtual.get(x)
        if eqn is not None and eqn.prim.name == "transpose":
            y = eqn.inputs[0]
            inner = self.virtual.get(y)
            return f"{self._row_view_expr(inner) if inner is not None else self.names[y]}.T"
        if eqn is not None and eqn.prim.name == "getitem":
            return self._row_view_expr(eqn)
        return self.array(x)

    # -- row fusion: a run of row reductions and row-wise maps shares one outer loop -----
    def _row_extent(self, eqn):
        rule = eqn.prim.lowering
        if rule is None or eqn.prim.multiple_results or id(eqn) in self._acc_adds():
            return None
        if eqn.prim.name in ("reduce_sum", "reduce_max", "reduce_min"):
            x = eqn.inputs[0]
            if isinstance(x, Var) and x.aval.ndim >= 2 and 0 not in eqn.params["axes"] \
                    and None not in x.aval.shape:
                return x.aval.shape[0], x.aval.ndim
            return None
        out = eqn.outs[0]
        if _fusible(eqn) and rule.kind == "elementwise" and out.aval.ndim >= 2 \
                and None not in out.aval.shape:
            return out.aval.shape[0], out.aval.ndim
        return None

    def _row_safe(self, eqn, produced, R, nd):
        """Every value of the group this equation reads is read at the row index."""
        stack = list(eqn.inputs)
        while stack:
            x = stack.pop()
            if not isinstance(x, Var):
                continue
            if x in produced:
                if x.aval.ndim != nd or x.aval.shape[0] != R:
                    return False
                continue
            p = self.virtual.get(x)
            if p is None:
                continue
            if p.prim.lowering.kind != "elementwise" or x.aval.ndim != nd or x.aval.shape[0] != R:
                # index maps may move the row dim: only pure maps over materialized values
                if any(isinstance(y, Var) and y in produced for y in p.inputs):
                    return False
                if p.prim.lowering.kind != "elementwise":
                    stack.extend(p.inputs)
                continue
            stack.extend(p.inputs)
        return True

    def row_groups(self, g):
        eqns = [e for e in g.eqns if e.prim.multiple_results or e.outs[0] not in self.virtual]
        groups = {}
        i = 0
        while i < len(eqns):
            ext = self._row_extent(eqns[i])
            if ext is None or ext[0] < 2:
                i += 1
                continue
            R, nd = ext
            group, produced = [], set()
            j = i
            while j < len(eqns):
                e = eqns[j]
                if self._row_extent(e) != (R, nd) or not self._row_safe(e, produced, R, nd):
                    break
                group.append(e)
                produced.add(e.outs[0])
                j += 1
            if len(group) >= 2 and any(e.prim.lowering.kind == "emitter" for e in group):
                groups[id(group[0])] = group
                i = j
            else:
                i += 1
        return groups

    def _used_only_by(self, v, members):
        """Is every (direct, or through fused values) reader of ``v`` in ``members``?"""
        for u in self.uses.get(v, []):
            if id(u) in members:
                continue
            if u.prim.multiple_results or u.outs[0] not in self.virtual:
                return False
            if not self._used_only_by(u.outs[0], members):
                return False
        return True

    def emit_row_group(self, group):
        R = self._row_extent(group[0])[0]
        members = {id(e) for e in group}
        local = []
        for e in group:
            self.cur_eqn = e
            v = e.outs[0]
            if (e.prim.lowering.kind == "elementwise" and v not in self.out_param
                    and v not in self.graph_outputs
                    and self._used_only_by(v, members)):
                local.append(v)  # one row at a time, inside the row loop
                continue
            if v.aval.ndim > 0:
                self.alloc(v)
                self.prealloc.add(v)
        total = sum(_size(e.inputs[0].aval.shape if e.prim.lowering.kind == "emitter"
                          else e.outs[0].aval.shape) for e in group)
        heavy = any(self.is_heavy(y) for e in group for y in e.inputs if isinstance(y, Var))
        # a row buffer that dies where an output row is written at the same index lives in
        # that output row (no buffer); the others are allocated once outside a serial row loop
        alias, taken = {}, set()
        for v in local:  # one row buffer per output row
            a = self._out_row_alias(v, group)
            alias[v] = a if a not in taken else None
            taken.add(a)
        serial = not self._would_prange(R, total, heavy)
        for v in local:
            if serial and alias[v] is None:
                self.line(f"{self.name(v)} = {self.new_array(tuple(v.aval.shape[1:]), v.aval.dtype)}")
        with self._nest([R], total=total, heavy=heavy) as (r,):
            for v in local:
                n = self.name(v)
                if alias[v] is not None:
                    self.line(f"{n} = {alias[v]}[{r}]")
                elif not serial:
                    self.line(f"{n} = {self.new_array(tuple(v.aval.shape[1:]), v.aval.dtype)}")
                self.rowlocal.add(v)
                self.prealloc.add(v)
            self.row = (r, R)
            try:
                for k, e in enumerate(group):
                    nxt = group[k + 1] if k + 1 < len(group) else None
                    if nxt is not None and self._fuse_into_reduction(e, nxt):
                        self.pending_store[e.outs[0]] = e
                        continue
                    self.emit_eqn(e)
                    for v in list(self.pending_store):
                        if v not in self.stored:
                            raise CompileError("internal: a map fused into a reduction was not read")
                        del self.pending_store[v]
            finally:
                self.row = None

    # -- flat loops: same-shape elementwise work over C-contiguous arrays -----------------
    def flat_ok(self, roots, shape):
        """Can ``roots`` (equations computed at the loop's index, or values read there) be
        computed by one flat loop over ``shape`` (>= 2 dims): every array they read,
        directly or through fused producers, has that shape and is read at the loop's own
        index (elementwise chains and constant fills only: no broadcast, no index map).
        Every array a kernel names is C-contiguous (its inputs, outputs, constants and
        buffers; row views of them), so element k of each is ``x.flat[k]``: one loop instead
        of a nest (numba compiles each loop for tens of ms) and no per-dim index arithmetic."""
        if len(shape) < 2 or self.row is not None or 0 in shape:
            return False
        stack = []
        for r in roots:
            if isinstance(r, Var):
                stack.append(r)
            elif r.prim.lowering.kind == "elementwise" or r.prim.name == "full":
                stack.extend(r.inputs)
            else:
                return False
        seen = set()
        while stack:
            x = stack.pop()
            if isinstance(x, Lit) or id(x) in seen:
                continue
            seen.add(id(x))
            if x.aval.ndim == 0:
                continue
            if tuple(x.aval.shape) != tuple(shape):
                return False
            p = self.virtual.get(x)
            if p is None:
                if x in self.rowlocal or x in self.pending_store or x not in self.names:
                    return False
                continue
            if p.prim.name == "full":
                continue
            if p.prim.lowering.kind != "elementwise":
                return False
            stack.extend(p.inputs)
        return True

    def alloc_copy(self, out, x, dt):
        """The buffer of ``out`` holding ``x`` (of ``out``'s shape, read at the same index,
        cast to ``dt``): zero bytes when ``x`` is a constant 0 and the buffer is new, else
        one loop (flat when it can be)."""
        shape = self.shape_of(out)
        p = self.virtual.get(x) if isinstance(x, Var) else None
        value = x.value if isinstance(x, Lit) else \
            p.params["value"] if p is not None and p.prim.name == "full" else None
        if value is not None and self._zero_bits(value, dt) and self._fresh(out):
            return self.alloc(out, zero=True)
        dst = self.alloc(out)
        if self.flat_ok([x], shape):
            with self.flat_nest(shape) as i:
                self.line(f"{dst}.flat[{i}] = {self.cast(self.read(x, [i]), self.dtype_of(x), dt)}")
        else:
            with self.nest(shape) as idx:
                self.line(f"{dst}[{', '.join(idx)}] = {self.cast(self.read(x, list(idx)), self.dtype_of(x), dt)}")
        return dst

    @contextlib.contextmanager
    def flat_nest(self, shape, heavy=False, parallel=None):
        """One loop over the elements of ``shape`` (see ``flat_ok``); yields its index."""
        was = self.flat
        with self.nest([_size(shape)], parallel=parallel, heavy=heavy) as (i,):
            self.flat = True
            try:
                yield i
            finally:
                self.flat = was

    @staticmethod
    def _zero_bits(value, dt):
        """Is ``value`` as ``dt`` all zero bits (what ``zeros`` writes; not -0.0)?"""
        v = np.asarray(value).astype(dt)
        return not v.tobytes().strip(b"\0")

    def _fresh(self, var):
        """Can ``alloc(var, zero=True)`` make a new zeroed buffer (not an output or a
        preset buffer)?"""
        return var not in self.prealloc and var not in self.out_param and var not in self.prefer

    def split_matmul(self, m, n, k):
        """Should an (m, k) @ (k, n) product of the prange variant be split in blocks over
        numba's threads (compile/blas.py), BLAS on one thread?"""
        return self.allow_parallel and not self.in_prange and should_split(m, n, k)

    def _would_prange(self, R, total, heavy):
        thresh = PRANGE_MIN_HEAVY if heavy else PRANGE_MIN_CHEAP
        return self.allow_parallel and not self.in_prange and total >= thresh and R >= 2

    def _fuse_into_reduction(self, e, red):
        """Is ``e`` (a row-fused map) read only by the reduction ``red`` right after it (and by
        later members through its buffer), over whole rows at its own index?"""
        if e.prim.lowering.kind != "elementwise" or red.prim.lowering.kind != "emitter":
            return False
        if red.prim.name not in ("reduce_sum", "reduce_max", "reduce_min"):
            return False
        v = e.outs[0]
        if red.inputs[0] is not v or v.aval.ndim < 2:
            return False
        return set(red.params["axes"]) == set(range(1, v.aval.ndim))

    def _out_row_alias(self, v, group):
        """The output parameter whose row can hold row buffer ``v``: the last group member
        reading ``v`` writes that output elementwise at ``v``'s own index."""
        readers = [k for k, e in enumerate(group) if self._reads(e, v)]
        if not readers:
            return None
        last = group[readers[-1]]
        out = last.outs[0]
        p = self.out_param.get(out)
        if (p is None or last.prim.lowering.kind != "elementwise"
                or out.aval.shape != v.aval.shape or out.aval.dtype != v.aval.dtype):
            return None
        return p if self._reads_at_own_index(last, v) else None

    def _reads(self, e, v):
        stack = [y for y in e.inputs if isinstance(y, Var)]
        while stack:
            y = stack.pop()
            if y is v:
                return True
            p = self.virtual.get(y)
            if p is not None:
                stack.extend(z for z in p.inputs if isinstance(z, Var))
        return False

    def _reads_at_own_index(self, e, v):
        """Every path from ``e`` to ``v`` goes through same-shape elementwise values only."""
        shape = e.outs[0].aval.shape
        stack = [y for y in e.inputs if isinstance(y, Var)]
        while stack:
            y = stack.pop()
            if y is v:
                continue
            p = self.virtual.get(y)
            if p is None:
                continue
            if not self._reads(p, v) and not any(z is v for z in p.inputs):
                continue
            if p.prim.lowering.kind != "elementwise" or y.aval.shape != shape:
                return False
            stack.extend(z for z in p.inputs if isinstance(z, Var))
        return True

    def _acc_adds(self):
        return self.bufplan.acc_adds if self.bufplan is not None else ()

    def accumulate_into(self, add, x):
        """``add`` = ``x + a @ b`` with the product added by BLAS into ``x``'s buffer
        (compile/buffers.py: ``acc``), when ``x`` is materialized here and the sum is not
        computed inline by its readers nor written to an output parameter: binds the sum
        to that buffer, marks the add done and returns the buffer's name; else None."""
        (out,) = add.outs
        if out in self.virtual or x in self.virtual or x not in self.names \
                or out in self.out_param or out in self.prealloc or x in self.prealloc \
                or x in self.rowlocal or out in self.rowlocal or x in self.graph_inputs:
            return None
        n = self.names[x]
        self.names[out] = n
        self.skip.add(id(add))
        if x in self.owned:  # top level: the buffer now holds the sum (released with it)
            self.owned[out] = self.owned.pop(x)
        return n

    def emit_graph(self, g, top):
        self.analyze(g)
        self.graph_outputs.update(x for x in g.outputs if isinstance(x, Var))
        groups = self.row_groups(g) if self.row is None else {}
        siblings = self.sibling_groups(g, groups) if self.row is None else {}
        done = set()
        for eqn in g.eqns:
            if not eqn.prim.multiple_results and eqn.outs[0] in self.virtual:
                continue
            if id(eqn) in done:
                continue
            if id(eqn) in self.skip:  # computed by another equation's emission
                if top:
                    self.emitted.add(id(eqn))
                    self._release_dead()
                continue
            grp = groups.get(id(eqn))
            if grp is not None:
                done.update(id(e) for e in grp)
                self.emit_row_group(grp)
                if top:
                    self.emitted.update(id(e) for e in grp)
                    self._release_dead()
                continue
            sib = siblings.get(id(eqn))
            if sib is not None:
                done.update(id(e) for e in sib[0] + sib[1])
                self.emit_sibling_group(*sib)
                continue
            self.emit_eqn(eqn)
            if top:
                self.emitted.add(id(eqn))
                self._release_dead()

    # -- sibling fusion: materialized elementwise results of one shape, one loop nest ----
    def _sibling_shape(self, eqn, in_rows):
        if id(eqn) in in_rows or id(eqn) in self._acc_adds():
            return None
        rw = getattr(eqn.prim.lowering, "row_write", None)
        if rw is not None:  # a tape row write (dynamic_update): a loop over the row
            out = eqn.outs[0]
            inner = tuple(out.aval.shape[1:])
            if out.aval.ndim < 2 or None in inner or isinstance(eqn.inputs[2], Lit):
                return None
            return inner
        if not _fusible(eqn) or eqn.prim.lowering.kind != "elementwise":
            return None
        out = eqn.outs[0]
        if out.aval.ndim == 0 or None in out.aval.shape or out in self.rowlocal:
            return None
        return tuple(out.aval.shape)

    def _scalar_eqn(self, eqn):
        return (_fusible(eqn) and eqn.prim.lowering.kind == "elementwise"
                and eqn.outs[0].aval.ndim == 0)

    def _same_index_reads(self, eqn, produced, shape):
        """Every value of ``produced`` that ``eqn`` reads (directly or through fused
        producers) is read at the loop's own index."""
        stack = [(x, True) for x in eqn.inputs]
        while stack:
            x, same = stack.pop()
            if not isinstance(x, Var):
                continue
            if x in produced:
                if not same:
                    return False
                continue
            p = self.virtual.get(x)
            if p is None:
                continue
            ok = same and p.prim.lowering.kind == "elementwise" and tuple(x.aval.shape) == shape
            stack.extend((y, ok) for y in p.inputs)
        return True

    def sibling_groups(self, g, row_groups):
        """Runs of materialized elementwise equations over one shape (scalar ones may sit
        between them, emitted first) computed by one loop nest: one pass over memory,
        common reads shared (the reverse loop of a while's VJP: the carry's and the
        constants' cotangents from the same operands)."""
        in_rows = {id(e) for grp in row_groups.values() for e in grp}
        eqns = [e for e in g.eqns if e.prim.multiple_results or e.outs[0] not in self.virtual]
        groups = {}
        i = 0
        while i < len(eqns):
            shape = self._sibling_shape(eqns[i], in_rows)
            if shape is None:
                i += 1
                continue
            members, scalars, produced = [eqns[i]], [], set()
            if getattr(eqns[i].prim.lowering, "row_write", None) is None:
                produced.add(eqns[i].outs[0])
            pending = []
            j = i + 1
            while j < len(eqns):
                f = eqns[j]
                if id(f) not in in_rows and self._scalar_eqn(f):
                    pending.append(f)
                elif (self._sibling_shape(f, in_rows) == shape
                      and self._same_index_reads(f, produced, shape)):
                    members.append(f)
                    if getattr(f.prim.lowering, "row_write", None) is None:
                        produced.add(f.outs[0])
                    scalars += pending
                    pending = []
                else:
                    break
                j += 1
            if len(members) >= 2:
                groups[id(members[0])] = (members, scalars)
                i = eqns.index(members[-1]) + 1
            else:
                i += 1
        return groups

    def emit_sibling_group(self, members, scalars):
        for e in scalars:
            self.emit_eqn(e)
        dsts = []
        for e in members:
            self.cur_eqn = e
            rw = getattr(e.prim.lowering, "row_write", None)
            dsts.append(rw[0](self, e) if rw is not None else self.alloc(e.outs[0]))
        shape = self._sibling_shape(members[0], ())
        heavy = any(getattr(e.prim.lowering, "heavy", False)
                    or any(self.is_heavy(y) for y in e.inputs if isinstance(y, Var)) for e in members)
        if not any(getattr(e.prim.lowering, "row_write", None) for e in members) \
                and self.flat_ok(members, shape):
            with self.flat_nest(shape, heavy) as i:
                for e, dst in zip(members, dsts):
                    self.cur_eqn = e
                    self.line(f"{dst}.flat[{i}] = {self.eval_at(e, [i])}")
            return
        with self.nest(shape, heavy=heavy) as idx:
            for e, dst in zip(members, dsts):
                self.cur_eqn = e
                rw = getattr(e.prim.lowering, "row_write", None)
                try:
                    if rw is not None:
                        rw[1](self, e, *dst, idx)
                        continue
                    expr = self.eval_at(e, idx)
                except Exception as err:  # noqa: BLE001 - named as emit_eqn names it
                    raise CompileError(f"dg.compile: cannot lower `{_headline(e)}`{_where(e)}: "
                                       f"{type(err).__name__}: {err}") from err
                self.line(f"{dst}[{', '.join(idx)}] = {expr}")

    def emit_eqn(self, eqn):
        if True:
            self.cur_eqn = eqn
            rule = _rule(eqn)
            try:
                if _fusible(eqn):
                    self.materialize(eqn)
                elif rule.kind == "indexmap":
                    rule.emit(self, eqn)
                else:
                    if not rule.ok(eqn):
                        raise CompileError("this form of the op is not supported by the compiler")
                    rule.emit(self, eqn)
            except CompileError as e:
                if "dg.compile:" in str(e):
                    raise
                raise CompileError(
                    f"dg.compile: cannot lower `{_headline(eqn)}`{_where(eqn)}: {e}"
                ) from None
            except Exception as e:  # noqa: BLE001 - a bug or an unsupported form: named
                raise CompileError(
                    f"dg.compile: cannot lower `{_headline(eqn)}`{_where(eqn)}: "
                    f"{type(e).__name__}: {e}"
                ) from e

    def materialize(self, eqn):
        (out,) = eqn.outs
        if out.aval.ndim == 0:
            with self.nest([]):
                expr = self.eval_at(eqn, [])
            self.bind(out, expr)
            return
        shape = self.shape_of(out)
        if eqn.prim.name == "full" and self._zero_bits(eqn.params["value"], out.aval.dtype) \
                and self._fresh(out):
            self.alloc(out, zero=True)  # zeros: memset, no loop
            return
        dst = self.alloc(out)
        heavy = getattr(eqn.prim.lowering, "heavy", False) or any(
            self.is_heavy(y) for y in eqn.inputs if isinstance(y, Var))
        if out not in self.rowlocal and self.flat_ok([eqn], shape):
            with self.flat_nest(shape, heavy) as i:
                self.line(f"{dst}.flat[{i}] = {self.eval_at(eqn, [i])}")
            return
        with self.nest(shape, heavy=heavy) as idx:
            expr = self.eval_at(eqn, idx)
            self.line(f"{dst}[{', '.join(idx[1:] if out in self.rowlocal else idx)}] = {expr}")

    def generate(self, fname="kernel"):
        from .buffers import BufferPlan

        g = self.graph
        self.bufplan = BufferPlan(g)
        params = []
        for k, v in enumerate(g.inputs):
            # a dynamically shaped input (a while loop's tape saved by a forward kernel):
            # read only by the tape ops, which take its length at run time
            p = f"a{k}"
            self.names[v] = p
            params.append(p)
        seen = set(g.inputs)
        for k, v in enumerate(g.outputs):
            if isinstance(v, Var) and None in v.aval.shape:
                if v not in self.dyn_outs:
                    self.dyn_outs.append(v)
                    rest = "".join(f", {d}" for d in v.aval.shape[1:])
                    self.line(f"{self.name(v)} = {self.new_array(f'(0{rest})', v.aval.dtype)}")
                continue
            if isinstance(v, Var) and v not in seen and v.aval.ndim > 0:
                self.out_param[v] = f"o{k}"
            if isinstance(v, Var):
                seen.add(v)
        self.emit_graph(g, top=True)
        self.cur_eqn = None
        for k, v in enumerate(g.outputs):
            o = f"o{k}"
            if isinstance(v, Var) and v in self.dyn_outs:
                continue
            if isinstance(v, Lit):
                self.line(f"{o}[0] = {self.const(v.value, np.asarray(v.value).dtype)}")
            elif v.aval.ndim == 0:
                self.line(f"{o}[0] = {self.names[v]}")
            elif v in self.direct and self.out_param.get(v) == o:
                continue
            elif self.flat_ok([v], tuple(v.aval.shape)):
                with self.flat_nest(tuple(v.aval.shape)) as i:
                    self.line(f"{o}.flat[{i}] = {self.read(v, [i])}")
            else:
                with self.nest(v.aval.shape) as idx:
                    self.line(f"{o}[{', '.join(idx)}] = {self.read(v, idx)}")
        self.line(f"return {self.ret(0)}")
        outs = [f"o{k}" for k in range(len(g.outputs))
                if not (isinstance(g.outputs[k], Var) and g.outputs[k] in self.dyn_outs)]
        flags = set(FASTMATH) | ({"reassoc"} if self.has_reduction else set())
        fm = "{" + ", ".join(repr(f) for f in sorted(flags)) + "}"
        head = [
            "# generated by dualgraph.compile: do not edit (content-addressed kernel)",
            "import numpy as np",
            "from numba import njit, prange",
        ]
        by_mod = {}
        for fn, mod in sorted(self.imports.items()):
            by_mod.setdefault(mod, []).append(fn)
        for mod, fns in sorted(by_mod.items()):
            head.append(f"from {mod} import {', '.join(fns)}")
        head += [
            "",
            "",
            f"@njit(cache=True, nogil=True, error_model='numpy', parallel={self.parallel}, "
            f"fastmath={fm})",
            f"def {fname}({', '.join(params + self.ws_params() + self.const_params + outs)}):",
        ]
        return "\n".join(head + self.lines) + "\n"


def default_math(name, dt):
    """(function name, module) of the inlined scalar ``name`` for dtype ``dt``: the math
    library (dualgraph.compile.mathlib) when it has it, else the runtime fallback."""
    fn = MATH.get(name, {}).get(dt.name)
    if fn is not None:
        return fn, "dualgraph.compile.mathlib"
    if name in ("fmax", "fmin") and dt.kind == "f":
        return name, "dualgraph.compile.mathlib"
    short = {"float32": "f32", "float64": "f64"}.get(dt.name)
    if short is None:
        raise CompileError(f"dg.compile: no scalar `{name}` for dtype {dt.name}")
    return f"{name}_{short}", "dualgraph.compile.runtime"


def generate(graph, fname="kernel", parallel=True):
    """``(source, consts, codegen)`` for ``graph``; ``parallel=False``: no ``prange``."""
    cg = Codegen(graph, parallel=parallel)
    src = cg.generate(fname)
    return src, cg.consts, cg
