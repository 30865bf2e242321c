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

from . import grad_mode

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
    __slots__ = ("prim", "params", "inputs", "need", "out", "edges", "pre_hooks", "seq", "__weakref__")

    _multi = False  # the primitive has multiple results (set per class by node_class)

    def name(self):
        return type(public_node(self)).__name__

    def __repr__(self):
        return f"<{type(public_node(self)).__name__} object at {id(self):#x}>"

    @property
    def next_functions(self):
        ins = self.inputs
        if ins is not None:
            return tuple(_edge(t) if n else (None, 0) for t, n in zip(ins, self.need))
        # backward freed the saved inputs: `edges` keeps, per input that wants a cotangent,
        # what it pointed to: one edge or a list of them (see run_backward)
        edges = self.edges
        edges = iter(edges if edges.__class__ is list else (edges,))
        return tuple(_edge(next(edges)) if n else (None, 0) for n in self.need)

    def register_prehook(self, index, fn):
        if self.pre_hooks is None:
            self.pre_hooks = {}
        self.pre_hooks.setdefault(index, []).append(fn)


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


_ACCUMULATORS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def accumulate_grad_of(leaf):
    acc = _ACCUMULATORS.get(leaf)
    if acc is None:
        acc = _ACCUMULATORS[leaf] = AccumulateGrad(leaf)
    return acc


# creation numbers of nodes: ``next(NODE_SEQ)``
NODE_SEQ = count()

# torch's names where they differ from a camel-cased primitive name
_TORCH_NAMES = {
    "reduce_sum": "Sum",
    "reduce_max": "Max",
    "reduce_min": "Min",
    "getitem": "Index",
    "index_add": "IndexAdd",
    "convert": "ToCopy",
    "broadcast_to": "Expand",
    "concatenate": "Cat",
    "matmul": "Mm",
    "reshape": "View",
    "transpose": "Permute",
}


def node_class(prim):
    cls = prim.node_class
    if cls is None:
        base = _TORCH_NAMES.get(prim.name) or "".join(p.capitalize() for p in prim.name.split("_"))
        cls = type(f"{base}Backward", (Node,), {"__slots__": (), "_multi": bool(prim.multiple_results)})
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
    state = grad_mode.STATE
    prev = state.enabled
    state.enabled = bool(create_graph)
    try:
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
        new = object.__new__
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
                if v is not None:  # the output, re-made as torch's SavedVariable does
                    out = new(Tensor)
                    out._value = v
                    out._requires_grad = True
                    out._grad_fn = node
                    out._grad = None
                    out._hooks = None
                    out._out_index = 0
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
        state.enabled = prev


_N_INDICES = 16
_INDICES = tuple(tuple(range(n)) for n in range(_N_INDICES))


def _add_edge(edges, e):
    if edges.__class__ is list:
        edges.append(e)
        return edges
    return [edges, e]


_TENSOR = [None]  # the Tensor class, installed by tensor.py (engine <-> tensor are one layer)


def _run_prehooks(node, ct):
    """Run the tensor hooks of ``node``'s outputs on their cotangents; returns ``ct`` (a
    Tensor, or the {index: Tensor} dict of a multi-output node) with hook results."""
    if ct.__class__ is not dict:
        for h in node.pre_hooks.get(0, ()):
            r = h(ct)
            if r is not None:
                ct = r
        return ct
    for k, hooks in node.pre_hooks.items():
        if k in ct:
            for h in hooks:
                r = h(ct[k])
                if r is not None:
                    ct[k] = r
    return ct


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
    cur = leaf._grad
    if create_graph:
        leaf._grad = g if cur is None else cur + g
    elif cur is None:
        leaf._grad = g.detach()._copy()
    else:
        cur._inplace_add(g)
