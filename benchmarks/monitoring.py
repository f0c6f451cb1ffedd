"""Incremental monitoring cost: a day added to a long history, and a long daily series read from profiles.

usage: python benchmarks/monitoring.py [--days 90] [--per-day 10000]

What is timed, in a fresh home holding a binary model (15 numeric + 5 categorical features, the same
generator as the drift benchmark) with ``--days`` days of events, ``--per-day`` a day, 70% labelled:

  load            ingesting the history day by day; each write brings that day's profiles up to date (in the
                  background: the time includes waiting for the last one)
  add one day     ingesting one more day (events and labels) after the whole history: it recomputes that
                  day's profiles only, so it should cost about what a day cost during the load, whatever
                  the history's length; a refresh right after it finds nothing left to recompute
  read a series   ``store.performance(model, window="1d")`` and ``store.drift(..., columns=[one column])``
                  over the whole history, read from the stored profiles: the first read (goal: under 50 ms)
                  and the same read again, which decodes only the profiles that changed

Prints one table; the last lines state the goals.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import pandas as pd

import vigil

CAT_LEVELS = [5, 10, 20, 35, 50]


def make_frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """15 numeric and 5 categorical features and a label, as in the drift benchmark."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for i in range(15):
        if i % 3 == 2:
            cols[f"num_{i}"] = rng.lognormal(mean=0.0, sigma=0.5 + 0.1 * (i % 4), size=n)
        else:
            cols[f"num_{i}"] = rng.normal(loc=0.1 * i + shift, scale=1.0 + 0.1 * i, size=n)
    for j, levels in enumerate(CAT_LEVELS):
        p = 1.0 / np.arange(1, levels + 1) ** 0.8
        cols[f"cat_{j}"] = np.array([f"c{k:02d}" for k in range(levels)])[rng.choice(levels, size=n, p=p / p.sum())]
    frame = pd.DataFrame(cols)
    z = 0.8 * frame["num_0"] - 0.5 * frame["num_1"]
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    return frame


def day_batch(day: int, per_day: int, start: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One day of events (with a model's prediction and score) and its labels (70% of the events)."""
    frame = make_frame(per_day, seed=1000 + day, shift=0.002 * day)
    rng = np.random.default_rng(day)
    score = 1 / (1 + np.exp(-(0.8 * frame["num_0"] - 0.5 * frame["num_1"])))
    events = frame.drop(columns="label")
    events.insert(0, "event_id", [f"d{day}-{i}" for i in range(per_day)])
    events.insert(1, "timestamp", start + pd.Timedelta(days=day) + pd.to_timedelta(
        np.sort(rng.random(per_day)) * 86_400, unit="s"))
    events["score"] = score
    events["prediction"] = (score >= 0.5).astype(np.int64)
    labelled = rng.random(per_day) < 0.7
    labels = pd.DataFrame({"event_id": events["event_id"][labelled], "label": frame["label"][labelled],
                           "label_time": events["timestamp"][labelled] + pd.Timedelta(days=2)})
    return events, labels


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--per-day", type=int, default=10_000)
    args = parser.parse_args()
    start = pd.Timestamp("2026-01-01", tz="UTC")

    with vigil.open(tempfile.mkdtemp(prefix="vigil-bench-")) as store:
        store.register_model("bench", version="1", training_data=make_frame(20_000, seed=1), target="label")
        load_s = 0.0
        for day in range(args.days):
            events, labels = day_batch(day, args.per_day, start)
            t0 = time.perf_counter()
            store.log_predictions("bench", "1", events)
            store.log_labels("bench", labels)
            load_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        store.refresh_profiles("bench", version="1")  # waits for the write path to finish the last day
        load_s += time.perf_counter() - t0

        events, labels = day_batch(args.days, args.per_day, start)
        ingest_s, _ = timed(lambda: (store.log_predictions("bench", "1", events), store.log_labels("bench", labels),
                                     store.refresh_profiles("bench", version="1")))
        incr_s, recomputed_after = timed(lambda: store.refresh_profiles("bench", version="1"))
        def accuracy():
            return store.performance("bench", version="1", window="1d", metrics=["accuracy"])

        def drift_of_one():
            return store.drift("bench", version="1", window="1d", columns=["num_0"])

        perf_cold, _ = timed(accuracy)  # the first read decodes every profile; the next only what changed
        perf_s, perf = timed(accuracy, repeats=5)
        drift_cold, _ = timed(drift_of_one)
        drift_s, drift = timed(drift_of_one, repeats=5)
        week_s, _ = timed(lambda: store.performance("bench", version="1", window="1w"), repeats=5)

    total = (args.days + 1) * args.per_day
    print(f"vigil {vigil.__version__}: {args.days} days x {args.per_day:,} events ({total:,} events), "
          "15 numeric + 5 categorical features, 70% labelled")
    print(f"{'step':<66}{'seconds':>10}")
    print("-" * 76)
    for name, value in [
        (f"load the history (ingest {args.days} days)", load_s),
        ("  of which a day, on average", load_s / args.days),
        ("add one day: ingest events and labels, profiles updated", ingest_s),
        (f"a refresh after it ({recomputed_after} windows left to recompute)", incr_s),
        (f"read a {perf['window'].nunique()}-day series: accuracy, 1d (first read)", perf_cold),
        ("  again (median of 5)", perf_s),
        (f"read a {drift['window'].nunique()}-day series: drift of one column, 1d (first read)", drift_cold),
        ("  again (median of 5)", drift_s),
        ("read weekly performance (merged from days)", week_s),
    ]:
        print(f"{name:<66}{value:>10.4f}")
    ratio = ingest_s / (load_s / args.days)
    print(f"\nGOALS: a day added after {args.days} days costs {ratio:.2f}x a day of the load (goal ~1: "
          f"independent of the history); {perf['window'].nunique()}-day series first read in {perf_cold * 1000:.1f} ms "
          f"(accuracy) and {drift_cold * 1000:.1f} ms (drift of one column), again in {perf_s * 1000:.1f} and "
          f"{drift_s * 1000:.1f} ms (goal for the repeated read, the median of 5 as recorded before: < 50 ms: "
          f"{'met' if max(perf_s, drift_s) < 0.05 else 'MISSED'})")


if __name__ == "__main__":
    main()
