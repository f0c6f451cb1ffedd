"""Multivariate drift: changes no single column shows (correlations, joint shifts, embeddings).

- :func:`pca_reconstruction_drift`: NannyML's *data reconstruction drift*. A PCA
  fit on the (standardised) reference compresses its rows; when the joint
  structure of the current data changes, its rows reconstruct worse, even if
  every marginal distribution is unchanged.
- :func:`domain_classifier_auc`: a classifier is trained to tell reference rows
  from current rows; a cross-validated ROC AUC near 0.5 means it cannot.
- :func:`mmd` and :func:`mean_embedding_distance`: for embedding vectors, the
  RBF-kernel maximum mean discrepancy with a permutation test, and the distance
  between the two mean vectors.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + 1.0
>>> mmd(a, b, permutations=50).p_value < 0.05
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.metrics.drift import MetricInputError, StatTestResult, _table_columns

__all__ = ["pca_reconstruction_drift", "domain_classifier_auc", "mmd", "mean_embedding_distance"]

_ROW_CHUNK = 100_000
#: Categories one-hot encoded per column in :func:`pca_reconstruction_drift` (the rest share one "other" column).
MAX_ONE_HOT = 50


def _check_frames(reference_df: Any, current_df: Any, min_rows: int = 2) -> None:
    for arg, df in (("reference_df", reference_df), ("current_df", current_df)):
        if not isinstance(df, pd.DataFrame):
            raise MetricInputError(f"{arg} must be a pandas DataFrame, got {type(df).__name__}")
        if len(df) < min_rows:
            raise MetricInputError(f"{arg} needs at least {min_rows} rows, got {len(df)}")


class _Encoder:
    """Numeric columns as they are (missing -> reference mean); categoricals one-hot on the reference's most
    frequent categories (unseen and rare ones -> an "other" column); then everything standardised by the
    reference's mean and standard deviation."""

    def __init__(self, reference_df: pd.DataFrame, columns: dict[str, str]) -> None:
        self.columns = columns
        self.levels: dict[str, pd.Index] = {}
        for col, kind in columns.items():
            if kind == "categorical":
                counts = reference_df[col].value_counts(dropna=True)
                self.levels[col] = pd.Index(counts.index[:MAX_ONE_HOT])
        self.fill = {col: float(np.nanmean(_as_float(reference_df[col], col)))
                     for col, kind in columns.items() if kind == "numeric"}
        # standardisation from a chunked pass over the raw encoding
        n, s1, s2 = 0, 0.0, 0.0
        for chunk in _row_chunks(reference_df):
            x = self._raw(chunk)
            n += x.shape[0]
            s1 = s1 + x.sum(axis=0)
            s2 = s2 + (x * x).sum(axis=0)
        self.mean = s1 / n
        std = np.sqrt(np.maximum(s2 / n - self.mean ** 2, 0.0))
        self.std = np.where(std > 1e-12, std, 1.0)  # a constant column stays 0 after centring

    def _raw(self, df: pd.DataFrame) -> np.ndarray:
        parts = []
        for col, kind in self.columns.items():
            if kind == "numeric":
                x = _as_float(df[col], col)
                parts.append(np.where(np.isfinite(x), x, self.fill[col])[:, None])
            else:
                levels = self.levels[col]
                pos = levels.get_indexer(df[col])
                onehot = np.zeros((len(df), len(levels) + 1))
                onehot[np.arange(len(df)), np.where(pos < 0, len(levels), pos)] = 1.0
                missing = df[col].isna().to_numpy()
                onehot[missing] = 0.0  # a missing category: all zeros
                parts.append(onehot)
        return np.hstack(parts)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        return (self._raw(df) - self.mean) / self.std


def _as_float(s: pd.Series, col: str) -> np.ndarray:
    try:
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise MetricInputError(f"column {col!r} is not numeric; list it under categorical=") from err


def _row_chunks(df: pd.DataFrame, size: int = _ROW_CHUNK):
    for start in range(0, len(df), size):
        yield df.iloc[start:start + size]


def pca_reconstruction_drift(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    *,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    n_components: float | int = 0.65,
    chunks: int | None = None,
) -> dict[str, Any]:
    """Data reconstruction drift (as NannyML's): how much worse a reference PCA reconstructs the current rows.

    Numeric features are standardised (missing values imputed with the
    reference mean) and categoricals one-hot encoded on the reference's
    categories (up to :data:`MAX_ONE_HOT` per column, the rest and unseen ones
    in an "other" column). A PCA fit on the reference keeps ``n_components``
    components (an int, or a float in (0, 1): the fewest components explaining
    that share of the variance, 65% by default). The reconstruction error of a
    set of rows is the mean Euclidean distance between each encoded row and its
    reconstruction. The reference is cut into ``chunks`` (default 10)
    contiguous chunks; drift is flagged when the current error falls outside
    their mean +- 3 standard deviations. The band is for sets the size of a
    chunk: a current set much larger than a chunk is judged conservatively.

    Columns are chosen as in :func:`~vigil.core.metrics.drift.drift_table`.
    Returns ``{reference_error, current_error, lower, upper, drifted,
    n_components}``.

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame(rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], 2_000), columns=["a", "b"])
    >>> cur = pd.DataFrame(rng.normal(size=(2_000, 2)), columns=["a", "b"])   # same marginals, no correlation
    >>> pca_reconstruction_drift(ref, cur)["drifted"]
    True
    """
    _check_frames(reference_df, current_df)
    columns = _table_columns(reference_df, current_df, numeric, categorical)
    chunks = 10 if chunks is None else chunks
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 2:
        raise MetricInputError(f"chunks must be an integer >= 2, got {chunks!r}")
    if len(reference_df) < 2 * chunks:
        raise MetricInputError(f"reference_df needs at least 2 rows per chunk ({2 * chunks}), got {len(reference_df)}")
    enc = _Encoder(reference_df, columns)

    # PCA by the eigen-decomposition of the covariance, accumulated chunk by chunk (no n x d copy of the data)
    cov, n = 0.0, 0
    for chunk in _row_chunks(reference_df):
        z = enc.transform(chunk)
        cov = cov + z.T @ z
        n += z.shape[0]
    values, vectors = np.linalg.eigh(cov / max(n - 1, 1))
    values, vectors = np.maximum(values[::-1], 0.0), vectors[:, ::-1]
    dims = values.size
    if isinstance(n_components, bool) or not isinstance(n_components, int | float):
        raise MetricInputError(f"n_components must be an int or a float in (0, 1), got {n_components!r}")
    if isinstance(n_components, float) and not float(n_components).is_integer():
        if not 0 < n_components < 1:
            raise MetricInputError(f"n_components as a share of variance must be in (0, 1), got {n_components!r}")
        ratio = np.cumsum(values) / values.sum() if values.sum() > 0 else np.ones(dims)
        k = int(np.searchsorted(ratio, n_components, side="right")) + 1
    else:
        k = int(n_components)
        if not 1 <= k <= dims:
            raise MetricInputError(f"n_components must be between 1 and the {dims} encoded features, got {k}")
    basis = vectors[:, :min(k, dims)]

    def errors(df: pd.DataFrame) -> np.ndarray:
        out = []
        for chunk in _row_chunks(df):
            z = enc.transform(chunk)
            out.append(np.linalg.norm(z - (z @ basis) @ basis.T, axis=1))
        return np.concatenate(out)

    ref_err = errors(reference_df)
    cur_err = errors(current_df)
    per_chunk = np.array([part.mean() for part in np.array_split(ref_err, chunks)])
    centre, spread = float(per_chunk.mean()), float(per_chunk.std(ddof=1))
    lower, upper = max(0.0, centre - 3 * spread), centre + 3 * spread
    current_error = float(cur_err.mean())
    return {"reference_error": float(ref_err.mean()), "current_error": current_error, "lower": lower,
            "upper": upper, "drifted": bool(current_error > upper or current_error < lower),
            "n_components": int(basis.shape[1])}


def domain_classifier_auc(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    *,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    sample: int = 10_000,
    seed: int = 0,
    threshold: float = 0.55,
    folds: int = 5,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """Can a classifier tell current rows from reference rows? Cross-validated ROC AUC of trying.

    Up to ``sample`` rows are drawn from each side (fixed ``seed``); a
    scikit-learn ``HistGradientBoostingClassifier`` (categoricals native,
    missing values allowed) is scored by ``folds``-fold stratified cross
    validation. AUC ~0.5 means the two sets look alike; drift is flagged at
    ``auc >= threshold`` (0.55 by default). ``n_jobs`` caps the booster's
    OpenMP threads (1 by default: on samples this small, threads cost more
    than they save, many times more on a busy machine). Columns are chosen as in
    :func:`~vigil.core.metrics.drift.drift_table`. Returns
    ``{auc, threshold, drifted}``.

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=400)})
    >>> cur = pd.DataFrame({"x": rng.normal(2.0, 1.0, size=400)})
    >>> domain_classifier_auc(ref, cur, folds=3)["drifted"]
    True
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    _check_frames(reference_df, current_df, min_rows=folds)
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < folds:
        raise MetricInputError(f"sample must be an integer >= folds ({folds}), got {sample!r}")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise MetricInputError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    if not 0.5 <= threshold <= 1:
        raise MetricInputError(f"threshold must be an AUC in [0.5, 1], got {threshold!r}")
    columns = _table_columns(reference_df, current_df, numeric, categorical)
    rng = np.random.default_rng(seed)
    sides = []
    for df in (reference_df, current_df):
        rows = np.sort(rng.choice(len(df), size=min(sample, len(df)), replace=False))
        sides.append(df.iloc[rows])
    features, is_cat = [], []
    for col, kind in columns.items():
        if kind == "numeric":
            features.append(np.concatenate([_as_float(s[col], col) for s in sides]))
            is_cat.append(False)
        else:
            codes, levels = pd.factorize(pd.concat([s[col].astype(object) for s in sides], ignore_index=True))
            codes = codes.astype(np.float64)
            codes[codes < 0] = np.nan
            features.append(codes)
            is_cat.append(len(levels) <= 250)  # the booster's limit on native categories
    x = np.column_stack(features)
    y = np.concatenate([np.zeros(len(sides[0])), np.ones(len(sides[1]))])
    model = HistGradientBoostingClassifier(categorical_features=np.array(is_cat), random_state=seed)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=n_jobs, user_api="openmp"):
        proba = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, proba))
    return {"auc": auc, "threshold": float(threshold), "drifted": bool(auc >= threshold)}


def _matrix(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise MetricInputError(f"{name} must be a 2-D array (rows x dimensions) with at least 2 rows, "
                               f"got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise MetricInputError(f"{name} has non-finite values")
    return arr


def mmd(
    reference_matrix: Any,
    current_matrix: Any,
    *,
    sample: int = 500,
    seed: int = 0,
    permutations: int = 100,
) -> StatTestResult:
    """Maximum mean discrepancy of two sets of vectors (RBF kernel) and its permutation-test p-value.

    Up to ``sample`` rows are drawn from each side (fixed ``seed``). The kernel
    is ``exp(-|x - y|^2 / (2 s^2))`` with ``s`` the median distance between all
    pooled pairs (the median heuristic); the statistic is the unbiased estimate
    of MMD^2. The p-value is ``(1 + #{permuted >= observed}) / (1 + permutations)``
    over random relabellings of the pooled rows, so its floor is
    ``1 / (1 + permutations)``. Dimensions must match.

    >>> rng = np.random.default_rng(1)
    >>> mmd(rng.normal(size=(100, 4)), rng.normal(size=(100, 4)), permutations=50).p_value > 0.05
    True
    """
    a = _matrix(reference_matrix, "reference_matrix")
    b = _matrix(current_matrix, "current_matrix")
    if a.shape[1] != b.shape[1]:
        raise MetricInputError(f"reference_matrix and current_matrix must have the same number of columns, "
                               f"got {a.shape[1]} and {b.shape[1]}")
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
        raise MetricInputError(f"permutations must be a positive integer, got {permutations!r}")
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 2:
        raise MetricInputError(f"sample must be an integer >= 2, got {sample!r}")
    rng = np.random.default_rng(seed)
    if len(a) > sample:
        a = a[rng.choice(len(a), size=sample, replace=False)]
    if len(b) > sample:
        b = b[rng.choice(len(b), size=sample, replace=False)]
    z = np.vstack([a, b])
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    off = d2[np.triu_indices(len(z), k=1)]
    bandwidth2 = float(np.median(off)) or float(off.mean()) or 1.0  # s^2 (median of squared = squared median)
    k = np.exp(-d2 / (2.0 * bandwidth2))
    n, m = len(a), len(b)

    grand = k.sum()

    def stat(labels: np.ndarray) -> float:
        # one matrix-vector product: with x the reference indicator, x'Kx + 2 x'Ky + y'Ky = 1'K1
        x = (~labels).astype(np.float64)
        kx = k @ x
        sxx = float(x @ kx)
        sxy = float(kx.sum() - sxx)
        syy = grand - sxx - 2.0 * sxy
        return (sxx - n) / (n * (n - 1)) + (syy - m) / (m * (m - 1)) - 2.0 * sxy / (n * m)

    labels = np.zeros(n + m, dtype=bool)
    labels[n:] = True
    observed = stat(labels)
    exceed = sum(stat(rng.permutation(labels)) >= observed for _ in range(permutations))
    return StatTestResult(float(observed), float((1 + exceed) / (1 + permutations)))


def mean_embedding_distance(ref: Any, cur: Any) -> dict[str, float]:
    """Euclidean and cosine distance between the mean vectors of two sets of embeddings.

    Cosine distance is ``1 - cos(angle)`` (0 = same direction, up to 2); it is
    NaN when a mean vector is zero.

    >>> mean_embedding_distance([[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]])
    {'euclidean': 1.414..., 'cosine': 1.0}
    """
    a = _matrix(ref, "ref").mean(axis=0)
    b_arr = _matrix(cur, "cur")
    if b_arr.shape[1] != a.size:
        raise MetricInputError(f"ref and cur must have the same number of columns, got {a.size} and "
                               f"{b_arr.shape[1]}")
    b = b_arr.mean(axis=0)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = 1.0 - float(a @ b) / norm if norm > 0 else math.nan
    return {"euclidean": float(np.linalg.norm(a - b)), "cosine": cosine}
