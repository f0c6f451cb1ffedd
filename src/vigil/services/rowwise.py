"""Per-window metrics that need the raw rows, not profiles.

Profiles (see :mod:`vigil.services.monitoring`) hold marginal summaries; the
metrics here need every row of a window: the joint structure of the features
(multivariate drift, multivariate outliers), embedding vectors (MMD), a
user-defined ratio of sums over event columns, and ranking metrics on lists of
items. Each function reads the version's events in ``[start, end)`` once (with
the labels joined when the model has any), assigns each row its window exactly
as :func:`~vigil.services.monitoring.window_start` does, and returns a tidy
frame with ``window`` (UTC start) and ``segment`` columns, oldest window first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.metrics import multivariate as mvm
from vigil.core.metrics import performance as perf
from vigil.core.schema import Column, Kind
from vigil.errors import InvalidParameterError, SchemaError
from vigil.services.monitoring import (
    Monitor,
    parse_window,
    segment_key,
    time_bound,
    typed_segment,
    window_start,
)
from vigil.services.registry import ModelVersion, typed_frame

__all__ = ["multivariate_drift", "multivariate_outliers", "embedding_drift", "custom_metric", "ranking_performance"]

#: Windows with fewer rows get no decision from :func:`multivariate_drift` (status "insufficient_data").
MIN_ROWS = mvm.MIN_ROWS
#: The share of training rows above the outlier threshold (its 99th percentile).
OUTLIER_BASELINE = 0.01
#: MMD p-value below which an embedding column is flagged as drifted.
MMD_ALPHA = 0.01

#: The columns of each read's frame and their dtypes, the same for an empty result (see ``docs/frames.md``).
_WINDOW = {"window": "datetime64[us, UTC]", "segment": "str"}
MULTIVARIATE_DRIFT_COLUMNS = {**_WINDOW, "method": "str", "value": "float64", "lower": "float64", "upper": "float64",
                              "threshold": "float64", "drifted": "boolean", "rows": "int64", "status": "str"}
OUTLIER_COLUMNS = {**_WINDOW, "metric": "str", "value": "float64", "baseline": "float64", "rows": "int64"}
EMBEDDING_DRIFT_COLUMNS = {**_WINDOW, "column": "str", "metric": "str", "value": "float64", "p_value": "float64",
                           "drifted": "bool"}
CUSTOM_METRIC_COLUMNS = {**_WINDOW, "metric": "str", "value": "float64", "numerator": "float64",
                         "denominator": "float64"}
RANKING_COLUMNS = {**_WINDOW, "metric": "str", "value": "float64", "labelled": "int64"}


# -- reading ------------------------------------------------------------------------------------------


def read_events(monitor: Monitor, mv: ModelVersion, segment: Any, start: Any, end: Any,
                labels: bool = False) -> pd.DataFrame:
    """The version's events in ``[start, end)`` of a segment, with the target joined when ``labels``."""
    target = mv.schema.target
    table = monitor.events.read(
        mv.model_id, version=mv.version, start=time_bound(start, "start"), end=time_bound(end, "end"),
        segment=typed_segment(mv.schema, segment), target=target.name if labels and target is not None else None,
        readable_only=True)
    return table.to_pandas()


def split_windows(frame: pd.DataFrame, window: str) -> Iterator[tuple[dt.datetime, pd.DataFrame]]:
    """``(window start, rows)`` per window, oldest first."""
    if frame.empty:
        return
    _, length = parse_window(window)
    ts = pd.to_datetime(frame["timestamp"])
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    starts = window_start(ts.to_numpy(), length)
    for w in np.unique(starts):
        yield pd.Timestamp(w).to_pydatetime(), frame.loc[starts == w]


def training_frame(monitor: Monitor, mv: ModelVersion) -> pd.DataFrame:
    """The version's training data as stored (the first day of events when it has none)."""
    table, _ = monitor._baseline_table(mv)
    return table.to_pandas()


def _feature_kinds(mv: ModelVersion, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The numeric and categorical features present in ``frame``."""
    numeric = [c.name for c in mv.schema.features if c.kind == Kind.NUMERIC and c.name in frame]
    categorical = [c.name for c in mv.schema.features
                   if c.kind in (Kind.CATEGORICAL, Kind.BOOLEAN) and c.name in frame]
    if not numeric and not categorical:
        raise SchemaError(f"model {mv.model!r} has no numeric or categorical features to compare", field="model")
    return numeric, categorical


def _as_features(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(frame)))
    for c in numeric:
        out[c] = pd.to_numeric(frame[c], errors="coerce").astype(float).to_numpy()
    for c in categorical:
        values = frame[c].to_numpy(dtype=object)
        out[c] = np.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                           for v in values], dtype=object)
    return out


def _sample(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidParameterError(f"sample is a positive number of rows, got {n!r}", field="sample")
    if len(frame) <= n:
        return frame.reset_index(drop=True)
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), size=n, replace=False))
    return frame.iloc[rows].reset_index(drop=True)


# -- multivariate drift ---------------------------------------------------------------------------------

_PCA_REFERENCES: OrderedDict[tuple[Any, ...], mvm.ReconstructionReference] = OrderedDict()
_PCA_REFERENCES_LOCK = threading.Lock()
#: Fitted PCA references kept (most recently used), keyed by the content of the reference rows.
PCA_CACHE_SIZE = 8


def _pca_reference(reference: pd.DataFrame, numeric: list[str], categorical: list[str]) -> mvm.ReconstructionReference:
    """The reference's PCA and null bands, fit once per distinct set of reference rows and reused."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(reference, index=False).to_numpy().tobytes()).hexdigest()
    key = (digest, tuple(numeric), tuple(categorical))
    with _PCA_REFERENCES_LOCK:
        if key in _PCA_REFERENCES:
            _PCA_REFERENCES.move_to_end(key)
            return _PCA_REFERENCES[key]
    fitted = mvm.reconstruction_reference(reference, numeric=numeric, categorical=categorical)
    with _PCA_REFERENCES_LOCK:
        _PCA_REFERENCES[key] = fitted
        while len(_PCA_REFERENCES) > PCA_CACHE_SIZE:
            _PCA_REFERENCES.popitem(last=False)
    return fitted


def multivariate_drift(monitor: Monitor, mv: ModelVersion, *, window: str = "1d", method: str = "pca",
                       segment: Any = None, start: Any = None, end: Any = None, sample: int = 10_000) -> pd.DataFrame:
    """Multivariate drift of the features per window against the training data, judged at each window's size.

    ``method="pca"``: :func:`~vigil.core.metrics.multivariate.pca_reconstruction_drift`
    (``value`` is the window's reconstruction error; ``lower``/``upper`` the
    band the error of that many training-like rows stays in 99% of the time,
    ``threshold`` its upper end); ``method="domain_classifier"``:
    :func:`~vigil.core.metrics.multivariate.domain_classifier_auc` (``value`` is
    the AUC on held-out rows, ``threshold`` the AUC that many training-like rows
    stay under 99% of the time). Either way about 1% of windows without drift
    are flagged, whatever their size. Numeric and categorical features are
    used; at most ``sample`` rows of each side (fixed seed). The PCA fit and its
    bands are cached across calls for the same training rows.

    A window with fewer than :data:`MIN_ROWS` rows gets no decision:
    ``drifted`` is NA, ``lower``, ``upper`` and ``threshold`` NaN (``value``
    NaN for the classifier) and ``status`` ``"insufficient_data"`` (else
    ``"ok"``). Columns: window, segment, method, value, lower, upper,
    threshold, drifted (nullable boolean), rows (the window's rows), status.
    """
    if method not in ("pca", "domain_classifier"):
        raise InvalidParameterError(f"method must be 'pca' or 'domain_classifier', got {method!r}", field="method")
    segment = segment_key(segment)
    train = training_frame(monitor, mv)
    numeric, categorical = _feature_kinds(mv, train)
    reference = _sample(_as_features(train, numeric, categorical), sample)
    pca = _pca_reference(reference, numeric, categorical) if method == "pca" else None
    rows = []
    for start_, part in split_windows(read_events(monitor, mv, segment, start, end), window):
        current = _sample(_as_features(part, numeric, categorical), sample)
        if pca is not None:
            r = pca.test(current)
            value, lower, upper, threshold = r["current_error"], r["lower"], r["upper"], r["upper"]
        else:
            r = mvm.domain_classifier_auc(reference, current, numeric=numeric, categorical=categorical,
                                          sample=sample, min_rows=MIN_ROWS)
            value, lower, upper, threshold = r["auc"], float("nan"), float("nan"), r["threshold"]
        rows.append({"window": start_, "segment": segment or "all", "method": method, "value": float(value),
                     "lower": lower, "upper": upper, "threshold": threshold,
                     "drifted": pd.NA if r["drifted"] is None else bool(r["drifted"]), "rows": len(part),
                     "status": r["status"]})
    return typed_frame(rows, MULTIVARIATE_DRIFT_COLUMNS)


# -- multivariate outliers ------------------------------------------------------------------------------


class _Ordinal:
    """Numeric features with NaN -> the training median; categoricals as training codes, unknown -> -1."""

    def __init__(self, train: pd.DataFrame, numeric: list[str], categorical: list[str]) -> None:
        self.numeric, self.categorical = numeric, categorical
        self.median = {c: float(np.nanmedian(train[c])) if np.isfinite(train[c]).any() else 0.0 for c in numeric}
        self.levels = {c: pd.Index(pd.unique(train[c].dropna())) for c in categorical}

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        parts = []
        for c in self.numeric:
            x = frame[c].to_numpy(dtype=float)
            parts.append(np.where(np.isfinite(x), x, self.median[c]))
        for c in self.categorical:
            parts.append(self.levels[c].get_indexer(frame[c]).astype(float))
        return np.column_stack(parts)


def multivariate_outliers(monitor: Monitor, mv: ModelVersion, *, window: str = "1d", segment: Any = None,
                          start: Any = None, end: Any = None) -> pd.DataFrame:
    """Share of each window's rows an IsolationForest fit on the training features finds anomalous.

    The forest (``random_state=0``) is fit on the training rows' numeric
    features (NaN -> the training median) and categorical features (ordinal
    codes, unknown -> -1). A row is an outlier when its anomaly score
    (``-score_samples``, higher = more anomalous) exceeds the 99th percentile
    of the training rows' scores, so about 1% of training-like traffic is
    flagged (``baseline``). Columns: window, segment, metric
    (``multivariate_outlier_rate``), value, baseline, rows.
    """
    from sklearn.ensemble import IsolationForest

    segment = segment_key(segment)
    train = training_frame(monitor, mv)
    numeric, categorical = _feature_kinds(mv, train)
    encoder = _Ordinal(_as_features(train, numeric, categorical), numeric, categorical)
    x_train = encoder.transform(_as_features(train, numeric, categorical))
    forest = IsolationForest(random_state=0).fit(x_train)
    threshold = float(np.percentile(-forest.score_samples(x_train), 99))
    rows = []
    for start_, part in split_windows(read_events(monitor, mv, segment, start, end), window):
        scores = -forest.score_samples(encoder.transform(_as_features(part, numeric, categorical)))
        rows.append({"window": start_, "segment": segment or "all", "metric": "multivariate_outlier_rate",
                     "value": float(np.mean(scores > threshold)), "baseline": OUTLIER_BASELINE, "rows": len(part)})
    return typed_frame(rows, OUTLIER_COLUMNS)


# -- embedding drift ------------------------------------------------------------------------------------


def _matrix(values: pd.Series) -> np.ndarray:
    kept = [np.asarray(v, dtype=float) for v in values if v is not None and not (np.ndim(v) == 0 and pd.isna(v))]
    return np.vstack(kept) if kept else np.empty((0, 0))


def embedding_drift(monitor: Monitor, mv: ModelVersion, *, window: str = "1d", column: str | None = None,
                    baseline: str = "training", segment: Any = None, start: Any = None, end: Any = None,
                    sample: int = 500, permutations: int = 100) -> pd.DataFrame:
    """Drift of embedding features per window: distance between mean vectors and an MMD test.

    For each embedding feature (or ``column``), each window is compared with
    the training rows (``baseline="training"``) or the window before
    (``"previous"``): metrics ``mean_distance_euclidean``,
    ``mean_distance_cosine`` (:func:`~vigil.core.metrics.multivariate.mean_embedding_distance`)
    and ``mmd`` (:func:`~vigil.core.metrics.multivariate.mmd` on up to
    ``sample`` rows a side, ``permutations`` permutations, with its
    ``p_value``). ``drifted`` is the MMD decision (p < 0.01), repeated on the
    window's distance rows. Columns: window, segment, column, metric, value,
    p_value, drifted.
    """
    if baseline not in ("training", "previous"):
        raise InvalidParameterError(f"baseline must be 'training' or 'previous', got {baseline!r}", field="baseline")
    segment = segment_key(segment)
    embeddings: list[Column] = [c for c in mv.schema.features if c.kind == Kind.EMBEDDING]
    if column is not None:
        embeddings = [c for c in embeddings if c.name == column]
        if not embeddings:
            raise InvalidParameterError(f"column {column!r} is not an embedding feature of model {mv.model!r}",
                                        field="column")
    if not embeddings:
        raise SchemaError(f"model {mv.model!r} has no embedding features", field="model")
    train = training_frame(monitor, mv) if baseline == "training" else None
    fixed = {c.name: _matrix(train[c.name]) for c in embeddings} if train is not None else None
    previous: dict[str, np.ndarray] | None = None
    rows = []
    for start_, part in split_windows(read_events(monitor, mv, segment, start, end), window):
        current = {c.name: _matrix(part[c.name]) for c in embeddings}
        reference = fixed if fixed is not None else previous
        previous = current
        if reference is None:
            continue
        for c in embeddings:
            ref, cur = reference[c.name], current[c.name]
            if len(ref) < 2 or len(cur) < 2:
                continue
            test = mvm.mmd(ref, cur, sample=sample, permutations=permutations)
            distance = mvm.mean_embedding_distance(ref, cur)
            drifted = bool(test.p_value < MMD_ALPHA)
            base = {"window": start_, "segment": segment or "all", "column": c.name}
            rows += [{**base, "metric": f"mean_distance_{k}", "value": v, "p_value": float("nan"),
                      "drifted": drifted} for k, v in distance.items()]
            rows.append({**base, "metric": "mmd", "value": test.statistic, "p_value": test.p_value,
                         "drifted": drifted})
    return typed_frame(rows, EMBEDDING_DRIFT_COLUMNS)


# -- custom metrics -------------------------------------------------------------------------------------


def custom_metric(monitor: Monitor, mv: ModelVersion, metric: perf.CustomMetric, *, window: str = "1d",
                  segment: Any = None, start: Any = None, end: Any = None) -> pd.DataFrame:
    """A :class:`~vigil.core.metrics.performance.CustomMetric` per window, on the window's events.

    The frame the metric sees holds the events' columns and, when the model
    has labels, the target and ``label_time`` (NULL for unlabelled events).
    ``numerator`` and ``denominator`` are the window's sums, so any window's
    value is the ratio of its sums (a week's is not the mean of its days').
    Columns: window, segment, metric, value, numerator, denominator.

    >>> import tempfile, vigil
    >>> store = vigil.open(tempfile.mkdtemp())
    >>> _ = store.register_model("m", version="1", task="regression", target="y",
    ...                          training_data=pd.DataFrame({"x": [1.0, 2.0], "y": [0.5, 1.5]}))
    >>> _ = store.log_predictions("m", "1", pd.DataFrame({
    ...     "event_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0], "prediction": [0.4, 1.2, 2.0],
    ...     "timestamp": pd.to_datetime(["2026-01-01 09:00", "2026-01-01 17:00", "2026-01-02 08:00"])}))
    >>> got = store.custom_metric("m", metric=perf.CustomMetric("mean_x", "x"), window="1d")
    >>> got[["metric", "value", "numerator", "denominator"]].to_dict("list")
    {'metric': ['mean_x', 'mean_x'], 'value': [1.5, 3.0], 'numerator': [3.0, 3.0], 'denominator': [2.0, 1.0]}
    >>> store.close()
    """
    if not isinstance(metric, perf.CustomMetric):
        raise InvalidParameterError(f"metric must be a CustomMetric, got {type(metric).__name__}", field="metric")
    segment = segment_key(segment)
    rows = []
    for start_, part in split_windows(read_events(monitor, mv, segment, start, end, labels=True), window):
        num, den = metric.sufficient_stats(part.reset_index(drop=True))
        rows.append({"window": start_, "segment": segment or "all", "metric": metric.name,
                     "value": metric.from_stats(num, den), "numerator": num, "denominator": den})
    return typed_frame(rows, CUSTOM_METRIC_COLUMNS)


# -- ranking --------------------------------------------------------------------------------------------

_RANKING = (("precision_at_k", perf.precision_at_k), ("recall_at_k", perf.recall_at_k),
            ("ndcg_at_k", perf.ndcg_at_k), ("map_at_k", perf.map_at_k), ("hit_rate_at_k", perf.hit_rate_at_k))


def ranking_performance(monitor: Monitor, mv: ModelVersion, *, k: int = 10, window: str = "1d", segment: Any = None,
                        start: Any = None, end: Any = None) -> pd.DataFrame:
    """Precision, recall, NDCG, MAP and hit rate at ``k`` per window, over the labelled events.

    For a ``task="ranking"`` model: the prediction column holds the
    recommended items in rank order and the target the items acted upon (see
    :mod:`vigil.core.metrics.performance` for the definitions; events whose
    label is an empty list are skipped by the metrics). ``labelled`` is the
    window's number of labelled events. Columns: window, segment, metric,
    value, labelled.
    """
    schema = mv.schema
    if schema.task != "ranking" or schema.target is None or schema.prediction is None:
        raise SchemaError(f"model {mv.model!r} is not a ranking model with a prediction and a target column",
                          field="model")
    segment = segment_key(segment)
    target, prediction = schema.target.name, schema.prediction.name
    frame = read_events(monitor, mv, segment, start, end, labels=True)
    if target not in frame:
        return typed_frame([], RANKING_COLUMNS)
    frame = frame[frame[target].notna()]
    rows = []
    for start_, part in split_windows(frame, window):
        recommended, relevant = list(part[prediction]), list(part[target])
        for name, fn in _RANKING:
            rows.append({"window": start_, "segment": segment or "all", "metric": name,
                         "value": fn(recommended, relevant, k=k), "labelled": len(part)})
    return typed_frame(rows, RANKING_COLUMNS)
