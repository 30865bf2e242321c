"""``python -m dualgraph demo``: one classifier trained twice from the same initial weights,
eagerly and with its training step compiled.

The data: two interleaved spirals (generated, no download).  The model: a ``dg.nn`` MLP
(2-32-32-2, tanh), full-batch SGD with momentum 0.9, cross-entropy.

* eager: ``loss.backward()`` and ``dg.optim.SGD.step()``, as in PyTorch;
* compiled (JAX style): one ``dg.compile``'d function of (parameters, momentum buffers, x, y)
  that calls the model on those parameters (``functional_call``), takes ``dg.value_and_grad``
  of the loss and returns the loss, the updated parameters and buffers (torch's SGD rule:
  ``buf = momentum * buf + g`` (``buf = g`` on the first step), ``p = p - lr * buf``).

Both runs print their loss at the first and last steps (equal within float32 tolerance),
the training accuracy and the time per step; ``--plot PATH`` draws both loss curves and the
learned decision boundary.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import dualgraph as dg

nn = dg.nn
F = dg.nn.functional


def spirals(n_per_class=200, noise=0.1, turns=1.5, seed=0):
    """Two interleaved spirals in [-1, 1]^2: ``(x float32 (2n, 2), y int64 (2n,))``."""
    r = np.random.default_rng(seed)
    t = np.sqrt(r.uniform(0, 1, n_per_class)) * turns * 2 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], 1) / (turns * 2 * np.pi)
    x = np.concatenate([arm, -arm]) + r.normal(0, noise / turns / 2, (2 * n_per_class, 2))
    y = np.concatenate([np.zeros(n_per_class), np.ones(n_per_class)]).astype(np.int64)
    return x.astype(np.float32), y


def make_model(hidden=32, seed=0):
    dg.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, 2))


def functional_call(model, params, *args):
    """``model(*args)`` with its parameters replaced by ``params`` (``{name: tensor}``, the
    names of ``model.named_parameters()``), as ``torch.func.functional_call``."""
    saved = []
    try:
        for name, t in params.items():
            path, _, leaf = name.rpartition(".")
            mod = model.get_submodule(path) if path else model
            saved.append((mod, leaf, mod._parameters[leaf]))
            mod._parameters[leaf] = t
        return model(*args)
    finally:
        for mod, leaf, p in reversed(saved):
            mod._parameters[leaf] = p


def train_eager(model, x, y, steps, lr, momentum):
    opt = dg.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    losses, times = [], []
    for _ in range(steps):
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
        losses.append(loss.item())
    return losses, times, 0  # no step interpreted


def make_compiled_step(model, lr, momentum):
    names = [n for n, _ in model.named_parameters()]

    def loss_fn(*args):
        *ps, x, y = args
        return F.cross_entropy(functional_call(model, dict(zip(names, ps)), x), y)

    def step(params, bufs, first, x, y):
        loss, grads = dg.value_and_grad(loss_fn, argnums=tuple(range(len(params))))(*params, x, y)
        # torch's SGD: the first step's buffer is the gradient itself (``first`` is 1.0 there, else 0.0)
        bufs = tuple(first * g + (1 - first) * (momentum * b + g) for b, g in zip(bufs, grads))
        params = tuple(p - lr * b for p, b in zip(params, bufs))
        return loss, params, bufs

    return dg.compile(step, fullgraph=True)


def train_compiled(model, x, y, steps, lr, momentum):
    step = make_compiled_step(model, lr, momentum)
    params = tuple(p.detach() for p in model.parameters())
    bufs = tuple(dg.zeros_like(p) for p in params)
    one, zero = dg.tensor(1.0), dg.tensor(0.0)
    losses, times = [], []
    for i in range(steps):
        t = time.perf_counter()
        loss, params, bufs = step(params, bufs, one if i == 0 else zero, x, y)
        times.append(time.perf_counter() - t)
        losses.append(loss.item())
    with dg.no_grad():
        for p, q in zip(model.parameters(), params):
            p.copy_(q)
    # the first steps ran the interpreter while numba compiled the step (tiered start)
    return losses, times, step.cache_info()["interpreted"]


def accuracy(model, x, y):
    with dg.no_grad():
        return float((model(dg.tensor(x)).argmax(1).numpy() == y).mean())


def run(steps=400, lr=0.3, momentum=0.9, hidden=32, plot=None, log=print):
    """Train eagerly, then compiled, from the same initial weights; returns a dict of results."""
    x_np, y_np = spirals()
    x, y = dg.tensor(x_np), dg.tensor(y_np)
    log(f"two spirals, {len(y_np)} points; MLP 2-{hidden}-{hidden}-2 (tanh), "
        f"SGD lr={lr} momentum={momentum}, "
        f"{steps} full-batch steps")
    models, res = {}, {}
    for mode, train in (("eager", train_eager), ("compiled", train_compiled)):
        m = make_model(hidden)
        t = time.perf_counter()
        losses, times, n_interp = train(m, x, y, steps, lr, momentum)
        total = time.perf_counter() - t
        acc = accuracy(m, x_np, y_np)
        # compiled: the steps the kernel ran (the interpreter ran the first ones while numba
        # compiled it); eager: all but the first
        skip = n_interp or 1
        per_step = statistics.median(times[skip:]) if len(times) > skip else float("nan")
        res[mode] = {"losses": losses, "accuracy": acc, "total_s": total, "first_step_s": times[0],
                     "step_s": per_step, "interpreted_steps": n_interp}
        models[mode] = m
        extra = ""
        if mode == "compiled":
            n = res[mode]["interpreted_steps"]
            extra = (f"; the first {n} steps ran the interpreter while numba compiled "
                     f"({sum(times[:n]):.2f} s, median {statistics.median(times[:n]) * 1e3:.2f} ms)"
                     if n else "")
        log(f"{mode:>8}: loss {losses[0]:.5f} -> {losses[-1]:.5f}, accuracy {acc * 100:.1f}%, "
            f"{per_step * 1e3:.3f} ms per step (median), first step {times[0]:.2f} s, "
            f"total {total:.2f} s{extra}")
    e, c = np.array(res["eager"]["losses"]), np.array(res["compiled"]["losses"])
    res["max_loss_diff"] = float(np.max(np.abs(e - c) / np.maximum(np.abs(e), 1e-3)))
    res["speedup"] = res["eager"]["step_s"] / res["compiled"]["step_s"]
    res["speedup_total"] = res["eager"]["total_s"] / res["compiled"]["total_s"]
    log(f"final losses: eager {e[-1]:.6f}, compiled {c[-1]:.6f}; largest relative difference over the "
        f"{steps} steps {res['max_loss_diff']:.1e} (float32)")
    log(f"compiled step {res['speedup']:.1f}x faster than eager per step; "
        f"{res['speedup_total']:.1f}x over the whole run including the compile")
    if plot:
        draw(res, models, x_np, y_np, plot)
        log(f"wrote {plot}")
    return res


def draw(res, models, x, y, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    for mode, style in (("eager", "-"), ("compiled", "--")):
        r = res[mode]
        a.plot(r["losses"], style, label=f"{mode} ({r['step_s'] * 1e3:.2f} ms/step, "
                                          f"accuracy {r['accuracy'] * 100:.1f}%)")
    a.set_yscale("log")
    a.set_xlabel("step")
    a.set_ylabel("cross-entropy loss")
    a.set_title("training loss: eager and compiled")
    a.legend(fontsize=8)
    g = np.linspace(-1.2, 1.2, 200, dtype=np.float32)
    gx, gy = np.meshgrid(g, g)
    grid = np.stack([gx.ravel(), gy.ravel()], 1)
    with dg.no_grad():
        p = models["compiled"](dg.tensor(grid)).softmax(1).numpy()[:, 1].reshape(gx.shape)
    b.contourf(gx, gy, p, levels=20, cmap="RdBu_r", alpha=0.6)
    b.contour(gx, gy, p, levels=[0.5], colors="k", linewidths=1)
    b.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", s=8, edgecolors="k", linewidths=0.3)
    b.set_title("decision boundary (compiled run)")
    b.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None, prog="python -m dualgraph demo"):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0].replace("``", ""))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--plot", metavar="PATH", help="write a PNG: both loss curves and the decision boundary")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    run(steps=args.steps, lr=args.lr, hidden=args.hidden, plot=args.plot)
    return 0
