"""The op table, traced: for every entry of ``tests/op_table.OPS``

* eager result == interpreter(trace) result, bit for bit, and the traced graph's output
  types (the shape rules) are the types the eager numpy implementation produces;
* the traced graph passes the verifier;
* IR-autodiff gradients (``dg.trace(dg.grad(f))`` and ``vjp_graph(dg.trace(f))``) ==
  eager tape gradients, in float64.

Array arguments of a sample become graph inputs; Python scalars and keyword arguments
are static (fixed at trace time), as ``dg.trace`` specifies.
"""
import numpy as np
import pytest

import dualgraph as dg
from dualgraph.static import vjp_graph, verify

from .op_table import F64, OPS, Sample

# What cannot be traced, by design, with the error that says so: {(op name, sample desc): match}
UNTRACEABLE = {}


def _cases(infos, dtypes=None):
    for info in infos:
        for dt in dtypes or info.dtypes:
            yield pytest.param(info, np.dtype(dt), id=f"{info.name}-{np.dtype(dt).name}")


def split_args(s: Sample):
    """(array positions, a function of the arrays only with the static arguments bound)."""
    pos = [i for i, a in enumerate(s.args) if isinstance(a, np.ndarray)]

    def bind(op):
        def fn(*arrays):
            args = list(s.args)
            for i, a in zip(pos, arrays):
                args[i] = a
            return op(*args, **s.kwargs)

        return fn

    return pos, bind


def _tensors(arrays, requires_grad=False):
    return [dg.tensor(a, requires_grad=requires_grad) for a in arrays]


def _np(t):
    return t.detach().numpy()


def _same(got, want, msg):
    assert got.shape == want.shape, f"{msg}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{msg}: dtype {got.dtype} != {want.dtype}"
    np.testing.assert_array_equal(got, want, err_msg=msg)


def _aval_matches(aval, arr):
    dims_ok = len(aval.shape) == arr.ndim and all(d is None or d == n for d, n in zip(aval.shape, arr.shape))
    return dims_ok and aval.dtype == arr.dtype


@pytest.mark.parametrize("info, dtype", list(_cases(OPS)))
def test_eager_equals_interpreter(info, dtype):
    for s in info.samples(dtype):
        pos, bind = split_args(s)
        fn = bind(info.op)
        arrays = [s.args[i] for i in pos]
        key = (info.name, s.desc)
        if key in UNTRACEABLE:
            with pytest.raises(Exception, match=UNTRACEABLE[key]):
                dg.trace(fn, *_tensors(arrays))
            continue
        eager = fn(*_tensors(arrays))
        g = dg.trace(fn, *_tensors(arrays))
        verify(g)
        assert len(g.inputs) == len(arrays), s.desc
        outs = g(*_tensors(arrays))
        eager_l = list(eager) if isinstance(eager, tuple) else [eager]
        outs_l = list(outs) if isinstance(outs, tuple) else [outs]
        assert len(outs_l) == len(eager_l) == len(g.outputs)
        for k, (e, o, v) in enumerate(zip(eager_l, outs_l, g.outputs)):
            _same(_np(o), _np(e), f"{info.name} {s.desc} output {k}")
            assert _aval_matches(v.aval, _np(e)), (
                f"{info.name} {s.desc}: traced type {v.aval.str_short()} but eager gives "
                f"{_np(e).dtype}{list(_np(e).shape)}"
            )


def _grad_samples(info):
    out = []
    for s in info.samples(F64):
        if not s.gradcheck:
            continue
        diff = s.diff_indices()
        if not diff or (info.name, s.desc) in UNTRACEABLE:
            continue
        out.append(s)
    return out


DIFF_OPS = [o for o in OPS if o.differentiable]


@pytest.mark.parametrize("info", DIFF_OPS, ids=[o.name for o in DIFF_OPS])
def test_ir_autodiff_equals_eager(info):
    samples = _grad_samples(info)
    assert samples, f"{info.name}: no sample to differentiate"
    rng = np.random.default_rng(7)
    for s in samples:
        pos, bind = split_args(s)
        fn = bind(info.op)
        arrays = [s.args[i] for i in pos]
        wrt = [pos.index(i) for i in s.diff_indices()]  # positions among the graph inputs
        # eager tape: the VJP of the op at a random cotangent
        xs = _tensors(arrays)
        for k in wrt:
            xs[k] = xs[k].detach().requires_grad_()
        out = fn(*xs)
        assert out.dtype == np.float64, f"{info.name} {s.desc}: gradients are compared in float64"
        ct_np = rng.normal(size=out.shape)
        ref = dg.autograd.grad([out], [xs[k] for k in wrt], [dg.tensor(ct_np)], allow_unused=True)
        ref = [np.zeros(arrays[k].shape) if r is None else _np(r) for k, r in zip(wrt, ref)]
        ct = dg.tensor(ct_np)

        # route 1: the tape under the tracer, dg.trace(dg.grad(f))
        def objective(*arrays):
            return (fn(*arrays) * ct).sum()

        g1 = verify(dg.trace(dg.grad(objective, argnums=tuple(wrt)), *_tensors(arrays)))
        got1 = g1(*_tensors(arrays))
        got1 = list(got1) if isinstance(got1, tuple) else [got1]

        # route 2: the backward graph of the forward graph
        g2 = verify(vjp_graph(dg.trace(fn, *_tensors(arrays)), wrt=wrt))
        res = g2(*_tensors(arrays), ct)
        value, got2 = res[0], list(res[1:])
        np.testing.assert_array_equal(_np(value), _np(out))

        # a gradient has its input's type, statically too
        for k in wrt:
            assert g1.outputs[wrt.index(k)].aval == g1.inputs[k].aval, f"{info.name} {s.desc}"
            assert g2.outputs[1 + wrt.index(k)].aval == g2.inputs[k].aval, f"{info.name} {s.desc}"
        for k, r in enumerate(ref):
            msg = f"{info.name} {s.desc}, d/d arg {s.diff_indices()[k]}"
            np.testing.assert_allclose(_np(got1[k]), r, rtol=1e-12, atol=1e-14, err_msg="trace(grad) " + msg)
            np.testing.assert_allclose(_np(got2[k]), r, rtol=1e-12, atol=1e-14, err_msg="vjp_graph " + msg)
            assert got1[k].dtype == got2[k].dtype == np.dtype(arrays[wrt[k]].dtype), msg


SECOND_ORDER = [o for o in DIFF_OPS if o.second_order]


@pytest.mark.parametrize("info", SECOND_ORDER, ids=[o.name for o in SECOND_ORDER])
def test_ir_second_order_equals_eager(info):
    # d/dx <grad_x <f(x), ct>, w>: grad of grad traced, against grad of grad on the tape
    rng = np.random.default_rng(11)
    for s in _grad_samples(info)[:3]:
        pos, bind = split_args(s)
        fn = bind(info.op)
        arrays = [s.args[i] for i in pos]
        wrt = tuple(pos.index(i) for i in s.diff_indices())
        out = fn(*_tensors(arrays))
        ct = dg.tensor(rng.normal(size=out.shape))
        ws = [dg.tensor(rng.normal(size=arrays[k].shape)) for k in wrt]

        def inner(*arrays):
            gs = dg.grad(lambda *a: (fn(*a) * ct).sum(), argnums=wrt)(*arrays)
            return dg.sum(dg.stack([(g * w).sum() for g, w in zip(gs, ws)]))

        outer = dg.grad(inner, argnums=wrt)
        eager = outer(*_tensors(arrays))
        traced = verify(dg.trace(outer, *_tensors(arrays)))(*_tensors(arrays))
        for k, (e, t) in enumerate(zip(eager, traced)):
            np.testing.assert_allclose(_np(t), _np(e), rtol=1e-12, atol=1e-14,
                                       err_msg=f"{info.name} {s.desc} arg {wrt[k]}")


def test_traced_bool_mask_index_raises_clearly():
    # a constant mask is static (see the getitem samples); a traced one has a data-dependent
    # result shape
    x = dg.tensor(np.arange(6.0).reshape(2, 3))
    with pytest.raises(IndexError, match="dg.where"):
        dg.trace(lambda x, m: x[m], x, dg.tensor(np.array([True, False])))
    g = dg.trace(lambda x: x[np.array([True, False])], x)
    np.testing.assert_array_equal(g(x).numpy(), [[0.0, 1.0, 2.0]])
