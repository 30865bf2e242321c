"""The op table: every primitive and composite of dualgraph, listed once, as plain data.

Generic tests iterate over ``OPS`` (PyTorch's ``op_db`` / JAX's ``LAX_GRAD_OPS``):
forward against the numpy reference, gradcheck first and second order, broadcasting.
The same table serves later for "eager == traced interpreter == compiled".

    from tests.op_table import OPS, to_tensors
    for info in OPS:
        for s in info.samples(np.float32):
            out = info.op(*to_tensors(s.args), **s.kwargs)
            np.testing.assert_allclose(out.numpy(), info.ref(*s.args, **s.kwargs),
                                       **info.tol(np.float32))

``OpInfo`` fields
  name            unique; a primitive's entry carries the primitive's registry name
                  (``"add"``, ``"reduce_sum"``), a composite's the public spelling
                  (``"dg.sum"``, ``"Tensor.view"``, ``"F.cross_entropy"``)
  kind            ``"primitive"`` or ``"composite"``
  op              the dualgraph callable: ``op(*tensors, **kwargs) -> Tensor``; positional
                  arguments are arrays (passed as Tensors) or Python scalars (passed as is),
                  keyword arguments are static parameters
  ref             the numpy reference: ``ref(*arrays, **kwargs) -> ndarray`` with the
                  dtype dualgraph must produce
  sample_fn       ``sample_fn(dtype, rng) -> [Sample, ...]``: seeded inputs in ``dtype``
                  (use ``info.samples(dtype, seed=0)``); it respects ``domain``
  dtypes          the dtypes the forward test runs in (numpy dtypes)
  differentiable  whether gradcheck runs (float64, first order)
  second_order    whether gradcheck of the first gradient (``create_graph=True``) runs
  domain          ``(low, high)`` for generated floating inputs, e.g. positive for log/sqrt
  atol, rtol      forward tolerances for float32 (float64 uses ``1e-10``; ints/bools exact)
  grad_atol, grad_rtol  gradcheck tolerances

``Sample`` fields
  args       positional inputs: numpy arrays or Python scalars
  kwargs     static keyword parameters (shapes, axes, dtype, index expressions)
  grad_args  indices of ``args`` to differentiate; ``None`` means every floating array
  gradcheck  False for a sample that is checked forward only (e.g. a cast to float32)
  desc       short label used in test ids
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import dualgraph as dg
import dualgraph.nn.functional as F
from dualgraph.ops import primitives as P

F32, F64, I64, BOOL = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_)
FLOATS = (F32, F64)


@dataclass
class Sample:
    args: tuple
    kwargs: dict = field(default_factory=dict)
    grad_args: tuple | None = None
    gradcheck: bool = True
    desc: str = ""

    def diff_indices(self):
        if self.grad_args is not None:
            return tuple(self.grad_args)
        return tuple(
            i for i, a in enumerate(self.args)
            if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating)
        )


@dataclass
class OpInfo:
    name: str
    kind: str
    op: Callable
    ref: Callable
    sample_fn: Callable[[np.dtype, np.random.Generator], list]
    dtypes: tuple = FLOATS
    differentiable: bool = True
    second_order: bool = True
    domain: tuple = (-2.0, 2.0)
    atol: float = 1e-5
    rtol: float = 1e-5
    grad_atol: float = 1e-5
    grad_rtol: float = 1e-3
    extra: dict[str, Any] = field(default_factory=dict)

    def samples(self, dtype, seed=0):
        rng = np.random.default_rng(seed)
        return self.sample_fn(np.dtype(dtype), rng, self.domain)

    def tol(self, dtype):
        dtype = np.dtype(dtype)
        if dtype == F32:
            return {"atol": self.atol, "rtol": self.rtol}
        if dtype == F64:
            return {"atol": 1e-10, "rtol": 1e-10}
        return {"atol": 0, "rtol": 0}


def to_tensors(args, requires_grad=()):
    """numpy arrays -> dg Tensors (``requires_grad`` for the given indices); scalars kept."""
    out = []
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            out.append(dg.tensor(a, requires_grad=i in requires_grad))
        else:
            out.append(a)
    return tuple(out)


# ----------------------------------------------------------------------------------------
# Input generators
# ----------------------------------------------------------------------------------------


def _arr(rng, shape, dtype, domain=(-2.0, 2.0)):
    dtype = np.dtype(dtype)
    if dtype == BOOL:
        return np.asarray(rng.random(shape) < 0.5)
    if np.issubdtype(dtype, np.integer):
        lo, hi = int(math.floor(domain[0])), int(math.ceil(domain[1]))
        return np.asarray(rng.integers(lo - 3, hi + 4, size=shape)).astype(dtype)
    return np.asarray(rng.uniform(domain[0], domain[1], size=shape)).astype(dtype)


def _distinct(rng, shape, dtype, domain=(-2.0, 2.0)):
    """Pairwise distinct values (a shuffled, randomly shifted grid): no ties at the kinks
    of max/min/maximum/relu, so finite differences are valid."""
    n = int(np.prod(shape, dtype=int))
    if np.issubdtype(np.dtype(dtype), np.integer):
        return (rng.permutation(n).reshape(shape) - n // 2).astype(dtype)
    lo, hi = domain
    step = (hi - lo) / max(n, 1)
    grid = lo + step * (np.arange(n) + rng.uniform(0.1, 0.9))
    return rng.permutation(grid).reshape(shape).astype(dtype)


def _away_from_zero(rng, shape, dtype, domain=(-2.0, 2.0)):
    """Values with |v| >= 0.2 (integers: nonzero): off the kinks of abs/relu, safe divisors."""
    a = _arr(rng, shape, dtype, domain)
    if np.issubdtype(np.dtype(dtype), np.floating):
        a = np.where(np.abs(a) < 0.2, np.sign(a + 1e-9) * 0.3 + a, a).astype(dtype)
    else:
        a = np.where(a == 0, 1, a).astype(dtype)
    return np.asarray(a)


UNARY_SHAPES = [(), (5,), (3, 4), (2, 3, 2)]
# (x shape, y shape): equal shapes, then numpy broadcasting of every kind
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (2, 3)), ((2, 1, 3), (2, 3))]


def unary_samples(gen=_arr):
    def fn(dtype, rng, domain):
        return [Sample((gen(rng, s, dtype, domain),), desc=f"{s}") for s in UNARY_SHAPES]

    return fn


def binary_samples(gen=_arr, ygen=None, scalars=(1.5,)):
    ygen = ygen or gen

    def fn(dtype, rng, domain):
        out = [
            Sample((gen(rng, xs, dtype, domain), ygen(rng, ys, dtype, domain)), desc=f"{xs}x{ys}")
            for xs, ys in BINARY_SHAPES
        ]
        for c in scalars:
            c = int(c) if np.issubdtype(dtype, np.integer) else c
            out.append(Sample((gen(rng, (2, 3), dtype, domain), c), desc=f"(2, 3)x{c!r}"))
            out.append(Sample((c, ygen(rng, (3,), dtype, domain)), desc=f"{c!r}x(3,)"))
        return out

    return fn


def _positive(rng, shape, dtype, domain=None):
    return _arr(rng, shape, dtype, (0.5, 2.0))


def _pow_samples(dtype, rng, domain):
    out = [
        Sample((_positive(rng, xs, dtype), _arr(rng, ys, dtype, (-1.5, 2.0))), desc=f"{xs}**{ys}")
        for xs, ys in BINARY_SHAPES
    ]
    for c in (2, 3, 0, 1, -1, 0.5, 2.5):
        out.append(Sample((_arr(rng, (2, 3), dtype, (0.3, 2.0)), c), desc=f"x**{c!r}"))
    out.append(Sample((_arr(rng, (2, 3), dtype), 2), desc="negative base **2"))
    out.append(Sample((_arr(rng, (2, 3), dtype), 3), desc="negative base **3"))
    out.append(Sample((2.0, _arr(rng, (3,), dtype)), desc="2.0**x"))
    return out


def _where_samples(dtype, rng, domain):
    out = []
    for cs, xs, ys in [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (3, 4)), ((4,), (3, 4), ()), ((2, 3), (3,), (2, 1))]:
        out.append(Sample((rng.random(cs) < 0.5, _arr(rng, xs, dtype), _arr(rng, ys, dtype)), desc=f"{cs},{xs},{ys}"))
    zero = 0.0 if np.issubdtype(dtype, np.floating) else 0
    out.append(Sample((rng.random((2, 3)) < 0.5, _arr(rng, (2, 3), dtype), zero), desc="y scalar"))
    return out


def _where_ref(c, x, y):
    r = np.where(c, x, y)
    dt = np.result_type(*[a.dtype for a in (x, y) if isinstance(a, np.ndarray)])
    return r.astype(dt)


def _axes_samples(dtype, rng, domain, gen=_arr):
    x3 = gen(rng, (2, 3, 4), dtype, domain)
    x2 = gen(rng, (3, 4), dtype, domain)
    x1 = gen(rng, (5,), dtype, domain)
    return [
        Sample((x2,), {"axes": (0, 1), "keepdims": False}, desc="all"),
        Sample((x2,), {"axes": (1,), "keepdims": False}, desc="axis1"),
        Sample((x3,), {"axes": (0, 2), "keepdims": True}, desc="axes02-keep"),
        Sample((x3,), {"axes": (), "keepdims": False}, desc="no-axes"),
        Sample((x1,), {"axes": (0,), "keepdims": True}, desc="1d-keep"),
    ]


def _dim_samples(gen=_arr, dims=(None, 0, 1, -1, (0, 2))):
    def fn(dtype, rng, domain):
        out = []
        for d in dims:
            for keep in (False, True):
                x = gen(rng, (2, 3, 4), dtype, domain)
                out.append(Sample((x,), {"dim": d, "keepdim": keep}, desc=f"dim={d},keep={keep}"))
        out.append(Sample((gen(rng, (4,), dtype, domain),), {"dim": None, "keepdim": False}, desc="1d"))
        return out

    return fn


def _values(r):
    """max/min with an int dim return (values, indices), as torch."""
    return r.values if isinstance(r, tuple) else r


def _np_axis(dim):
    return tuple(dim) if isinstance(dim, list) else dim


def _arg_samples(dtype, rng, domain):
    out = []
    for axis, keep in [(0, False), (1, True), (None, True), (2, False)]:
        out.append(Sample((_distinct(rng, (2, 3, 4), dtype),), {"axis": axis, "keepdims": keep},
                          desc=f"axis={axis},keep={keep}"))
    return out


def _arg_ref(fn):
    return lambda x, axis, keepdims: fn(x, axis=axis, keepdims=keepdims).astype(np.int64)


def _dg_arg_samples(dtype, rng, domain):
    out = []
    for d, keep in [(None, False), (0, False), (1, True), (-1, False), (None, True)]:
        out.append(Sample((_distinct(rng, (2, 3, 4), dtype),), {"dim": d, "keepdim": keep}, desc=f"dim={d},keep={keep}"))
    return out


def _dg_arg_ref(fn):
    def ref(x, dim, keepdim):
        if dim is None:
            r = fn(x.reshape(-1), axis=0)
            return np.asarray(r).reshape((1,) * x.ndim if keepdim else ()).astype(np.int64)
        return fn(x, axis=dim, keepdims=keepdim).astype(np.int64)

    return ref


def _reshape_samples(dtype, rng, domain):
    x = _arr(rng, (2, 3, 4), dtype)
    return [
        Sample((x,), {"shape": (6, 4)}, desc="(6,4)"),
        Sample((x,), {"shape": (24,)}, desc="flat"),
        Sample((x,), {"shape": (4, 1, 6)}, desc="(4,1,6)"),
        Sample((_arr(rng, (1,), dtype),), {"shape": ()}, desc="to 0-d"),
    ]


def _view_samples(dtype, rng, domain):
    x = _arr(rng, (2, 3, 4), dtype)
    return [
        Sample((x,), {"shape": (6, -1)}, desc="(6,-1)"),
        Sample((x,), {"shape": (-1,)}, desc="(-1,)"),
        Sample((x,), {"shape": (2, 12)}, desc="(2,12)"),
    ]


def _transpose_p_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (2, 3, 4), dtype),), {"perm": (2, 0, 1)}, desc="201"),
        Sample((_arr(rng, (3, 4), dtype),), {"perm": (1, 0)}, desc="10"),
        Sample((_arr(rng, (3,), dtype),), {"perm": (0,)}, desc="1d"),
    ]


def _broadcast_to_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (3, 1), dtype),), {"shape": (2, 3, 4)}, desc="(3,1)->(2,3,4)"),
        Sample((_arr(rng, (), dtype),), {"shape": (2, 2)}, desc="()->(2,2)"),
        Sample((_arr(rng, (4,), dtype),), {"shape": (3, 4)}, desc="(4,)->(3,4)"),
    ]


def _concat_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (2, 3), dtype), _arr(rng, (1, 3), dtype), _arr(rng, (3, 3), dtype)), {"axis": 0}, desc="axis0"),
        Sample((_arr(rng, (2, 3), dtype), _arr(rng, (2, 1), dtype)), {"axis": 1}, desc="axis1"),
        Sample((_arr(rng, (2, 2, 2), dtype), _arr(rng, (2, 2, 1), dtype)), {"axis": 2}, desc="axis2"),
    ]


def _matmul_samples(dtype, rng, domain):
    pairs = [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 2)),
             ((2, 3, 4), (2, 4, 2)), ((1, 3, 4), (2, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,))]
    return [Sample((_arr(rng, a, dtype), _arr(rng, b, dtype)), desc=f"{a}@{b}") for a, b in pairs]


def _getitem_samples(dtype, rng, domain):
    x = _arr(rng, (4, 3), dtype)
    x3 = _arr(rng, (3, 4, 2), dtype)
    mask = np.array([[True, False, True], [False, False, True], [True, True, False], [False, True, False]])
    return [
        Sample((x,), {"idx": 1}, desc="int"),
        Sample((x,), {"idx": -1}, desc="negative int"),
        Sample((x,), {"idx": slice(1, 3)}, desc="slice"),
        Sample((x,), {"idx": (slice(None, None, 2), slice(1, None))}, desc="strided"),
        Sample((x,), {"idx": (Ellipsis, None, 0)}, desc="ellipsis newaxis"),
        Sample((x,), {"idx": np.array([0, 2, 0, 3])}, desc="int array repeated"),
        Sample((x,), {"idx": (np.array([0, 0, 3]), np.array([1, 1, 2]))}, desc="two arrays repeated"),
        Sample((x3,), {"idx": (slice(None), np.array([[1, 3], [3, 3]]))}, desc="2-d index array"),
        Sample((x,), {"idx": mask}, desc="bool mask"),
        Sample((x,), {"idx": np.array([True, False, True, True])}, desc="row mask"),
        Sample((x,), {"idx": [1, 1, 2]}, desc="list index"),
    ]


def _index_add_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (4, 3), dtype), _arr(rng, (5, 3), dtype), np.array([0, 2, 0, 3, 0])),
               {"spec": (("a", 0),)}, desc="repeated rows"),
        Sample((_arr(rng, (4, 3), dtype), _arr(rng, (2, 3), dtype)),
               {"spec": (("s", 1, 3, None),)}, desc="slice"),
        Sample((_arr(rng, (4, 3), dtype), _arr(rng, (1,), dtype)),
               {"spec": (("s", None, None, None), 1)}, desc="column, broadcast update"),
    ]


def _index_add_ref(base, upd, *arrays, spec):
    out = base.copy()
    np.add.at(out, P.build_index(spec, arrays), upd)
    return out


def _index_set_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (4, 3), dtype), _arr(rng, (3, 3), dtype), np.array([0, 2, 3])),
               {"spec": (("a", 0),)}, desc="rows"),
        Sample((_arr(rng, (4, 3), dtype), _arr(rng, (2, 3), dtype)),
               {"spec": (("s", 1, 3, None),)}, desc="slice"),
        Sample((_arr(rng, (4, 3), dtype), _arr(rng, (1,), dtype)),
               {"spec": (("s", None, None, None), 1)}, desc="column, broadcast value"),
        Sample((_arr(rng, (4, 3), dtype), _arr(rng, (4, 3), dtype)), {"spec": (Ellipsis,)}, desc="all"),
    ]


def _index_set_ref(base, v, *arrays, spec):
    out = base.copy()
    out[P.build_index(spec, arrays)] = v
    return out


def _convert_samples(dtype, rng, domain):
    other = F64 if dtype == F32 else F32
    x = _arr(rng, (2, 3), dtype)
    return [
        Sample((x,), {"dtype": F64}, desc="to f64"),
        Sample((x,), {"dtype": other}, gradcheck=other == F64, desc=f"to {other.name}"),
        Sample((x * 3,), {"dtype": I64}, gradcheck=False, desc="to int64"),
        Sample((x,), {"dtype": BOOL}, gradcheck=False, desc="to bool"),
    ]


def _full_samples(dtype, rng, domain):
    return [
        Sample((), {"shape": (2, 3), "value": 1.5, "dtype": dtype}, desc="(2,3)"),
        Sample((), {"shape": (), "value": 0, "dtype": dtype}, desc="0-d"),
    ]


def _dynamic_zeros_samples(dtype, rng, domain):
    return [Sample((np.array(3, np.int64),), {"shape": (2,), "dtype": dtype}, desc="3x2")]


def _dynamic_index_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (4, 2), dtype), np.array(2, np.int64)), desc="row 2"),
        Sample((_arr(rng, (3,), dtype), np.array(0, np.int64)), desc="1-d"),
    ]


def _dynamic_update_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (4, 2), dtype), np.array(1, np.int64), _arr(rng, (2,), dtype)), desc="row 1"),
        Sample((_arr(rng, (3,), dtype), np.array(2, np.int64), _arr(rng, (), dtype)), desc="1-d"),
    ]


def _dynamic_update_ref(buf, i, x):
    out = buf.copy()
    out[int(i)] = x
    return out


def _tanh_backward_samples(dtype, rng, domain):
    return [Sample((_arr(rng, s, dtype), _arr(rng, s, dtype, (-0.99, 0.99))), desc=f"{s}")
            for s in [(5,), (3, 4)]] + [Sample((_arr(rng, (3, 4), dtype), _arr(rng, (4,), dtype, (-0.9, 0.9))), desc="bcast")]


def _sigmoid_backward_samples(dtype, rng, domain):
    return [Sample((_arr(rng, s, dtype), _arr(rng, s, dtype, (0.01, 0.99))), desc=f"{s}")
            for s in [(5,), (3, 4)]] + [Sample((_arr(rng, (3, 1), dtype), _arr(rng, (4,), dtype, (0.01, 0.99))), desc="bcast")]


def _logic_samples(dtype, rng, domain):
    return [Sample((rng.random(a) < 0.5, rng.random(b) < 0.5), desc=f"{a}x{b}")
            for a, b in [((3, 4), (3, 4)), ((3, 1), (4,))]]


def _cmp_samples(dtype, rng, domain):
    out = binary_samples()(dtype, rng, domain)
    x = _arr(rng, (6,), dtype)
    out.append(Sample((x, x.copy()), desc="equal values"))
    return out


# ---- composite helpers ----------------------------------------------------------------


def _var_ref(x, dim=None, keepdim=False, unbiased=True):
    return np.var(x, axis=_np_axis(dim), keepdims=keepdim, ddof=1 if unbiased else 0).astype(x.dtype)


def _var_samples(dtype, rng, domain):
    out = []
    for d, keep, unb in [(None, False, True), (0, False, True), (-1, True, False), ((0, 2), False, True), (1, True, True)]:
        out.append(Sample((_arr(rng, (2, 3, 4), dtype),), {"dim": d, "keepdim": keep, "unbiased": unb},
                          desc=f"dim={d},keep={keep},unbiased={unb}"))
    return out


def _mean_ref(x, dim=None, keepdim=False):
    return np.mean(x, axis=_np_axis(dim), keepdims=keepdim).astype(x.dtype)


def _sum_ref(x, dim=None, keepdim=False):
    return np.sum(x, axis=_np_axis(dim), keepdims=keepdim)


def _squeeze_samples(dtype, rng, domain):
    x = _arr(rng, (1, 3, 1, 2), dtype)
    return [Sample((x,), {"dim": d}, desc=f"dim={d}") for d in (None, 0, 2, -2, 1)]


def _squeeze_ref(x, dim=None):
    if dim is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=dim) if x.shape[dim] == 1 else x


def _unsqueeze_samples(dtype, rng, domain):
    x = _arr(rng, (3, 2), dtype)
    return [Sample((x,), {"dim": d}, desc=f"dim={d}") for d in (0, 1, 2, -1, -3)]


def _expand_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (3, 1), dtype),), {"sizes": (3, 4)}, desc="(3,1)->(3,4)"),
        Sample((_arr(rng, (3, 1), dtype),), {"sizes": (2, -1, 4)}, desc="new lead dim, -1"),
        Sample((_arr(rng, (1,), dtype),), {"sizes": (5,)}, desc="(1,)->(5,)"),
    ]


def _expand_ref(x, sizes):
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return np.broadcast_to(x, shape)


def _swap_ref(x, dim0, dim1):
    return np.swapaxes(x, dim0, dim1)


def _transpose_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (2, 3, 4), dtype),), {"dim0": 0, "dim1": 2}, desc="0,2"),
        Sample((_arr(rng, (3, 4), dtype),), {"dim0": -1, "dim1": 0}, desc="-1,0"),
    ]


def _permute_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (2, 3, 4), dtype),), {"dims": (1, 2, 0)}, desc="120"),
        Sample((_arr(rng, (2, 3, 4), dtype),), {"dims": (-1, 0, 1)}, desc="negative"),
    ]


def _cat_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (2, 3), dtype), _arr(rng, (1, 3), dtype)), {"dim": 0}, desc="dim0"),
        Sample((_arr(rng, (2, 3), dtype), _arr(rng, (2, 2), dtype), _arr(rng, (2, 1), dtype)), {"dim": -1}, desc="dim-1"),
    ]


def _stack_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (2, 3), dtype), _arr(rng, (2, 3), dtype)), {"dim": 0}, desc="dim0"),
        Sample((_arr(rng, (2, 3), dtype), _arr(rng, (2, 3), dtype), _arr(rng, (2, 3), dtype)), {"dim": 2}, desc="dim2"),
        Sample((_arr(rng, (3,), dtype), _arr(rng, (3,), dtype)), {"dim": -1}, desc="dim-1"),
    ]


def _clamp_samples(dtype, rng, domain):
    def x():
        # keep away from the bounds -0.5 and 0.7, where the derivative jumps
        a = _arr(rng, (3, 4), dtype)
        for b in (-0.5, 0.7):
            a = np.where(np.abs(a - b) < 0.05, a + 0.1, a)
        return a.astype(dtype)

    return [
        Sample((x(),), {"min": -0.5, "max": 0.7}, desc="both"),
        Sample((x(),), {"min": -0.5}, desc="min"),
        Sample((x(),), {"max": 0.7}, desc="max"),
    ]


def _clamp_ref(x, min=None, max=None):  # noqa: A002
    return np.clip(x, min, max).astype(x.dtype)


def _softmax_samples(dtype, rng, domain):
    return [Sample((_arr(rng, s, dtype, (-3, 3)),), {"dim": d}, desc=f"{s},dim={d}")
            for s, d in [((3, 4), -1), ((3, 4), 0), ((2, 3, 2), 1), ((4,), 0)]] + [
        Sample((_arr(rng, (2, 3), dtype, (50, 60)),), {"dim": 1}, desc="large logits")]


def _softmax_ref(x, dim):
    z = x.astype(np.float64) - x.max(axis=dim, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=dim, keepdims=True)).astype(x.dtype)


def _log_softmax_ref(x, dim):
    z = x.astype(np.float64) - x.max(axis=dim, keepdims=True)
    return (z - np.log(np.exp(z).sum(axis=dim, keepdims=True))).astype(x.dtype)


_np_erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu_ref(x, approximate="none"):
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    else:
        y = 0.5 * x64 * (1 + _np_erf(x64 / math.sqrt(2)))
    return y.astype(x.dtype)


def _gelu_samples(dtype, rng, domain):
    return [Sample((_arr(rng, (3, 4), dtype, (-3, 3)),), {"approximate": a}, desc=a) for a in ("none", "tanh")] + [
        Sample((_arr(rng, (5,), dtype, (-3, 3)),), {}, desc="default")]


def _mse_samples(dtype, rng, domain):
    return [Sample((_arr(rng, (3, 4), dtype), _arr(rng, (3, 4), dtype)), {"reduction": r}, desc=r)
            for r in ("mean", "sum", "none")]


def _mse_ref(x, t, reduction="mean"):
    sq = (x - t) ** 2
    return {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](sq).astype(x.dtype)


def _ce_samples(dtype, rng, domain):
    return [
        Sample((_arr(rng, (4, 5), dtype, (-3, 3)), np.array([0, 4, 2, 4])), {"reduction": "mean"}, desc="mean"),
        Sample((_arr(rng, (3, 2), dtype, (-3, 3)), np.array([1, 0, 1])), {"reduction": "sum"}, desc="sum"),
        Sample((_arr(rng, (3, 4), dtype, (-3, 3)), np.array([3, 3, 0])), {"reduction": "none"}, desc="none"),
        Sample((_arr(rng, (2, 3), dtype, (40, 50)), np.array([2, 0])), {}, desc="large logits"),
    ]


def _ce_ref(logits, target, reduction="mean"):
    z = logits.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = (np.log(np.exp(z - m).sum(axis=1, keepdims=True)) + m)[:, 0]
    losses = lse - z[np.arange(len(target)), target]
    r = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](losses)
    return np.asarray(r).astype(logits.dtype)


def _relu_ref(x):
    return np.maximum(x, 0).astype(x.dtype)


def _sigmoid_ref(x):
    return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


def _erf_ref(x):
    return _np_erf(x).astype(x.dtype)


def _div_ref(x, y):
    r = np.true_divide(x, y)
    if r.dtype == F64 and not any(isinstance(a, np.ndarray) and a.dtype == F64 for a in (x, y)):
        r = r.astype(F32)  # torch: dividing integers gives the default float dtype
    return r


def _nonzero(rng, shape, dtype, domain=(-2.0, 2.0)):
    return _away_from_zero(rng, shape, dtype, (-2.0, 2.0))


# ----------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------

_ARITH_DTYPES = (F32, F64, I64)

OPS: list[OpInfo] = [
    # ---- primitives: elementwise arithmetic ----
    OpInfo("add", "primitive", lambda x, y: x + y, np.add, binary_samples(), _ARITH_DTYPES),
    OpInfo("sub", "primitive", lambda x, y: x - y, np.subtract, binary_samples(), _ARITH_DTYPES),
    OpInfo("mul", "primitive", lambda x, y: x * y, np.multiply, binary_samples(), _ARITH_DTYPES),
    OpInfo("div", "primitive", lambda x, y: x / y, _div_ref,
           binary_samples(_arr, _nonzero, scalars=(1.5, 2)), _ARITH_DTYPES),
    OpInfo("pow", "primitive", lambda x, y: x**y, np.power, _pow_samples, atol=1e-5, rtol=1e-4),
    OpInfo("maximum", "primitive", dg.maximum, np.maximum, binary_samples(_distinct, scalars=(0.25,)), _ARITH_DTYPES),
    OpInfo("minimum", "primitive", dg.minimum, np.minimum, binary_samples(_distinct, scalars=(0.25,)), _ARITH_DTYPES),
    OpInfo("neg", "primitive", lambda x: -x, np.negative, unary_samples(), _ARITH_DTYPES),
    OpInfo("exp", "primitive", dg.exp, np.exp, unary_samples(), rtol=1e-6),
    OpInfo("log", "primitive", dg.log, np.log, unary_samples(), domain=(0.2, 3.0), rtol=1e-6),
    OpInfo("tanh", "primitive", dg.tanh, np.tanh, unary_samples()),
    OpInfo("tanh_backward", "primitive", P.tanh_backward, lambda g, y: g * (1 - y * y), _tanh_backward_samples),
    OpInfo("sigmoid", "primitive", dg.sigmoid, _sigmoid_ref, unary_samples(), domain=(-4.0, 4.0)),
    OpInfo("sigmoid_backward", "primitive", P.sigmoid_backward, lambda g, y: g * (y * (1 - y)),
           _sigmoid_backward_samples),
    OpInfo("sqrt", "primitive", dg.sqrt, np.sqrt, unary_samples(), domain=(0.2, 3.0)),
    OpInfo("abs", "primitive", lambda x: x.abs(), np.abs, unary_samples(_away_from_zero), _ARITH_DTYPES),
    OpInfo("sign", "primitive", dg.sign, np.sign, unary_samples(_away_from_zero), _ARITH_DTYPES,
           differentiable=False),
    OpInfo("erf", "primitive", dg.erf, _erf_ref, unary_samples(), rtol=1e-6),
    # ---- comparisons and logic: bool results, no gradient ----
    OpInfo("lt", "primitive", lambda x, y: x < y, np.less, _cmp_samples, _ARITH_DTYPES, differentiable=False),
    OpInfo("le", "primitive", lambda x, y: x <= y, np.less_equal, _cmp_samples, _ARITH_DTYPES, differentiable=False),
    OpInfo("gt", "primitive", lambda x, y: x > y, np.greater, _cmp_samples, _ARITH_DTYPES, differentiable=False),
    OpInfo("ge", "primitive", lambda x, y: x >= y, np.greater_equal, _cmp_samples, _ARITH_DTYPES,
           differentiable=False),
    OpInfo("eq", "primitive", lambda x, y: x == y, np.equal, _cmp_samples, _ARITH_DTYPES, differentiable=False),
    OpInfo("ne", "primitive", lambda x, y: x != y, np.not_equal, _cmp_samples, _ARITH_DTYPES, differentiable=False),
    OpInfo("and", "primitive", lambda x, y: x.logical_and(y), np.logical_and, _logic_samples, (BOOL,),
           differentiable=False),
    OpInfo("or", "primitive", lambda x, y: x.logical_or(y), np.logical_or, _logic_samples, (BOOL,),
           differentiable=False),
    OpInfo("not", "primitive", lambda x: x.logical_not(), np.logical_not, unary_samples(), (BOOL,),
           differentiable=False),
    # `&`, `|`, `^`, `~`: bitwise on integers (as torch), logical on bools
    OpInfo("bitwise_and", "primitive", lambda x, y: x & y, np.bitwise_and, binary_samples(scalars=(3,)), (I64, BOOL),
           differentiable=False),
    OpInfo("bitwise_or", "primitive", lambda x, y: x | y, np.bitwise_or, binary_samples(scalars=(3,)), (I64, BOOL),
           differentiable=False),
    OpInfo("bitwise_xor", "primitive", lambda x, y: x ^ y, np.bitwise_xor, binary_samples(scalars=(3,)), (I64, BOOL),
           differentiable=False),
    OpInfo("bitwise_not", "primitive", lambda x: ~x, np.invert, unary_samples(), (I64, BOOL), differentiable=False),
    OpInfo("where", "primitive", dg.where, _where_ref, _where_samples, _ARITH_DTYPES),
    OpInfo("convert", "primitive", lambda x, dtype: P.convert(x, dtype=dtype),
           lambda x, dtype: x.astype(dtype), _convert_samples),
    OpInfo("full", "primitive", lambda shape, value, dtype: P.full(shape=shape, value=value, dtype=dtype),
           lambda shape, value, dtype: np.full(shape, value, dtype), _full_samples, _ARITH_DTYPES,
           differentiable=False),
    # ---- reductions ----
    OpInfo("reduce_sum", "primitive", lambda x, axes, keepdims: P.reduce_sum(x, axes=axes, keepdims=keepdims),
           lambda x, axes, keepdims: np.sum(x, axis=axes, keepdims=keepdims), _axes_samples, _ARITH_DTYPES),
    OpInfo("reduce_max", "primitive", lambda x, axes, keepdims: P.reduce_max(x, axes=axes, keepdims=keepdims),
           lambda x, axes, keepdims: np.max(x, axis=axes, keepdims=keepdims),
           lambda d, r, dom: _axes_samples(d, r, dom, _distinct), _ARITH_DTYPES),
    OpInfo("reduce_min", "primitive", lambda x, axes, keepdims: P.reduce_min(x, axes=axes, keepdims=keepdims),
           lambda x, axes, keepdims: np.min(x, axis=axes, keepdims=keepdims),
           lambda d, r, dom: _axes_samples(d, r, dom, _distinct), _ARITH_DTYPES),
    OpInfo("argmax", "primitive", lambda x, axis, keepdims: P.argmax(x, axis=axis, keepdims=keepdims),
           _arg_ref(np.argmax), _arg_samples, _ARITH_DTYPES, differentiable=False),
    OpInfo("argmin", "primitive", lambda x, axis, keepdims: P.argmin(x, axis=axis, keepdims=keepdims),
           _arg_ref(np.argmin), _arg_samples, _ARITH_DTYPES, differentiable=False),
    # ---- shapes ----
    OpInfo("reshape", "primitive", lambda x, shape: P.reshape(x, shape=shape),
           lambda x, shape: np.reshape(x, shape), _reshape_samples, _ARITH_DTYPES),
    OpInfo("transpose", "primitive", lambda x, perm: P.transpose(x, perm=perm),
           lambda x, perm: np.transpose(x, perm), _transpose_p_samples, _ARITH_DTYPES),
    OpInfo("broadcast_to", "primitive", lambda x, shape: P.broadcast_to(x, shape=shape),
           lambda x, shape: np.broadcast_to(x, shape), _broadcast_to_samples, _ARITH_DTYPES),
    OpInfo("concatenate", "primitive", lambda *xs, axis: P.concatenate(*xs, axis=axis),
           lambda *xs, axis: np.concatenate(xs, axis=axis), _concat_samples, _ARITH_DTYPES),
    OpInfo("matmul", "primitive", lambda a, b: a @ b, np.matmul, _matmul_samples, _ARITH_DTYPES,
           atol=1e-5, rtol=1e-5),
    # ---- indexing ----
    OpInfo("getitem", "primitive", lambda x, idx: x[idx], lambda x, idx: x[idx], _getitem_samples, _ARITH_DTYPES),
    OpInfo("index_add", "primitive", lambda base, upd, *arrays, spec: P.index_add(base, upd, *arrays, spec=spec),
           _index_add_ref, _index_add_samples, _ARITH_DTYPES),
    # ---- dynamic buffers (the tape of while-loop autodiff) ----
    OpInfo("dynamic_zeros", "primitive", lambda n, shape, dtype: P.dynamic_zeros(n, shape=shape, dtype=dtype),
           lambda n, shape, dtype: np.zeros((int(n),) + shape, dtype), _dynamic_zeros_samples, _ARITH_DTYPES,
           differentiable=False),
    OpInfo("dynamic_index", "primitive", P.dynamic_index, lambda buf, i: buf[int(i)], _dynamic_index_samples,
           _ARITH_DTYPES),
    OpInfo("dynamic_update", "primitive", P.dynamic_update, _dynamic_update_ref, _dynamic_update_samples,
           _ARITH_DTYPES),
    OpInfo("stop_gradient", "primitive", P.stop_gradient, lambda x: x, unary_samples(), _ARITH_DTYPES,
           differentiable=False),
    OpInfo("index_set", "primitive", lambda base, v, *arrays, spec: P.index_set(base, v, *arrays, spec=spec),
           _index_set_ref, _index_set_samples, _ARITH_DTYPES),
    OpInfo("const", "primitive", lambda value: P.const(value=value), lambda value: value,
           lambda d, r, dom: [Sample((), {"value": _arr(r, (2, 3), d)}, desc="2x3")], _ARITH_DTYPES,
           differentiable=False),
    OpInfo("dynamic_len", "primitive", P.dynamic_len, lambda buf: np.asarray(len(buf), np.int64),
           lambda d, r, dom: [Sample((_arr(r, (4, 2), d),), desc="4x2")], _ARITH_DTYPES, differentiable=False),
    # ---- composites ----
    OpInfo("dg.sum", "composite", dg.sum, _sum_ref, _dim_samples(), _ARITH_DTYPES),
    OpInfo("dg.mean", "composite", dg.mean, _mean_ref, _dim_samples()),
    OpInfo("Tensor.var", "composite", lambda x, **kw: x.var(**kw), _var_ref, _var_samples),
    OpInfo("dg.max", "composite", lambda x, **kw: _values(dg.max(x, **kw)), lambda x, dim, keepdim: np.max(x, axis=_np_axis(dim), keepdims=keepdim),
           _dim_samples(_distinct), _ARITH_DTYPES),
    OpInfo("dg.min", "composite", lambda x, **kw: _values(dg.min(x, **kw)), lambda x, dim, keepdim: np.min(x, axis=_np_axis(dim), keepdims=keepdim),
           _dim_samples(_distinct), _ARITH_DTYPES),
    OpInfo("dg.argmax", "composite", dg.argmax, _dg_arg_ref(np.argmax), _dg_arg_samples, _ARITH_DTYPES,
           differentiable=False),
    OpInfo("dg.argmin", "composite", dg.argmin, _dg_arg_ref(np.argmin), _dg_arg_samples, _ARITH_DTYPES,
           differentiable=False),
    OpInfo("Tensor.reshape", "composite", lambda x, shape: x.reshape(*shape), lambda x, shape: x.reshape(shape),
           _view_samples, _ARITH_DTYPES),
    OpInfo("Tensor.view", "composite", lambda x, shape: x.view(shape), lambda x, shape: x.reshape(shape),
           _view_samples, _ARITH_DTYPES),
    OpInfo("dg.transpose", "composite", dg.transpose, _swap_ref, _transpose_samples, _ARITH_DTYPES),
    OpInfo("Tensor.T", "composite", lambda x: x.T, lambda x: x.T, unary_samples(), _ARITH_DTYPES),
    OpInfo("Tensor.permute", "composite", lambda x, dims: x.permute(*dims),
           lambda x, dims: np.transpose(x, [d % x.ndim for d in dims]), _permute_samples, _ARITH_DTYPES),
    OpInfo("dg.squeeze", "composite", dg.squeeze, _squeeze_ref, _squeeze_samples, _ARITH_DTYPES),
    OpInfo("dg.unsqueeze", "composite", dg.unsqueeze, lambda x, dim: np.expand_dims(x, dim), _unsqueeze_samples,
           _ARITH_DTYPES),
    OpInfo("Tensor.expand", "composite", lambda x, sizes: x.expand(*sizes), _expand_ref, _expand_samples,
           _ARITH_DTYPES),
    OpInfo("dg.cat", "composite", lambda *xs, dim: dg.cat(list(xs), dim=dim),
           lambda *xs, dim: np.concatenate(xs, axis=dim), _cat_samples, _ARITH_DTYPES),
    OpInfo("dg.stack", "composite", lambda *xs, dim: dg.stack(list(xs), dim=dim),
           lambda *xs, dim: np.stack(xs, axis=dim), _stack_samples, _ARITH_DTYPES),
    OpInfo("dg.relu", "composite", dg.relu, _relu_ref, unary_samples(_away_from_zero), _ARITH_DTYPES),
    OpInfo("dg.clamp", "composite", dg.clamp, _clamp_ref, _clamp_samples),
    OpInfo("dg.softmax", "composite", dg.softmax, _softmax_ref, _softmax_samples, atol=1e-6, rtol=1e-5),
    OpInfo("dg.log_softmax", "composite", dg.log_softmax, _log_softmax_ref, _softmax_samples),
    OpInfo("F.gelu", "composite", F.gelu, _gelu_ref, _gelu_samples, rtol=1e-5, atol=1e-6),
    OpInfo("F.mse_loss", "composite", F.mse_loss, _mse_ref, _mse_samples),
    OpInfo("F.cross_entropy", "composite", F.cross_entropy, _ce_ref, _ce_samples, rtol=1e-5, atol=1e-5),
    OpInfo("Tensor.float", "composite", lambda x: x.float(), lambda x: x.astype(np.float32), unary_samples(),
           (F32, I64), differentiable=False),  # a cast to float32 cannot be gradchecked in float64
    OpInfo("Tensor.double", "composite", lambda x: x.double(), lambda x: x.astype(np.float64), unary_samples(),
           (F32, F64, I64)),
]

from .op_table_breadth import BREADTH_OPS  # noqa: E402 - issue 10: op breadth, conv, pooling

OPS.extend(BREADTH_OPS)

OPS_BY_NAME = {info.name: info for info in OPS}
assert len(OPS_BY_NAME) == len(OPS), "op table names must be unique"
