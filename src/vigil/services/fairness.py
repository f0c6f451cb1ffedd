"""Fairness of a stored model: group metrics and disparities per window, representation, proxies.

The protected attributes come from the version's schema (``protected=True``
columns): model features or metadata stored only for fairness, PII-hashed or
not (a token groups exactly like the clear value). Every window's labelled
events go through :func:`vigil.core.fairness.fairness`, their labels and
predictions matched to the model's classes by value (:mod:`vigil.core.labels`:
a 0/1 label read back as ``1.0`` is still the positive class); group shares of
all events are compared with the training data's (representation), and features
associated with a protected attribute that also carry large attributions are
reported as proxies.

Fairness never depends on the model being explainable, nor on loading it: the
attributions come from explanations already stored (the training sample's and
the events'), and what cannot be had is left out with a note
(:attr:`StoreFairness.notes`, also the ``note`` column of ``summary``).
"""

from __future__ import annotations

import datetime as dt
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vigil.core.fairness import fairness, proxies, representation
from vigil.core.labels import class_index, is_class, is_missing
from vigil.errors import (
    ArtifactError,
    ExplainError,
    InvalidParameterError,
    MetricInputError,
    SchemaError,
    VigilError,
)
from vigil.services.explaining import IMPORTANCE_COLUMNS
from vigil.services.monitoring import Monitor
from vigil.services.registry import ModelVersion, typed_frame
from vigil.services.rowwise import read_events, split_windows, training_frame

if TYPE_CHECKING:
    from vigil.services.explaining import Explainer

INTERSECTION = " & "

#: The options of :func:`vigil.core.fairness.fairness` a store read passes on (it sets the outcomes itself).
FAIRNESS_OPTIONS = frozenset(inspect.signature(fairness).parameters) - {
    "y_true", "y_pred", "sensitive_features", "y_score", "task"}

# -- the columns of each frame and their dtypes, with events or without (see ``docs/frames.md``) -------------------
_RATES = ("base_rate", "selection_rate", "accuracy", "tpr", "fpr", "fnr", "tnr", "precision", "npv", "auc",
          "calibration_gap")
_MEANS = ("mean_prediction", "mean_target", "mean_error", "mae")
_GROUP = {"window": "datetime64[us]", "attribute": "str", "group": "str", "count": "int64", "share": "float64"}


def _with_bounds(metrics: tuple[str, ...]) -> dict[str, str]:
    return {f"{m}{suffix}": "float64" for m in metrics for suffix in ("", "_low", "_high")}


#: ``by_group`` of a classifier (the score metrics NaN without scores) and of a regressor.
BY_GROUP_COLUMNS = {"binary": {**_GROUP, **_with_bounds(_RATES), "mean_score": "float64", "ece": "float64",
                               "tn": "int64", "fp": "int64", "fn": "int64", "tp": "int64", "status": "str"},
                    "regression": {**_GROUP, **_with_bounds(_MEANS), "rmse": "float64", "status": "str"}}
DISPARITY_COLUMNS = {"window": "datetime64[us]", "attribute": "str", "metric": "str", "group": "str",
                     "reference_group": "str", "value": "float64", "reference_value": "float64",
                     "difference": "float64", "ratio": "float64", "ci_low": "float64", "ci_high": "float64",
                     "p_value": "float64", "p_adjusted": "float64", "status": "str"}
_SUMMARY = {"window": "datetime64[us]", "attribute": "str", "groups": "int64", "insufficient_groups": "int64"}
_FLAGS = {"flagged": "int64", "status": "str", "note": "str"}
SUMMARY_COLUMNS = {
    "binary": {**_SUMMARY, **dict.fromkeys(("demographic_parity_difference", "demographic_parity_ratio",
                                            "equal_opportunity_difference", "equalized_odds_difference",
                                            "predictive_parity_difference", "calibration_gap_difference"), "float64"),
               "four_fifths_passed": "bool", **_FLAGS},
    "regression": {**_SUMMARY, **dict.fromkeys(("mean_prediction_difference", "mean_prediction_ratio", "mae_difference",
                                                "mae_ratio", "mean_error_difference"), "float64"), **_FLAGS}}
REPRESENTATION_COLUMNS = {"window": "datetime64[us]", "attribute": "str", "group": "str", "reference_count": "int64",
                          "reference_share": "float64", "current_count": "int64", "current_share": "float64",
                          "share_ratio": "float64", "difference_low": "float64", "difference_high": "float64",
                          "p_value": "float64", "chi2_p_value": "float64", "flag": "str"}
PROXY_COLUMNS = {"attribute": "str", "feature": "str", "kind": "str", "levels": "int64",
                 "mutual_information": "float64", "auc": "float64", "association": "float64",
                 "mean_abs_attribution": "float64", "attribution_share": "float64", "flag": "str"}


@dataclass
class StoreFairness:
    """Fairness of one model version over time: tidy frames with a ``window`` column, and figures.

    ``by_group``: every group metric per window; ``disparities``: each disparity
    against its reference per window; ``summary``: per window and attribute the
    headline figures (demographic parity difference and ratio, equalized odds,
    four-fifths check) and a ``note`` saying what was left out and why;
    ``representation``: group shares in the training data vs each window;
    ``proxies``: features associated with a protected attribute, with their
    attributions when explanations are stored; ``attributions``: the mean
    attribution of each protected attribute that is a model input, in the
    training data and per window (from the stored explanations); ``notes``:
    what could not be computed and why (no stored explanations, events left
    out, windows without scores...).
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
    notes: list[str] = field(default_factory=list)

    def figure(self, metric: str = "selection_rate", attribute: str | None = None) -> Any:
        """One line per group: ``metric`` over the windows (from ``by_group``)."""
        import plotly.graph_objects as go

        frame = self.by_group
        if metric not in frame.columns:
            raise InvalidParameterError(f"metric {metric!r} is not a group metric here; choose one of "
                                        f"{[c for c in frame.columns if frame[c].dtype.kind == 'f']}",
                                        field="metric")
        attribute = attribute or (self.protected[0] if self.protected else None)
        frame = frame[frame["attribute"] == attribute]
        fig = go.Figure()
        for group, part in frame.groupby("group", sort=True):
            fig.add_trace(go.Scatter(x=part["window"], y=part[metric], mode="lines+markers", name=str(group)))
        fig.update_layout(title=f"{metric.replace('_', ' ')} by {attribute}", xaxis_title="window",
                          yaxis_title=metric.replace("_", " "), template="plotly_white")
        return fig


def _positive_score(mv: ModelVersion, frame: pd.DataFrame) -> np.ndarray | None:
    """The positive class's score column (the only one, or the one whose class is the positive class)."""
    scores = mv.schema.scores
    if not scores:
        return None
    if len(scores) == 1:
        column = scores[0]
    else:
        column = next((c for c in scores if c.class_label is not None
                       and is_class([c.class_label], mv.schema.positive_class)[0]), None)
        if column is None:
            return None
    if column.name not in frame.columns:
        return None
    return pd.to_numeric(frame[column.name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _usable(mv: ModelVersion, frame: pd.DataFrame) -> np.ndarray:
    """Rows with a label and a prediction (for a classifier of two known classes, both one of them)."""
    target, prediction = frame[mv.schema.target.name], frame[mv.schema.prediction.name]
    keep = ~is_missing(target) & ~is_missing(prediction)
    classes = mv.schema.classes
    if mv.task == "binary" and classes is not None and len(classes) == 2:
        keep &= (class_index(target, classes) >= 0) & (class_index(prediction, classes) >= 0)
    return keep


def _outcomes(mv: ModelVersion, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(y_true, y_pred, y_score)`` of usable rows: 0/1 for binary models (matched to the positive class by
    value, see :mod:`vigil.core.labels`), numbers for regression."""
    schema = mv.schema
    target, prediction = frame[schema.target.name], frame[schema.prediction.name]
    if mv.task == "binary":
        positive = schema.positive_class
        return (is_class(target, positive).astype(np.int64), is_class(prediction, positive).astype(np.int64),
                _positive_score(mv, frame))
    return (pd.to_numeric(target).to_numpy(dtype=float, na_value=np.nan),
            pd.to_numeric(prediction).to_numpy(dtype=float, na_value=np.nan), None)


def _check_outputs(mv: ModelVersion) -> None:
    schema = mv.schema
    if schema.prediction is None or schema.target is None:
        raise SchemaError(f"model {mv.model!r} has no prediction and target columns to measure fairness on",
                          field="target" if schema.target is None else "prediction")
    if mv.task not in ("binary", "regression"):
        raise InvalidParameterError(f"fairness metrics cover binary classifiers and regressors; {mv.model!r} "
                                    f"is {mv.task}", field="model")
    if mv.task == "binary" and schema.positive_class is None:
        raise SchemaError(f"model {mv.model!r} version {mv.version!r} names no positive class: register it "
                          "with training data holding the target, or a schema with positive_class=",
                          field="positive_class")


def protected_columns(mv: ModelVersion, protected: list[str] | str | None) -> list[str]:
    """The protected attributes asked for, checked against the schema (all declared ones when None).

    >>> from types import SimpleNamespace
    >>> from vigil.core.schema import Schema
    >>> frame = pd.DataFrame({"x": [1.0, 2.0], "sex": ["F", "M"], "y": [0, 1]})
    >>> mv = SimpleNamespace(model="m", version="1", schema=Schema.infer(frame, target="y", protected=["sex"]))
    >>> protected_columns(mv, None), protected_columns(mv, "x")
    (['sex'], ['x'])
    """
    declared = [c.name for c in mv.schema.protected]
    if protected is None:
        if not declared:
            raise InvalidParameterError(f"model {mv.model!r} version {mv.version!r} declares no protected "
                                        "attribute: register it with protected=[...] or pass protected=",
                                        field="protected")
        return declared
    if isinstance(protected, str):
        protected = [protected]
    if not isinstance(protected, (list, tuple)) or not all(isinstance(p, str) for p in protected):
        raise InvalidParameterError(f"protected is a column name or a list of column names, got {protected!r}"[:300],
                                    field="protected")
    protected = list(protected)
    unknown = [p for p in protected if p not in mv.schema]
    if unknown:
        raise InvalidParameterError(f"{unknown} are not columns of model {mv.model!r}; protected attributes: "
                                    f"{declared}", field="protected")
    return protected


def _with_window(frame: pd.DataFrame, when: dt.datetime) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "window", when)
    return frame


# -- stored explanations, read without the model ---------------------------------------------------------


def _explained(explainer: Explainer | None, mv: ModelVersion, explanations: Any, importance: pd.DataFrame | None,
               window: str, start: Any, end: Any, notes: list[str], *, proxied: bool
               ) -> tuple[Any, pd.DataFrame | None]:
    """The training sample's stored explanations and the stored importance frame; notes what is missing.

    Only stored explanations are read (:meth:`~vigil.services.explaining.Explainer.stored_baseline`,
    :meth:`~vigil.services.explaining.Explainer.feature_importance`): nothing is explained here and the
    model is never loaded, so an artifact that cannot be loaded or trusted, or a model that cannot be
    explained, costs the attributions and nothing else.
    """
    if explainer is not None:
        try:
            if explanations is None:
                explanations = explainer.stored_baseline(mv)
            if importance is None:
                importance = explainer.feature_importance(mv, window=window, start=start, end=end)
        except (ExplainError, ArtifactError) as err:
            notes.append(f"Proxies are flagged by their association with the protected attribute alone, without "
                         f"attributions, and protected attributes have none: the stored explanations could not be "
                         f"read ({err}).")
            return None, None
    if explanations is not None and not len(explanations):
        explanations = None
    if explanations is None and proxied:
        why = ("it was registered without a model artifact" if mv.artifact_sha256 is None else
               "no explanations of its training data are stored (fairness reads stored explanations only and "
               "never runs the model)")
        notes.append(f"Proxies are flagged by their association with the protected attribute alone, without "
                     f"attributions: for {mv.model!r} version {mv.version!r} {why}.")
    return explanations, importance


def _window_label(when: dt.datetime) -> str:
    return pd.Timestamp(when).strftime("%Y-%m-%d %H:%M")


def store_fairness(monitor: Monitor, mv: ModelVersion, *, explainer: Explainer | None = None,
                   protected: list[str] | str | None = None, window: str = "30d", segment: Any = None,
                   start: Any = None, end: Any = None, explanations: Any = None,
                   importance: pd.DataFrame | None = None, **options: Any) -> StoreFairness:
    """Fairness of a version's stored predictions per window (see :class:`StoreFairness`).

    ``options`` go to :func:`vigil.core.fairness.fairness` (``reference=``,
    ``min_group_size=``, ``confidence=``, ``intersections=``...). Labels and
    predictions are matched to the classes by value, on the events that have
    both (:mod:`vigil.core.labels`).

    ``explainer``: where the stored explanations are read from (the training
    sample's rank the proxies; the events' give ``attributions``). Nothing is
    explained here and the model is never loaded: without stored explanations
    (or when they cannot be read) the proxies carry no attributions and
    ``notes`` says so. ``explanations`` (an :class:`~vigil.core.explain.Explanation`
    of training rows) and ``importance`` (a frame as
    :meth:`~vigil.services.explaining.Explainer.feature_importance` returns)
    override what is read.

    Through a store (:meth:`vigil.Store.fairness`), with 0/1 labels for some events only:

    >>> import tempfile, vigil
    >>> train = pd.DataFrame({"x": np.arange(8.0), "sex": list("FMFMFMFM"), "y": [0, 1] * 4})
    >>> events = train.assign(event_id=[f"e{i}" for i in range(8)], prediction=[0, 1, 1, 1, 0, 1, 0, 0],
    ...                       score=np.linspace(0.1, 0.8, 8),
    ...                       timestamp=pd.Timestamp("2026-01-05", tz="UTC"))
    >>> with vigil.open(tempfile.mkdtemp()) as store:
    ...     _ = store.register_model("m", version="1", task="binary", training_data=train, target="y",
    ...                              protected=["sex"])
    ...     _ = store.log_predictions("m", "1", events.drop(columns="y"))
    ...     _ = store.log_labels("m", events[["event_id", "y"]].iloc[:6])
    ...     result = store.fairness("m", min_group_size=1)
    >>> result.by_group[["group", "count", "base_rate", "tpr"]]
      group  count  base_rate  tpr
    0     F      3        0.0  NaN
    1     M      3        1.0  1.0
    """
    columns = protected_columns(mv, protected)
    unknown = sorted(set(options) - FAIRNESS_OPTIONS)
    if unknown:
        raise InvalidParameterError(f"fairness() has no option {unknown[0]!r}; its options: "
                                    f"{sorted(FAIRNESS_OPTIONS)}", field=unknown[0])
    notes: list[str] = []
    events = read_events(monitor, mv, segment, start, end, labels=True)
    target = mv.schema.target.name if mv.schema.target is not None else None
    by_group, disparities, summary, shares = [], [], [], []
    window_notes: dict[dt.datetime, list[str]] = {}
    try:
        training = training_frame(monitor, mv)
    except VigilError:
        training = None
    present = [c for c in columns if training is not None and c in training.columns]
    if training is None:
        notes.append("Representation and proxies are left out: the version has no training data (nor events) "
                     "to compare with.")
    for when, part in split_windows(events, window):
        groups = part[columns].astype(object).where(part[columns].notna(), None)
        labelled = ~is_missing(part[target]) if target in part else np.zeros(len(part), bool)
        here = window_notes.setdefault(when, [])
        if labelled.any():
            _check_outputs(mv)
            usable = _usable(mv, part)
            left_out = int(np.count_nonzero(labelled & ~usable))
            if left_out:
                here.append(f"{left_out} labelled event(s) of the window from {_window_label(when)} are left out: "
                            f"their prediction is missing or their label or prediction is not one of the classes "
                            f"{list(mv.schema.classes or ())}.")
        else:
            usable = labelled
        if usable.any():
            y_true, y_pred, y_score = _outcomes(mv, part.loc[usable])
            if y_score is not None and not np.isfinite(y_score).all():
                y_score = None
                here.append(f"AUC and calibration are left out of the window from {_window_label(when)}: some of "
                            "its labelled events have no score.")
            report = fairness(y_true, y_pred, groups.loc[usable].reset_index(drop=True), y_score=y_score,
                              task="regression" if mv.task == "regression" else "classification", **options)
            by_group.append(_with_window(report.by_group, when))
            disparities.append(_with_window(report.disparities, when))
            summary.append(_with_window(report.summary, when))
        for column in present:
            shares.append(_with_window(representation(training[column], part[column]).assign(attribute=column),
                                       when))
    explanations, importance = _explained(explainer, mv, explanations, importance, window, start, end, notes,
                                          proxied=training is not None and bool(present))
    proxy_frame: pd.DataFrame | list = []
    if training is not None and present:
        features = [c.name for c in mv.schema.features if c.name in training.columns and c.name not in columns]
        attributions = None
        if explanations is not None:
            attributions = pd.DataFrame(explanations.values, columns=explanations.feature_names)
        parts = []
        for column in present:
            try:
                parts.append(proxies(training[features], training[column], attributions=attributions)
                             .assign(attribute=column))
            except MetricInputError as err:
                notes.append(f"No proxies of {column!r}: {err}")
        proxy_frame = pd.concat(parts, ignore_index=True) if parts else []
    kind = "regression" if mv.task == "regression" else "binary"
    summary_frame = typed_frame(pd.concat(summary, ignore_index=True) if summary else [], SUMMARY_COLUMNS[kind])
    if len(summary_frame):
        summary_frame["note"] = [" ".join([*window_notes.get(pd.Timestamp(w).to_pydatetime(), []), *notes])
                                 for w in summary_frame["window"]]
    return StoreFairness(
        model=mv.model, version=mv.version, protected=columns,
        by_group=typed_frame(pd.concat(by_group, ignore_index=True) if by_group else [], BY_GROUP_COLUMNS[kind]),
        disparities=typed_frame(pd.concat(disparities, ignore_index=True) if disparities else [], DISPARITY_COLUMNS),
        summary=summary_frame,
        representation=typed_frame(pd.concat(shares, ignore_index=True) if shares else [], REPRESENTATION_COLUMNS),
        proxies=typed_frame(proxy_frame, PROXY_COLUMNS),
        attributions=typed_frame([] if importance is None or not len(importance) else
                                 importance[importance["feature"].isin(columns)].reset_index(drop=True),
                                 IMPORTANCE_COLUMNS),
        notes=[*(n for when in sorted(window_notes) for n in window_notes[when]), *notes])
