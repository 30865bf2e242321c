"""A compiled function inside eager code (the AOTAutograd design): one autograd node.

Called with tensors that require grad (grad mode on), a compiled function runs a forward
kernel that returns its outputs plus the *residuals* its backward needs, and hands out
outputs whose ``grad_fn`` is one ``CompiledFunctionBackward`` node of the eager graph.
The node's backward runs a second kernel, ``(saved inputs/outputs, residuals,
cotangents) -> input cotangents``, and the engine accumulates the results into the
leaves exactly as for any other node (hooks, ``retain_graph``, ``autograd.grad``, version
counters all come from the engine).

Per signature, once:

1. ``joint``: IR autodiff of the optimized forward graph, ``(inputs, cotangents) ->
   (outputs, input cotangents)`` (``static.autodiff.vjp_graph``), cotangents only for the
   outputs that require grad, input cotangents only for the inputs that need one.
2. ``partition``: the joint graph's primal equations (those no cotangent reaches) form
   the forward graph; the rest, plus whatever primal values are recomputed, form the
   backward graph.  Which primal values cross over (the residuals) is a minimum cut of
   the primal dataflow graph weighted by bytes: inputs and outputs cost nothing (the node
   holds them anyway); elementwise, structural and creation equations may be recomputed
   in the backward; the results of reductions, matmuls, indexing and control flow (while
   tapes) are saved.  So an elementwise chain saves nothing beyond its inputs and
   outputs, while ``tanh(x @ w)`` saves the matmul's result only if its output is not
   saved anyway.
3. Both graphs are optimized, verified and compiled (``Kernel``).

With ``create_graph=True`` the backward is the joint graph interpreted on the eager tape
(differentiable, so second-order gradients work); a backward kernel numba rejects falls
back to the interpreted backward graph (with a warning, or ``CompileError`` under
``fullgraph=True``), never to a wrong gradient.
"""
from __future__ import annotations

import warnings
from collections import deque

import numpy as np

from ..eager.engine import NODE_SEQ, Node
from ..eager.grad_mode import is_grad_enabled, no_grad
from ..eager.tensor import Tensor, _fresh, _versions, _wrap
from ..static.autodiff import vjp_graph
from ..static.interpreter import eval_graph_eager_errors
from ..static.ir import Graph, Var
from ..static.ir import plan as plan_of
from ..static.passes import optimize
from ..static.verify import verify
from .codegen import CompileError

_next_seq = NODE_SEQ.__next__
_NP: dict = {}
_ndarray = np.ndarray

# equation kinds the partitioner may recompute in the backward instead of saving
RECOMPUTABLE = ("elementwise", "structural", "creation")


class CompiledFunctionBackward(Node):
    """The ``grad_fn`` of a compiled function's outputs (one node for the whole call)."""

    __slots__ = ()
    _multi = True


class _Spent:
    """The primitive of a spent node (see ``spent_node``): only named, never run."""

    name = "compiled_function"
    grad_name = "CompiledFunction"
    multiple_results = True
    uses_out = False
    params = _NP


_SPENT = _Spent()


def spent_node():
    """A ``CompiledFunctionBackward`` whose saved values backward already freed: the
    ``grad_fn`` of an output of a compiled training step that called ``backward()`` on it
    (compile/effects.py).  A second backward through it raises eager's error."""
    node = _node(_SPENT, None, (), None)
    node.edges = None
    return node


def _node(prim, inputs, need, out):
    node = CompiledFunctionBackward()
    node.prim = prim
    node.params = _NP
    node.inputs = inputs
    node.need = need
    node.out = out
    node.pre_hooks = None
    node.seq = _next_seq()
    return node


def _requirements(deps, n_in):
    """``(outputs that require grad, inputs that get a gradient)`` from the dependency
    bit sets of ``dependencies``."""
    used = 0
    for d in deps:
        used |= d
    return tuple(bool(d) for d in deps), tuple(bool(used >> i & 1) for i in range(n_in))


def _is_float(aval):
    return aval.dtype.kind == "f"


# ----------------------------------------------------------------------------------------
# which outputs require grad, and which inputs reach them
# ----------------------------------------------------------------------------------------


def dependencies(graph, rg_inputs, taken=None):
    """For each output of ``graph``: the bit set (an int) of the inputs in ``rg_inputs``
    it depends on differentiably, by the eager tape's rule: a result is recorded when an
    operand requires grad, the primitive has a VJP and the result is a float.  ``cond``
    and ``while`` count every operand (the branch or trip count is known only at run
    time), except the ``cond`` equations in ``taken`` (``{eqn: bool}``): eagerly only the
    taken branch runs, so their outputs depend on what that branch reads."""
    return _deps(graph, {graph.inputs[i]: 1 << i for i in rg_inputs}, taken or {})


def _deps(graph, dep, taken):
    for e in graph.eqns:
        m = 0
        for x in e.inputs:
            if x.__class__ is Var:
                m |= dep.get(x, 0)
        if not m or e.prim.vjp is None:
            continue
        if e in taken:
            branch = e.params["true_branch" if taken[e] else "false_branch"]
            inner = {}
            for v, x in zip(branch.inputs, e.inputs[1:]):
                if x.__class__ is Var and dep.get(x, 0):
                    inner[v] = dep[x]
            for v, m in zip(e.outs, _deps(branch, inner, {})):
                if m and _is_float(v.aval):
                    dep[v] = m
            continue
        for v in e.outs:
            if _is_float(v.aval):
                dep[v] = m
    return [dep.get(x, 0) if x.__class__ is Var else 0 for x in graph.outputs]


def branch_sensitive_conds(graph, rg_inputs):
    """The top-level ``cond`` equations of ``graph`` (a run-time predicate) after which
    the eager tape's dependencies differ by the branch taken: a branch that does not read
    an operand, or reads it only through non-differentiable ops.  Their predicates decide
    per call which outputs require grad and which inputs get a gradient (as eagerly)."""
    out = []
    for e in graph.eqns:
        if e.prim.name != "cond" or e.inputs[0].__class__ is not Var:
            continue
        ops = e.inputs[1:]
        full = [(1 << len(ops)) - 1 if _is_float(v.aval) else 0 for v in e.outs]
        for key in ("true_branch", "false_branch"):
            g = e.params[key]
            got = _deps(g, {v: 1 << k for k, v in enumerate(g.inputs) if _is_float(v.aval)}, {})
            # an operand that is not a float: never a dependency (the conservative rule agrees)
            mask = sum(1 << k for k, v in enumerate(g.inputs) if _is_float(v.aval))
            if [m & mask for m in got] != [m & mask for m in full]:
                out.append(e)
                break
    return out


# ----------------------------------------------------------------------------------------
# the partitioner
# ----------------------------------------------------------------------------------------

_INF = 1 << 62


class _Flow:
    """Dinic's maximum flow on a small graph (integer capacities)."""

    def __init__(self, n):
        self.adj = [[] for _ in range(n)]
        self.to, self.cap = [], []

    def add(self, u, v, c):
        self.adj[u].append(len(self.to))
        self.to.append(v)
        self.cap.append(c)
        self.adj[v].append(len(self.to))
        self.to.append(u)
        self.cap.append(0)

    def _levels(self, s, t):
        level = [-1] * len(self.adj)
        level[s] = 0
        q = deque([s])
        while q:
            u = q.popleft()
            for e in self.adj[u]:
                if self.cap[e] > 0 and level[self.to[e]] < 0:
                    level[self.to[e]] = level[u] + 1
                    q.append(self.to[e])
        return level

    def min_cut_source_side(self, s, t):
        """Run max flow; return the set of nodes reachable from ``s`` in the residual graph."""
        to, cap, adj = self.to, self.cap, self.adj
        while True:
            level = self._levels(s, t)
            if level[t] < 0:
                break
            it = [0] * len(adj)
            while True:
                # one augmenting path along the level graph (iterative DFS)
                path = []
                u = s
                while u != t:
                    while it[u] < len(adj[u]):
                        e = adj[u][it[u]]
                        if cap[e] > 0 and level[to[e]] == level[u] + 1:
                            break
                        it[u] += 1
                    else:
                        if not path:
                            u = None
                            break
                        level[u] = -1  # dead end
                        e = path.pop()
                        u = to[e ^ 1]
                        it[u] += 1
                        continue
                    path.append(e)
                    u = to[e]
                if u is None:
                    break
                f = min(cap[e] for e in path)
                for e in path:
                    cap[e] -= f
                    cap[e ^ 1] += f
        level = self._levels(s, t)
        return {u for u, lv in enumerate(level) if lv >= 0}


def _nbytes(aval):
    n = aval.dtype.itemsize
    for d in aval.shape:
        n *= 64 if d is None else max(int(d), 1)
    return n


class Partition:
    """``forward``: inputs -> outputs + residuals; ``backward``: (read inputs, read
    outputs, residuals, cotangents) -> input cotangents."""

    def __init__(self, forward, backward, n_res, bwd_inputs, bwd_outputs):
        self.forward = forward
        self.backward = backward
        self.n_res = n_res
        self.bwd_inputs = bwd_inputs  # forward input positions the backward reads
        self.bwd_outputs = bwd_outputs  # forward output positions the backward reads


def partition(joint, n_in, n_out):
    """Split ``joint`` (inputs then cotangents -> outputs then input cotangents)."""
    xs = joint.inputs[:n_in]
    cts = joint.inputs[n_in:]
    ys = joint.outputs[:n_out]
    gs = joint.outputs[n_out:]

    # tangent equations: reached by a cotangent
    tangent = set(cts)
    tan_eqns = set()
    for e in joint.eqns:
        if any(x.__class__ is Var and x in tangent for x in e.inputs):
            tan_eqns.add(e)
            tangent.update(e.outs)
    for y in ys:
        if y.__class__ is Var and y in tangent:
            raise CompileError("dg.compile: partitioner: a forward output depends on a cotangent")
    primal_eqns = [e for e in joint.eqns if e not in tan_eqns]
    producer = {v: e for e in primal_eqns for v in e.outs}

    # primal values the forward outputs need
    fwd_needed = set()
    stack = [y for y in ys if y.__class__ is Var]
    while stack:
        v = stack.pop()
        if v in fwd_needed:
            continue
        fwd_needed.add(v)
        e = producer.get(v)
        if e is not None:
            stack.extend(x for x in e.inputs if x.__class__ is Var)

    # primal values the backward reads directly
    bwd_reads = set()
    for e in joint.eqns:
        if e in tan_eqns:
            bwd_reads.update(x for x in e.inputs if x.__class__ is Var and x not in tangent)
    bwd_reads.update(g for g in gs if g.__class__ is Var and g not in tangent)

    # the flow network: node 2k = value k "computed", 2k+1 = value k "available"
    values = list(dict.fromkeys(list(xs) + [v for e in primal_eqns for v in e.outs]))
    index = {v: k for k, v in enumerate(values)}
    S, T = 2 * len(values), 2 * len(values) + 1
    net = _Flow(2 * len(values) + 2)
    free = set(xs) | {y for y in ys if y.__class__ is Var}
    for k, v in enumerate(values):
        net.add(2 * k, 2 * k + 1, 0 if v in free else _nbytes(v.aval))
        if v in bwd_reads:
            net.add(2 * k + 1, T, _INF)
    for x in xs:
        net.add(S, 2 * index[x], _INF)
    for e in primal_eqns:
        ins = [index[x] for x in e.inputs if x.__class__ is Var]
        outs = [index[v] for v in e.outs]
        for o in outs:
            for i in ins:
                net.add(2 * i + 1, 2 * o, _INF)
        if e.prim.kind not in RECOMPUTABLE and any(v in fwd_needed for v in e.outs):
            for o in outs:
                net.add(S, 2 * o, _INF)  # runs in the forward: never recomputed
        for a, b in zip(outs, outs[1:]):  # one equation: all outputs on one side
            net.add(2 * a, 2 * b, _INF)
            net.add(2 * b, 2 * a, _INF)
    side = net.min_cut_source_side(S, T)

    saved = [v for k, v in enumerate(values) if 2 * k in side and 2 * k + 1 not in side]
    recomputed = {v for k, v in enumerate(values) if 2 * k not in side}
    residuals = [v for v in saved if v not in free]

    # the backward graph: tangent equations and the recomputed primal ones, in order
    bwd_eqns = [e for e in joint.eqns if e in tan_eqns or any(v in recomputed for v in e.outs)]
    defined = {v for e in bwd_eqns for v in e.outs}
    read = set()
    for e in bwd_eqns:
        read.update(x for x in e.inputs if x.__class__ is Var)
    read.update(g for g in gs if g.__class__ is Var)
    read -= defined
    x_pos = {}
    for i, x in enumerate(xs):
        x_pos.setdefault(x, i)
    y_pos = {}
    for k, y in enumerate(ys):
        if y.__class__ is Var and y not in x_pos:
            y_pos.setdefault(y, k)
    res_set = set(residuals)
    for v in read:
        if not (v in x_pos or v in y_pos or v in res_set or v in cts):
            raise CompileError(f"dg.compile: partitioner: the backward reads {v} that nothing provides")
    bin_x = sorted(x_pos[v] for v in read if v in x_pos)
    bin_y = sorted(y_pos[v] for v in read if v in y_pos and v not in x_pos)
    bwd_in = [xs[i] for i in bin_x] + [ys[k] for k in bin_y] + residuals + list(cts)
    backward = Graph(bwd_in, bwd_eqns, gs)
    forward = Graph(list(xs), primal_eqns, list(ys) + residuals)
    return Partition(forward, backward, len(residuals), tuple(bin_x), tuple(bin_y))


# ----------------------------------------------------------------------------------------
# one signature's plan: kernels, and the "primitive" the engine calls
# ----------------------------------------------------------------------------------------


class AOTPlan:
    """The compiled forward and backward of one signature.  The engine sees it as the
    node's primitive: it reads ``vjp``, ``saves``, ``uses_out`` and the naming fields."""

    name = "compiled_function"
    grad_name = "CompiledFunction"
    multiple_results = True
    uses_out = True
    node_class = CompiledFunctionBackward
    params = _NP

    def __init__(self, graph, rg_inputs, fullgraph=False, where="function"):
        from .kernel import Kernel

        self.graph = graph
        self.fullgraph = fullgraph
        self.where = where
        n_in, n_out = len(graph.inputs), len(graph.outputs)
        deps = dependencies(graph, rg_inputs)
        self.rg_inputs = list(rg_inputs)
        self.out_rg, self.need = _requirements(deps, n_in)
        self.wrt = [i for i in range(n_in) if self.need[i]]
        self.ct_outs = [k for k in range(n_out) if self.out_rg[k]]
        self.n_out = n_out
        self.ct_avals = [graph.outputs[k].aval for k in self.ct_outs]
        self.active = bool(self.wrt)
        if not self.active:
            self.n_res = 0
            return
        # cond equations whose taken branch decides the dependencies: the forward kernel
        # also returns their predicates, after the outputs (see ``_per_branch``)
        self.conds = branch_sensitive_conds(graph, rg_inputs)
        self.by_branch = {}
        preds = [e.inputs[0] for e in self.conds]
        self.n_fwd = n_fwd = n_out + len(preds)
        if preds:
            graph = Graph(graph.inputs, graph.eqns, list(graph.outputs) + preds)
        joint = optimize(vjp_graph(graph, wrt=self.wrt, ct_outputs=self.ct_outs))
        self.joint = joint
        p = partition(joint, n_in, n_fwd)
        self.forward = verify(optimize(p.forward))
        self.backward = verify(optimize(p.backward))
        self.n_res = p.n_res
        self.bwd_inputs = p.bwd_inputs
        self.bwd_outputs = p.bwd_outputs
        self._saves = (p.bwd_inputs, bool(p.bwd_outputs))
        # create_graph: the input cotangents of the joint graph, run on the tape (it reads
        # the inputs, not the outputs or residuals)
        self.joint_ct = optimize(Graph(joint.inputs, joint.eqns, joint.outputs[n_fwd:]))
        dead = set(plan_of(self.joint_ct).dead_inputs)
        self._saves_differentiable = (
            tuple(i for i, v in enumerate(self.joint_ct.inputs[:n_in]) if v not in dead), False)
        self.fwd_kernel = Kernel(self.forward, "forward")
        self.bwd_kernel = Kernel(self.backward, "backward")
        self.warned = False

    def residual_count(self):
        return self.n_res

    # -- the engine's view of the node's primitive ---------------------------------------
    def saves(self, need):
        # what the engine checks against in-place writes: the values this backward reads
        # (grad mode is on during backward exactly when create_graph=True)
        return self._saves_differentiable if is_grad_enabled() else self._saves

    def vjp(self, cts, outs, inputs, need):
        cts = cts[: self.n_out]
        if is_grad_enabled():
            return self._vjp_differentiable(cts, inputs)
        n_fwd = self.n_fwd
        arrays = [inputs[i]._value for i in self.bwd_inputs]
        arrays += [outs[k]._value for k in self.bwd_outputs]
        arrays += [outs[n_fwd + r]._value for r in range(self.n_res)]
        for k, a in zip(self.ct_outs, self.ct_avals):
            c = cts[k]
            if c is None:
                arrays.append(np.zeros(a.shape, a.dtype))
            else:
                v = c._value
                arrays.append(v if v.dtype == a.dtype else v.astype(a.dtype))
        gs = None
        k = self.bwd_kernel
        if k is not None:
            try:
                gs = k(arrays)
            except CompileError as e:
                if self.fullgraph:
                    raise
                warnings.warn(f"{e}; computing the gradient of `{self.where}` by the "
                              "interpreter", _warning_class(), stacklevel=2)
                self.bwd_kernel = None
        if gs is None:
            # the interpreter: a run-time check failed (its error) or numba refused
            with no_grad():
                gs = [t._value for t in eval_graph_eager_errors(self.backward, [Tensor._make(a) for a in arrays])]
        res = [None] * len(inputs)
        for i, g in zip(self.wrt, gs):
            res[i] = _wrap(g)
        return tuple(res)

    def _vjp_differentiable(self, cts, inputs):
        full = []
        for k, a in zip(self.ct_outs, self.ct_avals):
            c = cts[k]
            full.append(Tensor._make(np.zeros(a.shape, a.dtype)) if c is None else c)
        gs = eval_graph_eager_errors(self.joint_ct, list(inputs) + full)
        res = [None] * len(inputs)
        for i, g in zip(self.wrt, gs):
            res[i] = g
        return tuple(res)

    # -- a call --------------------------------------------------------------------------
    def call(self, tensors):
        """Run the forward kernel on ``tensors`` (Tensors of the graph's inputs) and return
        the output Tensors, recorded as one node; None when a run-time check failed."""
        for t in tensors:
            if t._meta is not None:
                _fresh(t)
        res = self.fwd_kernel([t._value for t in tensors])
        if res is None:
            return None
        n_out = self.n_out
        rg, need = self.out_rg, self.need
        if self.conds:
            rg, need = self._per_branch(tuple(bool(res[k]) for k in range(n_out, self.n_fwd)))
            if not any(rg):  # as eagerly: the branches taken read no input that requires grad
                return [_wrap(res[k]) for k in range(n_out)]
        node = _node(self, tuple(tensors), need, tuple(res))
        vers = _versions(tensors)
        if vers is not None:
            node.vers = vers
        return [_wrap(res[k], node, k) if rg[k] else _wrap(res[k]) for k in range(n_out)]

    def _per_branch(self, taken):
        """``(outputs that require grad, inputs that get a gradient)`` when the branch-
        sensitive conds took the branches ``taken``: eagerly an input that only the
        untaken branch reads gets no gradient (``.grad`` stays None), and an output whose
        branch reads no such input does not require grad."""
        r = self.by_branch.get(taken)
        if r is None:
            deps = dependencies(self.graph, self.rg_inputs, dict(zip(self.conds, taken)))
            r = self.by_branch[taken] = _requirements(deps, len(self.need))
        return r


def _warning_class():
    from .api import CompileWarning

    return CompileWarning
