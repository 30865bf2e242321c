"""The disk cache: content-addressed files, a new process skips numba compilation, corrupt
entries are rebuilt, processes share the directory; the generated source under
NUMBA_DISABLE_JIT=1."""
import os
import subprocess
import sys
import textwrap

import numpy as np

import dualgraph as dg
from dualgraph.compile import cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# one small program per process: the child prints its result and numba's cache counters
CHILD = textwrap.dedent("""
    import sys, json, numpy as np
    import dualgraph as dg
    def f(x, y):
        return dg.exp(x - y).sum() * 2.0, dg.maximum(x, y)
    cf = dg.compile(f, fullgraph=True)
    x = dg.tensor(np.linspace(-1, 1, 7, dtype=np.float32))
    y = dg.tensor(np.linspace(1, -2, 7, dtype=np.float32))
    s, m = cf(x, y)
    (entry,) = cf._cache.values()
    st = entry.kernel.fn.stats
    print(json.dumps({"s": float(s.item()), "m": m.numpy().tolist(),
                      "hits": sum(st.cache_hits.values()), "misses": sum(st.cache_misses.values()),
                      "path": entry.kernel.path}))
""")


def _run(cache_dir, extra_env=None, code=CHILD):
    env = dict(os.environ, DUALGRAPH_CACHE_DIR=str(cache_dir), PYTHONPATH=ROOT)
    env.update(extra_env or {})
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _result(p):
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err
    import json

    return json.loads(out.strip().splitlines()[-1])


def _expected():
    x = np.linspace(-1, 1, 7, dtype=np.float32)
    y = np.linspace(1, -2, 7, dtype=np.float32)
    return float(np.exp(x - y).sum() * 2), np.maximum(x, y).tolist()


def test_second_process_hits_disk_cache_and_corrupt_entries_are_rebuilt(tmp_path):
    s_want, m_want = _expected()
    # two processes compiling the same function at once: both succeed
    a, b = _run(tmp_path), _run(tmp_path)
    ra, rb = _result(a), _result(b)
    for r in (ra, rb):
        np.testing.assert_allclose(r["s"], s_want, rtol=1e-6)
        assert r["m"] == m_want
    assert ra["path"] == rb["path"] and ra["path"].startswith(str(tmp_path))
    # a new process: numba loads the kernel from its cache, no compilation
    r = _result(_run(tmp_path))
    assert r["hits"] == 1 and r["misses"] == 0, r
    np.testing.assert_allclose(r["s"], s_want, rtol=1e-6)
    # a truncated (half-written) source file is detected and rewritten
    path = r["path"]
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])
    r = _result(_run(tmp_path))
    np.testing.assert_allclose(r["s"], s_want, rtol=1e-6)
    with open(path) as f:
        assert f.read() == text
    # corrupt numba cache files: rebuilt, never a crash or a wrong result
    pyc = os.path.join(os.path.dirname(path), "__pycache__")
    for n in os.listdir(pyc):
        with open(os.path.join(pyc, n), "r+b") as f:
            f.truncate(max(1, os.path.getsize(os.path.join(pyc, n)) // 3))
    r = _result(_run(tmp_path))
    np.testing.assert_allclose(r["s"], s_want, rtol=1e-6)
    assert r["m"] == m_want


def test_content_addressed_and_checksummed(tmp_path, monkeypatch):
    monkeypatch.setenv("DUALGRAPH_CACHE_DIR", str(tmp_path))
    src = "# a kernel\nimport numpy as np\n\ndef kernel(a0):\n    return 0\n"
    key, path = cache.kernel_path(src)
    fn, p = cache.load(src)
    assert p == path and os.path.basename(p) == f"k_{key}.py" and fn(1) == 0
    assert cache._valid(path, src)
    with open(path, "a") as f:
        f.write("x = 1\n")
    assert not cache._valid(path, src)
    assert cache.kernel_path(src + "\n")[0] != key


def test_generated_source_under_numba_disable_jit(tmp_path):
    code = textwrap.dedent("""
        import json, numpy as np, dualgraph as dg
        def gelu(x):
            return 0.5 * x * (1 + dg.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))
        def seed(x):
            return dg.fori_loop(0, 20, lambda i, r: dg.cond(r.sum() > 0, lambda r: r * 2,
                                                             lambda r: r + 1, r), x)
        x = dg.tensor(np.linspace(-3, 3, 11, dtype=np.float32))
        m = dg.tensor(np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4))
        outs = []
        for f, a in ((gelu, x), (seed, x - 0.7), (lambda t: dg.softmax(t, 1), m),
                     (lambda t: (t.max(0)[0], t[1:, ::2] @ t.T[::2]), m)):
            got = dg.compile(f, fullgraph=True)(a)
            want = f(a)
            got = got if isinstance(got, tuple) else (got,)
            want = want if isinstance(want, tuple) else (want,)
            outs.append(max(float(np.max(np.abs(g.numpy() - w.numpy()) / (1 + np.abs(w.numpy()))))
                            for g, w in zip(got, want)))
        # large enough for a prange variant: the calls after the first (variant tuning) too
        big = dg.randn(1 << 14)
        cf = dg.compile(lambda t: dg.exp(t) * 2.0, fullgraph=True)
        for _ in range(3):
            r = cf(big)
        w = (dg.exp(big) * 2.0).numpy()
        outs.append(float(np.max(np.abs(r.numpy() - w) / (1 + np.abs(w)))))
        print(json.dumps(outs))
    """)
    p = _run(tmp_path, {"NUMBA_DISABLE_JIT": "1"}, code)
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err
    errs = [float(v) for v in out.strip().splitlines()[-1].strip("[]").split(",")]
    assert max(errs) < 1e-5, errs
