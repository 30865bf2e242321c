"""The autograd engine: tape nodes, AccumulateGrad, and backward in topological order.

Each recorded primitive application is a ``Node`` (its class is ``<Op>Backward``).  A
node keeps the primitive, its params, its inputs (the saved tensors) and, for
primitives whose VJP reads the output, the output payload.  ``backward`` sorts the nodes
reachable from the roots, runs each node's VJP rule once its cotangent is complete, and
accumulates into leaves.  Saved tensors are dropped afterwards unless ``retain_graph``.
"""
from __future__ import annotations

import weakref

from . import grad_mode

_FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed). Saved intermediate values of the graph are freed "
    "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
    "backward through the graph a second time or if you need to access saved tensors after "
    "calling backward."
)


class Node:
    """A recorded primitive application: the ``grad_fn`` of its outputs."""

    # prim, params; inputs: the saved inputs (None once freed); need: which inputs want a
    # cotangent; out: the output payload(s) if the VJP reads them; edges: what the freed
    # inputs pointed to; pre_hooks: {output index: [hook, ...]} (tensor hooks, retain_grad)
    __slots__ = ("prim", "params", "inputs", "need", "out", "edges", "pre_hooks", "__weakref__")

    def name(self):
        return type(self).__name__

    def __repr__(self):
        return f"<{type(self).__name__} object at {id(self):#x}>"

    @property
    def next_functions(self):
        # after backward freed the saved inputs, `edges` keeps what they pointed to
        ins = self.inputs if self.inputs is not None else self.edges
        return tuple(_edge(t) if n else (None, 0) for t, n in zip(ins, self.need))

    def register_prehook(self, index, fn):
        if self.pre_hooks is None:
            self.pre_hooks = {}
        self.pre_hooks.setdefault(index, []).append(fn)


def _edge(t):
    """The (node, output index) an input's gradient flows to (``t`` a Tensor or an edge)."""
    if isinstance(t, tuple):
        return t
    fn = t._grad_fn
    if fn is not None:
        return (fn, t._out_index)
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


_CLASSES: dict = {}

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
        cls = type(f"{base}Backward", (Node,), {"__slots__": ()})
        prim.node_class = cls
    return cls


# ----------------------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------------------


def _topo(roots):
    """Nodes reachable from ``roots`` and, per node, how many consumers it has."""
    deps = {}
    stack = list(roots)
    while stack:
        node = stack.pop()
        inputs = node.inputs
        if inputs is None:
            raise RuntimeError(_FREED_MSG)
        for t, n in zip(inputs, node.need):
            if not n:
                continue
            fn = t._grad_fn
            if fn is None:
                continue
            d = deps.get(fn)
            if d is None:
                deps[fn] = 1
                stack.append(fn)
            else:
                deps[fn] = d + 1
    return deps


def run_backward(roots, root_grads, retain_graph, create_graph, inputs=None, allow_unused=False):
    """Propagate ``root_grads`` from the ``roots`` tensors back to the leaves.

    With ``inputs`` (a sequence of Tensors) the gradients of those tensors are returned
    instead of being accumulated into ``.grad`` (``autograd.grad``)."""
    from .tensor import Tensor  # engine <-> tensor are one layer

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

        buffers = {}
        root_nodes = []
        for t, g in zip(roots, root_grads):
            fn = t._grad_fn
            if fn is None:
                _accumulate(t, g, create_graph, capture_leaf, captured)
                continue
            buf = buffers.get(fn)
            if buf is None:
                buf = buffers[fn] = {}
                root_nodes.append(fn)
            k = t._out_index
            buf[k] = g if k not in buf else buf[k] + g

        deps = _topo(root_nodes)
        ready = [n for n in root_nodes if n not in deps]
        while ready:
            node = ready.pop()
            buf = buffers.pop(node, None)
            inputs_ = node.inputs
            if inputs_ is None:
                raise RuntimeError(_FREED_MSG)
            if buf is None:  # no cotangent reached this node: only release its consumers
                cts = (None,) * len(inputs_)
            else:
                if node.pre_hooks:
                    _run_prehooks(node, buf)
                if capture_node:
                    for k, g in buf.items():
                        for i in capture_node.get((node, k), ()):
                            captured[i] = g
                prim = node.prim
                if prim.multiple_results:
                    cts = _call_vjp_multi(node, buf, Tensor)
                else:
                    out = node.out
                    if out is not None:
                        out = Tensor._make(out, True, node)  # as torch's SavedVariable
                    params = node.params
                    if params:
                        cts = prim.vjp(buf[0], out, inputs_, node.need, **params)
                    else:
                        cts = prim.vjp(buf[0], out, inputs_, node.need)
            edges = None if retain_graph else []
            for t, n, ct in zip(inputs_, node.need, cts):
                if not n:
                    if edges is not None:
                        edges.append(None)
                    continue
                fn = t._grad_fn
                if fn is None:
                    if edges is not None:
                        edges.append(t)
                    if ct is not None:
                        _accumulate(t, ct, create_graph, capture_leaf, captured)
                    continue
                k = t._out_index
                if edges is not None:
                    edges.append((fn, k))
                if ct is not None:
                    b = buffers.get(fn)
                    if b is None:
                        buffers[fn] = {k: ct}
                    else:
                        b[k] = ct if k not in b else b[k] + ct
                d = deps[fn] - 1
                deps[fn] = d
                if d == 0:
                    ready.append(fn)
            if edges is not None:
                node.edges = edges
                node.inputs = None
                node.out = None
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


def _run_prehooks(node, buf):
    for k, hooks in node.pre_hooks.items():
        if k in buf:
            for h in hooks:
                r = h(buf[k])
                if r is not None:
                    buf[k] = r


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


def _accumulate(leaf, g, create_graph, capture_leaf, captured):
    hooks = leaf._hooks
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
