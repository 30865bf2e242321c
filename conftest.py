"""Doctests over dualgraph/ (``--doctest-modules``): ``dg`` and ``np`` are in scope."""
import numpy as np
import pytest

import dualgraph as dg


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace["dg"] = dg
    doctest_namespace["np"] = np
