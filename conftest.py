"""Doctests over dualgraph/ (``--doctest-modules``): ``dg`` and ``np`` are in scope.

The test run uses one BLAS thread: on a 2-core machine shared with other work, OpenBLAS's
spinning threads made a small GEMM take 0.2-0.4 s instead of 0.3 ms."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import dualgraph as dg  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace["dg"] = dg
    doctest_namespace["np"] = np
