"""The autograd engine: tape nodes, AccumulateGrad, and backward in topological order.

Each recorded primitive application is a ``Node`` (users see it as ``<Op>Backward``).  A
node keeps the primitive, its params, its inputs (the saved tensors), for primitives
whose VJP reads the output the output payload, and a creation number.  ``backward`` runs
the pending nodes highest number first, so each node's VJP rule runs once its cotangent
is complete, and accumulates into leaves.  A node's saved tensors are dropped as soon as
it has run, unless ``retain_graph``.
"""
from __future__ import annotations

import weakref
from heapq import heappop as _heappop, heappush as _heappush
from itertools import count

import numpy as np

from ..ops import context as _context

_ndarray = np.ndarray

_FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed). Saved intermediate values of the graph are freed "
    "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
    "backward through the graph a second time or if you need to access saved tensors after "
    "calling backward."
)


class Node:
    """A recorded primitive application: the ``grad_fn`` of its outputs.

    The tape records every single-output node as a plain ``Node``: one class, so the
    interpreter's attribute caches in the forward ops and in ``run_backward`` stay
    monomorphic (alternating ``MulBackward``/``AddBackward``/... instances costs about 30 ns
    per attribute access).  The node gets its torch-named class (``MulBackward``, same
    layout, ``__class__`` assignment) when it is handed out: ``Tensor.grad_fn``,
    ``next_functions``, ``name()``, ``repr``.  See ``public_node``.
    """

    # prim, params; inputs: the saved inputs (None once freed); need: which inputs want a
    # cotangent; out: the output payload(s) if the VJP reads them; edges: what the freed
    # inputs pointed to; pre_hooks: {output index: [hook, ...]} (tensor hooks, retain_grad)
    # seq: creation number, orders backward (see run_backward)
    # vers: the versions of the inputs when recorded, set only if one had a version
    # counter (else all were 0); outc: the saved output's version counter, set when the
    # output first gets one (see tensor._counter).  What backward checks; both are left
    # unset on the hot path and read with getattr
    __slots__ = ("prim", "params", "inputs", "need", "out", "edges", "pre_hooks", "seq", "vers", "outc",
                 "__weakref__")

    _multi = False  # the primitive has multiple results (set per class by node_class)

    def name(self):
        return type(public_node(self)).__name__

    def __repr__(self):
        return f"<{type(public_node(self)).__name__} object at {id(self):#x}>"

    @property
    def next_functions(self):
        ins = self.inputs
        if ins is not None:
            return tuple(_edge(_input_edge(self, i, t)) if n else (None, 0)
                         for i, (t, n) in enumerate(zip(ins, self.need)))
        # backward freed the saved inputs: `edges` keeps, per input that wants a cotangent,
        # what it pointed to: one edge or a list of them (see run_backward)
        edges = self.edges
        edges = iter(edges if edges.__class__ is list else (edges,))
        return tuple(_edge(next(edges)) if n else (None, 0) for n in self.need)

    def register_prehook(self, index, fn):
        if self.pre_hooks is None:
            self.pre_hooks = {}
        self.pre_hooks.setdefault(index, []).append(fn)

    def retain(self, index, tensor):
        """Store the cotangent of output ``index`` into ``tensor.grad`` after its hooks ran."""
        if self.pre_hooks is None:
            self.pre_hooks = {}
        self.pre_hooks[("retain", index)] = weakref.ref(tensor)


class Meta:
    """What a few tensors carry beyond the hot slots.

    view:    (base tensor, primitive, other operands, params, version seen) for a view
    history: [(version, grad_fn, out_index), ...]: the grad_fn the tensor had for versions
             below ``version``; in-place writes append, nodes recorded before a write keep
             their edge to the history they saw
    retains: ``retain_grad()`` was called
    acc:     a leaf's AccumulateGrad node, once asked for
    grad:    the tensor's ``.grad`` (``Tensor._grad``)
    hooks:   a leaf's tensor hooks (``Tensor._hooks``)
    out_index: which output of its grad_fn the tensor is, if not the first
               (``Tensor._out_index``)

    ``grad``, ``hooks`` and ``out_index`` live here rather than in slots of their own:
    most tensors never get any of them, and every op saves three stores (a third of a
    tensor's construction)."""

    __slots__ = ("version", "view", "history", "retains", "acc", "grad", "hooks", "out_index")

    def __init__(self):
        self.version = None  # the version counter [n], shared with views and detached aliases
        self.view = None
        self.history = None
        self.retains = False
        self.acc = None  # the AccumulateGrad node of a leaf
        self.grad = None
        self.hooks = None
        self.out_index = 0


# how many in-place writes this process has made: backward checks saved versions only
# once there has been one
INPLACE = [0]


def _input_edge(node, i, t):
    """What input ``i`` of ``node`` (a Tensor) pointed to when the node was recorded:
    ``t`` itself, or ``(grad_fn, index)`` if ``t`` has been written in place since."""
    m = getattr(t, "_meta", None)
    if m is None or m.history is None:
        return t
    v = _recorded_version(node, i)
    for ver, fn, k in m.history:
        if ver > v:
            return (fn, k) if fn is not None else _LeafAt(t)
    return t


class _LeafAt:
    """A tensor that was a leaf not requiring grad when a node recorded it."""

    __slots__ = ("t",)

    def __init__(self, t):
        self.t = t


def _recorded_version(node, i):
    vers = getattr(node, "vers", None)  # set only when an input had a counter
    return 0 if vers is None else vers[i]


def public_node(node):
    """``node`` with its torch-named class (``MulBackward``...), as users see it."""
    if node.__class__ is Node:
        node.__class__ = node_class(node.prim)
    return node


def _edge(t):
    """The (node, output index) an input's gradient flows to (``t`` a Tensor, a Node for
    its output 0, or a (node, index) edge)."""
    if isinstance(t, tuple):
        return (public_node(t[0]), t[1])
    if isinstance(t, _LeafAt):
        return (None, 0)
    if isinstance(t, Node):
        return (public_node(t), 0)
    fn = t._grad_fn
    if fn is not None:
        return (public_node(fn), t._out_index)
    return (accumulate_grad_of(t), 0)


class AccumulateGrad:
    """The leaf end of the graph: accumulates into ``variable.grad``."""

    __slots__ = ("variable",)

    def __init__(self, variable):
        self.variable = variable

    next_functions = ()

    def name(self):
        return "AccumulateGrad"

    def __repr__(self):
        return f"<AccumulateGrad object at {id(self):#x}>"


def accumulate_grad_of(leaf):
    """The leaf's one AccumulateGrad node (kept in its Meta)."""
    m = leaf._meta
    if m is None:
        m = leaf._meta = Meta()
    if m.acc is None:
        m.acc = AccumulateGrad(leaf)
    return m.acc


# creation numbers of nodes: ``next(NODE_SEQ)``
NODE_SEQ = count()

def node_class(prim):
    """The ``<GradName>Backward`` class of ``prim``'s nodes (the registry names it)."""
    cls = prim.node_class
    if cls is None:
        cls = type(f"{prim.grad_name}Backward", (Node,), {"__slots__": (), "_multi": bool(prim.multiple_results)})
        prim.node_class = cls
    return cls


# ----------------------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------------------
#
# Order: every node carries a sequence number, increasing in creation order, and a node is
# always created after the nodes of its inputs.  Running the pending nodes highest number
# first therefore runs each node after all of its consumers (any unrun consumer reachable
# from a root has a pending ancestor with a higher number), so no dependency-counting pass
# over the graph is needed.  The highest pending node is kept in a local (`nxt`) and only
# the others go to a heap: a chain of ops never touches the heap.
#
# `pending` maps a node to the sum of the cotangents it has received so far: a Tensor for
# a single-output node, a {output index: Tensor} dict for a multi-output one.  Sums are
# computed out of place (a cotangent may be a tensor the user or a hook holds).


def run_backward(roots, root_grads, retain_graph, create_graph, inputs=None, allow_unused=False):
    """Propagate ``root_grads`` from the ``roots`` tensors back to the leaves.

    With ``inputs`` (a sequence of Tensors) the gradients of those tensors are returned
    instead of being accumulated into ``.grad`` (``autograd.grad``)."""
    token = _context.enter_grad(bool(create_graph))
    try:
        tr = _context.get().trace
        if tr is not None and inputs is None:  # a backward() that accumulates into .grad
            tr.note_backward(roots)
        captured = None
        capture_leaf = capture_node = None
        if inputs is not None:
            captured = [None] * len(inputs)
            capture_leaf = {}
            capture_node = {}
            for i, t in enumerate(inputs):
                if t._grad_fn is None:
                    capture_leaf.setdefault(id(t), []).append(i)
                else:
                    capture_node.setdefault((t._grad_fn, t._out_index), []).append(i)

        # pending cotangents, except the one of `nxt` (kept in `nxt_ct`)
        pending = {}
        heap = []
        for t, g in zip(roots, root_grads):
            fn = t._grad_fn
            if fn is None:
                _accumulate(t, g, create_graph, capture_leaf, captured)
                continue
            cur = pending.get(fn)
            if fn._multi:
                if cur is None:
                    cur = pending[fn] = {}
                    _heappush(heap, (-fn.seq, fn))
                k = t._out_index
                cur[k] = g if k not in cur else cur[k] + g
            elif cur is None:
                pending[fn] = g
                _heappush(heap, (-fn.seq, fn))
            else:
                pending[fn] = cur + g

        Tensor = _TENSOR[0]
        # until the process makes its first in-place write no saved value can be stale and
        # no tensor has a history of rebases: both are checked only once there has been one
        inplace = INPLACE
        ndarray = _ndarray
        pop = pending.pop
        get = pending.get
        free = not retain_graph
        edges = None
        nxt = nxt_ct = None
        deferred = {}  # leaves with hooks: id -> [leaf, summed gradient] (see _accumulate)
        while True:
            if nxt is not None:
                node = nxt
                ct = nxt_ct
                nxt = nxt_ct = None
            elif heap:
                node = _heappop(heap)[1]
                ct = pop(node)
            else:
                break
            inputs_ = node.inputs
            if inputs_ is None:
                raise RuntimeError(_FREED_MSG)
            writes = inplace[0]
            if writes:
                _check_saved(node)
            if node.pre_hooks:
                ct = _run_prehooks(node, ct)
            if capture_node:
                _capture(node, ct, capture_node, captured)
            need = node.need
            if node._multi:
                cts = _call_vjp_multi(node, ct, Tensor)
            else:
                v = node.out
                out = None
                if v is not None:
                    # the output, re-made as torch's SavedVariable does where the rule must
                    # stay differentiable; for a first-order backward the array itself
                    # (no gradient flows through it)
                    out = v if not create_graph and v.__class__ is ndarray else _WRAP[0](v, node)
                params = node.params
                if params:
                    cts = node.prim.vjp(ct, out, inputs_, need, **params)
                else:
                    cts = node.prim.vjp(ct, out, inputs_, need)
            if free:
                # drop the saved tensors; `edges` keeps, per input that wants a cotangent,
                # its node (output 0), (node, index) or leaf tensor, for next_functions:
                # the one edge itself or a list of them
                node.inputs = None
                node.out = None
                edges = None
            n_in = len(need)
            for i in _INDICES[n_in] if n_in < _N_INDICES else range(n_in):
                if not need[i]:
                    continue
                t = inputs_[i]
                g = cts[i]
                if writes and t._meta is not None and t._meta.history is not None:
                    t = _input_edge(node, i, t)
                    if t.__class__ is not Tensor:
                        # written in place since: the edge the node saw
                        if t.__class__ is _LeafAt:
                            continue
                        fn, k = t
                        t = _Edge(fn, k)
                fn = t._grad_fn
                if fn is None:
                    if free:
                        edges = t if edges is None else _add_edge(edges, t)
                    if g is not None:
                        _accumulate(t, g, create_graph, capture_leaf, captured, deferred)
                    continue
                if fn._multi:
                    k = t._out_index
                    if free:
                        edges = (fn, k) if edges is None else _add_edge(edges, (fn, k))
                    if g is None:
                        continue
                    cur = nxt_ct if fn is nxt else get(fn)
                    if cur is not None:
                        cur[k] = g if k not in cur else cur[k] + g
                        continue
                    g = {k: g}
                else:
                    if free:
                        edges = fn if edges is None else _add_edge(edges, fn)
                    if g is None:
                        continue
                    if fn is nxt:
                        nxt_ct = nxt_ct + g
                        continue
                    if pending:  # (a chain of ops keeps it empty: no lookup)
                        cur = get(fn)
                        if cur is not None:
                            pending[fn] = cur + g
                            continue
                # fn was not pending: it becomes `nxt` if it is the highest-numbered
                if nxt is None:
                    if heap and fn.seq < -heap[0][0]:
                        pending[fn] = g
                        _heappush(heap, (-fn.seq, fn))
                    else:
                        nxt = fn
                        nxt_ct = g
                elif fn.seq > nxt.seq:
                    pending[nxt] = nxt_ct
                    _heappush(heap, (-nxt.seq, nxt))
                    nxt = fn
                    nxt_ct = g
                else:
                    pending[fn] = g
                    _heappush(heap, (-fn.seq, fn))
            if free:
                node.edges = edges
        for leaf, g in deferred.values():
            _accumulate(leaf, g, create_graph, capture_leaf, captured)
        if captured is not None:
            for i, (t, g) in enumerate(zip(inputs, captured)):
                if g is None and not allow_unused:
                    raise RuntimeError(
                        f"One of the differentiated Tensors (input {i}, shape {tuple(t.shape)}) "
                        "appears to not have been used in the graph. Set allow_unused=True if "
                        "this is the desired behavior."
                    )
        return captured
    finally:
        _context.exit(token)


# a range per input count (index tuples: iterating one makes no int objects, unlike zip or
# enumerate, which also make a tuple per input)
_N_INDICES = 16
_INDICES = tuple(tuple(range(n)) for n in range(_N_INDICES))


def _add_edge(edges, e):
    if edges.__class__ is list:
        edges.append(e)
        return edges
    return [edges, e]


_TENSOR = [None]  # the Tensor class, installed by tensor.py (engine <-> tensor are one layer)
_WRAP = [None]  # tensor.py's one constructor of tensors: _wrap(value, node)


class _Edge:
    """Stands for an input tensor as it was before an in-place write: its old grad_fn."""

    __slots__ = ("_grad_fn", "_out_index")

    def __init__(self, fn, k):
        self._grad_fn = fn
        self._out_index = k


_MODIFIED_MSG = (
    "one of the variables needed for gradient computation has been modified by an inplace "
    "operation: [{desc}], which is {which} of {op}, is at version {now}; expected version "
    "{was} instead. Hint: the operation that failed to compute its gradient is {op}; "
    "write out of place (y = y + 1, not y += 1), or .clone() the tensor before writing to it."
)


def _check_saved(node):
    """Raise torch's error if a value ``node``'s VJP reads was written in place since it
    was saved (its version counter moved)."""
    prim = node.prim
    ins = node.inputs
    if prim.saves is None:
        idx, reads_out = range(len(ins)), prim.uses_out
    else:
        idx, reads_out = prim.saves(node.need)
    for i in idx:
        t = ins[i]
        if t.__class__ is not _TENSOR[0]:
            continue
        m = t._meta
        c = None if m is None else m.version
        if c is None:
            continue
        was = _recorded_version(node, i)
        if c[0] != was:
            raise RuntimeError(_MODIFIED_MSG.format(
                desc=f"{t.dtype.name} {list(t.shape)}", which=f"input {i}",
                op=type(public_node(node)).__name__, now=c[0], was=was))
    outc = getattr(node, "outc", None)  # set only when the saved output got a counter
    if reads_out and outc is not None and outc[0] != 0:
        out = node.out
        if out.__class__ is tuple:
            out = out[0]
        raise RuntimeError(_MODIFIED_MSG.format(
            desc=f"{out.dtype.name} {list(out.shape)}", which="output 0",
            op=type(public_node(node)).__name__, now=outc[0], was=0))


def _run_prehooks(node, ct):
    """Run the tensor hooks of ``node``'s outputs on their cotangents; returns ``ct`` (a
    Tensor, or the {index: Tensor} dict of a multi-output node) with hook results."""
    hooks = node.pre_hooks
    if ct.__class__ is not dict:
        for h in hooks.get(0, ()):
            r = h(ct)
            if r is not None:
                ct = r
        _retain(hooks, 0, ct)
        return ct
    for k in list(ct):
        for h in hooks.get(k, ()):
            r = h(ct[k])
            if r is not None:
                ct[k] = r
        _retain(hooks, k, ct[k])
    return ct


def _retain(hooks, k, g):
    # retain_grad stores the gradient after the tensor's own hooks ran (torch)
    ref = hooks.get(("retain", k))
    if ref is not None:
        t = ref()
        if t is not None:
            t._grad = g._untaped() if t._grad is None else t._grad + g._untaped()


def _capture(node, ct, capture_node, captured):
    if ct.__class__ is not dict:
        for i in capture_node.get((node, 0), ()):
            captured[i] = ct
        return
    for k, g in ct.items():
        for i in capture_node.get((node, k), ()):
            captured[i] = g


def _call_vjp_multi(node, buf, Tensor):
    ct = tuple(buf.get(k) for k in range(len(node.out)))
    out = tuple(_saved_output(node, k, p, Tensor) for k, p in enumerate(node.out))
    return node.prim.vjp(ct, out, node.inputs, node.need, **node.params)


def _saved_output(node, k, payload, Tensor):
    # Re-create the output as torch's SavedVariable does: same payload, grad_fn = node,
    # so the rule stays differentiable with create_graph=True without keeping a cycle.
    t = Tensor._make(payload, True, node)
    t._out_index = k
    return t


def _accumulate(leaf, g, create_graph, capture_leaf, captured, deferred=None):
    if g.dtype != leaf.dtype:
        # as torch, a leaf's gradient has the leaf's dtype (float32 x * float64 y: x.grad f32)
        g = g._cast(leaf.dtype)
    hooks = leaf._hooks
    if hooks and deferred is not None:
        # as torch, a leaf's hooks see its total gradient once: sum the contributions now,
        # run the hooks and accumulate after the pass
        d = deferred.get(id(leaf))
        if d is None:
            deferred[id(leaf)] = [leaf, g]
        else:
            d[1] = d[1] + g
        return
    if hooks:
        for h in hooks:
            r = h(g)
            if r is not None:
                g = r
    if capture_leaf is not None:
        for i in capture_leaf.get(id(leaf), ()):
            captured[i] = g if captured[i] is None else captured[i] + g
        return
    if not leaf._requires_grad:
        return
    if g.shape != leaf.shape:
        raise RuntimeError(
            f"backward: gradient of shape {tuple(g.shape)} does not match leaf of shape {tuple(leaf.shape)}"
        )
    if g._value.__class__ is not _ndarray:
        # traced (a backward() inside dg.compile): the leaf's .grad becomes a traced value;
        # an existing .grad is added to in place, as below (a write the trace records)
        tr = _context.get().trace
        if tr is not None:
            if tr.drops_grad(leaf):  # a run where the tape does not reach it (dg.compile)
                return
            tr.note_write(leaf)
        cur = leaf._grad
        if cur is None:
            leaf._grad = g if create_graph else g._untaped()
        elif create_graph:
            leaf._grad = cur + g
        else:
            cur += g
        return
    cur = leaf._grad
    if create_graph:
        leaf._grad = g if cur is None else cur + g
    elif cur is None:
        leaf._grad = g._untaped()._copy()
    else:
        cur._inplace_add(g)
