"""Fairness engine: Fairlearn and scikit-learn as oracles, textbook intervals, the min-group-size rule, errors.

Every group metric, difference and ratio is checked against Fairlearn's
``MetricFrame`` (by_group, overall, difference, ratio) and its
``demographic_parity_*``/``equal*_difference`` functions to 1e-9, on random
data of uneven group sizes (one tiny group), one attribute and two crossed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from fairlearn import metrics as flm
from scipy import stats

from vigil.core.fairness import (
    MISSING,
    FairnessReport,
    fairness,
    group_confusion,
    newcombe_interval,
    proxies,
    representation,
    wilson_interval,
)
from vigil.core.metrics.drift import MetricInputError
from vigil.core.metrics.performance import expected_calibration_error
from vigil.errors import VigilError

ATOL = 1e-9
SEEDS = range(3)


# ---------------------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------------------


def classification_data(seed: int, n: int = 3_000):
    """Groups a (55%), b (30%), c (13%), d (~2%) and a tiny e (8 rows, every outcome): group-dependent errors."""
    rng = np.random.default_rng(seed)
    g = rng.choice(["a", "b", "c", "d"], size=n, p=[0.55, 0.30, 0.13, 0.02])
    shift = pd.Series(g).map({"a": 0.0, "b": 0.1, "c": -0.1, "d": 0.2}).to_numpy()
    y = (rng.random(n) < 0.4 + shift).astype(np.int64)
    score = np.clip(0.35 * y + 0.65 * rng.random(n) + 0.5 * shift, 0, 1).round(2)  # rounded: ties
    p = (score >= 0.5).astype(np.int64)
    g = np.r_[g, ["e"] * 8]
    y = np.r_[y, [0, 1, 0, 1, 1, 0, 1, 0]]
    p = np.r_[p, [0, 1, 1, 1, 0, 0, 1, 1]]
    score = np.r_[score, [0.2, 0.7, 0.6, 0.9, 0.3, 0.1, 0.8, 0.55]]
    return y, p, score, g


def npv(y_true, y_pred):
    tn, _, fn, _ = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return tn / (tn + fn)


FAIRLEARN_METRICS = {
    "count": flm.count,
    "base_rate": lambda y, p: float(np.mean(y)),
    "selection_rate": flm.selection_rate,
    "accuracy": skm.accuracy_score,
    "tpr": flm.true_positive_rate,
    "fpr": flm.false_positive_rate,
    "fnr": flm.false_negative_rate,
    "tnr": flm.true_negative_rate,
    "precision": skm.precision_score,
    "npv": npv,
}


def close(a, b, atol=ATOL):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=0, atol=atol)


def rows_of(report: FairnessReport, attribute: str) -> pd.DataFrame:
    return report.by_group[report.by_group["attribute"] == attribute].set_index("group")


# ---------------------------------------------------------------------------------------------------------------------
# Fairlearn agreement
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_group_metrics_differences_and_ratios_equal_fairlearn(seed):
    y, p, score, g = classification_data(seed)
    report = fairness(y, p, pd.Series(g, name="g"), y_score=score, min_group_size=0)
    mf = flm.MetricFrame(metrics=FAIRLEARN_METRICS, y_true=y, y_pred=p, sensitive_features=pd.Series(g, name="g"))
    ours = rows_of(report, "g")
    assert list(ours.index) == list(mf.by_group.index) == ["a", "b", "c", "d", "e"]
    for metric in FAIRLEARN_METRICS:
        close(ours[metric], mf.by_group[metric])
        close(report.overall[metric], mf.overall[metric])
        close(ours[metric].max() - ours[metric].min(), mf.difference()[metric])
        close(ours[metric].min() / ours[metric].max(), mf.ratio()[metric])
    assert ours.loc["e", "count"] == 8
    close(ours["share"], mf.by_group["count"] / len(y))
    summary = report.summary.set_index("attribute").loc["g"]
    kw = {"sensitive_features": g}
    close(summary["demographic_parity_difference"], flm.demographic_parity_difference(y, p, **kw))
    close(summary["demographic_parity_ratio"], flm.demographic_parity_ratio(y, p, **kw))
    close(summary["equalized_odds_difference"], flm.equalized_odds_difference(y, p, **kw))
    close(summary["equal_opportunity_difference"], flm.equal_opportunity_difference(y, p, **kw))
    close(summary["predictive_parity_difference"], mf.difference()["precision"])
    # scores: AUC (scikit-learn, ties included), calibration gap and ECE per group
    for group, part in ours.iterrows():
        rows = g == group
        close(part["auc"], skm.roc_auc_score(y[rows], score[rows]))
        close(part["mean_score"], score[rows].mean())
        close(part["calibration_gap"], score[rows].mean() - y[rows].mean())
        close(part["ece"], expected_calibration_error(y[rows], score[rows], bins=10))
    close(report.overall["auc"], skm.roc_auc_score(y, score))


@pytest.mark.parametrize("seed", range(2))
def test_intersections_equal_fairlearn_with_two_attributes(seed):
    rng = np.random.default_rng(100 + seed)
    n = 4_000
    frame = pd.DataFrame({"race": rng.choice(["White", "Black", "Asian"], n, p=[0.6, 0.3, 0.1]),
                          "sex": pd.Categorical(rng.choice(["Female", "Male"], n, p=[0.35, 0.65]))})
    y = (rng.random(n) < np.where(frame["race"] == "Black", 0.5, 0.35)).astype(np.int64)
    p = np.where(rng.random(n) < np.where(frame["sex"] == "Female", 0.25, 0.15), 1 - y, y)
    report = fairness(y, p, frame, min_group_size=0)
    assert report.attributes == ["race", "sex", "race & sex"]
    for attribute, sf in (("race", frame["race"]), ("sex", frame["sex"]), ("race & sex", frame)):
        # every metric on the cross; the attributes alone are covered above, here the headline rates
        funcs = FAIRLEARN_METRICS if attribute == "race & sex" else {
            k: FAIRLEARN_METRICS[k] for k in ("count", "selection_rate", "tpr", "fpr")}
        mf = flm.MetricFrame(metrics=funcs, y_true=y, y_pred=p, sensitive_features=sf)
        expected = mf.by_group
        if isinstance(expected.index, pd.MultiIndex):
            expected.index = [" & ".join(map(str, k)) for k in expected.index]
        ours = rows_of(report, attribute)
        assert sorted(ours.index) == sorted(expected.index)
        for metric in funcs:
            close(ours[metric], expected.loc[ours.index, metric])
            close(ours[metric].max() - ours[metric].min(), mf.difference()[metric])
            close(ours[metric].min() / ours[metric].max(), mf.ratio()[metric])
    # the cross's summary against Fairlearn's functions given both attributes (one attribute: the test above)
    summary = report.summary.set_index("attribute").loc["race & sex"]
    close(summary["demographic_parity_difference"], flm.demographic_parity_difference(y, p, sensitive_features=frame))
    close(summary["demographic_parity_ratio"], flm.demographic_parity_ratio(y, p, sensitive_features=frame))
    close(summary["equalized_odds_difference"], flm.equalized_odds_difference(y, p, sensitive_features=frame))
    close(summary["equal_opportunity_difference"], flm.equal_opportunity_difference(y, p, sensitive_features=frame))
    assert rows_of(report, "race & sex").loc["Black & Female", "count"] == int(
        ((frame["race"] == "Black") & (frame["sex"] == "Female")).sum())


def test_three_attributes_report_pairs_and_the_full_cross():
    rng = np.random.default_rng(7)
    n = 600
    sf = {"a": rng.choice(["x", "y"], n), "b": rng.choice([1, 2], n), "c": rng.choice([True, False], n)}
    report = fairness(rng.integers(0, 2, n), rng.integers(0, 2, n), sf, min_group_size=0)
    assert report.attributes == ["a", "b", "c", "a & b", "a & c", "b & c", "a & b & c"]
    cross = rows_of(report, "a & b & c")
    assert len(cross) == 8 and cross["count"].sum() == n
    assert "x & 1 & False" in cross.index


def test_a_sparse_cross_of_many_levels_equals_pandas():
    """5,000 x 400 possible cells for 3,000 rows: only the cells present are counted."""
    rng = np.random.default_rng(8)
    n = 3_000
    frame = pd.DataFrame({"zip": rng.integers(0, 5_000, n).astype(str), "job": rng.integers(0, 400, n)})
    y, p = rng.integers(0, 2, n), rng.integers(0, 2, n)
    report = fairness(y, p, frame, min_group_size=0)
    cross = rows_of(report, "zip & job")
    expected = pd.DataFrame({"key": frame["zip"] + " & " + frame["job"].astype(str), "p": p}).groupby("key")["p"]
    assert cross["count"].sum() == n and len(cross) == expected.ngroups
    close(cross["selection_rate"].sort_index(), expected.mean().sort_index())
    close(cross["count"].sort_index(), expected.size().sort_index())


def test_the_benchmark_shape_categoricals_equal_fairlearn():
    """The benchmark's workload (categorical attributes, int64 labels) at a small size."""
    rng = np.random.default_rng(5)
    n = 5_000
    a, b = rng.choice(3, n, p=[0.5, 0.3, 0.2]), rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
    y = (rng.random(n) < 0.25 + 0.05 * a + 0.03 * b).astype(np.int64)
    p = np.where(rng.random(n) < 0.15 + 0.02 * b, 1 - y, y).astype(np.int64)
    frame = pd.DataFrame({"A": pd.Categorical.from_codes(a.astype(np.int8), ["a0", "a1", "a2"]),
                          "B": pd.Categorical.from_codes(b.astype(np.int8), ["b0", "b1", "b2", "b3"])})
    report = fairness(y, p, frame)
    funcs = {"accuracy": skm.accuracy_score, "selection_rate": flm.selection_rate,
             "tpr": flm.true_positive_rate, "fpr": flm.false_positive_rate}
    for attribute, sf in (("A", frame["A"]), ("B", frame["B"]), ("A & B", frame[["A", "B"]])):
        mf = flm.MetricFrame(metrics=funcs, y_true=y, y_pred=p, sensitive_features=sf)
        for metric in funcs:
            close(rows_of(report, attribute)[metric], mf.by_group[metric].to_numpy())
    # the same numbers from strings
    strings = fairness(y, p, frame.astype(str))
    pd.testing.assert_frame_equal(strings.by_group, report.by_group)


# ---------------------------------------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "n", "low", "high"), [
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0),
])
def test_wilson_interval_textbook_values(x, n, low, high):
    """Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (score interval without correction)."""
    lo, hi = wilson_interval(x, n)
    assert (round(float(lo), 4), round(float(hi), 4)) == (low, high)


def test_wilson_interval_equals_scipy_vectorised():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 500, 200)
    x = rng.integers(0, n + 1)
    for confidence in (0.9, 0.95, 0.99):
        lo, hi = wilson_interval(x, n, confidence=confidence)
        for i in range(0, 200, 7):
            ci = stats.binomtest(int(x[i]), int(n[i])).proportion_ci(confidence_level=confidence, method="wilson")
            close([lo[i], hi[i]], [ci.low, ci.high], atol=1e-12)
    lo, hi = wilson_interval([0, 3], [0, 10])
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and 0 < lo[1] < hi[1] < 1


@pytest.mark.parametrize(("counts", "low", "high"), [
    ((56, 70, 48, 80), 0.0524, 0.3339), ((9, 10, 3, 10), 0.1705, 0.8090), ((6, 7, 2, 7), 0.0582, 0.8062),
    ((5, 56, 0, 29), -0.0381, 0.1926), ((0, 10, 0, 20), -0.1611, 0.2775), ((0, 10, 0, 10), -0.2775, 0.2775),
    ((10, 10, 0, 20), 0.6791, 1.0), ((10, 10, 0, 10), 0.6075, 1.0),
])
def test_newcombe_interval_textbook_values(counts, low, high):
    """Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10 (hybrid score)."""
    lo, hi = newcombe_interval(*counts)
    assert (round(float(lo), 4), round(float(hi), 4)) == (low, high)


def test_report_intervals_are_wilson_and_newcombe_on_the_counts():
    y, p, _, g = classification_data(0)
    report = fairness(y, p, g, confidence=0.9, min_group_size=0)
    rows = report.by_group.set_index("group")
    lo, hi = wilson_interval(rows["tp"], rows["tp"] + rows["fn"], confidence=0.9)
    close(rows["tpr_low"], lo)
    close(rows["tpr_high"], hi)
    d = report.disparities
    row = d[(d["metric"] == "selection_rate")].iloc[0]
    sel = rows["tp"] + rows["fp"]
    lo, hi = newcombe_interval(sel[row["group"]], rows.loc[row["group"], "count"], sel[row["reference_group"]],
                               rows.loc[row["reference_group"], "count"], confidence=0.9)
    close([row["ci_low"], row["ci_high"]], [lo, hi])
    close(row["difference"], row["value"] - row["reference_value"])
    close(row["ratio"], row["value"] / row["reference_value"])


# ---------------------------------------------------------------------------------------------------------------------
# Minimum group size, flags, references
# ---------------------------------------------------------------------------------------------------------------------


def test_small_groups_are_insufficient_data_with_their_counts_kept():
    y, p, _, g = classification_data(1)
    report = fairness(y, p, g, min_group_size=30)
    rows = report.by_group.set_index("group")
    assert rows.loc["e", "status"] == "insufficient_data" and rows.loc["e", "count"] == 8
    assert np.isnan(rows.loc["e", "selection_rate"]) and np.isnan(rows.loc["e", "selection_rate_low"])
    assert rows.loc[["e"], ["tp", "fp", "tn", "fn"]].to_numpy().sum() == 8
    assert (rows.loc[["a", "b", "c"], "status"] == "ok").all()
    # a metric's own denominator: group d has ~60 rows but fewer than 30 negatives, so no FPR
    d_neg = rows.loc["d", "tn"] + rows.loc["d", "fp"]
    assert rows.loc["d", "count"] >= 30 > d_neg and np.isnan(rows.loc["d", "fpr"]) and np.isfinite(
        rows.loc["d", "tpr"])
    dis = report.disparities
    assert (dis.loc[dis["group"] == "e", "status"] == "insufficient_data").all()
    assert set(dis.loc[dis["group"] == "e", "metric"]) == {"selection_rate", "tpr", "fpr", "precision", "accuracy"}
    assert report.summary.loc[0, "insufficient_groups"] == 1


def test_four_fifths_rule_flags_a_material_and_significant_gap():
    rng = np.random.default_rng(3)
    g = np.repeat(["A", "B"], 1_000)
    y = rng.integers(0, 2, 2_000)
    p = (rng.random(2_000) < np.where(g == "A", 0.6, 0.3)).astype(int)
    report = fairness(y, p, g)
    s = report.summary.iloc[0]
    assert not s["four_fifths_passed"] and s["status"] == "flagged" and s["flagged"] >= 1
    row = report.disparities.query("metric == 'selection_rate'").iloc[0]
    assert (row["group"], row["reference_group"], row["status"]) == ("B", "A", "flagged")
    assert row["ratio"] < 0.8 and row["ci_high"] < 0
    # equal rates: passes
    p_fair = (rng.random(2_000) < 0.5).astype(int)
    s = fairness(y, p_fair, g).summary.iloc[0]
    assert s["four_fifths_passed"] and s["status"] == "ok"
    # a ratio under 0.8 from 40 rows a group is not significant: the rule fails, nothing is flagged
    small = np.repeat(["A", "B"], 40)
    p_small = np.r_[np.ones(20), np.zeros(20), np.ones(15), np.zeros(25)].astype(int)
    report = fairness(np.tile([0, 1], 40), p_small, small)
    s = report.summary.iloc[0]
    assert not s["four_fifths_passed"] and s["status"] == "ok"
    assert report.disparities.query("metric == 'selection_rate'")["status"].tolist() == ["ok"]


def test_references_best_largest_explicit_tuple_and_mapping():
    rng = np.random.default_rng(11)
    n = 3_000
    frame = pd.DataFrame({"race": rng.choice(["W", "B", "A"], n, p=[0.6, 0.3, 0.1]),
                          "sex": rng.choice(["F", "M"], n)})
    y = rng.integers(0, 2, n)
    p = (rng.random(n) < np.where(frame["race"] == "A", 0.7, 0.4)).astype(int)
    d = fairness(y, p, frame).disparities
    sel = d[(d["metric"] == "selection_rate") & (d["attribute"] == "race")]
    assert set(sel["reference_group"]) == {"A"}  # best = highest selection rate
    fpr = d[(d["metric"] == "fpr") & (d["attribute"] == "race")]
    assert (fpr["difference"] >= 0).all()  # best FPR = lowest
    d = fairness(y, p, frame, reference="largest").disparities
    assert set(d.loc[d["attribute"] == "race", "reference_group"]) == {"W"}
    d = fairness(y, p, frame, reference="B").disparities
    assert set(d.loc[d["attribute"] == "race", "reference_group"]) == {"B"}
    assert set(d.loc[d["attribute"] == "race & sex", "reference_group"]) != {"B"}
    d = fairness(y, p, frame, reference=("W", "M")).disparities
    assert set(d.loc[d["attribute"] == "race & sex", "reference_group"]) == {"W & M"}
    d = fairness(y, p, frame, reference={"race": "W", "sex": "largest"}).disparities
    assert set(d.loc[d["attribute"] == "race", "reference_group"]) == {"W"}
    with pytest.raises(MetricInputError, match=r"reference: expected .* groups: .*'race': \['A', 'B', 'W'\]"):
        fairness(y, p, frame, reference="Z")
    with pytest.raises(MetricInputError, match=r"reference\['race'\]: expected a group of 'race'"):
        fairness(y, p, frame, reference={"race": "Z"})


# ---------------------------------------------------------------------------------------------------------------------
# Regression, missing values, input types
# ---------------------------------------------------------------------------------------------------------------------


def test_regression_metrics_equal_numpy():
    rng = np.random.default_rng(2)
    g = rng.choice(["x", "y", "z"], 2_000, p=[0.5, 0.4, 0.1])
    y = rng.normal(10, 3, 2_000)
    pred = y + rng.normal(np.where(g == "z", 1.5, 0.0), 1.0)
    report = fairness(y, pred, g)
    assert report.task == "regression"
    z = stats.norm.ppf(0.975)
    rows = report.by_group.set_index("group")
    for group in ("x", "y", "z"):
        t, q = y[g == group], pred[g == group]
        e = q - t
        close(rows.loc[group, "mean_prediction"], q.mean())
        close(rows.loc[group, "mean_target"], t.mean())
        close(rows.loc[group, "mean_error"], e.mean())
        close(rows.loc[group, "mae"], np.abs(e).mean())
        close(rows.loc[group, "rmse"], np.sqrt((e**2).mean()))
        half = z * np.abs(e).std(ddof=1) / np.sqrt(e.size)
        close([rows.loc[group, "mae_low"], rows.loc[group, "mae_high"]], [np.abs(e).mean() - half,
                                                                         np.abs(e).mean() + half])
    d = report.disparities
    mae = d[d["metric"] == "mae"].set_index("group")
    assert set(mae["reference_group"]) == {"x"} or set(mae["reference_group"]) == {"y"}
    assert mae.loc["z", "status"] == "flagged"
    s = report.summary.iloc[0]
    close(s["mae_difference"], rows["mae"].max() - rows["mae"].min())
    close(s["mean_prediction_difference"], rows["mean_prediction"].max() - rows["mean_prediction"].min())


def test_missing_sensitive_values_form_their_own_group():
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    p = np.array([0, 1, 0, 0, 1, 1, 1, 0])
    for sf in (["a", None, "b", np.nan, "a", "b", None, "a"],
               pd.Categorical(["a", None, "b", None, "a", "b", None, "a"]),
               pd.Series(["a", pd.NA, "b", pd.NA, "a", "b", pd.NA, "a"], dtype="string"),
               np.array([1.0, np.nan, 2.0, np.nan, 1.0, 2.0, np.nan, 1.0])):
        rows = fairness(y, p, sf, min_group_size=0).by_group.set_index("group")
        assert rows.loc[MISSING, "count"] == 3, sf
        assert rows["count"].sum() == 8
        close(rows.loc[MISSING, "selection_rate"], 2 / 3)


def test_unused_categories_are_dropped_and_input_types_agree():
    y = np.array([0, 1, 1, 0, 1, 0])
    p = np.array([0, 1, 0, 0, 1, 1])
    cat = pd.Categorical(["u", "v", "u", "v", "u", "v"], categories=["u", "v", "w"])
    base = fairness(y, p, cat, min_group_size=0).by_group
    assert base["group"].tolist() == ["u", "v"]
    for other in (["u", "v", "u", "v", "u", "v"], pd.Series(["u", "v"] * 3, name="sensitive_feature"),
                  np.array(["u", "v"] * 3)):
        pd.testing.assert_frame_equal(fairness(y, p, other, min_group_size=0).by_group, base)
    booleans = fairness(y.astype(bool), p.astype(bool), np.array([True, False] * 3), min_group_size=0)
    ints = fairness(y, p, np.array([1, 0] * 3), min_group_size=0)
    close(booleans.by_group["selection_rate"], ints.by_group["selection_rate"])
    assert booleans.by_group["group"].tolist() == ["False", "True"]
    labels = fairness(np.where(y == 1, "yes", "no"), np.where(p == 1, "yes", "no"), cat, pos_label="yes",
                      min_group_size=0)
    pd.testing.assert_frame_equal(labels.by_group, base)


# ---------------------------------------------------------------------------------------------------------------------
# Counts, confusion, frames, figure
# ---------------------------------------------------------------------------------------------------------------------


def test_from_counts_gives_the_report_made_from_rows():
    y, p, _, g = classification_data(2)
    rng = np.random.default_rng(0)
    sex = rng.choice(["F", "M"], y.size)
    frame = pd.DataFrame({"g": g, "sex": sex, "y": y, "p": p})
    frame["tp"], frame["fp"] = (frame.y & frame.p), ((1 - frame.y) & frame.p)
    frame["tn"], frame["fn"] = ((1 - frame.y) & (1 - frame.p)), (frame.y & (1 - frame.p))
    frame["window"] = rng.integers(0, 3, y.size)  # counts per window: rows of one group are summed
    counts = frame.groupby(["window", "g", "sex"], as_index=False)[["tp", "fp", "tn", "fn"]].sum()
    from_counts = FairnessReport.from_counts(counts, ["g", "sex"])
    from_rows = fairness(y, p, pd.DataFrame({"g": g, "sex": sex}))
    pd.testing.assert_frame_equal(from_counts.by_group, from_rows.by_group)
    pd.testing.assert_frame_equal(from_counts.disparities, from_rows.disparities)
    pd.testing.assert_frame_equal(from_counts.summary, from_rows.summary)
    with pytest.raises(MetricInputError, match=r"counts: expected the columns tp, fp, tn and fn, got no column"):
        FairnessReport.from_counts(counts.drop(columns="fn"))


def test_group_confusion_equals_sklearn():
    y, p, _, g = classification_data(3)
    codes, labels = pd.factorize(g, sort=True)
    conf = group_confusion(codes, y, p, len(labels))
    for i in range(len(labels)):
        np.testing.assert_array_equal(conf[i], skm.confusion_matrix(y[codes == i], p[codes == i], labels=[0, 1]))
    with pytest.raises(MetricInputError, match=r"group_codes: expected integers in \[0, 2\), got values from 0 to 4"):
        group_confusion(codes, y, p, 2)


def test_frames_figure_and_html():
    y, p, score, g = classification_data(0)
    report = fairness(y, p, pd.Series(g, name="group"), y_score=score)
    by_group = report.by_group
    assert list(by_group.columns[:4]) == ["attribute", "group", "count", "share"]
    assert by_group.columns[-1] == "status" and {"tpr_low", "tpr_high", "auc", "ece", "tp"} <= set(by_group.columns)
    assert list(report.disparities.columns) == ["attribute", "metric", "group", "reference_group", "value",
                                                "reference_value", "difference", "ratio", "ci_low", "ci_high",
                                                "p_value", "p_adjusted", "status"]
    assert set(report.disparities["status"]) <= {"ok", "flagged", "insufficient_data"}
    long = report.to_frame()
    assert list(long.columns) == ["attribute", "group", "metric", "value", "low", "high", "count", "status"]
    assert len(long) == len(by_group) * long["metric"].nunique()
    fig = report.figure("tpr")
    bar = fig.data[0]
    assert list(bar.x) == by_group["group"].tolist()
    close(np.asarray(bar.y, float), by_group["tpr"].to_numpy(float))
    assert bar.error_y.array is not None and len(fig.layout.shapes) == 1
    assert "<table" in report._repr_html_() and "FairnessReport(classification" in repr(report)
    with pytest.raises(MetricInputError, match="metric: expected one of"):
        report.figure("nope")


# ---------------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------------


def test_clear_errors():
    def raises(match, *args, **kwargs):
        with pytest.raises(MetricInputError, match=match) as info:
            fairness(*args, **kwargs)
        assert isinstance(info.value, VigilError) and isinstance(info.value, ValueError)

    raises(r"y_pred: expected 3 rows \(as y_true\), got 2", [0, 1, 1], [0, 1], ["a", "b", "c"])
    raises(r"sensitive_features\['race'\]: expected 3 rows \(as y_true\), got 4", [0, 1, 1], [0, 1, 1],
           {"race": ["a", "b", "c", "d"]})
    raises(r"sensitive_features\['sex'\]: expected 3 rows \(as y_true\), got 2", [0, 1, 1], [0, 1, 1],
           pd.DataFrame({"sex": pd.Categorical(["F", "M"])}))
    raises(r"y_score: expected 3 rows \(as y_true\), got 2", [0, 1, 1], [0, 1, 1], ["a"] * 3, y_score=[0.1, 0.2])
    raises(r"y_true \('label'\): expected binary labels .* got 3 distinct values \[0, 1, 2\]; pass task='regression'",
           pd.Series([0, 1, 2], name="label"), [0, 1, 1], ["a"] * 3)
    raises(r"y_pred: expected binary labels .* got 3 distinct values \[0.2, 0.6, 0.9\]; pass decisions as y_pred",
           [0, 1, 1], [0.2, 0.9, 0.6], ["a"] * 3)
    raises(r"y_true: expected the positive label pos_label=1 among its two values, got \['no', 'yes'\]",
           ["yes", "no"], ["yes", "no"], ["a", "b"])
    raises(r"y_true: expected labels without missing values, got None at row 1", np.array([1, None, 0]),
           [0, 1, 1], ["a"] * 3)
    raises(r"y_true: expected at least one row, got 0", [], [], [])
    raises(r"task: expected one of 'auto', 'classification', 'regression', got 'multiclass'", [0, 1], [0, 1],
           ["a", "b"], task="multiclass")
    raises(r"y_score: expected values <= 1 \(probabilities of the positive class\), got 2 at row 1", [0, 1], [0, 1],
           ["a", "b"], y_score=[0.5, 2.0])
    raises(r"confidence: expected a number strictly between 0 and 1, got 95", [0, 1], [0, 1], ["a", "b"],
           confidence=95)
    raises(r"min_group_size: expected an integer >= 0, got -1", [0, 1], [0, 1], ["a", "b"], min_group_size=-1)


# ---------------------------------------------------------------------------------------------------------------------
# Representation and proxies
# ---------------------------------------------------------------------------------------------------------------------


def test_representation_flags_an_injected_under_representation_only():
    rng = np.random.default_rng(4)
    reference = rng.choice(["a", "b", "c"], 20_000, p=[0.5, 0.3, 0.2])
    same = rng.choice(["a", "b", "c"], 5_000, p=[0.5, 0.3, 0.2])
    table = representation(reference, same)
    assert (table["flag"] == "ok").all() and table["chi2_p_value"].iloc[0] > 0.001
    expected = table["reference_share"].to_numpy() * len(same)
    close(table["chi2_p_value"].iloc[0], stats.chisquare(table["current_count"], expected).pvalue, atol=1e-12)
    shifted = rng.choice(["a", "b", "c"], 5_000, p=[0.6, 0.33, 0.07])  # c at about a third of its share
    y_ref = rng.integers(0, 2, 20_000)
    table = representation(reference, shifted, reference_labels=y_ref).set_index("group")
    assert table.loc["c", "flag"] == "under_represented" and table.loc["c", "share_ratio"] < 0.5
    assert (table.loc[["a", "b"], "flag"] == "ok").all() and table["chi2_p_value"].iloc[0] < 1e-6
    close(table.loc["a", "reference_base_rate"], y_ref[reference == "a"].mean())
    # a group absent from the reference is over-represented
    table = representation(reference, np.r_[same, ["d"] * 300]).set_index("group")
    assert table.loc["d", "flag"] == "over_represented" and table.loc["d", "reference_count"] == 0


def test_representation_with_several_attributes():
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"sex": rng.choice(["F", "M"], 4_000), "race": rng.choice(["W", "B"], 4_000, p=[0.7, 0.3])})
    cur = ref.sample(2_000, random_state=1).reset_index(drop=True)
    table = representation(ref, cur)
    assert table["attribute"].unique().tolist() == ["sex", "race", "sex & race"]
    assert table.groupby("attribute")["current_count"].sum().eq(2_000).all()


def test_proxies_on_adult_find_relationship_and_marital_status(shared_data):
    path = shared_data / "adult" / "adult_train.csv.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    adult = pd.read_csv(path)
    features = adult.drop(columns=["sex", "income"])
    for method in ("mutual_information", "auc"):
        table = proxies(features, adult["sex"], method=method).set_index("feature")
        assert table.loc["relationship", "flag"] == "proxy", method
        assert table.loc["marital-status", "flag"] == "proxy", method
        assert table.loc["fnlwgt", "flag"] == "ok" and table.loc["capital-gain", "flag"] == "ok"
        assert table.index[0] == "relationship"
    table = proxies(features, adult["sex"]).set_index("feature")
    assert table.loc["relationship", "mutual_information"] > 0.3 and table.loc["relationship", "auc"] > 0.8
    # the model leans on relationship, not on marital status: only the first is a proxy in use
    importance = {c: 0.01 for c in features.columns} | {"relationship": 1.0, "age": 0.8}
    table = proxies(features, adult["sex"], attributions=importance).set_index("feature")
    assert table.loc["relationship", "flag"] == "proxy"
    assert table.loc["marital-status", "flag"] == "associated"
    assert table.loc["age", "flag"] == "ok"
    # per-row attributions: the mean absolute value is taken
    rows = pd.DataFrame({"relationship": [-2.0, 2.0], "age": [0.5, -0.5]})
    table = proxies(features, adult["sex"], attributions=rows).set_index("feature")
    close(table.loc["relationship", "mean_abs_attribution"], 2.0)
    close(table.loc["relationship", "attribution_share"], 0.8)
