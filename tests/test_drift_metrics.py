"""Drift statistics against real oracles (SciPy, Evidently's PSI), their properties, and real data.

The oracles: ``scipy.stats.ks_2samp``, ``chi2_contingency``, ``wasserstein_distance`` and
``scipy.spatial.distance.jensenshannon`` on raw data; Evidently 0.7.23's PSI (numbers recorded below).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from vigil.core.metrics import (
    DEFAULTS,
    METHODS,
    UNSEEN,
    MetricInputError,
    bin_counts,
    category_counts,
    chi2,
    chi2_from_counts,
    column_drift,
    domain_classifier_auc,
    drift_table,
    hellinger,
    hellinger_from_counts,
    js_distance,
    js_distance_from_counts,
    ks,
    ks_from_counts,
    mean_embedding_distance,
    mmd,
    pca_reconstruction_drift,
    psi,
    psi_from_counts,
    quantile_edges,
    wasserstein,
    wasserstein_from_counts,
)
from vigil.core.metrics.drift import _Binner, _numeric_stats
from vigil.errors import VigilError

TABLE_COLUMNS = ["column", "kind", "method", "value", "threshold", "drifted", "p_value", "psi", "js_distance",
                 "hellinger"]


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(12345)


# -- oracles on raw data -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_ref, n_cur, shift", [(500, 700, 0.0), (2_000, 3_000, 0.1), (3_000, 1_000, 0.5)])
def test_ks_equals_scipy_exact_mode(n_ref, n_cur, shift):
    r = np.random.default_rng(n_ref)
    ref, cur = r.normal(size=n_ref), r.normal(shift, 1.0, size=n_cur)
    ours = ks(ref, cur)
    oracle = stats.ks_2samp(ref, cur, method="exact")
    assert ours.statistic == pytest.approx(oracle.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(oracle.pvalue, rel=1e-9, abs=1e-12)


def test_ks_with_ties_and_missing_values_equals_scipy_on_the_finite_values(rng):
    ref = np.round(rng.normal(size=1_500), 1)
    cur = np.round(rng.normal(0.1, 1.0, size=1_200), 1)
    ref_nan = np.concatenate([ref, [np.nan, np.inf]])
    oracle = stats.ks_2samp(ref, cur)
    assert tuple(ks(ref_nan, cur)) == pytest.approx((oracle.statistic, oracle.pvalue), rel=1e-12)


@pytest.mark.parametrize("k", [2, 3, 7])
@pytest.mark.parametrize("correction", [True, False])
def test_chi2_equals_chi2_contingency(rng, k, correction):
    ref_counts = rng.integers(5, 200, size=k)
    cur_counts = rng.integers(5, 200, size=k)
    oracle = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=correction)
    ours = chi2_from_counts(ref_counts, cur_counts, correction=correction)
    assert ours.statistic == pytest.approx(oracle.statistic, rel=1e-10)
    assert ours.p_value == pytest.approx(oracle.pvalue, rel=1e-9, abs=1e-300)


def test_chi2_drops_categories_empty_on_both_sides():
    ref_counts, cur_counts = [30, 0, 50, 20, 0], [40, 0, 30, 30, 0]
    oracle = stats.chi2_contingency([[30, 50, 20], [40, 30, 30]])
    assert tuple(chi2_from_counts(ref_counts, cur_counts)) == pytest.approx((oracle.statistic, oracle.pvalue))
    assert tuple(chi2_from_counts([5, 0], [7, 0])) == (0.0, 1.0)  # one category left: nothing to test


def test_chi2_on_raw_categories_equals_chi2_contingency_with_unseen_bucket():
    ref = ["a"] * 40 + ["b"] * 35 + ["c"] * 25
    cur = ["a"] * 30 + ["b"] * 30 + ["c"] * 30 + ["d"] * 10  # "d" goes to the unseen bucket
    oracle = stats.chi2_contingency([[40, 35, 25, 0], [30, 30, 30, 10]])
    assert tuple(chi2(ref, cur)) == pytest.approx((oracle.statistic, oracle.pvalue), rel=1e-12)


def test_wasserstein_equals_scipy_normalised_by_reference_std(rng):
    ref, cur = rng.lognormal(size=3_000), rng.lognormal(0.2, 1.0, size=2_000)
    raw = stats.wasserstein_distance(ref, cur)
    assert wasserstein(ref, cur, normalized=False) == pytest.approx(raw, rel=1e-12)
    assert wasserstein(ref, cur) == pytest.approx(raw / np.std(ref), rel=1e-12)
    assert wasserstein([1.0, 1.0, 1.0], [1.0, 1.0, 1.5]) == pytest.approx(0.5 / 3 / 1e-3)  # Evidently's floor


def test_js_distance_equals_scipy_jensenshannon_base_2(rng):
    for _ in range(20):
        r, c = rng.integers(0, 50, size=12), rng.integers(0, 50, size=12)
        r[0], c[1] = 0, 0
        oracle = jensenshannon(r / r.sum(), c / c.sum(), base=2)
        assert js_distance_from_counts(r, c) == pytest.approx(oracle, rel=1e-12, abs=1e-15)


def test_hellinger_matches_its_definition(rng):
    r, c = rng.integers(1, 50, size=8), rng.integers(1, 50, size=8)
    p, q = r / r.sum(), c / c.sum()
    expected = math.sqrt(1.0 - float(np.sum(np.sqrt(p * q))))  # the Bhattacharyya form
    assert hellinger_from_counts(r, c) == pytest.approx(expected, rel=1e-10)


# -- PSI: Evidently's formula ------------------------------------------------------------------------------

# Fixed data (exact decimals, no random generator) and Evidently 0.7.23's own numbers for them, computed with
# evidently.legacy.calculations.stattests.psi._psi(ref, cur, ColumnType.Numerical, 0.1) (its "equal bins":
# np.histogram_bin_edges of both samples together, "sturges", 11 bins here; zero proportions -> 0.0001).
EVIDENTLY_REF = (np.arange(400) * 37 % 101) / 10.0
EVIDENTLY_CASES = [
    ((np.arange(350) * 29 % 97) / 9.0, 0.05033235622438912),  # no empty bin
    ((np.arange(300) * 53 % 89) / 10.0 + 2.0, 1.5640520143629595),  # two bins empty in the current sample
]


@pytest.mark.parametrize("cur, evidently_psi", EVIDENTLY_CASES)
def test_psi_agrees_with_evidently_on_equal_bins(cur, evidently_psi):
    ref = EVIDENTLY_REF
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    ref_counts, cur_counts = np.histogram(ref, edges)[0], np.histogram(cur, edges)[0]
    # Evidently's documented formula, written out
    p, q = ref_counts / ref.size, cur_counts / cur.size
    p[p == 0], q[q == 0] = 0.0001, 0.0001
    formula = float(np.sum((p - q) * np.log(p / q)))
    assert formula == pytest.approx(evidently_psi, rel=1e-12)
    assert psi_from_counts(ref_counts, cur_counts) == pytest.approx(evidently_psi, rel=1e-12)
    # the same bins as ours: inner edges, searchsorted(side="right") (np.histogram's last bin is closed: the
    # maximum sits on the last edge, so only the inner edges are passed)
    assert psi_from_counts(bin_counts(ref, edges[1:-1]), bin_counts(cur, edges[1:-1])) == pytest.approx(
        evidently_psi, rel=1e-12)


def test_psi_on_reference_quantile_bins_matches_hand_computation(rng):
    ref, cur = rng.normal(size=5_000), rng.normal(0.3, 1.2, size=4_000)
    edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10) / ref.size
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=10) / cur.size
    assert psi(ref, cur) == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-12)


def test_psi_empty_bins_use_eps_and_both_empty_contribute_nothing():
    assert psi_from_counts([10, 0, 10], [10, 0, 10]) == 0.0
    assert psi_from_counts([10, 10, 0], [10, 10, 0]) == 0.0
    one_sided = psi_from_counts([10, 10], [20, 0], eps=1e-4)
    assert one_sided == pytest.approx((1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))


# -- bins --------------------------------------------------------------------------------------------------


def test_quantile_edges_and_bin_counts():
    x = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, np.nan])
    edges = quantile_edges(x, bins=5)
    assert edges.tolist() == pytest.approx(np.quantile(x[:-1], [0.2, 0.4, 0.6, 0.8]).tolist())
    counts = bin_counts(x, edges)
    assert counts.tolist() == [2, 2, 2, 2, 2] and counts.sum() == 10  # NaN left out
    assert quantile_edges([1.0, 1.0, 1.0, 2.0], bins=10).tolist() == pytest.approx([1.0, 1.1, 1.4, 1.7])  # unique
    assert bin_counts([0.0, 1.0, 2.0], [1.0]).tolist() == [1, 2]  # x == edge goes up (side="right")


def test_category_counts_unseen_bucket_last_and_declared_categories():
    ref = pd.Series(pd.Categorical(["b", "a", "b", None], categories=["b", "a", "z"]))
    cur = pd.Series(pd.Categorical(["a", "q", "q", "z"], categories=["a", "q", "z"]))
    ref_counts, cur_counts, labels = category_counts(ref, cur)
    assert labels == ["b", "a", "z", UNSEEN]
    assert ref_counts.tolist() == [2, 1, 0, 0]
    assert cur_counts.tolist() == [0, 1, 1, 2]
    ints = category_counts(np.array([3, 1, 1]), np.array([1, 2]))
    assert ints[2] == [1, 3, UNSEEN] and ints[0].tolist() == [2, 1, 0] and ints[1].tolist() == [1, 0, 1]


# -- properties --------------------------------------------------------------------------------------------


def test_identical_samples_give_zero_and_no_drift(rng):
    x = rng.normal(size=3_000)
    assert psi(x, x) == 0.0 and js_distance(x, x) == 0.0 and hellinger(x, x) == 0.0
    assert wasserstein(x, x) == 0.0 and ks(x, x).statistic == 0.0 and ks(x, x).p_value == 1.0
    assert chi2(x, x).statistic == pytest.approx(0.0, abs=1e-12)
    res = column_drift(x, x)
    assert not res["drifted"] and res["value"] == 0.0
    cats = rng.choice(list("abcde"), size=2_000)
    res = column_drift(cats, cats, kind="categorical")
    assert not res["drifted"] and res["value"] == 0.0 and res["psi"] == 0.0 and res["p_value"] == 1.0
    big = rng.normal(size=400_000)  # the binned fast path too
    res = column_drift(big, big.copy())
    assert res["value"] == pytest.approx(0.0, abs=1e-12) and res["p_value"] == 1.0 and not res["drifted"]


def test_distances_stay_in_range_and_are_symmetric(rng):
    for _ in range(50):
        k = int(rng.integers(2, 20))
        r = rng.integers(0, 30, size=k) * (rng.random(k) < 0.8)
        c = rng.integers(0, 30, size=k) * (rng.random(k) < 0.8)
        r[0] += 1
        c[-1] += 1
        for f in (js_distance_from_counts, hellinger_from_counts):
            v = f(r, c)
            assert 0.0 <= v <= 1.0
            assert v == pytest.approx(f(c, r), abs=1e-12)
        assert psi_from_counts(r, c) >= 0.0
        assert psi_from_counts(r, c) == pytest.approx(psi_from_counts(c, r), rel=1e-12)
        d, p = ks_from_counts(r, c)
        assert 0.0 <= d <= 1.0 and 0.0 <= p <= 1.0
    assert js_distance_from_counts([3, 0], [0, 4]) == 1.0 and hellinger_from_counts([3, 0], [0, 4]) == 1.0


def test_counts_forms_equal_raw_forms_on_the_same_bins(rng):
    ref, cur = rng.normal(size=2_000), rng.normal(0.2, 1.1, size=1_500)
    edges = quantile_edges(ref, bins=10)
    rc, cc = bin_counts(ref, edges), bin_counts(cur, edges)
    assert psi(ref, cur) == psi_from_counts(rc, cc)
    assert js_distance(ref, cur) == js_distance_from_counts(rc, cc)
    assert hellinger(ref, cur) == hellinger_from_counts(rc, cc)
    assert tuple(chi2(ref, cur)) == tuple(chi2_from_counts(rc, cc))
    cats_r, cats_c = rng.choice(list("abc"), size=500), rng.choice(list("abcd"), size=400)
    crc, ccc, _ = category_counts(cats_r, cats_c)
    assert psi(cats_r, cats_c) == psi_from_counts(crc, ccc)
    assert js_distance(cats_r, cats_c) == js_distance_from_counts(crc, ccc)


def test_ks_and_wasserstein_from_counts_are_exact_with_a_bin_per_distinct_value(rng):
    ref = np.round(rng.normal(size=2_500), 2)
    cur = np.round(rng.normal(0.3, 1.0, size=1_800), 2)
    edges = np.unique(np.concatenate([ref, cur]))
    rc, cc = bin_counts(ref, edges), bin_counts(cur, edges)
    oracle = stats.ks_2samp(ref, cur, method="asymp")
    res = ks_from_counts(rc, cc)
    assert res.statistic == pytest.approx(oracle.statistic, abs=1e-12)
    assert res.p_value == pytest.approx(oracle.pvalue, rel=0.05)  # Stephens' approximation vs SciPy's
    w = wasserstein_from_counts(rc, cc, edges, interpolation="step")
    assert w == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9)


def test_wasserstein_from_counts_linear_approximation_on_fine_bins(rng):
    ref, cur = rng.normal(size=50_000), rng.normal(0.3, 1.0, size=50_000)
    edges = quantile_edges(np.concatenate([ref, cur]), bins=1_000)
    rc, cc = bin_counts(ref, edges), bin_counts(cur, edges)
    lo, hi = min(ref.min(), cur.min()), max(ref.max(), cur.max())
    approx = wasserstein_from_counts(rc, cc, edges, lower=lo, upper=hi, scale=float(np.std(ref)))
    assert approx == pytest.approx(wasserstein(ref, cur), rel=0.01)


# -- the binned fast path ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["normal", "lognormal_heavy", "lognormal_very_heavy", "discrete", "point_mass",
                                  "negative_spread"])
def test_fast_path_bins_agree_with_exact_binning(name):
    """The fast binner must count exactly like searchsorted: its decile counts give the same PSI/JS/Hellinger."""
    r = np.random.default_rng(7)
    n = 60_000  # below the sample size: the reference deciles are the same on both paths
    data = {
        "normal": lambda s: r.normal(s, 1.0, n),
        "lognormal_heavy": lambda s: r.lognormal(s, 2.0, n),
        "lognormal_very_heavy": lambda s: r.lognormal(s, 3.0, n),
        "discrete": lambda s: r.poisson(3 + s, n).astype(float),
        "point_mass": lambda s: np.where(r.random(n) < 0.4, 0.0, r.exponential(1 + s, n)),
        "negative_spread": lambda s: r.standard_cauchy(n) * 1e3 + s,
    }[name]
    ref, cur = data(0.0), data(0.4)
    fast = column_drift(ref, cur, exact=False)
    exact = column_drift(ref, cur, exact=True)
    for key in ("psi", "js_distance", "hellinger"):
        assert fast[key] == pytest.approx(exact[key], rel=1e-9, abs=1e-15), key
    assert 0 <= stats.ks_2samp(ref, cur).statistic - _fast(ref, cur)["ks"] < 2e-3


def _fast(ref, cur):
    """Every statistic of the binned fast path (column_drift reports KS only through its p-value)."""
    return _numeric_stats(ref, cur, bins=10, exact=False)


@pytest.mark.parametrize("scale", [1e-300, 1e-3, 1.0, 1e6, 1e300])
def test_fast_binner_counts_exactly_like_searchsorted(scale):
    r = np.random.default_rng(int(-np.log10(scale)) + 400)
    samples = [
        r.normal(size=200_000), r.lognormal(0, 0.8, 200_000), r.lognormal(0, 2.5, 200_000),
        r.standard_cauchy(200_000), np.round(r.normal(size=200_000), 1), r.exponential(size=200_000) - 0.5,
        np.where(r.random(200_000) < 0.3, 0.0, r.normal(size=200_000)), -r.lognormal(0, 3.0, 200_000),
    ]
    for i, x in enumerate(samples):
        x = x * scale
        for edges in (np.unique(np.quantile(x[:20_000], np.linspace(0, 1, 1_200))),
                      np.unique(np.concatenate([np.quantile(x[:5_000], np.linspace(0, 1, 300)), [0.0, -0.0]]))):
            probe = np.concatenate([x, edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
                                    [-np.inf, np.inf, 0.0, -0.0, 5e-324, -5e-324, 1.7e308, -1.7e308]])
            binner = _Binner(edges)
            assert np.array_equal(binner.index(probe), np.searchsorted(edges, probe, side="right")), (i, scale)


def test_fast_path_on_discrete_data_is_exact(rng):
    ref = rng.integers(0, 24, size=300_000).astype(float)  # like an hour-of-day column
    cur = rng.integers(0, 20, size=250_000).astype(float)
    fast = _fast(ref, cur)
    assert fast["ks"] == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-12)
    assert fast["wasserstein"] == pytest.approx(wasserstein(ref, cur), rel=1e-9)


@pytest.mark.slow
def test_fast_path_approximation_error_on_a_million_rows():
    r = np.random.default_rng(3)
    n = 1_000_000
    pairs = {
        "shift": (r.normal(size=n), r.normal(0.5, 1.0, n)),
        "scale_lognormal": (r.lognormal(0, 0.8, n), 1.5 * r.lognormal(0, 0.8, n)),
        "none": (r.normal(2, 3, n), r.normal(2, 3, n)),
    }
    for name, (ref, cur) in pairs.items():
        res = column_drift(ref, cur)  # 2,000,000 rows: the binned path
        fast = _fast(ref, cur)
        ks_exact = stats.ks_2samp(ref, cur, method="asymp").statistic
        assert 0 <= ks_exact - fast["ks"] <= 0.002, name
        w_exact = stats.wasserstein_distance(ref, cur) / np.std(ref)
        assert res["value"] == pytest.approx(w_exact, rel=0.01, abs=5e-4), name
        if name != "none":
            assert res["value"] == pytest.approx(w_exact, rel=0.01), name


# -- the decision ------------------------------------------------------------------------------------------


def test_defaults_do_not_cry_wolf_at_large_n():
    r = np.random.default_rng(11)
    ref = r.normal(0.0, 1.0, 200_000)
    tiny = r.normal(0.03, 1.0, 200_000)  # 3% of a standard deviation: nobody cares
    res = column_drift(ref, tiny)
    assert res["p_value"] < 1e-6  # a KS test (or a p-value rule) would flag it
    assert column_drift(ref, tiny, method="ks")["drifted"]
    assert res["method"] == "wasserstein" and res["value"] < 0.05 and not res["drifted"]
    big = r.normal(0.5, 1.0, 200_000)
    assert column_drift(ref, big)["drifted"]
    assert DEFAULTS == {"numeric": ("wasserstein", 0.1), "categorical": ("js_distance", 0.1)}


def test_categorical_default_and_p_value_beside():
    r = np.random.default_rng(5)
    ref = r.choice(list("abc"), p=[0.5, 0.3, 0.2], size=100_000)
    same = r.choice(list("abc"), p=[0.49, 0.31, 0.2], size=100_000)
    moved = r.choice(list("abc"), p=[0.2, 0.3, 0.5], size=100_000)
    quiet = column_drift(ref, same, kind="categorical")
    assert quiet["p_value"] < 0.01 and not quiet["drifted"]
    assert column_drift(ref, moved, kind="categorical")["drifted"]
    assert set(quiet) == {"method", "value", "threshold", "drifted", "p_value", "psi", "js_distance", "hellinger"}


def test_method_and_threshold_overrides_and_p_value_methods():
    r = np.random.default_rng(2)
    ref, cur = r.normal(size=1_000), r.normal(0.2, 1.0, size=1_000)
    res = column_drift(ref, cur, method="psi", threshold=0.01)
    assert res["method"] == "psi" and res["threshold"] == 0.01 and res["value"] == res["psi"] and res["drifted"]
    res = column_drift(ref, cur, method="ks")
    assert res["value"] == res["p_value"] and res["threshold"] == METHODS["ks"].threshold
    assert res["drifted"] == (res["p_value"] < 0.05)
    with pytest.raises(MetricInputError, match="method 'wasserstein' does not apply to categorical"):
        column_drift(["a"], ["b"], kind="categorical", method="wasserstein")
    with pytest.raises(MetricInputError, match="method must be one of"):
        column_drift(ref, cur, method="energy")
    with pytest.raises(MetricInputError, match="kind must be 'numeric' or 'categorical'"):
        column_drift(ref, cur, kind="text")


def test_errors_name_the_argument():
    with pytest.raises(MetricInputError, match="reference must be 1-D"):
        psi(np.zeros((3, 2)), [1.0])
    with pytest.raises(MetricInputError, match="current has no finite values"):
        ks([1.0, 2.0], [np.nan])
    with pytest.raises(MetricInputError, match="ref_counts and cur_counts must have the same bins"):
        psi_from_counts([1, 2], [1, 2, 3])
    with pytest.raises(MetricInputError, match="cur_counts is empty"):
        js_distance_from_counts([1, 2], [0, 0])
    with pytest.raises(MetricInputError, match="ref_counts must hold finite, non-negative counts"):
        hellinger_from_counts([-1, 2], [1, 1])
    with pytest.raises(MetricInputError, match="bins must be an integer >= 2"):
        quantile_edges([1.0, 2.0], bins=1)
    with pytest.raises(MetricInputError, match="edges must be finite and strictly increasing"):
        bin_counts([1.0], [2.0, 1.0])
    with pytest.raises(MetricInputError, match="reference must be numeric"):
        wasserstein(["a", "b"], [1.0])
    with pytest.raises(MetricInputError, match="eps must be in"):
        psi_from_counts([1], [1], eps=0)
    err = MetricInputError("x")
    assert isinstance(err, VigilError) and isinstance(err, ValueError) and err.code == "metric_input"


# -- drift_table -------------------------------------------------------------------------------------------


def _frames(n, seed, drift=False):
    r = np.random.default_rng(seed)
    df = pd.DataFrame({
        "a": r.normal(0.5 if drift else 0.0, 1.0, n),
        "b": r.lognormal(0.0, 0.5, n),
        "i": r.integers(0, 10, n),
        "c": pd.Categorical(r.choice(["x", "y", "z"], p=[0.2, 0.3, 0.5] if drift else [0.5, 0.3, 0.2], size=n)),
        "s": r.choice(["u", "v"], size=n),
    })
    return df


def test_drift_table_shape_types_and_agreement_with_column_drift():
    ref, cur = _frames(3_000, 1), _frames(2_000, 2, drift=True)
    table = drift_table(ref, cur)
    assert list(table.columns) == TABLE_COLUMNS
    assert table["column"].tolist() == ["a", "b", "i", "c", "s"]
    assert table["kind"].tolist() == ["numeric", "numeric", "numeric", "categorical", "categorical"]
    assert table.loc[table["drifted"], "column"].tolist() == ["a", "c"]
    for row in table.itertuples():
        expected = column_drift(ref[row.column], cur[row.column], kind=row.kind)
        for key, value in expected.items():
            got = getattr(row, key)
            assert got == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), (row.column, key)
    single = drift_table(ref, cur, n_jobs=1)
    pd.testing.assert_frame_equal(single, table)


def test_drift_table_column_lists_methods_and_thresholds():
    ref, cur = _frames(2_000, 1), _frames(2_000, 2, drift=True)
    table = drift_table(ref, cur, numeric=["a"], categorical=["i", "c"],
                        methods={"numeric": "ks", "c": "chi2"}, thresholds={"i": 0.5})
    assert table["column"].tolist() == ["a", "i", "c"]
    assert table["method"].tolist() == ["ks", "js_distance", "chi2"]
    assert table["threshold"].tolist() == [0.05, 0.5, 0.05]
    with pytest.raises(MetricInputError, match="current_df has no column"):
        drift_table(ref, cur.drop(columns="a"), numeric=["a"])
    with pytest.raises(MetricInputError, match="methods names columns that are not compared"):
        drift_table(ref, cur, numeric=["a"], methods={"zz": "psi"})
    with pytest.raises(MetricInputError, match="for column 'c': method 'ks' does not apply"):
        drift_table(ref, cur, methods={"c": "ks"})
    with pytest.raises(MetricInputError, match="reference_df must be a pandas DataFrame"):
        drift_table(ref.to_numpy(), cur)
    with pytest.raises(MetricInputError, match="n_jobs must be"):
        drift_table(ref, cur, n_jobs=0)


def test_drift_table_large_frames_use_the_fast_path_and_flag_the_right_columns():
    ref, cur = _frames(300_000, 1), _frames(300_000, 2, drift=True)
    ref.loc[::10, "a"] = np.nan  # missing values are ignored, not drift
    cur.loc[::7, "a"] = np.nan
    table = drift_table(ref, cur)
    assert table.loc[table["drifted"], "column"].tolist() == ["a", "c"]
    a = table.set_index("column").loc["a"]
    exact = column_drift(ref["a"], cur["a"], exact=True)
    assert a["value"] == pytest.approx(exact["value"], rel=0.01)


def test_drift_table_empty_side_gives_nan_row_not_an_error():
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    cur = pd.DataFrame({"x": [np.nan] * 3, "c": [None, None, None]})
    table = drift_table(ref, cur, numeric=["x"], categorical=["c"])
    assert table["value"].isna().all() and not table["drifted"].any()


# -- real data: bike sharing -------------------------------------------------------------------------------


def test_bike_sharing_injected_drift_flags_exactly_the_drifted_columns(shared_data):
    hour = shared_data / "bike_sharing" / "hour.csv"
    if not hour.is_file():
        pytest.skip(f"{hour} not found")
    df = pd.read_csv(hour)
    # a random 50/50 split (a time split would carry the seasons' real drift)
    r = np.random.default_rng(2024)
    in_ref = r.random(len(df)) < 0.5
    ref = df[in_ref].reset_index(drop=True)
    cur = df[~in_ref].reset_index(drop=True)
    cur["temp"] = cur["temp"] + 0.15  # ~0.8 standard deviations warmer
    weather = cur["weathersit"].to_numpy().copy()
    clear = np.flatnonzero(weather == 1)
    weather[r.choice(clear, size=clear.size // 2, replace=False)] = 2  # half the clear hours become misty
    cur["weathersit"] = weather
    numeric = ["temp", "atemp", "hum", "windspeed", "hr"]
    categorical = ["season", "weathersit", "workingday", "weekday"]
    table = drift_table(ref, cur, numeric=numeric, categorical=categorical)
    assert sorted(table.loc[table["drifted"], "column"]) == ["temp", "weathersit"]
    quiet = drift_table(ref, df[~in_ref], numeric=numeric, categorical=categorical)
    assert not quiet["drifted"].any()


# -- multivariate ------------------------------------------------------------------------------------------


def _correlated(n, rho, seed):
    r = np.random.default_rng(seed)
    cov = [[1, rho, 0], [rho, 1, 0], [0, 0, 1]]
    x = r.multivariate_normal([0, 0, 0], cov, size=n)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1] * 2 + 5, "c": x[:, 2],
                         "k": pd.Categorical(r.choice(["p", "q", "r"], size=n))})


def test_pca_reconstruction_no_drift_on_a_random_split():
    df = _correlated(20_000, 0.9, 1)
    mask = np.random.default_rng(0).random(len(df)) < 0.5
    res = pca_reconstruction_drift(df[mask], df[~mask])
    assert not res["drifted"]
    assert res["lower"] <= res["current_error"] <= res["upper"]
    assert set(res) >= {"reference_error", "current_error", "lower", "upper", "drifted"}


def test_pca_reconstruction_sees_a_correlation_change_the_marginals_miss():
    ref, cur = _correlated(10_000, 0.9, 1), _correlated(10_000, 0.0, 2)
    assert not drift_table(ref, cur)["drifted"].any()  # every marginal is the same
    res = pca_reconstruction_drift(ref, cur)
    assert res["drifted"] and res["current_error"] > res["upper"]


def test_domain_classifier_auc():
    ref, same = _correlated(6_000, 0.9, 1), _correlated(6_000, 0.9, 2)
    moved = _correlated(6_000, 0.9, 3)
    moved["a"] = moved["a"] + 1.0
    quiet = domain_classifier_auc(ref, same, sample=3_000)
    assert quiet["auc"] == pytest.approx(0.5, abs=0.04) and not quiet["drifted"] and quiet["threshold"] < 0.55
    loud = domain_classifier_auc(ref, moved, sample=3_000)
    assert loud["auc"] > 0.7 and loud["drifted"]


def test_mmd_and_mean_embedding_distance():
    r = np.random.default_rng(9)
    ref, same = r.normal(size=(2_000, 16)), r.normal(size=(2_000, 16))
    shifted = r.normal(size=(2_000, 16)) + 0.3
    stat_same, p_same = mmd(ref, same)
    stat_shift, p_shift = mmd(ref, shifted)
    assert p_same > 0.05 and p_shift < 0.01 and stat_shift > stat_same
    d = mean_embedding_distance(ref, shifted)
    assert d["euclidean"] == pytest.approx(0.3 * 4, rel=0.1) and 0 <= d["cosine"] <= 2
    with pytest.raises(MetricInputError, match="same number of columns"):
        mmd(ref, shifted[:, :3])
