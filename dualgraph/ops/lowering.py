"""Lowering rules: how each primitive becomes numba source text.

Each primitive's rule is given in its declaration (``lowering=`` beside its other rules,
in ops/primitives.py, ops/math_ops.py, ops/shape_ops.py, ops/nn_ops.py and
static/control_flow.py): elementwise templates are written there inline; this module
holds the rule classes and the bodies of the larger emitters the declarations reference.

Every rule produces *text* (this module never imports numba); the code generator in
``dualgraph.compile.codegen`` calls them through a small context object ``ctx``:

  ctx.read(atom, idx)     -> scalar expression of a Var/Lit at index ``idx`` (a list of
                             index expressions, one per dimension), fusing virtual producers
  ctx.cast(expr, src, dst)-> ``expr`` converted from dtype ``src`` to ``dst``
  ctx.const(value, dtype) -> a typed literal (``np.float32(0.5)`` in float32 code)
  ctx.math(name, dtype)   -> the name of an inlined scalar function (``exp_f32``)
  ctx.check(cond)         -> emit "if cond: give up" (the call re-runs eagerly and raises
                             eager's exact error, or returns eager's result)
  ctx.line(text)          -> emit one statement; ``ctx.loop(extent)`` a for loop
  ctx.name(var)           -> the local holding a materialized value
  ctx.alloc(var)          -> name of a fresh C-contiguous output array for ``var``
  ctx.array(atom)         -> name of a materialized array (never a scalar)
  ctx.subgraph(graph, in_names) -> emit a sub-graph inline, return its output expressions

Three kinds of rule (``PRIMITIVES[name].lowering``):
  Elementwise(fn, compute)  scalar template ``fn(ctx, args, dtype) -> expr`` on operands
                            already cast to the compute dtype (``"out"``: the result dtype,
                            ``"promote"``: numpy's promotion of the operands, ``"bool"``)
  IndexMap(at, ok)          a pure index transformation (transpose, broadcast, getitem, ...):
                            ``at(ctx, eqn, idx) -> expr``; fused into consumers
  Emitter(emit)             anything else: ``emit(ctx, eqn)`` writes statements and binds
                            the outputs' names
"""
from __future__ import annotations

import contextlib

import numpy as np


class Elementwise:
    kind = "elementwise"

    def __init__(self, fn, compute="out", heavy=False, params=False, store_shared=None):
        self.fn = fn
        self.compute = compute
        # transcendental, division or square root (a 256-bit divide or sqrt takes ~7 cycles
        # per 8 float32 on Zen 1, a multiply 1): worth parallelising at smaller sizes (newton,
        # 100k elements: prange 435 us against serial 742, benchmarks/CODEGEN-FACTS.md)
        self.heavy = heavy
        # computed once and stored when several loops read it (default: ``heavy``); not a
        # division: storing and reloading its array costs about as much as dividing again,
        # and a new buffer per while-loop iteration more (newton_grad's reverse loop)
        self.store_shared = heavy if store_shared is None else store_shared
        self.params = params  # fn also takes the equation's params as keywords


class IndexMap:
    kind = "indexmap"

    def __init__(self, at, ok=None, emit=None):
        self.at = at
        self.ok = ok or (lambda eqn: True)  # can this equation be fused as an index map?
        if emit is not None:
            self.emit = emit  # the equations ``ok`` rejects (reshape: a view)


class Emitter:
    kind = "emitter"

    def __init__(self, emit, fuses=False, ok=None, row_write=None):
        self.emit = emit
        self.fuses = fuses  # reads its operands with ctx.read: their producers fuse into it
        self.ok = ok or (lambda eqn: True)
        # ``(pre, row)``: ``emit`` split so that sibling equations share its row loop
        self.row_write = row_write


# ----------------------------------------------------------------------------------------
# elementwise: the scalar templates are written beside each primitive's declaration
# (ops/primitives.py, ops/math_ops.py); these are the helpers they share
# ----------------------------------------------------------------------------------------


def _isf(dt):
    return np.dtype(dt).kind == "f"


def _isb(dt):
    return np.dtype(dt).kind == "b"


is_float, is_bool = _isf, _isb


def math_call(name):
    """Template ``name_f32(x)``: the inlined scalar function of the math library."""
    return lambda c, a, dt: f"{c.math(name, dt)}({a[0]})"


def np_call(fn):
    """Template ``np.fn(x)``: numpy's scalar function (correct, not vectorized)."""
    return lambda c, a, dt: f"np.{fn}({a[0]})"


def binop(op):
    """Template ``(x op y)``."""
    return lambda c, a, dt: f"({a[0]} {op} {a[1]})"


def identity(c, a, dt):
    return a[0]


# ----------------------------------------------------------------------------------------
# index maps: fused into their consumers as index arithmetic
# ----------------------------------------------------------------------------------------


def _transpose_at(c, eqn, idx):
    perm = eqn.params["perm"]
    src = [None] * len(perm)
    for o, p in enumerate(perm):
        src[p] = idx[o]
    return c.read(eqn.inputs[0], src)


def _broadcast_at(c, eqn, idx):
    x = eqn.inputs[0]
    return c.read(x, c.broadcast_idx(idx, eqn.outs[0].aval.shape, c.shape_of(x)))


def _squeezable(eqn):
    """A reshape that only inserts or removes size-1 dims is an index map."""
    a = [d for d in eqn.inputs[0].aval.shape if d != 1]
    b = [d for d in eqn.params["shape"] if d != 1]
    return a == b


def _reshape_at(c, eqn, idx):
    x = eqn.inputs[0]
    big = [i for i, d in zip(idx, eqn.params["shape"]) if d != 1]
    it = iter(big)
    src = ["0" if d == 1 else next(it) for d in c.shape_of(x)]
    return c.read(x, src)


def _reshape_emit(c, eqn):
    (out,) = eqn.outs
    src = c.array(eqn.inputs[0])
    shape = tuple(out.aval.shape)
    c.bind(out, f"{src}.reshape({shape!r})")


def _full_at(c, eqn, idx):
    return c.const(eqn.params["value"], eqn.outs[0].aval.dtype)


def getitem_plan(x_shape, spec, array_shapes):
    """numpy's indexing rule as a plan: ``(out_shape, items)`` where ``items`` lists, per
    input dim, how to compute its index from the output index: ``("fix", k)``,
    ``("out", j, start, step)`` or ``("arr", k, dim, [out dims of the broadcast])``.
    Returns None for what it does not model."""
    n_consume = sum(1 for s in spec if s is not None and s is not Ellipsis)
    items = []
    for s in spec:
        if s is Ellipsis:
            items += [("s", None, None, None)] * (len(x_shape) - n_consume)
        else:
            items.append(s)
    if Ellipsis not in spec:
        items += [("s", None, None, None)] * (len(x_shape) - n_consume)
    has_arr = any(isinstance(s, tuple) and s[0] == "a" for s in items)
    adv_pos = [i for i, s in enumerate(items)
               if (isinstance(s, tuple) and s[0] == "a") or (has_arr and isinstance(s, int))]
    bshape = ()
    if has_arr:
        try:
            bshape = np.broadcast_shapes(*[array_shapes[s[1]] for s in items
                                           if isinstance(s, tuple) and s[0] == "a"])
        except ValueError:
            return None
    adjacent = bool(adv_pos) and adv_pos == list(range(adv_pos[0], adv_pos[-1] + 1))
    out_shape = []
    plan = []  # per input dim
    nb = len(bshape)
    bdims = None
    if has_arr and not adjacent:
        bdims = list(range(nb))
        out_shape += list(bshape)
    dim = 0
    for i, s in enumerate(items):
        if s is None:
            out_shape.append(1)
            continue
        size = x_shape[dim]
        if isinstance(s, int) and not has_arr:
            k = s + size if s < 0 else s
            plan.append(("fix", k))
        elif isinstance(s, int) or s[0] == "a":
            if bdims is None:
                bdims = list(range(len(out_shape), len(out_shape) + nb))
                out_shape += list(bshape)
            if isinstance(s, int):
                plan.append(("fix", s + size if s < 0 else s))
            else:
                plan.append(("arr", s[1], size, bdims))
        else:
            start, stop, step = slice(s[1], s[2], s[3]).indices(size)
            n = len(range(start, stop, step))
            plan.append(("out", len(out_shape), start, step))
            out_shape.append(n)
        dim += 1
    return tuple(out_shape), plan


def _getitem_ok(eqn):
    x, *arrays = eqn.inputs
    if any(a.aval.dtype.kind not in "iu" for a in arrays):
        return False
    plan = getitem_plan(x.aval.shape, eqn.params["spec"], [a.aval.shape for a in arrays])
    return plan is not None and plan[0] == tuple(eqn.outs[0].aval.shape)


def getitem_src(c, x_shape, spec, arrays, idx):
    """The input index (list of expressions) that output index ``idx`` reads."""
    out_shape, plan = getitem_plan(x_shape, spec, [c.shape_of(a) for a in arrays])
    src = []
    for p in plan:
        if p[0] == "fix":
            src.append(str(p[1]))
        elif p[0] == "out":
            _, j, start, step = p
            e = idx[j]
            if step != 1:
                e = f"{e} * {step}"
            if start:
                e = f"{start} + {e}"
            src.append(f"({e})")
        else:
            _, k, size, bdims = p
            a = arrays[k]
            bidx = [idx[d] for d in bdims]
            v = c.read(a, c.broadcast_idx(bidx, tuple(out_shape[d] for d in bdims), c.shape_of(a)))
            w = c.tmp("ix")
            c.line(f"{w} = np.int64({v})")
            c.line(f"if {w} < 0: {w} += {size}")
            c.check(f"{w} < 0 or {w} >= {size}")
            src.append(w)
    return src


def _getitem_at(c, eqn, idx):
    x, *arrays = eqn.inputs
    return c.read(x, getitem_src(c, c.shape_of(x), eqn.params["spec"], arrays, idx))


# ----------------------------------------------------------------------------------------
# reductions: loops over the kept dims outside, the reduced dims inside, a scalar
# accumulator; the operand's producers are fused into the inner loop by ``ctx.read``.
# ----------------------------------------------------------------------------------------


def _reduce_emitter(op):
    def emit(c, eqn):
        x = eqn.inputs[0]
        (out,) = eqn.outs
        axes, keepdims = eqn.params["axes"], eqn.params["keepdims"]
        shape = c.shape_of(x)
        xdt, odt = c.dtype_of(x), out.aval.dtype
        kept = [d for d in range(len(shape)) if d not in axes]
        red = [d for d in range(len(shape)) if d in axes]
        nred = 1
        for d in red:
            nred *= shape[d]
        nout = 1
        for d in kept:
            nout *= shape[d]
        if op in ("max", "min") and nred == 0 and nout > 0:
            c.check("True")  # numpy: zero-size array to reduction operation ... no identity
        if op in ("sum", "prod"):
            adt = np.dtype(np.float64) if _isf(odt) else odt
            init = c.const(0 if op == "sum" else 1, adt)
        else:
            adt = xdt
            if _isf(xdt):
                init = c.const(-np.inf if op == "max" else np.inf, adt)
            elif _isb(xdt):
                init = "False" if op == "max" else "True"
            else:
                info = np.iinfo(xdt)
                init = c.const(info.min if op == "max" else info.max, adt)
        scalar_out = len(out.aval.shape) == 0
        dst = None if scalar_out else c.alloc(out)
        acc = c.tmp("acc")
        heavy = c.is_heavy(x)
        c.reduction_used()
        if not kept and getattr(c, "row", None) is None and nred >= 2 * RED_BLOCK:
            _blocked_reduction(c, eqn, op, x, shape, red, acc, adt, init, heavy)
            if scalar_out:
                c.bind(out, c.cast(acc, adt, odt))
            else:
                c.line(f"{dst}[{', '.join(['0'] * len(out.aval.shape))}] = {c.cast(acc, adt, odt)}")
            return
        if len(shape) == 2 and red == [0] and shape[0] >= 2 and shape[1] >= 2 \
                and getattr(c, "row", None) is None:
            _column_reduction(c, op, x, shape, dst, keepdims, adt, odt, init)
            return
        if not kept and c.flat_ok([x], shape):  # all of a C array: one loop in memory order
            c.line(f"{acc} = {init}")
            if _chunked(op, xdt, adt, nred):
                with c.nest([], parallel=False):
                    was, c.flat = c.flat, True
                    try:
                        with _sum_chunks(c, acc, "0", nred) as (i, part):
                            _accumulate(c, op, part, c.read(x, [i]), xdt)
                    finally:
                        c.flat = was
            else:
                with c.flat_nest(shape, parallel=False) as i:
                    _accumulate(c, op, acc, c.cast(c.read(x, [i]), xdt, adt), adt)
            if scalar_out:
                c.bind(out, c.cast(acc, adt, odt))
            else:
                c.line(f"{dst}[{', '.join(['0'] * len(out.aval.shape))}] = {c.cast(acc, adt, odt)}")
            return
        with c.nest([shape[d] for d in kept], total=nout * max(nred, 1), heavy=heavy) as oidx:
            c.line(f"{acc} = {init}")
            with _reduction_loops(c, op, [shape[d] for d in red], acc, xdt, adt) as (ridx, into, dt):
                full = [None] * len(shape)
                for d, i in zip(kept, oidx):
                    full[d] = i
                for d, i in zip(red, ridx):
                    full[d] = i
                _accumulate(c, op, into, c.cast(c.read(x, full), xdt, dt), dt)
            if not scalar_out:
                didx = []
                it = iter(oidx)
                for d in range(len(shape)):
                    if d in axes:
                        if keepdims:
                            didx.append("0")
                    else:
                        didx.append(next(it))
                c.line(f"{dst}[{', '.join(didx)}] = {c.cast(acc, adt, odt)}")
        if scalar_out:
            c.bind(out, c.cast(acc, adt, odt))

    return Emitter(emit, fuses=True)


# full reductions over >= 2 * RED_BLOCK elements: per-block partials (a ``prange`` over the
# blocks above the size threshold, ``range`` below), then the blocks combined in order.  The
# block size depends on the shape only, so serial and parallel kernels give the same bits.
RED_BLOCK = 1 << 13

# float32 sums: each run of SUM_CHUNK consecutive elements of the innermost reduced loop is
# summed in a float32 partial, and the partials are added into the float64 accumulator.  The
# chunk's loop vectorizes in float32 (8 lanes, 4 interleaved vectors), where a float64
# accumulator converts every element and adds half as many per instruction: a 1000-element
# sum 2.6x faster, softmax's exp-and-sum pass 15% (benchmarks/CODEGEN-FACTS.md).  Rounding:
# at most SUM_CHUNK - 1 float32 additions in sequence (when the loop does not vectorize;
# about SUM_CHUNK / 32 + 5 when it does) before the exact-enough float64 sum, against
# numpy's pairwise float32 summation (blocks of 128 in 8 lanes, then halves): the same order
# of error.  Shorter reductions keep the float64 accumulator (their cost is the loop's).
SUM_CHUNK = 256


def _chunked(op, xdt, adt, n):
    return (op == "sum" and np.dtype(xdt) == np.float32 and np.dtype(adt) == np.float64
            and n >= 2 * SUM_CHUNK)


@contextlib.contextmanager
def _sum_chunks(c, acc, lo, hi, end=None):
    """Loops over ``range(lo, hi)`` in chunks of SUM_CHUNK; yields the element index and the
    chunk's float32 partial, which is added into ``acc`` (float64) after each chunk.
    ``end``: a bound no chunk crosses before ``hi`` (simpler than ``hi``), if any."""
    cb, part, j = c.tmp("cb"), c.tmp("acc"), c.tmp("i")
    c.line(f"for {cb} in range({lo}, {hi}, {SUM_CHUNK}):")
    with c.indented():
        c.line(f"{part} = {c.const(0, np.float32)}")
        c.line(f"for {j} in range({cb}, {c.int_minmax('imin', f'{cb} + {SUM_CHUNK}', hi if end is None else end)}):")
        with c.indented():
            yield j, part
        c.line(f"{acc} += np.float64({part})")


@contextlib.contextmanager
def _reduction_loops(c, op, extents, acc, xdt, adt):
    """The loops over the reduced dims (``c.nest``), the innermost in float32 chunks when
    ``_chunked``; yields the indices, the accumulator to add into and its dtype."""
    if not extents or not _chunked(op, xdt, adt, extents[-1]):
        with c.nest(extents, parallel=False) as idx:
            yield idx, acc, adt
        return
    with c.nest(extents[:-1], parallel=False) as outer:
        with _sum_chunks(c, acc, "0", extents[-1]) as (j, part):
            yield list(outer) + [j], part, np.dtype(np.float32)


def _accumulate(c, op, acc, v, adt):
    if op == "sum":
        c.line(f"{acc} += {v}")
    elif op == "prod":
        c.line(f"{acc} *= {v}")
    elif _isb(adt):
        c.line(f"{acc} = {acc} {'|' if op == 'max' else '&'} {v}")
    elif not _isf(adt):
        c.line(f"{acc} = {op}({acc}, {v})")
    else:
        c.line(f"{acc} = {c.math('f' + op, adt)}({acc}, {v})")


def _column_reduction(c, op, x, shape, dst, keepdims, adt, odt, init):
    """``x.sum(0)`` (max, min, ...) of a 2-d ``x``: one accumulator per column, updated row
    by row, so the operand is read in memory order and the inner loop vectorizes (a loop
    per column strided over the rows ran 10x slower than numpy).  Each column still adds
    its rows in order: the same bits as the loop per column."""
    xdt = c.dtype_of(x)
    R, C = shape
    accs = c.tmp("acc")
    if op == "sum":  # zero accumulators: zero bytes, no loop
        c.line(f"{accs} = {c.new_array(C, adt, zero=True)}")
    else:
        c.line(f"{accs} = {c.new_array(C, adt)}")
        with c.nest([C], parallel=False) as (j,):
            c.line(f"{accs}[{j}] = {init}")
    with c.nest([R, C], parallel=False) as (i, j):
        _accumulate(c, op, f"{accs}[{j}]", c.cast(c.read(x, [i, j]), xdt, adt), adt)
    with c.nest([C], parallel=False) as (j,):
        c.line(f"{dst}[{'0, ' if keepdims else ''}{j}] = {c.cast(f'{accs}[{j}]', adt, odt)}")


def _blocked_reduction(c, eqn, op, x, shape, red, acc, adt, init, heavy):
    xdt = c.dtype_of(x)
    n0 = shape[red[0]]
    inner = 1
    for d in red[1:]:
        inner *= shape[d]
    b0 = max(1, RED_BLOCK // max(inner, 1))
    nb = -(-n0 // b0)
    parts = c.tmp("p")
    c.line(f"{parts} = {c.new_array(nb, adt)}")
    bacc = c.tmp("acc")  # the block's own accumulator (private to a prange iteration)
    with c.nest([nb], total=n0 * inner, heavy=heavy) as (b,):
        c.line(f"{bacc} = {init}")
        hi = c.int_minmax('imin', f'{b} * {b0} + {b0}', n0)
        if inner == 1 and _chunked(op, xdt, adt, b0):  # b0: a multiple of SUM_CHUNK
            with _sum_chunks(c, bacc, f"{b} * {b0}", hi, end=n0) as (j, part):
                full = [None] * len(shape)
                full[red[0]] = j
                for d in red[1:]:
                    full[d] = "0"
                _accumulate(c, op, part, c.read(x, full), xdt)
        else:
            j = c.tmp("i")
            c.line(f"for {j} in range({b} * {b0}, {hi}):")
            with c.indented():
                with _reduction_loops(c, op, [shape[d] for d in red[1:]], bacc, xdt, adt) \
                        as (ridx, into, dt):
                    full = [None] * len(shape)
                    full[red[0]] = j
                    for d, i in zip(red[1:], ridx):
                        full[d] = i
                    _accumulate(c, op, into, c.cast(c.read(x, full), xdt, dt), dt)
        c.line(f"{parts}[{b}] = {bacc}")
    c.line(f"{acc} = {init}")
    k = c.tmp("i")
    c.line(f"for {k} in range({nb}):")
    with c.indented():
        _accumulate(c, op, acc, f"{parts}[{k}]", adt)


def _arg_emitter(op):
    def emit(c, eqn):
        x = eqn.inputs[0]
        (out,) = eqn.outs
        axis, keepdims = eqn.params["axis"], eqn.params["keepdims"]
        shape = c.shape_of(x)
        xdt = c.dtype_of(x)
        red = list(range(len(shape))) if axis is None else [axis]
        kept = [d for d in range(len(shape)) if d not in red]
        nred = 1
        for d in red:
            nred *= shape[d]
        if nred == 0:
            c.check("True")  # numpy: attempt to get argmax of an empty sequence
        scalar_out = len(out.aval.shape) == 0
        dst = None if scalar_out else c.alloc(out)
        best, bi, k = c.tmp("best"), c.tmp("bi"), c.tmp("k")
        cmp = ">" if op == "max" else "<"
        with c.nest([shape[d] for d in kept], parallel=False) as oidx:
            c.line(f"{bi} = 0")
            c.line(f"{k} = 0")
            first = True
            with c.nest([shape[d] for d in red], parallel=False) as ridx:
                full = [None] * len(shape)
                for d, i in zip(kept, oidx):
                    full[d] = i
                for d, i in zip(red, ridx):
                    full[d] = i
                v = c.read(x, full)
                c.line(f"if {k} == 0:")
                c.line(f"    {best} = {v}")
                if _isf(xdt):
                    c.line(f"elif ({v} {cmp} {best}) or ({v} != {v} and {best} == {best}):")
                else:
                    c.line(f"elif {v} {cmp} {best}:")
                c.line(f"    {best} = {v}")
                c.line(f"    {bi} = {k}")
                c.line(f"{k} += 1")
            if not scalar_out:
                didx = []
                it = iter(oidx)
                for d in range(len(shape)):
                    if d in red:
                        if keepdims:
                            didx.append("0")
                    else:
                        didx.append(next(it))
                c.line(f"{dst}[{', '.join(didx)}] = {bi}")
        if scalar_out:
            c.bind(out, f"np.int64({bi})")

    return Emitter(emit, fuses=True)


# ----------------------------------------------------------------------------------------
# data movement, matmul, indexing updates, creation
# ----------------------------------------------------------------------------------------


def _concat_emit(c, eqn):
    (out,) = eqn.outs
    axis = eqn.params["axis"]
    odt = out.aval.dtype
    dst = c.alloc(out)
    off = 0
    for x in eqn.inputs:
        shape = c.shape_of(x)
        with c.nest(shape) as idx:
            didx = list(idx)
            if off:
                didx[axis] = f"{off} + {idx[axis]}"
            c.line(f"{dst}[{', '.join(didx)}] = {c.cast(c.read(x, list(idx)), c.dtype_of(x), odt)}")
        off += shape[axis]


def _matmul_emit(c, eqn):
    a, b = eqn.inputs
    (out,) = eqn.outs
    sa, sb, so = c.shape_of(a), c.shape_of(b), tuple(out.aval.shape)
    dt = out.aval.dtype
    blas = _isf(dt) and 0 not in sa and 0 not in sb
    arr = getattr(c, "matmul_operand", c.array)  # ``x.T`` views of virtual transposes
    if len(so) == 0:
        an, bn = arr(a), arr(b)
        if blas:  # np.dot, compiled once per installation (compile/cached_dot.py)
            c.imports["dot_vec"] = "dualgraph.compile.cached_dot"
            c.bind(out, f"dot_vec({an}, {bn})")
            return
        acc = c.name(out)
        c.line(f"{acc} = {c.const(0, dt)}")
        with c.nest([sa[0]], parallel=False) as (k,):
            c.line(f"{acc} += {an}[{k}] * {bn}[{k}]")
        return
    an, bn = arr(a), arr(b)
    bp = _bufplan(c)
    plan = bp.acc.get(id(eqn)) if bp is not None else None
    if plan is not None and blas and len(sa) == 2 and len(sb) == 2 \
            and not c.split_matmul(sa[0], sb[1], sa[1]):
        dst = c.accumulate_into(*plan)  # compile/buffers.py: ``x + a @ b`` into x's buffer
        if dst is not None:
            c.imports["dot_add"] = "dualgraph.compile.blas"
            c.check(f"dot_add({an}, {bn}, {dst}) != 0")  # a BLAS error: run eagerly
            return
    dst = c.alloc(out)
    a2 = len(sa) >= 2
    b2 = len(sb) >= 2
    batch = so[: len(so) - (1 if a2 else 0) - (1 if b2 else 0)]
    ba, bb = sa[:-2] if a2 else (), sb[:-2] if b2 else ()
    with c.nest(batch, parallel=False) as bidx:
        ai = c.broadcast_idx(list(bidx), batch, ba)
        bi = c.broadcast_idx(list(bidx), batch, bb)
        asub = f"{an}[{', '.join(ai)}]" if ai else an
        bsub = f"{bn}[{', '.join(bi)}]" if bi else bn
        osub = f"{dst}[{', '.join(bidx)}]" if bidx else dst
        if blas and not bidx and len(sa) == 2 and len(sb) == 2 and c.split_matmul(sa[0], sb[1], sa[1]):
            # the prange variant: row blocks on numba's threads, BLAS on one (compile/blas.py)
            c.imports["gemm_split"] = "dualgraph.compile.blas"  # itself a parallel function
            c.check(f"gemm_split({asub}, {bsub}, {osub}) != 0")  # a BLAS error: run eagerly
        elif blas:  # np.dot(a, b, out), compiled once per installation (compile/cached_dot.py)
            c.imports["dot_into"] = "dualgraph.compile.cached_dot"
            c.line(f"dot_into({asub}, {bsub}, {osub})")
        else:
            m = sa[-2] if a2 else None
            n = sb[-1] if b2 else None
            kk = sa[-1]
            av, bv, ov = c.tmp("A"), c.tmp("B"), c.tmp("O")
            c.line(f"{av} = {asub}")
            c.line(f"{bv} = {bsub}")
            c.line(f"{ov} = {osub}")
            rows = [m] if m is not None else []
            cols = [n] if n is not None else []
            with c.nest(rows + cols, parallel=False) as oi:
                oi = list(oi)
                i = oi[0] if m is not None else None
                j = oi[-1] if n is not None else None
                s = c.tmp("s")
                c.line(f"{s} = {c.const(0, dt)}")
                with c.nest([kk], parallel=False) as (k,):
                    ae = f"{av}[{i}, {k}]" if i is not None else f"{av}[{k}]"
                    be = f"{bv}[{k}, {j}]" if j is not None else f"{bv}[{k}]"
                    c.line(f"{s} += {ae} * {be}")
                c.line(f"{ov}[{', '.join(oi)}] = {s}")


def _index_update(op):
    return lambda c, eqn: _index_add_emit(c, eqn, op)


def _index_add_emit(c, eqn, op="+="):
    base, g, *arrays = eqn.inputs
    (out,) = eqn.outs
    dt = out.aval.dtype
    if not out.aval.shape:  # a 0-d value is a scalar in generated code (x.fill_(v) of 0-d x)
        v = c.cast(c.read(g, []), c.dtype_of(g), dt)
        if op != "=":
            v = f"({c.cast(c.read(base, []), c.dtype_of(base), dt)} + {v})"
        c.bind(out, v)
        return
    dst = c.alloc_copy(out, base, dt)  # zeros when base is a constant 0
    shape = c.shape_of(base)
    spec = eqn.params["spec"]
    out_shape, _ = getitem_plan(shape, spec, [c.shape_of(a) for a in arrays])
    with c.nest(out_shape, parallel=False) as idx:
        src = getitem_src(c, shape, spec, arrays, list(idx))
        v = c.read(g, c.broadcast_idx(list(idx), out_shape, c.shape_of(g)))
        tgt = f"{dst}[{', '.join(src)}]" if src else dst
        c.line(f"{tgt} {op} {c.cast(v, c.dtype_of(g), dt)}")


def _index_add_ok(eqn):
    base, g, *arrays = eqn.inputs
    if any(a.aval.dtype.kind not in "iu" for a in arrays):
        return False
    plan = getitem_plan(base.aval.shape, eqn.params["spec"], [a.aval.shape for a in arrays])
    return plan is not None


# base[idx] = value (main's index_set): the same loops, assignment (the last write wins)


def _bufplan(c):
    return getattr(c, "bufplan", None)  # compile/buffers.py: in place, views, workspaces


def _dynamic_zeros_emit(c, eqn):
    (out,) = eqn.outs
    n = c.read(eqn.inputs[0], [])
    shape = ", ".join([f"np.int64({n})"] + [str(d) for d in eqn.params["shape"]])
    dt = np.dtype(eqn.params["dtype"]).name
    bp = _bufplan(c)
    slot = bp.slot.get(out) if bp is not None else None
    if slot is not None:
        # scratch rows (written before read) from the buffer the kernel keeps across calls
        w = c.workspace(slot)
        c.line(f"if len({w}) < {n}:")
        c.line(f"    {w} = {c.new_array(f'({shape},)', dt)}")
        c.bind(out, w)
        return
    c.bind(out, c.new_array(f"({shape},)", dt, zero=True))


def _dynamic_index_emit(c, eqn):
    buf, i = eqn.inputs
    (out,) = eqn.outs
    b = c.array(buf)
    iv = c.tmp("di")
    c.line(f"{iv} = np.int64({c.read(i, [])})")
    c.line(f"if {iv} < 0: {iv} += len({b})")
    c.check(f"{iv} < 0 or {iv} >= len({b})")
    bp = _bufplan(c)
    if len(out.aval.shape) == 0:
        c.bind(out, f"{b}[{iv}]")
    elif bp is not None and id(eqn) in bp.views:
        c.bind(out, f"{b}[{iv}]")  # a view: the buffer is not written while it lives
    else:
        c.bind(out, f"{b}[{iv}].copy()")


def _dynamic_update_pre(c, eqn):
    """Everything of ``dynamic_update`` but the row write: the index, its check, the
    buffer (grown, or the same one in place); returns ``(buffer name, row index name)``."""
    buf, i, x = eqn.inputs
    (out,) = eqn.outs
    b = c.array(buf)
    dt = out.aval.dtype
    iv, n, o = c.tmp("di"), c.tmp("dn"), c.name(out)
    inner = tuple(out.aval.shape[1:])
    bp = _bufplan(c)
    inplace = bp is not None and id(eqn) in bp.inplace
    slot = bp.slot.get(out) if inplace else None
    c.line(f"{iv} = np.int64({c.read(i, [])})")
    c.line(f"{n} = len({b})")
    c.check(f"{iv} < 0")
    c.line(f"if {iv} >= {n}:")
    tail = "".join(f", {d}" for d in inner)
    # grown by doubling: rows past the old end are written before they are read when the
    # buffer is scratch; zeros otherwise, as the eager implementation
    size = c.int_minmax("imax", f"2 * {n}", f"{iv} + 1")
    c.line(f"    {o} = {c.new_array(f'({size}{tail})', dt, zero=slot is None)}")
    # the old rows, copied by loops (numba compiles ``o[:n] = b`` for seconds)
    with c.indented():
        if inner:  # C order: the old rows are the first n * row-size elements of both
            with c.nest([f"{n} * {int(np.prod(inner))}"], parallel=False, total=1) as (k,):
                c.line(f"{o}.flat[{k}] = {b}.flat[{k}]")
        else:
            with c.nest([n], parallel=False, total=1) as (k,):
                c.line(f"{o}[{k}] = {b}[{k}]")
    if slot is not None:
        c.line(f"    {c.workspace(slot)} = {o}")
    c.line("else:")
    # in place: the old buffer is owned and read by nobody after this write
    c.line(f"    {o} = {b}" if inplace else f"    {o} = {b}.copy()")
    return o, iv


def _dynamic_update_row(c, eqn, o, iv, idx):
    """The row write of ``dynamic_update`` at the row's index ``idx``."""
    x = eqn.inputs[2]
    inner = tuple(eqn.outs[0].aval.shape[1:])
    v = c.read(x, c.broadcast_idx(list(idx), inner, c.shape_of(x)))
    c.line(f"{o}[{', '.join([iv] + list(idx))}] = {c.cast(v, c.dtype_of(x), eqn.outs[0].aval.dtype)}")


def _dynamic_update_emit(c, eqn):
    o, iv = _dynamic_update_pre(c, eqn)
    inner = tuple(eqn.outs[0].aval.shape[1:])
    x = eqn.inputs[2]
    if c.flat_ok([x], inner):  # the row (a C view) and x element by element: one loop
        with c.flat_nest(inner, parallel=False) as k:
            v = c.cast(c.read(x, [k]), c.dtype_of(x), eqn.outs[0].aval.dtype)
            c.line(f"{o}[{iv}].flat[{k}] = {v}")
        return
    with c.nest(inner, parallel=False) as idx:
        _dynamic_update_row(c, eqn, o, iv, idx)


# ----------------------------------------------------------------------------------------
# graph constants and control flow (cond and while are declared in static/control_flow.py)
# ----------------------------------------------------------------------------------------


def _const_emit(c, eqn):
    c.bind_const(eqn.outs[0], eqn.params["value"])


def _cond_emit(c, eqn):
    pred, *ops = eqn.inputs
    outs = [c.name(v) for v in eqn.outs]
    p = c.read(pred, [])
    c.line(f"if {p}:")
    prefer = getattr(c, "prefer", {})
    spare = [prefer.pop(v, None) for v in eqn.outs]  # a loop's spare buffer: the branches'
    for key in ("true_branch", "false_branch"):
        if key == "false_branch":
            c.line("else:")
        with c.indented():
            g = eqn.params[key]
            for bo, d in zip(g.outputs, spare):
                if d is not None and hasattr(bo, "aval") and bo not in g.inputs:  # a Var
                    prefer[bo] = d
            res = c.subgraph(g, [c.operand(x, v.aval.dtype) for x, v in zip(ops, g.inputs)])
            for bo in g.outputs:
                if hasattr(bo, "aval"):
                    prefer.pop(bo, None)
            for o, r, v in zip(outs, res, eqn.outs):
                c.line(f"{o} = {r}")
            if not outs:
                c.line("pass")


def _while_emit(c, eqn):
    p = eqn.params
    ncarry = len(eqn.inputs) - p["cond_nconsts"] - p["body_nconsts"]
    dts = ([v.aval.dtype for v in eqn.outs] + [v.aval.dtype for v in p["cond_graph"].inputs[ncarry:]]
           + [v.aval.dtype for v in p["body_graph"].inputs[ncarry:]])
    ins = [c.operand(x, dt) for x, dt in zip(eqn.inputs, dts)]
    carry, cc, bc = ins[:ncarry], ins[ncarry:ncarry + p["cond_nconsts"]], ins[ncarry + p["cond_nconsts"]:]
    names = [c.name(v) for v in eqn.outs]
    bp = _bufplan(c)
    spare = {}
    for k, (n, x) in enumerate(zip(names, carry)):
        shape, dt = tuple(eqn.outs[k].aval.shape), eqn.outs[k].aval.dtype
        if bp is not None and (id(eqn), k) in bp.fresh_carry:  # its own zeroed buffer
            c.line(f"{n} = {c.new_array(shape, dt, zero=True)}")
        else:
            c.line(f"{n} = {x}")
        if bp is not None and (id(eqn), k) in bp.pingpong:  # two buffers for all iterations
            spare[k] = (c.tmp("pp"), c.tmp("pp"))
            for b in spare[k]:
                c.line(f"{b} = {c.new_array(shape, dt)}")
    body = p["body_graph"]
    c.line("while True:")
    with c.indented():
        (pr,) = c.subgraph(p["cond_graph"], names + cc)
        c.line(f"if not {pr}:")
        c.line("    break")
        for k, (b0, b1) in spare.items():  # the next value goes where the current is not
            d = c.tmp("dst")
            c.line(f"{d} = {b1} if {names[k]}.ctypes.data == {b0}.ctypes.data else {b0}")
            c.prefer[body.outputs[k]] = d
        res = c.subgraph(body, names + bc)
        for k in spare:
            c.prefer.pop(body.outputs[k], None)
        if names:
            c.line(f"{', '.join(names)}{',' if len(names) == 1 else ''} = "
                   f"{', '.join(res)}{',' if len(res) == 1 else ''}")


# ----------------------------------------------------------------------------------------
# any primitive, through its numpy implementation called back from the kernel
# ----------------------------------------------------------------------------------------


def _param_src(v):
    """Python source text of a parameter value (ints, floats, bools, None, strings,
    Ellipsis, dtypes and tuples/lists of them)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return repr(v)
    if v is Ellipsis:
        return "..."
    if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
        return f"np.dtype({np.dtype(v).name!r})"
    if isinstance(v, np.generic):
        return repr(v.item())
    if isinstance(v, tuple):
        return "(" + "".join(_param_src(x) + ", " for x in v) + ")"
    if isinstance(v, list):
        return "[" + ", ".join(_param_src(x) for x in v) + "]"
    raise TypeError(f"no source form for the parameter value {v!r}")


def _numba_type(aval):
    dt = np.dtype(aval.dtype).name
    if aval.ndim == 0:
        return dt
    return f"{dt}[{', '.join([':'] * (aval.ndim - 1) + ['::1'])}]"


def _objmode_emit(c, eqn):
    """``out = impl(*operands, **params)`` called back into Python from the kernel (numba's
    object mode): correct for any primitive (the eager implementation itself), not fast.
    The rule of the primitives with no loop-level lowering yet (conv, scans, sorts,
    gathers and scatters)."""
    (out,) = eqn.outs
    args = []
    for x in eqn.inputs:
        if not hasattr(x, "aval") or x.__class__.__name__ == "Lit":
            args.append(_param_src(x.value if hasattr(x, "value") else x))
        elif x.aval.ndim == 0:
            args.append(c.operand(x, x.aval.dtype))
        else:
            args.append(c.array(x))
    params = "{" + ", ".join(f"{k!r}: {_param_src(v)}" for k, v in sorted(eqn.params.items())) + "}"
    c.imports["objmode"] = "numba"
    c.imports["call_primitive"] = "dualgraph.compile.runtime"
    n = c.name(out)
    c.line(f"with objmode({n}={_numba_type(out.aval)!r}):")
    c.line(f"    {n} = call_primitive({eqn.prim.name!r}, {params}{''.join(', ' + a for a in args)})")
