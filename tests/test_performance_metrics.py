"""Performance metrics: scikit-learn as the oracle, generic invariances over METRICS, statistics vs raw forms.

scikit-learn agreement is to 1e-12 on random data (parametrised seeds); the
from-statistics forms equal the raw forms exactly (confusion matrices,
regression sums) or within their documented bin error (histograms).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import sklearn.calibration as skcal
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.core.metrics import performance as pm
from vigil.core.metrics.performance import METRICS, CustomMetric, MetricInputError
from vigil.errors import VigilError

ATOL = 1e-12
SEEDS = range(6)


def close(a, b, atol=ATOL):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=0, atol=atol,
                               equal_nan=True)


# ---------------------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------------------


def labels_data(seed, *, k=2, n=120, weights=False, drop_pred=None):
    """Random (y_true, y_pred, sample_weight): predictions right about 60% of the time."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
    if drop_pred is not None:  # a class never predicted
        y_pred = np.where(y_pred == drop_pred, (drop_pred + 1) % k, y_pred)
    w = rng.uniform(0.1, 3.0, n) if weights else None
    return y_true, y_pred, w


def binary_scores(seed, *, n=300, ties=False, weights=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    s = np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(0, 0.25, n), 0, 1)
    if ties:
        s = np.round(s * 20) / 20
    w = rng.uniform(0.1, 3.0, n) if weights else None
    return y, s, w


def multiclass_proba(seed, *, k=4, n=300, weights=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.0
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    w = rng.uniform(0.1, 3.0, n) if weights else None
    return y, p, w


def regression_data(seed, *, n=200, weights=False, zeros=False):
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 5, n)
    if zeros:
        y[:5] = 0.0
    p = y + rng.normal(0, 2, n)
    w = rng.uniform(0.1, 3.0, n) if weights else None
    return y, p, w


def ranking_data(seed, *, n=60, n_items=15):
    rng = np.random.default_rng(seed)
    recs, rels = [], []
    for _ in range(n):
        recs.append([int(i) for i in rng.integers(0, n_items, rng.integers(0, 12))])  # duplicates possible
        rels.append({int(i) for i in rng.choice(n_items, rng.integers(0, 6), replace=False)})
    return recs, rels


# ---------------------------------------------------------------------------------------------------------------------
# classification from labels vs scikit-learn
# ---------------------------------------------------------------------------------------------------------------------

PRF = [(pm.precision_score, skm.precision_score), (pm.recall_score, skm.recall_score), (pm.f1_score, skm.f1_score)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("ours,theirs", PRF, ids=["precision", "recall", "f1"])
def test_binary_prf_matches_sklearn(seed, weights, ours, theirs):
    y, p, w = labels_data(seed, weights=weights)
    for pos_label in (0, 1):
        close(ours(y, p, pos_label=pos_label, sample_weight=w),
              theirs(y, p, pos_label=pos_label, sample_weight=w, zero_division=0.0))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
@pytest.mark.parametrize("ours,theirs", PRF, ids=["precision", "recall", "f1"])
def test_multiclass_prf_matches_sklearn(seed, average, ours, theirs):
    # class 2 is never predicted: its precision divides by zero
    y, p, w = labels_data(seed, k=4, weights=seed % 2 == 1, drop_pred=2)
    for zero_division in (0.0, 1.0, np.nan):
        for labels in (None, [2, 0], [3, 1, 5]):  # 5 is absent from both
            close(ours(y, p, average=average, labels=labels, sample_weight=w, zero_division=zero_division),
                  theirs(y, p, average=average, labels=labels, sample_weight=w, zero_division=zero_division))


@pytest.mark.parametrize("ours,theirs", PRF, ids=["precision", "recall", "f1"])
@pytest.mark.parametrize("zero_division", [0.0, 1.0, np.nan])
def test_zero_division_matches_sklearn(ours, theirs, zero_division):
    cases = [([0, 0, 0], [0, 0, 0]), ([1, 1, 0], [0, 0, 0]), ([0, 0, 0], [1, 0, 0]), ([0, 1], [1, 0])]
    for y, p in cases:
        close(ours(y, p, zero_division=zero_division), theirs(y, p, zero_division=zero_division))
        close(ours(y, p, average="macro", labels=[0, 1, 2], zero_division=zero_division),
              theirs(y, p, average="macro", labels=[0, 1, 2], zero_division=zero_division))


def test_default_zero_division_is_zero_not_nan():
    assert pm.precision_score([1, 0], [0, 0]) == 0.0
    assert pm.recall_score([0, 0], [1, 0]) == 0.0
    assert pm.npv_score([1, 1], [1, 1]) == 0.0
    assert pm.classification_from_confusion([[0, 0], [0, 0]]) == {
        "accuracy": 0.0, "precision": 0.0, "recall": 0.0, "specificity": 0.0, "npv": 0.0, "f1": 0.0, "fpr": 0.0,
        "fnr": 0.0, "support": 0}


@pytest.mark.parametrize("seed", SEEDS)
def test_string_labels_match_sklearn(seed):
    y, p, w = labels_data(seed, k=3, weights=True)
    names = np.array(["cat", "dog", "pig"])
    ys, ps = names[y], names[p]
    for average in ("micro", "macro", "weighted", None):
        close(pm.f1_score(ys, ps, average=average, sample_weight=w),
              skm.f1_score(ys, ps, average=average, sample_weight=w, zero_division=0.0))
    yb, pb = np.where(y == 0, "no", "yes"), np.where(p == 0, "no", "yes")
    close(pm.precision_score(yb, pb, pos_label="no"), skm.precision_score(yb, pb, pos_label="no"))


@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_and_confusion_matrix_match_sklearn(seed):
    for k in (2, 3, 5):
        y, p, w = labels_data(seed, k=k, weights=True, drop_pred=0)
        close(pm.accuracy_score(y, p), skm.accuracy_score(y, p))
        close(pm.accuracy_score(y, p, sample_weight=w), skm.accuracy_score(y, p, sample_weight=w))
        np.testing.assert_array_equal(pm.confusion_matrix(y, p), skm.confusion_matrix(y, p))
        close(pm.confusion_matrix(y, p, sample_weight=w), skm.confusion_matrix(y, p, sample_weight=w))
        labels = [k - 1, 0]
        np.testing.assert_array_equal(pm.confusion_matrix(y, p, labels=labels),
                                      skm.confusion_matrix(y, p, labels=labels))
    assert pm.confusion_matrix(y, p).dtype == np.int64


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [2, 4])
def test_specificity_npv_fpr_fnr_from_sklearn_confusion(seed, k):
    y, p, w = labels_data(seed, k=k, weights=True)
    cm = skm.confusion_matrix(y, p, sample_weight=w)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    for ours, expected in [(pm.specificity_score, tn / (tn + fp)), (pm.npv_score, tn / (tn + fn)),
                           (pm.false_positive_rate, fp / (fp + tn)), (pm.false_negative_rate, fn / (fn + tp))]:
        close(ours(y, p, average=None, sample_weight=w), expected)
        close(ours(y, p, average="macro", sample_weight=w), expected.mean())
        close(ours(y, p, average="weighted", sample_weight=w), np.average(expected, weights=tp + fn))
        if k == 2:
            close(ours(y, p, sample_weight=w), expected[1])
    micro_spec = tn.sum() / (tn.sum() + fp.sum())
    close(pm.specificity_score(y, p, average="micro", sample_weight=w), micro_spec)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 4)), min_size=1, max_size=40),
       st.sampled_from(["micro", "macro", "weighted", None]))
def test_prf_property_matches_sklearn(rows, average):
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    w = np.array([r[2] for r in rows], dtype=float)
    for ours, theirs in PRF:
        close(ours(y, p, average=average, zero_division=1.0),
              theirs(y, p, average=average, zero_division=1.0))
        if w.sum() > 0:
            close(ours(y, p, average=average, sample_weight=w), theirs(y, p, average=average, sample_weight=w,
                                                                       zero_division=0.0))


# ---------------------------------------------------------------------------------------------------------------------
# scores: ROC AUC, average precision, log loss, Brier, calibration vs scikit-learn
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("weights", [False, True])
def test_binary_roc_auc_and_average_precision_match_sklearn(seed, ties, weights):
    y, s, w = binary_scores(seed, ties=ties, weights=weights)
    close(pm.roc_auc_score(y, s, sample_weight=w), skm.roc_auc_score(y, s, sample_weight=w))
    close(pm.pr_auc_score(y, s, sample_weight=w), skm.average_precision_score(y, s, sample_weight=w))
    close(pm.pr_auc_score(y, 1 - s, pos_label=0, sample_weight=w),
          skm.average_precision_score(y, 1 - s, pos_label=0, sample_weight=w))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("average", ["macro", "weighted", "micro", None])
def test_multiclass_ovr_auc_matches_sklearn(seed, average):
    y, p, w = multiclass_proba(seed, weights=seed % 2 == 0)
    close(pm.roc_auc_score(y, p, average=average, sample_weight=w),
          skm.roc_auc_score(y, p, multi_class="ovr", average=average, sample_weight=w))
    close(pm.pr_auc_score(y, p, average=average, sample_weight=w),
          skm.average_precision_score(y, p, average=average, sample_weight=w))
    names = np.array(["a", "b", "c", "d"])
    close(pm.roc_auc_score(names[y], p, average=average, labels=["a", "b", "c", "d"]),
          skm.roc_auc_score(names[y], p, multi_class="ovr", average=average, labels=["a", "b", "c", "d"]))


@pytest.mark.parametrize("seed", SEEDS)
def test_log_loss_matches_sklearn(seed):
    y, p, w = multiclass_proba(seed, weights=True)
    close(pm.log_loss(y, p), skm.log_loss(y, p))
    close(pm.log_loss(y, p, sample_weight=w), skm.log_loss(y, p, sample_weight=w))
    # a class absent from y_true, named through labels
    y3 = np.where(y == 3, 0, y)
    close(pm.log_loss(y3, p, labels=[0, 1, 2, 3]), skm.log_loss(y3, p, labels=[0, 1, 2, 3]))
    yb, sb, wb = binary_scores(seed, weights=True)
    sb = np.clip(sb, 0, 1)
    sb[:3] = [0.0, 1.0, 1.0]  # clipped to eps
    close(pm.log_loss(yb, sb, sample_weight=wb), skm.log_loss(yb, sb, sample_weight=wb))
    close(pm.log_loss(yb, np.column_stack([1 - sb, sb])), skm.log_loss(yb, np.column_stack([1 - sb, sb])))
    names = np.array(["ham", "spam"])
    close(pm.log_loss(names[yb], sb), skm.log_loss(names[yb], sb))
    p32 = p.astype(np.float32)
    close(pm.log_loss(y, p32), skm.log_loss(y, p32), atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_brier_matches_sklearn(seed):
    y, s, w = binary_scores(seed, weights=True)
    close(pm.brier_score_loss(y, s), skm.brier_score_loss(y, s))
    close(pm.brier_score_loss(y, s, sample_weight=w), skm.brier_score_loss(y, s, sample_weight=w))
    close(pm.brier_score_loss(y, 1 - s, pos_label=0), skm.brier_score_loss(y, 1 - s, pos_label=0))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("bins", [3, 5, 10])
def test_calibration_curve_matches_sklearn_and_ece(seed, strategy, bins):
    y, s, _ = binary_scores(seed, ties=seed % 2 == 0)
    ours = pm.calibration_curve(y, s, bins=bins, strategy=strategy)
    theirs = skcal.calibration_curve(y, s, n_bins=bins, strategy=strategy)
    for a, b in zip(ours, theirs, strict=True):
        close(a, b)
    # the ECE is the count-weighted mean gap over the same bins
    edges = np.linspace(0, 1, bins + 1) if strategy == "uniform" else np.percentile(s, np.linspace(0, 100, bins + 1))
    counts = np.bincount(np.searchsorted(edges[1:-1], s), minlength=bins)
    counts = counts[counts > 0]
    close(pm.expected_calibration_error(y, s, bins=bins, strategy=strategy),
          np.sum(counts * np.abs(theirs[0] - theirs[1])) / len(y))


# ---------------------------------------------------------------------------------------------------------------------
# regression vs scikit-learn
# ---------------------------------------------------------------------------------------------------------------------

REGRESSION = [
    (pm.mean_absolute_error, skm.mean_absolute_error),
    (pm.root_mean_squared_error, skm.root_mean_squared_error),
    (pm.mean_absolute_percentage_error, skm.mean_absolute_percentage_error),
    (pm.r2_score, skm.r2_score),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ours,theirs", REGRESSION, ids=["mae", "rmse", "mape", "r2"])
def test_regression_matches_sklearn(seed, ours, theirs):
    for weights in (False, True):
        y, p, w = regression_data(seed, weights=weights)
        close(ours(y, p, sample_weight=w), theirs(y, p, sample_weight=w))
    y, p, _ = regression_data(seed, zeros=True)  # MAPE's eps for y == 0, as sklearn
    assert ours(y, p) == pytest.approx(theirs(y, p), rel=1e-12, abs=ATOL)


def test_r2_constant_target_is_finite_as_sklearn():
    assert pm.r2_score([2.0, 2.0], [2.0, 2.0]) == skm.r2_score([2.0, 2.0], [2.0, 2.0]) == 1.0
    assert pm.r2_score([2.0, 2.0], [1.0, 2.0]) == skm.r2_score([2.0, 2.0], [1.0, 2.0]) == 0.0
    assert pm.r2_score([2.0], [3.0]) == 0.0  # sklearn: nan with a warning


@pytest.mark.parametrize("seed", SEEDS)
def test_residual_quantiles(seed):
    y, p, _ = regression_data(seed)
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    got = pm.residual_quantiles(y, p)
    assert list(got) == list(qs)
    close(list(got.values()), np.quantile(y - p, qs))
    w = np.random.default_rng(seed).integers(0, 4, y.size)
    weighted = pm.residual_quantiles(y, p, qs=qs, sample_weight=w)
    close(list(weighted.values()), np.quantile(np.repeat(y - p, w), qs, method="inverted_cdf"))


# ---------------------------------------------------------------------------------------------------------------------
# generic tests over the registry (as scikit-learn's test_common)
# ---------------------------------------------------------------------------------------------------------------------


def registry_inputs(info, task, seed):
    """(args, kwargs) for calling ``info.function`` on random data of ``task``."""
    kwargs = {"k": 5} if "k" in info.required else {}
    if task == "ranking":
        return ranking_data(seed), kwargs
    if task == "regression":
        y, p, _ = regression_data(seed)
        return (y, p), kwargs
    if task == "binary":
        if info.needs == "labels":
            y, p, _ = labels_data(seed)
            return (y, p), kwargs
        y, s, _ = binary_scores(seed, ties=True)
        return (y, s), kwargs
    # multiclass
    if "average" in info.options:
        kwargs["average"] = "macro"
    if info.needs == "labels":
        y, p, _ = labels_data(seed, k=4, drop_pred=1)
        return (y, p), kwargs
    y, p, _ = multiclass_proba(seed)
    return (y, p), kwargs


def permute(args, order):
    out = []
    for a in args:
        out.append([a[i] for i in order] if isinstance(a, list) else np.asarray(a)[order])
    return tuple(out)


CASES = [(name, task) for name, info in METRICS.items() for task in info.tasks]


def test_registry_is_complete():
    for name, info in METRICS.items():
        assert info.name == name
        assert callable(info.function) and info.function.__doc__ and ">>>" in info.function.__doc__
        assert set(info.tasks) <= {"binary", "multiclass", "regression", "ranking"}
        assert info.needs in {"labels", "scores", "proba", "values", "rankings"}
        assert info.bounds[0] < info.bounds[1]
        assert "sample_weight" in info.options and set(info.required) <= set(info.options)
        direction = name.endswith(("_error", "_loss")) or info.function.__name__.endswith(("_error", "_loss"))
        if direction:
            assert not info.higher_is_better, name
        if info.function.__name__.endswith("_score") and name not in ("log_loss",):
            assert info.higher_is_better, name
    assert set(pm.classification_from_confusion([[1, 0], [0, 1]])) - {"support"} <= set(METRICS)
    assert set(pm.regression_from_sums(1, 0, 0, 0, 1, 0, 0)) <= set(METRICS)


@pytest.mark.parametrize("name,task", CASES)
def test_permuting_rows_changes_nothing(name, task):
    info = METRICS[name]
    for seed in range(3):
        args, kwargs = registry_inputs(info, task, seed)
        order = np.random.default_rng(seed + 100).permutation(len(args[0]))
        close(info.function(*permute(args, order), **kwargs), info.function(*args, **kwargs))


@pytest.mark.parametrize("name,task", CASES)
def test_values_in_documented_range(name, task):
    info = METRICS[name]
    low, high = info.bounds
    for seed in range(4):
        args, kwargs = registry_inputs(info, task, seed)
        value = np.asarray(info.function(*args, **kwargs), dtype=float)
        assert np.all((value >= low) & (value <= high)), (name, task, value)
        if "average" in kwargs:  # per-class values too
            per_class = np.asarray(info.function(*args, **{**kwargs, "average": None}))
            assert np.all((per_class >= low) & (per_class <= high))


@pytest.mark.parametrize("name,task", CASES)
def test_integer_weights_equal_repeated_rows(name, task):
    info = METRICS[name]
    args, kwargs = registry_inputs(info, task, 7)
    w = np.random.default_rng(1007).integers(0, 4, len(args[0]))
    w[0] = max(w[0], 1)
    repeated = permute(args, np.repeat(np.arange(len(args[0])), w))
    close(info.function(*args, sample_weight=w, **kwargs), info.function(*repeated, **kwargs), atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_swapping_pos_label(seed):
    y, p, w = labels_data(seed, weights=True)
    pairs = [(pm.specificity_score, pm.recall_score), (pm.npv_score, pm.precision_score),
             (pm.false_positive_rate, pm.false_negative_rate), (pm.recall_score, pm.specificity_score)]
    for f, g in pairs:
        assert f(y, p, pos_label=1, sample_weight=w) == g(y, p, pos_label=0, sample_weight=w)
    ys, s, _ = binary_scores(seed, ties=True)
    close(pm.roc_auc_score(ys, s, pos_label=0), 1 - pm.roc_auc_score(ys, s))
    close(pm.roc_auc_score(ys, 1 - s, pos_label=0), pm.roc_auc_score(ys, s))
    close(pm.brier_score_loss(ys, 1 - s, pos_label=0), pm.brier_score_loss(ys, s))
    s_cont = binary_scores(seed)[1]
    close(pm.expected_calibration_error(ys, 1 - s_cont, pos_label=0), pm.expected_calibration_error(ys, s_cont))
    # accuracy does not depend on which class is positive
    assert pm.accuracy_score(y, p) == pm.classification_from_confusion(pm.confusion_matrix(y, p), pos_label=0)[
        "accuracy"]


# ---------------------------------------------------------------------------------------------------------------------
# from statistics == raw
# ---------------------------------------------------------------------------------------------------------------------

LABEL_FUNCS = {"precision": pm.precision_score, "recall": pm.recall_score, "specificity": pm.specificity_score,
               "npv": pm.npv_score, "f1": pm.f1_score, "fpr": pm.false_positive_rate,
               "fnr": pm.false_negative_rate}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k,average", [(2, "binary"), (2, "macro"), (3, "micro"), (3, "macro"), (3, "weighted"),
                                       (4, None)])
def test_classification_from_confusion_equals_raw_exactly(seed, k, average):
    y, p, w = labels_data(seed, k=k, weights=seed % 2 == 0, drop_pred=k - 1)
    cm = pm.confusion_matrix(y, p, sample_weight=w)
    for zero_division in (0.0, 1.0):
        out = pm.classification_from_confusion(cm, labels=np.arange(k), average=average,
                                               zero_division=zero_division)
        for key, fn in LABEL_FUNCS.items():
            raw = fn(y, p, average=average, sample_weight=w, zero_division=zero_division)
            np.testing.assert_array_equal(out[key], raw, err_msg=key)
        assert out["accuracy"] == pm.accuracy_score(y, p, sample_weight=w)
    support = out["support"]
    expected_support = np.bincount(y, weights=w, minlength=k)
    if average is None:
        close(support, expected_support)
    elif average == "binary":
        close(support, expected_support[1])
    else:
        close(support, expected_support.sum())


def test_classification_from_confusion_merges_windows_and_labels():
    y, p, _ = labels_data(0, k=3)
    names = np.array(["a", "b", "c"])
    cm = pm.confusion_matrix(names[y[:60]], names[p[:60]]) + pm.confusion_matrix(names[y[60:]], names[p[60:]],
                                                                                  labels=["a", "b", "c"])
    out = pm.classification_from_confusion(cm, labels=["a", "b", "c"], average=None)
    np.testing.assert_array_equal(out["f1"], pm.f1_score(names[y], names[p], average=None))
    binary = pm.classification_from_confusion([[50, 10], [5, 35]], labels=["neg", "pos"], pos_label="neg")
    assert binary["recall"] == 50 / 60 and binary["precision"] == 50 / 55 and binary["support"] == 60


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bins", [10, 100, 1000])
def test_confusion_from_histograms_exact_at_bin_edges(seed, bins):
    y, s, _ = binary_scores(seed, ties=seed % 2 == 0)
    # dyadic weights: every partial sum is exact, so equality can be exact
    w = np.random.default_rng(seed).integers(1, 12, y.size) / 4 if seed % 3 == 0 else None
    hist = pm.score_histogram(y, s, bins=bins, sample_weight=w)
    assert hist.shape == (2, bins)
    close(hist.sum(axis=1), np.bincount(y, weights=w, minlength=2))
    for j in (0, 1, bins // 3, bins // 2, bins - 1):
        t = j / bins
        raw = pm.binary_confusion_at_threshold(y, s, threshold=t, sample_weight=w)
        np.testing.assert_array_equal(pm.confusion_from_histograms(hist, t, bins), raw)
    # between edges: rounded up to the next edge
    t = (bins // 2 + 0.3) / bins
    np.testing.assert_array_equal(pm.confusion_from_histograms(hist, t),
                                  pm.binary_confusion_at_threshold(y, s, threshold=(bins // 2 + 1) / bins,
                                                                   sample_weight=w))
    assert pm.confusion_from_histograms(hist, 1.5).tolist() == [[hist[0].sum(), 0], [hist[1].sum(), 0]]


def test_threshold_confusion_matches_sklearn_labels():
    y, s, _ = binary_scores(3)
    for t in (0.2, 0.5, 0.71):
        cm = pm.binary_confusion_at_threshold(y, s, threshold=t)
        np.testing.assert_array_equal(cm, skm.confusion_matrix(y, (s >= t).astype(int), labels=[0, 1]))
        assert pm.classification_from_confusion(cm)["f1"] == pm.f1_score(y, (s >= t).astype(int))


@pytest.fixture(scope="module", params=[(0, 0.3), (1, 0.05), (2, 0.5)], ids=["prev0.3", "prev0.05", "prev0.5"])
def big_binary(request):
    seed, prevalence = request.param
    rng = np.random.default_rng(seed)
    n = 100_000
    y = (rng.random(n) < prevalence).astype(int)
    s = np.where(y == 1, rng.beta(5, 2, n), rng.beta(2, 5, n))
    return y, s, pm.score_histogram(y, s, bins=1000)


def test_histogram_auc_within_1e3_of_sklearn(big_binary):
    y, s, hist = big_binary
    roc = skm.roc_auc_score(y, s)
    ap = skm.average_precision_score(y, s)
    assert abs(pm.roc_auc_from_histograms(hist) - roc) < 1e-3
    assert abs(pm.pr_auc_from_histograms(hist) - ap) < 1e-3
    assert abs(pm.pr_auc_from_histograms(hist, interpolation="step") - ap) < 2e-3
    # the documented worst-case bound of the ROC approximation holds
    bound = np.sum(hist[0] * hist[1]) / (2 * hist[0].sum() * hist[1].sum())
    assert abs(pm.roc_auc_from_histograms(hist) - roc) <= bound


def test_histogram_ece_within_half_a_fine_bin(big_binary):
    y, s, hist = big_binary
    for bins in (5, 10, 20):
        assert abs(pm.ece_from_histograms(hist, bins=bins) - pm.expected_calibration_error(y, s, bins=bins)) <= 0.5e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_histogram_auc_exact_on_binned_scores(seed):
    """When every score is a bin centre, the histogram holds all there is: ROC and (step) AP are exact."""
    rng = np.random.default_rng(seed)
    y = (rng.random(2000) < 0.3).astype(int)
    s = (rng.integers(0, 50, 2000) + 0.5) / 50
    w = rng.uniform(0, 2, 2000)
    hist = pm.score_histogram(y, s, bins=50, sample_weight=w)
    close(pm.roc_auc_from_histograms(hist), skm.roc_auc_score(y, s, sample_weight=w))
    close(pm.pr_auc_from_histograms(hist, interpolation="step"), skm.average_precision_score(y, s, sample_weight=w))
    close(pm.ece_from_histograms(hist, bins=10), pm.expected_calibration_error(y, s, bins=10, sample_weight=w))


def test_histograms_merge_by_addition():
    y, s, _ = binary_scores(1, n=1000)
    h = pm.score_histogram(y[:400], s[:400], bins=200) + pm.score_histogram(y[400:], s[400:], bins=200)
    np.testing.assert_array_equal(h, pm.score_histogram(y, s, bins=200))


def test_interpolated_pr_auc_integrates_precision_through_the_bin():
    hist = [[1, 0], [1, 1]]  # bin 1 (top): one positive; bin 0: one positive and one negative
    # recall 0 -> 1/2 at precision 1, then precision (1 + t) / (1 + 2t) for t in [0, 1]: 1/2 + ln(3)/4
    assert pm.pr_auc_from_histograms(hist) == pytest.approx((1 + 0.5 + math.log(3) / 4) / 2, abs=ATOL)
    # between the two orders of the bin: (+ then -) gives 1, (- then +) gives (1 + 2/3) / 2
    assert (1 + 2 / 3) / 2 < pm.pr_auc_from_histograms(hist) < 1
    assert pm.pr_auc_from_histograms(hist, interpolation="step") == (1 + 2 / 3) / 2
    assert pm.pr_auc_from_histograms([[0, 0], [0, 3]]) == 1.0
    assert pm.pr_auc_from_histograms([[3, 0], [0, 1]]) == 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_from_sums_equals_raw_exactly(seed):
    y, p, w = regression_data(seed, weights=seed % 2 == 0, zeros=seed % 3 == 0)
    stats = pm.regression_sums(y, p, sample_weight=w)
    out = pm.regression_from_sums(**stats)
    assert out == {"mae": pm.mean_absolute_error(y, p, sample_weight=w),
                   "rmse": pm.root_mean_squared_error(y, p, sample_weight=w),
                   "mape": pm.mean_absolute_percentage_error(y, p, sample_weight=w),
                   "r2": pm.r2_score(y, p, sample_weight=w)}
    # positional, as a profile stores them
    assert pm.regression_from_sums(*(stats[k] for k in ("count", "sum_abs", "sum_sq", "sum_ape", "ape_count",
                                                        "y_mean", "y_m2"))) == out
    # windows merged with Chan's formula give the whole
    parts = np.array_split(np.arange(y.size), 3)
    merged = None
    for idx in parts:
        part = pm.regression_sums(y[idx], p[idx], sample_weight=None if w is None else w[idx])
        merged = part if merged is None else pm.merge_regression_sums(merged, part)
    for key, value in pm.regression_from_sums(**merged).items():
        assert value == pytest.approx(out[key], rel=1e-12), key


def test_regression_from_sums_edge_cases():
    assert pm.regression_from_sums(0, 0, 0, 0, 0, 0, 0) == {"mae": 0.0, "rmse": 0.0, "mape": 0.0, "r2": 1.0}
    assert pm.regression_from_sums(2, 2, 2, 1, 2, 5, 0)["r2"] == 0.0
    with pytest.raises(MetricInputError, match="sum_sq: expected a number in"):
        pm.regression_from_sums(2, 2, -1, 1, 2, 5, 0)


# ---------------------------------------------------------------------------------------------------------------------
# ranking
# ---------------------------------------------------------------------------------------------------------------------


def test_ranking_hand_computed():
    recs = [[1, 2, 3, 4, 5], ["a", "b"], ["z"]]
    rels = [{2, 5, 9}, {"a", "b"}, set()]  # the third event has no relevant item: skipped
    ndcg_first = (1 / math.log2(3)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    expected = {
        pm.precision_at_k: (1 / 3 + 2 / 3) / 2,
        pm.recall_at_k: (1 / 3 + 1) / 2,
        pm.hit_rate_at_k: 1.0,
        pm.ndcg_at_k: (ndcg_first + 1) / 2,
        pm.map_at_k: (1 / 6 + 1) / 2,
    }
    for fn, value in expected.items():
        got, count = fn(recs, rels, k=3, return_count=True)
        assert got == pytest.approx(value, abs=ATOL), fn.__name__
        assert count == 2
    assert pm.ndcg_at_k([[9, 2]], [[2]], k=2) == pytest.approx(0.6309297535714575, abs=ATOL)  # 1/log2(3)
    assert pm.map_at_k([[1, 9, 2]], [[1, 2]], k=3) == pytest.approx((1 + 2 / 3) / 2, abs=ATOL)
    assert pm.map_at_k([[1, 9, 2]], [[1, 2, 3, 4]], k=2) == pytest.approx(1 / 2, abs=ATOL)  # / min(4, 2)
    assert pm.precision_at_k([[1]], [[1]], k=4) == 0.25  # divided by k even if fewer were recommended
    assert pm.precision_at_k([[1, 1, 2]], [[1]], k=2) == 0.5  # a repeated item counts once
    assert pm.precision_at_k([[1]], [[]], k=3, return_count=True) == (0.0, 0)  # nothing to measure
    assert pm.recall_at_k([[1, 2], [1, 2]], [[1], [3]], k=2, sample_weight=[3, 1]) == 0.75


def apk(actual, predicted, k):
    """The classic reference (ml_metrics.average_precision.apk)."""
    predicted = predicted[:k]
    score = hits = 0.0
    for i, p in enumerate(predicted):
        if p in actual and p not in predicted[:i]:
            hits += 1.0
            score += hits / (i + 1.0)
    return score / min(len(actual), k)


def brute_force(recs, rels, k):
    out = {name: [] for name in ("precision", "recall", "hit", "ndcg", "map")}
    discounts = 1 / np.log2(np.arange(2, k + 2))
    for rec, rel in zip(recs, rels, strict=True):
        if not rel:
            continue
        top = rec[:k]
        found = set(top) & rel
        gains = np.array([1.0 if item in rel and item not in top[:i] else 0.0 for i, item in enumerate(top)])
        out["precision"].append(len(found) / k)
        out["recall"].append(len(found) / len(rel))
        out["hit"].append(float(bool(found)))
        ideal = discounts[: min(len(rel), k)].sum()
        out["ndcg"].append(float(gains @ discounts[: gains.size]) / ideal if gains.size else 0.0)
        out["map"].append(apk(rel, rec, k))
    return {name: float(np.mean(v)) for name, v in out.items()}, len(out["map"])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [1, 3, 10])
def test_ranking_against_brute_force(seed, k):
    recs, rels = ranking_data(seed)
    expected, used = brute_force(recs, rels, k)
    funcs = {"precision": pm.precision_at_k, "recall": pm.recall_at_k, "hit": pm.hit_rate_at_k,
             "ndcg": pm.ndcg_at_k, "map": pm.map_at_k}
    for name, fn in funcs.items():
        value, count = fn(recs, rels, k=k, return_count=True)
        assert value == pytest.approx(expected[name], abs=ATOL), name
        assert count == used
    # windows merge as the count-weighted mean
    a = pm.ndcg_at_k(recs[:25], rels[:25], k=k, return_count=True)
    b = pm.ndcg_at_k(recs[25:], rels[25:], k=k, return_count=True)
    assert (a[0] * a[1] + b[0] * b[1]) / (a[1] + b[1]) == pytest.approx(expected["ndcg"], abs=ATOL)


def test_ranking_accepts_series_and_arrays():
    frame = pd.DataFrame({"recommended": [np.array([1, 2, 3]), [4, 5]], "purchased": [[3], None]})
    assert pm.hit_rate_at_k(frame["recommended"], frame["purchased"], k=3, return_count=True) == (1.0, 1)


# ---------------------------------------------------------------------------------------------------------------------
# custom business metrics
# ---------------------------------------------------------------------------------------------------------------------


def test_custom_metric_is_a_ratio_of_sums_that_merges():
    frame = pd.DataFrame({"purchases": [1, 0, 2, 0, 5], "recommendations": [5, 5, 10, 1, 4]})
    m = CustomMetric("purchases_per_rec", "purchases", "recommendations")
    assert m.evaluate(frame) == 8 / 25
    a, b = m.sufficient_stats(frame.iloc[:2]), m.sufficient_stats(frame.iloc[2:])
    assert m.from_stats(a[0] + b[0], a[1] + b[1]) == m.evaluate(frame)
    assert m.from_stats(a[0] + b[0], a[1] + b[1]) != (m.evaluate(frame.iloc[:2]) + m.evaluate(frame.iloc[2:])) / 2
    mean = CustomMetric("purchases_per_event", lambda f: f["purchases"] > 0, higher_is_better=True)
    assert mean.evaluate(frame) == 3 / 5 and mean.sufficient_stats(frame) == (3.0, 5.0)
    revenue = CustomMetric("cost_per_purchase", lambda f: f["recommendations"] * 0.1, "purchases",
                           higher_is_better=False)
    assert revenue.evaluate(frame) == pytest.approx(2.5 / 8)
    assert revenue.evaluate(frame.iloc[[1, 3]]) == 0.0  # zero_division
    assert "cost_per_purchase" in repr(revenue)


def test_custom_metric_errors_name_the_problem():
    m = CustomMetric("ctr", "clicks", "views")
    with pytest.raises(MetricInputError, match=r"ctr.numerator: expected a column of the frame .*got 'clicks'"):
        m.evaluate(pd.DataFrame({"views": [1]}))
    with pytest.raises(MetricInputError, match="ctr.denominator: expected finite numbers, got nan at row 1"):
        m.evaluate(pd.DataFrame({"clicks": [1, 2], "views": [1, np.nan]}))
    with pytest.raises(MetricInputError, match="numerator: expected a column name or a callable"):
        CustomMetric("x", 3)
    with pytest.raises(MetricInputError, match="name: expected a non-empty string"):
        CustomMetric("", "a")


# ---------------------------------------------------------------------------------------------------------------------
# the input checker
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call,message", [
    (lambda: pm.accuracy_score([0, 1], [0]), "y_pred: expected 2 rows (as y_true), got 1"),
    (lambda: pm.accuracy_score([], []), "y_true: expected at least 1 row, got 0"),
    (lambda: pm.f1_score([0, 1, 2], [0, 1, 1]), "average: expected 'micro', 'macro', 'weighted' or None"),
    (lambda: pm.f1_score([0, 1], [0, 1], average="samples"), "average: expected one of 'binary'"),
    (lambda: pm.f1_score(["a", "b"], ["a", "b"]), "pos_label: expected one of ['a', 'b'], got 1"),
    (lambda: pm.f1_score([0, 1], ["0", "1"]), "y_pred: expected labels of the same kind as y_true (numbers)"),
    (lambda: pm.f1_score([0, None], [0, 1]), "y_true: expected labels without missing or infinite values"),
    (lambda: pm.f1_score([0, 1], [0, 1], zero_division="warn"), "zero_division: expected a number"),
    (lambda: pm.accuracy_score([0, 1], [0, 1], sample_weight=[1, -1]), "sample_weight: expected values >= 0"),
    (lambda: pm.roc_auc_score([0, 1], [0.5, np.nan]), "scores: expected finite numbers, got nan at row 1"),
    (lambda: pm.roc_auc_score([1, 1], [0.5, 0.2]), "y_true: expected both classes"),
    (lambda: pm.roc_auc_score([0, 1, 2], np.eye(3)[:, :2]), "scores: expected 3 columns"),
    (lambda: pm.pr_auc_score([0, 0], [0.5, 0.2]), "y_true: expected at least one positive row"),
    (lambda: pm.log_loss([0, 1], [0.5, 1.2]), "proba: expected values <= 1, got 1.2 at row 1"),
    (lambda: pm.log_loss([0, 0], [0.5, 0.2]), "y_true: expected at least two classes"),
    (lambda: pm.log_loss([0, 1], [[0.5, 0.2], [0.5, 0.5]]), "proba: expected rows summing to 1"),
    (lambda: pm.brier_score_loss([0, 1, 2], [0.1, 0.2, 0.3]), "y_true: expected at most two classes"),
    (lambda: pm.calibration_curve([0, 1], [0.1, 0.2], bins=0), "bins: expected an integer >= 1, got 0"),
    (lambda: pm.calibration_curve([0, 1], [0.1, 0.2], strategy="kmeans"), "strategy: expected one of"),
    (lambda: pm.confusion_from_histograms(np.ones((3, 4)), 0.5), "score_hist: expected a 2 x bins array"),
    (lambda: pm.confusion_from_histograms(np.ones((2, 4)), 0.5, 5), "bins: expected the number of columns"),
    (lambda: pm.classification_from_confusion(np.ones((2, 3))), "cm: expected a square k x k matrix"),
    (lambda: pm.classification_from_confusion(np.ones((3, 3))), "average: expected 'micro'"),
    (lambda: pm.classification_from_confusion([[1, 2], [3, 4]], labels=[0, 0]), "labels: expected distinct"),
    (lambda: pm.mean_absolute_error([1.0, "x"], [1.0, 2.0]), "y_true: expected numbers"),
    (lambda: pm.mean_absolute_error("12", [1.0, 2.0]), "y_true: expected an array, got a string"),
    (lambda: pm.residual_quantiles([1.0], [1.0], qs=(0.5, 2)), "qs: expected values <= 1, got 2"),
    (lambda: pm.precision_at_k([[1]], [[1]], k=0), "k: expected an integer >= 1, got 0"),
    (lambda: pm.precision_at_k(["abc"], [[1]], k=1), "recommended[0]: expected a list of items, got str"),
    (lambda: pm.precision_at_k([[1], [2]], [[1]], k=1), "relevant: expected 2 events (as recommended), got 1"),
])
def test_checker_names_argument_expected_and_given(call, message):
    with pytest.raises(MetricInputError) as info:
        call()
    assert message in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, VigilError)
    assert info.value.code == "metric_input"
