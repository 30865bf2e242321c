"""A compiled function inside eager code (the AOTAutograd design): one autograd node.

Called with tensors that require grad (grad mode on), a compiled function runs a forward
kernel that returns its outputs plus the *residuals* its backward needs, and hands out
outputs whose ``grad_fn`` is one ``CompiledFunctionBackward`` node of the eager graph.
The node's backward runs a second kernel, ``(saved inputs/outputs, residuals,
cotangents) -> input cotangents``, and the engine accumulates the results into the
leaves exactly as for any other node (hooks, ``retain_graph``, ``autograd.grad``, version
counters all come from the engine).

Per signature, once:

0. ``reach``: which outputs depend on which inputs that require grad, by the eager tape's
   rule.  Where that depends on the branches taken and the trips run (eagerly, an input
   that only a branch never taken or a loop body that never ran reads gets no gradient,
   ``.grad`` stays None), the graph computes bool flags that say it, returned after the
   outputs (``static/reach.py``); per call the node maps them to the outputs that require
   grad and the inputs that get a gradient.  A graph without such control flow gets none.
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

The backward gives an input a gradient only if an output that received a cotangent
depends on it (as eagerly, where each output is its own history).  With
``create_graph=True`` the graph is re-run on the eager tape and differentiated there
(differentiable, so second-order gradients work, and reach the inputs eager code's
would); a backward kernel numba rejects falls
back to the interpreted backward graph (with a warning, or ``CompileError`` under
``fullgraph=True``), never to a wrong gradient.
"""
from __future__ import annotations

import warnings
from collections import deque

import numpy as np

from ..eager.autograd import grad as autograd_grad
from ..eager.engine import Node
from ..eager.grad_mode import is_grad_enabled, no_grad
from ..eager.tensor import Tensor, _fresh, _node, _versions, _wrap
from ..static.autodiff import vjp_graph
from ..static.interpreter import eval_graph_eager_errors
from ..static.ir import Graph, Var
from ..static.ir import plan as plan_of
from ..static.passes import optimize
from ..static.reach import reach_graph
from ..static.verify import verify
from .codegen import CompileError

_NP: dict = {}
_ndarray = np.ndarray

# equation kinds the partitioner may recompute in the backward instead of saving
RECOMPUTABLE = ("elementwise", "structural", "creation")


class CompiledFunctionBackward(Node):
    """The ``grad_fn`` of a compiled function's outputs (one node for the whole call)."""

    __slots__ = ()
    _multi = True


class _Spent:
    """The primitive of a spent node (see ``spent_node``): only named, never run.  Its
    naming fields are those of every primitive of a ``CompiledFunctionBackward``."""

    name = "compiled_function"
    grad_name = "CompiledFunction"
    multiple_results = True
    uses_out = False
    node_class = CompiledFunctionBackward
    params = _NP


_SPENT = _Spent()


class _Bridge(_Spent):
    """The primitive of the node between a compiled function's inputs and the graph
    ``create_graph=True`` re-runs on the tape: the identity (cotangents pass through)."""

    @staticmethod
    def saves(need):
        return (), False  # reads nothing

    @staticmethod
    def vjp(cts, outs, inputs, need):
        return tuple(cts)


_BRIDGE = _Bridge()


def spent_node():
    """A ``CompiledFunctionBackward`` whose saved values backward already freed: the
    ``grad_fn`` of an output of a compiled training step that called ``backward()`` on it
    (compile/effects.py).  A second backward through it raises eager's error."""
    node = _node(_SPENT, _NP, None, (), None, None)
    node.edges = None
    return node


def _requirements(deps, n_in):
    """``(outputs that require grad, inputs that get a gradient)`` from each output's bit
    set of the inputs it depends on."""
    used = 0
    for d in deps:
        used |= d
    return tuple(bool(d) for d in deps), tuple(bool(used >> i & 1) for i in range(n_in))


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


class AOTPlan(_Spent):
    """The compiled forward and backward of one signature.  The engine sees it as the
    node's primitive: it reads ``vjp``, ``saves``, ``uses_out`` and the naming fields."""

    uses_out = True

    def __init__(self, graph, rg_inputs, fullgraph=False, where="function"):
        from .kernel import Kernel

        self.graph = graph
        self.fullgraph = fullgraph
        self.where = where
        n_in, n_out = len(graph.inputs), len(graph.outputs)
        # which outputs depend on which inputs that require grad, as on the eager tape: the
        # part that depends on the branches taken and the trips run is computed by the
        # forward kernel, as bool flags returned after the outputs (static/reach.py)
        flagged, self.reach = reach_graph(graph, rg_inputs)
        # per output, the inputs it depends on (without flags: on every call)
        self.deps = self.reach.static
        self.out_rg, self.need = _requirements(self.reach.may(), n_in)
        self.wrt = [i for i in range(n_in) if self.need[i]]
        self.ct_outs = [k for k in range(n_out) if self.out_rg[k]]
        self.n_out = n_out
        self.ct_avals = [graph.outputs[k].aval for k in self.ct_outs]
        self.active = bool(self.wrt)
        if not self.active:
            self.n_res = 0
            return
        self.by_flags = {}
        self.n_fwd = n_fwd = n_out + self.reach.n_flags
        joint = optimize(vjp_graph(flagged, wrt=self.wrt, ct_outputs=self.ct_outs))
        self.joint = joint
        p = partition(joint, n_in, n_fwd)
        self.forward = verify(optimize(p.forward))
        self.backward = verify(optimize(p.backward))
        self.n_res = p.n_res
        self.bwd_inputs = p.bwd_inputs
        self.bwd_outputs = p.bwd_outputs
        self._saves = (p.bwd_inputs, bool(p.bwd_outputs))
        # create_graph: the graph re-run on the tape (it reads the inputs only)
        dead = set(plan_of(graph).dead_inputs)
        self._saves_differentiable = (tuple(i for i, v in enumerate(graph.inputs) if v not in dead), False)
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

    def vjp(self, cts, outs, inputs, need, deps=None):
        cts = cts[: self.n_out]
        if is_grad_enabled():
            return self._vjp_differentiable(cts, inputs, deps)
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
        reached = self._reached(cts, deps)
        for i, g in zip(self.wrt, gs):
            if reached >> i & 1:
                res[i] = _wrap(g)
        return tuple(res)

    def _reached(self, cts, deps):
        """The bit set of the inputs the cotangents ``cts`` reach (as eagerly, an input that
        only outputs without a cotangent depend on gets no gradient: None)."""
        deps = self.deps if deps is None else deps
        reached = 0
        for c, d in zip(cts, deps):
            if c is not None:
                reached |= d
        return reached

    def _vjp_differentiable(self, cts, inputs, deps):
        """``create_graph=True``: the graph re-run on the eager tape from the inputs (behind
        a bridge node, see ``_Bridge``) and differentiated there, so that the gradients'
        own history, and which inputs a second backward reaches, is eager code's."""
        bridge = _node(_BRIDGE, _NP, tuple(inputs), (False,) * len(inputs),
                       tuple(t._value for t in inputs), None)
        xs = [_wrap(t._value, bridge, i) if t._requires_grad else t for i, t in enumerate(inputs)]
        outs = eval_graph_eager_errors(self.graph, xs)
        pairs = [(o, c) for o, c in zip(outs, cts)
                 if c is not None and o.__class__ is Tensor and o._requires_grad]
        res = [None] * len(inputs)
        if pairs:
            wrt = [i for i in self.wrt if inputs[i]._requires_grad]
            gs = autograd_grad([o for o, _ in pairs], [xs[i] for i in wrt], [c for _, c in pairs],
                               create_graph=True, allow_unused=True)
            for i, g in zip(wrt, gs):
                res[i] = g
        # from now on the bridge passes cotangents on to the inputs (not during the
        # backward above, which must stop at them)
        bridge.need = tuple(x is not t for x, t in zip(xs, inputs))
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
        rg, need, params = self.out_rg, self.need, _NP
        if self.reach.n_flags:
            deps, rg, need = self._per_call(tuple(bool(res[k]) for k in range(n_out, self.n_fwd)))
            if not any(rg):  # as eagerly: the branches taken read no input that requires grad
                return [_wrap(res[k]) for k in range(n_out)]
            params = {"deps": deps}
        node = _node(self, params, tuple(tensors), need, tuple(res), _versions(tensors))
        return [_wrap(res[k], node, k) if rg[k] else _wrap(res[k]) for k in range(n_out)]

    def _per_call(self, flags):
        """``(dependencies per output, outputs that require grad, inputs that get a
        gradient)`` for a call whose forward kernel returned ``flags``: eagerly an input
        that only an untaken branch or a loop body that never ran reads gets no gradient
        (``.grad`` stays None), and an output whose history reaches no input that requires
        grad does not require grad."""
        r = self.by_flags.get(flags)
        if r is None:
            deps = self.reach.deps(flags)
            r = self.by_flags[flags] = (deps,) + _requirements(deps, len(self.need))
        return r


def _warning_class():
    from .api import CompileWarning

    return CompileWarning
