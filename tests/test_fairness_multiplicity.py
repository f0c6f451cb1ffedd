"""Multiple comparisons in a fairness report: p-values that agree with the intervals, Holm and Benjamini-Hochberg
over every comparison of a report, false alarms on pure noise measured by simulation, and COMPAS still flagged.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vigil.core.fairness import FairnessReport, adjust_p_values, fairness, newcombe_interval, proportions_p_value
from vigil.core.metrics.drift import MetricInputError

SEEDS = range(200)


def noise_report(seed: int, base_rate: float, selection_rate: float, **options) -> FairnessReport:
    """5,000 rows, attributes of 2 and 3 values (and their cross), labels and decisions independent of them."""
    rng = np.random.default_rng(seed)
    n = 5_000
    groups = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "region": rng.choice(["x", "y", "z"], n)})
    y_true = (rng.random(n) < base_rate).astype(int)
    y_pred = (rng.random(n) < selection_rate).astype(int)
    return fairness(y_true, y_pred, groups, **options)


def flagged_share(base_rate: float, selection_rate: float, **options) -> float:
    """The share of the seeds whose report flags anything."""
    return float(np.mean([(noise_report(seed, base_rate, selection_rate, **options).summary["status"]
                           == "flagged").any() for seed in SEEDS]))


# ---------------------------------------------------------------------------------------------------------------------
# False alarms on pure noise
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base_rate, selection_rate", [(0.5, 0.5), (0.1, 0.3)])
def test_pure_noise_reports_rarely_flag_by_default_and_often_without_adjustment(base_rate, selection_rate):
    holm = flagged_share(base_rate, selection_rate)
    unadjusted = flagged_share(base_rate, selection_rate, multiple_testing="none")
    rates = f"Holm {holm:.3f}, unadjusted {unadjusted:.3f} over {len(SEEDS)} noise reports"
    assert holm <= 0.05, rates
    # each comparison on its own cries wolf (0.10 and 0.38 of the reports)
    assert unadjusted >= 0.08 and unadjusted > 2 * holm, rates
    if base_rate == 0.5:
        # with no true difference every flag is false: the false discovery rate is the family-wise rate
        bh = flagged_share(base_rate, selection_rate, multiple_testing="bh")
        assert bh <= 0.05, f"BH {bh:.3f}; {rates}"


def test_p_values_of_rates_keep_their_level_under_the_null():
    """P(p <= alpha) for equal rates, by exact enumeration of the two binomial counts, down to the levels Holm uses:
    near alpha for large groups, within 1.5 alpha for the smallest (a discrete test's level zigzags), and far below
    it where the expected counts are small (Fisher's exact test)."""

    def size(n1: int, n2: int, rate: float, alpha: float) -> float:
        k1 = np.arange(stats.binom.ppf(1e-10, n1, rate), stats.binom.isf(1e-10, n1, rate) + 1)
        k2 = np.arange(stats.binom.ppf(1e-10, n2, rate), stats.binom.isf(1e-10, n2, rate) + 1)
        a, b = np.meshgrid(k1, k2, indexing="ij")
        p = proportions_p_value(a.ravel(), np.full(a.size, n1), b.ravel(), np.full(a.size, n2))
        weight = np.outer(stats.binom.pmf(k1, n1, rate), stats.binom.pmf(k2, n2, rate)).ravel()
        return float(weight[p <= alpha].sum())

    for alpha in (0.05, 0.01, 1e-3, 1e-4):
        assert size(830, 830, 0.3, alpha) <= 1.01 * alpha
        for n1, n2, rate in [(250, 250, 0.5), (80, 80, 0.1), (30, 30, 0.5), (30, 30, 0.1), (100, 100, 0.9),
                             (40, 200, 0.2), (1_000, 50, 0.05), (30, 2_000, 0.02), (5_000, 5_000, 0.001)]:
            level = size(n1, n2, rate, alpha)
            assert level <= 1.5 * alpha, f"{n1} vs {n2} at rate {rate}: P(p <= {alpha}) = {level:.3g}"
        # expected counts below 5: Fisher's exact test, conservative
        assert size(1_000, 50, 0.05, alpha) <= alpha and size(30, 30, 0.1, alpha) <= alpha


# ---------------------------------------------------------------------------------------------------------------------
# The p-values
# ---------------------------------------------------------------------------------------------------------------------


def test_rate_p_values_invert_the_newcombe_interval():
    rng = np.random.default_rng(1)
    n1, n2 = rng.integers(30, 400, 3_000), rng.integers(30, 400, 3_000)
    x1, x2 = rng.binomial(n1, 0.4), rng.binomial(n2, rng.uniform(0.3, 0.5, 3_000))
    p = proportions_p_value(x1, n1, x2, n2, exact_below=0)
    for confidence in (0.9, 0.95, 0.99):
        low, high = newcombe_interval(x1, n1, x2, n2, confidence=confidence)
        np.testing.assert_array_equal((low > 0) | (high < 0), p < 1 - confidence)
    # at confidence 1 - p the interval's nearer bound is 0
    some = np.flatnonzero((p > 1e-6) & (p < 1))[:200]
    for i in some:
        low, high = newcombe_interval(x1[i], n1[i], x2[i], n2[i], confidence=1 - p[i])
        assert min(abs(float(low)), abs(float(high))) < 1e-9
    # and for large groups it is close to the (uncorrected) chi-square test
    for i in np.flatnonzero((n1 > 200) & (n2 > 200) & (p > 1e-4) & (p < 0.5))[:100]:
        table = [[x1[i], n1[i] - x1[i]], [x2[i], n2[i] - x2[i]]]
        chi2 = stats.chi2_contingency(table, correction=False)[1]
        assert p[i] == pytest.approx(chi2, rel=0.15)
    assert proportions_p_value(10, 20, 10, 20) == 1.0 and np.isnan(proportions_p_value(0, 0, 1, 2))


def test_small_counts_use_fishers_exact_test():
    rng = np.random.default_rng(2)
    n1, n2 = rng.integers(30, 60, 300), rng.integers(30, 2_000, 300)
    x1, x2 = rng.binomial(n1, 0.04), rng.binomial(n2, 0.04)
    p = proportions_p_value(x1, n1, x2, n2)
    k, n = x1 + x2, n1 + n2
    small = np.minimum(n1, n2) * np.minimum(k, n - k) / n < 5
    assert small.sum() > 200
    expected = [stats.fisher_exact([[a, b - a], [c, d - c]])[1] for a, b, c, d in zip(x1, n1, x2, n2, strict=True)]
    np.testing.assert_allclose(p[small], np.asarray(expected)[small], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p[~small], proportions_p_value(x1, n1, x2, n2, exact_below=0)[~small])
    assert proportions_p_value(3, 4, 1, 4) == pytest.approx(stats.fisher_exact([[3, 1], [1, 3]])[1])


def test_holm_and_benjamini_hochberg_equal_their_definitions():
    rng = np.random.default_rng(3)
    for trial in range(30):
        m = int(rng.integers(1, 8))
        p = np.round(rng.uniform(0, 0.2, m) ** 2, 3)  # rounded: ties happen
        extra = int(rng.integers(0, 3))  # hypotheses of the family not among the p-values
        family = np.r_[p, np.ones(extra)]
        # Holm is closed testing with Bonferroni: the largest |I| * min(p in I) over the subsets I holding i
        closed = [max(min(1.0, len(s) * family[list(s)].min())
                      for r in range(1, m + extra + 1) for s in itertools.combinations(range(m + extra), r) if i in s)
                  for i in range(m)]
        np.testing.assert_allclose(adjust_p_values(p, family_size=m + extra), closed, err_msg=str(trial))
        np.testing.assert_allclose(adjust_p_values(p, "bh", family_size=m + extra),
                                   stats.false_discovery_control(family, method="bh")[:m], err_msg=str(trial))
    with_nan = adjust_p_values([0.01, np.nan, 0.02])
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]].tolist() == pytest.approx([0.02, 0.02])
    np.testing.assert_array_equal(adjust_p_values([0.01, 0.2], "none"), [0.01, 0.2])
    with pytest.raises(MetricInputError, match=r"multiple_testing: expected one of 'holm', 'bh', 'none', got 'bonf'"):
        adjust_p_values([0.1], "bonf")
    with pytest.raises(MetricInputError, match=r"family_size: expected an integer >= the number of p-values \(2\)"):
        adjust_p_values([0.1, 0.2], family_size=1)


# ---------------------------------------------------------------------------------------------------------------------
# In the report
# ---------------------------------------------------------------------------------------------------------------------


def test_the_family_is_every_pair_with_the_best_reference_and_each_comparison_with_a_fixed_one():
    report = noise_report(0, 0.5, 0.5)
    # 5 rates; sex (2 groups), region (3) and their cross (6): the best group is chosen from the data, so every pair
    assert report.family_size == 5 * (1 + 3 + 15)
    assert noise_report(0, 0.5, 0.5, reference="largest").family_size == 5 * (1 + 2 + 5)
    d = report.disparities
    np.testing.assert_allclose(d["p_adjusted"], adjust_p_values(d["p_value"], family_size=report.family_size))
    assert (d["p_adjusted"] >= d["p_value"]).all()


def test_status_is_material_and_significant_after_adjustment():
    rng = np.random.default_rng(4)
    n = 6_000
    groups = pd.DataFrame({"a": rng.choice(["p", "q", "r", "s"], n), "b": rng.choice(["u", "v", "w"], n)})
    y = rng.integers(0, 2, n)
    # one modest real gap: 'a' = 's' is selected less often
    pred = (rng.random(n) < np.where(groups["a"] == "s", 0.33, 0.45)).astype(int)
    alpha = 0.05
    statuses = {}
    for method in ("holm", "bh", "none"):
        report = fairness(y, pred, groups, multiple_testing=method)
        d = report.disparities
        assert list(d.columns[-3:]) == ["p_value", "p_adjusted", "status"]
        with np.errstate(divide="ignore", invalid="ignore"):
            material = np.where(d["metric"] == "selection_rate",
                                np.minimum(d["ratio"], 1 / d["ratio"]) < 0.8, d["difference"].abs() > 0.1)
        expected = np.where(d["difference"].isna(), "insufficient_data",
                            np.where(material & (d["p_adjusted"] < alpha), "flagged", "ok"))
        np.testing.assert_array_equal(d["status"], expected)
        statuses[method] = d.set_index(["attribute", "metric", "group"])["status"]
        if method == "none":
            np.testing.assert_array_equal(d["p_adjusted"], d["p_value"])
            # large groups, so every rate is tested by inverting its interval: a flag is an interval without 0
            excludes = (d["ci_low"] > 0) | (d["ci_high"] < 0)
            np.testing.assert_array_equal(d["status"] == "flagged", material & excludes)
    assert statuses["holm"][("a", "selection_rate", "s")] == "flagged"
    holm, bh, none = ((statuses[k] == "flagged").sum() for k in ("holm", "bh", "none"))
    assert holm <= bh <= none


def test_normal_p_values_match_the_normal_intervals():
    rng = np.random.default_rng(5)
    n = 3_000
    g = rng.choice(["x", "y", "z"], n)
    y = rng.normal(10, 3, n)
    pred = y + rng.normal(np.where(g == "z", 0.3, 0.0), 1.0)
    d = fairness(y, pred, g).disparities
    se = (d["ci_high"] - d["ci_low"]) / (2 * stats.norm.ppf(0.975))
    np.testing.assert_allclose(d["p_value"], 2 * stats.norm.sf(d["difference"].abs() / se), rtol=1e-9)
    score = rng.random(n)
    labels = (rng.random(n) < score).astype(int)
    d = fairness(labels, (score > 0.5).astype(int), g, y_score=score).disparities
    d = d[d["metric"].isin(["auc", "calibration_gap"])]
    assert len(d) == 4
    se = (d["ci_high"] - d["ci_low"]) / (2 * stats.norm.ppf(0.975))
    np.testing.assert_allclose(d["p_value"], 2 * stats.norm.sf(d["difference"].abs() / se), rtol=1e-9)


def test_from_counts_adjusts_like_the_report_from_rows():
    rng = np.random.default_rng(6)
    n = 2_000
    frame = pd.DataFrame({"g": rng.choice(["a", "b", "c"], n), "y": rng.integers(0, 2, n)})
    frame["p"] = (rng.random(n) < np.where(frame["g"] == "c", 0.3, 0.5)).astype(int)
    frame["tp"], frame["fp"] = frame.y & frame.p, (1 - frame.y) & frame.p
    frame["tn"], frame["fn"] = (1 - frame.y) & (1 - frame.p), frame.y & (1 - frame.p)
    counts = frame.groupby("g", as_index=False)[["tp", "fp", "tn", "fn"]].sum()
    for method in ("holm", "bh", "none"):
        from_counts = FairnessReport.from_counts(counts, "g", multiple_testing=method)
        from_rows = fairness(frame["y"], frame["p"], frame["g"], multiple_testing=method)
        pd.testing.assert_frame_equal(from_counts.disparities, from_rows.disparities)
        assert from_counts.family_size == from_rows.family_size == 5 * 3


def test_an_unknown_adjustment_is_refused():
    with pytest.raises(MetricInputError, match=r"multiple_testing: expected one of 'holm', 'bh', 'none', got 'fdr'"):
        fairness([0, 1, 1, 0], [0, 1, 0, 1], ["a", "a", "b", "b"], multiple_testing="fdr")


# ---------------------------------------------------------------------------------------------------------------------
# COMPAS: a real disparity stays flagged
# ---------------------------------------------------------------------------------------------------------------------


def test_compas_fpr_disparity_stays_flagged_after_adjustment(shared_data):
    path = shared_data / "compas" / "compas-scores-two-years.csv.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    df = pd.read_csv(path)
    df = df[df["race"].isin(["African-American", "Caucasian"])]
    higher_risk = (df["decile_score"] >= 5).astype(int)
    for method in ("holm", "bh"):
        report = fairness(df["two_year_recid"], higher_risk, df[["race", "sex"]], y_score=df["decile_score"] / 10,
                          multiple_testing=method)
        d = report.disparities.set_index(["attribute", "metric"])
        fpr = d.loc[("race", "fpr")]
        assert (fpr["group"], fpr["status"]) == ("African-American", "flagged"), method
        assert 1.85 <= fpr["ratio"] <= 1.95 and fpr["p_adjusted"] < 1e-20, (method, fpr["p_adjusted"])
        assert d.loc[("race", "precision"), "status"] == "ok"  # predictive parity still holds
        assert report.summary.set_index("attribute").loc["race", "status"] == "flagged"
