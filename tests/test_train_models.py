"""Whole models trained eagerly with dg.nn and dg.optim: a LeNet-style CNN and a one-block
transformer each train 50 steps with the loss falling and memory flat (tracemalloc from
step 10: what is still held at steps 30 and 50 is one step's live set, the same at both;
nothing accumulates per step)."""
import gc
import tracemalloc

import numpy as np

import dualgraph as dg
import dualgraph.nn.functional as F
from dualgraph import nn


def _blobs(n, rng):
    """12x12 images with a bright 3x3 blob in one of four quadrants (the label), plus noise."""
    x = rng.standard_normal((n, 1, 12, 12)).astype(np.float32) * 0.3
    y = rng.integers(0, 4, n)
    for i, q in enumerate(y):
        r, c = (q // 2) * 6 + rng.integers(0, 3), (q % 2) * 6 + rng.integers(0, 3)
        x[i, 0, r:r + 3, c:c + 3] += 2.0
    return x, y


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 2 * 2, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))  # (N, 6, 6, 6)
        x = self.pool(F.relu(self.conv2(x)))  # (N, 16, 2, 2)
        x = x.reshape(x.shape[0], -1)
        return self.fc2(F.relu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention and an MLP, each residual."""

    def __init__(self, d, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
        x = x + a
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    def __init__(self, vocab, length, d=32, heads=4):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(length, d)
        self.block = Block(d, heads)
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", dg.tensor(np.triu(np.ones((length, length), bool), 1)), persistent=False)
        self.register_buffer("positions", dg.arange(length))

    def forward(self, idx):
        x = self.tok(idx) + self.pos(self.positions)
        return self.head(self.ln(self.block(x, self.mask)))


def _train(model, opt, batches, loss_fn, steps=50, clip=None):
    """Train ``steps`` steps; returns the losses and the traced memory at steps 10 and 50."""
    losses, mem = [], {}
    try:
        for step in range(1, steps + 1):
            x, y = batches(step)
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            losses.append(loss.item())
            del loss
            if step in (10, 30, steps):
                # traced from step 10 on (the first steps create optimizer state and import
                # lazily): what is still held at step 50 of what was allocated since
                gc.collect()
                if step == 10:
                    tracemalloc.start()
                mem[step] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return losses, mem


def _check(losses, mem, what):
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert np.all(np.isfinite(losses)), what
    assert last < 0.5 * first, f"{what}: loss did not fall ({first:.3f} -> {last:.3f})"
    print(f"{what}: loss {first:.3f} -> {last:.3f}; of what was allocated since step 10, held at step 30: "
          f"{mem[30]} B, at step 50: {mem[50]} B")
    # what is held is one step's live set (gradients, the batch), not an accumulation
    assert mem[50] < 200_000, f"{what}: {mem[50]} bytes allocated since step 10 still held at step 50"
    assert abs(mem[50] - mem[30]) < 20_000, f"{what}: held memory grew from {mem[30]} to {mem[50]} bytes"


def test_lenet_cnn_trains_with_flat_memory():
    dg.manual_seed(0)
    rng = np.random.default_rng(0)
    x, y = _blobs(256, rng)
    model = LeNet()
    opt = dg.optim.Adam(model.parameters(), lr=5e-3)

    def batches(step):  # (small batches keep each BLAS call single-threaded-sized)
        i = (step * 16) % 256
        return dg.tensor(x[i:i + 16]), dg.tensor(y[i:i + 16])

    losses, mem = _train(model, opt, batches, F.cross_entropy)
    _check(losses, mem, "LeNet")
    model.eval()
    with dg.no_grad():
        acc = (model(dg.tensor(x)).argmax(1).numpy() == y).mean()
    assert acc > 0.8, f"LeNet accuracy {acc}"


def test_one_block_transformer_trains_with_flat_memory():
    dg.manual_seed(0)
    rng = np.random.default_rng(1)
    vocab, length = 12, 8
    model = TinyTransformer(vocab, length)
    opt = dg.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    sched = dg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50, eta_min=1e-3)

    def batches(step):
        # sequences counting up by a per-sequence stride: the next token is predictable
        # from the two before it (which attention has to look back for)
        start = rng.integers(0, vocab, (16, 1))
        stride = rng.integers(1, 4, (16, 1))
        seq = (start + stride * np.arange(length + 1)) % vocab
        return dg.tensor(seq[:, :-1]), dg.tensor(seq[:, 1:])

    def loss_fn(logits, target):
        return F.cross_entropy(logits.reshape(-1, vocab), target.reshape(-1))

    class Stepper:  # the scheduler steps with the optimizer
        def zero_grad(self):
            opt.zero_grad()

        def step(self):
            opt.step()
            sched.step()

    losses, mem = _train(model, Stepper(), batches, loss_fn, clip=1.0)
    _check(losses, mem, "transformer")
    assert opt.param_groups[0]["lr"] == sched.get_last_lr()[0] < 2e-3
