"""Drift benchmark: Vigil's drift_table against the peers on the standard drift workload, in one run.

usage: python benchmarks/drift.py [--rows N] [--calls K] [--peers numpy,nannyml,evidently,alibi]

The workload is the peer benchmarks' (``/work/shared/peer-bench/drift.py``): reference and current frames of
``--rows`` rows each, 15 numeric + 5 categorical (pandas ``category``) features, made by ``make_frame`` below,
a copy of the peers' generator (``common.py``: reference seed 1, current seed 2 with drift on num_0, num_2 and
cat_0), so the figures compare.

Vigil runs in this process: the data are made first (untimed), then ``import vigil.core.metrics`` is timed,
then ``--calls`` timed calls of ``drift_table(ref, cur)`` at its defaults (the first is the cold call; the
warm figure is the median of the others). Peak memory is VmHWM, reset through /proc/self/clear_refs after the
data are made, as the peers read it; "over base" is the peak minus the RSS before the calls. Because that
depends on the allocator (freed memory the process already holds is reused without showing), the memory
Vigil's warm call allocates at its peak is also traced (tracemalloc), beside the same figure for the peers'
NumPy baseline code run in this process.

Each peer then runs in its own subprocess with its own interpreter (``PEER_PYTHON drift.py LIB ROWS CALLS``)
and prints one JSON line (``warm.median_s``, ``cold_s``, ``rss_before_mb``, ``peak_during_mb``...), which is
read here. Evidently's DataDriftPreset takes ~80 s per call at 1M rows: it gets one call (cold = warm). The
peers' places come from the environment:

  VIGIL_PEER_BENCH          the peer-bench directory           (default /work/shared/peer-bench)
  VIGIL_PEER_PYTHON         interpreter for numpy/nannyml/evidently (default /tmp/anchors-venv/bin/python)
  VIGIL_PEER_ALIBI_PYTHON   interpreter for alibi                (default /tmp/anchors-alibi-venv/bin/python)

A peer whose interpreter or script is missing is skipped with a note. The machine is shared and noisy:
compare the ratios of one run, not absolute times. Goals: >= 10x faster than Evidently and NannyML, within
2x of the NumPy baseline (10 quantile bins, PSI + JS), less peak memory than every peer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from measure import busy_s, mem_mb, reset_peak, wait_idle

# the peers' own benchmark scripts and virtual environments (set up once, outside the project)
_BESIDE = Path(__file__).resolve().parents[2] / "shared" / "peer-bench"
PEER_BENCH = Path(os.environ.get("VIGIL_PEER_BENCH", str(_BESIDE)))
PEER_PYTHON = os.environ.get("VIGIL_PEER_PYTHON", "/tmp/anchors-venv/bin/python")
PEER_ALIBI_PYTHON = os.environ.get("VIGIL_PEER_ALIBI_PYTHON", "/tmp/anchors-alibi-venv/bin/python")
PEERS = ("numpy", "nannyml", "evidently", "alibi")
ONE_CALL = {"evidently"}  # ~80 s per call at 1M rows
PEER_TIMEOUT_S = 3600

SPEEDUP_GOAL = 10.0  # vs Evidently and NannyML
NUMPY_GOAL = 0.5  # Vigil's speed at least half the NumPy baseline's (within 2x)

# -- the peers' data generator (the standard workload: same seeds, same distributions) --------------------

CAT_LEVELS = [5, 10, 20, 35, 50]
DRIFTED = ["num_0", "num_2", "cat_0"]


def _cat_probs(levels, reverse=False):
    p = 1.0 / np.arange(1, levels + 1) ** 0.8
    p = p / p.sum()
    return p[::-1].copy() if reverse else p


def make_frame(n, seed, drift=False, n_num=15, n_cat=5, with_label=True):
    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(n_num):
        if i % 3 == 2:
            x = rng.lognormal(mean=0.0, sigma=0.5 + 0.1 * (i % 4), size=n)
        else:
            x = rng.normal(loc=0.1 * i, scale=1.0 + 0.1 * i, size=n)
        cols[f"num_{i}"] = x
    if drift:
        cols["num_0"] = cols["num_0"] + 0.5 * 1.0  # num_0 has sd 1.0
        if n_num > 2:
            cols["num_2"] = cols["num_2"] * 1.5
    for j in range(n_cat):
        levels = CAT_LEVELS[j % len(CAT_LEVELS)]
        codes = rng.choice(levels, size=n, p=_cat_probs(levels, reverse=(drift and j == 0)))
        cats = [f"c{k:02d}" for k in range(levels)]
        cols[f"cat_{j}"] = pd.Categorical.from_codes(codes.astype(np.int8), categories=cats)
    df = pd.DataFrame(cols)
    if with_label:
        z = 0.8 * cols["num_0"] - 0.5 * (cols["num_1"] - 0.1) / 1.1
        if n_num > 2:
            z = z + 0.3 * np.log(cols["num_2"])
        if n_cat > 1:
            z = z + 0.4 * (df["cat_1"].cat.codes.to_numpy() % 3 - 1)
        df["label"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)
    return df


# -- runs --------------------------------------------------------------------------------------------------


def run_vigil(rows: int, calls: int) -> dict:
    ref = make_frame(rows, seed=1, with_label=False)
    cur = make_frame(rows, seed=2, drift=True, with_label=False)
    t0 = time.perf_counter()
    from vigil.core.metrics import drift_table

    import_s = time.perf_counter() - t0
    waited = wait_idle()
    before = mem_mb()
    reset_peak()
    times, foreign, table = [], [], None
    for _ in range(calls):
        b, c, t = busy_s(), time.process_time(), time.perf_counter()
        table = drift_table(ref, cur)
        times.append(time.perf_counter() - t)
        foreign.append(round(max(0.0, (busy_s() - b) - (time.process_time() - c)), 2))
    peak = mem_mb()["VmHWM"]
    warm = times[1:] or times
    traced = {"vigil": traced_peak_mb(lambda: drift_table(ref, cur)), "numpy": traced_peak_mb(numpy_baseline(ref, cur))}
    return {
        "lib": "vigil", "version": "drift_table", "import_s": import_s, "cold_s": times[0],
        "warm_s": statistics.median(warm), "times_s": times, "foreign_cpu_s": foreign, "idle_wait_s": waited,
        "rss_before_mb": before["VmRSS"], "peak_during_mb": peak, "over_base_mb": peak - before["VmRSS"],
        "flagged": sorted(table.loc[table["drifted"], "column"]),
        "methods": sorted(set(table["method"])), "traced_mb": traced,
    }


def numpy_baseline(ref: pd.DataFrame, cur: pd.DataFrame):
    """The peers' NumPy baseline (peer-bench drift.py, LIB=numpy), for an in-process memory comparison only."""
    num = [c for c in ref.columns if c.startswith("num_")]
    cat = [c for c in ref.columns if c.startswith("cat_")]
    r = {c: ref[c].to_numpy() for c in num} | {c: ref[c].cat.codes.to_numpy() for c in cat}
    k = {c: cur[c].to_numpy() for c in num} | {c: cur[c].cat.codes.to_numpy() for c in cat}
    levels = {c: len(ref[c].cat.categories) for c in cat}
    qs = np.linspace(0, 1, 11)[1:-1]

    def hist(x, col, edges):
        if col in levels:
            return np.bincount(x, minlength=levels[col])
        return np.bincount(np.searchsorted(edges[col], x, side="left"), minlength=10)

    def run():
        edges = {c: np.quantile(r[c], qs) for c in num}
        href = {c: hist(r[c], c, edges) for c in num + cat}
        return {c: (href[c], hist(k[c], c, edges)) for c in num + cat}

    return run


def traced_peak_mb(fn) -> float:
    """Peak of the memory NumPy and Python allocate during one warm call of fn (tracemalloc), in MiB.

    Unlike VmHWM it does not depend on whether the allocator can reuse memory the process already holds.
    """
    fn()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return (tracemalloc.get_traced_memory()[1] - base) / 2**20
    finally:
        tracemalloc.stop()


def run_peer(lib: str, rows: int, calls: int) -> dict | str:
    """One peer in its own process; its JSON record, or a note saying why it did not run."""
    python = PEER_ALIBI_PYTHON if lib == "alibi" else PEER_PYTHON
    script = PEER_BENCH / "drift.py"
    if not Path(python).exists():
        return f"skipped: interpreter {python} not found"
    if not script.exists():
        return f"skipped: {script} not found"
    calls = 1 if lib in ONE_CALL else calls
    try:
        proc = subprocess.run([python, str(script), lib, str(rows), str(calls)], cwd=PEER_BENCH,
                              capture_output=True, text=True, timeout=PEER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"skipped: no result within {PEER_TIMEOUT_S} s"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            rec = json.loads(line)
            return {
                "lib": lib, "version": rec.get("version", "?"), "import_s": rec.get("import_s"),
                "cold_s": rec["cold_s"], "warm_s": rec["warm"]["median_s"], "times_s": rec["times_s"],
                "foreign_cpu_s": rec.get("foreign_cpu_s"), "rss_before_mb": rec["rss_before_mb"],
                "peak_during_mb": rec["peak_during_mb"], "over_base_mb": rec["peak_during_mb"] - rec["rss_before_mb"],
                "flagged": rec.get("flagged"), "methods": rec.get("methods"),
            }
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return f"failed (exit {proc.returncode}): {tail[0][:200]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows per side (default 1,000,000)")
    ap.add_argument("--calls", type=int, default=3, help="timed calls per library, the first cold (default 3)")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)} or ''")
    args = ap.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        ap.error(f"unknown peer(s) {unknown}; choose from {', '.join(PEERS)}")
    if args.calls < 1 or args.rows < 10:
        ap.error("--calls must be >= 1 and --rows >= 10")

    print(f"drift: {args.rows:,} vs {args.rows:,} rows x 20 features (15 numeric, 5 categorical), "
          f"{args.calls} calls", flush=True)
    vigil = run_vigil(args.rows, args.calls)
    print(f"vigil: import {vigil['import_s']:.2f} s, cold {vigil['cold_s']:.3f} s, "
          f"calls {[round(t, 3) for t in vigil['times_s']]}, other processes' CPU s per call "
          f"{vigil['foreign_cpu_s']}, flagged {vigil['flagged']}", flush=True)
    results, notes = [vigil], []
    for lib in peers:
        print(f"running {lib}...", flush=True)
        rec = run_peer(lib, args.rows, args.calls)
        if isinstance(rec, str):
            notes.append(f"{lib}: {rec}")
            print(f"  {rec}", flush=True)
        else:
            results.append(rec)
            print(f"  calls {[round(t, 3) for t in rec['times_s']]}, flagged {rec['flagged']}", flush=True)

    print()
    print("| library | version | import s | cold s | warm s (median) | peak over base MiB | Vigil speed-up | "
          "flagged |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for rec in results:
        ratio = "—" if rec is vigil else f"{rec['warm_s'] / vigil['warm_s']:.1f}x"
        imp = "—" if rec.get("import_s") is None else f"{rec['import_s']:.2f}"
        print(f"| {rec['lib']} | {rec['version']} | {imp} | {rec['cold_s']:.3f} | {rec['warm_s']:.3f} | "
              f"{rec['over_base_mb']:.1f} | {ratio} | {', '.join(rec['flagged'] or [])} |")
    for note in notes:
        print(f"note: {note}")
    tm = vigil["traced_mb"]
    print(f"\nallocated at peak during a warm call (tracemalloc, this process): Vigil {tm['vigil']:.1f} MiB, "
          f"the NumPy baseline's code {tm['numpy']:.1f} MiB. Peak over base (VmHWM) includes the cold call; "
          "a process that already holds freed memory can reuse it and show 0.")

    print()
    by = {rec["lib"]: rec for rec in results}
    checks = []
    for lib in ("evidently", "nannyml"):
        if lib in by:
            speedup = by[lib]["warm_s"] / vigil["warm_s"]
            checks.append((f">= {SPEEDUP_GOAL:.0f}x faster than {lib}", speedup >= SPEEDUP_GOAL, f"{speedup:.1f}x"))
    if "numpy" in by:
        rel = by["numpy"]["warm_s"] / vigil["warm_s"]
        checks.append(("within 2x of the NumPy baseline", rel >= NUMPY_GOAL, f"Vigil runs at {rel:.2f}x its speed"))
    others = [rec for rec in results if rec is not vigil]
    if others:
        least = min(others, key=lambda r: r["over_base_mb"])
        checks.append(("less peak memory than every peer", vigil["over_base_mb"] < least["over_base_mb"],
                       f"{vigil['over_base_mb']:.1f} MiB vs {least['over_base_mb']:.1f} MiB ({least['lib']})"))
    checks.append(("flags exactly the drifted columns", vigil["flagged"] == sorted(DRIFTED), str(vigil["flagged"])))
    for goal, ok, detail in checks:
        print(f"goal: {goal}: {'met' if ok else 'NOT met'} ({detail})")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
