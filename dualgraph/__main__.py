"""``python -m dualgraph COMMAND``:

  bench   the reference workloads in dualgraph eager, dg.compile, numpy, numba, torch,
          torch.compile and jax.jit, side by side (``python -m dualgraph bench --help``)
  demo    a spirals classifier trained eagerly, then with its training step compiled
          (``python -m dualgraph demo --help``)

Without a command: this help.  Start with ``python -m dualgraph bench --quick``.
"""
from __future__ import annotations

import sys

USAGE = __doc__.split(":", 1)[1].replace("``", "").strip("\n")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: python -m dualgraph {bench,demo} [options]\n\n" + USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "bench":
        from .bench.cli import main as bench

        return bench(rest)
    if cmd == "demo":
        from .bench.demo import main as demo

        return demo(rest)
    print(f"unknown command {cmd!r}; available: bench, demo (python -m dualgraph --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
