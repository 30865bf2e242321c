"""dualgraph/compile/scipy_blas.py: compiled matmuls run with scipy's BLAS extension loaded
alone (no scipy.linalg start-up), and a later ``import scipy.linalg`` behaves as usual."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import sys
import numpy as np
import dualgraph as dg

f = dg.compile(lambda a, b: a @ b + 1)
a = np.arange(12, dtype=np.float32).reshape(3, 4)
b = np.ones((4, 2), np.float32)
out = f(dg.tensor(a), dg.tensor(b)).numpy()
assert np.array_equal(out, a @ b + 1), out
ext = sys.modules["scipy.linalg.cython_blas"]
assert "sgemm" in ext.__pyx_capi__
print("linalg_before", "scipy.linalg" in sys.modules)

import scipy.linalg
assert scipy.linalg.cython_blas is ext
assert np.allclose(scipy.linalg.solve(np.eye(2) * 2, np.ones(2)), 0.5)
from scipy.linalg import cython_blas
import scipy.linalg.cython_blas as cb
assert cython_blas is ext and cb is ext
g = dg.compile(lambda a, b: (a @ b) * 2)
assert np.array_equal(g(dg.tensor(a), dg.tensor(b)).numpy(), (a @ b) * 2)
print("ok")
"""

FIRST = r"""
import sys
import numpy as np
import scipy.linalg
import dualgraph as dg
from dualgraph.compile import scipy_blas

f = dg.compile(lambda a, b: a @ b)
a = np.ones((2, 3), np.float32)
assert np.array_equal(f(dg.tensor(a), dg.tensor(a.T)).numpy(), a @ a.T)
assert scipy.linalg.cython_blas is sys.modules["scipy.linalg.cython_blas"]
assert not any(type(m).__name__ == "_BindOnImport" for m in sys.meta_path)
print("ok")
"""


def _run(code):
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_compiled_matmul_without_scipy_linalg_startup():
    out = _run(CHILD)
    assert out[-1] == "ok"
    assert out[:2] == ["linalg_before", "False"]


def test_scipy_linalg_imported_first_is_used_as_is():
    assert _run(FIRST)[-1] == "ok"
