"""dg.compile: the signature cache, fallbacks, errors, backends, gradients, threads."""
import os
import threading
import warnings

import numpy as np
import pytest

import dualgraph as dg
from dualgraph.compile.api import CompileWarning
from dualgraph.eager.tensor import Tensor
from dualgraph.ops.registry import PRIMITIVES

# shapes kept tiny and programs few: every distinct kernel is a numba compilation


def _f(x, y):
    return dg.tanh(x) * y + 1.0


def test_cache_info_hits_misses_traces():
    cf = dg.compile(_f)
    x, y = dg.randn(5), dg.randn(5)
    np.testing.assert_allclose(cf(x, y).numpy(), _f(x, y).numpy(), rtol=1e-5, atol=1e-6)
    cf(x, y)
    cf(dg.randn(5), dg.randn(5))
    assert cf.cache_info()["traces"] == 1
    assert cf.cache_info()["hits"] == 2
    assert cf.cache_info()["misses"] == 1
    # a new shape retraces; the old one still hits
    cf(dg.randn(2), dg.randn(2))
    cf(x, y)
    info = cf.cache_info()
    assert (info["traces"], info["misses"], info["hits"]) == (2, 2, 3)


def test_static_args_and_kwargs_are_part_of_the_key():
    cf = dg.compile(lambda x, k, scale=1.0: x * k + scale, backend="interpreter")
    x = dg.ones(3)
    assert cf(x, 2).numpy().tolist() == [3, 3, 3]
    assert cf(x, 3).numpy().tolist() == [4, 4, 4]
    assert cf(x, 3, scale=0.5).numpy().tolist() == [3.5, 3.5, 3.5]
    assert cf(x, 3, scale=0.5).numpy().tolist() == [3.5, 3.5, 3.5]
    assert cf.cache_info()["traces"] == 3
    # pytrees in and out
    cf2 = dg.compile(lambda d: {"s": d["a"] + d["b"], "p": (d["a"] * 2,)}, backend="interpreter")
    out = cf2({"a": dg.ones(2), "b": dg.ones(2)})
    assert out["s"].numpy().tolist() == [2, 2] and out["p"][0].numpy().tolist() == [2, 2]


def test_retrace_warning_names_the_changing_argument():
    cf = dg.compile(lambda x, n: x * n, backend="interpreter")
    x = dg.ones(2)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for n in range(12):
            cf(x, n)
    msgs = [str(m.message) for m in w if issubclass(m.category, CompileWarning)]
    assert len(msgs) == 1
    assert "retraced 9 times" in msgs[0] and "argument 1" in msgs[0]


def _python_if(x):
    if x.sum().item() > 0:  # a tensor's value as a Python number: not capturable
        return x * 2
    return x


def test_fullgraph_false_runs_eagerly_with_one_warning():
    cf = dg.compile(_python_if)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        a = cf(dg.ones(3))
        b = cf(dg.ones(3))
    assert a.numpy().tolist() == [2, 2, 2] and b.numpy().tolist() == [2, 2, 2]
    msgs = [str(m.message) for m in w if issubclass(m.category, CompileWarning)]
    assert len(msgs) == 1
    assert "test_compile_api.py:" in msgs[0] and "running eagerly" in msgs[0]


def test_fullgraph_true_raises_compile_error_with_line():
    cf = dg.compile(_python_if, fullgraph=True)
    with pytest.raises(dg.CompileError, match=r"test_compile_api\.py:\d+"):
        cf(dg.ones(3))


def test_missing_lowering_names_op_and_line(monkeypatch):
    monkeypatch.setattr(PRIMITIVES["erf"], "lowering", None)

    def f(x):
        return dg.erf(x) + 1  # the line the error names

    with pytest.raises(dg.CompileError, match=r"`erf`.*test_compile_api\.py:\d+"):
        dg.compile(f, fullgraph=True)(dg.ones(2))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = dg.compile(f)(dg.ones(2))
    np.testing.assert_allclose(out.numpy(), f(dg.ones(2)).numpy())
    assert any("erf" in str(m.message) for m in w)


def test_interpreter_backend_matches():
    x, y = dg.randn(3), dg.randn(3)
    cf = dg.compile(_f, backend="interpreter")
    np.testing.assert_allclose(cf(x, y).numpy(), _f(x, y).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        dg.compile(_f, backend="xla")


def test_requires_grad_gives_eager_gradients():
    cf = dg.compile(_f)
    x = dg.randn(5, requires_grad=True)
    y = dg.randn(5)
    out = cf(x, y).sum()
    out.backward()
    x2 = x.detach().requires_grad_()
    _f(x2, y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-5, atol=1e-6)
    # with no_grad the kernel runs (same key: requires_grad is part of it)
    with dg.no_grad():
        np.testing.assert_allclose(cf(x, y).numpy(), _f(x2, y).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_grad_of_a_while_loop_compiles():
    def loss(x):
        y = dg.fori_loop(0, 5, lambda i, r: r * r * 0.5 + 0.1, x)
        return (y * y).sum()

    g = dg.compile(dg.grad(loss), fullgraph=True)
    x = dg.randn(4, dtype=dg.float64)
    np.testing.assert_allclose(g(x).numpy(), dg.grad(loss)(x).numpy(), rtol=1e-12)


def test_threads_share_a_compiled_function():
    cf = dg.compile(_f)
    x, y = dg.randn(5), dg.randn(5)
    want = _f(x, y).numpy()
    cf(x, y)
    errors = []

    def work():
        try:
            for _ in range(50):
                np.testing.assert_allclose(cf(x, y).numpy(), want, rtol=1e-5, atol=1e-6)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert cf.cache_info()["traces"] == 1


def test_called_inside_a_trace_inlines():
    inner = dg.compile(lambda x: x * 3)
    g = dg.trace(lambda x: inner(x) + 1, dg.ones(2))
    assert [e.name for e in g.ops] == ["mul", "add"]


def test_prange_kernels(monkeypatch):
    """Above the size threshold the prange variant (forced here; by default it is timed
    against the serial one on the first calls) gives the same results, from threads too."""
    monkeypatch.setenv("DUALGRAPH_PARALLEL", "1")

    def f(x):
        y = 0.5 * x * (1 + dg.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))
        return dg.softmax(y, 1), y.sum(1)

    cf = dg.compile(f, fullgraph=True)
    x = dg.randn(16, 1024)
    got = cf(x)
    (entry,) = cf._cache.values()
    assert entry.kernel.parallel and "prange(" in entry.kernel.source
    want = f(x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
    errors = []

    def work():
        try:
            for _ in range(5):
                np.testing.assert_allclose(cf(x)[0].numpy(), want[0].numpy(), rtol=1e-5, atol=1e-6)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


@pytest.mark.parametrize("background", ["1", "0"])
def test_autotune_picks_a_variant(monkeypatch, background):
    """The prange variant compiles in a background thread after the first call (inline with
    DUALGRAPH_BACKGROUND_COMPILE=0); calls meanwhile run the serial kernel; once it is
    compiled the first calls time both and keep one."""
    monkeypatch.setenv("DUALGRAPH_BACKGROUND_COMPILE", background)
    cf = dg.compile(lambda x: dg.exp(x) * 2.0, fullgraph=True)
    x = dg.randn(1 << 14)
    want = (dg.exp(x) * 2.0).numpy()
    for _ in range(2):
        np.testing.assert_allclose(cf(x).numpy(), want, rtol=1e-5, atol=1e-6)
    (entry,) = cf._cache.values()
    k = entry.kernel
    assert k._tune is not None and "job" in k._tune and not k.parallel
    k.wait_compiles()
    assert k._tune["job"].fn is not None
    for _ in range(14):
        np.testing.assert_allclose(cf(x).numpy(), want, rtol=1e-5, atol=1e-6)
    assert k._tune["n"] > 13 and k._tune["next"] > 0  # decided after the first calls
    assert ("prange(" in k.source) == k.parallel
    # the choice is timed again later (the machine's load changes): force it due now
    period = k._tune["period"]
    k._tune["next"] = 0.0
    for _ in range(12):
        np.testing.assert_allclose(cf(x).numpy(), want, rtol=1e-5, atol=1e-6)
    assert k._tune["n"] > 13 and k._tune["next"] > 0 and len(k._tune["par"]) == 4
    assert k._tune["period"] in (period, 2 * period, 1.0)
    assert ("prange(" in k.source) == k.parallel


def test_kernel_numba_rejects_falls_back(monkeypatch):
    """A lowering that produces code numba cannot compile: CompileError naming the kernel
    with fullgraph=True; one warning and the eager result with fullgraph=False."""
    from dualgraph.ops.lowering import Elementwise

    bad = Elementwise(lambda c, a, dt: f"undefined_fn({a[0]})")
    monkeypatch.setattr(PRIMITIVES["neg"], "lowering", bad)
    x = dg.tensor(np.array([1.0, -2.0], np.float32))
    with pytest.raises(dg.CompileError, match="numba could not compile"):
        dg.compile(lambda t: -t * 3.0, fullgraph=True)(x)
    cf = dg.compile(lambda t: -t * 3.0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert cf(x).numpy().tolist() == [-3.0, 6.0]
        assert cf(x).numpy().tolist() == [-3.0, 6.0]
    assert len([m for m in w if issubclass(m.category, CompileWarning)]) == 1


def test_python_numbers_returned_as_is_and_scalar_inputs():
    def fn(x, s):
        return x * s, (x > s).sum(), 3.0, s + 1

    x, s = dg.tensor(np.arange(6).reshape(2, 3)), dg.tensor(np.array(2))
    got, want = dg.compile(fn, fullgraph=True)(x, s), fn(x, s)
    assert got[2] == 3.0 and isinstance(got[2], float)
    for i in (0, 1, 3):
        assert got[i].dtype == want[i].dtype
        np.testing.assert_array_equal(got[i].numpy(), want[i].numpy())
    # no tensor arguments; a transposed (non-contiguous) argument
    assert dg.compile(lambda: dg.ones(3) * 2)().numpy().tolist() == [2, 2, 2]
    base = dg.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    h = dg.compile(lambda a: a * 2 + 1)
    for _ in range(2):
        np.testing.assert_array_equal(h(base.T).numpy(), (base.T * 2 + 1).numpy())



def test_hot_path_takes_only_numbas_c_arrays():
    """After the first calls a cache hit calls the kernel directly; a value numba would type
    as another array type (transposed, read-only, unaligned) goes through the checked path
    (copied to a C array) instead: right values, and no second numba specialization."""
    h = dg.compile(lambda a, b: a * b + 1)
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    ro = base.copy()
    ro.flags.writeable = False
    raw = np.zeros(12 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(3, 4)  # unaligned
    raw[...] = base
    b = dg.tensor(np.full((3, 4), 2, np.float32))
    cases = [base, np.ascontiguousarray(base.T).T, ro, raw, base.copy()]
    for _ in range(3):
        for v in cases:
            got = h(dg.tensor(base) if v is base else Tensor._make(v), b)
            np.testing.assert_array_equal(got.numpy(), np.asarray(v) * 2 + 1)
    (entry,) = h._cache.values()
    assert len(entry.kernel.fn.signatures) == 1
    assert h.cache_info()["traces"] == 1

def test_blas_threads_released_when_no_parallel_kernel_is_kept(monkeypatch):
    from dualgraph.compile import kernel as K

    calls = []
    monkeypatch.setattr(K, "_blas_capped", True)
    monkeypatch.setattr(K, "_blas_saved", [(calls.append, 2)])
    monkeypatch.setattr(K, "_parallel_in_use", True)
    K.release_blas_threads()  # a kernel runs its prange variant: the cap stays
    assert calls == [] and K._blas_capped
    monkeypatch.setattr(K, "_parallel_in_use", False)
    K.release_blas_threads()  # only tried, serial kept: BLAS gets its threads back
    assert calls == [2] and not K._blas_capped and K._blas_saved == []


def test_passive_omp_threads(monkeypatch):
    """Before numba's OpenMP threads start, dualgraph asks libgomp for sleeping (not spinning)
    worker threads, unless the user chose a policy."""
    from dualgraph.compile.kernel import passive_omp_threads

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    passive_omp_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    passive_omp_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_random_draws_are_not_frozen_into_a_compiled_function():
    # a draw under a trace ran once and became a constant: the same "random" numbers at
    # every call (a dropout mask that never changed); now the trace refuses it
    x = dg.zeros(4)
    draws = [lambda x: x + dg.randn(4), lambda x: x + dg.rand(4), lambda x: x + dg.randn_like(x),
             lambda x: x + dg.rand_like(x), lambda x: x + dg.randint(0, 1000, (4,)),
             lambda x: x + dg.randperm(4), lambda x: x + dg.empty(4).uniform_(),
             lambda x: x + dg.empty(4).normal_()]
    for fn in draws:
        with pytest.raises(dg.CompileError, match="random numbers cannot be traced.*\n  at .*test_compile_api"):
            dg.compile(fn, fullgraph=True)(x)
        cf = dg.compile(fn)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            dg.manual_seed(3)
            got = [cf(x).numpy() for _ in range(3)]
        assert any("random numbers cannot be traced" in str(m.message) for m in w)
        dg.manual_seed(3)
        want = [fn(x).numpy() for _ in range(3)]  # eagerly: the same generator, the same draws
        for g, e in zip(got, want):
            np.testing.assert_array_equal(g, e)
        assert not np.array_equal(got[0], got[1]) or not np.array_equal(got[1], got[2])


def test_in_place_write_to_a_leaf_that_requires_grad_raises_as_eagerly():
    # the trace's argument stands for the caller's leaf: compiled code wrote it in place (and
    # gave a gradient) where eager code raises; under no_grad the write is allowed, as eagerly
    def f(w):
        w.add_(1.0)
        return (w * 2).sum()

    def step(w, g):
        with dg.no_grad():
            w -= 0.5 * g
        return (w * w).sum()

    for fullgraph in (False, True):
        w = dg.tensor(np.ones(3, np.float32), requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            dg.compile(f, fullgraph=fullgraph)(w)
        assert w.detach().numpy().tolist() == [1.0, 1.0, 1.0] and w.grad is None
        cs = dg.compile(step, fullgraph=fullgraph)
        w2 = dg.tensor(np.ones(3, np.float32), requires_grad=True)
        for _ in range(2):
            cs(w2, dg.tensor(np.ones(3, np.float32)))
        assert w2.detach().numpy().tolist() == [0.0, 0.0, 0.0]
    with dg.no_grad():  # the caller's no_grad: allowed eagerly, so compiled too
        w = dg.tensor(np.ones(3, np.float32), requires_grad=True)
        assert dg.compile(f)(w).item() == 12.0 and w.detach().numpy().tolist() == [2.0, 2.0, 2.0]
