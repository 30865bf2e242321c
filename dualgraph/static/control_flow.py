"""Control flow: ``cond``, ``while_loop``, ``fori_loop`` (JAX's signatures).

Each operator is specified by the plain Python control flow it stands for, and that is
exactly what runs eagerly (so the eager tape differentiates it).  Under a trace each
becomes one equation carrying its sub-graphs, so a loop's IR does not grow with its trip
count.  The ``cond`` and ``while`` primitives have VJP rules written in dualgraph ops, so
reverse mode works through them in traced code, including a ``while`` whose trip count
depends on the data (which JAX refuses).
"""
from __future__ import annotations

import numpy as np

from ..eager.tensor import Tensor
from ..ops import context as _context
from ..ops import lowering as _lowering
from ..ops import primitives as P
from ..ops.registry import Primitive, ShapedArray, bind, register
from .autodiff import eval_with_vjp
from .interpreter import eval_graph, fresh_outputs
from .ir import Graph, Var
from .tracer import Tracer, trace_function, user_source
from .tree import tree_flatten, tree_unflatten


class ControlFlowError(TypeError):
    """Branches or loop carries that disagree in structure, shape or dtype."""


def _is_traced(x):
    return isinstance(x, Tensor) and x._value.__class__ is not np.ndarray


def _to_tensor(x, dtype=None):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float, np.generic, np.ndarray)):
        return Tensor(x, dtype=dtype)
    raise ControlFlowError(f"expected a Tensor or a number, got {type(x).__name__}")


def _avals_str(avals):
    return "(" + ", ".join(a.str_short() for a in avals) + ")"


def _with_inputs(graph, inputs):
    return Graph(inputs, graph.eqns, graph.outputs)


# ----------------------------------------------------------------------------------------
# cond
# ----------------------------------------------------------------------------------------


def _cond_rule(pred, *operands, true_branch, false_branch):
    return true_branch.out_avals


def _cond_eager(pred, *operands, true_branch, false_branch):
    branch = true_branch if bool(pred) else false_branch
    return tuple(eval_graph(branch, operands))


def _zeros_like(t):
    return P.zeros(t.shape, t.dtype)


def _is_float_t(t):
    return np.issubdtype(t.dtype, np.floating)


def _branch_vjp(branch, n, diff):
    """The backward of one branch: (operands, cotangents) -> cotangents of ``diff`` operands."""

    def bwd(*args):
        _, gs = eval_with_vjp(branch, args[:n], diff, args[n:])
        return tuple(gs)

    return bwd


def _cond_vjp(cts, outs, ins, need, true_branch, false_branch):
    pred, *ops = ins
    n = len(ops)
    diff = [i for i in range(n) if need[i + 1]]
    cts = [c if c is not None else _zeros_like(o) for c, o in zip(cts, outs)]
    res = cond(
        pred,
        _branch_vjp(true_branch, n, diff),
        _branch_vjp(false_branch, n, diff),
        *ops,
        *cts,
    )
    grads = [None] * (n + 1)
    for g, i in zip(res, diff):
        grads[i + 1] = g
    return tuple(grads)


def _sig(avals):
    return "(" + ", ".join(a.str_short() for a in avals) + ")"


def _graph_avals(xs):
    return [x.aval for x in xs]


def _cond_type_check(ins, outs, params):
    """The verifier's check of a ``cond`` equation: a bool[] predicate, both branches
    taking the operands and returning the results."""
    pred = ins[0]
    if pred.shape != () or pred.dtype != np.bool_:
        return f"predicate is {pred.str_short()}, not bool[]"
    for b in ("true_branch", "false_branch"):
        g = params[b]
        if _graph_avals(g.inputs) != ins[1:]:
            return f"cond.{b} takes {_sig(_graph_avals(g.inputs))} but is given {_sig(ins[1:])}"
        if _graph_avals(g.outputs) != outs:
            return f"cond.{b} returns {_sig(_graph_avals(g.outputs))} but the cond binds {_sig(outs)}"
    return None


def _while_type_check(ins, outs, params):
    """The verifier's check of a ``while`` equation: carry, then the constants of the
    predicate and of the body; a bool[] predicate; a body that keeps the carry's types."""
    nc, nb = params["cond_nconsts"], params["body_nconsts"]
    ncarry = len(ins) - nc - nb
    if min(nc, nb, ncarry) < 0:
        return f"while has {len(ins)} operands, cond_nconsts={nc} and body_nconsts={nb}"
    carry, cc, bc = ins[:ncarry], ins[ncarry:ncarry + nc], ins[ncarry + nc:]
    cg, bg = params["cond_graph"], params["body_graph"]
    if _graph_avals(cg.inputs) != carry + cc:
        return f"while.cond_graph takes {_sig(_graph_avals(cg.inputs))}, given {_sig(carry + cc)}"
    if len(cg.outputs) != 1 or cg.outputs[0].aval != ShapedArray((), np.bool_):
        return f"while.cond_graph must return one bool[], got {_sig(_graph_avals(cg.outputs))}"
    if _graph_avals(bg.inputs) != carry + bc:
        return f"while.body_graph takes {_sig(_graph_avals(bg.inputs))}, given {_sig(carry + bc)}"
    if _graph_avals(bg.outputs) != carry:
        return f"while.body_graph returns {_sig(_graph_avals(bg.outputs))} but the carry is {_sig(carry)}"
    if outs != carry:
        return f"while binds {_sig(outs)} but the carry is {_sig(carry)}"
    return None


cond_p = register(
    Primitive(
        "cond",
        None,
        _cond_rule,
        _cond_vjp,
        kind="control",
        arity=None,
        type_check=_cond_type_check,
        uses_out=True,
        multiple_results=True,
        higher_order=True,
        eager_rule=_cond_eager,
        lowering=_lowering.Emitter(_lowering._cond_emit),  # an ``if`` in the kernel
    )
)


def _describe(x):
    if isinstance(x, (Tensor, np.ndarray, np.generic)):
        return f"a {ShapedArray(x.shape, x.dtype).str_short()} " + (
            "tensor" if isinstance(x, Tensor) else "array")
    return f"a {type(x).__name__} ({x!r})"


def _check_pred(pred, name):
    """``pred`` as a Python bool when its value is known, else as a traced bool[] Tensor.

    A predicate is a scalar bool (as JAX's ``while_loop``; ``cond`` is stricter than JAX,
    which also takes ints): a Python/numpy bool or a bool tensor of shape ()."""
    if isinstance(pred, (bool, np.bool_)):
        return bool(pred)
    if isinstance(pred, (Tensor, np.ndarray)) and tuple(pred.shape) == () and pred.dtype == np.bool_:
        if isinstance(pred, Tensor) and pred._value.__class__ is not np.ndarray:
            return pred  # traced
        return bool(pred)
    raise ControlFlowError(
        f"{name}: the predicate must be a scalar bool (a bool tensor of shape (), or a Python "
        f"bool), got {_describe(pred)} at {user_source()}; compare or reduce it first, e.g. "
        "`x.sum() > 0`"
    )


def _outputs_as_tensors(fn):
    def wrapped(*args):
        out = fn(*args)
        leaves, tree = tree_flatten(out)
        return tree_unflatten(tree, [_to_tensor(x) for x in leaves])

    return wrapped


_NO_OPERAND = object()


def cond(pred, true_fn, false_fn, *operands, operand=_NO_OPERAND):
    """``true_fn(*operands) if pred else false_fn(*operands)``, as ``jax.lax.cond``.

    ``pred`` is a scalar bool.  Eagerly this is exactly that Python ``if``; traced, it
    is one ``cond`` equation with both branches as sub-graphs (they must return the same
    structure, shapes and dtypes).  Under a trace a predicate whose value is known (a
    Python bool) still has both branches traced and checked, as in JAX; then only the
    taken one is kept.  ``operand=x`` is JAX's older spelling of one operand.
    """
    if operand is not _NO_OPERAND:
        if operands:
            raise TypeError("cond: pass the operands positionally or as operand=, not both")
        operands = (operand,)
    builder = _context.get().trace
    pred = _check_pred(pred, "cond")
    if builder is None:
        taken = true_fn if pred else false_fn
        # numbers become Tensors as under a trace, so both modes return the same types
        return _outputs_as_tensors(taken)(*operands)
    leaves, tree = tree_flatten(operands)
    leaves = [_to_tensor(x) for x in leaves]
    ops = tree_unflatten(tree, leaves)
    g_t, caps_t = trace_function(_outputs_as_tensors(true_fn), ops, parent=builder)
    g_f, caps_f = trace_function(_outputs_as_tensors(false_fn), ops, parent=builder)
    if g_t.out_tree != g_f.out_tree:
        raise ControlFlowError(
            f"cond: true_fn returned {g_t.out_tree} but false_fn returned {g_f.out_tree} "
            f"at {user_source()}"
        )
    at, af = g_t.out_avals, g_f.out_avals
    if at != af:
        raise ControlFlowError(
            f"cond: branch outputs must agree in shape and dtype: true_fn returned {_avals_str(at)}, "
            f"false_fn returned {_avals_str(af)} at {user_source()}"
        )
    if isinstance(pred, bool):
        # known predicate: the taken branch's graph, inlined into this trace
        g, caps = (g_t, caps_t) if pred else (g_f, caps_f)
        start = len(builder.eqns)
        outs = eval_graph(g, leaves + caps)
        new = builder.eqns[start:]
        if len(new) == len(g.eqns) and all(a.prim is b.prim for a, b in zip(new, g.eqns)):
            for a, b in zip(new, g.eqns):
                a.source = b.source  # the branch's own lines, not the line of the cond
        return tree_unflatten(g.out_tree, outs)
    n = len(leaves)
    ins_t, ins_f = g_t.inputs, g_f.inputs
    # both branches take the operands, then every value either branch captured (once)
    caps = []
    for c in caps_t + caps_f:
        if not any(c is d for d in caps):
            caps.append(c)

    def branch_inputs(ins, own_caps):
        mine = {id(c): v for c, v in zip(own_caps, ins[n:])}
        return ins[:n] + [mine.get(id(c)) or Var(c._value.var.aval) for c in caps]

    t_inputs = branch_inputs(ins_t, caps_t)
    f_inputs = branch_inputs(ins_f, caps_f)
    params = {
        "true_branch": _with_inputs(g_t, t_inputs),
        "false_branch": _with_inputs(g_f, f_inputs),
    }
    outs = bind(cond_p, pred, *leaves, *caps, **params)
    return tree_unflatten(g_t.out_tree, list(outs))


# ----------------------------------------------------------------------------------------
# while_loop
# ----------------------------------------------------------------------------------------


def _while_rule(*ins, cond_graph, body_graph, cond_nconsts, body_nconsts):
    return body_graph.out_avals


def _split(ins, cond_nconsts, body_nconsts):
    ncarry = len(ins) - cond_nconsts - body_nconsts
    carry = list(ins[:ncarry])
    cc = list(ins[ncarry:ncarry + cond_nconsts])
    bc = list(ins[ncarry + cond_nconsts:])
    return carry, cc, bc


def _while_eager(*ins, cond_graph, body_graph, cond_nconsts, body_nconsts):
    carry, cc, bc = _split(ins, cond_nconsts, body_nconsts)
    # a tape buffer the body made is read by nothing but the next iteration: donated to
    # it, so the next write into it is done in place (see interpreter.py)
    donate = ()
    fresh = fresh_outputs(body_graph)
    while bool(eval_graph(cond_graph, carry + cc)[0]):
        carry = eval_graph(body_graph, carry + bc, donate)
        donate = fresh
    return tuple(carry)


_TAPE_CAPACITY = 16


def _while_vjp(cts, outs, ins, need, cond_graph, body_graph, cond_nconsts, body_nconsts):
    """Reverse mode through a while loop with a data-dependent trip count.

    1. The forward loop also counts its iterations and pushes every carry onto a growable
       tape buffer (one per carry): the traced forward ``while`` is replaced by this taped
       one (same outputs, plus the count and the tapes), so the loop runs once.
    2. Run the reverse loop: pop carry k, apply the body's VJP to the carry cotangent,
       and accumulate the cotangents of the body's captured constants.
    """
    carry0, cc, bc = _split(ins, cond_nconsts, body_nconsts)
    nc = len(carry0)
    # The backward of a while's backward would need cotangents of its tape buffers, whose
    # length is only known at run time (and the tape's own taped replay): unsupported.
    for x in carry0 + [b for j, b in enumerate(bc) if need[nc + cond_nconsts + j]]:
        if isinstance(x, Tensor) and None in x.shape:
            raise NotImplementedError(
                "reverse mode through a while loop nested in the backward of another while loop "
                "(second-order gradients through a traced while_loop) is not supported; "
                "differentiate the eager (untraced) loop instead"
            )

    # -- 1. the forward loop, taping every carry
    n_iter, tape = _forward_tape(outs, carry0, cc, bc, cond_graph, body_graph)

    # -- 2. reverse loop
    diff_carry = [i for i in range(nc) if _is_float_t(carry0[i])]
    diff_bc = [j for j in range(len(bc)) if need[nc + cond_nconsts + j] and _is_float_t(bc[j])]
    ct_carry = tuple(
        (cts[i] if cts[i] is not None else _zeros_like(outs[i])) for i in diff_carry
    )
    ct_bc = tuple(_zeros_like(bc[j]) for j in diff_bc)
    # Row n of each float carry's tape holds the loop's result, so row k+1 is iteration
    # k's result: the VJP of the body reads it instead of recomputing it (tanh's VJP
    # reads its output: the pre-activation and its matmuls become dead code).
    traced = _context.get().trace is not None
    if traced:
        tape = list(tape)
        for i in diff_carry:
            if isinstance(outs[i], Tensor):
                tape[i] = P.dynamic_update(tape[i], n_iter, outs[i])

    def bwd_body(j, state):
        ctc, ctb = state
        k = n_iter - 1 - j
        xs = [P.dynamic_index(b, k) for b in tape]
        nxt = {i: P.dynamic_index(tape[i], k + 1) for i in diff_carry
               if traced and isinstance(outs[i], Tensor)}
        cts_out = [None] * nc
        for i, c in zip(diff_carry, ctc):
            cts_out[i] = c
        wrt = diff_carry + [nc + jj for jj in diff_bc]
        builder = _context.get().trace
        start = len(builder.eqns) if builder is not None else 0
        ys, gs = eval_with_vjp(body_graph, xs + list(bc), wrt, cts_out)
        if builder is not None and nxt:
            _read_taped_results(builder, start, ys, nxt)
        new_ctc = tuple(gs[: len(diff_carry)])
        new_ctb = tuple(a + g for a, g in zip(ctb, gs[len(diff_carry):]))
        return new_ctc, new_ctb

    ct_carry, ct_bc = fori_loop(0, n_iter, bwd_body, (ct_carry, ct_bc))
    grads = [None] * len(ins)
    for i, g in zip(diff_carry, ct_carry):
        if need[i]:
            grads[i] = g
    for jj, g in zip(diff_bc, ct_bc):
        grads[nc + cond_nconsts + jj] = g
    return tuple(grads)


def _read_taped_results(builder, start, ys, nxt):
    """In the equations traced since ``start`` (the body's replay and its VJP), read the
    replayed results ``ys[i]`` from the tape rows ``nxt[i]`` (equal values: what the
    forward loop computed), so the replay that only produced them is dead code."""
    sub = {}
    for i, t in nxt.items():
        y = ys[i]._value if isinstance(ys[i], Tensor) else None
        if y.__class__ is Tracer and y.builder is builder and any(
                y.var in e.outs for e in builder.eqns[start:]):
            sub[y.var] = t._value.var
    if not sub:
        return
    for e in builder.eqns[start:]:
        if any(x in sub for x in e.inputs if x.__class__ is Var):
            e.inputs = [sub.get(x, x) if x.__class__ is Var else x for x in e.inputs]


def _taped_loop(carry0, cc, bc, cond_graph, body_graph):
    """``while`` over ``(count, carry, tapes)``: the loop of ``cond_graph``/``body_graph``
    that also counts its iterations and writes carry k into row k of each tape."""
    bufs0 = [P.dynamic_zeros(_TAPE_CAPACITY, shape=tuple(x.shape), dtype=x.dtype, scratch=True)
             for x in carry0]

    def fwd_cond(state):
        n, carry, bufs = state
        return eval_graph(cond_graph, list(carry) + cc)[0]

    def fwd_body(state):
        n, carry, bufs = state
        bufs = tuple(P.dynamic_update(b, n, c) for b, c in zip(bufs, carry))
        return n + 1, tuple(eval_graph(body_graph, list(carry) + bc)), bufs

    zero = Tensor(np.asarray(0, np.int64))
    return while_loop(fwd_cond, fwd_body, (zero, tuple(carry0), tuple(bufs0)))


def _forward_tape(outs, carry0, cc, bc, cond_graph, body_graph):
    """The trip count and the carry tapes of the traced forward loop whose outputs are
    ``outs``: ``(n_iter, tapes)``.

    The taped loop is emitted, then moved to where the forward ``while`` equation stands
    and bound to its outputs in its place (its operands are all defined there), so the
    graph runs the forward loop once.  A second backward of the same loop reuses the
    tapes.  Where that is impossible (the forward loop is in an enclosing trace, or the
    taped loop reads a value made after the forward loop) the loop is replayed instead."""
    builder = _context.get().trace
    first = outs[0]._value if outs and isinstance(outs[0], Tensor) else None
    if builder is None or first.__class__ is not Tracer or first.builder is not builder:
        n_iter, _, tape = _taped_loop(carry0, cc, bc, cond_graph, body_graph)
        return n_iter, tape
    hit = builder.tapes.get(first.var)
    if hit is not None:
        return hit
    eqns = builder.eqns
    idx = next((k for k in range(len(eqns) - 1, -1, -1)
                if eqns[k].prim is while_p and eqns[k].outs[0] is first.var), None)
    start = len(eqns)
    n_iter, carry, tape = _taped_loop(carry0, cc, bc, cond_graph, body_graph)
    new = eqns[start:]
    if idx is None or not new or new[-1].prim is not while_p:
        return n_iter, tape
    later = {v for e in eqns[idx:start] for v in e.outs}
    if any(x in later for e in new for x in e.inputs if x.__class__ is Var):
        return n_iter, tape
    forward = eqns[idx]
    taped = new[-1]
    nc = len(carry0)
    # the taped loop's carry outputs are the forward loop's outputs
    for t, v in zip(carry, forward.outs):
        t._value.var = v
    taped.outs[1:1 + nc] = forward.outs
    del eqns[start:]
    eqns[idx:idx + 1] = new
    builder.tapes[first.var] = (n_iter, tape)
    return n_iter, tape


while_p = register(
    Primitive(
        "while",
        None,
        _while_rule,
        _while_vjp,
        kind="control",
        arity=None,
        type_check=_while_type_check,
        uses_out=True,
        multiple_results=True,
        higher_order=True,
        eager_rule=_while_eager,
        lowering=_lowering.Emitter(_lowering._while_emit),  # a ``while`` in the kernel
    )
)


def _check_carry(name, tree_in, avals_in, tree_out, avals_out):
    if tree_in != tree_out:
        raise ControlFlowError(
            f"{name}: body_fn must return the carry's structure {tree_in}, got {tree_out} "
            f"at {user_source()}"
        )
    for i, (a, b) in enumerate(zip(avals_in, avals_out)):
        if a != b:
            raise ControlFlowError(
                f"{name}: loop carry {i} changed from {a.str_short()} to {b.str_short()} in one "
                f"iteration; carries must keep their shape and dtype (cast inside body_fn) "
                f"at {user_source()}"
            )


def while_loop(cond_fn, body_fn, init_val):
    """``val = init_val; while cond_fn(val): val = body_fn(val); return val``, as
    ``jax.lax.while_loop``, and differentiable in reverse mode (unlike JAX).

    ``init_val`` is a Tensor or a tuple/list (pytree) of Tensors.
    """
    builder = _context.get().trace
    leaves, tree = tree_flatten(init_val)
    if builder is None:
        # numbers in the carry become Tensors, as under a trace (and as in JAX)
        val = tree_unflatten(tree, [_to_tensor(x) for x in leaves])
        while _check_pred(cond_fn(val), "while_loop"):
            val = body_fn(val)
        return val
    leaves = [_to_tensor(x) for x in leaves]
    init = tree_unflatten(tree, leaves)
    avals = [ShapedArray(x.shape, x.dtype) for x in leaves]

    def cond_wrapped(val):
        p = _check_pred(cond_fn(val), "while_loop")
        return _to_tensor(p) if isinstance(p, bool) else p

    def body_wrapped(val):
        out = body_fn(val)
        out_leaves, out_tree = tree_flatten(out)
        if out_tree == tree:
            out_leaves = [_to_tensor(o, dtype=a.dtype) if not isinstance(o, Tensor) else o
                          for o, a in zip(out_leaves, avals)]
        return tree_unflatten(out_tree, out_leaves)

    g_c, caps_c = trace_function(cond_wrapped, (init,), parent=builder)
    g_b, caps_b = trace_function(body_wrapped, (init,), parent=builder)
    _check_carry("while_loop", tree, avals, g_b.out_tree, g_b.out_avals)
    params = {
        "cond_graph": g_c.replace(in_tree=None, out_tree=None),
        "body_graph": g_b.replace(in_tree=None, out_tree=None),
        "cond_nconsts": len(caps_c),
        "body_nconsts": len(caps_b),
    }
    outs = bind(while_p, *leaves, *caps_c, *caps_b, **params)
    return tree_unflatten(tree, list(outs))


def _check_bound(x, name):
    if isinstance(x, (bool, np.bool_)):
        pass  # an int to Python, not a loop bound
    elif isinstance(x, (int, np.integer)):
        return
    elif isinstance(x, (Tensor, np.ndarray)) and tuple(x.shape) == () and np.issubdtype(x.dtype, np.integer):
        return
    raise ControlFlowError(
        f"fori_loop: the {name} bound must be a scalar int (a Python int or an integer tensor "
        f"of shape ()), got {_describe(x)} at {user_source()}"
    )


def fori_loop(lower, upper, body_fn, init_val):
    """``for i in range(lower, upper): val = body_fn(i, val)``, as ``jax.lax.fori_loop``.

    ``i`` is an int64 scalar Tensor; under a trace the loop is one ``while`` equation.
    ``lower`` and ``upper`` are scalar ints: Python ints or integer tensors of shape ().
    """
    _check_bound(lower, "lower")
    _check_bound(upper, "upper")
    if _context.get().trace is None and not _is_traced(lower) and not _is_traced(upper):
        leaves, tree = tree_flatten(init_val)
        val = tree_unflatten(tree, [_to_tensor(x) for x in leaves])
        for i in range(int(lower), int(upper)):
            val = body_fn(Tensor(np.asarray(i, np.int64)), val)
        return val
    lo = _to_tensor(lower, dtype=np.int64) if not isinstance(lower, Tensor) else lower
    hi = upper if isinstance(upper, Tensor) else int(upper)  # a Python bound stays a literal
    if lo.dtype != np.int64:
        lo = P.convert(lo, dtype=np.dtype(np.int64))

    def c(state):
        i, _ = state
        return i < hi

    init_leaves, tree = tree_flatten(init_val)
    avals = [ShapedArray(x.shape, x.dtype) for x in map(_to_tensor, init_leaves)]

    def b(state):
        i, val = state
        nxt = i + 1
        out = body_fn(i, val)
        # checked here so the error counts the user's carries (the counter is ours)
        out_leaves, out_tree = tree_flatten(out)
        if out_tree == tree:
            out_leaves = [o if isinstance(o, Tensor) else _to_tensor(o, dtype=a.dtype)
                          for o, a in zip(out_leaves, avals)]
            out_avals = [ShapedArray(o.shape, o.dtype) for o in out_leaves]
        else:
            out_avals = []
        _check_carry("fori_loop", tree, avals, out_tree, out_avals)
        return nxt, tree_unflatten(out_tree, out_leaves)

    _, out = while_loop(c, b, (lo, init_val))
    return out
