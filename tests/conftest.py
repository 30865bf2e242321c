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
