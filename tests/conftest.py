import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run long fuzzing tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="long fuzzing run: use --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# dg.compile: one disk-cache directory for the whole test run (numba compile time counts
# toward the suite's budget; tests that need an empty cache make their own)
import os as _os  # noqa: E402
import tempfile as _tempfile  # noqa: E402

_os.environ.setdefault("DUALGRAPH_CACHE_DIR", _tempfile.mkdtemp(prefix="dualgraph-test-cache-"))

# dg.compile's tiered start (a first call runs the interpreter while numba compiles in the
# background) is off in the suite: the tests compare the kernels themselves with eager code.
# tests/test_compile_tiered.py turns it on; DUALGRAPH_TIERED=1 runs the whole suite with it.
_os.environ.setdefault("DUALGRAPH_TIERED", "0")
