"""Tensor and ``apply``: the default handler behind ``bind``, which evaluates a primitive
(or hands it to this thread's active trace) and records it on the tape.

The payload of a Tensor (``_value``) is a numpy array when running eagerly, or a
tracer's symbolic value while a trace is active; the tape (grad_fn nodes) works the
same on both, which is how IR autodiff reuses the eager VJP rules.

Every op reaches this thread's active handler (``ops.context``).  The one-frame fast
callables made here for the elementwise primitives run their eager body only when that
handler is the default one and no trace is active; otherwise they call the handler, so a
handler wrapping ``apply`` (a check mode, a profiler) sees every op.

In-place writes follow PyTorch: a tensor's version counter (shared by its views) is
bumped by every write, and a backward that needs a value saved before a write raises.
A write on a tensor that is part of a graph is recorded: the tensor takes the history of
the out-of-place result, and a write through a view updates its base's history as well.
"""
from __future__ import annotations

import numpy as np

from ..ops import composites as C
from ..ops import context as _context
from ..ops import primitives as P
from ..ops import registry
from .engine import _TENSOR as _engine_tensor
from .engine import _WRAP as _engine_wrap
from .engine import (
    INPLACE,
    NODE_SEQ,
    Meta,
    Node,
    accumulate_grad_of,
    node_class,
    public_node,
    run_backward,
)

_ndarray = np.ndarray
_get = _context.get
_new = object.__new__
_NP: dict = {}


class _TraceSlot:
    """``TRACE[0]``: this thread's active trace (kept for code that reads it that way)."""

    __slots__ = ()

    def __getitem__(self, i):
        return _get().trace

    def __setitem__(self, i, builder):
        _context.CTX.set(_get().replace(trace=builder))


TRACE = _TraceSlot()


def _describe(v):
    if hasattr(v, "shape"):
        return f"{tuple(v.shape)} {np.dtype(v.dtype).name}" if hasattr(v, "dtype") else str(v.shape)
    return repr(v)


def _op_error(prim, vals, params, e):
    """Re-raise a failing op's error naming the op, its operands and the user's line.

    Where the registry's shape rule rejects the operands too, its message (written for
    people) replaces numpy's.  Shape and value errors are RuntimeErrors, as torch's."""
    msg = str(e)
    if "\n  at " in msg:  # already explained by an inner op
        return e
    try:
        avals = [registry.aval_of(v) if hasattr(v, "shape") else v for v in vals]
        prim.shape_rule(*avals, **params)
    except (ValueError, IndexError, TypeError, RuntimeError) as rule_error:
        msg = str(rule_error)
    except Exception:  # noqa: BLE001 - a rule that cannot judge: keep numpy's message
        pass
    if msg.startswith(prim.name + ":"):
        text = msg
    else:
        args = ", ".join(_describe(v) for v in vals)
        text = f"{prim.name}: {msg} (operands: {args})"
    cls = RuntimeError if type(e) is ValueError else type(e)
    return cls(f"{text}\n  at {registry.user_source() or '<unknown>'}")


# ----------------------------------------------------------------------------------------
# Making tensors and tape nodes: the one place each is built
# ----------------------------------------------------------------------------------------


def _versions(inputs):
    for a in inputs:
        if a.__class__ is Tensor and a._meta is not None and a._meta.version is not None:
            return tuple(_version_of(a) for a in inputs)
    return None


def _version_of(a):
    m = a._meta if a.__class__ is Tensor else None
    return 0 if m is None or m.version is None else m.version[0]


def _scalar(a):
    """A numpy scalar operand (``np.sqrt(4)``, ``np.int64(8)``) counts as the Python
    scalar it holds: weakly typed, as torch (``float32 / np.float64`` stays float32)."""
    return a.item() if isinstance(a, np.generic) else a


def apply(prim, args, params):
    """The default handler: evaluate ``prim`` on ``args`` (or hand it to this thread's
    trace) and, where gradients are wanted, record a tape node."""
    ctx = _get()
    trace = ctx.trace
    vals = []
    rg = False
    conv = False
    for a in args:
        c = a.__class__
        if c is Tensor:
            if a._meta is not None:
                _fresh(a)
            vals.append(a._value)
            if a._requires_grad:
                rg = True
        else:
            if c is not _ndarray and isinstance(a, np.generic):
                a = a.item()
                conv = True
            vals.append(a)
    if conv:
        args = tuple(_scalar(a) for a in args)
    if prim.higher_order and trace is None:
        return prim.eager_rule(*args, **params)
    try:
        if trace is None:
            out = prim.impl(*vals, **params)
        else:
            out = trace.process(prim, args, params)
            if rg:
                rg = _traced_requires_grad(args)
    except (ValueError, IndexError, TypeError) as e:
        raise _op_error(prim, vals, params, e) from None
    record = rg and ctx.grad_enabled and prim.vjp is not None
    if prim.multiple_results:
        node = None
        if record:
            need = tuple(a.__class__ is Tensor and a._requires_grad for a in args)
            node = _node(prim, params, args, need, tuple(out), _versions(args))
        return tuple(_wrap(o, node if record and _is_float(o) else None, k) for k, o in enumerate(out))
    if trace is None and out.__class__ is not _ndarray:
        out = np.asarray(out)
    if record and out.dtype.kind not in "fc":
        record = False  # integer and bool results never require grad (x.long(), torch)
    node = None
    if record:
        need = tuple([a.__class__ is Tensor and a._requires_grad for a in args])
        node = _node(prim, params, args, need, out if prim.uses_out else None, _versions(args))
    t = _wrap(out, node)
    if prim.view_put is not None and args[0].__class__ is Tensor:
        _mark_view(t, prim, args, params, vals[0], trace)
    return t


def _traced_requires_grad(args):
    # Under a trace, an eager (numpy-backed) tensor is a graph constant: no tape through it.
    return any(
        a.__class__ is Tensor and a._requires_grad and a._value.__class__ is not _ndarray for a in args
    )


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_NEED1 = (True,)
_NEED_TT = (True, True)
_NEED_TF = (True, False)
_NEED_FT = (False, True)
# the shape of a 0-d tensor: CPython has one empty tuple, so ``shape is _SCALAR`` tests it
# without the truth-value call ``not shape`` makes
_SCALAR = ()
_next_seq = NODE_SEQ.__next__


# The fast callables are generated from this source, with the two construction snippets
# below pasted in: the same lines ``_wrap`` and ``_node`` are made of.  A helper call per
# tensor and per node would add ~40% to the per-op cost of eager code.  Per primitive,
# ``RECORDS`` becomes the test for recording a node (``False`` for a primitive without a
# VJP: the block is compiled away), ``SAVED`` the output the node keeps (``out`` or
# ``None``) and ``PROMOTE`` the int-to-float check of a unary op (or nothing).
#
# The ContextVar (a C call) is read only when it can matter: when some context in the
# process has a handler or a trace (``SPECIAL_ON``), or, for an op that would record, when
# some context has grad disabled (``NO_GRAD_ON``); see ``ops.context``.  Operands other than
# Tensors, Python ints and floats, and (second operand) arrays go to ``apply``.
_FAST_SRC = """
def unary(x):
    if SPECIAL_ON or x.__class__ is not Tensor:
        ctx = get()
        if x.__class__ is not Tensor or not ctx.plain:
            return ctx.handler(prim, (x,), _NP)
    m = x._meta
    if m is not None and m.view is not None:
        _fresh(x)
    v = x._value
PROMOTE
    out = uimpl(v)
    if x.shape is _SCALAR:  # 0-d: numpy returns a scalar (an array otherwise)
        out = np.asarray(out)
    if RECORDS(x._requires_grad):
{NODE}
        if m is not None and m.version is not None:
            node.vers = (m.version[0],)
{TENSOR_NODE}
        return t
{TENSOR}
    return t


def binary(x, y):
    if SPECIAL_ON:
        ctx = get()
        if not ctx.plain:
            return ctx.handler(prim, (x, y), _NP)
    if x.__class__ is Tensor:
        xm = x._meta
        if xm is not None and xm.view is not None:
            _fresh(x)
        xv = x._value
        shape = x.shape
        if y.__class__ is Tensor:
            ym = y._meta
            if ym is not None and ym.view is not None:
                _fresh(y)
            yv = y._value
            if shape is not y.shape and shape != y.shape:
                shape = _bshape(shape, y.shape)  # broadcast: the result's
                if shape is None:
                    return apply(prim, (x, y), _NP)  # shapes that do not broadcast: its error
            try:
                # one dtype: the ufunc itself (a traced payload that escaped its trace raises
                # in it as in the wrapper); mixed dtypes: torch's promotion
                out = raw(xv, yv) if xv.dtype is yv.dtype else impl(xv, yv)
            except (ValueError, TypeError) as e:
                raise _op_error(prim, (xv, yv), _NP, e) from None
            xr = x._requires_grad
            yr = y._requires_grad
        else:
            yc = y.__class__
            yv = y
            if yc is float or yc is int:
                try:
                    if xv.__class__ is _ndarray and xv.dtype.kind == "f":
                        out = raw(xv, y)  # a float array and a Python number: nothing to promote
                    else:
                        out = impl(xv, y)
                except (ValueError, TypeError) as e:
                    raise _op_error(prim, (xv, y), _NP, e) from None
            elif yc is _ndarray:
                if shape != y.shape:
                    shape = _bshape(shape, y.shape)
                    if shape is None:
                        return apply(prim, (x, y), _NP)
                try:
                    if xv.__class__ is _ndarray and xv.dtype is y.dtype:
                        out = raw(xv, y)
                    else:
                        out = impl(xv, y)
                except (ValueError, TypeError) as e:
                    raise _op_error(prim, (xv, y), _NP, e) from None
            else:
                return apply(prim, (x, y), _NP)  # a bool, a numpy scalar, ...
            xr = x._requires_grad
            yr = False
            ym = None
    elif y.__class__ is Tensor and (x.__class__ is float or x.__class__ is int):
        ym = y._meta
        if ym is not None and ym.view is not None:
            _fresh(y)
        yv = y._value
        shape = y.shape
        try:
            if yv.__class__ is _ndarray and yv.dtype.kind == "f":
                out = raw(x, yv)
            else:
                out = impl(x, yv)
        except (ValueError, TypeError) as e:
            raise _op_error(prim, (x, yv), _NP, e) from None
        xr = False
        yr = y._requires_grad
        xm = None
    else:
        return apply(prim, (x, y), _NP)
    if shape is _SCALAR:  # 0-d: numpy returns a scalar (an array otherwise)
        out = np.asarray(out)
    if RECORDS(xr or yr):
        need = _NEED_TT if xr and yr else (_NEED_TF if xr else _NEED_FT)
{NODE}
        if (xm is not None and xm.version is not None) or (ym is not None and ym.version is not None):
            node.vers = _versions((x, y))
{TENSOR_NODE}
        return t
{TENSOR}
    return t
"""

_PROMOTE_LINES = """\
if v.dtype is not _F32 and v.dtype is not _F64 and v.dtype.kind in "iub":
    v = v.astype(np.float32)
"""

# a tape node of ``prim`` (see engine.Node: one plain class on the hot path)
_NODE_LINES = """\
node = Node()
node.prim = prim
node.params = params
node.inputs = inputs
node.need = need
node.out = saved
node.pre_hooks = None
node.seq = _next_seq()
if vers is not None:
    node.vers = vers
"""

# a tensor holding ``out``, the output of ``node`` (or of nothing: node = None)
_TENSOR_LINES = """\
t = _new(Tensor)
t._value = out
t.shape = shape
t._meta = None
t._grad_fn = node
t._requires_grad = node is not None
"""


def _indent(lines, n, **subst):
    text = lines
    for k, v in subst.items():
        text = text.replace(k, v)
    return "".join(" " * n + ln + "\n" for ln in text.splitlines())


def _make_constructors():
    """``_wrap`` and ``_node``, made from the same lines as the fast callables."""
    src = (
        "def _wrap(value, node=None, index=0):\n"
        "    out = value\n    shape = value.shape\n" + _indent(_TENSOR_LINES, 4) + "    if index:\n        t._out_index = index\n    return t\n\n"
        "def _node(prim, params, inputs, need, saved, vers):\n"
        + _indent(_NODE_LINES, 4, **{"node = Node()": "node = (node_class(prim) if prim.multiple_results else Node)()"})
        + "    return node\n"
    )
    env = {"Tensor": Tensor, "Node": Node, "node_class": node_class, "_new": _new, "_next_seq": _next_seq}
    exec(compile(src, "<dualgraph constructors>", "exec"), env)  # noqa: S102
    return env["_wrap"], env["_node"]


def _fast_op(prim):
    """A one-frame ``apply`` for a parameter-free unary or binary elementwise primitive:
    the hot path of eager code.  It runs its own eager body only when this thread's
    handler is the default one and no trace is active (``ctx.plain``); otherwise the op
    goes to the active handler like any other.  The body is compiled per primitive: what
    it records, saves and promotes is fixed in the text."""
    impl = prim.impl
    raw = getattr(impl, "raw", impl)  # the ufunc behind a dtype-promoting wrapper
    # int and bool inputs of exp/log/tanh/... compute in float32 (torch): checked in the
    # body, so a float input calls the ufunc itself, not the checking wrapper
    promote = getattr(impl, "int_to_float", False)
    # globals: context.FAST_NS, where the two flags live (see _FAST_SRC); the per-primitive
    # names are the cells of a factory
    env = _context.FAST_NS
    env.update({k: globals()[k] for k in (
        "Tensor", "Node", "_NP", "_SCALAR", "_fresh", "_F32", "_F64", "_ndarray", "np", "_NEED1", "_NEED_TT",
        "_NEED_TF", "_NEED_FT", "_op_error", "_new", "_next_seq", "_versions", "apply", "_bshape")})
    env["get"] = _get
    node_class(prim)
    records = "(not NO_GRAD_ON or get().grad_enabled)" if prim.vjp is not None else None
    src = _FAST_SRC
    for arg in ("x._requires_grad", "xr or yr"):
        src = src.replace(f"RECORDS({arg})", f"({arg}) and {records}" if records else "False")
    src = src.replace("PROMOTE\n", _indent(_PROMOTE_LINES, 4) if promote else "")
    src = src.replace("{NODE}", _indent(_NODE_LINES, 8, **{
        "node.params = params": "node.params = _NP",
        "node.inputs = inputs": "node.inputs = (x,)" if prim.arity == 1 else "node.inputs = (x, y)",
        "node.need = need": "node.need = _NEED1" if prim.arity == 1 else "node.need = need",
        "node.out = saved": "node.out = SAVED",
        "if vers is not None:\n    node.vers = vers\n": ""}))
    # a unary op's result has its operand's shape (numpy's shape getter would make a tuple)
    shape = "t.shape = x.shape" if prim.arity == 1 else "t.shape = shape"
    src = src.replace("{TENSOR_NODE}", _indent(_TENSOR_LINES, 8, **{
        "node is not None": "True", "t.shape = shape": shape}))
    src = src.replace("{TENSOR}", _indent(_TENSOR_LINES, 4, **{
        "t._grad_fn = node": "t._grad_fn = None", "node is not None": "False", "t.shape = shape": shape}))
    src = src.replace("SAVED", "out" if prim.uses_out else "None")
    name = "unary" if prim.arity == 1 else "binary"
    src = "def _factory(prim, impl, raw, uimpl):\n" + _indent(src, 4) + f"    return {name}\n"
    code = _FAST_CODE.get(src)
    if code is None:
        code = _FAST_CODE[src] = compile(src, "<dualgraph fast op>", "exec")
    exec(code, env)  # noqa: S102
    return env.pop("_factory")(prim, impl, raw, raw if promote else impl)


# fast-op source text -> its code object: the primitives whose text is the same (add, mul,
# sub, ...) share one code object, so a chain of them runs one body's bytecode and inline
# caches (as the closures of the baseline did) rather than one copy per primitive, which
# spread the hot path over more lines of the data cache (wall time, not instructions)
_FAST_CODE: dict = {}


def _fast_factory(prim):
    """Which primitives get a one-frame callable: parameter-free unary and binary
    elementwise ones (their kind and arity say so)."""
    if prim.kind == "elementwise" and prim.arity in (1, 2) and prim.name != "convert":
        return _fast_op(prim)
    return None


registry.install_default_handler(apply)


def _is_float(v):
    return np.issubdtype(v.dtype, np.floating)


def _unwrap(x):
    return x._value if isinstance(x, Tensor) else x


_BSHAPES: dict = {}


def _bshape(a, b):
    """The broadcast of shapes ``a`` and ``b`` (the one tuple ``_shape_of`` keeps for it),
    or None where they do not broadcast; remembered per pair."""
    key = (a, b)
    s = _BSHAPES.get(key)
    if s is None:
        try:
            s = np.broadcast_shapes(a, b)
        except ValueError:
            return None
        s = _SHAPES.setdefault(s, s)
        if len(_BSHAPES) > 4096:
            _BSHAPES.clear()
        _BSHAPES[key] = s
    return s


# ----------------------------------------------------------------------------------------
# Views, version counters and in-place writes
# ----------------------------------------------------------------------------------------


def _counter(t):
    """``t``'s version counter (shared with its views and detached aliases), made on first
    need: before any write, view or alias of ``t`` exists.  If ``t`` is the output its
    grad_fn saved, the node gets the counter too (backward checks it was not written)."""
    m = t._meta
    if m is None:
        m = t._meta = Meta()
    c = m.version
    if c is None:
        c = m.version = [0]
        fn = t._grad_fn
        if fn is not None and fn.out is not None:
            out = fn.out
            if out is t._value or (out.__class__ is tuple and any(o is t._value for o in out)):
                fn.outc = c
    return c


def _mark_view(t, prim, args, params, base_value, trace):
    """``t`` came from ``prim`` applied to ``args[0]``: if it aliases that tensor's memory
    (or, traced, always) it is a view: it shares the version counter, and a write to it
    updates the base (see ``_write``)."""
    out = t._value
    if trace is None and not (out.__class__ is _ndarray and out.base is not None
                              and np.may_share_memory(out, base_value)):
        return
    if prim.name == "getitem" and len(args) > 1:
        return  # advanced indexing copies
    base = args[0]
    c = _counter(base)
    m = t._meta = Meta()
    m.version = c
    m.view = (base, prim, args[1:], params, c[0])


def _fresh(t):
    """Bring a view up to date after a write through another view of its base (as torch
    regenerates it): its history (traced: its value too) is re-derived from the base."""
    m = t._meta
    view = m.view
    if view is None:
        return
    base, prim, rest, params, seen = view
    if base._meta is not None:
        _fresh(base)
    c = m.version
    if c[0] == seen:
        return
    ctx = _get()
    traced = ctx.trace is not None or t._value.__class__ is not _ndarray
    if not traced:
        if not base._requires_grad and not t._requires_grad:
            m.view = (base, prim, rest, params, c[0])  # the shared memory is all there is
            return
        if not ctx.grad_enabled:
            return  # nothing is recorded now; a later use with grad re-derives it
    new = ctx.handler(prim, (base,) + tuple(rest), params)
    _rebase(t, new, keep_value=not traced)
    m.view = (base, prim, rest, params, c[0])


def _rebase(t, new, keep_value=False):
    """``t`` takes the history (and, unless ``keep_value``, the payload) of ``new``; nodes
    recorded before keep their edge to the old history (``Meta.history``)."""
    if not keep_value and t._value.__class__ is _ndarray:
        tr = _get().trace
        if tr is not None:
            tr.note_write(t)  # a captured eager tensor written under dg.compile
    m = t._meta
    if m is None:
        m = t._meta = Meta()
    if m.history is None:
        m.history = []
    # nodes recorded below the current version keep the old edge (the write bumped it)
    m.history.append((_counter(t)[0], t._grad_fn, t._out_index))
    if not keep_value:
        if tuple(new.shape) != tuple(t.shape):
            raise RuntimeError(
                f"output with shape {list(t.shape)} doesn't match the broadcast shape {list(new.shape)}"
                f"\n  at {registry.user_source() or '<unknown>'}"
            )
        t._value = new._value
    # a leaf that requires grad stays one when written under no_grad (eagerly such a
    # write is a plain numpy write; traced, the leaf takes the new payload)
    keep_leaf = t._requires_grad and t._grad_fn is None and new._grad_fn is None
    t._grad_fn = new._grad_fn
    t._out_index = new._out_index
    t._requires_grad = new._requires_grad or keep_leaf


def _bump(t):
    c = _counter(t)
    c[0] += 1
    INPLACE[0] += 1


def _shadow(t, copy):
    """The value ``t`` had before a write, as an input for the recorded op: its history,
    and a private copy of the value where the op's VJP reads it."""
    v = t._value
    s = _wrap(np.array(v, copy=True) if copy and v.__class__ is _ndarray else v)
    s._grad_fn = t._grad_fn
    s._out_index = t._out_index
    s._requires_grad = t._requires_grad
    return s


def _saves_input0(prim, need):
    saves = prim.saves
    if saves is None:
        return True
    idx, reads_out = saves(need)
    return 0 in idx


_LEAF_MSG = "a leaf Variable that requires grad is being used in an in-place operation."


def _write(t, prim, operands, params, name, where=0):
    """``t = prim(*operands)`` in place, where ``operands[where]`` is ``t``: the write of
    ``t += o``, ``t.mul_(o)``, ``t[idx] = v``, ``t.fill_(v)``, ``t.copy_(src)``."""
    ctx = _get()
    if ctx.trace is not None:
        ctx.trace.note_write(t)  # under dg.compile: a write to a captured tensor is an effect
    if t._meta is not None:
        _fresh(t)
    traced = ctx.trace is not None or t._value.__class__ is not _ndarray
    rg = any(o.__class__ is Tensor and o._requires_grad for o in operands)
    record = ctx.grad_enabled and rg
    if record and t._requires_grad and t._grad_fn is None:
        raise RuntimeError(f"{name}: {_LEAF_MSG}\n  at {registry.user_source() or '<unknown>'}")
    if not record and not traced:
        _write_plain(t, prim, operands, params, name)
        return t
    need = tuple(o.__class__ is Tensor and o._requires_grad for o in operands)
    old = _shadow(t, copy=record and not traced and _saves_input0(prim, need))
    ops = list(operands)
    ops[where] = old
    new = ctx.handler(prim, tuple(ops), params)
    if not traced:
        _store_checked(t, t._value, new._value, name)
    elif new._value.dtype != t._value.dtype:
        _check_cast(new._value.dtype, t._value.dtype, name)
        new = new._cast(t._value.dtype)
    _bump(t)
    _rebase(t, new, keep_value=not traced)
    m = t._meta
    if m.view is not None:  # this write is the view's own: it is not stale
        m.view = m.view[:4] + (m.version[0],)
        _put_back(t, ctx)
    return t


def _put_back(t, ctx):
    """After a write to ``t``: if it is a view, its base is updated too (eagerly the
    memory is shared, so only the history; traced, the value as well)."""
    m = t._meta
    if m is None or m.view is None:
        return
    base, prim, rest, params, _ = m.view
    traced = ctx.trace is not None or base._value.__class__ is not _ndarray
    if prim is P.stop_gradient_p:
        # a detached alias (traced x.detach() / x.data): the base takes the value, keeping
        # its own autograd history, as the shared memory does eagerly
        if traced:
            if ctx.trace is not None:
                ctx.trace.note_write(base)
            base._value = t._value
    elif traced or (ctx.grad_enabled and (t._requires_grad or base._requires_grad)):
        if base._requires_grad and base._grad_fn is None and ctx.grad_enabled:
            raise RuntimeError(
                f"a view of a leaf Variable that requires grad is being used in an in-place "
                f"operation.\n  at {registry.user_source() or '<unknown>'}"
            )
        old = _shadow(base, copy=False)
        new = prim.view_put(old, t, *rest, **params)
        _rebase(base, new, keep_value=not traced)
    m.view = (base, prim, rest, params, m.version[0])
    if base._meta is not None and base._meta.view is not None:
        _put_back(base, ctx)


def _write_with(t, fn, name):
    """``t = fn(t)`` in place, for an out-of-place ``fn`` written in dualgraph ops (a
    composite): the same semantics as ``_write`` (views see it, versions move, a graph
    records it), the new value computed from a private copy of the old one."""
    ctx = _get()
    if ctx.trace is not None:
        ctx.trace.note_write(t)
    if t._meta is not None:
        _fresh(t)
    traced = ctx.trace is not None or t._value.__class__ is not _ndarray
    if t._requires_grad and t._grad_fn is None and ctx.grad_enabled:
        raise RuntimeError(f"{name}: {_LEAF_MSG}\n  at {registry.user_source() or '<unknown>'}")
    old = _shadow(t, copy=not traced)
    new = fn(old)
    if new.dtype != t.dtype:
        _check_cast(new.dtype, t.dtype, name)
        new = new._cast(t.dtype)
    if not new._requires_grad and not t._requires_grad and not traced:
        _store(t, t._value, new._value, name)
        _bump(t)
        return t
    if not traced:
        if tuple(new.shape) != tuple(t.shape):
            raise RuntimeError(f"{name}: output with shape {list(t.shape)} doesn't match the broadcast "
                               f"shape {list(new.shape)}\n  at {registry.user_source() or '<unknown>'}")
        _store(t, t._value, new._value, name)
    _bump(t)
    _rebase(t, new, keep_value=not traced)
    m = t._meta
    if m.view is not None:
        m.view = m.view[:4] + (m.version[0],)
        _put_back(t, ctx)
    return t


def _write_plain(t, prim, operands, params, name):
    """A write that records nothing (no_grad, or nothing requires grad): numpy in place."""
    vals = [o._value if o.__class__ is Tensor else _scalar(o) for o in operands]
    v = t._value
    try:
        res = prim.impl(*vals, **params)
    except (ValueError, IndexError, TypeError) as e:
        raise _op_error(prim, vals, params, e) from None
    _store_checked(t, v, np.asarray(res), name)
    _bump(t)


def _store_checked(t, v, res, name):
    """An in-place result written into ``t`` (whose array is ``v``): same shape as ``t`` and a
    dtype it can take, as torch requires, then stored."""
    if res.shape != v.shape:
        raise RuntimeError(
            f"{name}: output with shape {list(v.shape)} doesn't match the broadcast shape "
            f"{list(res.shape)}\n  at {registry.user_source() or '<unknown>'}"
        )
    _check_cast(res.dtype, v.dtype, name)
    _store(t, v, res, name)


def _store(t, v, res, name):
    """Write ``res`` into ``t``'s array ``v`` so that its views see it.  An expanded
    (broadcast) array cannot be written (torch refuses too); another read-only array (a
    graph constant handed out by the interpreter) is replaced by a written copy."""
    if v.flags.writeable:
        np.copyto(v, res, casting="unsafe")
    elif v.size > 1 and 0 in v.strides:
        raise _readonly_error(name)
    else:
        t._value = np.array(res, dtype=v.dtype, copy=True)


def _check_cast(src, dst, name):
    # as torch: a float result cannot be written into an integer tensor in place
    if src.kind == "f" and dst.kind in "iub" or src.kind in "iu" and dst.kind == "b":
        raise RuntimeError(
            f"{name}: result type {np.dtype(src).name} can't be cast to the desired output type "
            f"{np.dtype(dst).name}\n  at {registry.user_source() or '<unknown>'}"
        )


def _readonly_error(name):
    return RuntimeError(
        f"{name}: unsupported operation: more than one element of the written-to tensor refers to "
        f"a single memory location (an expanded/broadcast tensor). Please clone() the tensor before "
        f"performing the operation.\n  at {registry.user_source() or '<unknown>'}"
    )


def _index_spec(t, idx):
    """Turn a Python index into (hashable spec, index-array inputs)."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    spec = []
    arrays = []
    pos = 0  # the dim of ``t`` the next item indexes (None after an Ellipsis)
    for item in idx:
        if item is None or item is Ellipsis:
            spec.append(item)
            if item is Ellipsis:
                pos = None
            continue
        if isinstance(item, slice):
            spec.append(("s", _int_or_none(item.start), _int_or_none(item.stop), _int_or_none(item.step)))
        elif isinstance(item, (bool, np.bool_)):
            raise IndexError("indexing with a Python bool is not supported")
        elif isinstance(item, (int, np.integer)):
            spec.append(int(item))
        else:
            if isinstance(item, Tensor):
                arr = item
            else:
                arr = np.asarray(item)
                if arr.dtype == object:
                    raise IndexError(f"unsupported index {item!r}")
            if arr.dtype == np.bool_:
                # a constant mask (numpy, or an eager tensor) has known nonzeros; only a
                # traced one has a data-dependent result shape
                if isinstance(arr, Tensor) and arr._value.__class__ is not _ndarray:
                    raise IndexError(
                        "boolean mask indexing has a data-dependent shape and cannot be traced; "
                        "use dg.where(mask, x, y) instead"
                    )
                if pos is not None and tuple(arr.shape) != tuple(t.shape[pos:pos + arr.ndim]):
                    raise IndexError(
                        f"The shape of the mask {list(arr.shape)} at index {pos} does not match "
                        f"the shape of the indexed tensor {list(t.shape)} at index {pos}"
                    )
                for nz in np.nonzero(_unwrap(arr)):
                    spec.append(("a", len(arrays)))
                    arrays.append(nz.astype(np.int64))
                pos = None if pos is None else pos + arr.ndim
                continue
            if not np.issubdtype(arr.dtype, np.integer):
                raise IndexError(f"tensors used as indices must be integer or bool, got {arr.dtype}")
            spec.append(("a", len(arrays)))
            arrays.append(arr)
        if pos is not None:
            pos += 1
    return tuple(spec), arrays


def _int_or_none(v):
    return None if v is None else int(v)


def _fmt_float(a):
    finite = a[np.isfinite(a)]
    if finite.size and np.all(finite == np.round(finite)) and np.max(np.abs(finite)) < 1e8:
        return lambda v: (f"{v:.0f}." if np.isfinite(v) else _nonfinite(v))
    big = finite.size and (np.max(np.abs(finite)) >= 1e8 or np.min(np.abs(finite[finite != 0]), initial=1) < 1e-4)
    if big:
        return lambda v: f"{v:.4e}" if np.isfinite(v) else _nonfinite(v)
    return lambda v: f"{v:.4f}" if np.isfinite(v) else _nonfinite(v)


def _nonfinite(v):
    return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")



def _meta_field(name, default, always_store=False):
    """A property of Tensor kept in its Meta (created on the first store of a value other
    than ``default``, or of any value with ``always_store``)."""
    def get(self):
        m = self._meta
        return default if m is None else getattr(m, name)

    def set(self, v):
        m = self._meta
        if m is None:
            if not always_store and (v is default or (default is not None and v == default)):
                return
            m = self._meta = Meta()
        setattr(m, name, v)

    return property(get, set)

class Tensor:
    """An n-dimensional array that records the operations applied to it (as torch.Tensor)."""

    # _meta: None, or an engine.Meta (the version counter shared with views, view of
    # what, history of in-place writes, retain_grad, AccumulateGrad)
    # _meta also holds ``.grad``, a leaf's hooks and the output index (``_grad``, ``_hooks``,
    # ``_out_index`` below)
    __slots__ = ("_value", "shape", "_requires_grad", "_grad_fn", "_meta", "__weakref__")

    __array_priority__ = 1000  # numpy defers to our reflected operators

    def __init__(self, data, dtype=None, requires_grad=False):
        self._value = v = _to_array(data, dtype)
        s = _SHAPES.get(v.shape)  # _shape_of(v) inlined where the shape is known
        self.shape = s if s is not None else _shape_of(v)
        self._grad_fn = None
        self._requires_grad = False
        self._meta = None
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, value, requires_grad=False, grad_fn=None):
        t = _wrap(value, grad_fn)
        t._requires_grad = requires_grad
        return t

    # ---- attributes -----------------------------------------------------------------
    # ``shape`` is a slot, kept equal to ``_value.shape`` wherever ``_value`` is set (it is
    # read on every VJP rule's hot path; a property costs ~3x a slot read)

    @property
    def dtype(self):
        return self._value.dtype

    @property
    def ndim(self):
        return len(self._value.shape)

    def dim(self):
        return self.ndim

    def size(self, dim=None):
        shape = self.shape
        return shape if dim is None else shape[dim]

    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    @property
    def requires_grad(self):
        if self._meta is not None:
            _fresh(self)  # a view of a base written since
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, b):
        self.requires_grad_(b)

    @property
    def grad_fn(self):
        if self._meta is not None:
            _fresh(self)
        fn = self._grad_fn
        return fn if fn is None else public_node(fn)

    @property
    def is_leaf(self):
        if self._meta is not None:
            _fresh(self)
        return self._grad_fn is None

    # .grad, a leaf's hooks and a multi-output op's output index live in Meta (most tensors
    # never get one): reading gives the default without one, writing a default makes none
    _grad = _meta_field("grad", None)
    _out_index = _meta_field("out_index", 0)
    _hooks = _meta_field("hooks", None, always_store=True)

    @property
    def grad(self):
        tr = _get().trace
        if tr is not None:
            tr.note_read(self)  # under dg.compile: the grad is read through its tensor
        return self._grad

    @grad.setter
    def grad(self, g):
        tr = _get().trace
        if tr is not None:
            tr.note_write(self)
        if g is not None and not isinstance(g, Tensor):
            raise TypeError(f"assigned grad expected to be a Tensor or None but got {type(g).__name__}")
        if g is not None and g.shape != self.shape:
            raise RuntimeError(f"assigned grad has shape {g.shape} but the tensor has shape {self.shape}")
        self._grad = g

    @property
    def data(self):
        tr = _get().trace
        if tr is not None and tr.live is not None:
            # under dg.compile: an alias of this (captured) tensor, as eagerly, so that
            # ``p.data -= lr * g`` writes ``p`` (compile/effects.py)
            tr.live.adopt(self)
            with _context.using(grad_enabled=False):
                d = P.stop_gradient(self)
            m = d._meta
            if m is not None and m.view is not None:  # its own version counter (torch's .data)
                m.version = [m.version[0]]
            return d
        return Tensor._make(self._value)

    @data.setter
    def data(self, other):
        tr = _get().trace
        if tr is not None:
            tr.note_write(self)
        self._value = v = other._value if isinstance(other, Tensor) else _to_array(other, None)
        self.shape = _shape_of(v)

    @property
    def T(self):  # noqa: N802
        return P.transpose(self, perm=tuple(reversed(range(self.ndim))))

    @property
    def mT(self):  # noqa: N802
        return C.transpose(self, -2, -1)

    # ---- autograd -------------------------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf:
            if not requires_grad:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want to use "
                    "a computed variable in a subgraph that doesn't require differentiation use "
                    "var_no_grad = var.detach()."
                )
            return self
        if requires_grad and not _is_float(self._value):
            raise RuntimeError(
                f"only Tensors of floating point dtype can require gradients (got {self.dtype})"
            )
        self._requires_grad = bool(requires_grad)
        return self

    def _untaped(self):
        """The same value without its tape history: for the autograd machinery's own leaves
        and results.  Unlike ``detach`` it records no ``stop_gradient`` under a trace, so a
        graph built from it stays differentiable by IR autodiff (higher-order gradients)."""
        if self._value.__class__ is not _ndarray:
            return _wrap(self._value)
        return self.detach()

    def detach(self):
        if self._value.__class__ is not _ndarray:
            # traced: an equation, so IR autodiff of the graph stops there too
            return P.stop_gradient(self)
        # shares the memory and, as torch, the version counter
        t = _wrap(self._value)
        if self._value.__class__ is _ndarray:
            t._meta = Meta()
            t._meta.version = _counter(self)
        return t

    def detach_(self):
        tr = _get().trace
        if tr is not None:
            tr.note_write(self)
        self._grad_fn = None
        self._requires_grad = False
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        if not self._requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self.numel() != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs (got shape {self.shape})"
                )
            gradient = _ones_like(self)
        elif not isinstance(gradient, Tensor):
            gradient = Tensor(gradient, dtype=self.dtype)
        if gradient.shape != self.shape:
            raise RuntimeError(
                f"backward: gradient has shape {gradient.shape} but the output has shape {self.shape}"
            )
        if retain_graph is None:
            retain_graph = create_graph
        if inputs is not None:
            inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            grads = run_backward([self], [gradient], retain_graph, create_graph, inputs, allow_unused=True)
            for t, g in zip(inputs, grads):
                if g is not None:
                    tr = _get().trace
                    if tr is not None:
                        tr.note_write(t)
                    t._grad = g if t._grad is None else t._grad + g
            return
        run_backward([self], [gradient], retain_graph, create_graph)

    def register_hook(self, hook):
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            self._hooks.append(hook)
        else:
            self._grad_fn.register_prehook(self._out_index, hook)
        return _HookHandle(self, hook)

    def retain_grad(self):
        if self._grad_fn is None:
            if not self._requires_grad:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return  # a leaf keeps its .grad anyway
        m = self._meta
        if m is None:
            m = self._meta = Meta()
        if m.retains:
            return
        m.retains = True
        # stored after the tensor's own hooks ran, whenever they were registered
        self._grad_fn.retain(self._out_index, self)

    @property
    def retains_grad(self):
        return self._grad_fn is not None and self._meta is not None and self._meta.retains

    # ---- numpy interop --------------------------------------------------------------
    def numpy(self):
        v = self._value
        if v.__class__ is not _ndarray:
            return np.asarray(v)  # a traced value: the tracer explains why it has none
        if self._requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return v

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def item(self):
        v = self._value
        if v.__class__ is _ndarray and v.size != 1:
            raise RuntimeError(f"a Tensor with {v.size} elements cannot be converted to Scalar")
        return v.item()

    def tolist(self):
        return self._value.tolist()

    def __bool__(self):
        v = self._value
        if v.__class__ is _ndarray and v.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {v.size} values is ambiguous")
        return bool(v)

    def __float__(self):
        return float(self.item()) if self._value.__class__ is _ndarray else float(self._value)

    def __int__(self):
        return int(self.item()) if self._value.__class__ is _ndarray else int(self._value)

    def __index__(self):
        if not np.issubdtype(self.dtype, np.integer):
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self)

    def __repr__(self):
        v = self._value
        if v.__class__ is not _ndarray:
            body = repr(v)
        else:
            if v.dtype.kind == "f":
                fmt = {"float_kind": _fmt_float(v)}
            elif v.dtype.kind == "b":
                fmt = {"bool": lambda b: "True" if b else "False"}
            else:
                fmt = None
            body = np.array2string(v, separator=", ", prefix="tensor(", formatter=fmt, threshold=1000)
        extra = []
        if v.dtype not in (np.float32, np.int64, np.bool_):
            extra.append(f"dtype={v.dtype.name}")
        if self._grad_fn is not None:
            extra.append(f"grad_fn=<{type(self.grad_fn).__name__}>")
        elif self._requires_grad:
            extra.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extra) + ")"

    __str__ = __repr__

    # ---- in-place -------------------------------------------------------------------------
    # ``+= -= *= /= **=`` and ``add_ sub_ mul_ div_ pow_`` are installed from the registry
    # (each primitive's ``tensor_methods``) by ``_install_methods``; all go through ``_write``.

    def _copy(self):
        self._value = np.array(self._value, copy=True)
        return self

    def _inplace_add(self, g):
        # gradient accumulation into .grad (the engine's own buffer)
        v = self._value
        gv = g._value
        if v.flags.writeable:
            np.add(v, gv, out=v, casting="unsafe")
        else:
            self._value = v + gv

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        return _write(self, P.index_set_p, (self, value), _FULL, "fill_")

    def copy_(self, src):
        if not isinstance(src, Tensor):
            src = Tensor(src)
        return _write(self, P.index_set_p, (self, src), _FULL, "copy_")

    def addcmul_(self, tensor1, tensor2, value=1):
        return _write_with(self, lambda t: t + P.mul(P.mul(tensor1, tensor2), value), "addcmul_")

    def addcdiv_(self, tensor1, tensor2, value=1):
        return _write_with(self, lambda t: t + P.mul(P.div(tensor1, tensor2), value), "addcdiv_")

    def lerp_(self, end, weight):
        return _write_with(self, lambda t: t + P.mul(P.sub(end, t), weight), "lerp_")

    def clamp_(self, min=None, max=None):  # noqa: A002
        return _write_with(self, lambda t: C.clamp(t, min, max), "clamp_")

    def sqrt_(self):
        return _write_with(self, P.sqrt, "sqrt_")

    def exp_(self):
        return _write_with(self, P.exp, "exp_")

    def neg_(self):
        return _write_with(self, P.neg, "neg_")

    def abs_(self):
        return _write_with(self, P.abs, "abs_")

    def relu_(self):
        return _write_with(self, C.relu, "relu_")

    def __setitem__(self, idx, value):
        spec, arrays = _index_spec(self, idx)
        _write(self, P.index_set_p, (self, value, *arrays), {"spec": spec}, "__setitem__")

    # ---- operators ----------------------------------------------------------------------
    # + - * / ** @ (and reflected), unary - and abs, comparisons, & | ~, and the methods
    # exp log tanh sigmoid sqrt abs neg sign erf ... are installed by _install_methods from
    # the registry (each primitive's ``tensor_methods``).

    def __pos__(self):
        return self

    __hash__ = object.__hash__

    def __getitem__(self, idx):
        spec, arrays = _index_spec(self, idx)
        return P.getitem(self, *arrays, spec=spec)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # ---- methods ------------------------------------------------------------------------

    def relu(self):
        return C.relu(self)

    def sum(self, dim=None, keepdim=False):
        return C.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return C.mean(self, dim, keepdim)

    def var(self, dim=None, keepdim=False, unbiased=True):
        return C.var(self, dim, keepdim, unbiased)

    def max(self, dim=None, keepdim=False):
        return C.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return C.min(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return C.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return C.argmin(self, dim, keepdim)

    def reshape(self, *shape):
        return C.reshape(self, C._shape_arg(shape))

    def view(self, *shape):
        return C.reshape(self, C._shape_arg(shape))

    def flatten(self):
        return C.reshape(self, (-1,))

    def transpose(self, dim0, dim1):
        return C.transpose(self, dim0, dim1)

    def t(self):
        return C.transpose(self, 0, 1) if self.ndim == 2 else self

    def permute(self, *dims):
        return C.permute(self, C._shape_arg(dims))

    def squeeze(self, dim=None):
        return C.squeeze(self, dim)

    def unsqueeze(self, dim):
        return C.unsqueeze(self, dim)

    def expand(self, *sizes):
        return C.expand(self, C._shape_arg(sizes))

    def expand_as(self, other):
        return C.expand(self, other.shape)

    def clamp(self, min=None, max=None):  # noqa: A002
        return C.clamp(self, min, max)

    def softmax(self, dim):
        return C.softmax(self, dim)

    def log_softmax(self, dim):
        return C.log_softmax(self, dim)

    def to(self, dtype):
        return self._cast(dtype)

    def _cast(self, dtype):
        dtype = np.dtype(dtype)
        if self.dtype == dtype:
            return self
        return P.convert(self, dtype=dtype)

    def float(self):
        return self._cast(np.float32)

    def double(self):
        return self._cast(np.float64)

    def long(self):
        return self._cast(np.int64)

    def bool(self):
        return self._cast(np.bool_)

    def type_as(self, other):
        return self._cast(other.dtype)




_FULL = {"spec": (Ellipsis,)}

# One tuple object per shape among the tensors users make (dg.tensor, parameters): the
# results of elementwise ops keep their operand's, so a binary op on two of them finds
# the shapes equal by identity and skips comparing tuples (~70 instructions).
_SHAPES: dict = {}


def _shape_of(v):
    shape = v.shape
    s = _SHAPES.get(shape)
    if s is None:
        if len(_SHAPES) > 4096:
            _SHAPES.clear()
        s = _SHAPES[shape] = shape
    return s


def _install_methods():
    """Make the primitives' functions (one-frame fast ones where kind and arity allow) and
    install on Tensor the operators and methods each registry entry declares
    (``tensor_methods``): plain (``__add__``, ``exp``), reflected (``__radd__``) and in
    place (``__iadd__``, ``add_``)."""
    P.define_functions(_fast_factory)
    for prim in registry.PRIMITIVES.values():
        f = getattr(P, prim.fn_name)
        for m in prim.tensor_methods:
            dunder = m.startswith("__")
            if dunder and m.startswith("__r") and m != "__repr__":
                setattr(Tensor, m, _reflected(f, m))
            elif (dunder and m.startswith("__i") and m != "__invert__") or (not dunder and m.endswith("_")):
                setattr(Tensor, m, _inplace_method(prim, m))
            else:
                setattr(Tensor, m, f)


def _reflected(f, name):
    def r(self, other):
        return f(other, self)

    r.__name__ = r.__qualname__ = name
    return r


def _inplace_method(prim, name):
    def m(self, other, *, alpha=1):
        if alpha != 1:  # torch's add_(other, alpha=) / sub_(other, alpha=)
            other = P.mul(other, alpha)
        return _write(self, prim, (self, other), _NP, name)

    m.__name__ = m.__qualname__ = name
    m.__doc__ = f"In-place ``{prim.name}``: writes the result into this tensor."
    return m


_wrap, _node = _make_constructors()
_wrap.__doc__ = "A Tensor holding ``value``; with ``node``, that node's output ``index``."
_node.__doc__ = ("A tape node of ``prim`` on ``inputs`` (a plain ``Node``; multi-output nodes get their "
                 "class at once); ``vers``: the inputs' versions, checked by backward.")
_install_methods()
_engine_tensor[0] = Tensor
_engine_wrap[0] = _wrap


class _HookHandle:
    __slots__ = ("_t", "_hook")

    def __init__(self, t, hook):
        self._t = t
        self._hook = hook

    def remove(self):
        t = self._t
        if t._grad_fn is None:
            if t._hooks and self._hook in t._hooks:
                t._hooks.remove(self._hook)
        elif t._grad_fn.pre_hooks:
            hooks = t._grad_fn.pre_hooks.get(t._out_index, [])
            if self._hook in hooks:
                hooks.remove(self._hook)


def _to_array(data, dtype):
    if isinstance(data, Tensor):
        a = np.array(data._value, copy=True)
        return a if dtype is None else a.astype(dtype)
    if dtype is not None:
        return np.array(data, dtype=np.dtype(dtype))
    if isinstance(data, np.ndarray):
        return np.array(data, copy=True)
    if isinstance(data, np.generic):
        return np.asarray(data)
    a = np.array(data)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    elif a.dtype.kind in "iu":
        if a.dtype == np.uint64:  # a Python int beyond int64: torch refuses it too
            raise OverflowError("tensor: Overflow when unpacking long long (value beyond int64)")
        a = a.astype(np.int64)
    elif a.dtype == object:
        raise TypeError(f"tensor: cannot build a tensor from {type(data).__name__}")
    return a


def _ones_like(t):
    if TRACE[0] is None:
        v = t._value
        one = np.array(1, v.dtype)  # np.ones is a Python-level function (~1.5 us)
        return Tensor._make(one if v.ndim == 0 else np.full(v.shape, one))
    return P.full(shape=t.shape, value=1, dtype=t.dtype)


__all__ = ["Tensor", "apply", "TRACE", "Node", "accumulate_grad_of"]
