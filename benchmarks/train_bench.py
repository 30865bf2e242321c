"""One eager training step (forward, backward, optimizer step), dualgraph beside torch.

    python benchmarks/train_bench.py [--repeat 30] [--threads 1]

Models (float32): an MLP (64-256-256-10, batch 128, SGD with momentum), the LeNet-style
CNN of tests/test_train_models.py (batch 32 of 1x12x12, Adam) and its one-block
transformer (batch 16, length 8, d 32, AdamW).  The same architecture, initial weights
and data in both libraries; reports the median step time after warm-up, and the time of
the optimizer step alone.  Both libraries get the same thread count (torch.set_num_threads;
numpy's BLAS reads OMP/OPENBLAS_NUM_THREADS, set before numpy is imported).
"""
import argparse
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--repeat", type=int, default=30)
ap.add_argument("--threads", type=int, default=None)
args = ap.parse_args()
if args.threads:
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(args.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import dualgraph as dg  # noqa: E402
from dualgraph import nn  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


def median_time(fn, repeat):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def models(M):
    """The three benchmark models written once against an ``nn`` namespace ``M``."""

    class LeNet(M.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = M.Conv2d(1, 6, 5, padding=2), M.Conv2d(6, 16, 3)
            self.pool = M.MaxPool2d(2)
            self.fc1, self.fc2 = M.Linear(64, 32), M.Linear(32, 4)

        def forward(self, x):
            x = self.pool(self.conv1(x).relu())
            x = self.pool(self.conv2(x).relu())
            return self.fc2(self.fc1(x.reshape(x.shape[0], -1)).relu())

    class Tiny(M.Module):
        def __init__(self, vocab=12, length=8, d=32):
            super().__init__()
            self.tok, self.pos = M.Embedding(vocab, d), M.Embedding(length, d)
            self.ln1, self.ln2, self.ln = M.LayerNorm(d), M.LayerNorm(d), M.LayerNorm(d)
            self.attn = M.MultiheadAttention(d, 4, batch_first=True)
            self.mlp = M.Sequential(M.Linear(d, 4 * d), M.GELU(), M.Linear(4 * d, d))
            self.head = M.Linear(d, vocab)

        def forward(self, idx, pos, mask):
            x = self.tok(idx) + self.pos(pos)
            h = self.ln1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
            x = x + self.mlp(self.ln2(x))
            return self.head(self.ln(x))

    mlp = M.Sequential(M.Linear(64, 256), M.ReLU(), M.Linear(256, 256), M.ReLU(), M.Linear(256, 10))
    return {"mlp": mlp, "lenet": LeNet(), "transformer": Tiny()}


def data(name, rng):
    if name == "mlp":
        return [rng.standard_normal((128, 64)).astype(np.float32)], rng.integers(0, 10, 128)
    if name == "lenet":
        return [rng.standard_normal((32, 1, 12, 12)).astype(np.float32)], rng.integers(0, 4, 32)
    idx = rng.integers(0, 12, (16, 8))
    return [idx, np.arange(8), np.triu(np.ones((8, 8), bool), 1)], rng.integers(0, 12, (16, 8)).reshape(-1)


def make_step(lib, model, opt, inputs, target):
    F = lib.nn.functional
    xs = [lib.tensor(a) for a in inputs]
    t = lib.tensor(target)

    def step():
        out = model(*xs)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), t)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


OPT = {"mlp": ("SGD", dict(lr=0.01, momentum=0.9)), "lenet": ("Adam", dict(lr=1e-3)),
       "transformer": ("AdamW", dict(lr=1e-3))}


def main():
    rng = np.random.default_rng(0)
    if torch is not None and args.threads:
        torch.set_num_threads(args.threads)
    print(f"median of {args.repeat} steps (threads={args.threads or 'default'})")
    print(f"{'model':12s} {'dualgraph':>12s} {'torch':>12s} {'ratio':>7s}   {'dg opt.step':>12s} {'torch opt.step':>15s}")
    dg_models = models(nn)
    t_models = models(torch.nn) if torch is not None else {}
    for name, md in dg_models.items():
        inputs, target = data(name, rng)
        cls, kw = OPT[name]
        opt_d = getattr(dg.optim, cls)(md.parameters(), **kw)
        t_dg = median_time(make_step(dg, md, opt_d, inputs, target), args.repeat)
        o_dg = median_time(opt_d.step, args.repeat)
        row = f"{name:12s} {t_dg * 1e3:10.2f}ms"
        if torch is not None:
            mt = t_models[name]
            mt.load_state_dict({k: torch.tensor(v.numpy()) for k, v in md.state_dict().items()})
            opt_t = getattr(torch.optim, cls)(mt.parameters(), **kw)
            t_t = median_time(make_step(torch, mt, opt_t, inputs, target), args.repeat)
            o_t = median_time(opt_t.step, args.repeat)
            row += f" {t_t * 1e3:10.2f}ms {t_dg / t_t:6.1f}x   {o_dg * 1e3:10.3f}ms {o_t * 1e3:13.3f}ms"
        print(row)


if __name__ == "__main__":
    main()
