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
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from vigil.core.explain import Explanation, choose_method, explain
from vigil.core.explain.importance import DRIFT_THRESHOLD, explanation_drift, mean_abs_importance
from vigil.errors import ExplainError, InvalidParameterError, NotFoundError, SchemaError
from vigil.services.monitoring import Monitor, time_bound
from vigil.services.registry import ModelVersion, model_inputs, typed_frame, utcnow
from vigil.services.rowwise import split_windows

log = logging.getLogger("vigil.explain")

#: Background rows sampled from the training data for methods that need one.
BACKGROUND_ROWS = 100
#: Training rows explained once per version and method: the reference for explanation drift.
BASELINE_ROWS = 200
#: Events explained per model call batch when explaining a sample.
BATCH_ROWS = 256
#: The columns of the importance and explanation-drift frames and their dtypes (see ``docs/frames.md``).
IMPORTANCE_COLUMNS = {"window": "datetime64[us]", "source": "str", "explained": "int64", "feature": "str",
                      "mean_abs_attribution": "float64", "mean_attribution": "float64", "rank": "int64"}
EXPLANATION_DRIFT_COLUMNS = {"window": "datetime64[us]", "explained": "int64", "score": "float64",
                             "threshold": "float64", "drifted": "bool", "rank_correlation": "float64",
                             "top_k": "int64", "top_k_overlap": "float64", "largest_mover": "str"}

@dataclass
class _Prepared:
    model: Any
    columns: list[str]
    method: str
    background: pd.DataFrame | None


class Explainer:
    """Explains a project's stored events and keeps the explanations.

    Only explaining needs the model; it is loaded when its signature verifies under the caller's key (or with
    ``trust=True``). Reads of stored explanations (importance, explanation drift, proxies) never load it.
    """

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.store = monitor.store
        self.xs = monitor.store.explanations
        self.events = monitor.store.events
        self._prepared: dict[tuple[int, str, str], _Prepared] = {}

    # -- the model, its inputs and background ------------------------------------------------------
    def input_columns(self, mv: ModelVersion, model: Any) -> list[str]:
        """The columns the model reads: its own record of them, else the schema's features."""
        return model_inputs(model) or [c.name for c in mv.schema.features]

    def prepare(self, mv: ModelVersion, method: str = "auto", *, trust: bool = False, model: Any = None
                ) -> _Prepared:
        """The version's model, input columns, resolved method and background sample (loaded once per version).

        ``model`` is the model object when the caller holds it (at registration); otherwise the artifact is
        loaded, and only if its signature verifies (or ``trust``).
        """
        key = (mv.model_id, mv.version, "auto")
        base = self._prepared.get(key)
        if base is not None and not trust and model is None and mv.artifact_sha256 is not None:
            mv.blobs.check_artifact(mv.artifact_sha256)  # a cached model is no way around the signature
        if base is None:
            model = model if model is not None else mv.load_model(trust=trust)
            columns = self.input_columns(mv, model)
            background = None
            if mv.training_dataset is not None:
                training = mv.training_dataset.load()
                missing = [c for c in columns if c not in training.columns]
                if missing:
                    raise SchemaError(f"the training data of {mv.model!r} version {mv.version!r} lacks the model's "
                                      f"input column(s) {missing}", field="training_data")
                background = training[columns].sample(n=min(BACKGROUND_ROWS, len(training)), random_state=0)
                background = background.reset_index(drop=True)
            base = _Prepared(model, columns, choose_method(model, len(columns)), background)
            self._prepared[key] = base
        return base if method == "auto" else dataclasses.replace(base, method=method)

    def stored_method(self, mv: ModelVersion, method: str) -> str | None:
        """The method whose stored explanations a read of ``method`` uses, without loading the model: the
        method itself, or for "auto" the one stored (None when nothing is stored)."""
        if method != "auto":
            return method
        methods = self.xs.methods(mv.model_id, mv.version)
        return methods[0] if methods else None

    def prepare_at_registration(self, mv: ModelVersion, model: Any) -> None:
        """Explain the training sample once with the model the caller holds, when that is quick (tree, linear,
        gradient methods), so that importance and fairness proxies never need to load the model."""
        if mv.training_dataset is None:
            return
        try:
            ready = self.prepare(mv, model=model)
            if ready.method in ("tree", "linear", "integrated_gradients"):
                self.baseline(mv, ready.method, model=model)
        except Exception as err:  # noqa: BLE001 - a model that cannot explain its training data explains later
            log.info("no explanation baseline for %s version %s: %s", mv.model, mv.version, err)

    def explain_rows(self, mv: ModelVersion, rows: pd.DataFrame, method: str, *, trust: bool = False,
                     model: Any = None, **options: Any) -> Explanation:
        """Attributions of rows that are not stored (nothing is kept)."""
        ready = self.prepare(mv, method, trust=trust, model=model)
        if ready.background is None and ready.method not in ("tree", "integrated_gradients"):
            raise ExplainError(f"{mv.model!r} version {mv.version!r} has no training data to measure "
                               f"{ready.method!r} attributions against: register it with training_data=",
                               field="training_data")
        missing = [c for c in ready.columns if c not in rows.columns]
        if missing:
            raise SchemaError(f"the rows to explain lack the model's input column(s) {missing}", field=missing[0])
        return explain(ready.model, rows[ready.columns], background=ready.background, method=ready.method,
                       **options)

    # -- explaining stored events -----------------------------------------------------------------------
    def event_rows(self, mv_model: str, model_id: int, event_ids: Sequence[str]) -> pd.DataFrame:
        """The stored rows of some events, in the order given."""
        frame = self.events.rows_by_id(model_id, event_ids).to_pandas()
        missing = sorted(set(event_ids) - set(frame["event_id"]))
        if missing:
            raise NotFoundError(f"model {mv_model!r} has no event(s) {missing[:5]}" +
                                (f" and {len(missing) - 5} more" if len(missing) > 5 else ""), field="event_id")
        return frame.set_index("event_id").loc[list(event_ids)].reset_index()

    def stored(self, mv: ModelVersion, event_ids: Sequence[str], method: str) -> dict[str, Explanation]:
        """The stored explanations of some events (those never explained are absent)."""
        found = {}
        for r in self.xs.stored(mv.model_id, mv.version, method, list(event_ids)):
            extra = json.loads(r["extra_json"]) if r["extra_json"] else {}
            extra["explained_at"] = r["explained_at"]
            found[r["event_id"]] = Explanation(
                method=method, output=r["output"], feature_names=list(r["features"]),
                values=np.array([r["attributions"]]), expected_value=np.array([r["expected_value"]]),
                model_output=np.array([r["model_output"]]), baseline=r["baseline"],
                data=pd.DataFrame([json.loads(r["row_json"])]) if r["row_json"] else None,
                error=None if r["errors"] is None else np.array([r["errors"]]), event_ids=[r["event_id"]],
                model_version=mv.version, extra=extra)
        return found

    def explain_events(self, mv: ModelVersion, event_ids: Sequence[str], method: str = "auto", *,
                       trust: bool = False, **options: Any) -> Explanation:
        """Explanations of stored events, in the order given: stored ones as they were, new ones computed and kept."""
        event_ids = list(dict.fromkeys(str(e) for e in event_ids))
        if not event_ids:
            raise InvalidParameterError("no event ids to explain", field="event_id")
        rows = self.event_rows(mv.model, mv.model_id, event_ids)
        other = rows.loc[rows["model_version"] != mv.version, ["event_id", "model_version"]]
        if len(other):
            raise InvalidParameterError(f"event {other.iloc[0, 0]!r} was predicted by version "
                                        f"{other.iloc[0, 1]!r}, not {mv.version!r}: explain it with that version "
                                        "(or leave version= out)", field="version")
        stored_method = self.stored_method(mv, method)
        found = self.stored(mv, event_ids, stored_method) if stored_method is not None else {}
        todo = [e for e in event_ids if e not in found]
        if todo:
            resolved = self.prepare(mv, method, trust=trust).method
            if resolved != stored_method:
                found = self.stored(mv, event_ids, resolved)
                todo = [e for e in event_ids if e not in found]
        if todo:
            fresh = rows.set_index("event_id").loc[todo].reset_index()
            computed = self.explain_rows(mv, fresh, resolved, trust=trust, **options)
            self._save(mv, resolved, fresh, computed)
            found.update(self.stored(mv, todo, resolved))
        return _concat([found[e] for e in event_ids])

    def _save(self, mv: ModelVersion, method: str, rows: pd.DataFrame, e: Explanation) -> None:
        columns = self._prepared[(mv.model_id, mv.version, "auto")].columns
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
        self.xs.save(table)

    def explain_sample(self, mv: ModelVersion, *, rate: float = 0.1, start: Any = None, end: Any = None,
                       since: Any = None, method: str = "auto", limit: int | None = None,
                       progress: Any = None, trust: bool = False) -> int:
        """Explain the not yet explained events of a stable sample (share ``rate``, decided by event id).

        ``start``/``end`` bound the event time, ``since`` the ingestion time;
        ``limit`` caps the events explained in this call. Returns how many were
        explained. The training sample's explanations (the reference of importance
        and explanation drift) are computed and kept on the first call.
        """
        if not 0 <= rate <= 1:
            raise InvalidParameterError(f"rate={rate!r}: a share between 0 and 1", field="rate")
        if limit is not None and limit < 0:
            raise InvalidParameterError(f"limit={limit!r}: a number of events, 0 or more", field="limit")
        resolved = self.prepare(mv, method, trust=trust).method
        if mv.training_dataset is not None:
            self.baseline(mv, resolved, trust=trust)
        ids = self.xs.unexplained(mv.model_id, mv.version, resolved, rate=rate, start=time_bound(start, "start"),
                                  end=time_bound(end, "end"), since=since, limit=limit)
        for i in range(0, len(ids), BATCH_ROWS):
            self.explain_events(mv, ids[i:i + BATCH_ROWS], resolved, trust=trust)
            if progress:
                progress(min(i + BATCH_ROWS, len(ids)), len(ids))
        return len(ids)

    # -- global views over the stored explanations --------------------------------------------------
    def _stored_frame(self, mv: ModelVersion, method: str, start: Any, end: Any) -> pd.DataFrame:
        return self.xs.frame(mv.model_id, mv.version, method, time_bound(start, "start"), time_bound(end, "end"))

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

    def stored_baseline(self, mv: ModelVersion, method: str = "auto") -> Explanation | None:
        """The stored explanations of the training sample (None when never computed); never loads the model."""
        resolved = self.stored_method(mv, method)
        payload = self.xs.baseline(mv.model_id, mv.version, resolved) if resolved is not None else None
        if payload is None:
            return None
        data = json.loads(payload)
        return Explanation(method=resolved, output=data["output"], feature_names=data["features"],
                           values=np.array(data["values"]), expected_value=np.array(data["expected"]),
                           model_output=np.array(data["model_output"]), baseline=data["baseline"])

    def has_explanations(self, mv: ModelVersion) -> bool:
        """Whether any event of the version has a stored explanation."""
        return self.xs.any(mv.model_id, mv.version)

    def baseline(self, mv: ModelVersion, method: str = "auto", *, trust: bool = False,
                 model: Any = None) -> Explanation:
        """Explanations of a sample of the training data: the reference for explanation drift (computed once,
        with the model: an explaining operation)."""
        ready = self.prepare(mv, method, trust=trust, model=model)
        stored = self.stored_baseline(mv, ready.method)
        if stored is not None:
            return stored
        if mv.training_dataset is None:
            raise NotFoundError(f"{mv.model!r} version {mv.version!r} has no training data to compare explanations "
                                "with: register it with training_data=", field="training_data")
        training = mv.training_dataset.load()
        sample = training.sample(n=min(BASELINE_ROWS, len(training)), random_state=1).reset_index(drop=True)
        e = self.explain_rows(mv, sample, ready.method, trust=trust, model=model)
        payload = {"output": e.output, "features": e.feature_names, "values": e.values.tolist(),
                   "expected": e.expected_value.tolist(), "model_output": e.model_output.tolist(),
                   "baseline": e.baseline}
        self.xs.save_baseline(mv.model_id, mv.version, ready.method, json.dumps(payload))
        return e

    def feature_importance(self, mv: ModelVersion, *, window: str = "1d", start: Any = None, end: Any = None,
                           method: str = "auto", training: bool = True) -> pd.DataFrame:
        """Mean |attribution|, mean attribution and rank per window and feature, from the stored explanations.

        With ``training`` the training data's ranking comes first, as window ``NaT`` with ``source`` "training".
        """
        resolved = self.stored_method(mv, method)
        parts = []
        reference = self.stored_baseline(mv, resolved) if training and resolved is not None else None
        if reference is not None:
            parts.append(mean_abs_importance(reference).assign(window=pd.NaT, source="training",
                                                                explained=len(reference)))
        for when, e in self._windows(mv, window, resolved, start, end) if resolved is not None else ():
            parts.append(mean_abs_importance(e).assign(window=when, source="production", explained=len(e)))
        return typed_frame(pd.concat(parts, ignore_index=True) if parts else [], IMPORTANCE_COLUMNS)

    def explanation_drift(self, mv: ModelVersion, *, window: str = "1d", start: Any = None, end: Any = None,
                          method: str = "auto", threshold: float = DRIFT_THRESHOLD) -> pd.DataFrame:
        """Per window: how far the explanations moved from the training data's (score, rank correlation, mover)."""
        resolved = self.stored_method(mv, method)
        reference = self.stored_baseline(mv, resolved) if resolved is not None else None
        rows = []
        if reference is None and resolved is not None:
            raise NotFoundError(f"{mv.model!r} version {mv.version!r} has no explanations of its training data to "
                                "compare with: explain a sample first (explain_sample)", field="model")
        for when, e in self._windows(mv, window, resolved, start, end) if resolved is not None else ():
            rows.append({"window": when, "explained": len(e),
                         **explanation_drift(reference, e, threshold=threshold).to_dict()})
        return typed_frame(rows, EXPLANATION_DRIFT_COLUMNS)


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
    A failing pass is logged (logger ``vigil.explain``) and recorded in
    :attr:`error` and :attr:`status` as it happens; the next pass tries again.
    Use as a context manager, or call :meth:`stop`.
    """

    def __init__(self, explainer: Explainer, mv: ModelVersion, *, rate: float = 0.1, interval: float = 5.0,
                 method: str = "auto", trust: bool = False) -> None:
        if interval <= 0:
            raise InvalidParameterError(f"interval={interval!r}: seconds between passes, more than 0",
                                        field="interval")
        self.explainer, self.mv, self.rate, self.interval, self.method = explainer, mv, rate, interval, method
        self.trust = trust
        self.explained = 0
        self.passes = 0
        self.error: BaseException | None = None
        self.status = "starting"
        self._since: dt.datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"vigil-explain-{mv.model}", daemon=True)
        self._thread.start()

    def run_once(self) -> int:
        """One pass: explain the sampled events that arrived since the last one."""
        mark = self.explainer.events.ingested_through(self.mv.model_id)
        done = self.explainer.explain_sample(self.mv, rate=self.rate, since=self._since, method=self.method,
                                             trust=self.trust)
        self._since = mark if mark is not None else self._since
        self.explained += done
        self.passes += 1
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
                self.status = "running"
            except Exception as err:  # noqa: BLE001 - reported now, and the thread lives on to try again
                self.error = err
                self.status = f"failed: {type(err).__name__}: {err}"
                log.error("explaining %s version %s failed: %s", self.mv.model, self.mv.version, err)
            self._stop.wait(self.interval)
        self.status = "stopped"

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the current pass; raises what the last failed pass raised, if one failed."""
        self._stop.set()
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def __enter__(self) -> OnlineExplainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["Explainer", "OnlineExplainer"]
