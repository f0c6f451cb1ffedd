"""Profiles as algebra: whatever the data, merging profiles is profiling the union.

One conformance test runs over every profile class, each with its own
generator of configurations and batches (``Case``): for batches a, b and c,

- ``profile(a).merge(profile(b))`` agrees with ``profile(a + b)`` on every exact
  field (counts, histograms and confusion counts exactly, sums and moments to
  1e-9 of the data's scale), and both answer like an oracle on a + b (NumPy,
  scikit-learn), sketch answers within the sketch's stated error;
- merge is commutative and associative, pure, and the empty profile is its
  identity; merging two empty profiles is an empty profile, without warnings;
- ``from_bytes(to_bytes(p)) == p`` and every query answers the same afterwards.

Then the parts the algebra does not reach: the categorical overflow to
sketches, the reservoir's uniformity, input forms, and refusals.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import chisquare
from sklearn.metrics import (
    brier_score_loss,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    r2_score,
)

from vigil.core.profiles import (
    CategoricalProfile,
    ClassificationProfile,
    EmbeddingProfile,
    NumericProfile,
    Profile,
    ProfileError,
    RegressionProfile,
    profile_from_bytes,
    profile_from_dict,
)

NAN, INF = math.nan, math.inf
QS = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0]
REL = 1e-9

# ----------------------------------------------------------------------------------------------------------------
# comparing


@dataclass(frozen=True)
class Approx:
    """A float that must agree to REL of ``scale`` (the magnitude of the data it sums)."""

    value: float
    scale: float


def assert_exact_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, Approx):
            if math.isnan(x.value) or math.isnan(y.value):
                assert math.isnan(x.value) and math.isnan(y.value), key
            else:
                tol = REL * max(x.scale, y.scale, 1e-300)
                assert abs(x.value - y.value) <= tol, (key, x.value, y.value, tol)
        elif isinstance(x, np.ndarray):
            assert np.array_equal(x, y), key
        else:
            assert x == y, (key, x, y)


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, through dicts, sequences and arrays."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= REL * max(scale, 1e-300) + 1e-12 * abs(b)


def assert_kll(quantiles: Callable[[list[float]], np.ndarray], cdf: Callable[[list[float]], np.ndarray] | None,
               rank_error: float, k: int, values: np.ndarray) -> None:
    """Sketch answers against the sorted data: the rank of each returned quantile within the stated rank error."""
    n = values.size
    est = quantiles(QS)
    if n == 0:
        assert np.isnan(est).all()
        return
    data = np.sort(values)
    slack = 2 * rank_error + 1 / n  # the stated error is a 99% bound on the worst query; allow some slack
    for q, v in zip(QS, est, strict=True):
        below = np.searchsorted(data, v, side="left") / n  # fraction < v
        at_or_below = np.searchsorted(data, v, side="right") / n  # fraction <= v
        assert below - slack <= q <= at_or_below + slack, (q, v, below, at_or_below, rank_error)
        assert v in data  # KLL returns items it was given
    assert est[0] == data[0] and est[-1] == data[-1]  # the extremes are exact
    if n <= k:  # the sketch has not compacted anything yet: exactly np.quantile's inverted_cdf
        np.testing.assert_array_equal(est, np.quantile(data, QS, method="inverted_cdf"))
    if cdf is not None:
        points = np.concatenate([data[:: max(1, n // 7)], [data[0] - 1, data[-1] + 1, -INF, INF]])
        truth = np.searchsorted(data, points, side="right") / n
        assert np.abs(cdf(points) - truth).max() <= slack


# ----------------------------------------------------------------------------------------------------------------
# one case per profile class


@dataclass(frozen=True)
class Case:
    name: str
    configs: st.SearchStrategy[dict[str, Any]]
    batches: Callable[[dict[str, Any]], st.SearchStrategy[Any]]
    empty: Callable[[dict[str, Any]], Any]
    concat: Callable[[Any, Any], Any]
    make: Callable[[dict[str, Any]], Profile]
    update: Callable[[Profile, Any], Profile]
    exact: Callable[[Profile], dict[str, Any]]
    check: Callable[[Profile, Any], None]
    queries: Callable[[Profile], dict[str, Any]]


# -- numeric


def _numeric_big(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(rng.uniform(-50, 50), rng.uniform(0.1, 100), n)
    if seed % 3 == 0:
        x = np.round(x)  # ties
    x[rng.random(n) < 0.05] = NAN
    x[rng.random(n) < 0.01] = INF
    return x


NUMBER = st.one_of(st.floats(-1e3, 1e3), st.integers(-3, 3).map(float), st.sampled_from([NAN, INF, -INF]))


def numeric_batches(config: dict[str, Any]) -> st.SearchStrategy[np.ndarray]:
    return st.one_of(
        st.lists(NUMBER, max_size=50).map(lambda v: np.array(v, dtype=np.float64)),
        st.builds(_numeric_big, st.integers(0, 2**32 - 1), st.integers(0, 3000)),
    )


NUMERIC_CONFIGS = st.fixed_dictionaries({
    "edges": st.one_of(st.none(), st.lists(st.floats(-100, 100), min_size=1, max_size=12).map(np.sort)),
    "k": st.sampled_from([16, 200]),
})


def numeric_exact(p: NumericProfile) -> dict[str, Any]:
    scale = max(abs(p.min), abs(p.max)) if p.count else 0.0
    return {
        "count": p.count, "missing": p.missing, "nonfinite": p.nonfinite, "k": p.k,
        "min": Approx(p.min, 0), "max": Approx(p.max, 0),
        "sum": Approx(p.sum, p.count * scale), "mean": Approx(p.mean, scale), "m2": Approx(p.m2, p.count * scale**2),
        "hist": None if p.hist is None else p.hist,
    }


def numeric_check(p: NumericProfile, x: np.ndarray) -> None:
    finite = x[np.isfinite(x)]
    n = finite.size
    assert (p.count, p.missing, p.nonfinite) == (n, int(np.isnan(x).sum()), int(np.isinf(x).sum()))
    if n:
        scale = float(np.abs(finite).max())
        assert (p.min, p.max) == (finite.min(), finite.max())
        assert close(p.mean, finite.mean(), scale)
        assert close(p.sum, finite.sum(), n * scale)
        assert close(p.variance, finite.var(), scale**2)
        assert close(p.std**2, finite.var(), scale**2)
    else:
        assert all(math.isnan(v) for v in (p.mean, p.min, p.max, p.variance, p.std)) and p.sum == 0
    if p.edges is not None:
        edges, counts = p.histogram()
        bounds = zip([-INF, *edges], [*edges, INF], strict=True)
        assert counts.tolist() == [int(((finite >= lo) & (finite < hi)).sum()) for lo, hi in bounds]
    assert_kll(p.quantiles, p.cdf, p.rank_error, p.k, finite)


def numeric_queries(p: NumericProfile) -> dict[str, Any]:
    return {
        "fields": (p.count, p.missing, p.nonfinite, p.sum, p.mean, p.m2, p.min, p.max, p.variance, p.std),
        "quantiles": p.quantiles(QS), "cdf": p.cdf([-1.0, 0.0, 2.5, 100.0]), "rank_error": p.rank_error,
        "histogram": p.histogram() if p.edges is not None else None, "empty": p.is_empty,
    }


NUMERIC = Case(
    "numeric", NUMERIC_CONFIGS, numeric_batches, lambda c: np.array([]), lambda a, b: np.concatenate([a, b]),
    lambda c: NumericProfile(**c), lambda p, x: p.update(x), numeric_exact, numeric_check, numeric_queries,
)

# -- categorical

POOL = ["a", "b", "c", "", "é", "日本語", "😀 emoji", "\x00nul", "x" * 100_000 + "ü"]
CATEGORY = st.one_of(st.sampled_from(POOL), st.text(max_size=12), st.none(), st.just(NAN))


def _categorical_big(seed: int, n: int) -> list[Any]:
    rng = np.random.default_rng(seed)
    ids = rng.zipf(1.5, size=n) % int(rng.integers(2, 600))
    return [None if i == 7 else f"v{i}-é" for i in ids.tolist()]


def categorical_batches(config: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    return st.one_of(st.lists(CATEGORY, max_size=60),
                     st.builds(_categorical_big, st.integers(0, 2**32 - 1), st.integers(0, 2000)))


def _truth(values: list[Any]) -> Counter[str]:
    return Counter(v for v in values if not (v is None or (isinstance(v, float) and math.isnan(v))))


def categorical_exact(p: CategoricalProfile) -> dict[str, Any]:
    return {"count": p.count, "missing": p.missing, "exact": p.is_exact,
            "frequencies": p.frequencies() if p.is_exact else None}


def categorical_check(p: CategoricalProfile, values: list[Any]) -> None:
    truth = _truth(values)
    assert (p.count, p.missing) == (sum(truth.values()), len(values) - sum(truth.values()))
    assert p.is_exact == (len(truth) <= p.cap)
    freq = p.frequencies()
    if p.is_exact:
        assert freq == truth and list(freq.values()) == sorted(truth.values(), reverse=True)
        assert p.distinct_estimate() == len(truth) and p.max_frequency_error == 0
        assert all(p.frequency_bounds(v) == (c, c, c) for v, c in truth.items())
    else:
        err = p.max_frequency_error
        for v, c in truth.items():
            est, lower, upper = p.frequency_bounds(v)
            assert lower <= c <= upper and upper - lower <= err, (v, c, est, lower, upper)
            if c > err:
                assert v in freq  # no false negatives above the error
        assert all(p.frequency_bounds(v)[1] <= truth[v] <= p.frequency_bounds(v)[2] for v in freq)
        assert abs(p.distinct_estimate() - len(truth)) <= 0.03 * len(truth)
        lower, upper = p.distinct_bounds(3)
        assert lower <= len(truth) <= upper
    assert p.frequency_bounds("never seen \u2603")[1] == 0


def categorical_queries(p: CategoricalProfile) -> dict[str, Any]:
    return {"fields": (p.count, p.missing, p.is_exact, p.max_frequency_error), "freq": p.frequencies(),
            "bounds": [p.frequency_bounds(v) for v in [*POOL, "v1-é", "v2-é"]],
            "distinct": (p.distinct_estimate(), p.distinct_bounds(1), p.distinct_bounds(3))}


CATEGORICAL = Case(
    "categorical",
    st.fixed_dictionaries({"cap": st.sampled_from([0, 3, 8, 1000]), "lg_max_k": st.sampled_from([3, 4, 10])}),
    categorical_batches, lambda c: [], lambda a, b: a + b, lambda c: CategoricalProfile(**c),
    lambda p, v: p.update(np.array(v, dtype=object)), categorical_exact, categorical_check, categorical_queries,
)

# -- embeddings


def embedding_batches(config: dict[str, Any]) -> st.SearchStrategy[np.ndarray]:
    d = config["dimension"]
    element = st.one_of(st.floats(-100, 100), st.floats(-100, 100), st.floats(-100, 100), st.just(NAN))

    def big(seed: int, n: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        m = rng.normal(size=(n, d))
        m[rng.random(n) < 0.1, 0] = NAN
        return m

    return st.one_of(
        st.integers(0, 25).flatmap(lambda n: hnp.arrays(np.float64, (n, d), elements=element)),
        st.builds(big, st.integers(0, 2**32 - 1), st.integers(0, 400)),
    )


def embedding_exact(p: EmbeddingProfile) -> dict[str, Any]:
    out = {"count": p.count, "missing": p.missing, "sample_shape": p.sample().shape}
    out.update({f"mean{i}": Approx(float(v), 100.0) for i, v in enumerate(p.mean)})  # the data are within +-100
    return out


def embedding_check(p: EmbeddingProfile, m: np.ndarray) -> None:
    valid = m[np.isfinite(m).all(axis=1)]
    assert (p.count, p.missing) == (valid.shape[0], m.shape[0] - valid.shape[0])
    if p.count:
        scale = float(np.abs(valid).max())
        assert all(close(a, b, scale) for a, b in zip(p.mean, valid.mean(axis=0), strict=True))
    else:
        assert np.isnan(p.mean).all()
    sample = p.sample()
    assert sample.shape == (min(p.reservoir_size, p.count), p.dimension)
    assert not Counter(map(tuple, sample.tolist())) - Counter(map(tuple, valid.tolist()))  # rows of the data


EMBEDDING = Case(
    "embedding",
    st.fixed_dictionaries({"dimension": st.sampled_from([1, 3]), "reservoir_size": st.sampled_from([0, 1, 5, 50]),
                           "seed": st.integers(0, 2**32)}),
    embedding_batches, lambda c: np.empty((0, c["dimension"])), lambda a, b: np.concatenate([a, b]),
    lambda c: EmbeddingProfile(**c), lambda p, m: p.update(m), embedding_exact, embedding_check,
    lambda p: {"fields": (p.count, p.missing), "mean": p.mean, "sample": p.sample()},
)

# -- classification

CLASSES = [[0, 1], ["no", "yes"], ["a", "b", "c"], [1, 2, 3, 4]]


def classification_batches(config: dict[str, Any]) -> st.SearchStrategy[tuple[list, list, np.ndarray | None]]:
    classes = config["classes"]
    k = len(classes)
    label = st.one_of(st.sampled_from(classes), st.sampled_from(classes), st.sampled_from(["zzz", None, 99]))
    if k == 2:
        score = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, 0.5, NAN, 1.5, -0.25]))
    else:
        score = st.one_of(
            st.lists(st.floats(0.01, 1), min_size=k, max_size=k).map(lambda r: [v / sum(r) for v in r]),
            st.just([NAN] * k), st.just([1.5] + [0.0] * (k - 1)),
        )

    def batch(rows: list[tuple[Any, Any, Any]], scored: bool) -> tuple[list, list, np.ndarray, bool]:
        shape = (len(rows),) if k == 2 else (len(rows), k)
        scores = np.array([r[2] for r in rows], np.float64).reshape(shape)
        return [r[0] for r in rows], [r[1] for r in rows], scores, scored

    return st.builds(batch, st.lists(st.tuples(label, label, score), max_size=40), st.booleans())


def classification_concat(a: tuple, b: tuple) -> tuple[list, list, np.ndarray, bool]:
    """Scores not passed to update are NaN rows in the union: the profile leaves both out alike."""
    scores = [x[2] if x[3] else np.full_like(x[2], NAN) for x in (a, b)]
    return a[0] + b[0], a[1] + b[1], np.concatenate(scores), True


def classification_empty(config: dict[str, Any]) -> tuple[list, list, np.ndarray, bool]:
    k = len(config["classes"])
    return [], [], np.empty((0,) if k == 2 else (0, k)), False


def classification_check(p: ClassificationProfile, batch: tuple) -> None:
    classes, k, bins = list(p.classes), len(p.classes), p.bins
    y_true, y_pred, scores, passed = batch
    known = [i for i, (t, q) in enumerate(zip(y_true, y_pred, strict=True)) if t in classes and q in classes]
    assert (p.count, p.unknown_label) == (len(known), len(y_true) - len(known))
    yt = [y_true[i] for i in known]
    if known:
        np.testing.assert_array_equal(p.confusion, confusion_matrix(yt, [y_pred[i] for i in known], labels=classes))
        assert p.accuracy == pytest.approx(np.mean([y_true[i] == y_pred[i] for i in known]))
    else:
        assert not p.confusion.any() and math.isnan(p.accuracy)
    s = scores[known] if passed else np.empty((0,) if k == 2 else (0, k))
    ok = np.all((s >= 0) & (s <= 1), axis=1) if s.ndim == 2 else (s >= 0) & (s <= 1)
    s, ys = s[ok], [t for t, good in zip(yt, ok, strict=True) if good]
    assert p.scored == len(ys)
    hist = np.zeros_like(p.score_hist)
    for t, row in zip(ys, s, strict=True):
        ti = classes.index(t)
        if k == 2:
            hist[ti, min(int(row * bins), bins - 1)] += 1
        else:
            for c in range(k):
                hist[c, int(ti == c), min(int(row[c] * bins), bins - 1)] += 1
    np.testing.assert_array_equal(p.score_hist, hist)
    if ys:
        proba = np.column_stack([1 - s, s]) if k == 2 else s
        clipped = np.clip(proba, 1e-15, 1 - 1e-15)  # the profile's clip; scikit-learn's own (float64 eps) is looser
        assert close(p.log_loss, log_loss(ys, clipped, labels=classes), 1.0)
        brier = (brier_score_loss(np.array([t == classes[-1] for t in ys], dtype=int), s) if k == 2
                 else brier_score_loss(ys, s, labels=classes))
        assert close(p.brier_score, brier, 1.0)
    else:
        assert math.isnan(p.log_loss) and math.isnan(p.brier_score)


def classification_exact(p: ClassificationProfile) -> dict[str, Any]:
    return {"count": p.count, "unknown": p.unknown_label, "scored": p.scored, "confusion": p.confusion,
            "score_hist": p.score_hist, "log_loss_sum": Approx(p.log_loss_sum, 35 * p.scored),
            "brier_sum": Approx(p.brier_sum, 2 * p.scored)}


CLASSIFICATION = Case(
    "classification",
    st.fixed_dictionaries({"classes": st.sampled_from(CLASSES), "bins": st.sampled_from([1, 10, 1000])}),
    classification_batches,
    classification_empty,
    classification_concat,
    lambda c: ClassificationProfile(**c),
    lambda p, b: p.update(b[0], b[1], b[2] if b[3] else None),
    classification_exact, classification_check,
    lambda p: {"fields": (p.count, p.unknown_label, p.scored, p.log_loss_sum, p.brier_sum, p.accuracy, p.log_loss,
                          p.brier_score), "confusion": p.confusion, "hist": p.score_hist},
)

# -- regression

TARGET = st.one_of(st.floats(-1e3, 1e3).map(lambda v: round(v, 3)), st.just(0.0), st.sampled_from([NAN, INF]))


def _regression_big(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.round(rng.normal(rng.uniform(-100, 100), rng.uniform(1, 50), n), 3)
    pred = y + rng.normal(0, rng.uniform(0.1, 20), n)
    pred[rng.random(n) < 0.03] = NAN
    return y, pred


def regression_batches(config: dict[str, Any]) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    small = st.lists(st.tuples(TARGET, TARGET), max_size=50).map(
        lambda rows: (np.array([r[0] for r in rows], dtype=np.float64), np.array([r[1] for r in rows], np.float64)))
    return st.one_of(small, st.builds(_regression_big, st.integers(0, 2**32 - 1), st.integers(0, 3000)))


def regression_exact(p: RegressionProfile) -> dict[str, Any]:
    q = p.residual_quantiles([0.0, 1.0]) if p.count else np.array([0.0, 0.0])
    e_scale = float(np.abs(q).max())
    y_scale = abs(p.y_mean) + math.sqrt(p.y_m2 / p.count) if p.count else 0.0
    return {
        "count": p.count, "missing": p.missing, "zero_true": p.zero_true,
        "abs_err_sum": Approx(p.abs_err_sum, p.count * e_scale),
        "sq_err_sum": Approx(p.sq_err_sum, p.count * e_scale**2),
        "ape_sum": Approx(p.ape_sum, p.ape_sum), "y_mean": Approx(p.y_mean, 2 * y_scale),
        "y_m2": Approx(p.y_m2, 4 * p.count * y_scale**2), "residual_mean": Approx(p.residual_mean, e_scale),
        "residual_m2": Approx(p.residual_m2, p.count * e_scale**2),
    }


def regression_check(p: RegressionProfile, batch: tuple[np.ndarray, np.ndarray]) -> None:
    y, pred = batch
    ok = np.isfinite(y) & np.isfinite(pred)
    y, pred = y[ok], pred[ok]
    n = y.size
    assert (p.count, p.missing, p.zero_true) == (n, int((~ok).sum()), int((y == 0).sum()))
    e = y - pred
    assert_kll(p.residual_quantiles, None, p.rank_error, p.k, e)
    if not n:
        assert all(math.isnan(v) for v in (p.mae, p.mse, p.rmse, p.mape, p.r2, p.residual_mean, p.residual_std))
        return
    e_scale, y_scale = float(np.abs(e).max()), float(np.abs(y).max())
    assert close(p.mae, mean_absolute_error(y, pred), e_scale)
    assert close(p.mse, mean_squared_error(y, pred), e_scale**2)
    assert close(p.rmse**2, mean_squared_error(y, pred), e_scale**2)
    assert close(p.residual_mean, e.mean(), e_scale) and close(p.residual_std**2, e.var(), e_scale**2)
    nonzero = y != 0
    if nonzero.any():
        assert close(p.mape, mean_absolute_percentage_error(y[nonzero], pred[nonzero]), p.mape)
    else:
        assert math.isnan(p.mape)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    tol_m2 = REL * n * y_scale**2  # how well an M2 of this data is known
    if n >= 2 and ss_tot > 1e3 * tol_m2:  # R² is ill-conditioned when y barely varies: compare where it is not
        assert abs(p.r2 - r2_score(y, pred)) <= 1e-9 + 4 * (p.sq_err_sum / ss_tot**2) * tol_m2


REGRESSION = Case(
    "regression", st.fixed_dictionaries({"k": st.sampled_from([16, 200])}), regression_batches,
    lambda c: (np.array([]), np.array([])), lambda a, b: (np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])),
    lambda c: RegressionProfile(**c), lambda p, b: p.update(*b), regression_exact, regression_check,
    lambda p: {"fields": (p.count, p.missing, p.zero_true, p.mae, p.mse, p.rmse, p.mape, p.r2, p.residual_mean,
                          p.residual_std, p.rank_error), "quantiles": p.residual_quantiles(QS)},
)

CASES = [NUMERIC, CATEGORICAL, EMBEDDING, CLASSIFICATION, REGRESSION]


# ----------------------------------------------------------------------------------------------------------------
# the conformance test


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_merge_is_profiling_the_union(case: Case, data: st.DataObject) -> None:
    config = data.draw(case.configs, label="config")
    a, b, c = (data.draw(case.batches(config), label=name) for name in "abc")
    ab_data = case.concat(a, b)
    abc_data = case.concat(ab_data, c)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NaN / division warnings anywhere, empty profiles included
        pa_, pb, pc_ = (case.update(case.make(config), x) for x in (a, b, c))
        frozen = [p.to_bytes() for p in (pa_, pb, pc_)]

        whole = case.update(case.make(config), ab_data)
        ab = pa_.merge(pb)
        case.check(whole, ab_data)
        case.check(ab, ab_data)
        assert_exact_equal(case.exact(ab), case.exact(whole))

        ba = pb.merge(pa_)  # commutative
        case.check(ba, ab_data)
        assert_exact_equal(case.exact(ba), case.exact(ab))

        left, right = ab.merge(pc_), pa_.merge(pb.merge(pc_))  # associative
        for p in (left, right):
            case.check(p, abc_data)
        assert_exact_equal(case.exact(left), case.exact(right))
        assert_exact_equal(case.exact(left), case.exact(case.update(case.make(config), abc_data)))

        assert [p.to_bytes() for p in (pa_, pb, pc_)] == frozen  # merge is pure

        empty = case.make(config)  # the identity
        assert pa_.merge(empty) == pa_ and empty.merge(pa_) == pa_
        assert case.queries(pa_.merge(empty)) is not None
        both = empty.merge(case.make(config))
        assert both.is_empty and both == empty
        case.check(both, case.empty(config))
        case.check(case.update(case.make(config), case.empty(config)), case.empty(config))

        for p in (empty, both, pa_, ab, left):  # round trips
            q = type(p).from_bytes(p.to_bytes())
            assert q == p and same(case.queries(q), case.queries(p))
            r = profile_from_dict(json.loads(json.dumps(p.to_dict(), allow_nan=False)))
            assert type(r) is type(p) and r == p and same(case.queries(r), case.queries(p))
            assert profile_from_bytes(p.to_bytes()) == p


# ----------------------------------------------------------------------------------------------------------------
# categorical overflow


def test_categorical_overflow_keeps_heavy_hitters_within_bounds() -> None:
    rng = np.random.default_rng(7)
    heavy = {"héavy-0": 5000, "heavy-1": 3000, "heavy-2": 1500, "😀": 800}
    values = [f"rare-{i}" for i in range(1000)] + [v for v, c in heavy.items() for _ in range(c)]
    values = np.array(values, dtype=object)[rng.permutation(len(values))]
    parts = np.array_split(values, 7)
    whole = CategoricalProfile(cap=10).update(values)
    merged = CategoricalProfile(cap=10)
    for part in parts:
        merged = merged.merge(CategoricalProfile(cap=10).update(part))
    truth = _truth(values.tolist())
    for p in (whole, merged):
        assert not p.is_exact and p.count == len(values) and p.missing == 0
        freq = p.frequencies()
        for v, c in heavy.items():
            est, lower, upper = p.frequency_bounds(v)
            assert lower <= c <= upper and lower <= est <= upper
            assert v in freq and abs(freq[v] - c) <= p.max_frequency_error
        assert list(freq)[:4] == list(heavy)
        assert abs(p.distinct_estimate() - len(truth)) <= 0.05 * len(truth)
        assert p.frequency_bounds("rare-3")[1] <= 1 <= p.frequency_bounds("rare-3")[2]
        again = CategoricalProfile.from_bytes(p.to_bytes())
        assert again == p and again.frequencies() == freq


def test_categorical_stays_exact_up_to_cap_and_merges_exactly_when_the_union_fits() -> None:
    a = CategoricalProfile(cap=3).update(["x", "y"])
    b = CategoricalProfile(cap=3).update(["y", "z", None])
    assert a.merge(b).is_exact and a.merge(b).frequencies() == {"y": 2, "x": 1, "z": 1}
    assert not a.merge(CategoricalProfile(cap=3).update(["p", "q"])).is_exact
    assert CategoricalProfile(cap=3).update(["a", "b", "c"]).is_exact
    assert not CategoricalProfile(cap=3).update(["a", "b", "c", "d"]).is_exact


def test_categorical_round_trips_non_ascii_and_very_long_values() -> None:
    long_value = "ä" * 250_000 + "\U0001f600"
    p = CategoricalProfile(cap=2).update(["日本", long_value, "", "\x00", long_value, None])
    raw = p.to_bytes()
    raw.decode("utf-8")
    q = profile_from_bytes(raw)
    assert q == p and q.frequency_bounds(long_value)[1] <= 2 <= q.frequency_bounds(long_value)[2]
    exact = CategoricalProfile().update(["日本", long_value, long_value])
    assert profile_from_bytes(exact.to_bytes()).frequencies() == {long_value: 2, "日本": 1}


# ----------------------------------------------------------------------------------------------------------------
# the reservoir


def _rows(start: int, n: int) -> np.ndarray:
    return np.column_stack([np.arange(start, start + n, dtype=np.float64), np.zeros(n)])


def test_reservoir_is_a_uniform_sample_across_updates_and_merges() -> None:
    trials, size = 300, 40
    first, second = 300, 900  # rows 0..299 go to one profile (in batches), 300..1199 to another
    inclusion = np.zeros(first + second)
    from_first = []
    for seed in range(trials):
        a = EmbeddingProfile(2, reservoir_size=size, seed=seed)
        for start in range(0, first, 37):
            a.update(_rows(start, min(37, first - start)))
        b = EmbeddingProfile(2, reservoir_size=size, seed=seed).update(_rows(first, second))
        merged = a.merge(b)
        ids = merged.sample()[:, 0].astype(int)
        assert len(set(ids.tolist())) == size
        inclusion[ids] += 1
        from_first.append(int((ids < first).sum()))
    # rows from each side in proportion to the rows each side stands for: hypergeometric mean size * 1/4
    expected, sd = size / 4, math.sqrt(size * 0.25 * 0.75 * (1200 - size) / 1199 / trials)
    assert abs(np.mean(from_first) - expected) < 4 * sd
    # every row equally likely, whatever batch or side it came in: inclusion counts by blocks of 100 rows
    blocks = inclusion.reshape(12, 100).sum(axis=1)
    assert chisquare(blocks).pvalue > 1e-4


def test_reservoir_merge_is_deterministic_and_exactly_commutative() -> None:
    a = EmbeddingProfile(3, reservoir_size=10, seed=5).update(np.random.default_rng(1).normal(size=(50, 3)))
    b = EmbeddingProfile(3, reservoir_size=10, seed=5).update(np.random.default_rng(2).normal(size=(70, 3)))
    assert a.merge(b) == b.merge(a)
    assert a.merge(b) == EmbeddingProfile.from_bytes(a.to_bytes()).merge(b)
    with pytest.raises(ValueError, match="seed"):
        a.merge(EmbeddingProfile(3, reservoir_size=10, seed=6))


def test_embedding_takes_arrow_list_columns_and_lists_with_missing_rows() -> None:
    col = pa.chunked_array([pa.array([[1, 2], None], pa.list_(pa.float32())), pa.array([[3, 4], [5, None]],
                                                                                     pa.list_(pa.float32()))])
    p = EmbeddingProfile(2).update(col)
    assert (p.count, p.missing, p.mean.tolist()) == (2, 2, [2.0, 3.0])
    q = EmbeddingProfile(2).update([[1.0, 2.0], None, [3.0, 4.0], [5.0, float("inf")]])
    assert (q.count, q.missing) == (2, 2)
    with pytest.raises(ValueError, match="dimension 2"):
        EmbeddingProfile(2).update(pa.array([[1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match="n x 2"):
        EmbeddingProfile(2).update(np.ones((3, 4)))


# ----------------------------------------------------------------------------------------------------------------
# input forms, queries, refusals


def test_numeric_reads_arrow_and_pandas_nulls_as_missing() -> None:
    arrow = pa.chunked_array([[1, None], [3]])
    pandas_nullable = pd.Series([1.0, None, 3.0], dtype="Float64")
    for values in (arrow, pandas_nullable, [1.0, None, 3.0], np.array([1.0, np.nan, 3.0])):
        p = NumericProfile().update(values)
        assert (p.count, p.missing, p.mean) == (2, 1, 2.0)


def test_numeric_histogram_bins_are_left_closed() -> None:
    p = NumericProfile(edges=np.array([0.0, 1.0, 2.0])).update([-5.0, 0.0, 0.5, 1.0, 2.0, 9.0, INF, -INF])
    edges, counts = p.histogram()
    assert edges.tolist() == [0.0, 1.0, 2.0] and counts.tolist() == [1, 2, 1, 2] and p.nonfinite == 2
    with pytest.raises(ValueError, match="without edges"):
        NumericProfile().histogram()


def test_classification_labels_of_another_kind_are_unknown() -> None:
    p = ClassificationProfile(["0", "1"]).update([0, 1, "1"], ["0", "1", "1"])
    assert (p.count, p.unknown_label) == (1, 2)
    q = ClassificationProfile([0, 1]).update(np.array([0.0, 1.0, np.nan]), pa.array([0, 1, 1]))
    assert (q.count, q.unknown_label) == (2, 1)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        ClassificationProfile(["a", "b", "c"]).update(["a", "b"], ["a", "b"], [0.5, 0.5])


def test_merging_different_configurations_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="different edges"):
        NumericProfile(edges=[1.0, 2.0]).merge(NumericProfile(edges=[1.0, 3.0]))
    with pytest.raises(ValueError, match="different edges"):
        NumericProfile(edges=[1.0]).merge(NumericProfile())
    with pytest.raises(ValueError, match="different k"):
        NumericProfile(k=100).merge(NumericProfile(k=200))
    with pytest.raises(ValueError, match="different classes"):
        ClassificationProfile([0, 1]).merge(ClassificationProfile([1, 0]))
    with pytest.raises(ValueError, match="with CategoricalProfile"):
        NumericProfile().merge(CategoricalProfile())
    with pytest.raises(ValueError, match="sorted"):
        NumericProfile(edges=[2.0, 1.0])


def test_unknown_formats_and_types_are_refused_by_name() -> None:
    d = NumericProfile().update([1.0]).to_dict()
    for bad in (2, "1", None, True):
        with pytest.raises(ValueError, match=f"unknown profile format {bad!r}"):
            profile_from_dict({**d, "format": bad})
    raw = json.dumps({**d, "format": 99}).encode()
    with pytest.raises(ProfileError, match="format 99"):
        NumericProfile.from_bytes(raw)
    with pytest.raises(ValueError, match="unknown profile type 'histogram'"):
        profile_from_dict({**d, "type": "histogram"})
    with pytest.raises(ValueError, match="not a categorical profile"):
        CategoricalProfile.from_dict(d)
    with pytest.raises(ValueError, match="malformed numeric profile"):
        profile_from_dict({k: v for k, v in d.items() if k != "count"})
    with pytest.raises(ValueError, match="not a serialised profile"):
        profile_from_bytes(b"\xff")


def test_serialised_form_is_versioned_json() -> None:
    for p in (NumericProfile(edges=[0.0]).update([1.0]), CategoricalProfile().update(["a"]),
              EmbeddingProfile(2).update([[1.0, 2.0]]), ClassificationProfile([0, 1]).update([0], [1], [0.3]),
              RegressionProfile().update([1.0], [2.0])):
        d = json.loads(p.to_bytes().decode("utf-8"))
        assert d["type"] == p.TYPE and d["format"] == 1 and d == p.to_dict()


def test_numeric_update_is_fast_enough() -> None:
    x = np.random.default_rng(0).normal(size=1_000_000)
    p = NumericProfile(edges=np.quantile(x, np.linspace(0, 1, 1002)[1:-1]))
    started = time.perf_counter()
    p.update(x)
    assert time.perf_counter() - started < 2.0  # about 0.1 s on a 2-core machine
    assert p.count == 1_000_000 and p.hist.sum() == 1_000_000
