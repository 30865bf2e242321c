"""The default optimisation pipeline.

    >>> g = optimize(dg.trace(lambda x: (x * 1 + 0).sum(), dg.ones(3)))

With the environment variable ``DUALGRAPH_DEBUG_PASSES=1`` the IR is printed to stderr
after each pass, under a header naming the pass.
"""
from __future__ import annotations

import os
import sys

from ..ir import Graph
from ..verify import verify as _verify
from .cse import cse
from .dce import dce
from .fold import fold
from .licm import licm
from .simplify import simplify

DEFAULT = (dce, cse, fold, simplify, licm, dce)


def optimize(graph: Graph, passes=DEFAULT, *, verify: bool = False) -> Graph:
    """Run ``passes`` (``Graph -> Graph`` functions) in order; ``verify=True`` checks the
    graph after each one (``dualgraph.static.verify``)."""
    debug = os.environ.get("DUALGRAPH_DEBUG_PASSES", "") not in ("", "0")
    if debug:
        print(f"=== input ===\n{graph}", file=sys.stderr)
    for p in passes:
        graph = p(graph)
        name = getattr(p, "__name__", repr(p))
        if debug:
            print(f"=== after {name} ===\n{graph}", file=sys.stderr)
        if verify:
            _verify(graph)
    return graph
