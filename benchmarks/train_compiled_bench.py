"""Compiled training steps (forward + backward + SGD update as one program) against
dualgraph eager, numpy written by hand, torch eager, torch.compile and jax.jit, side by side
in one process (float32).

    python benchmarks/train_compiled_bench.py [--quick] [--no-torch-compile] [--only mlp,rnn]
                                              [--threads N]

``--threads N`` gives every library N threads (BLAS, torch, XLA; default: each its own).

Rows:

* ``mlp``: 784→512→10 relu MLP, batch 128, cross-entropy; forward + backward + SGD step.
  dualgraph compiled = one ``dg.compile``d function doing ``dg.value_and_grad`` and the
  update, parameters passed as arguments; dualgraph eager = ``loss.backward()`` + update.
* ``rnn``: ``h = tanh(x_t @ Wx + h @ Wh)``, hidden 64, batch 8, 200 steps, loss ``h.sum()``,
  gradients of Wx and Wh and the SGD step.  dualgraph compiled writes the loop with
  ``dg.fori_loop`` (one ``while`` in the kernel, taped forward, reverse loop); eager runs
  the same code (a Python loop of 200 steps on the tape).
* ``newton_grad``: gradient of ``sum(newton_sqrt(a))``, a 100k-element float32 ``a``,
  through the data-dependent ``while_loop`` (JAX refuses reverse mode through it); the
  compiled forward alone is timed beside it (``newton_fwd``).

Per row and system: the median time per call after warm-up (the systems of a row timed in
three rounds of blocks, so changes of machine load touch them alike), and (apart) the
first call.
dualgraph's first call compiles with an empty disk cache (``DUALGRAPH_CACHE_DIR`` is set to
a fresh temporary directory unless given).
"""
from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__" and "--threads" in sys.argv:
    # one thread count for every library (BLAS, torch, XLA), set before they are imported
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _n
    if _n == "1":
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
if __name__ == "__main__" and "DUALGRAPH_CACHE_DIR" not in os.environ:
    os.environ["DUALGRAPH_CACHE_DIR"] = tempfile.mkdtemp(prefix="dg-train-bench-cache-")
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import dualgraph as dg  # noqa: E402
import dualgraph.nn.functional as F  # noqa: E402

LR = 0.01
MLP = dict(batch=128, d_in=784, d_h=512, d_out=10)
RNN = dict(steps=200, batch=8, hidden=64, d_in=64)
N_NEWTON = 100_000


def data():
    rng = np.random.default_rng(0)
    f = lambda *s: (rng.standard_normal(s) * 0.05).astype(np.float32)  # noqa: E731
    m = MLP
    mlp = dict(W1=f(m["d_in"], m["d_h"]), b1=f(m["d_h"]), W2=f(m["d_h"], m["d_out"]), b2=f(m["d_out"]),
               X=rng.standard_normal((m["batch"], m["d_in"])).astype(np.float32),
               Y=rng.integers(0, m["d_out"], m["batch"]).astype(np.int64))
    r = RNN
    rnn = dict(Wx=(rng.standard_normal((r["d_in"], r["hidden"])) / 8).astype(np.float32),
               Wh=(rng.standard_normal((r["hidden"], r["hidden"])) / 8).astype(np.float32),
               xs=rng.standard_normal((r["steps"], r["batch"], r["d_in"])).astype(np.float32))
    newton = dict(a=rng.uniform(1.0, 101.0, N_NEWTON).astype(np.float32))
    return {"mlp": mlp, "rnn": rnn, "newton_grad": newton}


MLP_ARGS = ("W1", "b1", "W2", "b2", "X", "Y")
RNN_ARGS = ("Wx", "Wh", "xs")


# ---- dualgraph ----------------------------------------------------------------------------


def dg_mlp_loss(W1, b1, W2, b2, X, Y):
    h = dg.relu(X @ W1 + b1)
    return F.cross_entropy(h @ W2 + b2, Y)


def dg_mlp_step(W1, b1, W2, b2, X, Y):
    loss, (g1, gb1, g2, gb2) = dg.value_and_grad(dg_mlp_loss, argnums=(0, 1, 2, 3))(W1, b1, W2, b2, X, Y)
    return loss, W1 - LR * g1, b1 - LR * gb1, W2 - LR * g2, b2 - LR * gb2


def dg_rnn_loss(Wx, Wh, xs):
    h0 = dg.zeros(RNN["batch"], RNN["hidden"])
    h = dg.fori_loop(0, RNN["steps"], lambda t, h: dg.tanh(xs[t] @ Wx + h @ Wh), h0)
    return h.sum()


def dg_rnn_step(Wx, Wh, xs):
    loss, (gx, gh) = dg.value_and_grad(dg_rnn_loss, argnums=(0, 1))(Wx, Wh, xs)
    return loss, Wx - LR * gx, Wh - LR * gh


def dg_newton(a):
    def cond(x):
        return dg.max(dg.abs(x * x - a) / a) > 1e-5

    def body(x):
        return 0.5 * (x + a / x)

    return dg.while_loop(cond, body, a)


def dg_newton_grad(a):
    return dg.grad(lambda a: dg_newton(a).sum())(a)


def dg_eager_step(loss_fn, names):
    """``loss.backward()`` and ``p -= lr * p.grad`` on leaf tensors (the usual eager step)."""

    def run(params, rest):
        loss = loss_fn(*params, *rest)
        loss.backward()
        with dg.no_grad():
            for p in params:
                p -= LR * p.grad
                p.grad = None
        return loss

    return run


# ---- numpy by hand ------------------------------------------------------------------------


def np_mlp_step(W1, b1, W2, b2, X, Y):
    z = X @ W1 + b1
    h = np.maximum(z, 0)
    logits = h @ W2 + b2
    m = logits.max(1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(1, keepdims=True)
    n = len(Y)
    loss = np.mean(np.log(s[:, 0]) + m[:, 0] - logits[np.arange(n), Y])
    dl = e / s
    dl[np.arange(n), Y] -= 1
    dl /= n
    gW2 = h.T @ dl
    gb2 = dl.sum(0)
    dh = dl @ W2.T
    dh *= z > 0
    gW1 = X.T @ dh
    gb1 = dh.sum(0)
    return loss, W1 - LR * gW1, b1 - LR * gb1, W2 - LR * gW2, b2 - LR * gb2


def np_rnn_step(Wx, Wh, xs):
    T, B = xs.shape[0], xs.shape[1]
    hs = np.empty((T + 1, B, Wh.shape[0]), np.float32)
    hs[0] = 0
    for t in range(T):
        hs[t + 1] = np.tanh(xs[t] @ Wx + hs[t] @ Wh)
    loss = hs[T].sum()
    gx = np.zeros_like(Wx)
    gh = np.zeros_like(Wh)
    dh = np.ones_like(hs[T])
    for t in range(T - 1, -1, -1):
        dz = dh * (1 - hs[t + 1] * hs[t + 1])
        gx += xs[t].T @ dz
        gh += hs[t].T @ dz
        dh = dz @ Wh.T
    return loss, Wx - LR * gx, Wh - LR * gh


def np_newton_grad(a):
    xs = [a]
    x = a
    while np.max(np.abs(x * x - a) / a) > 1e-5:
        x = np.float32(0.5) * (x + a / x)
        xs.append(x)
    ga = np.zeros_like(a)
    gx = np.ones_like(a)
    for x in reversed(xs[:-1]):  # x_{k+1} = 0.5 (x_k + a / x_k)
        ga += gx * np.float32(0.5) / x
        gx = gx * np.float32(0.5) * (1 - a / (x * x))
    return ga + gx


# ---- torch --------------------------------------------------------------------------------


def torch_steps(compiled):
    import torch

    def mlp_loss(W1, b1, W2, b2, X, Y):
        h = torch.relu(X @ W1 + b1)
        return torch.nn.functional.cross_entropy(h @ W2 + b2, Y)

    def rnn_loss(Wx, Wh, xs):
        h = torch.zeros(RNN["batch"], RNN["hidden"])
        for t in range(RNN["steps"]):
            h = torch.tanh(xs[t] @ Wx + h @ Wh)
        return h.sum()

    def newton(a):
        x = a
        while torch.max(torch.abs(x * x - a) / a) > 1e-5:
            x = 0.5 * (x + a / x)
        return x

    if compiled:
        mlp_loss, rnn_loss = torch.compile(mlp_loss), torch.compile(rnn_loss)

    def step(loss_fn, n_params):
        def run(params, rest):
            loss = loss_fn(*params, *rest)
            loss.backward()
            with torch.no_grad():
                for p in params[:n_params]:
                    p -= LR * p.grad
                    p.grad = None
            return loss

        return run

    def newton_grad(a):
        a = a.detach().requires_grad_(True)
        newton(a).sum().backward()
        return a.grad

    return torch, step(mlp_loss, 4), step(rnn_loss, 2), newton_grad


# ---- jax ----------------------------------------------------------------------------------


def jax_steps():
    import jax
    import jax.numpy as jnp
    from jax import lax

    def mlp_loss(W1, b1, W2, b2, X, Y):
        h = jax.nn.relu(X @ W1 + b1)
        logp = jax.nn.log_softmax(h @ W2 + b2)
        return -jnp.mean(jnp.take_along_axis(logp, Y[:, None], 1))

    def mlp_step(W1, b1, W2, b2, X, Y):
        loss, gs = jax.value_and_grad(mlp_loss, argnums=(0, 1, 2, 3))(W1, b1, W2, b2, X, Y)
        return (loss,) + tuple(p - LR * g for p, g in zip((W1, b1, W2, b2), gs))

    def rnn_loss(Wx, Wh, xs):
        h0 = jnp.zeros((RNN["batch"], RNN["hidden"]), jnp.float32)
        return lax.fori_loop(0, RNN["steps"], lambda t, h: jnp.tanh(xs[t] @ Wx + h @ Wh), h0).sum()

    def rnn_step(Wx, Wh, xs):
        loss, (gx, gh) = jax.value_and_grad(rnn_loss, argnums=(0, 1))(Wx, Wh, xs)
        return loss, Wx - LR * gx, Wh - LR * gh

    def newton(a):
        return lax.while_loop(lambda x: jnp.max(jnp.abs(x * x - a) / a) > 1e-5,
                              lambda x: 0.5 * (x + a / x), a)

    return jax, jax.jit(mlp_step), jax.jit(rnn_step), jax.jit(jax.grad(lambda a: newton(a).sum())), jax.jit(newton)


# ---- timing -------------------------------------------------------------------------------


def first_call(fn, warmup=3):
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    from dualgraph.compile.kernel import join_background_compiles

    join_background_compiles()  # prange variants compile in the background: not while timing
    first_call.ready = time.perf_counter() - t0  # tiered start: when the kernels were compiled
    for _ in range(warmup):
        fn()
    return first


def round_robin(fns, budget=1.0, rounds=3):
    """Median time of each ``fns[name] = (fn, max_reps)``: ``rounds`` rounds, in each a block
    of calls per function (its first call after the switch not counted: thread pools of the
    previous library may still spin), so a change of machine load touches them alike."""
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, (fn, m) in fns.items():
            fn()
            start = time.perf_counter()
            n = 0
            while n < max(2, m // rounds) and (n < 2 or time.perf_counter() - start < budget / rounds):
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
                n += 1
    return {k: statistics.median(v) for k, v in times.items()}


def _close(a, b, rtol=1e-4, atol=1e-5):
    return all(np.allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol) for x, y in zip(a, b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter timing budget")
    ap.add_argument("--no-torch-compile", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    rows = [n for n in ("mlp", "rnn", "newton_grad") if not args.only or n in args.only.split(",")]
    budget = 0.3 if args.quick else 1.0
    D = data()
    res = {n: {} for n in rows + ["newton_fwd"]}
    first = {n: {} for n in rows + ["newton_fwd"]}
    check = {}
    note = {}

    todo = {n: {} for n in res}

    def put(row, col, fn, *fargs, max_reps=61):
        fn = functools.partial(fn, *fargs)  # bound now: the names below are reused
        first[row][col] = first_call(fn)
        if col == "dg.compile":
            first[row]["ready"] = first_call.ready
        todo[row][col] = (fn, max_reps)

    # -- dualgraph
    # (row, argument names, how many are parameters, compiled step, eager loss, numpy step,
    # eager repetitions at most)
    for name, names, n_params, dg_step, dg_loss, np_step, reps in (
            ("mlp", MLP_ARGS, 4, dg_mlp_step, dg_mlp_loss, np_mlp_step, 61),
            ("rnn", RNN_ARGS, 2, dg_rnn_step, dg_rnn_loss, np_rnn_step, 11)):
        if name not in rows:
            continue
        d = D[name]
        ts = [dg.tensor(d[k]) for k in names]
        step = dg.compile(dg_step, fullgraph=True)
        put(name, "dg.compile", step, *ts)
        ref = np_step(*[d[k] for k in names])
        check[name] = _close([t.numpy() for t in step(*ts)], ref)
        ps = [dg.tensor(d[k].copy(), requires_grad=True) for k in names[:n_params]]
        rest = [dg.tensor(d[k]) for k in names[n_params:]]
        put(name, "dg eager", dg_eager_step(dg_loss, n_params), ps, rest, max_reps=reps)
        put(name, "numpy", np_step, *[d[k] for k in names])
    if "newton_grad" in rows:
        a = dg.tensor(D["newton_grad"]["a"])
        g = dg.compile(dg_newton_grad, fullgraph=True)
        put("newton_grad", "dg.compile", g, a)
        ref = np_newton_grad(D["newton_grad"]["a"])
        check["newton_grad"] = _close([g(a).numpy()], [ref])
        put("newton_grad", "dg eager", dg_newton_grad, a)
        put("newton_grad", "numpy", np_newton_grad, D["newton_grad"]["a"])
        fwd = dg.compile(dg_newton, fullgraph=True)
        put("newton_fwd", "dg.compile", fwd, a)
        put("newton_fwd", "dg eager", dg_newton, a)

    # -- torch
    try:
        import torch

        torch.set_num_threads(args.threads or os.cpu_count() or 1)
        for compiled in (False, True):
            if compiled and args.no_torch_compile:
                continue
            col = "torch.compile" if compiled else "torch"
            _, mlp_step, rnn_step, newton_grad = torch_steps(compiled)
            try:
                if "mlp" in rows:
                    d = D["mlp"]
                    ps = [torch.tensor(d[k], requires_grad=True) for k in MLP_ARGS[:4]]
                    rest = [torch.from_numpy(d["X"]), torch.from_numpy(d["Y"])]
                    put("mlp", col, mlp_step, ps, rest)
                if "rnn" in rows:
                    d = D["rnn"]
                    ps = [torch.tensor(d[k], requires_grad=True) for k in RNN_ARGS[:2]]
                    rest = [torch.from_numpy(d["xs"])]
                    put("rnn", col, rnn_step, ps, rest, max_reps=31 if compiled else 11)
                if "newton_grad" in rows and not compiled:
                    ta = torch.from_numpy(D["newton_grad"]["a"])
                    put("newton_grad", col, newton_grad, ta)
            except Exception as e:  # noqa: BLE001
                print(f"{col}: {type(e).__name__}: {e}", file=sys.stderr)
    except ImportError:
        pass

    # -- jax
    try:
        jax, j_mlp, j_rnn, j_newton_grad, j_newton = jax_steps()
        def run(f, xs):
            return jax.block_until_ready(f(*xs))

        if "mlp" in rows:
            xs = [jax.device_put(D["mlp"][k]) for k in MLP_ARGS]
            put("mlp", "jax.jit", run, j_mlp, xs)
        if "rnn" in rows:
            xs = [jax.device_put(D["rnn"][k]) for k in RNN_ARGS]
            put("rnn", "jax.jit", run, j_rnn, xs)
        if "newton_grad" in rows:
            ja = jax.device_put(D["newton_grad"]["a"])
            try:
                run(j_newton_grad, [ja])
                put("newton_grad", "jax.jit", run, j_newton_grad, [ja])
            except Exception as e:  # noqa: BLE001 - reverse mode through while_loop
                note["newton_grad"] = f"JAX refuses ({type(e).__name__})"
            put("newton_fwd", "jax.jit", run, j_newton, [ja])
    except ImportError:
        pass

    for n in todo:
        if todo[n]:
            res[n] = round_robin(todo[n], budget=budget)

    cols = ["dg.compile", "jax.jit", "torch.compile", "torch", "numpy", "dg eager"]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.1f}, threads {args.threads or 'default'}, "
          f"python {platform.python_version()}, numpy {np.__version__}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("\nmedian per training step (ms), after warm-up (float32)\n")
    print("| row | " + " | ".join(cols) + " | dg.compile / jax.jit | dg eager / dg.compile |")
    print("|---" * (len(cols) + 3) + "|")
    for n in res:
        r = res[n]
        if not r:
            continue
        cells = [f"{r[c] * 1e3:.3f}" if c in r else (note.get(n, "-") if c == "jax.jit" else "-")
                 for c in cols]
        jr = f"{r['dg.compile'] / r['jax.jit']:.2f}" if "jax.jit" in r else "-"
        er = f"{r['dg eager'] / r['dg.compile']:.1f}" if "dg eager" in r else "-"
        print(f"| {n} | " + " | ".join(cells) + f" | {jr} | {er} |")
    if "newton_grad" in res and res["newton_grad"]:
        print(f"\nnewton_grad / newton_fwd (dg.compile): "
              f"{res['newton_grad']['dg.compile'] / res['newton_fwd']['dg.compile']:.2f}")
    print("\nfirst call (s): dg.compile with an empty disk cache (in brackets when its kernels were "
          "compiled: the first calls run the interpreter meanwhile); jax.jit; torch.compile")
    print("| row | dg.compile | jax.jit | torch.compile | result == numpy by hand |")
    print("|---|---|---|---|---|")
    for n in res:
        f = first[n]
        if not f:
            continue
        cell = lambda k: f"{f[k]:.2f}" if k in f else "-"  # noqa: E731
        print(f"| {n} | {cell('dg.compile')} ({cell('ready')}) | {cell('jax.jit')} | {cell('torch.compile')} | "
              f"{check.get(n, '-')} |")


if __name__ == "__main__":
    main()
