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
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from vigil.core import profiles as prof
from vigil.core.frames import naive_utc
from vigil.core.metrics import performance as perf
from vigil.core.monitoring import (
    baseline_edges,
    categorical_drift,
    integrity_metrics,
    numeric_drift_series,
    parse_window,
    training_integrity,
    window_start,
)
from vigil.core.schema import Column, Kind, LabelType, Role, Schema
from vigil.core.segments import Segment
from vigil.errors import InvalidParameterError, SchemaError
from vigil.services.registry import ModelVersion, Registry, model_inputs, typed_frame

#: Window lengths by suffix.
SCORE_BINS = 1000
#: Profiles kept besides the columns': model quality, and label delay in hours (its count and missing give
#: the labelled and unlabelled events).
PERFORMANCE, DELAY = "__performance__", "__label_delay_hours__"


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


def segment_kinds(schema: Schema) -> dict[str, str]:
    """The columns a segment may name, with the kind of literal each compares with.

    Features, metadata, prediction, scores and target; not event ids, text, embeddings or item lists, and
    no dropped PII (a hashed PII column compares with its tokens).

    >>> import pandas as pd
    >>> schema = Schema.infer(pd.DataFrame({"age": [30.0], "sex": ["F"], "y": [1]}), target="y")
    >>> segment_kinds(schema)
    {'age': 'number', 'sex': 'string', 'prediction': 'number', 'score': 'number', 'y': 'number'}
    """
    kinds = {Kind.NUMERIC: "number", Kind.CATEGORICAL: "string", Kind.BOOLEAN: "boolean",
             Kind.TIMESTAMP: "timestamp"}
    out = {}
    for col in schema.columns:
        if col.role in (Role.FEATURE, Role.METADATA, Role.PREDICTION, Role.SCORE, Role.TARGET) \
                and col.kind in kinds and col.pii != "drop":
            kind = "string" if col.pii == "hash" else kinds[col.kind]
            if col.kind == Kind.CATEGORICAL and col.pii != "hash" and col.label_type == LabelType.INTEGER:
                kind = "number"
            elif col.kind == Kind.CATEGORICAL and col.pii != "hash" and col.label_type == LabelType.BOOLEAN:
                kind = "boolean"
            out[col.name] = kind
    return out


def typed_segment(schema: Schema, segment: Any) -> Segment:
    """A segment (``None``, a mapping, an expression or a :class:`Segment`) checked against a schema's columns.

    >>> import pandas as pd
    >>> schema = Schema.infer(pd.DataFrame({"age": [30.0], "y": [1]}), target="y")
    >>> typed_segment(schema, "age < 25").canonical
    'age < 25'
    """
    return Segment.of(segment).check(segment_kinds(schema))


def segment_key(segment: Any) -> str:
    """The canonical text of a segment (``""`` for all events): what profiles are keyed by.

    >>> segment_key(None), segment_key({"sex": "Female"})
    ('', "sex == 'Female'")
    """
    return Segment.of(segment).canonical


def segment_label(segment: Segment) -> str:
    """What result frames show in their ``segment`` column: the canonical text, or "all".

    >>> segment_label(Segment.of(None))
    'all'
    """
    return segment.canonical or "all"


def time_bound(value: Any, field: str) -> dt.datetime | None:
    """A time bound (anything pandas reads as a time; naive times are UTC) as a naive UTC datetime, or None.

    >>> time_bound("2026-01-02", "start")
    datetime.datetime(2026, 1, 2, 0, 0)
    """
    if value is None:
        return None
    return naive_utc(value, field=field)


class DecodedProfiles:
    """Stored profiles already decoded, per series (model id, version, segment, grain) and ``(window start,
    column, stamp)``: a read decodes only what changed since the last one. The profiles are shared between reads,
    never changed (merging makes new ones); the series read least recently go first past ``capacity`` profiles.

    >>> cache = DecodedProfiles(capacity=2)
    >>> cache.keep((1, "1", "", "1d"), {("d1", "age", 7): "profile"})
    >>> cache.held((1, "1", "", "1d"))
    {('d1', 'age', 7): 'profile'}
    >>> cache.keep((1, "1", "", "1d"), {("d1", "age", 8): "recomputed"})  # the older stamp goes
    >>> cache.held((1, "1", "", "1d"))
    {('d1', 'age', 8): 'recomputed'}
    """

    def __init__(self, capacity: int = 5000) -> None:
        self.capacity = capacity
        self._series: OrderedDict[tuple[Any, ...], dict[tuple[Any, str, Any], Any]] = OrderedDict()
        self._lock = threading.Lock()

    def held(self, series: tuple[Any, ...]) -> dict[tuple[Any, str, Any], Any]:
        """The decoded profiles of a series (a copy: safe to read while others keep)."""
        with self._lock:
            return dict(self._series.get(series, {}))

    def keep(self, series: tuple[Any, ...], decoded: dict[tuple[Any, str, Any], Any]) -> None:
        """Add what a read decoded, dropping the profiles of the same windows and columns it replaces."""
        if not decoded:
            return
        with self._lock:
            current = {(at, name): stamp for at, name, stamp in decoded}
            kept = {key: p for key, p in self._series.pop(series, {}).items()
                    if current.get(key[:2], key[2]) == key[2]}
            kept.update(decoded)
            if len(kept) <= self.capacity:
                self._series[series] = kept
            while sum(len(v) for v in self._series.values()) > self.capacity:
                self._series.popitem(last=False)


class Monitor:
    """Profiles and metrics of one project's models.

    Reads never write: stored profiles are used where they are up to date and the
    windows that received data since are computed in memory. The write path
    (:meth:`refresh`, run by the store's refresher) is what stores them.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self.profiles = registry.store.profiles
        self.events = registry.store.events
        self._baselines: dict[tuple[int, str], Baseline] = {}
        self._decoded = DecodedProfiles()

    # -- baselines -----------------------------------------------------------------------------------
    def baseline(self, mv: ModelVersion) -> Baseline:
        """The version's baseline: stored at registration (or at the first write of events without training
        data), else computed here from the first day of events, without the model's outputs."""
        cached = self._baselines.get((mv.model_id, mv.version))
        if cached is not None:
            return cached
        payload = self.profiles.baseline(mv.model_id, mv.version)
        if payload is None:
            return self._compute_baseline(mv, None)  # not kept: the stored one may come
        baseline = self._baselines[(mv.model_id, mv.version)] = Baseline.from_json(payload)
        return baseline

    def prepare_baseline(self, mv: ModelVersion, model: Any = None) -> Baseline | None:
        """Compute and store a version's baseline at registration, with ``model``'s outputs on the training data
        (the caller holds the model, so nothing is unpickled). A version without training data has none yet: its
        baseline is its first day of events, stored at the first write of events (:meth:`refresh`)."""
        if mv.training_dataset is None:
            return None
        return self._store_baseline(mv, self._compute_baseline(mv, model))

    def _store_baseline(self, mv: ModelVersion, baseline: Baseline) -> Baseline:
        self.profiles.save_baseline(mv.model_id, mv.version, baseline.to_json())
        self._baselines.pop((mv.model_id, mv.version), None)
        return self.baseline(mv)

    def _compute_baseline(self, mv: ModelVersion, model: Any) -> Baseline:
        table, source = self._baseline_table(mv, model)
        cols = [c for c in monitored_columns(mv.schema) if c.name in table.column_names]
        bins = {c.name: baseline_edges(table.column(c.name).to_numpy(zero_copy_only=False).astype(float))
                for c in cols if is_numeric(c)}
        # a column without a finite value in the baseline has no bins: its profiles keep moments only
        bins = {name: pair for name, pair in bins.items() if len(pair[0])}
        edges = {name: fine for name, (fine, _) in bins.items()}
        profiles = {c.name: column_profile(c, table.column(c.name), edges.get(c.name)) for c in cols}
        return Baseline(edges=edges, deciles={name: d for name, (_, d) in bins.items()}, profiles=profiles,
                        source=source)

    def _baseline_table(self, mv: ModelVersion, model: Any = None) -> tuple[pa.Table, str]:
        """The training data, with ``model``'s predictions on it when given and able to make them."""
        ds = mv.training_dataset
        if ds is None:
            return self.profiles.first_day(mv.model_id, mv.version), "first day of events"
        table = ds.table()
        if model is not None:
            table = _with_predictions(mv, table, model)
        return table, f"training data {ds.name}@{ds.version}"

    # -- profiles ------------------------------------------------------------------------------------
    def _has_labels(self, mv: ModelVersion) -> bool:
        return mv.schema.target is not None and self.events.has_labels(mv.model_id)

    def refresh(self, mv: ModelVersion, grain: str, segment: Any = None) -> int:
        """Recompute and store the base windows that received events or labels since last time (the write path);
        returns how many."""
        seg = typed_segment(mv.schema, segment)
        if mv.training_dataset is None and (mv.model_id, mv.version) not in self._baselines \
                and self.profiles.baseline(mv.model_id, mv.version) is None:
            first_day = self._compute_baseline(mv, None)
            if first_day.profiles and any(not p.is_empty for p in first_day.profiles.values()):
                self._store_baseline(mv, first_day)  # frozen from the first events written
        computed, marks, stale = self._stale_profiles(mv, grain, seg)
        if marks is None:
            return 0
        self.profiles.replace(mv.model_id, mv.version, seg.canonical, grain,
                              {w: {name: p.to_bytes() for name, p in ps.items()} for w, ps in computed.items()},
                              marks, stale=stale)
        return len(computed) + len(stale)

    def _stale_profiles(self, mv: ModelVersion, grain: str, seg: Segment
                        ) -> tuple[dict[dt.datetime, dict[str, Any]], tuple[Any, Any] | None, list[dt.datetime]]:
        """Fresh profiles of the base windows that changed since the stored ones, the marks they bring the
        profiles to (None when nothing changed), and the changed windows that now hold no events."""
        has_labels = self._has_labels(mv)
        target = mv.schema.target.name if has_labels else None
        mark = self.profiles.mark(mv.model_id, mv.version, seg.canonical, grain)
        new_marks = self.profiles.high_water(mv.model_id, has_labels)
        if mark is not None and tuple(new_marks) == tuple(mark):
            return {}, None, []  # nothing arrived since the last computation: the common case of a read
        dirty = self.profiles.dirty_windows(mv.model_id, mv.version, seg, grain, mark, target)
        if not dirty and mark is not None:
            return {}, tuple(new_marks), []
        baseline = self.baseline(mv)
        step = dt.timedelta(hours=1) if grain == "1h" else dt.timedelta(days=1)
        computed: dict[dt.datetime, dict[str, Any]] = {}
        stale: list[dt.datetime] = []
        for start in dirty:
            table = self.profiles.window_rows(mv.model_id, mv.version, start, start + step, seg, target)
            if table.num_rows:
                computed[start] = self._profiles_of(mv, table, baseline)
            else:
                stale.append(start)
        return computed, tuple(new_marks), stale

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

    def window_profiles(self, mv: ModelVersion, window: str, *, segment: Any = None, start: Any = None,
                        end: Any = None, columns: Iterable[str] | None = None) -> dict[dt.datetime, dict[str, Any]]:
        """Profiles per window (merged from the base grain), oldest first, up to date with every stored event.

        ``columns`` limits what is read (a series of one metric reads only its profiles).
        """
        grain, length = parse_window(window)
        seg = typed_segment(mv.schema, segment)
        start, end = time_bound(start, "start"), time_bound(end, "end")
        fresh, _, stale = self._stale_profiles(mv, grain, seg)
        names = None if columns is None else set(columns)
        rows: list[tuple[dt.datetime, str, Any]] = []
        replaced = set(fresh) | set(stale)
        series = (mv.model_id, mv.version, seg.canonical, grain)
        held = self._decoded.held(series)
        decoded: dict[tuple[dt.datetime, str, Any], Any] = {}
        for at, name, stamp, payload in self.profiles.read_stamped(*series, columns=columns, start=start, end=end,
                                                                   have=held):
            key = (at, name, stamp)
            decoded[key] = held[key] if payload is None else prof.profile_from_dict(json.loads(payload))
            if at not in replaced:
                rows.append((at, name, decoded[key]))
        self._decoded.keep(series, decoded)
        for at, profiles in fresh.items():
            if (start is None or at >= start) and (end is None or at < end):
                rows += [(at, name, p) for name, p in profiles.items() if names is None or name in names]
        if not rows:
            return {}
        rows.sort(key=lambda r: r[0])
        starts = window_start(np.array([r[0] for r in rows], dtype="datetime64[us]"), length)
        merged: dict[dt.datetime, dict[str, Any]] = {}
        for (_, name, profile), w in zip(rows, starts, strict=True):
            bucket = merged.setdefault(pd.Timestamp(w).to_pydatetime(), {})
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
                raise InvalidParameterError(f"the reference window {baseline[0]} to {baseline[1]} holds no events",
                                            field="baseline")
            return merged
        raise InvalidParameterError(f"baseline must be 'training', 'previous' or a (start, end) pair, got {baseline!r}",
                                    field="baseline")

    def drift(self, mv: ModelVersion, *, window: str = "1d", baseline: Any = "training", segment: Any = None,
              start: Any = None, end: Any = None, methods: dict[str, str] | None = None,
              thresholds: dict[str, float] | None = None, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """Drift of the monitored columns (all, or ``columns``) per window against the baseline."""
        segment = typed_segment(mv.schema, segment)
        label = segment_label(segment)
        monitored = [c for c in monitored_columns(mv.schema) if columns is None or c.name in set(columns)]
        if columns is not None and len(monitored) < len(set(columns)):
            unknown = sorted(set(columns) - {c.name for c in monitored})
            raise InvalidParameterError(f"columns {unknown} are not monitored columns of model {mv.model!r}",
                                        field="columns")
        windows = self.window_profiles(mv, window, segment=segment, start=start, end=end,
                                       columns=[c.name for c in monitored])
        fixed = self._reference(mv, baseline, window, segment, windows)
        bl = self.baseline(mv)
        methods, thresholds = methods or {}, thresholds or {}
        rows: list[dict[str, Any]] = []
        numeric: dict[tuple[str, int], tuple[Any, list[tuple[int, Any]]]] = {}  # (column, id) -> reference, rows
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
                if is_numeric(col) and col.name not in bl.edges:
                    continue  # no finite value in the baseline to compare with
                rows.append({"window": start_, "segment": label, "column": col.name, "role": col.role.value,
                             "kind": "numeric" if is_numeric(col) else "categorical", "baseline": source})
                if is_numeric(col):  # computed below, a column's windows against one reference at once
                    numeric.setdefault((col.name, id(ref)), (ref, []))[1].append((len(rows) - 1, cur))
                else:
                    rows[-1].update(categorical_drift(ref, cur, method=methods.get(col.name),
                                                      threshold=thresholds.get(col.name)))
        for (name, _), (ref, items) in numeric.items():
            results = numeric_drift_series(ref, [cur for _, cur in items], bl.edges[name], bl.deciles[name],
                                           method=methods.get(name), threshold=thresholds.get(name))
            for (i, _), result in zip(items, results, strict=True):
                rows[i].update(result)
        return typed_frame(rows, DRIFT_FRAME)

    def performance(self, mv: ModelVersion, *, window: str = "1d", segment: Any = None, start: Any = None,
                    end: Any = None, threshold: float | None = None, average: str | None = None,
                    metrics: Iterable[str] | None = None) -> pd.DataFrame:
        """Model quality per window from labelled events (see ``Store.performance``)."""
        segment = typed_segment(mv.schema, segment)
        label = segment_label(segment)
        rows = []
        for start_, profiles in self.window_profiles(mv, window, segment=segment, start=start, end=end,
                                                     columns=[PERFORMANCE, DELAY]).items():
            p = profiles.get(PERFORMANCE)
            events = _events_in(profiles)
            if p is None or p.is_empty:
                continue
            for metric, value in performance_metrics(mv.schema, p, threshold=threshold, average=average,
                                                     metrics=metrics).items():
                rows.append({"window": start_, "segment": label, "metric": metric, "value": value,
                             "labelled": int(p.count), "events": events})
        return typed_frame(rows, PERFORMANCE_FRAME)

    def traffic(self, mv: ModelVersion, *, window: str = "1d", segment: Any = None, start: Any = None,
                end: Any = None) -> pd.DataFrame:
        """Event count, label coverage and label delay per window."""
        segment = typed_segment(mv.schema, segment)
        label = segment_label(segment)
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
                rows.append({"window": start_, "segment": label, "metric": metric, "value": float(value)})
        return typed_frame(rows, TRAFFIC_FRAME)

    def integrity(self, mv: ModelVersion, *, window: str = "1d", segment: Any = None, start: Any = None,
                  end: Any = None) -> pd.DataFrame:
        """Per window and column: missing rate, out-of-range, outlier and unseen-category shares, each beside the
        same figure on the baseline (``training``), and the rows quarantined in the window with what placed them
        there (``counted_by``)."""
        segment = typed_segment(mv.schema, segment)
        label = segment_label(segment)
        bl = self.baseline(mv)
        grain, length = parse_window(window)
        training = {name: training_integrity(ref) for name, ref in bl.profiles.items()}
        windows = self.window_profiles(mv, window, segment=segment, start=start, end=end)
        quarantined = self._quarantine_by_window(mv, grain, length, time_bound(start, "start"),
                                                 time_bound(end, "end"))
        rows = []
        for start_ in sorted(set(windows) | set(quarantined)):
            profiles = windows.get(start_, {})
            for col in monitored_columns(mv.schema):
                p, ref = profiles.get(col.name), bl.profiles.get(col.name)
                if p is None or col.kind == Kind.EMBEDDING:
                    continue
                for metric, value in integrity_metrics(p, ref).items():
                    rows.append({"window": start_, "segment": label, "column": col.name, "metric": metric,
                                 "value": float(value),
                                 "training": float(training.get(col.name, {}).get(metric, np.nan)),
                                 "counted_by": None})
            refused = quarantined.get(start_, {})
            rows.append({"window": start_, "segment": label, "column": None, "metric": "quarantined_rows",
                         "value": float(sum(n for n, _ in refused.values())), "training": np.nan,
                         "counted_by": self._counted_by(*(own for _, own in refused.values()))})
            for (column, reason), (n, own) in sorted(refused.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
                if column is not None:  # type violations, missing required values... by column
                    rows.append({"window": start_, "segment": label, "column": column,
                                 "metric": f"quarantined_{reason}", "value": float(n), "training": np.nan,
                                 "counted_by": self._counted_by(own)})
        return typed_frame(rows, INTEGRITY_FRAME)

    def _quarantine_by_window(self, mv: ModelVersion, grain: str, length: dt.timedelta, start: dt.datetime | None,
                              end: dt.datetime | None
                              ) -> dict[dt.datetime, dict[tuple[Any, str], tuple[int, tuple[int, int]]]]:
        """Rows refused per window and (column, reason): ``(rows, (placed by event time, by refusal time))``.

        A row is placed by its own event time where that parses to a plausible time, else by when it was refused
        (its own time may be what was wrong: ``EventStore.quarantine_counts``); ``start`` and ``end`` bound the
        base windows (of ``grain``) as they bound the profiles'."""
        rows = self.events.quarantine_counts(mv.model_id, mv.version)
        out: dict[dt.datetime, dict[tuple[Any, str], tuple[int, tuple[int, int]]]] = {}
        if not rows:
            return out
        at = np.array([r[0] for r in rows], dtype="datetime64[us]")
        base = window_start(at, parse_window(grain)[1])
        starts = window_start(at, length)
        for (_, column, reason, n, own), b, w in zip(rows, base, starts, strict=True):
            b = pd.Timestamp(b).to_pydatetime()
            if (start is not None and b < start) or (end is not None and b >= end):
                continue
            counts = out.setdefault(pd.Timestamp(w).to_pydatetime(), {})
            total, (by_event, by_refusal) = counts.get((column, reason), (0, (0, 0)))
            counts[(column, reason)] = (total + n, (by_event + n * bool(own), by_refusal + n * (not own)))
        return out

    @staticmethod
    def _counted_by(*placed: tuple[int, int]) -> str:
        """What placed refused rows in their window, from ``(by event time, by refusal time)`` counts: "event
        time" when every row's own time parsed (so too with no rows: that is the rule), "refusal time" when none
        did, "event time, else refusal time" when some did."""
        by_event, by_refusal = sum(e for e, _ in placed), sum(r for _, r in placed)
        if by_refusal and by_event:
            return "event time, else refusal time"
        return "refusal time" if by_refusal else "event time"

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
            raise SchemaError(f"model {mv.model!r} has no target column, so it has no performance to rank",
                              field="model")
        candidates = [c for c in schema.columns if c.role in (Role.FEATURE, Role.METADATA)
                      and c.kind in (Kind.CATEGORICAL, Kind.BOOLEAN) and c.pii != "drop"]
        if by is None:
            bl = self.baseline(mv)
            by = [c.name for c in candidates
                  if c.name not in bl.profiles or len(bl.profiles[c.name].frequencies()) <= max_categories]
        unknown = [b for b in by if b not in {c.name for c in candidates}]
        if unknown:
            raise InvalidParameterError(f"columns {unknown} are not categorical columns of model {mv.model!r} that "
                                        f"events keep; choose from {sorted(c.name for c in candidates)}", field="by")
        if not self._has_labels(mv):
            return typed_frame([], WORST_SEGMENTS_FRAME)
        needed = {schema.target.name, *by, *(c.name for c in schema.scores)}
        if schema.prediction is not None:
            needed.add(schema.prediction.name)
        stored = {c.name for c in schema.columns if c.pii != "drop"}
        table = self.events.read(mv.model_id, version=mv.version, start=time_bound(start, "start"),
                                 end=time_bound(end, "end"), target=schema.target.name, labelled_only=True,
                                 columns=needed & stored, order=False, readable_only=True)
        overall_profile = self._performance_profile(mv, table, np.ones(table.num_rows, dtype=bool))
        if overall_profile is None:
            return typed_frame([], WORST_SEGMENTS_FRAME)
        overall = performance_metrics(schema, overall_profile, threshold=threshold)
        if metric not in overall:
            raise InvalidParameterError(f"metric {metric!r} is not available for this model; choose from "
                                        f"{sorted(overall)}", field="metric")
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
        frame = typed_frame(rows, WORST_SEGMENTS_FRAME)
        return frame.sort_values("gap", kind="stable").reset_index(drop=True)


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


def _with_predictions(mv: ModelVersion, table: pa.Table, model: Any) -> pa.Table:
    """The training table plus ``model``'s prediction and score columns, when it can make them."""
    schema = mv.schema
    reads = model_inputs(model) or [c.name for c in schema.features]
    features = [c for c in reads if c in table.column_names]
    try:
        frame = table.select(features).to_pandas()
        if schema.prediction is not None and schema.prediction.name not in table.column_names \
                and hasattr(model, "predict"):
            table = table.append_column(schema.prediction.name, pa.array(model.predict(frame)))
        if schema.task == "binary" and schema.scores and schema.scores[0].name not in table.column_names \
                and hasattr(model, "predict_proba"):
            table = table.append_column(schema.scores[0].name, pa.array(model.predict_proba(frame)[:, -1]))
    except Exception:  # noqa: BLE001 - a model that cannot score its own training data leaves no output baseline
        return table
    return table


#: The columns and dtypes of the monitoring reads (``docs/frames.md``).
_WINDOW = {"window": "datetime64[us, UTC]", "segment": "str"}
PERFORMANCE_FRAME = {**_WINDOW, "metric": "str", "value": "float64", "labelled": "int64", "events": "int64"}
DRIFT_FRAME = {**_WINDOW, "column": "str", "role": "str", "kind": "str", "method": "str", "value": "float64",
               "threshold": "float64", "drifted": "boolean", "status": "str", "p_value": "float64",
               "psi": "float64", "js_distance": "float64", "hellinger": "float64", "baseline": "str"}
INTEGRITY_FRAME = {**_WINDOW, "column": "str", "metric": "str", "value": "float64", "training": "float64",
                   "counted_by": "str"}
TRAFFIC_FRAME = {**_WINDOW, "metric": "str", "value": "float64"}
WORST_SEGMENTS_FRAME = {"column": "str", "value": "str", "segment": "str", "metric": "str", "score": "float64",
                        "overall": "float64", "gap": "float64", "labelled": "int64"}
#: Metrics where lower is better (for ranking segments).
_LOWER_IS_BETTER = {"fpr", "fnr", "log_loss", "brier", "ece", "mae", "rmse", "mape"}

def _events_in(profiles: dict[str, Any]) -> int:
    delay = profiles.get(DELAY)
    return int(delay.count + delay.missing) if delay is not None else 0


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
        summary = {"accuracy": float(np.trace(cm) / cm.sum()) if cm.sum() else float("nan")}
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
