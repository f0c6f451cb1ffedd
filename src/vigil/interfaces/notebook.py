"""``vigil.compare``: the same drift, performance and integrity frames for two DataFrames, without a store.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> ref = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
>>> cur = pd.DataFrame({"x": rng.normal(1.0, size=2000), "c": rng.choice(["a", "b"], 2000)})
>>> result = compare(ref, cur)
>>> result.drift.set_index("column")["drifted"].to_dict()
{'x': True, 'c': False}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.core import monitoring
from vigil.core import profiles as prof
from vigil.core.metrics import drift as drift_metrics
from vigil.core.schema import Kind, Role, Schema
from vigil.services.monitoring import performance_metrics
from vigil.services.sources import load_table


@dataclass
class Comparison:
    """The outcome of :func:`compare`: tidy frames, and a report of them."""

    drift: pd.DataFrame
    performance: pd.DataFrame
    integrity: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def report(self, title: str = "Vigil: reference vs current") -> Any:
        """A self-contained HTML report (see :mod:`vigil.interfaces.report`)."""
        from vigil.interfaces.report import build_report

        return build_report(title=title, meta=self.meta, drift=self._with_window(self.drift),
                            performance=self._performance_long(), integrity=self._with_window(self.integrity))

    def save(self, path: str | Path) -> Path:
        """Write the HTML report to ``path``."""
        return self.report().save(path)

    def _repr_html_(self) -> str:
        return self.report()._repr_html_()

    def _with_window(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out.insert(0, "window", pd.Timestamp(self.meta.get("compared_at", pd.Timestamp.now(tz="UTC"))))
        out.insert(1, "segment", "all")
        return out

    def _performance_long(self) -> pd.DataFrame:
        if self.performance.empty:
            return pd.DataFrame(columns=["window", "segment", "metric", "value", "labelled", "events"])
        frame = self.performance.rename(columns={"current": "value"})[["metric", "value"]]
        frame = self._with_window(frame)
        frame["labelled"] = self.meta.get("current_rows", 0)
        frame["events"] = self.meta.get("current_rows", 0)
        return frame


def compare(reference: Any, current: Any, *, schema: Schema | None = None, target: str | None = None,
            prediction: str | None = None, scores: str | list[str] | None = None,
            methods: dict[str, str] | None = None, thresholds: dict[str, float] | None = None) -> Comparison:
    """Compare a current frame with a reference frame: drift per column, model quality, data integrity.

    With a ``schema`` (e.g. ``store.schema("credit")``) its roles decide what
    is compared; without one, every shared column is compared (typed by
    dtype), and ``target``, ``prediction`` and ``scores`` name the columns
    that give performance.

    Drift is :func:`vigil.core.metrics.drift.drift_table`'s: a column drifts
    when its effect size reaches the threshold (:data:`~vigil.core.metrics.drift.DEFAULTS`)
    *and* its test gives p < 0.01, with at least 30 values on each side;
    ``status`` is "drift", "ok" or "insufficient_data" (then ``drifted`` is
    None). Integrity is :func:`vigil.core.monitoring.integrity_metrics` on
    profiles of both frames binned as the store bins a baseline, so the
    figures are those ``store.integrity`` gives for the same rows.
    """
    ref_df, cur_df = _pandas(reference), _pandas(current)
    if schema is not None:
        target = target or (schema.target.name if schema.target else None)
        prediction = prediction or (schema.prediction.name if schema.prediction else None)
        scores = scores or [c.name for c in schema.scores]
        numeric = [c.name for c in schema.columns if c.role in (Role.FEATURE, Role.SCORE, Role.METADATA)
                   and c.kind == Kind.NUMERIC and c.name in ref_df and c.name in cur_df]
        categorical = [c.name for c in schema.columns
                       if c.role in (Role.FEATURE, Role.PREDICTION, Role.METADATA)
                       and c.kind in (Kind.CATEGORICAL, Kind.BOOLEAN) and c.name in ref_df and c.name in cur_df]
    else:
        numeric = categorical = None
    score_list = [scores] if isinstance(scores, str) else list(scores or [])
    skip = {target} - {None}
    shared = [c for c in ref_df.columns if c in cur_df.columns and c not in skip]
    if numeric is None:
        drift = drift_metrics.drift_table(ref_df[shared], cur_df[shared], methods=methods, thresholds=thresholds)
    else:
        drift = drift_metrics.drift_table(ref_df, cur_df, numeric=numeric, categorical=categorical,
                                          methods=methods, thresholds=thresholds)
    drift.insert(drift.columns.get_loc("drifted") + 1, "status",
                 [_status(d) for d in drift["drifted"]])
    performance = _performance(ref_df, cur_df, schema, target, prediction, score_list)
    integrity = _integrity(ref_df, cur_df, [c for c in shared if c in drift["column"].values],
                           set(drift[drift["kind"] == "numeric"]["column"]))
    meta = {"reference_rows": len(ref_df), "current_rows": len(cur_df),
            "compared_at": pd.Timestamp.now(tz="UTC"), "baseline": "reference frame"}
    return Comparison(drift=drift, performance=performance, integrity=integrity, meta=meta)


def _status(drifted: Any) -> str:
    if drifted is None or drifted is pd.NA or (isinstance(drifted, float) and np.isnan(drifted)):
        return "insufficient_data"
    return "drift" if drifted else "ok"


def _pandas(data: Any) -> pd.DataFrame:
    return data if isinstance(data, pd.DataFrame) else load_table(data).to_pandas()


def _performance(ref: pd.DataFrame, cur: pd.DataFrame, schema: Schema | None, target: str | None,
                 prediction: str | None, scores: list[str]) -> pd.DataFrame:
    columns = ["metric", "reference", "current", "difference"]
    if not target or target not in cur or (prediction not in cur and not scores):
        return pd.DataFrame(columns=columns)
    if schema is None:
        schema = Schema.infer(ref[[target]], target=target, features=[], prediction=prediction,
                              scores=scores[0] if len(scores) == 1 else (scores or None))
    values = {}
    for name, frame in (("reference", ref), ("current", cur)):
        if target not in frame or (prediction and prediction not in frame):
            continue
        labelled = frame[frame[target].notna()]
        profile = _profile(schema, labelled, prediction, scores)
        if profile is not None:
            values[name] = performance_metrics(schema, profile)
    if "current" not in values:
        return pd.DataFrame(columns=columns)
    rows = []
    for metric, value in values["current"].items():
        before = values.get("reference", {}).get(metric, np.nan)
        rows.append({"metric": metric, "reference": before, "current": value, "difference": value - before})
    return pd.DataFrame(rows, columns=columns)


def _profile(schema: Schema, frame: pd.DataFrame, prediction: str | None, scores: list[str]) -> Any:
    y_true = frame[schema.target.name].to_numpy()
    if schema.task == "regression":
        return prof.RegressionProfile().update(y_true.astype(float), frame[prediction].to_numpy(float))
    if not schema.classes:
        return None
    present = [s for s in scores if s in frame]
    score_values = None
    if present:
        score_values = frame[present[0]].to_numpy(float) if len(present) == 1 else frame[present].to_numpy(float)
    y_pred = frame[prediction].to_numpy() if prediction in frame else None
    if y_pred is None:
        return None
    return prof.ClassificationProfile(classes=list(schema.classes)).update(y_true, y_pred, score_values)


def _integrity(ref: pd.DataFrame, cur: pd.DataFrame, columns: list[str], numeric: set[str]) -> pd.DataFrame:
    """Integrity per column from profiles of both frames, as the store computes it (the reference against itself
    in the ``reference`` column)."""
    rows = []
    for col in columns:
        if col in numeric:
            values = (ref[col].to_numpy(dtype=float, na_value=np.nan), cur[col].to_numpy(dtype=float, na_value=np.nan))
            edges, _ = monitoring.baseline_edges(values[0])
            ref_p, cur_p = (prof.NumericProfile(edges=edges if edges.size else None).update(v) for v in values)
            metrics = ("missing_rate", "out_of_range_rate", "outlier_rate")
        else:
            values = (ref[col].astype("string"), cur[col].astype("string"))
            cap = max(1000, sum(int(v.nunique()) for v in values))  # exact counts, however many categories
            ref_p, cur_p = (prof.CategoricalProfile(cap=cap).update(v) for v in values)
            metrics = ("missing_rate", "unseen_category_rate")
        before = monitoring.integrity_metrics(ref_p, ref_p)
        after = monitoring.integrity_metrics(cur_p, ref_p)
        for metric in metrics:
            rows.append({"column": col, "metric": metric, "reference": before.get(metric, np.nan),
                         "current": after.get(metric, np.nan)})
    frame = pd.DataFrame(rows, columns=["column", "metric", "reference", "current"])
    frame["value"] = frame["current"]
    return frame
