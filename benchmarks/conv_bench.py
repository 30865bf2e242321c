"""Conv2d forward + backward, dualgraph eager beside torch eager, in one run.

    python benchmarks/conv_bench.py [--repeat 50] [--threads N]

Input (32, 3, 32, 32) float32, 16 filters 3x3, padding 1, bias; one step is
``out = conv2d(x, w, b); (out * g).sum().backward()`` with x, w and b requiring grad.
Also times a (32, 16, 32, 32) -> 32-filter layer and max_pool2d / avg_pool2d (2x2).
Reports the median over ``--repeat`` steps after warm-up.  Both libraries get the same
thread count (torch.set_num_threads; numpy's BLAS reads OMP/OPENBLAS_NUM_THREADS, set
before numpy is imported).
"""
import argparse
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--repeat", type=int, default=50)
ap.add_argument("--threads", type=int, default=None)
args = ap.parse_args()
if args.threads:
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(args.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import dualgraph as dg  # noqa: E402
from dualgraph.ops import nn_ops as F  # noqa: E402


def median_time(fn, repeat):
    for _ in range(5):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def case(name, shape, wshape, repeat, torch):
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(shape).astype(np.float32)
    w_np = (rng.standard_normal(wshape) * 0.1).astype(np.float32)
    b_np = rng.standard_normal(wshape[0]).astype(np.float32)
    out_shape = (shape[0], wshape[0], shape[2], shape[3])
    g_np = rng.standard_normal(out_shape).astype(np.float32)

    x = dg.tensor(x_np, requires_grad=True)
    w = dg.tensor(w_np, requires_grad=True)
    b = dg.tensor(b_np, requires_grad=True)
    g = dg.tensor(g_np)

    def dg_step():
        x.grad = w.grad = b.grad = None
        (F.conv2d(x, w, b, padding=1) * g).sum().backward()

    def dg_fwd():
        with dg.no_grad():
            F.conv2d(x, w, b, padding=1)

    res = {"dg fwd+bwd": median_time(dg_step, repeat), "dg fwd": median_time(dg_fwd, repeat)}
    if torch is not None:
        tx = torch.tensor(x_np, requires_grad=True)
        tw = torch.tensor(w_np, requires_grad=True)
        tb = torch.tensor(b_np, requires_grad=True)
        tg = torch.tensor(g_np)

        def t_step():
            tx.grad = tw.grad = tb.grad = None
            (torch.nn.functional.conv2d(tx, tw, tb, padding=1) * tg).sum().backward()

        def t_fwd():
            with torch.no_grad():
                torch.nn.functional.conv2d(tx, tw, tb, padding=1)

        res["torch fwd+bwd"] = median_time(t_step, repeat)
        res["torch fwd"] = median_time(t_fwd, repeat)
        # same numbers
        dg_step()
        t_step()
        np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=2e-3, atol=2e-3)
    print(f"{name}: x{shape} w{wshape}")
    for k, v in res.items():
        print(f"  {k:14s} {v * 1e3:8.3f} ms")
    if torch is not None:
        print(f"  ratio dg/torch fwd+bwd: {res['dg fwd+bwd'] / res['torch fwd+bwd']:.2f}x, "
              f"fwd: {res['dg fwd'] / res['torch fwd']:.2f}x")


def pool_case(repeat, torch):
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal((32, 16, 32, 32)).astype(np.float32)
    g_np = rng.standard_normal((32, 16, 16, 16)).astype(np.float32)
    x = dg.tensor(x_np, requires_grad=True)
    g = dg.tensor(g_np)
    print("pooling 2x2: x(32, 16, 32, 32)")
    for name, f, tf in [("max_pool2d", F.max_pool2d, "max_pool2d"), ("avg_pool2d", F.avg_pool2d, "avg_pool2d")]:
        def dg_step():
            x.grad = None
            (f(x, 2) * g).sum().backward()

        line = f"  {name:12s} dg fwd+bwd {median_time(dg_step, repeat) * 1e3:8.3f} ms"
        if torch is not None:
            tx = torch.tensor(x_np, requires_grad=True)
            tg = torch.tensor(g_np)
            tfn = getattr(torch.nn.functional, tf)

            def t_step():
                tx.grad = None
                (tfn(tx, 2) * tg).sum().backward()

            line += f"   torch {median_time(t_step, repeat) * 1e3:8.3f} ms"
        print(line)


def main():
    try:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("torch not installed: dualgraph figures only")
    if torch is not None:
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; numpy {np.__version__}")
    case("conv2d 3->16", (32, 3, 32, 32), (16, 3, 3, 3), args.repeat, torch)
    case("conv2d 16->32", (32, 16, 32, 32), (32, 16, 3, 3), max(5, args.repeat // 5), torch)
    pool_case(max(5, args.repeat // 5), torch)


if __name__ == "__main__":
    main()
