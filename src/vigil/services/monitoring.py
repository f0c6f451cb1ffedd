"""Monitoring: profiles per model version x segment x window, and the metrics computed from them.

Profiles are kept at a base grain (an hour or a day, UTC) in the store and
merged into any coarser window: a week is the merge of its days. They are
brought up to date lazily: each read first recomputes the base windows that
received events or labels since the last computation (found through the
events' and labels' ``ingested_at``), so adding a day of events costs time
proportional to that day, never to the history, and ingestion stays fast.

Numeric columns are binned on fixed edges taken once per model version from
the baseline (the training data; the first window's data if the version has
none): 99 inner quantile edges, so every profile of a version is comparable
with every other and with the baseline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vigil.core import profiles as prof
from vigil.core.frames import naive_utc
from vigil.core.metrics import drift
from vigil.core.metrics import performance as perf
from vigil.core.schema import Column, Kind, Role, Schema
from vigil.errors import VigilError
from vigil.services.registry import ModelVersion, Registry, events_table, labels_table, utcnow
from vigil.store.database import quote

#: Window lengths by suffix.
_UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}
#: Fine bins of the numeric baseline: inner edges at these quantiles.
EDGE_QUANTILES = np.linspace(0.01, 0.99, 99)
#: Every tenth fine edge is a decile: the 10 bins PSI and chi-squared use.
DECILE_POSITIONS = np.arange(9, 99, 10)
SCORE_BINS = 1000
#: Profiles kept besides the columns': model quality, and label delay in hours (its count and missing give
#: the labelled and unlabelled events).
PERFORMANCE, DELAY = "__performance__", "__label_delay_hours__"
ALL = ""  # the segment of all events


def parse_window(window: str) -> tuple[str, dt.timedelta]:
    """``("1h" | "1d", length)`` for a window like ``"1h"``, ``"6h"``, ``"1d"``, ``"7d"``, ``"1w"``, ``"30d"``.

    >>> parse_window("1w")
    ('1d', datetime.timedelta(days=7))
    >>> parse_window("6h")
    ('1h', datetime.timedelta(seconds=21600))
    """
    match = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", str(window).lower())
    if not match or int(match.group(1)) == 0:
        raise VigilError(f"window {window!r} is not a length like '1h', '6h', '1d', '7d', '1w' or '30d'")
    length = int(match.group(1)) * _UNITS[match.group(2)]
    if length < dt.timedelta(days=1) and dt.timedelta(days=1) % length:
        raise VigilError(f"window {window!r}: an hourly window must divide a day (1h, 2h, 3h, 4h, 6h, 8h, 12h)")
    grain = "1h" if length < dt.timedelta(days=1) or length % dt.timedelta(days=1) else "1d"
    return grain, length


def window_start(ts: pd.Series | np.ndarray, length: dt.timedelta) -> np.ndarray:
    """The start of the window each timestamp falls in (windows aligned on 1970-01-01 UTC; weeks on Mondays).

    >>> str(window_start(np.array(["2026-01-07T13:00"], dtype="datetime64[us]"), dt.timedelta(weeks=1))[0])
    '2026-01-05T00:00:00.000000'
    """
    values = np.asarray(ts, dtype="datetime64[us]").astype(np.int64)
    step = int(length / dt.timedelta(microseconds=1))
    origin = 4 * 86_400_000_000 if length % dt.timedelta(weeks=1) == dt.timedelta(0) else 0  # 1970-01-05: Monday
    return ((values - origin) // step * step + origin).astype("datetime64[us]")


@dataclass(frozen=True)
class Baseline:
    """What a version's windows are compared with, and the fixed bins of its numeric columns."""

    edges: dict[str, np.ndarray]
    deciles: dict[str, np.ndarray]
    profiles: dict[str, Any]
    source: str

    def to_json(self) -> str:
        """JSON text."""
        return json.dumps({
            "source": self.source,
            "edges": {k: v.tolist() for k, v in self.edges.items()},
            "deciles": {k: v.tolist() for k, v in self.deciles.items()},
            "profiles": {k: p.to_dict() for k, p in self.profiles.items()},
        })

    @classmethod
    def from_json(cls, text: str) -> Baseline:
        """Read :meth:`to_json` back."""
        data = json.loads(text)
        return cls(edges={k: np.asarray(v, dtype=float) for k, v in data["edges"].items()},
                   deciles={k: np.asarray(v, dtype=float) for k, v in data["deciles"].items()},
                   profiles={k: prof.profile_from_dict(p) for k, p in data["profiles"].items()},
                   source=data["source"])


def monitored_columns(schema: Schema) -> list[Column]:
    """The columns profiled: features, predictions, scores, metadata (text is not profiled)."""
    roles = (Role.FEATURE, Role.PREDICTION, Role.SCORE, Role.METADATA)
    return [c for c in schema.columns if c.role in roles and c.kind != Kind.TEXT and c.pii != "drop"]


def is_numeric(col: Column) -> bool:
    """Whether a column is profiled as numbers (else as categories)."""
    return col.kind == Kind.NUMERIC


def column_profile(col: Column, values: pa.ChunkedArray | pa.Array, edges: np.ndarray | None) -> Any:
    """A fresh profile of one column's values."""
    if col.kind == Kind.EMBEDDING:
        matrix = np.asarray(values.to_pylist() if len(values) else np.empty((0, col.dimension or 0)), dtype=float)
        profile = prof.EmbeddingProfile(dimension=col.dimension or (matrix.shape[1] if matrix.ndim == 2 else 0))
        if len(matrix):
            profile.update(matrix)
        return profile
    if is_numeric(col):
        profile = prof.NumericProfile(edges=edges)
        profile.update(values.to_numpy(zero_copy_only=False).astype(float))
        return profile
    profile = prof.CategoricalProfile()
    if col.kind == Kind.ITEMS:
        values = pa.compute.list_flatten(values)
    profile.update(values.cast(pa.string()))
    return profile


def baseline_edges(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed inner bin edges of a numeric column (its unique 1%..99% quantiles) and, among them, its deciles.

    >>> fine, deciles = baseline_edges(np.arange(1000.0))
    >>> fine[:2], deciles[:2]
    (array([ 9.99, 19.98]), array([ 99.9, 199.8]))
    """
    finite = values[np.isfinite(values)]
    if not len(finite):
        return np.empty(0), np.empty(0)
    quantiles = np.quantile(finite, EDGE_QUANTILES)
    return np.unique(quantiles), np.unique(quantiles[DECILE_POSITIONS])


def coarse_counts(fine_counts: np.ndarray, edges: np.ndarray, coarse_edges: np.ndarray) -> np.ndarray:
    """Counts on fine bins (inner ``edges``) summed into the bins of ``coarse_edges`` (a subset of them).

    >>> coarse_counts(np.array([1, 2, 3, 4]), np.array([1.0, 2.0, 3.0]), np.array([2.0]))
    array([3, 7])
    """
    splits = np.searchsorted(edges, coarse_edges) + 1
    return np.add.reduceat(np.asarray(fine_counts), np.unique(np.concatenate([[0], splits])))


class Monitor:
    """Profiles and metrics of one project's models."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.db = registry.db
        self._baselines: dict[tuple[int, str], Baseline] = {}

    # -- baselines -----------------------------------------------------------------------------------
    def baseline(self, mv: ModelVersion) -> Baseline:
        """The version's training baseline (computed once, kept in the store)."""
        cached = self._baselines.get((mv.model_id, mv.version))
        if cached is not None:
            return cached
        self._baselines[(mv.model_id, mv.version)] = baseline = self._load_baseline(mv)
        return baseline

    def _load_baseline(self, mv: ModelVersion) -> Baseline:
        row = self.db.fetchone("SELECT payload FROM baselines WHERE model_id = ? AND version = ?",
                               [mv.model_id, mv.version])
        if row is not None:
            return Baseline.from_json(row[0])
        table, source = self._baseline_table(mv)
        cols = [c for c in monitored_columns(mv.schema) if c.name in table.column_names]
        bins = {c.name: baseline_edges(table.column(c.name).to_numpy(zero_copy_only=False).astype(float))
                for c in cols if is_numeric(c)}
        edges = {name: fine for name, (fine, _) in bins.items()}
        profiles = {c.name: column_profile(c, table.column(c.name), edges.get(c.name)) for c in cols}
        baseline = Baseline(edges=edges, deciles={name: d for name, (_, d) in bins.items()}, profiles=profiles,
                            source=source)
        with self.db.transaction() as con:
            con.execute("INSERT INTO baselines VALUES (?, ?, ?, ?)",
                        [mv.model_id, mv.version, baseline.to_json(), utcnow()])
        return baseline

    def _baseline_table(self, mv: ModelVersion) -> tuple[pa.Table, str]:
        """The training data, with the model's predictions on it when the artifact can make them."""
        ds = mv.training_dataset
        if ds is None:
            with self.db.lock:
                first = self.db.con.sql(
                    f"SELECT * FROM {events_table(mv.model_id)} WHERE model_version = ? AND timestamp < "
                    f"(SELECT min(timestamp) + INTERVAL 1 DAY FROM {events_table(mv.model_id)} "
                    f"WHERE model_version = ?)", params=[mv.version, mv.version]).to_arrow_table()
            return first, "first day of events"
        table = pq.read_table(self.registry.home / ds.path)
        return _with_predictions(mv, table), f"training data {ds.name}@{ds.version}"

    # -- profiles ------------------------------------------------------------------------------------
    def refresh(self, mv: ModelVersion, grain: str, segment: str = ALL) -> int:
        """Recompute the base windows that received events or labels since last time; returns how many."""
        etable, ltable = events_table(mv.model_id), labels_table(mv.model_id)
        has_labels = mv.schema.target is not None and self.db.table_exists(ltable)
        mark = self.db.fetchone(
            "SELECT events_through, labels_through FROM profile_marks WHERE model_id = ? AND version = ? "
            "AND segment = ? AND grain = ?", [mv.model_id, mv.version, segment, grain])
        events_through, labels_through = mark if mark else (None, None)
        unit = "hour" if grain == "1h" else "day"
        where, params = _segment_filter(segment)
        dirty_sql = (f"SELECT DISTINCT date_trunc('{unit}', e.timestamp) AS w FROM {etable} e "
                     f"WHERE e.model_version = ? AND (? IS NULL OR e.ingested_at > ?) AND {where}")
        dirty_params: list[Any] = [mv.version, events_through, events_through, *params]
        if has_labels:
            dirty_sql += (f" UNION SELECT DISTINCT date_trunc('{unit}', e.timestamp) FROM {ltable} l "
                          f"JOIN {etable} e ON e.event_id = l.event_id WHERE e.model_version = ? "
                          f"AND (? IS NULL OR l.ingested_at > ?) AND {where}")
            dirty_params += [mv.version, labels_through, labels_through, *params]
        new_marks = self.db.fetchone(
            f"SELECT (SELECT max(ingested_at) FROM {etable})"
            + (f", (SELECT max(ingested_at) FROM {ltable})" if has_labels else ", NULL"))
        if mark is not None and tuple(new_marks) == tuple(mark):
            return 0  # nothing arrived since the last computation: the common case of a read
        try:
            dirty = [r[0] for r in self.db.fetchall(dirty_sql, dirty_params)]
        except duckdb.Error as err:
            if segment == ALL:
                raise
            raise VigilError(f"segment {segment!r} is not a condition on this model's event columns: "
                             f"{str(err).splitlines()[0]}") from None
        if not dirty and mark is not None:
            return 0
        baseline = self.baseline(mv)
        step = dt.timedelta(hours=1) if grain == "1h" else dt.timedelta(days=1)
        with self.db.transaction() as con:
            for start in sorted(dirty):
                table = self._window_rows(mv, start, start + step, segment, has_labels)
                con.execute("DELETE FROM profiles WHERE model_id = ? AND version = ? AND segment = ? AND grain = ? "
                            "AND window_start = ?", [mv.model_id, mv.version, segment, grain, start])
                rows = [(name, p.to_bytes().decode()) for name, p in
                        self._profiles_of(mv, table, baseline).items()]
                if rows:
                    con.executemany(
                        "INSERT INTO profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [[mv.model_id, mv.version, segment, grain, start, name, payload, utcnow()]
                         for name, payload in rows])
            con.execute("DELETE FROM profile_marks WHERE model_id = ? AND version = ? AND segment = ? AND grain = ?",
                        [mv.model_id, mv.version, segment, grain])
            con.execute("INSERT INTO profile_marks VALUES (?, ?, ?, ?, ?, ?)",
                        [mv.model_id, mv.version, segment, grain, new_marks[0], new_marks[1]])
        return len(dirty)

    def _window_rows(self, mv: ModelVersion, start: dt.datetime, end: dt.datetime, segment: str,
                     has_labels: bool) -> pa.Table:
        etable = events_table(mv.model_id)
        where, params = _segment_filter(segment)
        target = mv.schema.target
        select, join = "e.*", ""
        if has_labels:
            select += f", l.{quote(target.name)}, l.label_time"
            join = f"LEFT JOIN {labels_table(mv.model_id)} l ON l.event_id = e.event_id"
        with self.db.lock:
            return self.db.con.sql(
                f"SELECT {select} FROM {etable} e {join} WHERE e.model_version = ? AND e.timestamp >= ? "
                f"AND e.timestamp < ? AND {where}", params=[mv.version, start, end, *params]).to_arrow_table()

    def _profiles_of(self, mv: ModelVersion, table: pa.Table, baseline: Baseline) -> dict[str, Any]:
        """Every profile of one window: one per monitored column, plus performance and traffic."""
        schema = mv.schema
        out: dict[str, Any] = {}
        for col in monitored_columns(schema):
            if col.name in table.column_names:
                out[col.name] = column_profile(col, table.column(col.name), baseline.edges.get(col.name))
        traffic = prof.NumericProfile()
        target = schema.target
        if target is not None and target.name in table.column_names and "label_time" in table.column_names:
            labelled = pa.compute.is_valid(table.column(target.name)).to_numpy(zero_copy_only=False)
            delay = (table.column("label_time").to_numpy(zero_copy_only=False)
                     - table.column("timestamp").to_numpy(zero_copy_only=False)) / np.timedelta64(1, "h")
            traffic.update(np.where(labelled, delay.astype(float), np.nan))
            performance = self._performance_profile(mv, table, labelled)
            if performance is not None:
                out[PERFORMANCE] = performance
        else:
            traffic.update(np.full(table.num_rows, np.nan))
        out[DELAY] = traffic
        return out

    def _performance_profile(self, mv: ModelVersion, table: pa.Table, labelled: np.ndarray) -> Any:
        schema = mv.schema
        target, prediction = schema.target, schema.prediction
        if not labelled.any():
            return None
        rows = table.filter(pa.array(labelled))
        y_true = rows.column(target.name).to_numpy(zero_copy_only=False)
        if schema.task == "regression":
            if prediction is None or prediction.name not in rows.column_names:
                return None
            profile = prof.RegressionProfile()
            profile.update(y_true.astype(float), rows.column(prediction.name).to_numpy(zero_copy_only=False)
                           .astype(float))
            return profile
        if schema.task not in ("binary", "multiclass") or not schema.classes:
            return None
        classes = list(schema.classes)
        scores = _scores_matrix(schema, rows)
        y_pred = (rows.column(prediction.name).to_numpy(zero_copy_only=False)
                  if prediction is not None and prediction.name in rows.column_names else None)
        if y_pred is None and scores is not None:
            y_pred = _predict_from_scores(schema, scores)
        if y_pred is None:
            return None
        profile = prof.ClassificationProfile(classes=classes, bins=SCORE_BINS)
        profile.update(y_true, y_pred, scores)
        return profile

    def window_profiles(self, mv: ModelVersion, window: str, *, segment: str = ALL, start: Any = None,
                        end: Any = None, columns: Iterable[str] | None = None) -> dict[dt.datetime, dict[str, Any]]:
        """Profiles per window (merged from the base grain), oldest first, after a refresh.

        ``columns`` limits what is read (a series of one metric reads only its profiles).
        """
        grain, length = parse_window(window)
        self.refresh(mv, grain, segment)
        where, params = ["model_id = ?", "version = ?", "segment = ?", "grain = ?"], [
            mv.model_id, mv.version, segment, grain]
        if columns is not None:
            names = list(columns)
            where.append(f"column_name IN ({', '.join('?' for _ in names)})" if names else "FALSE")
            params.extend(names)
        for bound, op in ((start, ">="), (end, "<")):
            if bound is not None:
                where.append(f"window_start {op} ?")
                params.append(naive_utc(bound))
        rows = self.db.fetchall(
            f"SELECT window_start, column_name, payload FROM profiles WHERE {' AND '.join(where)} "
            f"ORDER BY window_start", params)
        if not rows:
            return {}
        starts = window_start(np.array([r[0] for r in rows], dtype="datetime64[us]"), length)
        merged: dict[dt.datetime, dict[str, Any]] = {}
        for (_, name, payload), w in zip(rows, starts, strict=True):
            key = pd.Timestamp(w).to_pydatetime()
            profile = prof.profile_from_dict(json.loads(payload))
            bucket = merged.setdefault(key, {})
            bucket[name] = bucket[name].merge(profile) if name in bucket else profile
        return merged


    # -- metrics -------------------------------------------------------------------------------------
    def _reference(self, mv: ModelVersion, baseline: Any, window: str, segment: str,
                   windows: dict[dt.datetime, dict[str, Any]]) -> Any:
        """The baseline profiles: a dict for a fixed baseline, or None for "previous" (rolling)."""
        if baseline == "training":
            return self.baseline(mv).profiles
        if baseline == "previous":
            return None
        if isinstance(baseline, tuple | list) and len(baseline) == 2:
            merged: dict[str, Any] = {}
            for profiles in self.window_profiles(mv, window, segment=segment, start=baseline[0],
                                                 end=baseline[1]).values():
                for name, p in profiles.items():
                    merged[name] = merged[name].merge(p) if name in merged else p
            if not merged:
                raise VigilError(f"the reference window {baseline[0]} to {baseline[1]} holds no events")
            return merged
        raise VigilError(f"baseline must be 'training', 'previous' or a (start, end) pair, got {baseline!r}")

    def drift(self, mv: ModelVersion, *, window: str = "1d", baseline: Any = "training", segment: str = ALL,
              start: Any = None, end: Any = None, methods: dict[str, str] | None = None,
              thresholds: dict[str, float] | None = None, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """Drift of the monitored columns (all, or ``columns``) per window against the baseline."""
        monitored = [c for c in monitored_columns(mv.schema) if columns is None or c.name in set(columns)]
        if columns is not None and len(monitored) < len(set(columns)):
            unknown = sorted(set(columns) - {c.name for c in monitored})
            raise VigilError(f"columns {unknown} are not monitored columns of model {mv.model!r}")
        windows = self.window_profiles(mv, window, segment=segment, start=start, end=end,
                                       columns=[c.name for c in monitored])
        fixed = self._reference(mv, baseline, window, segment, windows)
        bl = self.baseline(mv)
        methods, thresholds = methods or {}, thresholds or {}
        rows = []
        previous: dict[str, Any] | None = None
        source = bl.source if baseline == "training" else str(baseline)
        for start_, profiles in windows.items():
            reference = fixed if fixed is not None else previous
            previous = profiles
            if reference is None:
                continue
            for col in monitored:
                cur, ref = profiles.get(col.name), reference.get(col.name)
                if cur is None or ref is None or cur.is_empty or ref.is_empty or col.kind == Kind.EMBEDDING:
                    continue
                if is_numeric(col):
                    result = numeric_drift(ref, cur, bl.edges[col.name], bl.deciles[col.name],
                                           method=methods.get(col.name), threshold=thresholds.get(col.name))
                else:
                    result = categorical_drift(ref, cur, method=methods.get(col.name),
                                               threshold=thresholds.get(col.name))
                rows.append({"window": start_, "segment": segment or "all", "column": col.name,
                             "role": col.role.value, "kind": "numeric" if is_numeric(col) else "categorical",
                             **result, "status": "drift" if result["drifted"] else "ok", "baseline": source})
        return _frame(rows, ["window", "segment", "column", "role", "kind", "method", "value", "threshold",
                             "drifted", "status", "p_value", "psi", "js_distance", "hellinger", "baseline"])

    def performance(self, mv: ModelVersion, *, window: str = "1d", segment: str = ALL, start: Any = None,
                    end: Any = None, threshold: float | None = None, average: str | None = None,
                    metrics: Iterable[str] | None = None) -> pd.DataFrame:
        """Model quality per window from labelled events (see ``Store.performance``)."""
        rows = []
        for start_, profiles in self.window_profiles(mv, window, segment=segment, start=start, end=end,
                                                     columns=[PERFORMANCE, DELAY]).items():
            p = profiles.get(PERFORMANCE)
            events = _events_in(profiles)
            if p is None or p.is_empty:
                continue
            for metric, value in performance_metrics(mv.schema, p, threshold=threshold, average=average,
                                                     metrics=metrics).items():
                rows.append({"window": start_, "segment": segment or "all", "metric": metric, "value": value,
                             "labelled": int(p.count), "events": events})
        return _frame(rows, ["window", "segment", "metric", "value", "labelled", "events"])

    def traffic(self, mv: ModelVersion, *, window: str = "1d", segment: str = ALL, start: Any = None,
                end: Any = None) -> pd.DataFrame:
        """Event count, label coverage and label delay per window."""
        rows = []
        for start_, profiles in self.window_profiles(mv, window, segment=segment, start=start, end=end,
                                                     columns=[DELAY]).items():
            delay = profiles[DELAY]
            events = delay.count + delay.missing
            median = float(delay.quantiles([0.5])[0]) if delay.count else float("nan")
            for metric, value in (("events", events), ("labelled", delay.count),
                                  ("label_coverage", delay.count / events if events else float("nan")),
                                  ("label_delay_hours_median", median),
                                  ("label_delay_hours_mean", delay.mean if delay.count else float("nan"))):
                rows.append({"window": start_, "segment": segment or "all", "metric": metric, "value": float(value)})
        return _frame(rows, ["window", "segment", "metric", "value"])

    def integrity(self, mv: ModelVersion, *, window: str = "1d", segment: str = ALL, start: Any = None,
                  end: Any = None) -> pd.DataFrame:
        """Per window and column: missing rate, out-of-range and unseen-category shares, quarantined rows."""
        bl = self.baseline(mv)
        grain, length = parse_window(window)
        quarantined = self._quarantined(mv, length)
        rows = []
        for start_, profiles in self.window_profiles(mv, window, segment=segment, start=start, end=end).items():
            for col in monitored_columns(mv.schema):
                p, ref = profiles.get(col.name), bl.profiles.get(col.name)
                if p is None or col.kind == Kind.EMBEDDING:
                    continue
                total = p.count + p.missing
                metrics = {"missing_rate": p.missing / total if total else float("nan")}
                if is_numeric(col) and ref is not None and not ref.is_empty and p.count:
                    below, above = _outside_share(p, ref.min, ref.max)
                    metrics["out_of_range_rate"] = below + above
                    metrics["outlier_rate"] = sum(_outside_share(p, *robust_range(ref)))
                elif not is_numeric(col) and ref is not None and not ref.is_empty and p.count:
                    known = ref.frequencies()
                    metrics["unseen_category_rate"] = sum(
                        v for k, v in p.frequencies().items() if k not in known) / p.count
                for metric, value in metrics.items():
                    rows.append({"window": start_, "segment": segment or "all", "column": col.name,
                                 "metric": metric, "value": float(value)})
            refused = quarantined.get(start_, {})
            rows.append({"window": start_, "segment": segment or "all", "column": None,
                         "metric": "quarantined_rows", "value": float(sum(refused.values()))})
            for (column, reason), n in sorted(refused.items(), key=lambda item: (str(item[0][0]), item[0][1])):
                if column is not None:  # type violations, missing required values... by column
                    rows.append({"window": start_, "segment": segment or "all", "column": column,
                                 "metric": f"quarantined_{reason}", "value": float(n)})
        return _frame(rows, ["window", "segment", "column", "metric", "value"])

    def worst_segments(self, mv: ModelVersion, *, metric: str = "accuracy", by: list[str] | None = None,
                       start: Any = None, end: Any = None, min_count: int = 30, threshold: float | None = None,
                       max_categories: int = 50) -> pd.DataFrame:
        """Segments (one column's value each) ranked from worst to best on a performance metric.

        The first step of root-cause analysis: which slice of traffic drags the
        metric down. ``by`` defaults to the categorical features and metadata
        with at most ``max_categories`` values; segments with fewer than
        ``min_count`` labelled events are left out.
        """
        schema = mv.schema
        if schema.target is None:
            raise VigilError(f"model {mv.model!r} has no target column, so it has no performance to rank")
        candidates = [c for c in schema.columns if c.role in (Role.FEATURE, Role.METADATA)
                      and c.kind in (Kind.CATEGORICAL, Kind.BOOLEAN)]
        if by is None:
            bl = self.baseline(mv)
            by = [c.name for c in candidates
                  if c.name not in bl.profiles or len(bl.profiles[c.name].frequencies()) <= max_categories]
        unknown = [b for b in by if b not in schema]
        if unknown:
            raise VigilError(f"columns {unknown} are not columns of model {mv.model!r}")
        if not self.db.table_exists(labels_table(mv.model_id)):
            return _frame([], _WORST_COLUMNS)
        where, params = ["e.model_version = ?"], [mv.version]
        for bound, op in ((start, ">="), (end, "<")):
            if bound is not None:
                where.append(f"e.timestamp {op} ?")
                params.append(naive_utc(bound))
        needed = {schema.target.name, *by, *(c.name for c in schema.scores)}
        if schema.prediction is not None:
            needed.add(schema.prediction.name)
        select = ", ".join(f"l.{quote(n)}" if n == schema.target.name else f"e.{quote(n)}" for n in sorted(needed))
        with self.db.lock:
            table = self.db.con.sql(
                f"SELECT {select} FROM {events_table(mv.model_id)} e JOIN {labels_table(mv.model_id)} l "
                f"ON l.event_id = e.event_id WHERE {' AND '.join(where)}", params=params).to_arrow_table()
        overall_profile = self._performance_profile(mv, table, np.ones(table.num_rows, dtype=bool))
        if overall_profile is None:
            return _frame([], _WORST_COLUMNS)
        overall = performance_metrics(schema, overall_profile, threshold=threshold)
        if metric not in overall:
            raise VigilError(f"metric {metric!r} is not available for this model; choose from {sorted(overall)}")
        higher_is_better = metric not in _LOWER_IS_BETTER
        rows = []
        for column in by:
            values = table.column(column).cast(pa.string()).to_numpy(zero_copy_only=False)
            for value in pd.unique(values):
                mask = values == value if value is not None else pd.isna(values)
                if mask.sum() < min_count:
                    continue
                profile = self._performance_profile(mv, table, np.asarray(mask, dtype=bool))
                got = performance_metrics(schema, profile, threshold=threshold).get(metric, float("nan"))
                rows.append({"column": column, "value": value, "segment": segment_key({column: value}),
                             "metric": metric, "score": got, "overall": overall[metric],
                             "gap": (got - overall[metric]) if higher_is_better else (overall[metric] - got),
                             "labelled": int(mask.sum())})
        frame = _frame(rows, _WORST_COLUMNS)
        return frame.sort_values("gap", kind="stable").reset_index(drop=True)

    def _quarantined(self, mv: ModelVersion, length: dt.timedelta) -> dict[dt.datetime, dict[tuple[Any, str], int]]:
        """Rows refused per window (by when they were refused: their own time may be what was wrong),
        counted by column and reason."""
        rows = self.db.fetchall(
            "SELECT quarantined_at, column_name, reason, count(*) FROM quarantine WHERE model_id = ? "
            "AND version = ? GROUP BY 1, 2, 3", [mv.model_id, mv.version])
        out: dict[dt.datetime, dict[tuple[Any, str], int]] = {}
        if rows:
            starts = window_start(np.array([r[0] for r in rows], dtype="datetime64[us]"), length)
            for (_, column, reason, n), w in zip(rows, starts, strict=True):
                counts = out.setdefault(pd.Timestamp(w).to_pydatetime(), {})
                counts[(column, reason)] = counts.get((column, reason), 0) + n
        return out


def segment_key(segment: Any) -> str:
    """The canonical text of a segment: ``""`` for all events, else a SQL condition on event columns.

    A mapping ``{column: value}`` (or ``{column: [values]}``) becomes equality tests joined by AND.

    >>> segment_key(None)
    ''
    >>> print(segment_key({"sex": "Female", "age-band": ["18-25", "26-35"]}))
    "sex" = 'Female' AND "age-band" IN ('18-25', '26-35')
    """
    if segment is None or segment == ALL:
        return ALL
    if isinstance(segment, dict):
        parts = []
        for column, value in segment.items():
            if isinstance(value, list | tuple | set):
                parts.append(f"{quote(column)} IN ({', '.join(_literal(v) for v in value)})")
            else:
                parts.append(f"{quote(column)} = {_literal(value)}")
        return " AND ".join(parts)
    if isinstance(segment, str):
        return segment.strip()
    raise VigilError(f"a segment is a {{column: value}} mapping or a SQL condition, got {type(segment).__name__}")


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(float(value)) if isinstance(value, float | np.floating) else str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


def _segment_filter(segment: str) -> tuple[str, list[Any]]:
    """SQL for a segment key (see :func:`segment_key`)."""
    return ("TRUE", []) if segment == ALL else (f"({segment})", [])



def _scores_matrix(schema: Schema, rows: pa.Table) -> np.ndarray | None:
    scores = [c for c in schema.scores if c.name in rows.column_names]
    if not scores:
        return None
    if schema.task == "binary":
        return rows.column(scores[0].name).to_numpy(zero_copy_only=False).astype(float)
    by_class = {c.class_label: c.name for c in scores}
    if len(by_class) != len(schema.classes) or any(str(k) not in by_class for k in schema.classes):
        return None
    return np.column_stack([rows.column(by_class[str(k)]).to_numpy(zero_copy_only=False).astype(float)
                            for k in schema.classes])


def _predict_from_scores(schema: Schema, scores: np.ndarray) -> np.ndarray:
    classes = np.asarray(schema.classes, dtype=object)
    if scores.ndim == 1:
        return np.where(scores >= 0.5, classes[-1], classes[0])
    return classes[np.argmax(scores, axis=1)]


def _with_predictions(mv: ModelVersion, table: pa.Table) -> pa.Table:
    """The training table plus the model's prediction and score columns, when its artifact can make them."""
    schema = mv.schema
    if mv.artifact_sha256 is None:
        return table
    features = [c.name for c in schema.features if c.name in table.column_names]
    try:
        model = mv.load_model()
        frame = table.select(features).to_pandas()
        if schema.prediction is not None and hasattr(model, "predict"):
            table = table.append_column(schema.prediction.name, pa.array(model.predict(frame)))
        if schema.task == "binary" and schema.scores and hasattr(model, "predict_proba"):
            table = table.append_column(schema.scores[0].name, pa.array(model.predict_proba(frame)[:, -1]))
    except Exception:  # noqa: BLE001 - a model that cannot score its own training data leaves no output baseline
        return table
    return table



def numeric_drift(ref: Any, cur: Any, edges: np.ndarray, deciles: np.ndarray, *, method: str | None = None,
                  threshold: float | None = None) -> dict[str, Any]:
    """Drift of a numeric column between two profiles binned on the same ``edges``.

    PSI, Jensen–Shannon, Hellinger and chi-squared use the baseline's deciles;
    KS and the normalised Wasserstein distance use the fine bins (approximations
    at the bins' resolution, as :mod:`vigil.core.metrics.drift` documents).
    """
    fine_r, fine_c = np.asarray(ref.hist, dtype=float), np.asarray(cur.hist, dtype=float)
    coarse_r, coarse_c = coarse_counts(fine_r, edges, deciles), coarse_counts(fine_c, edges, deciles)
    _, ks_p = drift.ks_from_counts(fine_r, fine_c)
    stats = {
        "wasserstein": drift.wasserstein_from_counts(
            fine_r, fine_c, edges, lower=min(ref.min, cur.min, *edges[:1]), upper=max(ref.max, cur.max, *edges[-1:]),
            scale=max(ref.std, drift.MIN_SCALE)),
        "psi": drift.psi_from_counts(coarse_r, coarse_c),
        "js_distance": drift.js_distance_from_counts(coarse_r, coarse_c),
        "hellinger": drift.hellinger_from_counts(coarse_r, coarse_c),
        "ks_p_value": ks_p,
    }
    return drift.decide(stats, "numeric", method, threshold)


def categorical_drift(ref: Any, cur: Any, *, method: str | None = None,
                      threshold: float | None = None) -> dict[str, Any]:
    """Drift of a categorical column: the baseline's categories plus an "unseen" bucket."""
    rf, cf = ref.frequencies(), cur.frequencies()
    labels = sorted(rf)
    r = np.array([rf[k] for k in labels] + [0], dtype=float)
    c = np.array([cf.get(k, 0) for k in labels] + [sum(v for k, v in cf.items() if k not in rf)], dtype=float)
    _, chi_p = drift.chi2_from_counts(r, c)
    stats = {
        "js_distance": drift.js_distance_from_counts(r, c),
        "psi": drift.psi_from_counts(r, c),
        "hellinger": drift.hellinger_from_counts(r, c),
        "chi2_p_value": chi_p,
    }
    return drift.decide(stats, "categorical", method, threshold)


_WORST_COLUMNS = ["column", "value", "segment", "metric", "score", "overall", "gap", "labelled"]
#: Metrics where lower is better (for ranking segments).
_LOWER_IS_BETTER = {"fpr", "fnr", "log_loss", "brier", "ece", "mae", "rmse", "mape"}

def robust_range(profile: Any) -> tuple[float, float]:
    """The baseline's robust range of a numeric column: 3 interquartile ranges beyond the quartiles.

    >>> p = prof.NumericProfile().update(np.arange(101.0))
    >>> robust_range(p)
    (-125.0, 225.0)
    """
    q1, q3 = profile.quantiles([0.25, 0.75])
    return float(q1 - 3 * (q3 - q1)), float(q3 + 3 * (q3 - q1))


def _outside_share(profile: Any, lo: float, hi: float) -> tuple[float, float]:
    """Shares of a profile's values below ``lo`` and above ``hi`` (from its sketch, within its rank error)."""
    below = 0.0 if lo <= profile.min else float(profile.cdf([lo])[0])
    upto = 1.0 if hi >= profile.max else float(profile.cdf([hi])[0])
    return below, 1.0 - upto


def _events_in(profiles: dict[str, Any]) -> int:
    delay = profiles.get(DELAY)
    return int(delay.count + delay.missing) if delay is not None else 0


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    if "window" in frame and len(frame):
        frame["window"] = pd.to_datetime(frame["window"]).dt.tz_localize("UTC")
    return frame


def performance_metrics(schema: Schema, profile: Any, *, threshold: float | None = None,
                        average: str | None = None, metrics: Iterable[str] | None = None) -> dict[str, float]:
    """The quality metrics a performance profile gives, by name (all of them, or those in ``metrics``)."""
    wanted = None if metrics is None else set(metrics)

    def want(*names: str) -> bool:
        return wanted is None or bool(wanted.intersection(names))

    if isinstance(profile, prof.RegressionProfile):
        out = {"mae": profile.mae, "rmse": profile.rmse, "mape": profile.mape, "r2": profile.r2,
               "residual_mean": profile.residual_mean}
        return {k: float(v) for k, v in out.items() if want(k)}
    labels = list(profile.classes)
    binary = profile.is_binary
    cm = profile.confusion
    if binary and threshold is not None and profile.scored:
        cm = perf.confusion_from_histograms(profile.score_hist, threshold, profile.bins)
    ratios = ("precision", "recall", "specificity", "npv", "f1", "fpr", "fnr")
    summary = perf.classification_from_confusion(
        cm, labels=labels, average=average or ("binary" if binary else "macro"),
        pos_label=labels[-1] if binary else None) if want(*ratios) else {}
    if not summary and want("accuracy"):
        summary = {"accuracy": float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0}
    out: dict[str, float] = {}
    for name, value in summary.items():
        if name == "support":
            continue
        if np.ndim(value):  # average=None: one value per class
            out.update({f"{name}[{label}]": float(v) for label, v in zip(labels, value, strict=True)})
        else:
            out[name] = float(value)
    if profile.scored:
        if binary:
            # AUCs need both classes in the window; a window without them has no AUC rather than a made-up one
            for name, fn in (("roc_auc", perf.roc_auc_from_histograms), ("pr_auc", perf.pr_auc_from_histograms),
                             ("ece", perf.ece_from_histograms)):
                if want(name):
                    with contextlib.suppress(perf.MetricInputError):
                        out[name] = float(fn(profile.score_hist))
        out["log_loss"] = float(profile.log_loss)
        out["brier"] = float(profile.brier_score)
    return {k: v for k, v in out.items() if wanted is None or k.split("[")[0] in wanted}
