"""Fairness of a stored model: group metrics and disparities per window, representation, proxies.

The protected attributes come from the version's schema (``protected=True``
columns): model features or metadata stored only for fairness, PII-hashed or
not (a token groups exactly like the clear value). Every window's labelled
events go through :func:`vigil.core.fairness.fairness`; group shares of all
events are compared with the training data's (representation), and features
associated with a protected attribute that also carry large attributions are
reported as proxies.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.fairness import fairness, proxies, representation
from vigil.errors import VigilError
from vigil.services.monitoring import Monitor, segment_key
from vigil.services.registry import ModelVersion
from vigil.services.rowwise import read_events, split_windows, training_frame

INTERSECTION = " & "


@dataclass
class StoreFairness:
    """Fairness of one model version over time: tidy frames with a ``window`` column, and figures.

    ``by_group``: every group metric per window; ``disparities``: each disparity
    against its reference per window; ``summary``: per window and attribute the
    headline figures (demographic parity difference and ratio, equalized odds,
    four-fifths check); ``representation``: group shares in the training data vs
    each window; ``proxies``: features associated with a protected attribute, with
    their attributions when explanations are stored; ``attributions``: the mean
    attribution of each protected attribute that is a model input, in the
    training data and per window (from the stored explanations).
    """

    model: str
    version: str
    protected: list[str]
    by_group: pd.DataFrame
    disparities: pd.DataFrame
    summary: pd.DataFrame
    representation: pd.DataFrame
    proxies: pd.DataFrame = field(default_factory=pd.DataFrame)
    attributions: pd.DataFrame = field(default_factory=pd.DataFrame)

    def figure(self, metric: str = "selection_rate", attribute: str | None = None) -> Any:
        """One line per group: ``metric`` over the windows (from ``by_group``)."""
        import plotly.graph_objects as go

        frame = self.by_group
        if metric not in frame.columns:
            raise VigilError(f"metric {metric!r} is not a group metric here; choose one of "
                             f"{[c for c in frame.columns if frame[c].dtype.kind == 'f']}")
        attribute = attribute or (self.protected[0] if self.protected else None)
        frame = frame[frame["attribute"] == attribute]
        fig = go.Figure()
        for group, part in frame.groupby("group", sort=True):
            fig.add_trace(go.Scatter(x=part["window"], y=part[metric], mode="lines+markers", name=str(group)))
        fig.update_layout(title=f"{metric.replace('_', ' ')} by {attribute}", xaxis_title="window",
                          yaxis_title=metric.replace("_", " "), template="plotly_white")
        return fig


def _binary(values: pd.Series, positive: Any) -> np.ndarray:
    return (values.astype(str) == str(positive)).to_numpy(dtype=np.int64)


def _positive_score(mv: ModelVersion, frame: pd.DataFrame) -> np.ndarray | None:
    scores = mv.schema.scores
    if not scores:
        return None
    if len(scores) == 1:
        return frame[scores[0].name].to_numpy(dtype=float)
    for col in scores:
        if str(col.class_label) == str(mv.schema.positive_class):
            return frame[col.name].to_numpy(dtype=float)
    return None


def _outcomes(mv: ModelVersion, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(y_true, y_pred, y_score)`` of labelled rows: 0/1 for binary models, numbers for regression."""
    schema = mv.schema
    prediction, target = schema.prediction, schema.target
    if prediction is None or target is None:
        raise VigilError(f"model {mv.model!r} has no prediction and target columns to measure fairness on")
    if mv.task == "binary":
        positive = schema.positive_class
        return _binary(frame[target.name], positive), _binary(frame[prediction.name], positive), \
            _positive_score(mv, frame)
    if mv.task == "regression":
        return frame[target.name].to_numpy(dtype=float), frame[prediction.name].to_numpy(dtype=float), None
    raise VigilError(f"fairness metrics cover binary classifiers and regressors; {mv.model!r} is {mv.task}")


def protected_columns(mv: ModelVersion, protected: list[str] | None) -> list[str]:
    """The protected attributes asked for, checked against the schema (all of them when None)."""
    declared = [c.name for c in mv.schema.protected]
    if protected is None:
        if not declared:
            raise VigilError(f"model {mv.model!r} version {mv.version!r} declares no protected attribute: "
                             "register it with protected=[...] or pass protected=")
        return declared
    protected = [protected] if isinstance(protected, str) else list(protected)
    unknown = [p for p in protected if p not in mv.schema]
    if unknown:
        raise VigilError(f"{unknown} are not columns of model {mv.model!r}; protected attributes: {declared}")
    return protected


def _with_window(frame: pd.DataFrame, when: dt.datetime) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "window", when)
    return frame


def store_fairness(monitor: Monitor, mv: ModelVersion, *, protected: list[str] | None = None, window: str = "30d",
                   segment: Any = None, start: Any = None, end: Any = None, explanations: Any = None,
                   importance: pd.DataFrame | None = None, **options: Any) -> StoreFairness:
    """Fairness of a version's stored predictions per window (see :class:`StoreFairness`).

    ``options`` go to :func:`vigil.core.fairness.fairness` (``reference=``,
    ``min_group_size=``, ``confidence=``, ``intersections=``...).
    ``explanations``: a stored :class:`~vigil.core.explain.Explanation` sample
    whose attributions rank the proxies; ``importance``: the stored explanations' feature importance per
    window (:meth:`~vigil.services.explaining.Explainer.feature_importance`), whose protected rows become
    ``attributions``.
    """
    columns = protected_columns(mv, protected)
    events = read_events(monitor, mv, segment_key(segment), start, end, labels=True)
    target = mv.schema.target.name if mv.schema.target is not None else None
    by_group, disparities, summary, shares = [], [], [], []
    try:
        training = training_frame(monitor, mv)
    except VigilError:
        training = None
    present = [c for c in columns if training is not None and c in training.columns]
    for when, part in split_windows(events, window):
        groups = part[columns].astype(object).where(part[columns].notna(), None)
        labelled = part[target].notna().to_numpy() if target in part else np.zeros(len(part), bool)
        if labelled.any():
            y_true, y_pred, y_score = _outcomes(mv, part.loc[labelled])
            report = fairness(y_true, y_pred, groups.loc[labelled].reset_index(drop=True), y_score=y_score,
                              task="regression" if mv.task == "regression" else "classification", **options)
            by_group.append(_with_window(report.by_group, when))
            disparities.append(_with_window(report.disparities, when))
            summary.append(_with_window(report.summary, when))
        for column in present:
            shares.append(_with_window(representation(training[column], part[column]).assign(attribute=column),
                                       when))
    proxy_frame = pd.DataFrame()
    if training is not None and present:
        features = [c.name for c in mv.schema.features if c.name in training.columns and c.name not in columns]
        attributions = None
        if explanations is not None and len(explanations):
            attributions = pd.DataFrame(explanations.values, columns=explanations.feature_names)
        parts = []
        for column in present:
            parts.append(proxies(training[features], training[column], attributions=attributions)
                         .assign(attribute=column))
        proxy_frame = pd.concat(parts, ignore_index=True)
    return StoreFairness(
        model=mv.model, version=mv.version, protected=columns,
        by_group=pd.concat(by_group, ignore_index=True) if by_group else pd.DataFrame(),
        disparities=pd.concat(disparities, ignore_index=True) if disparities else pd.DataFrame(),
        summary=pd.concat(summary, ignore_index=True) if summary else pd.DataFrame(),
        representation=pd.concat(shares, ignore_index=True) if shares else pd.DataFrame(),
        proxies=proxy_frame,
        attributions=pd.DataFrame() if importance is None else
        importance[importance["feature"].isin(columns)].reset_index(drop=True))
