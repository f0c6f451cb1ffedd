"""Background data for Shapley values: a few rows, with weights, that stand for "the data".

Interventional Shapley values average the model over a background set; the
cost of every explanation grows with its size, so a large training set is
summarised first: by k-means (weighted centroids, like ``shap.kmeans``, but
with categorical, string and boolean columns kept as real values of the data)
or by a uniform sample.

>>> import numpy as np
>>> import pandas as pd
>>> data = pd.DataFrame({"x": np.arange(1000.0), "colour": ["red", "blue"] * 500})
>>> rows, weights, text = summarize_background(data, size=10)
>>> len(rows), round(float(weights.sum()), 6), sorted(set(rows["colour"])) <= ["blue", "red"]
(10, 1.0, True)
>>> text
'10 rows: k-means summary of 1,000 rows (weighted by cluster size)'
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.explain.adapters import ExplainError

METHODS = ("kmeans", "sample")
_FIT_ROWS = 100_000  # k-means is fit on at most this many rows; every row is then assigned
_ONE_HOT_LEVELS = 20  # levels per column used to cluster tables without numeric columns


def as_table(data: Any, feature_names: Sequence[str] | None = None, *, what: str = "data") -> pd.DataFrame:
    """``data`` (DataFrame, Series, 2-D array or list of rows) as a DataFrame with its feature columns.

    >>> as_table(np.zeros((2, 2)), ["a", "b"]).columns.tolist()
    ['a', 'b']
    """
    if isinstance(data, pd.Series):
        data = data.to_frame().T.infer_objects()
    if isinstance(data, pd.DataFrame):
        if feature_names is None:
            return data.reset_index(drop=True)
        missing = [c for c in feature_names if c not in data.columns]
        if missing:
            raise ExplainError(f"{what} lacks the model's input column(s) {missing}")
        return data[list(feature_names)].reset_index(drop=True)
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ExplainError(f"{what} must be a table (DataFrame or 2-D array); got an array of shape {arr.shape}")
    names = [str(n) for n in feature_names] if feature_names is not None else [f"x{j}" for j in range(arr.shape[1])]
    if len(names) != arr.shape[1]:
        raise ExplainError(f"{what} has {arr.shape[1]} columns but there are {len(names)} feature names {names}")
    frame = pd.DataFrame(arr, columns=names)
    return frame.infer_objects() if arr.dtype == object else frame


def _is_numeric(column: pd.Series) -> bool:
    dtype = column.dtype
    return (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            and not pd.api.types.is_complex_dtype(dtype))


def summarize_background(
    data: Any,
    *,
    size: int = 100,
    method: str = "kmeans",
    seed: int = 0,
    feature_names: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray, str]:
    """Summarise ``data`` as at most ``size`` background rows with weights summing to 1.

    ``method="kmeans"``: k-means on the standardised numeric columns (missing
    values count as the column mean); each cluster becomes one row weighted by
    its share of the data, with the cluster mean for float columns, the mean
    rounded to an observed-like integer for integer columns, and the cluster's
    most frequent value (missing included) for categorical, string, boolean and
    other columns, so every such value is one the model has seen. A table
    without numeric columns is clustered on its one-hot codes. The weighted
    mean of a float column equals its mean in ``data``.
    ``method="sample"``: ``size`` rows drawn uniformly without replacement, equal weights.
    A table with at most ``size`` rows is returned whole, with equal weights.

    Returns ``(rows, weights, description)``; ``rows`` keeps the columns and dtypes of ``data``.

    >>> rows, weights, text = summarize_background(np.arange(20.0).reshape(10, 2), size=4, method="sample")
    >>> rows.shape, weights.tolist(), text
    ((4, 2), [0.25, 0.25, 0.25, 0.25], '4 rows sampled uniformly from 10 rows')
    """
    if method not in METHODS:
        raise ExplainError(f"method={method!r}: choose one of {list(METHODS)}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ExplainError(f"size={size!r}: give a positive number of background rows")
    frame = as_table(data, feature_names, what="background data")
    n = len(frame)
    if n == 0:
        raise ExplainError("background data has no rows")
    if frame.shape[1] == 0:
        raise ExplainError("background data has no columns")
    if n <= size:
        return frame, np.full(n, 1.0 / n), f"all {n:,} rows"
    rng = np.random.default_rng(seed)
    if method == "sample":
        picked = np.sort(rng.choice(n, size=size, replace=False))
        return (frame.iloc[picked].reset_index(drop=True), np.full(size, 1.0 / size),
                f"{size:,} rows sampled uniformly from {n:,} rows")
    labels = _cluster(frame, size, seed)
    present, labels = np.unique(labels, return_inverse=True)  # drop empty clusters
    k = len(present)
    counts = np.bincount(labels, minlength=k).astype(float)
    columns = {}
    for name in frame.columns:
        column = frame[name]
        if _is_numeric(column):
            columns[name] = _numeric_centres(column, labels, k, counts)
        else:
            columns[name] = _mode_rows(column, labels, k)
    rows = pd.DataFrame(columns, columns=frame.columns)
    return rows, counts / n, f"{k:,} rows: k-means summary of {n:,} rows (weighted by cluster size)"


def _cluster_matrix(frame: pd.DataFrame) -> np.ndarray:
    numeric = [c for c in frame.columns if _is_numeric(frame[c])]
    if numeric:
        values = np.column_stack([frame[c].to_numpy(dtype=float, na_value=np.nan) for c in numeric])
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(values, axis=0)
            scale = np.nanstd(values, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        standard = (values - mean) / scale
        return np.where(np.isfinite(standard), standard, 0.0)
    blocks = []
    for name in frame.columns:
        codes, _ = pd.factorize(frame[name], use_na_sentinel=False)
        top = np.argsort(-np.bincount(codes), kind="stable")[:_ONE_HOT_LEVELS]
        blocks.append((codes[:, None] == top[None, :]).astype(float))
    return np.hstack(blocks)


def _cluster(frame: pd.DataFrame, size: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    matrix = _cluster_matrix(frame)
    n = len(matrix)
    k = min(size, len(np.unique(matrix, axis=0))) if n <= 20 * size else size
    fit_on = matrix
    if n > _FIT_ROWS:
        fit_on = matrix[np.random.default_rng(seed).choice(n, size=_FIT_ROWS, replace=False)]
    with warnings.catch_warnings():  # fewer distinct points than clusters: the empty clusters are dropped
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(fit_on)
    return model.predict(matrix) if fit_on is not matrix else model.labels_


def _numeric_centres(column: pd.Series, labels: np.ndarray, k: int, counts: np.ndarray) -> pd.Series:
    values = column.to_numpy(dtype=float, na_value=np.nan)
    seen = ~np.isnan(values)
    sums = np.bincount(labels[seen], weights=values[seen], minlength=k)
    present = np.bincount(labels[seen], minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        centres = sums / present
    centres[present < 0.5 * counts] = np.nan  # a mostly-missing cluster stays missing
    if pd.api.types.is_integer_dtype(column.dtype):
        centres = np.round(centres)
    try:
        return pd.Series(centres).astype(column.dtype)
    except (TypeError, ValueError):  # a numpy integer column with a missing centre stays float
        return pd.Series(centres)


def _mode_rows(column: pd.Series, labels: np.ndarray, k: int) -> pd.Series:
    codes, _ = pd.factorize(column, use_na_sentinel=False)  # codes in order of first appearance; missing has one
    levels = int(codes.max()) + 1
    pairs, counts = np.unique(labels.astype(np.int64) * levels + codes, return_counts=True)
    cluster, code = pairs // levels, pairs % levels
    order = np.lexsort((code, -counts, cluster))  # per cluster: most frequent first, ties to the first met
    first = order[np.r_[True, cluster[order][1:] != cluster[order][:-1]]]
    mode = np.empty(k, dtype=np.int64)
    mode[cluster[first]] = code[first]
    members = np.flatnonzero(codes == mode[labels])
    clusters, at = np.unique(labels[members], return_index=True)
    representative = np.empty(k, dtype=np.intp)
    representative[clusters] = members[at]
    return column.iloc[representative].reset_index(drop=True)
