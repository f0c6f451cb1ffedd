"""Multivariate drift: changes no single column shows (correlations, joint shifts, embeddings).

- :func:`pca_reconstruction_drift` (and :func:`reconstruction_reference`, its
  reusable half): NannyML's *data reconstruction drift*. A PCA fit on the
  (standardised) reference compresses its rows; when the joint structure of
  the current data changes, its rows reconstruct worse, even if every marginal
  distribution is unchanged.
- :func:`domain_classifier_auc`: a classifier is trained to tell reference rows
  from current rows; its ROC AUC on held-out rows is near 0.5 when it cannot.
- :func:`mmd` and :func:`mean_embedding_distance`: for embedding vectors, the
  RBF-kernel maximum mean discrepancy with a permutation test, and the distance
  between the two mean vectors.

The drift decisions of the first two are tests at the size of the current
window: the band or threshold is the ``1 - alpha`` range of the statistic on
windows of that many rows drawn from the reference distribution, so a window
of reference-like rows is flagged with probability about ``alpha`` (1% by
default) whatever its size. Windows under :data:`MIN_ROWS` rows get no
decision (``status`` :data:`INSUFFICIENT_DATA`, ``drifted`` None).

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
from scipy import special, stats

from vigil.core.metrics.drift import MetricInputError, StatTestResult, _table_columns

__all__ = ["pca_reconstruction_drift", "reconstruction_reference", "ReconstructionReference", "domain_classifier_auc",
           "mmd", "mean_embedding_distance", "MIN_ROWS", "ALPHA", "OK", "INSUFFICIENT_DATA"]

_ROW_CHUNK = 100_000
#: Categories one-hot encoded per column in :func:`pca_reconstruction_drift` (the rest share one "other" column).
MAX_ONE_HOT = 50
#: Fewest current rows a multivariate drift decision is made on; smaller windows are "insufficient_data".
MIN_ROWS = 20
#: The per-window false-alarm rate the default bands and thresholds are set for.
ALPHA = 0.01
#: ``status`` of a window judged, and of one too small to judge.
OK, INSUFFICIENT_DATA = "ok", "insufficient_data"
#: Bootstrap replicates of a window's mean reconstruction error (the band ends are their order statistics).
BOOTSTRAP = 3999
#: Windows up to this many rows get a bootstrap band; larger ones a Cornish-Fisher band (their mean is near normal).
BOOTSTRAP_MAX_ROWS = 2000
_DRAWS_PER_BLOCK = 2_000_000  # bootstrap indices drawn at once (memory: 16 bytes each)


def _check_frame(df: Any, arg: str, min_rows: int = 0) -> None:
    if not isinstance(df, pd.DataFrame):
        raise MetricInputError(f"{arg} must be a pandas DataFrame, got {type(df).__name__}", field=arg)
    if len(df) < min_rows:
        raise MetricInputError(f"{arg} needs at least {min_rows} rows, got {len(df)}", field=arg)


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.001 <= alpha <= 0.5:
        raise MetricInputError(f"alpha must be a false-alarm rate in [0.001, 0.5], got {alpha!r}", field="alpha")
    return float(alpha)


def _check_min_rows(min_rows: Any) -> int:
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 2:
        raise MetricInputError(f"min_rows must be an integer >= 2, got {min_rows!r}", field="min_rows")
    return min_rows


def _check_columns(df: pd.DataFrame, columns: Sequence[str], arg: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MetricInputError(f"{arg} has no column(s) {missing}", field=arg)


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
        self.fill = {}
        for col, kind in columns.items():
            if kind == "numeric":
                x = _as_float(reference_df[col], col)
                x = x[np.isfinite(x)]
                self.fill[col] = float(x.mean()) if x.size else 0.0
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
        raise MetricInputError(f"column {col!r} is not numeric; list it under categorical=", field=col) from err


def _row_chunks(df: pd.DataFrame, size: int = _ROW_CHUNK):
    for start in range(0, len(df), size):
        yield df.iloc[start:start + size]


def _errors(enc: _Encoder, basis: np.ndarray, df: pd.DataFrame) -> np.ndarray:
    out = [np.empty(0)]
    for chunk in _row_chunks(df):
        z = enc.transform(chunk)
        out.append(np.linalg.norm(z - (z @ basis) @ basis.T, axis=1))
    return np.concatenate(out)


class ReconstructionReference:
    """A PCA fit on half of a reference, and the null distribution of a window's mean reconstruction error.

    Made by :func:`reconstruction_reference`. :meth:`band` gives the ``1 -
    alpha`` range of the mean error of ``n`` reference-like rows (cached per
    ``n``); :meth:`test` judges a current window against it. Reuse one object
    for many windows: the fit and the bands are computed once.
    """

    def __init__(self, encoder: _Encoder, basis: np.ndarray, calibration: np.ndarray, *, alpha: float,
                 min_rows: int, seed: int) -> None:
        self._encoder, self._basis, self._calibration = encoder, basis, calibration
        self.alpha, self.min_rows, self.seed = alpha, min_rows, seed
        self.columns = dict(encoder.columns)
        #: Mean error of the held-out reference rows: what a reference-like window's error is centred on.
        self.reference_error = float(calibration.mean())
        self._bands: dict[int, tuple[float, float]] = {}

    @property
    def n_components(self) -> int:
        """Principal components kept."""
        return int(self._basis.shape[1])

    def errors(self, df: pd.DataFrame) -> np.ndarray:
        """Each row's reconstruction error: the Euclidean distance between its encoding and its reconstruction."""
        _check_frame(df, "current_df")
        _check_columns(df, list(self.columns), "current_df")
        return _errors(self._encoder, self._basis, df)

    def band(self, n: int) -> tuple[float, float]:
        """``(lower, upper)``: the mean error of ``n`` reference-like rows falls outside with probability ``alpha``.

        Each tail holds ``alpha / 2``. The mean error of ``n`` rows is compared
        with the held-out mean ``reference_error``, so the band allows for the
        spread of both: up to :data:`BOOTSTRAP_MAX_ROWS` rows, the order
        statistics of :data:`BOOTSTRAP` bootstrap means of ``n`` held-out errors
        (plus a normal draw for the held-out mean's own error); above, a
        Cornish-Fisher expansion from the errors' first four cumulants.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise MetricInputError(f"n must be a positive number of rows, got {n!r}", field="n")
        n = int(n)
        if n not in self._bands:
            lo, hi = self._bootstrap(n) if n <= BOOTSTRAP_MAX_ROWS else self._cornish_fisher(n)
            centre = self.reference_error
            slack = 1e-9 * (1.0 + abs(centre))  # rows the PCA reconstructs exactly: rounding is not drift
            self._bands[n] = (max(0.0, centre + lo - slack), centre + hi + slack)
        return self._bands[n]

    def _bootstrap(self, n: int) -> tuple[float, float]:
        pool = self._calibration
        m = pool.size
        rng = np.random.default_rng([self.seed, n])
        means = np.empty(BOOTSTRAP)
        block = max(1, _DRAWS_PER_BLOCK // n)
        for start in range(0, BOOTSTRAP, block):
            size = min(block, BOOTSTRAP - start)
            means[start:start + size] = pool[rng.integers(0, m, size=(size, n))].mean(axis=1)
        diffs = means - pool.mean() + rng.normal(0.0, pool.std(ddof=1) / math.sqrt(m), BOOTSTRAP)
        diffs.sort()
        # a new window exchangeable with the replicates exceeds the k-th of B with probability (B + 1 - k) / (B + 1)
        k_hi = math.ceil((1 - self.alpha / 2) * (BOOTSTRAP + 1))
        k_lo = math.floor(self.alpha / 2 * (BOOTSTRAP + 1))
        return float(diffs[k_lo - 1]), float(diffs[k_hi - 1])

    def _cornish_fisher(self, n: int) -> tuple[float, float]:
        pool = self._calibration
        m = pool.size
        k2, k3, k4 = (float(stats.kstat(pool, r)) for r in (2, 3, 4))
        # cumulants of (mean of n rows) - (mean of the m held-out rows), the two independent
        c2 = k2 * (1 / n + 1 / m)
        if c2 <= 0:
            return 0.0, 0.0
        g1 = k3 * (1 / n ** 2 - 1 / m ** 2) / c2 ** 1.5
        g2 = k4 * (1 / n ** 3 + 1 / m ** 3) / c2 ** 2

        def quantile(z: float) -> float:
            return z + (z * z - 1) * g1 / 6 + (z ** 3 - 3 * z) * g2 / 24 - (2 * z ** 3 - 5 * z) * g1 * g1 / 36

        z = float(special.ndtri(1 - self.alpha / 2))
        return math.sqrt(c2) * quantile(-z), math.sqrt(c2) * quantile(z)

    def test(self, current_df: pd.DataFrame) -> dict[str, Any]:
        """Judge a window: ``{reference_error, current_error, lower, upper, drifted, n_components, rows, status}``.

        ``drifted`` when the window's mean error is outside :meth:`band` at its
        size. A window under ``min_rows`` rows gets ``drifted`` None, NaN
        ``lower`` and ``upper`` and ``status`` ``"insufficient_data"`` (its
        ``current_error`` is still given; NaN with no rows).

        >>> rng = np.random.default_rng(0)
        >>> ref = reconstruction_reference(pd.DataFrame(rng.normal(size=(4_000, 3)), columns=list("abc")))
        >>> ref.test(pd.DataFrame(rng.normal(size=(5, 3)), columns=list("abc")))["status"]
        'insufficient_data'
        """
        err = self.errors(current_df)
        rows = int(err.size)
        value = float(err.mean()) if rows else math.nan
        out = {"reference_error": self.reference_error, "current_error": value, "lower": math.nan,
               "upper": math.nan, "drifted": None, "n_components": self.n_components, "rows": rows,
               "status": INSUFFICIENT_DATA}
        if rows >= self.min_rows:
            lower, upper = self.band(rows)
            out.update(lower=lower, upper=upper, drifted=bool(value > upper or value < lower), status=OK)
        return out


def reconstruction_reference(
    reference_df: pd.DataFrame,
    *,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    n_components: float | int = 0.65,
    alpha: float = ALPHA,
    min_rows: int = MIN_ROWS,
    seed: int = 0,
) -> ReconstructionReference:
    """Fit the PCA of :func:`pca_reconstruction_drift` once, for judging many windows.

    The reference rows are split at random (``seed``) into two halves: the
    encoding and the PCA are fit on one, and the other's reconstruction errors,
    rows the fit never saw, are the null distribution a reference-like window
    is judged by (see :meth:`ReconstructionReference.band`). The reference
    needs at least ``2 * MIN_ROWS`` (40) rows. Columns are all of
    the reference's unless ``numeric`` or ``categorical`` are given (kinds
    inferred as in :func:`~vigil.core.metrics.drift.drift_table`).

    >>> rng = np.random.default_rng(0)
    >>> ref = reconstruction_reference(pd.DataFrame(rng.normal(size=(4_000, 3)), columns=list("abc")))
    >>> lo100, hi100 = ref.band(100)
    >>> lo1000, hi1000 = ref.band(1_000)
    >>> lo100 < lo1000 < ref.reference_error < hi1000 < hi100   # the band narrows as windows grow
    True
    """
    _check_frame(reference_df, "reference_df", 2 * MIN_ROWS)
    alpha, min_rows = _check_alpha(alpha), _check_min_rows(min_rows)
    columns = _table_columns(reference_df, reference_df, numeric, categorical)
    order = np.random.default_rng(seed).permutation(len(reference_df))
    half = len(order) // 2
    fit_part = reference_df.iloc[np.sort(order[:half])]
    held_out = reference_df.iloc[np.sort(order[half:])]
    enc = _Encoder(fit_part, columns)

    # PCA by the eigen-decomposition of the covariance, accumulated chunk by chunk (no n x d copy of the data)
    cov, n = 0.0, 0
    for chunk in _row_chunks(fit_part):
        z = enc.transform(chunk)
        cov = cov + z.T @ z
        n += z.shape[0]
    values, vectors = np.linalg.eigh(cov / max(n - 1, 1))
    values, vectors = np.maximum(values[::-1], 0.0), vectors[:, ::-1]
    dims = values.size
    if isinstance(n_components, bool) or not isinstance(n_components, int | float):
        raise MetricInputError(f"n_components must be an int or a float in (0, 1), got {n_components!r}",
                               field="n_components")
    if isinstance(n_components, float) and not float(n_components).is_integer():
        if not 0 < n_components < 1:
            raise MetricInputError(f"n_components as a share of variance must be in (0, 1), got {n_components!r}",
                                   field="n_components")
        ratio = np.cumsum(values) / values.sum() if values.sum() > 0 else np.ones(dims)
        k = int(np.searchsorted(ratio, n_components, side="right")) + 1
    else:
        k = int(n_components)
        if not 1 <= k <= dims:
            raise MetricInputError(f"n_components must be between 1 and the {dims} encoded features, got {k}",
                                   field="n_components")
    basis = vectors[:, :min(k, dims)]
    return ReconstructionReference(enc, basis, _errors(enc, basis, held_out), alpha=alpha, min_rows=min_rows,
                                   seed=seed)


def pca_reconstruction_drift(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    *,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    n_components: float | int = 0.65,
    alpha: float = ALPHA,
    min_rows: int = MIN_ROWS,
    seed: int = 0,
) -> dict[str, Any]:
    """Data reconstruction drift (as NannyML's): how much worse a reference PCA reconstructs the current rows.

    Numeric features are standardised (missing values imputed with the
    reference mean) and categoricals one-hot encoded on the reference's
    categories (up to :data:`MAX_ONE_HOT` per column, the rest and unseen ones
    in an "other" column). A PCA keeps ``n_components`` components (an int, or
    a float in (0, 1): the fewest components explaining that share of the
    variance, 65% by default). The reconstruction error of a set of rows is the
    mean Euclidean distance between each encoded row and its reconstruction.

    Encoding and PCA are fit on a random half of the reference; the other half
    gives the band: the range ``lower``..``upper`` holding the mean error of a
    window of reference-like rows of the current window's size with
    probability ``1 - alpha`` (see :class:`ReconstructionReference`). Outside
    it is drift, so about ``alpha`` of reference-like windows (1% by default)
    are flagged at any size, and the band narrows as windows grow. Under
    ``min_rows`` current rows (:data:`MIN_ROWS`) there is no decision
    (``drifted`` None, ``status`` ``"insufficient_data"``). To judge many
    windows against one reference, fit it once with
    :func:`reconstruction_reference` and call its ``test``.

    Columns are chosen as in :func:`~vigil.core.metrics.drift.drift_table`.
    Returns ``{reference_error, current_error, lower, upper, drifted,
    n_components, rows, status}`` (``reference_error``: the held-out half's
    mean error).

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame(rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], 2_000), columns=["a", "b"])
    >>> cur = pd.DataFrame(rng.normal(size=(2_000, 2)), columns=["a", "b"])   # same marginals, no correlation
    >>> pca_reconstruction_drift(ref, cur)["drifted"]
    True
    """
    _check_frame(reference_df, "reference_df")
    _check_frame(current_df, "current_df")
    columns = _table_columns(reference_df, current_df, numeric, categorical)
    reference = reconstruction_reference(
        reference_df, numeric=[c for c, kind in columns.items() if kind == "numeric"],
        categorical=[c for c, kind in columns.items() if kind == "categorical"], n_components=n_components,
        alpha=alpha, min_rows=min_rows, seed=seed)
    return reference.test(current_df)


def _auc_null_sd(scores: np.ndarray, n_negative: int, n_positive: int) -> float:
    """Standard deviation of the ROC AUC when the labels are exchangeable (Mann-Whitney, tie-corrected)."""
    total = n_negative + n_positive
    _, counts = np.unique(scores, return_counts=True)
    ties = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    var = ((total + 1) - ties / (total * (total - 1))) / (12.0 * n_negative * n_positive)
    return math.sqrt(max(var, 0.0))


def domain_classifier_auc(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    *,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    sample: int = 10_000,
    seed: int = 0,
    alpha: float = ALPHA,
    threshold: float | None = None,
    test_size: float = 0.5,
    min_rows: int = MIN_ROWS,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """Can a classifier tell current rows from reference rows? Its ROC AUC on rows it was not trained on.

    Up to ``sample`` rows are drawn from each side (fixed ``seed``) and split,
    stratified, into a training part and a ``test_size`` test part; a
    scikit-learn ``HistGradientBoostingClassifier`` (categoricals native,
    missing values allowed) learns to tell the sides apart on the first and is
    scored on the second. AUC ~0.5 means the two sets look alike.

    Under no drift the test rows' labels are exchangeable given the model, so
    the AUC follows the Mann-Whitney null: mean 0.5 and variance
    ``((N + 1) - T / (N (N - 1))) / (12 n0 n1)`` for ``n0`` reference and
    ``n1`` current test rows, ``N = n0 + n1``, ``T`` the sum of ``t^3 - t``
    over tied scores. Drift is flagged when ``auc > threshold``, the one-sided
    normal ``1 - alpha`` quantile of that null, so about ``alpha`` of windows
    without drift (1% by default) are flagged at any window size; ``p_value``
    is the matching tail probability. (A cross-validated AUC would use every
    row, but its folds share training rows and its spread under no drift is
    30-40% wider than Mann-Whitney's at 20 to 50 rows, in simulation.) A fixed
    ``threshold=`` AUC flags at ``auc >= threshold`` instead. Under
    ``min_rows`` current rows, or when the split leaves a side without rows
    in one part, there is no decision (``auc`` NaN, ``drifted`` None,
    ``status`` ``"insufficient_data"``).

    ``n_jobs`` caps the booster's OpenMP threads (1 by default: on samples
    this small, threads cost more than they save, many times more on a busy
    machine). Columns are chosen as in
    :func:`~vigil.core.metrics.drift.drift_table`. Returns ``{auc, threshold,
    p_value, drifted, rows, status}``.

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=400)})
    >>> cur = pd.DataFrame({"x": rng.normal(2.0, 1.0, size=400)})
    >>> domain_classifier_auc(ref, cur)["drifted"]
    True
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    alpha, min_rows = _check_alpha(alpha), _check_min_rows(min_rows)
    _check_frame(reference_df, "reference_df", min_rows)
    _check_frame(current_df, "current_df")
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < min_rows:
        raise MetricInputError(f"sample must be an integer >= min_rows ({min_rows}), got {sample!r}", field="sample")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise MetricInputError(f"n_jobs must be a positive integer, got {n_jobs!r}", field="n_jobs")
    if threshold is not None and not 0.5 <= threshold <= 1:
        raise MetricInputError(f"threshold must be an AUC in [0.5, 1] or None, got {threshold!r}", field="threshold")
    if isinstance(test_size, bool) or not isinstance(test_size, float) or not 0.1 <= test_size <= 0.9:
        raise MetricInputError(f"test_size must be a share in [0.1, 0.9], got {test_size!r}", field="test_size")
    columns = _table_columns(reference_df, current_df, numeric, categorical)
    rows = len(current_df)
    insufficient = {"auc": math.nan, "threshold": math.nan if threshold is None else float(threshold),
                    "p_value": math.nan, "drifted": None, "rows": rows, "status": INSUFFICIENT_DATA}
    if rows < min_rows:
        return insufficient
    rng = np.random.default_rng(seed)
    sides = []
    for df in (reference_df, current_df):
        picked = np.sort(rng.choice(len(df), size=min(sample, len(df)), replace=False))
        sides.append(df.iloc[picked])
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
    try:
        train, test = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y, random_state=seed)
    except ValueError:  # too few rows of a side for a stratified split (possible only with a tiny min_rows)
        return insufficient
    if min(y[train].sum(), (1 - y[train]).sum(), y[test].sum(), (1 - y[test]).sum()) == 0:
        return insufficient
    model = HistGradientBoostingClassifier(categorical_features=np.array(is_cat), random_state=seed)
    with threadpool_limits(limits=n_jobs, user_api="openmp"):
        score = model.fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    truth = y[test]
    n_pos = int(truth.sum())
    n_neg = len(truth) - n_pos
    ranks = stats.rankdata(score)
    auc = float((ranks[truth == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    sd = _auc_null_sd(score, n_neg, n_pos)
    p_value = float(special.ndtr(-(auc - 0.5) / sd)) if sd > 0 else 1.0
    if threshold is None:
        cut = 0.5 + float(special.ndtri(1 - alpha)) * sd
        drifted = auc > cut
    else:
        cut = float(threshold)
        drifted = auc >= cut
    return {"auc": auc, "threshold": cut, "p_value": p_value, "drifted": bool(drifted), "rows": rows,
            "status": OK}


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
