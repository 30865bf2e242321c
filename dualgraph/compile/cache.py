"""The disk cache: one immutable, content-addressed source file per kernel.

``DUALGRAPH_CACHE_DIR`` (default ``$XDG_CACHE_HOME/dualgraph`` or ``~/.cache/dualgraph``)
holds ``kernels/k_<hash>.py``; numba's own cache (``cache=True``) sits beside it in
``__pycache__``, keyed on the file, so a new process skips numba compilation.  The hash
covers the generated source (the optimized graph, with constants passed as arguments),
the dualgraph, numba and numpy versions, the math library's source and the CPU.  Files
are written to a temporary name and renamed, so processes may share the directory; each
file ends with a checksum line, and a truncated or corrupt file is rewritten.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading

_CHECK = "# dualgraph-checksum: "
_lock = threading.Lock()
_env_key = None


def cache_dir():
    d = os.environ.get("DUALGRAPH_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "dualgraph")
    return os.path.join(d, "kernels")


def environment_key():
    """Versions, CPU and math-library sources: anything but the source that changes the
    machine code."""
    global _env_key
    if _env_key is None:
        import numba
        import numpy
        import llvmlite.binding as llvm

        here = os.path.dirname(os.path.abspath(__file__))
        h = hashlib.sha256()
        for mod in ("runtime.py", "mathlib.py", "intrinsics.py", "cached_dot.py", "blas.py", "inline_ops.py"):
            p = os.path.join(here, mod)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    h.update(f.read())
        try:
            cpu = llvm.get_host_cpu_name() + llvm.get_host_cpu_features().flatten()
        except Exception:  # noqa: BLE001
            cpu = "unknown"
        dgver = getattr(sys.modules.get("dualgraph"), "__version__", "0")
        _env_key = f"{numba.__version__}|{numpy.__version__}|{dgver}|{cpu}|{h.hexdigest()}"
    return _env_key


def _digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def kernel_path(source):
    key = _digest(source + "\n" + environment_key())[:32]
    return key, os.path.join(cache_dir(), f"k_{key}.py")


def _valid(path, body):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return False
    head, sep, tail = text.rpartition(_CHECK)
    return bool(sep) and tail.strip() == _digest(head) and head == body


def _atomic_write(path, text):
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".py", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _numba_files(path):
    """numba's cache files (index ``.nbi``, machine code ``.nbc``) of one kernel file."""
    d = os.path.join(os.path.dirname(path), "__pycache__")
    stem = os.path.splitext(os.path.basename(path))[0] + "."
    try:
        return [os.path.join(d, n) for n in os.listdir(d) if n.startswith(stem)]
    except OSError:
        return []


def purge_numba_cache(path):
    """Remove numba's cache files of one kernel file (after a failed load)."""
    for p in _numba_files(path):
        try:
            os.unlink(p)
        except OSError:
            pass


def in_numba_cache(source):
    """Whether numba's disk cache holds machine code for ``source``.  False while the
    environment key is not known yet (numba still being imported: the key would wait for
    the import)."""
    if _env_key is None:
        return False
    return any(p.endswith(".nbi") for p in _numba_files(kernel_path(source)[1]))


def drop(path):
    """Forget a kernel whose numba cache entry failed (a corrupt entry): its numba cache
    files and its loaded module, so the next ``load`` compiles it again."""
    purge_numba_cache(path)
    for k in [k for k, m in sys.modules.items() if getattr(m, "__file__", None) == path]:
        del sys.modules[k]


def load(source, fname="kernel"):
    """The function ``fname`` of ``source``, from its content-addressed file (written if
    missing or corrupt).  Returns ``(function, path)``."""
    key, path = kernel_path(source)
    body = source
    with _lock:
        if not _valid(path, body):
            purge_numba_cache(path)
            _atomic_write(path, body + _CHECK + _digest(body) + "\n")
        modname = f"dualgraph_kernel_{key}"
        mod = sys.modules.get(modname)
        if mod is None:
            spec = importlib.util.spec_from_file_location(modname, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                del sys.modules[modname]
                raise
    return getattr(mod, fname), path
