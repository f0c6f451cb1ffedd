"""Drift and integrity from profiles (vigil.core.monitoring) against the raw data: SciPy, NumPy, vigil.compare.

The data: the Adult census ages and hours (integers, many ties, values at the training minimum), with 0.5%
of the current values set far beyond the training maximum; tiny and degenerate windows; null windows by
simulation with fixed seeds, for the false-alarm rate.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vigil.core import profiles as prof
from vigil.core.metrics import drift
from vigil.core.monitoring import (
    baseline_edges,
    categorical_drift,
    integrity_metrics,
    numeric_drift,
    numeric_drift_series,
    outside_share,
    parse_window,
    profile_wasserstein,
    window_start,
)
from vigil.demo.simulate import load_adult
from vigil.errors import InvalidParameterError, MetricInputError


@pytest.fixture(scope="module")
def halves() -> tuple[pd.DataFrame, pd.DataFrame]:
    adult = load_adult()
    order = np.random.default_rng(11).permutation(len(adult))
    half = len(adult) // 2
    return adult.iloc[order[:half]].reset_index(drop=True), adult.iloc[order[half:]].reset_index(drop=True)


def numeric_profiles(train: np.ndarray, current: np.ndarray, days: int = 7):
    """The training profile and a week's profile merged from daily ones, on the training baseline's edges."""
    edges, deciles = baseline_edges(train)
    ref = prof.NumericProfile(edges=edges).update(train)
    week = prof.NumericProfile(edges=edges)
    for day in np.array_split(current, days):
        week = week.merge(prof.NumericProfile(edges=edges).update(day))
    return ref, week, edges, deciles


def with_min_ties_and_outliers(train: np.ndarray, current: np.ndarray, seed: int) -> np.ndarray:
    """3% of the values set to the training minimum, 0.5% to five times the training maximum."""
    rng = np.random.default_rng(seed)
    out = current.astype(float).copy()
    u = rng.random(out.size)
    out[u < 0.03] = train.min()
    out[u > 0.995] = 5 * train.max()
    return out


def normalised_wasserstein(train: np.ndarray, current: np.ndarray) -> float:
    return stats.wasserstein_distance(train, current) / np.std(train)


# -- windows -----------------------------------------------------------------------------------------------


def test_windows_parse_to_their_grain_and_a_bad_window_names_the_field():
    assert parse_window("1h") == ("1h", dt.timedelta(hours=1))
    assert parse_window("6h") == ("1h", dt.timedelta(hours=6))
    assert parse_window("1d") == ("1d", dt.timedelta(days=1))
    assert parse_window(" 1W ") == ("1d", dt.timedelta(weeks=1))
    assert parse_window("36h") == ("1h", dt.timedelta(hours=36))
    for bad in ("5h", "0d", "1m", "", "d"):
        with pytest.raises(InvalidParameterError) as err:
            parse_window(bad)
        assert err.value.field == "window" and err.value.code == "invalid_parameter"


def test_window_start_aligns_weeks_on_mondays_and_hours_on_midnight():
    ts = np.array(["2026-01-04T23:59", "2026-01-05T00:00", "2026-01-11T23:00"], dtype="datetime64[us]")
    weeks = window_start(ts, dt.timedelta(weeks=1))
    assert [str(w)[:10] for w in weeks] == ["2025-12-29", "2026-01-05", "2026-01-05"]
    assert all(pd.Timestamp(w).day_of_week == 0 for w in weeks)
    hours = window_start(np.array(["2026-01-07T13:20"], dtype="datetime64[us]"), dt.timedelta(hours=8))
    assert str(hours[0]) == "2026-01-07T08:00:00.000000"


# -- bins ----------------------------------------------------------------------------------------------------


def test_baseline_edges_give_the_range_ends_bins_of_their_own():
    values = np.array([3.0, 1.0, 1.0, 2.0, np.nan, np.inf, 7.5])
    fine, deciles = baseline_edges(values)
    assert fine[0] == 1.0 and fine[-1] == np.nextafter(7.5, np.inf) and (np.diff(fine) > 0).all()
    assert set(deciles) <= set(fine)
    p = prof.NumericProfile(edges=fine).update([0.99, 1.0, 7.5, 7.5000001, 100.0])
    assert (int(p.hist[0]), int(p.hist[-1])) == (1, 2)  # strictly below 1.0; strictly above 7.5
    constant, _ = baseline_edges(np.full(10, 4.0))
    assert constant.tolist() == [4.0, np.nextafter(4.0, np.inf)]
    assert baseline_edges(np.array([np.nan]))[0].size == 0
    huge, _ = baseline_edges(np.array([0.0, np.finfo(float).max]))
    assert np.isfinite(huge).all() and huge[0] == 0.0  # no float lies above the largest one


# -- integrity: exact where the counts are -------------------------------------------------------------------


def test_out_of_range_rate_is_exact_with_values_at_the_minimum_and_far_outliers(halves):
    reference, current = halves
    for column in ("age", "hours-per-week", "capital-gain"):
        train = reference[column].to_numpy(float)
        cur = with_min_ties_and_outliers(train, current[column].to_numpy(float), seed=3)
        ref_p, week, _, _ = numeric_profiles(train, cur)
        at_min = float(np.mean(cur == train.min()))
        assert at_min > 0.02, column  # the values a P(X <= min) reading would count as out of range
        truth = float(np.mean((cur < train.min()) | (cur > train.max())))
        got = integrity_metrics(week, ref_p)["out_of_range_rate"]
        assert got == pytest.approx(truth, rel=1e-12, abs=1e-15), column
        assert truth == pytest.approx(0.005, abs=0.002)
        below, above = outside_share(week, train.min(), train.max())
        assert below == float(np.mean(cur < train.min())) and above == float(np.mean(cur > train.max()))


def test_outside_share_off_the_edges_uses_the_sketch_within_its_rank_error(halves):
    reference, current = halves
    train = reference["age"].to_numpy(float)
    cur = with_min_ties_and_outliers(train, current["age"].to_numpy(float), seed=4)
    ref_p, week, _, _ = numeric_profiles(train, cur)
    for lo, hi in ((25.5, 60.5), (30.0, 50.0), (-1.0, 1e9)):
        below, above = outside_share(week, lo, hi)
        assert below == pytest.approx(np.mean(cur < lo), abs=week.rank_error)
        assert above == pytest.approx(np.mean(cur > hi), abs=week.rank_error)
    assert outside_share(week, -1.0, 1e9) == (0.0, 0.0)
    assert all(math.isnan(v) for v in outside_share(prof.NumericProfile().update([np.nan]), 0.0, 1.0))


def test_integrity_figures_agree_with_the_raw_rows(halves):
    reference, current = halves
    cur = current.copy()
    cur.loc[cur.index[:40], "workclass"] = "Never-seen-before"
    cats = tuple(prof.CategoricalProfile().update(frame["workclass"]) for frame in (reference, cur))
    got = integrity_metrics(cats[1], cats[0])
    values = cur["workclass"]
    assert got["missing_rate"] == pytest.approx(values.isna().mean(), rel=1e-12)
    known = set(reference["workclass"].dropna())
    assert got["unseen_category_rate"] == pytest.approx((~values.dropna().isin(known)).mean(), rel=1e-12)
    ages = cur["age"].to_numpy(float)
    ages[:5], ages[5:8] = np.nan, np.inf  # non-finite values are rows, not missing ones
    ref_p, week, _, _ = numeric_profiles(reference["age"].to_numpy(float), ages)
    metrics = integrity_metrics(week, ref_p)
    assert metrics["missing_rate"] == 5 / ages.size
    finite = ages[np.isfinite(ages)]
    q1, q3 = np.quantile(reference["age"], [0.25, 0.75])
    lo, hi = q1 - 3 * (q3 - q1), q3 + 3 * (q3 - q1)
    assert metrics["outlier_rate"] == pytest.approx(np.mean((finite < lo) | (finite > hi)), abs=2 * week.rank_error)
    assert integrity_metrics(week, None) == {"missing_rate": 5 / ages.size}
    with pytest.raises(InvalidParameterError) as err:
        integrity_metrics(week, cats[0])
    assert err.value.field == "reference"


# -- Wasserstein from profiles: tails included -----------------------------------------------------------------


def test_profile_wasserstein_matches_scipy_with_outliers_beyond_the_training_range(halves):
    reference, current = halves
    checked = 0
    for column in ("age", "hours-per-week", "fnlwgt"):
        train = reference[column].to_numpy(float)
        base = current[column].to_numpy(float)
        for cur in (with_min_ties_and_outliers(train, base, seed=5), base + 0.3 * np.std(train), base):
            ref_p, week, edges, deciles = numeric_profiles(train, cur)
            truth = normalised_wasserstein(train, cur)
            est = profile_wasserstein(ref_p, week)
            assert est.low <= truth * (1 + 1e-9) and truth <= est.high * (1 + 1e-9), column
            assert est.value == pytest.approx(truth, rel=0.03, abs=1e-3), column
            assert numeric_drift(ref_p, week, edges, deciles)["value"] == est.value
            checked += 1
    assert checked == 9


def test_outliers_beyond_the_range_are_counted_at_their_distance_not_at_the_bin_edge(halves):
    reference, current = halves
    train = reference["age"].to_numpy(float)
    cur = with_min_ties_and_outliers(train, current["age"].to_numpy(float), seed=6)
    ref_p, week, _, _ = numeric_profiles(train, cur)
    truth = normalised_wasserstein(train, cur)
    assert profile_wasserstein(ref_p, week).value == pytest.approx(truth, rel=1e-6)  # the tails are exact here
    counts_only = drift.wasserstein_from_counts(ref_p.hist, week.hist, ref_p.edges, lower=ref_p.min,
                                                upper=week.max, scale=np.std(train))
    assert counts_only < 0.8 * truth  # what interpolating the counts alone gives


def test_profile_wasserstein_bounds_hold_for_any_data():
    rng = np.random.default_rng(21)
    for case in range(40):
        n_ref, n_cur = int(rng.integers(50, 3000)), int(rng.integers(30, 3000))
        discrete = case % 2 == 0
        train = rng.poisson(8, n_ref).astype(float) if discrete else rng.lognormal(0, 1, n_ref)
        cur = rng.poisson(rng.uniform(5, 11), n_cur).astype(float) if discrete else \
            rng.lognormal(rng.uniform(-0.5, 0.5), rng.uniform(0.5, 1.5), n_cur)
        cur[rng.random(n_cur) < 0.01] = rng.uniform(-50, 200)
        ref_p, week, _, _ = numeric_profiles(train, cur, days=3)
        truth = normalised_wasserstein(train, cur)
        est = profile_wasserstein(ref_p, week)
        slack = 1e-9 * max(truth, 1.0)
        assert est.low - slack <= est.value <= est.high + slack, case
        assert est.low - slack <= truth <= est.high + slack, case


def test_profiles_stored_without_bin_sums_still_load_merge_and_bound_the_distance(halves):
    reference, current = halves
    train = reference["age"].to_numpy(float)
    cur = with_min_ties_and_outliers(train, current["age"].to_numpy(float), seed=7)
    ref_p, week, edges, deciles = numeric_profiles(train, cur)
    older = {k: v for k, v in week.to_dict().items() if k != "hist_sums"}  # the format before the sums
    old = prof.profile_from_dict(older)
    assert old.hist_sums is None and old.count == week.count and np.array_equal(old.hist, week.hist)
    assert old.merge(prof.NumericProfile(edges=edges).update([30.0])).hist_sums is None
    truth = normalised_wasserstein(train, cur)
    est = profile_wasserstein(ref_p, old)
    assert est.low <= truth <= est.high
    assert integrity_metrics(old, ref_p)["out_of_range_rate"] == pytest.approx(np.mean(cur > train.max()), rel=1e-12)
    assert numeric_drift(ref_p, old, edges, deciles)["status"] in drift.STATUSES


def test_numeric_profile_bin_sums_are_exact_merge_and_round_trip():
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(size=5000), [np.nan, np.inf, -7.0, 40.0]])
    edges, _ = baseline_edges(rng.normal(size=1000))
    whole = prof.NumericProfile(edges=edges).update(x)
    finite = x[np.isfinite(x)]
    expected = np.bincount(np.searchsorted(edges, finite, side="right"), weights=finite, minlength=edges.size + 1)
    np.testing.assert_allclose(whole.hist_sums, expected, rtol=0, atol=1e-9 * np.abs(finite).sum())
    parts = [prof.NumericProfile(edges=edges).update(p) for p in np.array_split(x, 5)]
    merged = parts[0].merge(parts[1]).merge(parts[2].merge(parts[3])).merge(parts[4])
    np.testing.assert_allclose(merged.hist_sums, whole.hist_sums, rtol=0, atol=1e-9 * np.abs(finite).sum())
    again = prof.profile_from_bytes(merged.to_bytes())
    assert again == merged and np.array_equal(again.hist_sums, merged.hist_sums)


# -- tiny and degenerate inputs -------------------------------------------------------------------------------


def test_a_one_row_window_with_an_unseen_category_is_insufficient_data_not_drift():
    ref = prof.CategoricalProfile().update(np.repeat(["a", "b", "c"], [5000, 3000, 2000]))
    one = prof.CategoricalProfile().update(["never-seen"])
    counts = (np.array([5000, 3000, 2000, 0]), np.array([0, 0, 0, 1]))
    assert drift.chi2_from_counts(*counts).p_value < 1e-12  # the asymptotic test, invalid at an expected 1e-4
    assert drift.homogeneity_test(*counts).p_value == pytest.approx(1 / 2001, rel=1e-12)  # the chance is 1e-4
    result = categorical_drift(ref, one)
    assert result["drifted"] is None and result["status"] == "insufficient_data" and result["value"] == 1.0
    one_in_300 = prof.CategoricalProfile().update(["a"] * 150 + ["b"] * 90 + ["c"] * 59 + ["never-seen"])
    quiet = categorical_drift(ref, one_in_300)
    assert quiet["status"] == "ok" and quiet["drifted"] is False and quiet["value"] < 0.1


def test_monte_carlo_chi2_holds_its_level_where_the_asymptotic_test_does_not():
    rng = np.random.default_rng(0)
    shares = np.array([0.4, 0.3, 0.2, 0.05, 0.03, 0.01, 0.007, 0.003])
    ref = np.round(shares * 5000).astype(int)
    mc, asymptotic = [], []
    for i in range(500):
        cur = rng.multinomial(40, shares)
        mc.append(drift.homogeneity_test(ref, cur, seed=i).p_value)
        keep = (ref + cur) > 0
        asymptotic.append(stats.chi2_contingency(np.vstack([ref, cur])[:, keep])[1])
    mc, asymptotic = np.array(mc), np.array(asymptotic)
    assert np.mean(mc <= 0.01) <= 0.015 and np.mean(mc <= 0.05) <= 0.06
    assert np.mean(asymptotic <= 0.01) >= 0.02  # SciPy's chi-squared p-value at these counts: over twice too many
    cur = rng.multinomial(40, shares)
    assert drift.homogeneity_test(ref, cur) == drift.homogeneity_test(ref, cur.copy())  # seeded: same counts, same p
    assert drift.homogeneity_test(ref, cur, seed=1) != drift.homogeneity_test(ref, cur, seed=2)


def test_null_windows_of_thirty_to_sixty_rows_raise_no_false_alarms():
    rng = np.random.default_rng(1)
    train = rng.normal(50, 10, 20_000)
    edges, deciles = baseline_edges(train)
    ref_n = prof.NumericProfile(edges=edges).update(train)
    labels, shares = np.array(list("abcdefg")), np.array([0.45, 0.25, 0.15, 0.1, 0.03, 0.015, 0.005])
    ref_c = prof.CategoricalProfile().update(rng.choice(labels, 20_000, p=shares))
    alarms = {"numeric": 0, "categorical": 0}
    windows = 600
    for _ in range(windows):
        n = int(rng.integers(30, 61))
        cur_n = prof.NumericProfile(edges=edges).update(rng.normal(50, 10, n))
        cur_c = prof.CategoricalProfile().update(rng.choice(labels, n, p=shares))
        alarms["numeric"] += bool(numeric_drift(ref_n, cur_n, edges, deciles)["drifted"])
        alarms["categorical"] += bool(categorical_drift(ref_c, cur_c)["drifted"])
    # at these sizes noise alone puts the effect sizes above 0.1, so the test's level (1%) bounds the rate
    assert alarms["numeric"] / windows <= 0.02 and alarms["categorical"] / windows <= 0.02, alarms
    moved = prof.NumericProfile(edges=edges).update(rng.normal(60, 10, 40))  # one standard deviation: found
    assert numeric_drift(ref_n, moved, edges, deciles)["drifted"] is True


def test_a_constant_reference_judges_a_shift_against_the_values_size():
    train = np.full(1000, 10.0)
    edges, deciles = baseline_edges(train)
    ref = prof.NumericProfile(edges=edges).update(train)
    assert drift.wasserstein(train, np.full(200, 10.01)) == pytest.approx(10.0)  # Evidently's floor of 0.001
    nudged = np.full(200, 10.01)
    for result in (numeric_drift(ref, prof.NumericProfile(edges=edges).update(nudged), edges, deciles),
                   drift.column_drift(train, nudged)):
        assert result["value"] == pytest.approx(0.001) and result["drifted"] is False
        assert result["psi"] == 0.0 and result["js_distance"] == 0.0
    moved = np.full(200, 12.0)
    for result in (numeric_drift(ref, prof.NumericProfile(edges=edges).update(moved), edges, deciles),
                   drift.column_drift(train, moved)):
        assert result["value"] == pytest.approx(0.2) and result["drifted"] is True
    zeros = np.zeros(1000)  # a constant zero has no size: the floor of 0.001 stays
    assert drift.column_drift(zeros, np.full(200, 1e-5))["drifted"] is False
    assert drift.column_drift(zeros, np.full(200, 1.0))["drifted"] is True
    assert drift.wasserstein_scale(0.0, 10.0, 10.0) == 10.0 and drift.wasserstein_scale(0.5, 9.0, 11.0) == 0.5


def test_no_drift_decision_below_thirty_values_a_side():
    assert drift.MIN_ROWS == 30
    rng = np.random.default_rng(2)
    train = rng.normal(size=5000)
    edges, deciles = baseline_edges(train)
    ref = prof.NumericProfile(edges=edges).update(train)
    far = rng.normal(3.0, 1.0, 30)
    few = numeric_drift(ref, prof.NumericProfile(edges=edges).update(far[:29]), edges, deciles)
    enough = numeric_drift(ref, prof.NumericProfile(edges=edges).update(far), edges, deciles)
    assert (few["drifted"], few["status"]) == (None, "insufficient_data") and few["value"] > 2
    assert (enough["drifted"], enough["status"]) == (True, "drift")
    assert drift.column_drift(train, far[:29])["drifted"] is None and drift.column_drift(train, far)["drifted"]
    assert drift.column_drift(far[:29], train)["drifted"] is None  # the reference needs 30 too
    cats = ["x"] * 29
    assert drift.column_drift(["a", "b"] * 500, cats, kind="categorical", method="chi2")["drifted"] is None
    assert drift.column_drift(["a", "b"] * 500, cats + ["x"], kind="categorical", method="chi2")["drifted"]
    table = drift.drift_table(pd.DataFrame({"x": train[:29]}), pd.DataFrame({"x": far}))
    assert table.loc[0, "drifted"] is None
    nothing = numeric_drift(ref, prof.NumericProfile(edges=edges).update([np.nan] * 50), edges, deciles)
    assert nothing["status"] == "insufficient_data" and math.isnan(nothing["value"])
    assert set(enough) == {"method", "value", "threshold", "drifted", "status", "p_value", "psi", "js_distance",
                           "hellinger"}


def test_decide_needs_the_sample_sizes():
    stats_ = {"wasserstein": 0.3, "js_distance": 0.2, "hellinger": 0.2, "psi": 0.4, "ks_p_value": 1e-9}
    with pytest.raises(TypeError):
        drift.decide(stats_, "numeric")  # the counts are explicit, never assumed
    for bad in (-1, 2.5, True, None):
        with pytest.raises(MetricInputError, match="n_cur must be a count"):
            drift.decide(stats_, "numeric", n_ref=100, n_cur=bad)
    assert drift.decide(stats_, "numeric", method="ks", n_ref=100, n_cur=100)["status"] == "drift"


# -- vigil.compare: the same figures ----------------------------------------------------------------------------


def test_compare_integrity_and_drift_use_the_core_figures(halves):
    from vigil.interfaces.notebook import compare

    reference, current = halves
    cur = current.copy()
    train = reference["age"].to_numpy(float)
    cur["age"] = with_min_ties_and_outliers(train, cur["age"].to_numpy(float), seed=9)
    cur.loc[cur.index[:25], "workclass"] = "Never-seen-before"
    columns = ["age", "hours-per-week", "workclass"]
    result = compare(reference[columns], cur[columns])
    integrity = result.integrity.set_index(["column", "metric"])["current"]
    age = cur["age"].to_numpy(float)
    assert integrity["age", "out_of_range_rate"] == pytest.approx(
        np.mean((age < train.min()) | (age > train.max())), rel=1e-12)
    ref_p, week, _, _ = numeric_profiles(train, age, days=1)
    for metric, value in integrity_metrics(week, ref_p).items():
        slack = week.rank_error if metric == "outlier_rate" else 0.0  # sketches: the same within their error
        assert integrity["age", metric] == pytest.approx(value, rel=1e-12, abs=slack)
    known = set(reference["workclass"].dropna())
    assert integrity["workclass", "unseen_category_rate"] == pytest.approx(
        (~cur["workclass"].dropna().isin(known)).mean(), rel=1e-12)
    row = result.drift.set_index("column").loc["age"]
    assert row["value"] == pytest.approx(normalised_wasserstein(train, age), rel=1e-9)
    assert row["status"] == ("drift" if row["drifted"] else "ok")
    tiny = compare(reference[columns], cur[columns].head(10))
    assert (tiny.drift["status"] == "insufficient_data").all() and tiny.drift["drifted"].isna().all()


def test_a_drift_series_equals_each_window_computed_alone():
    rng = np.random.default_rng(11)
    train = rng.gamma(2.0, size=4000)
    edges, deciles = baseline_edges(train)
    ref = prof.NumericProfile(edges=edges).update(train)
    days = [prof.NumericProfile(edges=edges).update(rng.gamma(2.0 + shift, size=n) + (shift > 0.4) * 30)
            for shift, n in ((0.0, 600), (0.3, 800), (0.6, 20), (0.9, 500))]
    days.insert(2, prof.NumericProfile(edges=edges).update([np.nan] * 5))  # no finite value: nothing measured
    old_style = prof.NumericProfile(edges=edges).update(rng.gamma(2.0, size=300))
    old_style.hist_sums = None  # a profile kept before the sums were: linear interpolation of the counts
    days.append(old_style)
    series = numeric_drift_series(ref, days, edges, deciles)
    alone = [numeric_drift(ref, day, edges, deciles) for day in days]
    assert [r["status"] for r in series] == ["ok", "drift", "insufficient_data", "insufficient_data", "drift", "ok"]
    for got, want in zip(series, alone, strict=True):
        assert got.keys() == want.keys()
        assert all(got[k] == want[k] or (np.isnan(got[k]) and np.isnan(want[k])) for k in got if k != "drifted")
        assert got["drifted"] == want["drifted"]
