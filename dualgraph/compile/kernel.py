"""A compiled graph: generated source -> content-addressed file -> numba function, and the
Python side of a call (argument checks, preallocated outputs, status).

Tiered start: when loading a new kernel would take time (numba not imported yet, or no
machine code in numba's disk cache), a background thread imports numba and compiles the
serial kernel, then the ``prange`` variant, while the calls meanwhile run the graph in the
interpreter (``Kernel._tier``; ``DUALGRAPH_TIERED=0``: the first call waits).

Threads and processes: a kernel is ``nogil`` and may be called from several threads at once
(the first calls, which compile and time the serial and ``prange`` variants, take a lock).
The ``prange`` variant compiles in a background thread after the serial one (the calls
meanwhile run the serial kernel; ``DUALGRAPH_BACKGROUND_COMPILE=0`` compiles it inline);
``join_background_compiles()`` waits for such compiles, and runs before ``os.fork()`` and at
interpreter exit.
numba's default threading layer here is OpenMP (GNU): a process that ``fork()``s after a
``prange`` kernel ran gets a child that dies on its next parallel call, and a fork-based
``multiprocessing.Pool`` can hang -- use the ``spawn``/``forkserver`` start methods, or set
``DUALGRAPH_PARALLEL=0`` (serial kernels only, fork-safe).  Before numba's OpenMP threads start,
``OMP_WAIT_POLICY`` is set to ``PASSIVE`` unless the user set it (``passive_omp_threads``).

The interface the compiled-training issue builds on: ``Kernel(graph)`` for any optimized
graph (a forward that also returns its residuals, or a backward graph), called as
``kernel(arrays) -> list of arrays`` (or ``None`` when a run-time check failed: the caller
re-runs the graph eagerly, which raises eager's own error or gives eager's result).
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import sys
import threading
import time
import warnings

import numpy as np

from . import cache, scipy_blas
from .codegen import CompileError, generate


# a primitive lowered through object mode (ops/lowering.py, _objmode_emit) runs with the
# GIL held: numba says so for every such block of a nogil kernel; that is expected
warnings.filterwarnings("ignore", message="Code running in object mode won't allow parallel")

def _erf(x):
    from scipy.special import erf

    return erf(x)


# what the Python run of generated source calls for the math library's functions that the
# runtime has no numpy fallback for (the library itself is tested on its own)
_NUMPY_TWINS = {
    "expm1": np.expm1,
    "log1p": np.log1p,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "erf": _erf,
    "floor_divide": np.floor_divide,  # mathlib.floor_divide_* is numpy's algorithm
}

_blas_capped = False
_blas_lock = threading.Lock()
_blas_saved = []  # (setter, thread count before the cap)
_parallel_in_use = False  # some kernel of this process runs its prange variant
# some kernel's large matmuls were timed with BLAS on one thread and kept serial: OpenBLAS's
# own threads would make them slower on a loaded machine (compile/blas.py), so the cap stays
_blas_single = False

# prange tuning (Kernel._tune_call): calls 2.._TRIAL_END of a trial run the variants in blocks
# of _TRIAL_BLOCK calls in a row (prange, serial, prange, serial), each block's first call
# untimed; a decided kernel is re-timed after _RETUNE_FIRST seconds, then at doubling
# intervals up to _RETUNE_MAX
_TRIAL_BLOCK = 3
_TRIAL_END = 1 + 4 * _TRIAL_BLOCK
_RETUNE_FIRST = 1.0
_RETUNE_MAX = 32.0


def cap_blas_threads():
    """OpenBLAS threads spinning after a BLAS call slow numba's prange kernels ~15x (see
    NUMBA-FACTS): before the first parallel kernel runs, cap every loaded OpenBLAS
    (numpy's and scipy's, which numba's np.dot calls) to one thread.  Skipped when the
    user set ``OPENBLAS_NUM_THREADS`` or ``DUALGRAPH_KEEP_BLAS_THREADS=1``."""
    global _blas_capped
    if _blas_capped:
        return
    with _blas_lock:
        if _blas_capped:
            return
        _blas_capped = True
        if os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("DUALGRAPH_KEEP_BLAS_THREADS"):
            return
        scipy_blas.load()  # numba's np.dot calls scipy's OpenBLAS: load it now, or it escapes the cap
        try:
            with open("/proc/self/maps") as f:
                libs = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
        except OSError:
            return
        for path in libs:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for sym in ("openblas_set_num_threads", "scipy_openblas_set_num_threads",
                        "openblas_set_num_threads64_", "scipy_openblas_set_num_threads64_"):
                f = getattr(lib, sym, None)
                if f is not None:
                    get = getattr(lib, sym.replace("set_num_threads", "get_num_threads"), None)
                    f.argtypes = [ctypes.c_int]
                    if get is not None:
                        get.restype = ctypes.c_int
                        _blas_saved.append((f, get()))
                    f(1)


def passive_omp_threads():
    """Before numba's OpenMP threads start (the first prange kernel compiles or loads): unless
    the user chose, ``OMP_WAIT_POLICY=PASSIVE``, so a worker thread sleeps as soon as a
    parallel loop ends instead of spinning.  libgomp's default spin kept the worker busy
    ~4-5 ms per call after each prange call here (CPU taken from the serial code and the
    other processes that run next), and on a loaded machine both serial and prange calls ran
    ~2x slower with it (benchmarks/CODEGEN-FACTS.md).  libgomp reads the variable when it is
    loaded, i.e. at numba's first parallel launch; a copy loaded earlier (torch's) keeps its
    own setting."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def release_blas_threads():
    """Undo ``cap_blas_threads`` once no parallel kernel is in use: a prange variant that was
    only tried (and lost to the serial kernel) leaves BLAS-heavy code (matmuls in compiled
    training steps, numpy itself) its threads."""
    global _blas_capped
    with _blas_lock:
        if not _blas_capped or _parallel_in_use or _blas_single or not _blas_saved:
            return
        for f, n in _blas_saved:
            f(n)
        _blas_saved.clear()
        _blas_capped = False


@contextlib.contextmanager
def blas_threads_uncapped():
    """For benchmarks that time other systems in this process (numpy, dualgraph eager):
    BLAS runs with the thread counts it had before ``cap_blas_threads`` inside the block,
    and is capped again after it (if it still is)."""
    with _blas_lock:
        saved = list(_blas_saved) if _blas_capped else []
    for f, n in saved:
        f(n)
    try:
        yield
    finally:
        with _blas_lock:
            if _blas_capped:
                for f, _ in saved:
                    f(1)


def _keep_blas_single():
    global _blas_single
    _blas_single = True


def _mark_parallel():
    global _parallel_in_use
    _parallel_in_use = True


class Kernel:
    """One graph compiled to one numba function."""

    def __init__(self, graph, name="kernel"):
        self.graph = graph
        self.source, self.consts, cg = generate(graph, name, parallel=False)
        self.parallel = False
        self.fn = self.path = None
        self._name = name
        # prange variant: chosen by DUALGRAPH_PARALLEL=1, refused by =0, and by default
        # ("auto") timed against the serial kernel on the first calls (machines and their
        # load differ too much for a fixed threshold alone)
        self._tune = None
        self._tune_lock = threading.Lock()
        self._split_matmul = False
        mode = os.environ.get("DUALGRAPH_PARALLEL", "auto")
        if mode != "0":
            psrc, _, pcg = generate(graph, name, parallel=True)
            # large matmuls split over numba's threads, BLAS on one (compile/blas.py)
            self._split_matmul = "gemm_split" in pcg.imports
            if pcg.parallel or self._split_matmul:
                self.parallel_source = psrc
                if mode == "1":
                    self._load()
                    self._use_parallel()
                else:
                    self._tune = {"n": 0, "ser": [], "par": [], "next": 0.0}
        self.in_scalar = [v.aval.ndim == 0 for v in graph.inputs]
        outs = []
        self.dyn = []  # (output position, index in the returned tuple)
        for k, v in enumerate(graph.outputs):
            a = v.aval
            if None in a.shape:
                self.dyn.append((k, 1 + cg.dyn_outs.index(v)))
                continue
            outs.append(((1,) if len(a.shape) == 0 else tuple(a.shape), a.dtype, len(a.shape) == 0))
        self.out_specs = outs
        self._any0d = any(z for _, _, z in outs)
        self._out_alloc = [(s, d) for s, d, _ in outs]
        self._plain = all(v.aval.ndim > 0 for v in graph.inputs)  # no scalar arguments
        self._one_out = self._out_alloc[0] if len(outs) == 1 and not self.dyn else None
        self._in_info = []
        for v in graph.inputs:
            shape, it = v.aval.shape, v.aval.dtype.itemsize
            strides, acc = [], it
            for d in reversed(shape):
                strides.append(acc)
                acc *= max(d or 1, 1)
            st = tuple(reversed(strides))
            # size-0/size-1 dims have arbitrary strides: let the slow check decide
            if any(d is None or d <= 1 for d in shape):
                st = None
            self._in_info.append((len(shape) == 0, st))
        # tape workspaces (compile/buffers.py): one set per concurrent call, kept and reused
        self.ws_specs = list(cg.bufplan.slots) if cg.bufplan is not None else []
        # fast() may call the kernel itself once the first call is done
        self._direct = not (self.dyn or self.ws_specs or not self._plain)
        self._ws_pool = []
        self._first = True
        # tiered start (``_tier``): numba loads or compiles the kernel in a background thread
        # while the first calls run the graph in the interpreter
        self._job = None
        self._par_job = None  # the prange variant, started by the tier job when it is done
        self.n_interpreted = 0  # calls the interpreter ran meanwhile
        self._tier_spent = 0.0  # the time they took
        if self.fn is None and (self.dyn or not tiered_start(self.source)):
            self._load()

    def _load(self):
        scipy_blas.load()  # before numba's first compile or cache load (it imports scipy's BLAS)
        self.fn, self.path = cache.load(self.source, self._name)

    def _take_ws(self):
        try:
            return self._ws_pool.pop()  # atomic under the GIL: no two calls share a set
        except IndexError:
            return [np.empty((0,) + tuple(s), d) for s, d in self.ws_specs]

    def fast(self, values):
        """The call path after the first calls: ``values`` are ndarrays of the expected
        shapes and dtypes.  Returns the output arrays, or None (a run-time check failed)."""
        if self._first or not self._direct:
            return self(values)
        t = self._tune
        if t is not None and (t["n"] <= _TRIAL_END or time.perf_counter() >= t["next"]):
            return self(values)  # prange tuning: compiling, or timing the variants
        for a in values:
            if not a.flags.carray:  # C-contiguous, aligned and writeable: numba's C arrays
                return self(values)
        if self._one_out is not None:
            o = np.empty(*self._one_out)
            if self.fn(*values, *self.consts, o):
                return None
            return [o.reshape(()) if self._any0d else o]
        outs = [np.empty(s, d) for s, d in self._out_alloc]
        if self.fn(*values, *self.consts, *outs):
            return None
        if self._any0d:
            return [o.reshape(()) if z else o for o, (_, _, z) in zip(outs, self.out_specs)]
        return outs

    def __call__(self, arrays, _fn=None):
        if self.fn is None and _fn is None:  # tiered start: the kernel is not loaded yet
            res = self._tier(arrays)
            if res is not _LOADED:
                return res
        args = self._args(arrays)
        outs = [np.empty(s, d) for s, d, _ in self.out_specs]
        nws = len(self.ws_specs)
        if nws:
            args.extend(self._take_ws())
        if self._tune is not None and _fn is None:
            t = self._tune
            if t["n"] > _TRIAL_END and time.perf_counter() < t["next"]:
                st = self.fn(*args, *self.consts, *outs)  # decided: no lock
            else:
                with self._tune_lock:  # compiling or timing: one thread at a time
                    st = self._tune_call(args, outs)
        elif _fn is not None:
            with np.errstate(all="ignore"):
                st = _fn(*args, *self.consts, *outs)
        elif self._first:
            st = self._first_call(args, outs)
        else:
            st = self.fn(*args, *self.consts, *outs)
        if self.dyn or nws:
            ret, st = st, st[0]
            if nws:
                self._ws_pool.append(list(ret[len(ret) - nws:]))
        if st != 0:
            return None
        res = [o.reshape(()) if z else o for o, (_, _, z) in zip(outs, self.out_specs)]
        for k, j in self.dyn:
            res.insert(k, ret[j])
        return res

    def _args(self, arrays):
        """The kernel's arguments for ``arrays``: scalars for 0-d inputs, C-contiguous
        writeable arrays (numba's C arrays) for the others."""
        args = []
        for a, sc in zip(arrays, self.in_scalar):
            if sc:
                args.append(a[()])
            else:
                fl = a.flags
                if not (fl.c_contiguous and fl.writeable):
                    a = np.array(a, order="C")
                args.append(a)
        return args

    # -- tiered start ----------------------------------------------------------------
    def _tier(self, arrays):
        """A call before the kernel is loaded.  The first one starts a background thread
        that imports numba and compiles the serial kernel (or loads it from numba's disk
        cache), then starts the prange variant's compile; meanwhile the first call, and
        later ones within the interpreter's share of the time (``_TIER_SHARE``), run the
        optimized graph in the interpreter (the numpy implementations of its primitives,
        as ``backend="interpreter"``), with the kernel's result format; other calls wait
        for the kernel.  Returns the interpreter's result (None: a run-time check failed,
        as a kernel's), or ``_LOADED`` once the kernel is ready (the caller runs it)."""
        job = self._job
        if job is None:
            with self._tune_lock:
                job = self._job
                if job is None:
                    job = self._job = _VariantJob(self.source, self._name, self._sig_of(arrays),
                                                  then=self._serial_ready)
        if not job.done.is_set():
            # the first call, and later ones while the interpreter has taken at most
            # _TIER_SHARE of the time since the compile started; else wait for the kernel
            t0 = time.perf_counter()
            if not self.n_interpreted or self._tier_spent <= _TIER_SHARE * (t0 - job.t0):
                res = self._interpret(arrays, job.done.is_set)
                self._tier_spent += time.perf_counter() - t0
                if res is not _LOADED:
                    self.n_interpreted += 1
                    return res
            job.done.wait()  # the kernel is ready (or the interpreter could not run this graph)
        with self._tune_lock:
            if self.fn is None:
                if job.fn is None:
                    raise CompileError(
                        f"dg.compile: numba could not compile the generated kernel "
                        f"{job.path}: {job.error}")
                self.fn, self.path = job.fn, job.path
        return _LOADED

    def _sig_of(self, arrays):
        """For the tier job: the numba signature of a call with ``arrays`` (what
        ``__call__`` passes: arguments, workspaces, constants, outputs), made once numba is
        imported."""
        args = self._args(arrays) + self._take_ws() + list(self.consts)
        args += [np.empty(s, d) for s, d, _ in self.out_specs]

        def sig(fn):
            return tuple(fn.typeof_pyval(a) for a in args)
        return sig

    def _serial_ready(self, sig):
        """In the tier job's thread, once the serial kernel is compiled: start the prange
        variant's compile, so it is not left for the timed calls that follow."""
        if self._tune is not None:
            passive_omp_threads()  # before numba's OpenMP threads start (at the compile)
            self._par_job = _VariantJob(self.parallel_source, self._name, sig)

    def _interpret(self, arrays, ready):
        """The graph run by the interpreter on ``arrays``, in the kernel's result format:
        fresh C-contiguous arrays of the outputs' shapes and dtypes (no output shares
        memory with an argument, a constant or another output, as a kernel's).  None when
        the graph raised (the caller re-runs eagerly, which raises eager's error);
        ``_LOADED`` when the kernel became ready meanwhile (``ready()``: the run is given up
        at its next graph, e.g. loop iteration, so a long loop does not outlast the
        compile) or a result does not have the output's type (never expected)."""
        from ..eager.grad_mode import no_grad
        from ..eager.tensor import Tensor
        from ..static.interpreter import Abandoned, abandon_when, eval_graph

        try:
            with no_grad(), np.errstate(all="ignore"), abandon_when(ready):
                outs = eval_graph(self.graph, [Tensor._make(np.asarray(a)) for a in arrays])
        except Abandoned:
            return _LOADED
        except Exception:  # noqa: BLE001 - eager code raises it again, naming the user's line
            return None
        res = []
        for o, v in zip(outs, self.graph.outputs):
            a, av = o._value, v.aval
            if a.dtype != av.dtype or a.shape != tuple(av.shape):
                return _LOADED
            res.append(np.array(a, order="C"))  # a copy
        return res

    def _use_parallel(self):
        passive_omp_threads()
        self.serial = (self.fn, self.path, self.source)
        self.fn, self.path = cache.load(self.parallel_source, self._name)
        self.source = self.parallel_source
        self.parallel = True
        self._first = True
        _mark_parallel()
        cap_blas_threads()

    def _tune_call(self, args, outs):
        """One call of a kernel that has a prange variant.  Call 0 compiles and runs the
        serial kernel, call 1 the prange one; calls 2..13 run them in blocks of 3 calls in a
        row (the way a decided kernel is called), timing the 2nd and 3rd of each block (the
        1st follows the other variant: a thread that just slept runs faster on a busy
        machine, and a prange worker that was asleep must be woken); then the variant with
        the lower mean time is kept, prange only when 5% faster (15% until 2026-11-27: mlp beside jax.jit kept serial at 7.5 ms where prange took 6.6, 4.3 once jax's threads idle).  The choice is re-timed the same way later (after
        ``_RETUNE_FIRST`` seconds, then at doubling intervals up to ``_RETUNE_MAX`` while it
        stands): a machine's load changes, and a prange kernel on a busy machine waits for
        scheduler slices (CODEGEN-FACTS).  Both variants give the same bits, so a switch
        never changes a result."""
        t = self._tune
        n = t["n"]
        if n > _TRIAL_END:
            now = time.perf_counter()
            if now < t["next"]:  # another thread has just finished a trial
                return self.fn(*args, *self.consts, *outs)
            # a new trial: time both variants again
            n = 2
            t["ser"], t["par"] = [], []
            if not self.parallel:
                cap_blas_threads()
        if n == 0:
            st = self._first_call(args, outs)  # serial: the cheaper compilation
            t["n"] = 1
            # the prange variant compiles in a background thread meanwhile (it costs 2-4x
            # the serial compile: seconds for a training step); calls run serially until
            # it is ready, then the timing below starts
            typeof = getattr(self.fn, "typeof_pyval", None)
            if typeof is None:  # NUMBA_DISABLE_JIT: plain Python, nothing to tune
                self._tune = None
                return st
            if self._par_job is not None:  # started by the tier job (``_tier``)
                t["job"] = self._par_job
                return st
            passive_omp_threads()  # before numba's OpenMP threads start (at the compile)
            sig = tuple(typeof(a) for a in (*args, *self.consts, *outs))
            t["job"] = _VariantJob(self.parallel_source, self._name, sig)
            return st
        if n == 1:
            job = t["job"]
            if not job.done.is_set():
                return self.fn(*args, *self.consts, *outs)
            if job.fn is None:  # numba could not compile the prange variant: serial it is
                self._tune = None
                return self.fn(*args, *self.consts, *outs)
            t["n"] = 2
            self.serial = (self.fn, self.path, self.source)
            self.fn, self.path, self.source = job.fn, job.path, self.parallel_source
            cap_blas_threads()
            t["par_fn"] = (self.fn, self.path, self.source)
            return self.fn(*args, *self.consts, *outs)
        t["n"] = n + 1
        block, pos = divmod(n - 2, _TRIAL_BLOCK)
        which = "par" if block % 2 == 0 else "ser"
        fn = t["par_fn"][0] if which == "par" else self.serial[0]
        t0 = time.perf_counter()
        st = fn(*args, *self.consts, *outs)
        t1 = time.perf_counter()
        if pos:  # not the first call of a block: the variant's calls in a row, as after
            t[which].append(t1 - t0)
        if n == _TRIAL_END:
            # means, not medians or minima: a prange call that now and then waits ~24 ms
            # for a scheduler slice on a busy machine costs that on average
            mean = lambda v: sum(v) / len(v)  # noqa: E731
            par = mean(t["par"]) < 0.95 * mean(t["ser"])
            if par:
                self.fn, self.path, self.source = t["par_fn"]
                _mark_parallel()
            else:
                self.fn, self.path, self.source = self.serial
                if self._split_matmul:
                    # the serial kernel won with BLAS on one thread (a loaded machine, where
                    # OpenBLAS's two threads were 7x slower): keep it so
                    _keep_blas_single()
                else:
                    release_blas_threads()
            period = t.get("period")
            period = _RETUNE_FIRST if period is None or par != self.parallel else \
                min(2 * period, _RETUNE_MAX)
            self.parallel = par
            t["period"] = period
            t["next"] = t1 + period
        return st

    def wait_compiles(self):
        """Wait for a prange variant compiling in the background (tests, benchmarks)."""
        if self._job is not None:
            self._job.done.wait()
        job = (self._tune or {}).get("job") or self._par_job
        if job is not None:
            job.done.wait()

    def run_python(self, arrays):
        """Run the generated source in the Python interpreter (NUMBA_DISABLE_JIT semantics)."""
        if getattr(self, "_pyfn", None) is None:
            self._pyfn = python_function(self.source, self._name)
        return self(arrays, _fn=self._pyfn)

    def _first_call(self, args, outs):
        try:
            st = self.fn(*args, *self.consts, *outs)
        except Exception as e:  # noqa: BLE001
            # a corrupt numba cache entry: drop it and compile again, once
            cache.drop(self.path)
            try:
                self.fn, self.path = cache.load(self.source, self._name)
                st = self.fn(*args, *self.consts, *outs)
            except Exception as e2:  # noqa: BLE001
                raise CompileError(
                    f"dg.compile: numba could not compile the generated kernel {self.path}: "
                    f"{type(e2).__name__}: {e2}"
                ) from e
        self._first = False
        return st


_LOADED = object()  # Kernel._tier: the kernel is loaded, run it
# Kernel._tier: after the first call, calls are interpreted while the interpreter has taken at
# most this share of the time since the compile started, else they wait for the kernel.  The
# interpreter and numba's compile share the GIL: a training loop interpreted step after step
# ran each step ~2.5x slower than eagerly and held the compile back as long again (the demo:
# 2000 steps, all interpreted, 7.7 s, the kernel never ready; waiting: 6.5 s), while a call
# now and then (interactive use) costs the compile little.
_TIER_SHARE = 0.1


def tiered_start(source):
    """Whether a new kernel starts tiered (``Kernel._tier``): when loading it would cost
    time, i.e. numba is not imported yet or its disk cache has no machine code for this
    source.  Off with ``DUALGRAPH_TIERED=0`` (every first call then waits for numba, and
    every call runs the kernel) and under ``NUMBA_DISABLE_JIT=1``."""
    if os.environ.get("DUALGRAPH_TIERED", "1") == "0" or os.environ.get("NUMBA_DISABLE_JIT", "0") != "0":
        return False
    return "numba" not in sys.modules or not cache.in_numba_cache(source)


# While a background job compiles, the calls (the interpreter's during a tier job, the serial
# kernel's Python side during a prange variant's) share the GIL with it: a call that releases
# it (a matmul, a nogil kernel) waited up to the switch interval (5 ms) to get it back from
# the compile, and rnn's interpreted step took 0.3-0.4 s instead of 0.07; the demo's training
# step (~20 small matmuls) 13 ms against 1.8 eagerly.  The interval is 20 us while background
# jobs run (unless the user set one): rnn 0.2 s, the demo's step 4.8 ms, and the compiles no
# slower (benchmarks/first_call_results.md).
_SWITCH = 2e-5
_switch_jobs = 0
_switch_saved = None


def _short_switch(delta):
    global _switch_jobs, _switch_saved
    with _pending_lock:
        _switch_jobs += delta
        if delta > 0 and _switch_jobs == 1 and _switch_saved is None:
            cur = sys.getswitchinterval()
            if abs(cur - 0.005) < 1e-9:  # the default: the user did not choose one
                _switch_saved = cur
                sys.setswitchinterval(_SWITCH)
        elif _switch_jobs == 0 and _switch_saved is not None:
            if abs(sys.getswitchinterval() - _SWITCH) < 1e-12:  # not changed meanwhile
                sys.setswitchinterval(_switch_saved)
            _switch_saved = None


_pending = set()  # variant compiles still running: joined before fork() and at exit
_pending_lock = threading.Lock()


def join_background_compiles():
    """Wait for every background compile of this process (before ``fork()`` and at
    interpreter exit, so no thread is inside numba or LLVM then)."""
    while True:
        with _pending_lock:
            ths = list(_pending)
        if not ths:
            return
        for th in ths:
            th.join()


atexit.register(join_background_compiles)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=join_background_compiles)


class _VariantJob:
    """Compile a kernel's source for the signature ``sig`` (numba types, or a function of
    the loaded dispatcher giving them), loaded from numba's disk cache when it is there, in
    a background thread, or inline with ``DUALGRAPH_BACKGROUND_COMPILE=0``: the prange
    variant of a kernel, or its serial kernel at a tiered start (``Kernel._tier``; ``then``
    is called with the types once compiled).  numba compiles under its own global lock, so
    this only overlaps with running kernels and Python, never with another compilation.  On
    any failure ``fn`` stays None and ``error`` says why."""

    def __init__(self, source, name, sig, then=None):
        self.source, self.name, self.sig, self.then = source, name, sig, then
        self.fn = self.path = self.error = None
        self.done = threading.Event()
        self.t0 = time.perf_counter()
        self._switched = False  # shortened the GIL's switch interval (_short_switch)
        if os.environ.get("DUALGRAPH_BACKGROUND_COMPILE", "1") == "0":
            self._run()
            return
        th = threading.Thread(target=self._run, name=f"dualgraph-compile-{name}", daemon=True)
        with _pending_lock:
            _pending.add(th)
        self._switched = True
        _short_switch(1)
        try:
            th.start()
        except RuntimeError:  # no thread to be had ("can't start new thread"): compile inline
            with _pending_lock:
                _pending.discard(th)
            self._switched = False
            _short_switch(-1)
            self._run()

    def _run(self):
        try:
            scipy_blas.load()  # before numba's first compile or cache load
            for attempt in (0, 1):
                try:
                    fn, path = cache.load(self.source, self.name)
                    self.path = path
                    if callable(self.sig):  # types only: the example arrays are let go
                        self.sig = self.sig(fn)
                    sig = self.sig
                    fn.compile(sig)
                    self.fn = fn
                    break
                except Exception as e:  # noqa: BLE001
                    self.error = f"{type(e).__name__}: {e}"
                    if attempt:
                        return
                    # a corrupt numba cache entry: drop it and compile again, once
                    cache.drop(cache.kernel_path(self.source)[1])
            if self.then is not None:
                self.then(sig)
        except Exception as e:  # noqa: BLE001
            self.error = f"{type(e).__name__}: {e}"
        finally:
            if callable(self.sig):  # failed before numba typed the arguments: let them go
                self.sig = None
            if self._switched:
                _short_switch(-1)
            self.done.set()
            with _pending_lock:
                _pending.discard(threading.current_thread())


def cache_blas_done():
    return _blas_capped


class _PyDispatcher:
    """``njit`` stand-in for running generated source as plain Python."""

    def __init__(self, *a, **kw):
        self.fn = a[0] if a and callable(a[0]) else None

    def __call__(self, *args, **kw):
        if self.fn is None:
            return _PyDispatcher(args[0])
        return self.fn(*args, **kw)


def python_function(source, name="kernel"):
    """The generated function run by the Python interpreter (as under NUMBA_DISABLE_JIT=1):
    numba decorators become no-ops, ``prange`` is ``range``, and the math helpers are their
    pure-Python originals (``py_func``)."""
    import importlib

    ns = {}
    lines = []
    for line in source.splitlines():
        if line.startswith("from numba import"):
            ns["njit"] = _PyDispatcher
            ns["prange"] = range
            ns["objmode"] = lambda **types: contextlib.nullcontext()  # already Python
            continue
        if line.startswith("from dualgraph.compile."):
            # the math library's functions are checked under NUMBA_DISABLE_JIT by its own
            # tests; here they are the numpy fallbacks (what matters is the generated code)
            mod, names = line[5:].split(" import ")
            rt = importlib.import_module("dualgraph.compile.runtime")
            src_mod = importlib.import_module(mod)
            twins = getattr(src_mod, "PY_TWINS", {})
            for n in names.split(", "):
                if n in twins:  # compile/inline_ops.py's intrinsics: numpy's functions
                    ns[n] = twins[n]
                    continue
                if hasattr(rt, n):
                    f = getattr(rt, n)
                elif hasattr(rt, n + "_f64"):
                    f = getattr(rt, n + "_f64")
                elif n.rsplit("_", 1)[0] in _NUMPY_TWINS:  # a numpy twin of the math function
                    f = _NUMPY_TWINS[n.rsplit("_", 1)[0]]
                else:
                    f = getattr(src_mod, n)
                ns[n] = getattr(f, "py_func", f)
            continue
        lines.append(line)
    exec(compile("\n".join(lines), f"<dualgraph kernel {name}>", "exec"), ns)
    return ns[name].fn
