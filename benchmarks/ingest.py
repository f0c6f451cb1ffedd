"""Ingest benchmark: Vigil's log_predictions against a plain DuckDB insert of the same Arrow table.

usage: python benchmarks/ingest.py [--rows N] [--repeats K] [--micro-rows M] [--micro-batch B] [--drop-label]

The data are the standard ingest workload shared with the peer benchmarks: event_id, ts,
model_version, f0..f19 ~ N(0, 1), prediction in [0, 1], label in {0, 1}, built as a pyarrow Table
before any timing.

What is timed, each in a fresh home / DuckDB file, ``--repeats`` times (median reported):

  bulk   Vigil: ``store.log_predictions(model, "1", table)`` of the whole table (validation, de-duplication
         against the stored ids, the insert, the labels, the batch record; one transaction), then waiting
         for the write path's window profiles of those events (``refresh_profiles``), then ``store.close()``
         (which checkpoints); each phase is timed too. Opening the home and registering the model are set-up,
         not timed.
         plain: ``duckdb.connect(new file)``, CREATE TABLE, ``INSERT INTO events SELECT * FROM table``,
         ``close()``.
  micro  the first ``--micro-rows`` rows in ``--micro-batch``-row slices: one ``log_predictions`` call
         (one transaction) per slice, then close; against one autocommit INSERT per slice, then close.

How the data meet Vigil's schema: ``f0..f19`` are numeric features, ``prediction`` is the *score* of a
binary model (a probability; no separate predicted-class column: ``prediction=None, scores="prediction"``),
``label`` is the target, ``ts`` the event time and ``event_id`` the id. ``model_version`` is a column Vigil
keeps itself (it stamps the version passed to ``log_predictions``), so it is dropped from Vigil's batch;
the plain insert keeps it. The label is kept in Vigil's batch (so Vigil also writes 1 label row per event
into its labels table) unless ``--drop-label`` is given.

Peak memory is VmHWM from /proc/self/status, reset through /proc/self/clear_refs before each run; it
includes the Arrow table both sides read from, so "over base" (peak minus RSS before the run) is shown too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

import vigil
from measure import busy_s, mem_mb, reset_peak
from vigil.core.schema import Schema

BULK_GOAL = 0.5          # Vigil's bulk rate at least half the plain insert's
MICRO_GOAL = 50_000      # events/s in 1,000-row calls


def make_table(rows: int) -> pa.Table:
    """The peer benchmark's events, same seed and column order."""
    rng = np.random.default_rng(6)
    cols = {
        "event_id": pa.array([f"evt-{i:016x}" for i in range(rows)], pa.string()),
        "ts": pa.array(np.datetime64("2026-01-01T00:00:00", "us") + np.arange(rows) * np.timedelta64(1000, "us")),
        "model_version": pa.array(np.array(["v1.0.0", "v1.1.0", "v2.0.0"])[rng.integers(0, 3, rows)], pa.string()),
    }
    for i in range(20):
        cols[f"f{i}"] = pa.array(rng.normal(size=rows))
    cols["prediction"] = pa.array(rng.random(rows))
    cols["label"] = pa.array(rng.integers(0, 2, rows, dtype=np.int64))
    return pa.table(cols)


DDL = ("CREATE TABLE events (event_id VARCHAR, ts TIMESTAMP, model_version VARCHAR, "
       + ", ".join(f"f{i} DOUBLE" for i in range(20)) + ", prediction DOUBLE, label BIGINT)")


def vigil_schema(table: pa.Table) -> Schema:
    """Inferred from a small training frame shaped like the events."""
    train = table.slice(0, 1000).drop_columns(["event_id", "ts", "model_version", "prediction"]).to_pandas()
    return Schema.infer(train, target="label", timestamp="ts", prediction=None, scores="prediction")


# -- runs ---------------------------------------------------------------------------------------------


class Run:
    """One timed call: wall and CPU seconds, peak memory, rows checked afterwards."""

    def __init__(self, wall: float, cpu: float, foreign: float, peak: float, over: float, stored: int) -> None:
        self.wall, self.cpu, self.foreign, self.peak, self.over, self.stored = wall, cpu, foreign, peak, over, stored


def timed(setup: Callable[[str], object], body: Callable[[object], None], count: Callable[[str], int]) -> Run:
    folder = tempfile.mkdtemp(prefix="vigil-bench-")
    try:
        state = setup(folder)
        base = mem_mb()["VmRSS"]
        reset_peak()
        busy0, cpu0, t0 = busy_s(), time.process_time(), time.perf_counter()
        body(state)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        foreign = max(0.0, busy_s() - busy0 - cpu)
        peak = mem_mb()["VmHWM"]
        return Run(wall, cpu, foreign, peak, peak - base, count(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def vigil_setup(schema: Schema) -> Callable[[str], object]:
    def setup(folder: str) -> object:
        store = vigil.open(folder)
        store.register_model("bench", version="1", schema=schema)
        return store
    return setup


def vigil_count(folder: str) -> int:
    with duckdb.connect(os.path.join(folder, "vigil.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM events_1").fetchall()[0][0]


def plain_setup(folder: str) -> object:
    return os.path.join(folder, "events.duckdb")


def plain_count(folder: str) -> int:
    with duckdb.connect(os.path.join(folder, "events.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM events").fetchall()[0][0]


#: Vigil's runs split in phases, one dict per run: "stored" (the log_predictions calls), "profiles" (waiting for
#: the write path to bring the window profiles up to date), "close" (the checkpoint).
PHASES: dict[str, list[dict[str, float]]] = {"bulk": [], "micro": []}


def _finish(store, workload: str, started: float, stored: float) -> None:
    t0 = time.perf_counter()
    store.refresh_profiles("bench", version="1")  # waits for the write path's profiles of what was stored
    t1 = time.perf_counter()
    store.close()
    PHASES[workload].append({"stored": stored - started, "profiles": t1 - t0, "close": time.perf_counter() - t1})


def vigil_bulk(table: pa.Table) -> Callable[[object], None]:
    def body(store) -> None:
        started = time.perf_counter()
        res = store.log_predictions("bench", "1", table)
        assert res.accepted == table.num_rows, res.summary()
        _finish(store, "bulk", started, time.perf_counter())
    return body


def vigil_micro(table: pa.Table, batch: int) -> Callable[[object], None]:
    def body(store) -> None:
        started = time.perf_counter()
        accepted = 0
        for off in range(0, table.num_rows, batch):
            accepted += store.log_predictions("bench", "1", table.slice(off, batch)).accepted
        assert accepted == table.num_rows
        _finish(store, "micro", started, time.perf_counter())
    return body


def plain_bulk(table: pa.Table) -> Callable[[object], None]:
    def body(path) -> None:
        con = duckdb.connect(path)
        con.execute(DDL)
        con.register("arrow_events", table)
        con.execute("INSERT INTO events SELECT * FROM arrow_events")
        con.close()
    return body


def plain_micro(table: pa.Table, batch: int) -> Callable[[object], None]:
    def body(path) -> None:
        con = duckdb.connect(path)
        con.execute(DDL)
        for off in range(0, table.num_rows, batch):
            con.register("batch", table.slice(off, batch))
            con.execute("INSERT INTO events SELECT * FROM batch")  # autocommit: one transaction each
            con.unregister("batch")
        con.close()
    return body


def repeat(k: int, setup, body, count, rows: int) -> list[Run]:
    runs = []
    for _ in range(k):
        run = timed(setup, body, count)
        assert run.stored == rows, f"stored {run.stored} rows, expected {rows}"
        runs.append(run)
    return runs


def median(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--micro-rows", type=int, default=100_000)
    parser.add_argument("--micro-batch", type=int, default=1_000)
    parser.add_argument("--drop-label", action="store_true", help="leave the label out of Vigil's batches")
    args = parser.parse_args()

    table = make_table(max(args.rows, args.micro_rows))
    bulk_plain = table.slice(0, args.rows)
    micro_plain = table.slice(0, args.micro_rows)
    drop = ["model_version", "label"] if args.drop_label else ["model_version"]
    bulk_vigil, micro_vigil = bulk_plain.drop_columns(drop), micro_plain.drop_columns(drop)
    schema = vigil_schema(table)

    print(f"vigil {vigil.__version__}, duckdb {duckdb.__version__}, pyarrow {pa.__version__}, "
          f"pandas {pd.__version__}, {os.cpu_count()} CPUs")
    print(f"data: {args.rows:,} rows (Arrow table {table.nbytes / 2**20:.0f} MiB); Vigil batch columns: "
          f"{', '.join(bulk_vigil.column_names[:4])}, ..., {', '.join(bulk_vigil.column_names[-2:])}"
          f"{' (label ingested as labels)' if not args.drop_label else ''}; repeats {args.repeats}\n")

    vsetup = vigil_setup(schema)
    results = {
        ("bulk", "vigil"): repeat(args.repeats, vsetup, vigil_bulk(bulk_vigil), vigil_count, args.rows),
        ("bulk", "plain"): repeat(args.repeats, plain_setup, plain_bulk(bulk_plain), plain_count, args.rows),
        ("micro", "vigil"): repeat(args.repeats, vsetup, vigil_micro(micro_vigil, args.micro_batch), vigil_count,
                                   args.micro_rows),
        ("micro", "plain"): repeat(args.repeats, plain_setup, plain_micro(micro_plain, args.micro_batch),
                                   plain_count, args.micro_rows),
    }

    rows_of = {"bulk": args.rows, "micro": args.micro_rows}
    rates = {key: rows_of[key[0]] / median(runs, "wall") for key, runs in results.items()}
    header = (f"{'workload':<32} {'who':<6} {'median s':>9} {'min s':>7} {'max s':>7} {'cpu s':>7} "
              f"{'others s':>8} {'rows/s':>12} {'Vigil/plain':>12} {'peak MiB':>9} {'over base':>10}")
    print(header)
    print("-" * len(header))
    for (workload, who), runs in results.items():
        rows = rows_of[workload]
        label = (f"bulk: 1 call of {rows:,} rows" if workload == "bulk"
                 else f"micro: {rows // args.micro_batch:,} calls x {args.micro_batch:,} rows")
        ratio = f"{rates[workload, 'vigil'] / rates[workload, 'plain']:.2f}x" if who == "vigil" else ""
        print(f"{label:<32} {who:<6} {median(runs, 'wall'):>9.3f} {min(r.wall for r in runs):>7.3f} "
              f"{max(r.wall for r in runs):>7.3f} {median(runs, 'cpu'):>7.2f} {median(runs, 'foreign'):>8.2f} "
              f"{rates[workload, who]:>12,.0f} "
              f"{ratio:>12} {max(r.peak for r in runs):>9.0f} {max(r.over for r in runs):>10.0f}")
    print("(cpu s: this process; others s: CPU used by other processes on the machine during the run; "
          "peak: VmHWM; over base: peak minus RSS before the run)")
    print("\nVigil's time by phase (median s): stored = the log_predictions calls; profiles = the write path's window "
          "profiles of those events (every feature, output and label, in a background thread, waited for here); "
          "close = the checkpoint")
    stored_rates = {}
    for workload, phases in PHASES.items():
        parts = {name: statistics.median(p[name] for p in phases) for name in ("stored", "profiles", "close")}
        stored_rates[workload] = rows_of[workload] / (parts["stored"] + parts["close"])
        print(f"  {workload:<6} " + ", ".join(f"{name} {value:.3f}" for name, value in parts.items())
              + f"; stored and closed without the profiles: {stored_rates[workload]:,.0f} rows/s = "
              f"{stored_rates[workload] / rates[workload, 'plain']:.2f}x plain")
    bulk_ratio = stored_rates["bulk"] / rates["bulk", "plain"]
    micro_rate = stored_rates["micro"]
    print()
    print(f"GOALS (storing, as recorded before profiles moved to the write path): bulk Vigil/plain = "
          f"{bulk_ratio:.2f}x (goal >= {BULK_GOAL}x: {'met' if bulk_ratio >= BULK_GOAL else 'MISSED'}); "
          f"micro-batches = {micro_rate:,.0f} events/s (goal > {MICRO_GOAL:,}: "
          f"{'met' if micro_rate > MICRO_GOAL else 'MISSED'}); with the profiles: bulk "
          f"{rates['bulk', 'vigil'] / rates['bulk', 'plain']:.2f}x, micro {rates['micro', 'vigil']:,.0f} events/s")


if __name__ == "__main__":
    main()
