"""dg.compile's tiered start (compile/kernel.py, ``Kernel._tier``): while numba compiles a
kernel in a background thread, calls run the optimized graph in the interpreter and give
eager's values, errors and gradients; once the kernel is ready, calls run it.

Every test here holds the background compile at a gate until it has checked the
interpreted calls, so nothing depends on how fast numba compiles."""
import sys
import threading

import numpy as np
import pytest

import dualgraph as dg
from dualgraph.compile import kernel as K
from dualgraph.compile.api import CompileWarning
from dualgraph.compile.codegen import CompileError


@pytest.fixture
def gate(monkeypatch, tmp_path):
    """Tiered start on, a fresh kernel cache (so the kernels must compile), serial kernels
    only; the background compiles wait until ``gate.set()``."""
    monkeypatch.setenv("DUALGRAPH_TIERED", "1")
    monkeypatch.setenv("DUALGRAPH_PARALLEL", "0")
    monkeypatch.setenv("DUALGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(K, "_TIER_SHARE", float("inf"))  # every call interpreted until ready
    K.join_background_compiles()  # no compile of an earlier test still running
    ev = threading.Event()
    ev.kernels = []  # every Kernel made during the test
    run, init = K._VariantJob._run, K.Kernel.__init__

    def gated(self):
        assert ev.wait(120), "test gate never opened"
        run(self)

    def kernel_init(self, *a, **kw):
        init(self, *a, **kw)
        ev.kernels.append(self)

    monkeypatch.setattr(K._VariantJob, "_run", gated)
    monkeypatch.setattr(K.Kernel, "__init__", kernel_init)
    yield ev
    ev.set()
    K.join_background_compiles()


def _kernels(cf):
    """The kernels of ``cf`` that run: the forward and backward of a call with gradients,
    else the plain one."""
    ks = []
    for e in cf._cache.values():
        if e.aot:
            ks += [e.aot.fwd_kernel, e.aot.bwd_kernel]
        elif e.kernel is not None:
            ks.append(e.kernel)
    return ks


def _ready(cf):
    for k in _kernels(cf):
        k.wait_compiles()


def test_interpreted_calls_then_the_kernel(gate):
    def f(x, y):
        return dg.tanh(x) * y + dg.exp(-x).sum()

    cf = dg.compile(f, fullgraph=True)
    x, y = dg.randn(64), dg.randn(64)
    want = f(x, y).numpy()
    for _ in range(3):  # the kernel is not there yet: each call is interpreted
        got = cf(x, y)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    (k,) = _kernels(cf)
    assert k.fn is None and k._job is not None and not k._job.done.is_set()
    assert cf.cache_info()["traces"] == 1 and cf.cache_info()["interpreted"] == 3
    # the GIL's switch interval is short while interpreted calls share it with the compile
    assert sys.getswitchinterval() == pytest.approx(K._SWITCH)
    gate.set()
    k.wait_compiles()
    assert sys.getswitchinterval() == pytest.approx(0.005)  # and back to Python's default after it
    got = cf(x, y)  # the kernel's first call
    assert k.fn is not None and not k._first
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cf(x, y).numpy(), want, rtol=1e-5, atol=1e-6)  # the hot path
    assert cf.cache_info()["traces"] == 1
    assert len(k.fn.signatures) == 1  # the background compile's signature is the call's
    assert cf.cache_info()["interpreted"] == 3


def test_outputs_are_fresh_arrays(gate):
    """An interpreted output never shares memory with an argument or another output (a
    kernel's are fresh arrays): a later in-place write cannot reach the other."""
    cf = dg.compile(lambda x: (x, x.reshape(2, 3), x.T.T, x * 1.0))
    x = dg.arange(6, dtype="float32")
    outs = cf(x)
    arrays = [x.numpy()] + [o.numpy() for o in outs]
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            assert not np.shares_memory(arrays[i], arrays[j]), (i, j)
    assert all(a.flags.c_contiguous for a in arrays)
    outs[0].add_(1)
    assert x.numpy().tolist() == [0, 1, 2, 3, 4, 5]


def test_errors_are_eagers_while_interpreted(gate):
    cf = dg.compile(lambda x, i: x[i] * 2.0)
    x = dg.arange(4, dtype="float32")
    assert cf(x, dg.tensor(np.array([1, 3]))).numpy().tolist() == [2, 6]
    with pytest.raises(IndexError):
        cf(x, dg.tensor(np.array([7, 0])))
    (k,) = _kernels(cf)
    assert k.fn is None  # both calls were interpreted
    gate.set()
    k.wait_compiles()
    with pytest.raises(IndexError):  # and the kernel's run-time check: the same error
        cf(x, dg.tensor(np.array([0, 7])))
    assert cf(x, dg.tensor(np.array([0, 2]))).numpy().tolist() == [0, 4]


def test_gradients_while_interpreted_and_mixed(gate):
    """A compiled function inside eager code: forward and backward kernels both
    interpreted, then compiled, with eager's gradients each time."""
    def f(w, x):
        return dg.tanh(x @ w).sum()

    cf = dg.compile(f)
    rng = np.random.default_rng(0)
    xv, wv = rng.standard_normal((4, 3)).astype("float32"), rng.standard_normal((3, 2)).astype("float32")

    def grads(fn):
        w = dg.tensor(wv, requires_grad=True)
        loss = fn(w, dg.tensor(xv)) * 3.0
        loss.backward()
        return loss.item(), w.grad.numpy()

    want = grads(f)
    got = grads(cf)
    (fk, bk) = _kernels(cf)
    assert fk.fn is None and bk.fn is None
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)
    gate.set()
    _ready(cf)
    got = grads(cf)
    assert fk.fn is not None and bk.fn is not None
    assert len(fk.fn.signatures) == len(bk.fn.signatures) == 1
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)


def test_in_place_training_step_applies_once_per_call(gate):
    """A step that updates its parameter argument in place, run by the interpreter, then by
    the kernel: each call updates the parameter exactly once, as eagerly."""
    rng = np.random.default_rng(1)
    wv = rng.standard_normal((3, 2)).astype("float32")
    x = dg.tensor(rng.standard_normal((5, 3)).astype("float32"))

    def step(w, x):
        loss, g = dg.value_and_grad(lambda w: ((x @ w) ** 2).mean())(w)
        w.sub_(0.1 * g)
        return loss

    w_e, w_c = dg.tensor(wv.copy()), dg.tensor(wv.copy())
    buf = w_c._value
    cf = dg.compile(step, fullgraph=True)
    for i in range(4):
        if i == 2:
            used = [k for k in gate.kernels if k._job is not None]
            assert used and all(k.fn is None for k in used)  # interpreted so far
            gate.set()
            K.join_background_compiles()
        le, lc = step(w_e, x), cf(w_c, x)
        np.testing.assert_allclose(lc.item(), le.item(), rtol=1e-5)
        np.testing.assert_allclose(w_c.numpy(), w_e.numpy(), rtol=1e-5, atol=1e-7)
    assert all(k.fn is not None for k in used)  # the kernels ran the last two steps
    assert cf.cache_info()["interpreted"] == 2
    assert w_c._value is buf  # written in place


def test_two_threads_during_the_compile(gate):
    cf = dg.compile(lambda x: dg.sigmoid(x) * 2.0)
    xs = [dg.randn(100) for _ in range(4)]
    wants = [(dg.sigmoid(x) * 2.0).numpy() for x in xs]
    errors = []

    def worker(k):
        try:
            for _ in range(20):
                np.testing.assert_allclose(cf(xs[k]).numpy(), wants[k], rtol=1e-5, atol=1e-6)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in ths:
        th.start()
    gate.set()  # the kernel arrives while the threads call
    for th in ths:
        th.join()
    assert not errors
    (k,) = _kernels(cf)
    k.wait_compiles()
    np.testing.assert_allclose(cf(xs[0]).numpy(), wants[0], rtol=1e-5, atol=1e-6)
    assert k.fn is not None


@pytest.mark.parametrize("fullgraph", [True, False])
def test_a_failed_background_compile_is_reported(gate, monkeypatch, fullgraph):
    """numba rejecting the kernel in the background: the next call raises CompileError with
    fullgraph=True, else warns once and runs eagerly from then on."""
    def broken(source, fname="kernel"):
        raise RuntimeError("numba said no")

    monkeypatch.setattr(K.cache, "load", broken)
    cf = dg.compile(lambda x: x * 3.0 + 1.0, fullgraph=fullgraph)
    x = dg.ones(3)
    assert cf(x).numpy().tolist() == [4, 4, 4]  # interpreted
    gate.set()
    K.join_background_compiles()
    if fullgraph:
        with pytest.raises(CompileError, match="numba said no"):
            cf(x)
    else:
        with pytest.warns(CompileWarning, match="numba said no"):
            assert cf(x).numpy().tolist() == [4, 4, 4]
        assert cf(x).numpy().tolist() == [4, 4, 4]


def test_off_and_warm_kernels_load_at_once(monkeypatch, tmp_path):
    """``DUALGRAPH_TIERED=0``: the first call waits for numba.  A kernel already in numba's
    disk cache (numba imported) loads at once too: no interpreted calls."""
    monkeypatch.setenv("DUALGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("DUALGRAPH_PARALLEL", "0")
    monkeypatch.setenv("DUALGRAPH_TIERED", "0")
    f = lambda x: dg.exp(x) + 2.0  # noqa: E731
    cf = dg.compile(f)
    cf(dg.ones(4))
    (k,) = _kernels(cf)
    assert k.fn is not None and k._job is None
    monkeypatch.setenv("DUALGRAPH_TIERED", "1")
    assert not K.tiered_start(k.source)  # in numba's disk cache now
    cf2 = dg.compile(f)
    cf2(dg.ones(4))
    (k2,) = _kernels(cf2)
    assert k2.fn is not None and k2._job is None


def test_a_long_interpreted_loop_gives_way_to_the_kernel(monkeypatch, tmp_path):
    """An interpreted call is given up at its next loop iteration once the kernel is ready:
    a loop the interpreter would run for many seconds does not outlast the compile."""
    monkeypatch.setenv("DUALGRAPH_TIERED", "1")
    monkeypatch.setenv("DUALGRAPH_PARALLEL", "0")
    monkeypatch.setenv("DUALGRAPH_CACHE_DIR", str(tmp_path))

    def f(x):
        for _ in range(300000):  # ~10 s in the interpreter, under a second compiled
            x = x * 0.5 + 1.0
        return x

    cf = dg.compile(f, fullgraph=True)
    got = cf(dg.zeros(4))
    (k,) = [e.kernel for e in cf._cache.values()]
    assert k.fn is not None and not k._first  # the kernel ran this first call
    np.testing.assert_allclose(got.numpy(), [2.0] * 4, rtol=1e-6)


def test_abandon_when_stops_a_run_at_its_next_graph():
    from dualgraph.static.interpreter import Abandoned, abandon_when

    g = dg.trace(lambda x: dg.fori_loop(0, 1000, lambda i, r: r + 1.0, x), dg.zeros(2))
    seen = []

    def pred():
        seen.append(1)
        return len(seen) > 5

    with pytest.raises(Abandoned), abandon_when(pred):
        g(dg.zeros(2))
    assert len(seen) == 6  # checked at each graph run (the loop's cond and body), stopped at once
    assert g(dg.zeros(2)).numpy().tolist() == [1000.0, 1000.0]  # outside the block: runs


def test_calls_after_the_first_wait_once_the_interpreter_had_its_share(gate, monkeypatch):
    """By default the first call is interpreted and later calls wait for the kernel when
    the interpreter has already taken its share of the compile's time (here: none)."""
    monkeypatch.setattr(K, "_TIER_SHARE", 0.0)
    cf = dg.compile(lambda x: dg.exp(x) - 1.0)
    x = dg.randn(8)
    want = (dg.exp(x) - 1.0).numpy()
    np.testing.assert_allclose(cf(x).numpy(), want, rtol=1e-5, atol=1e-6)
    (k,) = _kernels(cf)
    assert k.fn is None and k.n_interpreted == 1
    threading.Timer(0.2, gate.set).start()  # the compile may proceed a little later
    np.testing.assert_allclose(cf(x).numpy(), want, rtol=1e-5, atol=1e-6)
    assert k.fn is not None and k.n_interpreted == 1  # the second call waited and ran the kernel


def test_no_thread_to_be_had_compiles_inline(gate, monkeypatch):
    """If no thread can be started, the job compiles inline: the call gets the kernel's
    result, and the switch interval and the list of pending compiles are left as they were."""
    def no_thread(self):
        raise RuntimeError("can't start new thread")

    gate.set()
    monkeypatch.setattr(threading.Thread, "start", no_thread)
    cf = dg.compile(lambda x: x * 2.0 + 1.0)
    assert cf(dg.ones(3)).numpy().tolist() == [3, 3, 3]
    (k,) = _kernels(cf)
    assert k.fn is not None and k.n_interpreted == 0
    assert not K._pending and K._switch_jobs == 0
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_generated_source_does_not_depend_on_numba_being_imported(tmp_path):
    """A new process's first call generates the kernel before numba (and the math library)
    is imported: the math functions' names come from compile/math_names.py, so the source
    is the one a process with mathlib loaded makes (floor_divide was missing from it, and
    the kernel failed to import: eager fallback)."""
    import os
    import subprocess

    code = (
        "import sys, dualgraph as dg\n"
        "cf = dg.compile(lambda x, y: (x // y, dg.exp(x), dg.maximum(x, y)))\n"
        "x, y = dg.tensor([7.0, -7.0]), dg.tensor([2.0, 2.0])\n"
        "src = cf.source(x, y)\n"
        "assert 'numba' not in sys.modules\n"
        "import dualgraph.compile.mathlib\n"
        "cf2 = dg.compile(lambda x, y: (x // y, dg.exp(x), dg.maximum(x, y)))\n"
        "assert cf2.source(x, y) == src\n"
        "print(src)\n"
    )
    env = dict(os.environ, DUALGRAPH_CACHE_DIR=str(tmp_path), DUALGRAPH_TIERED="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "from dualgraph.compile.mathlib import" in r.stdout
    assert "floor_divide_f32" in r.stdout and "dualgraph.compile.runtime" not in r.stdout
