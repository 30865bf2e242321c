"""Tensor and ``apply``: the handler behind ``bind`` that evaluates a primitive and
records it on the tape.

The payload of a Tensor (``_value``) is a numpy array when running eagerly, or a
tracer's symbolic value while a trace is active; the tape (grad_fn nodes) works the
same on both, which is how IR autodiff reuses the eager VJP rules.
"""
from __future__ import annotations

import numpy as np

from ..ops import composites as C
from ..ops import primitives as P
from ..ops import registry
from . import grad_mode
from .engine import _TENSOR as _engine_tensor
from .engine import NODE_SEQ, Node, accumulate_grad_of, node_class, public_node, run_backward

_ndarray = np.ndarray
_STATE = grad_mode.STATE

# The active tracer, if any (set by dualgraph.static while it traces).  A tracer has
# ``process(prim, args, params) -> payload(s)``; ``args`` keep their Tensors (the tracer
# needs their identity to capture closures).
TRACE = [None]


def _describe(v):
    if hasattr(v, "shape"):
        return f"{tuple(v.shape)} {np.dtype(v.dtype).name}" if hasattr(v, "dtype") else str(v.shape)
    return repr(v)


def _op_error(prim, vals, params, e):
    """Re-raise a failing op's error naming the op, its operands and the user's line.

    Where the registry's shape rule rejects the operands too, its message (written for
    people) replaces numpy's."""
    msg = str(e)
    if "\n  at " in msg:  # already explained by an inner op
        return e
    try:
        avals = [registry.aval_of(v) if hasattr(v, "shape") else v for v in vals]
        prim.shape_rule(*avals, **params)
    except (ValueError, IndexError, TypeError) as rule_error:
        msg = str(rule_error)
    except Exception:  # noqa: BLE001 - a rule that cannot judge: keep numpy's message
        pass
    if msg.startswith(prim.name + ":"):
        text = msg
    else:
        args = ", ".join(_describe(v) for v in vals)
        text = f"{prim.name}: {msg} (operands: {args})"
    return type(e)(f"{text}\n  at {registry.user_source() or '<unknown>'}")


def apply(prim, args, params):
    """Evaluate ``prim`` on ``args`` and, where gradients are wanted, record a tape node."""
    vals = []
    rg = False
    for a in args:
        if a.__class__ is Tensor:
            vals.append(a._value)
            if a._requires_grad:
                rg = True
        else:
            vals.append(a)
    trace = TRACE[0]
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
    record = rg and _STATE.enabled and prim.vjp is not None
    if record and not prim.multiple_results and out.dtype.kind not in "fc":
        record = False  # integer and bool results never require grad (x.long(), torch)
    if prim.multiple_results:
        node = None
        if record:
            need = tuple(a.__class__ is Tensor and a._requires_grad for a in args)
            node = _node(prim, params, args, need, tuple(out))
        outs = []
        for k, o in enumerate(out):
            t = Tensor._make(o, record and _is_float(o), node if record else None)
            t._out_index = k
            outs.append(t)
        return tuple(outs)
    if out.__class__ is not _ndarray and trace is None:
        out = np.asarray(out)
    t = _new(Tensor)
    t._value = out
    t._grad = None
    t._hooks = None
    t._out_index = 0
    if record:
        need = tuple([a.__class__ is Tensor and a._requires_grad for a in args])
        t._grad_fn = _node(prim, params, args, need, out if prim.uses_out else None)
        t._requires_grad = True
    else:
        t._grad_fn = None
        t._requires_grad = False
    return t


def _node(prim, params, inputs, need, out):
    # a plain Node (see engine.Node); multi-output nodes get their class at once
    node = (node_class(prim) if prim.multiple_results else Node)()
    node.prim = prim
    node.params = params
    node.inputs = inputs
    node.need = need
    node.out = out
    node.pre_hooks = None
    node.seq = _next_seq()
    return node


def _fast_op(prim):
    """A specialised ``apply`` for a parameter-free unary or binary primitive: the hot path
    of eager code, kept to one Python frame per op."""
    impl = prim.impl
    raw = getattr(impl, "raw", impl)  # the ufunc behind a dtype-promoting wrapper
    uses_out = prim.uses_out
    differentiable = prim.vjp is not None
    cls = Node  # the tape's one node class (see engine.Node)
    node_class(prim)
    nary = prim.arity
    # int and bool inputs of exp/log/tanh/... compute in float32 (torch): checked here, so
    # a float input calls the ufunc itself rather than the checking wrapper
    promote = getattr(impl, "int_to_float", False)
    uimpl = raw if promote else impl

    def unary(x):
        if x.__class__ is not Tensor:
            return apply(prim, (x,), _NP)
        tr = TRACE[0]
        if tr is None:
            v = x._value
            if promote:
                dt = v.dtype
                if dt is not _F32 and dt is not _F64 and dt.kind in "iub":
                    v = v.astype(np.float32)
            out = uimpl(v)
            if out.__class__ is not _ndarray:
                out = np.asarray(out)
        else:
            out = _traced(tr, prim, (x,))
            if x._value.__class__ is _ndarray:  # eager tensors are constants to a trace
                x = x.detach()
        t = _new(Tensor)
        t._value = out
        t._grad = None
        t._hooks = None
        t._out_index = 0
        if x._requires_grad and _STATE.enabled and differentiable:
            node = cls()  # Node has no __init__: cheaper than object.__new__(cls)
            node.prim = prim
            node.params = _NP
            node.inputs = (x,)
            node.need = _NEED1
            node.out = out if uses_out else None
            node.pre_hooks = None
            node.seq = _next_seq()
            t._grad_fn = node
            t._requires_grad = True
        else:
            t._grad_fn = None
            t._requires_grad = False
        return t

    def binary(x, y):
        if x.__class__ is Tensor:
            xv = x._value
            xr = x._requires_grad
        else:
            xv = x
            xr = False
        if y.__class__ is Tensor:
            yv = y._value
            yr = y._requires_grad
        else:
            yv = y
            yr = False
        tr = TRACE[0]
        if tr is None:
            try:
                if xv.__class__ is _ndarray and yv.__class__ is _ndarray and xv.dtype is yv.dtype:
                    out = raw(xv, yv)
                else:
                    out = impl(xv, yv)  # mixed dtypes or a scalar: torch's promotion
            except (ValueError, TypeError) as e:
                raise _op_error(prim, (xv, yv), _NP, e) from None
            if out.__class__ is not _ndarray:
                out = np.asarray(out)
        else:
            out = _traced(tr, prim, (x, y))
            if xr and xv.__class__ is _ndarray:  # eager tensors are constants to a trace
                xr = False
            if yr and yv.__class__ is _ndarray:
                yr = False
        t = _new(Tensor)
        t._value = out
        t._grad = None
        t._hooks = None
        t._out_index = 0
        if (xr or yr) and _STATE.enabled and differentiable:
            node = cls()  # Node has no __init__: cheaper than object.__new__(cls)
            node.prim = prim
            node.params = _NP
            node.inputs = (x, y)
            node.need = _NEED_TT if xr and yr else (_NEED_TF if xr else _NEED_FT)
            node.out = out if uses_out else None
            node.pre_hooks = None
            node.seq = _next_seq()
            t._grad_fn = node
            t._requires_grad = True
        else:
            t._grad_fn = None
            t._requires_grad = False
        return t

    return unary if nary == 1 else binary


def _traced_requires_grad(args):
    # Under a trace, an eager (numpy-backed) tensor is a graph constant: no tape through it.
    return any(
        a.__class__ is Tensor and a._requires_grad and a._value.__class__ is not _ndarray for a in args
    )


def _traced(tr, prim, args):
    """Hand ``args`` (Tensors keep their identity: the tracer needs it for closures) to
    the active tracer."""
    vals = [a._value if a.__class__ is Tensor else a for a in args]
    try:
        return tr.process(prim, args, _NP)
    except (ValueError, IndexError, TypeError) as e:
        raise _op_error(prim, vals, _NP, e) from None


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_NEED1 = (True,)
_NEED_TT = (True, True)
_NEED_TF = (True, False)
_NEED_FT = (False, True)
_next_seq = NODE_SEQ.__next__


registry.set_handler(apply)
_new = object.__new__


def _is_float(v):
    return np.issubdtype(v.dtype, np.floating)


def _unwrap(x):
    return x._value if isinstance(x, Tensor) else x


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


class Tensor:
    """An n-dimensional array that records the operations applied to it (as torch.Tensor)."""

    __slots__ = ("_value", "_requires_grad", "_grad_fn", "_grad", "_hooks", "_out_index", "__weakref__")

    __array_priority__ = 1000  # numpy defers to our reflected operators

    def __init__(self, data, dtype=None, requires_grad=False):
        self._value = _to_array(data, dtype)
        self._grad_fn = None
        self._grad = None
        self._hooks = None
        self._out_index = 0
        self._requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, value, requires_grad=False, grad_fn=None):
        t = _new(cls)
        t._value = value
        t._requires_grad = requires_grad
        t._grad_fn = grad_fn
        t._grad = None
        t._hooks = None
        t._out_index = 0
        return t

    # ---- attributes -----------------------------------------------------------------
    @property
    def shape(self):
        return self._value.shape

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
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, b):
        self.requires_grad_(b)

    @property
    def grad_fn(self):
        fn = self._grad_fn
        return fn if fn is None else public_node(fn)

    @property
    def is_leaf(self):
        return self._grad_fn is None

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, g):
        if g is not None and not isinstance(g, Tensor):
            raise TypeError(f"assigned grad expected to be a Tensor or None but got {type(g).__name__}")
        if g is not None and g.shape != self.shape:
            raise RuntimeError(f"assigned grad has shape {g.shape} but the tensor has shape {self.shape}")
        self._grad = g

    @property
    def data(self):
        return Tensor._make(self._value)

    @data.setter
    def data(self, other):
        self._value = other._value if isinstance(other, Tensor) else _to_array(other, None)

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

    def detach(self):
        return Tensor._make(self._value)

    def detach_(self):
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
        if self._grad_fn is None or getattr(self, "_retains", False):
            return
        import weakref

        ref = weakref.ref(self)

        def keep(g):
            t = ref()
            if t is not None:
                t._grad = g.detach() if t._grad is None else t._grad + g.detach()

        self._grad_fn.register_prehook(self._out_index, keep)

    @property
    def retains_grad(self):
        return False

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

    # ---- in-place ---------------------------------------------------------------------
    def _check_inplace(self):
        if _STATE.enabled and self._requires_grad:
            if self._grad_fn is None:
                raise RuntimeError(
                    "a leaf Variable that requires grad is being used in an in-place operation."
                )
            return False
        return True

    def _copy(self):
        self._value = np.array(self._value, copy=True)
        return self

    def _inplace_add(self, g):
        v = self._value
        gv = g._value
        if v.flags.writeable:
            np.add(v, gv, out=v, casting="unsafe")
        else:
            self._value = v + gv

    def _inplace(self, ufunc, other, name):
        if not self._check_inplace():
            return apply(_INPLACE_PRIMS[name], (self, other), {})
        o = other._value if isinstance(other, Tensor) else other
        v = self._value
        if v.flags.writeable and np.broadcast_shapes(v.shape, np.shape(o)) == v.shape:
            ufunc(v, o, out=v, casting="same_kind")
        else:
            self._value = np.asarray(ufunc(v, o)).astype(v.dtype)
        return self

    def __iadd__(self, o):
        return self._inplace(np.add, o, "add")

    def __isub__(self, o):
        return self._inplace(np.subtract, o, "sub")

    def __imul__(self, o):
        return self._inplace(np.multiply, o, "mul")

    def __itruediv__(self, o):
        return self._inplace(np.true_divide, o, "div")

    def zero_(self):
        if not self._check_inplace():
            raise RuntimeError("zero_: in-place operation on a tensor that is part of a graph")
        v = self._value
        if v.flags.writeable:
            v[...] = 0
        else:
            self._value = np.zeros_like(v)
        return self

    def fill_(self, value):
        self._check_inplace()
        self._value[...] = value
        return self

    def copy_(self, src):
        self._check_inplace()
        self._value[...] = _unwrap(src)
        return self

    def __setitem__(self, idx, value):
        if _STATE.enabled and self._requires_grad:
            raise RuntimeError(
                "in-place index assignment on a tensor that requires grad is not supported; "
                "build the result with dg.where or dg.cat instead"
            )
        if isinstance(idx, Tensor):
            idx = idx._value
        elif isinstance(idx, tuple):
            idx = tuple(i._value if isinstance(i, Tensor) else i for i in idx)
        self._value[idx] = _unwrap(value)

    # ---- operators ----------------------------------------------------------------------
    # + - * / ** (and reflected), unary - and abs, comparisons, & | ~, and the methods
    # exp log tanh sigmoid sqrt abs neg sign erf are installed below by _install_fast_ops:
    # specialised one-frame versions of apply.

    def __matmul__(self, o):
        return apply(P.matmul_p, (self, o), _NP)

    def __rmatmul__(self, o):
        return apply(P.matmul_p, (o, self), _NP)

    def __pos__(self):
        return self

    __hash__ = object.__hash__

    def __getitem__(self, idx):
        spec, arrays = _index_spec(self, idx)
        return apply(P.getitem_p, (self, *arrays), {"spec": spec})

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # ---- methods ------------------------------------------------------------------------

    def relu(self):
        return C.relu(self)

    def pow(self, o):
        return apply(P.pow_p, (self, o), _NP)

    def matmul(self, o):
        return apply(P.matmul_p, (self, o), _NP)

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
        return apply(P.convert_p, (self,), {"dtype": dtype})

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


_NP: dict = {}


def _install_fast_ops():
    """Specialise the hot primitives: Tensor operators, and the ``ops.primitives``
    functions the VJP rules and composites call, get one-frame versions of ``apply``."""
    fast = {}
    for fname, prim in P.FUNCTIONS.items():
        if prim.arity in (1, 2):
            f = fast[prim.name] = _fast_op(prim)
            f.__name__ = f.__qualname__ = fname
            f.__doc__ = f"Apply the ``{prim.name}`` primitive."
            f.primitive = prim
            setattr(P, fname, f)
    ops = {"add": "add", "sub": "sub", "mul": "mul", "truediv": "div", "pow": "pow",
           "lt": "lt", "le": "le", "gt": "gt", "ge": "ge", "eq": "eq", "ne": "ne",
           "and": "and", "or": "or"}
    for dunder, name in ops.items():
        f = fast[name]
        setattr(Tensor, f"__{dunder}__", f)
        if dunder in ("add", "sub", "mul", "truediv", "pow"):
            setattr(Tensor, f"__r{dunder}__", _reflected(f))
    for dunder, name in {"neg": "neg", "abs": "abs", "invert": "not"}.items():
        setattr(Tensor, f"__{dunder}__", fast[name])
    for m in ("exp", "log", "tanh", "sigmoid", "sqrt", "abs", "neg", "sign", "erf"):
        setattr(Tensor, m, fast[m])


def _reflected(f):
    def r(self, other):
        return f(other, self)

    r.__name__ = "__r" + f.__name__ + "__"
    return r


_install_fast_ops()
_engine_tensor[0] = Tensor
_INPLACE_PRIMS = {"add": P.add_p, "sub": P.sub_p, "mul": P.mul_p, "div": P.div_p}


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
