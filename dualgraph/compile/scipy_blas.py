"""Load scipy's ``cython_blas`` extension without ``scipy.linalg``'s package start-up.

numba needs SciPy for BLAS: the first time numba compiles or loads any function, its
registries run ``ensure_blas()`` (``import scipy.linalg.cython_blas``), and the matmuls of
compiled kernels call scipy's sgemm/dgemm through the pointers that extension exports.  The
import statement first runs ``scipy/linalg/__init__.py``, which imports all of scipy.linalg and
scipy's array-API layer: 0.2-0.6 s here, the largest part of a new process's first compiled
call (benchmarks/first_call_results.md).  ``load()`` loads the one extension module the
import system would have loaded, under its own name, so numba's import finds it in
``sys.modules``; the package itself is imported only if the user (or a LAPACK call) imports
it, and then gets its ``cython_blas`` attribute as usual (``_BindOnImport``).

Nothing is changed when ``scipy.linalg`` is already imported, when scipy is missing, or when
the extension file is not found: then numba imports it the usual way.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading

NAME = "scipy.linalg.cython_blas"
_lock = threading.Lock()


class _BindOnImport(importlib.abc.MetaPathFinder):
    """When ``scipy.linalg`` is imported later, set its ``cython_blas`` attribute to the
    module loaded here (the import system does that only for submodules it loads itself)."""

    def find_spec(self, name, path, target=None):
        if name != "scipy.linalg":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        real = spec.loader

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return real.create_module(spec)

            def exec_module(self, module):
                real.exec_module(module)
                if NAME in sys.modules:
                    module.cython_blas = sys.modules[NAME]

        spec.loader = Loader()
        return spec


def load():
    """Put scipy's ``cython_blas`` in ``sys.modules`` (see the module docstring); True when it
    is there afterwards."""
    if NAME in sys.modules:
        return True
    with _lock:
        if NAME in sys.modules:
            return True
        if "scipy.linalg" in sys.modules:
            return _plain_import()
        spec = importlib.util.find_spec("scipy")
        if spec is None or not spec.submodule_search_locations:
            return False
        path = None
        for d in spec.submodule_search_locations:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                p = os.path.join(d, "linalg", "cython_blas" + suffix)
                if os.path.exists(p):
                    path = p
                    break
        if path is None:
            return _plain_import()
        import scipy  # noqa: F401  (the parent package; its own start-up is lazy and cheap)

        ext = importlib.util.spec_from_file_location(NAME, path)
        module = importlib.util.module_from_spec(ext)
        sys.modules[NAME] = module
        try:
            ext.loader.exec_module(module)
        except Exception:  # noqa: BLE001
            del sys.modules[NAME]
            return _plain_import()
        sys.meta_path.insert(0, _BindOnImport())
        return True


def _plain_import():
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        return False
    return True
