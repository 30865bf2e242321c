"""``python -m dualgraph bench`` and ``python -m dualgraph demo`` end to end (in-process, small
sizes): the table, the JSON, the plot, missing and failing peers, a wrong compiled result."""
import importlib.util
import json
import sys
import types

import numpy as np
import pytest

import dualgraph as dg
from dualgraph.__main__ import main as dg_main
from dualgraph.bench import cli
from dualgraph.bench import workloads as W


def _table_cells(out):
    """(workload, system, median cell) of each row of the printed table."""
    rows = []
    for line in out.splitlines():
        parts = [p for p in line.split("  ") if p.strip()]
        if len(parts) >= 3 and parts[0].strip() in W.WORKLOADS and parts[1].strip() in W.SYSTEMS:
            rows.append((parts[0].strip(), parts[1].strip(), parts[2].strip()))
    return rows


def test_bench_end_to_end(tmp_path, capsys):
    js, png = tmp_path / "b.json", tmp_path / "b.png"
    assert dg_main(["bench", "--quick", "--only", "seed_loop,softmax", "--repeat", "3",
                    "--json", str(js), "--plot", str(png), "--no-progress"]) == 0
    out = capsys.readouterr().out
    table = _table_cells(out)
    expect = [(w, s) for w in ("seed_loop", "softmax") for s in W.SYSTEMS if s in W.WORKLOADS[w].systems]
    assert [(w, s) for w, s, _ in table] == expect  # every mode, in order
    doc = json.loads(js.read_text())
    assert [(r["workload"], r["system"]) for r in doc["rows"]] == expect
    assert doc["machine"]["cores"] and doc["machine"]["numpy"] == np.__version__
    for r in doc["rows"]:
        if r["system"] in ("dg eager", "dg.compile", "numpy", "numba"):
            assert r["status"] == "ok", r
        assert r["status"] in ("ok", "missing", "error"), r  # a peer: timed, not installed, or its failure
        if r["status"] == "ok":
            assert r["check"]["ok"] and 0 < r["q1_s"] <= r["median_s"] <= r["q3_s"]
            assert r["samples"] == 3 and r["first_call_s"] > 0 and r["ratio_vs_fastest"] >= 1
    by = {(r["workload"], r["system"]): r for r in doc["rows"]}
    for w in ("seed_loop", "softmax"):
        c, e = by[w, "dg.compile"], by[w, "dg eager"]
        assert c["speedup_vs_eager"] == pytest.approx(e["median_s"] / c["median_s"])
        assert sum(by[w, s]["fastest"] for s in W.SYSTEMS if (w, s) in by) == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --compare against the run just written: one line per row
    assert dg_main(["bench", "--quick", "--only", "seed_loop", "--systems", "numpy,dg.compile",
                    "--repeat", "3", "--compare", str(js), "--no-progress"]) == 0
    out = capsys.readouterr().out.split("change against", 1)[1]
    assert "seed_loop  numpy" in out and "seed_loop  dg.compile" in out and "%" in out


def test_missing_and_failing_peers_are_reported(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "jax", None)  # `import jax` raises ImportError
    monkeypatch.setitem(sys.modules, "tqdm", None)  # no progress bar library: plain lines
    if importlib.util.find_spec("torch") is None:  # CI has no torch: a stand-in that imports
        fake = types.ModuleType("torch")
        fake.__version__ = "0+stand-in"
        monkeypatch.setitem(sys.modules, "torch", fake)

    def broken(inputs):
        raise RuntimeError("simulated peer failure")

    systems = dict(W.WORKLOADS["seed_loop"].systems, torch=broken)
    monkeypatch.setattr(W.WORKLOADS["seed_loop"], "systems", systems)
    rows, loaded = cli.run_bench(["seed_loop"], ["numpy", "torch", "jax.jit"], quick=True, repeat=3)
    cap = capsys.readouterr()
    assert "jax.jit: skipped, jax not installed" in cap.out and "pip install jax" in cap.out
    assert "[1/2] seed_loop" in cap.err  # the plain-line progress
    by = {r["system"]: r for r in rows}
    assert by["jax.jit"]["status"] == "missing" and "pip install jax" in by["jax.jit"]["message"]
    assert by["torch"]["status"] == "error" and "simulated peer failure" in by["torch"]["message"]
    assert by["numpy"]["status"] == "ok" and "jax" not in loaded
    table = cli.format_table(rows)
    assert "not installed" in table and "failed" in table and "simulated peer failure" in table


def test_wrong_compiled_result_is_caught(monkeypatch, tmp_path, capsys):
    def wrong_softmax(x):  # off by one part in 10^4: beyond the stated tolerance (rtol 1e-5)
        return dg.softmax(x, 1) * 1.0001

    def build(inputs):
        f, x = dg.compile(wrong_softmax, fullgraph=True), dg.tensor(inputs["x"])
        return lambda: f(x)

    monkeypatch.setattr(W.WORKLOADS["softmax"], "systems", dict(W.WORKLOADS["softmax"].systems,
                                                                 **{"dg.compile": build}))
    js = tmp_path / "w.json"
    assert cli.main(["--quick", "--only", "softmax", "--systems", "numpy,dg.compile", "--json", str(js),
                     "--no-progress", "--repeat", "3"]) == 0
    out = capsys.readouterr().out
    assert ("softmax", "dg.compile", "WRONG") in _table_cells(out)
    row = {r["system"]: r for r in json.loads(js.read_text())["rows"]}["dg.compile"]
    assert row["status"] == "wrong" and not row["check"]["ok"] and "median_s" not in row
    assert "rtol=1e-05" in row["message"]


def test_check_tolerance():
    ref = [np.array([1.0, 2.0, np.nan], np.float32)]
    assert cli.check([ref[0] * (1 + 5e-6)], ref, 1e-5, 0)[0]
    assert not cli.check([ref[0] * (1 + 5e-5)], ref, 1e-5, 0)[0]
    assert not cli.check([np.array([1.0, 2.0, 3.0])], ref, 1e-5, 0)[0]  # NaN only where numpy has it
    assert not cli.check([np.ones(2)], ref, 1e-5, 0)[0]  # shape


def test_demo_trains_to_95_percent_in_both_modes(tmp_path):
    from dualgraph.bench import demo

    png = tmp_path / "demo.png"
    res = demo.run(steps=200, plot=str(png), log=lambda *a: None)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for mode in ("eager", "compiled"):
        assert res[mode]["accuracy"] > 0.95, (mode, res[mode]["accuracy"])
    e, c = res["eager"]["losses"], res["compiled"]["losses"]
    assert e[0] == pytest.approx(c[0], rel=1e-6)
    assert e[-1] < 0.2 * e[0]
    assert res["max_loss_diff"] < 1e-4  # every step's loss, float32 tolerance


def test_workloads_written_as_plain_python_trace_to_one_graph_loop():
    """The dualgraph versions live inside the package (dualgraph.bench) but are converted by
    AutoGraph like user code (``always_convert``): their Python loops become graph loops."""
    def names(fn, *args):
        return [o.name for o in dg.trace(fn, *args).ops]

    assert names(W.dg_seed_loop, dg.ones(4)).count("while") == 1
    assert names(W.dg_newton, dg.ones(4)) == ["while"]
    xs = (dg.ones(3, 4), dg.ones(4, 4), dg.ones(5, 2, 3))
    assert names(W.dg_rnn_loss, *xs).count("while") == 1
    assert names(dg.value_and_grad(W.dg_rnn_loss, argnums=(0, 1)), *xs).count("while") == 2  # forward, reverse
