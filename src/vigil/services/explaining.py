"""Explanations of stored predictions: computed once, kept with the event, read back exactly as they were.

An explanation is keyed by (model, version, event id, method). The first
request computes it with the version's own artifact against a background
sample of its training data and stores it; every later request returns the
stored numbers, so a disputed decision can be shown months later as it was
explained then, whatever has changed in the code or the data since.

A configurable sample of incoming events is explained off the ingest path
(:meth:`Explainer.explain_sample`, run by :class:`OnlineExplainer` in a
background thread); the stored explanations give a feature-importance ranking
per time window and its drift against the training data's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from vigil.core.explain import Explanation, choose_method, explain
from vigil.core.explain.importance import DRIFT_THRESHOLD, explanation_drift, mean_abs_importance
from vigil.core.frames import naive_utc
from vigil.errors import NotFoundError, VigilError
from vigil.services.monitoring import Monitor
from vigil.services.registry import ModelVersion, events_table, utcnow
from vigil.services.rowwise import split_windows

#: Background rows sampled from the training data for methods that need one.
BACKGROUND_ROWS = 100
#: Training rows explained once per version and method: the reference for explanation drift.
BASELINE_ROWS = 200
#: Events explained per model call batch when explaining a sample.
BATCH_ROWS = 256

_SAMPLE_SCALE = 2**32


def _sample_condition(rate: float) -> str:
    """SQL keeping a stable pseudo-random share ``rate`` of events, decided by the event id alone."""
    cutoff = int(min(max(rate, 0.0), 1.0) * _SAMPLE_SCALE)
    return f"CAST(('0x' || left(md5(e.event_id), 8)) AS UBIGINT) < {cutoff}"


@dataclass
class _Prepared:
    model: Any
    columns: list[str]
    method: str
    background: pd.DataFrame | None


class Explainer:
    """Explains a project's stored events and keeps the explanations."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.db = monitor.db
        self._prepared: dict[tuple[int, str, str], _Prepared] = {}

    # -- the model, its inputs and background ------------------------------------------------------
    def input_columns(self, mv: ModelVersion, model: Any) -> list[str]:
        """The columns the model reads: its own record of them, else the schema's features."""
        names = getattr(model, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
        return [c.name for c in mv.schema.features]

    def prepare(self, mv: ModelVersion, method: str = "auto") -> _Prepared:
        """The version's model, input columns, resolved method and background sample (loaded once per version)."""
        base = self._prepared.get((mv.model_id, mv.version, "auto"))
        if base is None:
            model = mv.load_model()
            columns = self.input_columns(mv, model)
            background = None
            if mv.training_dataset is not None:
                training = mv.training_dataset.load()
                missing = [c for c in columns if c not in training.columns]
                if missing:
                    raise VigilError(f"the training data of {mv.model!r} version {mv.version!r} lacks the model's "
                                     f"input column(s) {missing}")
                background = training[columns].sample(n=min(BACKGROUND_ROWS, len(training)), random_state=0)
                background = background.reset_index(drop=True)
            base = _Prepared(model, columns, choose_method(model, len(columns)), background)
            self._prepared[(mv.model_id, mv.version, "auto")] = base
        return base if method == "auto" else dataclasses.replace(base, method=method)

    def explain_rows(self, mv: ModelVersion, rows: pd.DataFrame, method: str, **options: Any) -> Explanation:
        ready = self.prepare(mv, method)
        if ready.background is None and ready.method not in ("tree", "integrated_gradients"):
            raise VigilError(f"{mv.model!r} version {mv.version!r} has no training data to measure "
                             f"{ready.method!r} attributions against: register it with training_data=")
        return explain(ready.model, rows[ready.columns], background=ready.background, method=ready.method,
                       **options)

    # -- explaining stored events -----------------------------------------------------------------------
    def event_rows(self, mv_model: str, model_id: int, event_ids: Sequence[str]) -> pd.DataFrame:
        table = events_table(model_id)
        with self.db.lock:
            self.db.con.register("_wanted_ids", pa.table({"event_id": pa.array(list(event_ids), pa.string())}))
            try:
                frame = self.db.con.sql(
                    f"SELECT e.* FROM {table} e JOIN _wanted_ids w USING (event_id)").to_arrow_table().to_pandas()
            finally:
                self.db.con.unregister("_wanted_ids")
        missing = sorted(set(event_ids) - set(frame["event_id"]))
        if missing:
            raise NotFoundError(f"model {mv_model!r} has no event(s) {missing[:5]}" +
                                (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        return frame.set_index("event_id").loc[list(event_ids)].reset_index()

    def stored(self, mv: ModelVersion, event_ids: Sequence[str], method: str) -> dict[str, Explanation]:
        """The stored explanations of some events (those never explained are absent)."""
        if not event_ids:
            return {}
        with self.db.lock:
            self.db.con.register("_wanted_ids", pa.table({"event_id": pa.array(list(event_ids), pa.string())}))
            try:
                rows = self.db.con.sql(
                    "SELECT x.event_id, x.output, x.baseline, x.expected_value, x.model_output, x.features, "
                    "x.attributions, x.errors, x.row_json, x.extra_json, x.explained_at FROM explanations x "
                    "JOIN _wanted_ids w USING (event_id) WHERE x.model_id = ? AND x.version = ? AND x.method = ?",
                    params=[mv.model_id, mv.version, method]).fetchall()
            finally:
                self.db.con.unregister("_wanted_ids")
        found = {}
        for eid, output, baseline, expected, out, features, attributions, errors, row_json, extra_json, at in rows:
            extra = json.loads(extra_json) if extra_json else {}
            extra["explained_at"] = at
            found[eid] = Explanation(
                method=method, output=output, feature_names=list(features), values=np.array([attributions]),
                expected_value=np.array([expected]), model_output=np.array([out]), baseline=baseline,
                data=pd.DataFrame([json.loads(row_json)]) if row_json else None,
                error=None if errors is None else np.array([errors]), event_ids=[eid],
                model_version=mv.version, extra=extra)
        return found

    def explain_events(self, mv: ModelVersion, event_ids: Sequence[str], method: str = "auto",
                       **options: Any) -> Explanation:
        """Explanations of stored events, in the order given: stored ones as they were, new ones computed and kept."""
        event_ids = list(dict.fromkeys(str(e) for e in event_ids))
        if not event_ids:
            raise VigilError("no event ids to explain")
        rows = self.event_rows(mv.model, mv.model_id, event_ids)
        other = rows.loc[rows["model_version"] != mv.version, ["event_id", "model_version"]]
        if len(other):
            raise VigilError(f"event {other.iloc[0, 0]!r} was predicted by version {other.iloc[0, 1]!r}, "
                             f"not {mv.version!r}: explain it with that version (or leave version= out)")
        resolved = self.prepare(mv, method).method
        found = self.stored(mv, event_ids, resolved)
        todo = [e for e in event_ids if e not in found]
        if todo:
            fresh = rows.set_index("event_id").loc[todo].reset_index()
            computed = self.explain_rows(mv, fresh, resolved, **options)
            self._save(mv, resolved, fresh, computed)
            found.update(self.stored(mv, todo, resolved))
        return _concat([found[e] for e in event_ids])

    def _save(self, mv: ModelVersion, method: str, rows: pd.DataFrame, e: Explanation) -> None:
        columns = self.prepare(mv, method).columns
        data = rows[columns].astype(object).where(rows[columns].notna(), None)
        row_json = [json.dumps(r, default=str) for r in data.to_dict("records")]
        extra = {k: v for k, v in e.extra.items() if _jsonable(v)}
        table = pa.table({
            "model_id": pa.array([mv.model_id] * len(e), pa.int32()),
            "version": [mv.version] * len(e),
            "event_id": rows["event_id"].astype(str).tolist(),
            "method": [method] * len(e),
            "event_time": pa.array(_naive_utc_times(rows["timestamp"])),
            "explained_at": pa.array([utcnow()] * len(e), pa.timestamp("us")),
            "output": [e.output] * len(e),
            "baseline": [e.baseline] * len(e),
            "expected_value": e.expected_value,
            "model_output": e.model_output,
            "features": [list(e.feature_names)] * len(e),
            "attributions": pa.array(list(e.values), pa.list_(pa.float64())),
            "errors": pa.array(list(e.error) if e.error is not None else [None] * len(e), pa.list_(pa.float64())),
            "row_json": row_json,
            "extra_json": [json.dumps(extra, default=str)] * len(e),
        })
        with self.db.transaction() as con:
            con.register("_new_explanations", table)
            try:
                con.execute("INSERT INTO explanations SELECT * FROM _new_explanations ON CONFLICT DO NOTHING")
            finally:
                con.unregister("_new_explanations")

    def explain_sample(self, mv: ModelVersion, *, rate: float = 0.1, start: Any = None, end: Any = None,
                       since: Any = None, method: str = "auto", limit: int | None = None,
                       progress: Any = None) -> int:
        """Explain the not yet explained events of a stable sample (share ``rate``, decided by event id).

        ``start``/``end`` bound the event time, ``since`` the ingestion time;
        ``limit`` caps the events explained in this call. Returns how many were
        explained.
        """
        resolved = self.prepare(mv, method).method
        where, params = ["e.model_version = ?", _sample_condition(rate)], [mv.version]
        for column, bound, op in (("timestamp", start, ">="), ("timestamp", end, "<"), ("ingested_at", since, ">")):
            if bound is not None:
                where.append(f"e.{column} {op} ?")
                params.append(naive_utc(bound))
        sql = (f"SELECT e.event_id FROM {events_table(mv.model_id)} e WHERE {' AND '.join(where)} AND NOT EXISTS "
               "(SELECT 1 FROM explanations x WHERE x.model_id = ? AND x.version = ? AND x.method = ? "
               "AND x.event_id = e.event_id) ORDER BY e.timestamp, e.event_id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        ids = [r[0] for r in self.db.fetchall(sql, params + [mv.model_id, mv.version, resolved])]
        for i in range(0, len(ids), BATCH_ROWS):
            self.explain_events(mv, ids[i:i + BATCH_ROWS], resolved)
            if progress:
                progress(min(i + BATCH_ROWS, len(ids)), len(ids))
        return len(ids)

    # -- global views over the stored explanations --------------------------------------------------
    def _stored_frame(self, mv: ModelVersion, method: str, start: Any, end: Any) -> pd.DataFrame:
        where, params = ["model_id = ?", "version = ?", "method = ?"], [mv.model_id, mv.version, method]
        for bound, op in ((start, ">="), (end, "<")):
            if bound is not None:
                where.append(f"event_time {op} ?")
                params.append(naive_utc(bound))
        with self.db.lock:
            return self.db.con.sql(
                "SELECT event_time AS timestamp, output, features, attributions FROM explanations "
                f"WHERE {' AND '.join(where)}",
                params=params).to_arrow_table().to_pandas()

    def _windows(self, mv: ModelVersion, window: str, method: str, start: Any, end: Any
                 ) -> list[tuple[dt.datetime, Explanation]]:
        frame = self._stored_frame(mv, method, start, end)
        out = []
        for when, part in split_windows(frame, window):
            values = np.vstack(part["attributions"].to_numpy())
            out.append((when, Explanation(
                method=method, output=str(part["output"].iloc[0]), feature_names=list(part["features"].iloc[0]),
                values=values,
                expected_value=np.zeros(len(part)), model_output=np.zeros(len(part)), baseline="")))
        return out

    def cheap_baseline(self, mv: ModelVersion) -> Explanation | None:
        """The training sample's explanations if stored or quick to compute (tree, linear, gradient methods)."""
        if mv.training_dataset is None or mv.artifact_sha256 is None:
            return None
        ready = self.prepare(mv)
        stored = self.db.fetchall("SELECT count(*) FROM explanation_baselines WHERE model_id = ? AND version = ? "
                                  "AND method = ?", [mv.model_id, mv.version, ready.method])[0][0]
        if stored or ready.method in ("tree", "linear", "integrated_gradients"):
            return self.baseline(mv, ready.method)
        return None

    def has_explanations(self, mv: ModelVersion) -> bool:
        """Whether any event of the version has a stored explanation."""
        return bool(self.db.fetchall("SELECT count(*) FROM (SELECT 1 FROM explanations WHERE model_id = ? "
                                     "AND version = ? LIMIT 1)", [mv.model_id, mv.version])[0][0])

    def baseline(self, mv: ModelVersion, method: str = "auto") -> Explanation:
        """Explanations of a sample of the training data: the reference for explanation drift (computed once)."""
        ready = self.prepare(mv, method)
        row = self.db.fetchone("SELECT payload FROM explanation_baselines WHERE model_id = ? AND version = ? "
                               "AND method = ?", [mv.model_id, mv.version, ready.method])
        if row is not None:
            payload = json.loads(row[0])
            return Explanation(method=ready.method, output=payload["output"], feature_names=payload["features"],
                               values=np.array(payload["values"]), expected_value=np.array(payload["expected"]),
                               model_output=np.array(payload["model_output"]), baseline=payload["baseline"])
        if mv.training_dataset is None:
            raise VigilError(f"{mv.model!r} version {mv.version!r} has no training data to compare explanations "
                             "with: register it with training_data=")
        training = mv.training_dataset.load()
        sample = training.sample(n=min(BASELINE_ROWS, len(training)), random_state=1).reset_index(drop=True)
        e = self.explain_rows(mv, sample, ready.method)
        payload = {"output": e.output, "features": e.feature_names, "values": e.values.tolist(),
                   "expected": e.expected_value.tolist(), "model_output": e.model_output.tolist(),
                   "baseline": e.baseline}
        with self.db.transaction() as con:
            con.execute("INSERT INTO explanation_baselines VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [mv.model_id, mv.version, ready.method, json.dumps(payload), utcnow()])
        return e

    def feature_importance(self, mv: ModelVersion, *, window: str = "1d", start: Any = None, end: Any = None,
                           method: str = "auto", training: bool = True) -> pd.DataFrame:
        """Mean |attribution|, mean attribution and rank per window and feature, from the stored explanations.

        With ``training`` the training data's ranking comes first, as window ``NaT`` with ``source`` "training".
        """
        resolved = self.prepare(mv, method).method
        parts = []
        if training and mv.training_dataset is not None:
            reference = self.baseline(mv, resolved)
            parts.append(mean_abs_importance(reference).assign(window=pd.NaT, source="training",
                                                                explained=len(reference)))
        for when, e in self._windows(mv, window, resolved, start, end):
            parts.append(mean_abs_importance(e).assign(window=when, source="production", explained=len(e)))
        if not parts:
            return pd.DataFrame(columns=["window", "source", "explained", "feature", "mean_abs_attribution",
                                         "mean_attribution", "rank"])
        frame = pd.concat(parts, ignore_index=True)
        front = ["window", "source", "explained"]
        return frame[front + [c for c in frame.columns if c not in front]]

    def explanation_drift(self, mv: ModelVersion, *, window: str = "1d", start: Any = None, end: Any = None,
                          method: str = "auto", threshold: float = DRIFT_THRESHOLD) -> pd.DataFrame:
        """Per window: how far the explanations moved from the training data's (score, rank correlation, mover)."""
        resolved = self.prepare(mv, method).method
        reference = self.baseline(mv, resolved)
        rows = []
        for when, e in self._windows(mv, window, resolved, start, end):
            rows.append({"window": when, "explained": len(e),
                         **explanation_drift(reference, e, threshold=threshold).to_dict()})
        return pd.DataFrame(rows, columns=["window", "explained", "score", "threshold", "drifted",
                                           "rank_correlation", "top_k", "top_k_overlap", "largest_mover"])


def _naive_utc_times(values: pd.Series) -> np.ndarray:
    times = pd.to_datetime(values)
    if times.dt.tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times.to_numpy(dtype="datetime64[us]")


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _concat(parts: list[Explanation]) -> Explanation:
    first = parts[0]
    if len(parts) == 1:
        return first
    data = [p.data for p in parts]
    return Explanation(
        method=first.method, output=first.output, feature_names=first.feature_names,
        values=np.vstack([p.values for p in parts]),
        expected_value=np.concatenate([p.expected_value for p in parts]),
        model_output=np.concatenate([p.model_output for p in parts]), baseline=first.baseline,
        data=None if any(d is None for d in data) else pd.concat(data, ignore_index=True),
        error=None if any(p.error is None for p in parts) else np.vstack([p.error for p in parts]),
        event_ids=[e for p in parts for e in (p.event_ids or [])], model_version=first.model_version,
        extra={"explained_at": [p.extra.get("explained_at") for p in parts]})


class OnlineExplainer:
    """Explains a sample of incoming events in a background thread, never on the ingest path.

    Every ``interval`` seconds it explains the sampled events ingested since
    its last pass (and, on its first pass, any sampled event never explained).
    Use as a context manager, or call :meth:`stop`.
    """

    def __init__(self, explainer: Explainer, mv: ModelVersion, *, rate: float = 0.1, interval: float = 5.0,
                 method: str = "auto") -> None:
        self.explainer, self.mv, self.rate, self.interval, self.method = explainer, mv, rate, interval, method
        self.explained = 0
        self.error: BaseException | None = None
        self._since: dt.datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"vigil-explain-{mv.model}", daemon=True)
        self._thread.start()

    def run_once(self) -> int:
        """One pass: explain the sampled events that arrived since the last one."""
        mark = self.explainer.db.fetchall(f"SELECT max(ingested_at) FROM {events_table(self.mv.model_id)}")[0][0]
        done = self.explainer.explain_sample(self.mv, rate=self.rate, since=self._since, method=self.method)
        self._since = mark if mark is not None else self._since
        self.explained += done
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except BaseException as err:  # noqa: BLE001 - kept for the owner to see; the thread must not die silently
                self.error = err
                return
            self._stop.wait(self.interval)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the current pass; raises what a pass raised, if one failed."""
        self._stop.set()
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def __enter__(self) -> OnlineExplainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["Explainer", "OnlineExplainer"]
