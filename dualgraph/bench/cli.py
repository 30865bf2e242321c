"""``python -m dualgraph bench``: the reference workloads in dualgraph eager, dg.compile, numpy,
numba and every installed peer (torch, torch.compile, jax.jit), side by side in one process.

Per workload and system: the first call (the compile, for compiled systems) timed apart, the
result checked against numpy, then the median and interquartile range of the time per call
after warm-up.  A wrong result is reported in its cell and not timed.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback

DESCRIPTION = __doc__.split("\n\n")[0].replace("``", "")
STATUS_TEXT = {"wrong": "WRONG", "error": "failed", "missing": "not installed", "skipped": "skipped"}


# ============================================================================================
# machine
# ============================================================================================


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(mod):
    m = sys.modules.get(mod)
    if m is None:
        try:
            m = importlib.import_module(mod)
        except Exception:  # noqa: BLE001 - a broken peer is reported, not raised
            return None
    return getattr(m, "__version__", "?")


def machine_info(peers_loaded=()):
    import numpy as np

    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": _version("numba"),
    }
    for p in ("torch", "jax"):
        info[p] = _version(p) if p in peers_loaded else None
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        info["load_average"] = None
    return info


def machine_line(m):
    libs = ", ".join(f"{k} {m[k]}" for k in ("python", "numpy", "numba", "torch", "jax") if m.get(k))
    load = f"; load average {m['load_average'][0]:.1f}" if m.get("load_average") else ""
    return f"{m['cpu']}, {m['cores']} cores, {m['os']}; {libs}{load}"


# ============================================================================================
# results: conversion, checking, timing
# ============================================================================================


def to_numpy(out):
    """A system's result as a flat list of numpy arrays."""
    import numpy as np

    if isinstance(out, (tuple, list)):
        return [a for o in out for a in to_numpy(o)]
    if hasattr(out, "detach"):  # dg.Tensor, torch.Tensor
        out = out.detach()
        return [np.array(out.numpy() if hasattr(out, "numpy") else out)]
    return [np.array(out)]


def check(got, ref, rtol, atol):
    """``(ok, worst, message)``: every element within ``atol * max|ref| + rtol * |ref|``
    (NaN only where the reference has NaN); ``worst`` is the largest error over that bound's
    scale (max |ref|)."""
    import numpy as np

    if len(got) != len(ref):
        return False, float("inf"), f"{len(got)} outputs, numpy gives {len(ref)}"
    worst = 0.0
    for i, (g, r) in enumerate(zip(got, ref)):
        g, r = np.asarray(g, np.float64), np.asarray(r, np.float64)
        if g.shape != r.shape:
            return False, float("inf"), f"output {i}: shape {g.shape}, numpy gives {r.shape}"
        scale = float(np.nanmax(np.abs(r))) if r.size and not np.all(np.isnan(r)) else 1.0
        scale = scale or 1.0
        with np.errstate(invalid="ignore"):
            err = np.abs(g - r)
            bad = ~(err <= atol * scale + rtol * np.abs(r)) & ~(np.isnan(g) & np.isnan(r))
        e = float(np.nanmax(err)) / scale if err.size and not np.all(np.isnan(err)) else 0.0
        if bad.any():
            j = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
            return False, e, (f"output {i}{list(j) if j else ''}: {g[j]:.7g}, numpy gives {r[j]:.7g} "
                              f"({int(bad.sum())} of {bad.size} outside rtol={rtol:g}, "
                              f"atol={atol:g}*max|ref|)")
        worst = max(worst, e)
    return True, worst, ""


def time_calls(run, repeat=None, quick=False):
    """Median and quartiles of the time per call after two warm-up calls.  Each sample times
    ``number`` back-to-back calls (enough for ~2 ms), so microsecond calls are measured too."""
    est = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        run()
        est = min(est, time.perf_counter() - t)
    number = max(1, int((1e-3 if quick else 2e-3) / max(est, 1e-9)))
    min_n, max_n, budget = (repeat, repeat, 0) if repeat else ((5, 15, 0.3) if quick else (7, 31, 1.5))
    samples = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while len(samples) < max_n and (len(samples) < min_n or time.perf_counter() - start < budget):
            t = time.perf_counter()
            for _ in range(number):
                run()
            samples.append((time.perf_counter() - t) / number)
    finally:
        if gc_was:
            gc.enable()
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return {"median_s": statistics.median(samples), "q1_s": q[0], "q3_s": q[2], "iqr_s": q[2] - q[0],
            "samples": len(samples), "number": number}


def _short(e, n=90):
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text if len(text) <= n else text[: n - 3] + "..."


def _join_background_compiles():
    """dg.compile compiles prange variants in a background thread after a first call: wait
    for them, so they neither run during the timed calls nor count in the first call."""
    k = sys.modules.get("dualgraph.compile.kernel")
    if k is not None:
        k.join_background_compiles()


def run_cell(w, system, inputs, ref, quick, repeat):
    """One workload x system: build, first call, check against numpy, time."""
    row = {"workload": w.name, "system": system, "size": w.size_text(quick), "status": "ok", "message": ""}
    # dg.compile caps OpenBLAS to one thread once a kernel runs threads of its own (the
    # oversubscription trap); the other systems of this process get BLAS as it was
    k = sys.modules.get("dualgraph.compile.kernel")
    blas = contextlib.nullcontext() if system == "dg.compile" or k is None else k.blas_threads_uncapped()
    with blas:
        return _run_cell(w, system, inputs, ref, quick, repeat, row)


def _run_cell(w, system, inputs, ref, quick, repeat, row):
    try:
        run = w.systems[system](inputs)
        t = time.perf_counter()
        out = run()
        row["first_call_s"] = time.perf_counter() - t
        _join_background_compiles()
        if system == "dg.compile":
            # tiered start: the first call ran the interpreter while numba compiled in the
            # background; ready_s is when the kernels were (the next call checks them too)
            row["ready_s"] = time.perf_counter() - t
            outs = [out, run()]
        else:
            outs = [out]
        for o in outs:
            got = w.compared(to_numpy(o), inputs)
            ok, worst, msg = check(got, ref, w.rtol, w.atol)
            if not ok:
                break
        row["check"] = {"ok": ok, "max_err": worst, "rtol": w.rtol, "atol": w.atol}
        if not ok:
            row.update(status="wrong", message=f"wrong result, not timed: {msg}")
            return row
        row.update(time_calls(run, repeat, quick))
    except Exception as e:  # noqa: BLE001 - a failing system is reported in its cell
        row.update(status="error", message=_short(e), traceback=traceback.format_exc())
    finally:
        gc.collect()
    return row


# ============================================================================================
# the run
# ============================================================================================


def available_peers():
    """``{module: None if importable else the reason}`` for torch and jax."""
    out = {}
    for mod in ("torch", "jax"):
        try:
            importlib.import_module(mod)
            out[mod] = None
        except ImportError as e:
            out[mod] = f"not installed ({e})"
        except Exception as e:  # noqa: BLE001 - a broken install is a skipped peer, not a crash
            out[mod] = f"import failed: {_short(e)}"
    return out


class _Progress:
    """tqdm when it is installed, else one plain line per step (on stderr)."""

    def __init__(self, total, enabled=True):
        self.total, self.i, self.bar = total, 0, None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True,
                                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
            except ImportError:
                self.bar = None

    def start(self, text):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description_str(f"{text:<24}")
        else:
            print(f"[{self.i + 1}/{self.total}] {text}", file=sys.stderr, flush=True)

    def done(self):
        self.i += 1
        if self.bar is not None:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run_bench(names, systems, quick=False, repeat=None, progress=True, log=print):
    from . import workloads as W

    peers = available_peers()
    for mod, why in peers.items():
        if why is not None:
            users = [s for s, (m, _) in W.PEERS.items() if m == mod and s in systems]
            if users:
                log(f"{' and '.join(users)}: skipped, {mod} {why}; install it with: {W.PEERS[users[0]][1]}")
    tasks = []
    for n in names:
        w = W.WORKLOADS[n]
        tasks += [(w, s) for s in W.SYSTEMS if s in w.systems and s in systems]
    bar = _Progress(sum(1 for w, s in tasks if (s not in W.PEERS or peers[W.PEERS[s][0]] is None)
                        and not (quick and (w.name, s) in W.QUICK_SKIP)), progress)
    rows = []
    try:
        for n in names:
            w = W.WORKLOADS[n]
            inputs = w.inputs(quick)
            ref = w.compared(to_numpy(w.systems["numpy"](inputs)()), inputs)
            for ww, s in tasks:
                if ww is not w:
                    continue
                if quick and (n, s) in W.QUICK_SKIP:
                    rows.append({"workload": n, "system": s, "size": w.size_text(quick), "status": "skipped",
                                 "message": W.QUICK_SKIP[n, s]})
                    continue
                if s in W.PEERS and peers[W.PEERS[s][0]] is not None:
                    rows.append({"workload": n, "system": s, "size": w.size_text(quick), "status": "missing",
                                 "message": f"{W.PEERS[s][0]} {peers[W.PEERS[s][0]]}; {W.PEERS[s][1]}"})
                    continue
                bar.start(f"{n} · {s}")
                rows.append(run_cell(w, s, inputs, ref, quick, repeat))
                bar.done()
    finally:
        bar.close()
    _derive(rows)
    return rows, [m for m, why in peers.items() if why is None]


def _derive(rows):
    """speedup of each compiled system over its eager counterpart; ratio to the fastest."""
    from .workloads import EAGER_OF

    by = {(r["workload"], r["system"]): r for r in rows}
    for r in rows:
        r["speedup_vs_eager"] = None
        r["ratio_vs_fastest"] = None
        r["fastest"] = False
        e = EAGER_OF.get(r["system"])
        er = by.get((r["workload"], e)) if e else None
        if r["status"] == "ok" and er is not None and er["status"] == "ok":
            r["speedup_vs_eager"] = er["median_s"] / r["median_s"]
    for wname in dict.fromkeys(r["workload"] for r in rows):
        ok = [r for r in rows if r["workload"] == wname and r["status"] == "ok"]
        if ok:
            best = min(ok, key=lambda r: r["median_s"])
            best["fastest"] = True
            for r in ok:
                r["ratio_vs_fastest"] = r["median_s"] / best["median_s"]


# ============================================================================================
# output: table, markdown, json, plot, compare
# ============================================================================================


def fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


HEADER = ("workload", "system", "median", "IQR", "first call", "vs eager", "vs fastest", "check")


def _first_cell(r):
    """The first call; for dg.compile also when its kernels were compiled (tiered start:
    the first call returns the interpreter's result meanwhile)."""
    first, ready = r.get("first_call_s"), r.get("ready_s")
    if ready is None or first is None or ready < first + 0.05:
        return fmt_time(first)
    return f"{fmt_time(first)} ({fmt_time(ready)})"


def table_rows(rows):
    out = []
    for r in rows:
        if r["status"] == "ok":
            cells = [fmt_time(r["median_s"]), fmt_time(r["iqr_s"]), _first_cell(r),
                     f"{r['speedup_vs_eager']:.3g}x" if r["speedup_vs_eager"] else "",
                     "fastest" if r["fastest"] else f"{r['ratio_vs_fastest']:.3g}x",
                     f"ok ({r['check']['max_err']:.0e})" if r["check"]["max_err"] else "ok (exact)"]
        else:
            first = fmt_time(r.get("first_call_s")) if r.get("first_call_s") is not None else ""
            cells = [STATUS_TEXT[r["status"]], "", first, "", "", r["message"]]
        out.append([r["workload"], r["system"]] + cells)
    return out


def format_table(rows, markdown=False):
    body = table_rows(rows)
    if markdown:
        def esc(c):
            return str(c).replace("|", "\\|")
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += ["| " + " | ".join(esc(c) for c in b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(HEADER)]
    widths[-1] = len(HEADER[-1])  # the last column runs free
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*HEADER), fmt.format(*("-" * w for w in widths))]
    prev = None
    for b in body:
        if prev is not None and b[0] != prev:
            lines.append("")
        prev = b[0]
        lines.append(fmt.format(*b).rstrip())
    return "\n".join(lines)


def _finite(v):
    if isinstance(v, float) and v != v or v in (float("inf"), float("-inf")):
        return None
    return {k: _finite(x) for k, x in v.items()} if isinstance(v, dict) else v


def write_json(path, rows, meta):
    """Strict JSON (a non-finite figure is null); tracebacks of failed cells are left out."""
    doc = dict(meta, rows=[_finite({k: v for k, v in r.items() if k != "traceback"}) for r in rows])
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)


def compare(rows, old_path):
    with open(old_path) as f:
        old = {(r["workload"], r["system"]): r for r in json.load(f)["rows"]}
    head = ("workload", "system", "old median", "new median", "change")
    body = []
    for r in rows:
        o = old.get((r["workload"], r["system"]))
        if o is None:
            body.append([r["workload"], r["system"], "(absent)", fmt_time(r.get("median_s")), "new row"])
            continue
        if r["status"] != "ok" or o.get("status") != "ok":
            body.append([r["workload"], r["system"], fmt_time(o.get("median_s")) if o.get("status") == "ok"
                         else STATUS_TEXT.get(o.get("status"), "?"),
                         fmt_time(r.get("median_s")) if r["status"] == "ok" else STATUS_TEXT[r["status"]],
                         "status " + ("changed" if r["status"] != o.get("status") else "unchanged")])
            continue
        ch = r["median_s"] / o["median_s"] - 1
        mark = "  slower" if ch > 0.1 else ("  faster" if ch < -0.1 else "")
        body.append([r["workload"], r["system"], fmt_time(o["median_s"]), fmt_time(r["median_s"]),
                     f"{ch * 100:+.0f}%{mark}"])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*b).rstrip() for b in body])


COLORS = {"dg eager": "#9ecae1", "dg.compile": "#08519c", "numpy": "#969696", "numba": "#74c476",
          "torch": "#fdae6b", "torch.compile": "#e6550d", "jax.jit": "#756bb1"}


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .workloads import SYSTEMS

    names = list(dict.fromkeys(r["workload"] for r in rows))
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in rows)]
    by = {(r["workload"], r["system"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(names) + 2), 4.6))
    width = 0.8 / max(1, len(systems))
    for j, s in enumerate(systems):
        xs, ys = [], []
        for i, n in enumerate(names):
            r = by.get((n, s))
            if r is not None and r["status"] == "ok":
                xs.append(i + (j - (len(systems) - 1) / 2) * width)
                ys.append(r["median_s"] * 1e3)
                if r["fastest"]:
                    ax.plot(xs[-1], ys[-1] * 1.6, marker="*", color="black", markersize=9, zorder=3)
        ax.bar(xs, ys, width, label=s, color=COLORS.get(s), edgecolor="white", linewidth=0.4)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("median time per call (ms, log scale)")
    ax.set_title(title, fontsize=9)
    ax.plot([], [], marker="*", color="black", linestyle="none", label="fastest")
    ax.legend(fontsize=8, ncol=4, loc="upper left", frameon=False)
    ax.set_ylim(top=ax.get_ylim()[1] * 20)  # room for the legend
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ============================================================================================
# main
# ============================================================================================


def build_parser(prog="python -m dualgraph bench"):
    from .workloads import SYSTEMS, WORKLOADS

    ap = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and a shorter timing budget "
                    "(under a minute on 2 cores once the kernel caches are warm)")
    ap.add_argument("--only", default="", metavar="NAMES",
                    help="comma-separated workloads (of: " + ", ".join(WORKLOADS) + ")")
    ap.add_argument("--systems", default="", metavar="NAMES",
                    help="comma-separated systems (of: " + ", ".join(SYSTEMS) + "); default all")
    ap.add_argument("--repeat", type=int, default=None, metavar="N",
                    help="timed samples per cell (default: adaptive, 7-31, or 5-15 with --quick)")
    ap.add_argument("--json", metavar="PATH", help="write one row per workload x system with all figures")
    ap.add_argument("--plot", metavar="PATH", help="write a PNG: log-scale bars per workload, fastest marked")
    ap.add_argument("--compare", metavar="OLD.json",
                    help="print the change of each row against an earlier --json")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown (for the README)")
    ap.add_argument("--cold", action="store_true",
                    help="empty kernel caches (dualgraph's and torch inductor's, in a temporary directory), "
                         "so first calls show full compile times")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def _split(text, allowed, what):
    if not text:
        return list(allowed)
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad:
        raise SystemExit(f"unknown {what} {', '.join(bad)}; choose from: {', '.join(allowed)}")
    return [n for n in allowed if n in names]


def main(argv=None, prog="python -m dualgraph bench"):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(prog).parse_args(argv)
    if args.cold:
        tmp = tempfile.mkdtemp(prefix="dg-bench-")
        os.environ["DUALGRAPH_CACHE_DIR"] = os.path.join(tmp, "dualgraph")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor")
    from .workloads import SYSTEMS, WORKLOADS

    names = _split(args.only, list(WORKLOADS), "workload")
    systems = _split(args.systems, list(SYSTEMS), "system")
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.perf_counter()
    rows, loaded = run_bench(names, systems, quick=args.quick, repeat=args.repeat,
                             progress=not args.no_progress)
    m = machine_info(loaded)
    command = "python -m dualgraph bench" + (" " + " ".join(argv) if argv else "")
    print(f"\n{command}\n{date}; {machine_line(m)}")
    print("median and interquartile range of the time per call after warm-up; first call (with the "
          "compile) apart; vs eager: speedup over the same library's eager mode; vs fastest: time "
          "over the fastest system's; check: max error against numpy over max|numpy|\n")
    print(format_table(rows, markdown=args.markdown))
    n_bad = sum(r["status"] in ("wrong", "error") for r in rows)
    print(f"\n{len(rows)} runs in {time.perf_counter() - t0:.0f} s"
          + (f"; {n_bad} failed or wrong (see their cells)" if n_bad else ""))
    meta = {"version": 1, "date": date, "command": command, "quick": args.quick, "machine": m,
            "wall_s": time.perf_counter() - t0}
    if args.json:
        write_json(args.json, rows, meta)
        print(f"wrote {args.json}")
    if args.plot:
        try:
            title = "python -m dualgraph bench" + (" --quick" if args.quick else "")
            plot(rows, args.plot, f"{title}  ({date})\n{machine_line(m)}")
            print(f"wrote {args.plot}")
        except ImportError:
            print("--plot needs matplotlib: pip install 'dualgraph[bench]' (or pip install matplotlib)")
    if args.compare:
        print(f"\nchange against {args.compare}:\n")
        print(compare(rows, args.compare))
    return 0
