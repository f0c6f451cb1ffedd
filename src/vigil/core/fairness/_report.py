"""Group metrics, disparities and their summary: :func:`fairness` and :class:`FairnessReport`."""

from __future__ import annotations

import html
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.fairness import _engine as engine
from vigil.core.fairness._inputs import (
    SEP,
    TASKS,
    binary,
    column,
    encode,
    fail,
    finite_numbers,
    looks_binary,
    renamed,
    sensitive,
)
from vigil.core.fairness._intervals import (
    _newcombe,
    _wilson,
    hanley_mcneil_se,
    mean_interval,
    normal_p,
    proportions_p,
    z_value,
)
from vigil.core.fairness._multiplicity import METHODS, adjust_p_values

# ---------------------------------------------------------------------------------------------------------------------
# Metric definitions
# ---------------------------------------------------------------------------------------------------------------------

#: Proportions of a classifier's confusion counts ``[tn, fp, fn, tp]``: (numerator columns, denominator columns).
RATES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "base_rate": ((2, 3), (0, 1, 2, 3)),
    "selection_rate": ((1, 3), (0, 1, 2, 3)),
    "accuracy": ((0, 3), (0, 1, 2, 3)),
    "tpr": ((3,), (2, 3)),
    "fpr": ((1,), (0, 1)),
    "fnr": ((2,), (2, 3)),
    "tnr": ((0,), (0, 1)),
    "precision": ((3,), (1, 3)),
    "npv": ((0,), (0, 2)),
}
_NUM = np.array([[int(j in num) for num, _ in RATES.values()] for j in range(4)], dtype=np.int64)
_DEN = np.array([[int(j in den) for _, den in RATES.values()] for j in range(4)], dtype=np.int64)


@dataclass(frozen=True)
class Disparity:
    """A metric compared between groups: which value is best (the default reference) and how its CI is made."""

    metric: str
    best: str  # "max", "min" or "zero" (smallest absolute value)
    interval: str  # "newcombe" (difference of proportions) or "normal" (difference of means, Welch)


CLASSIFICATION_DISPARITIES = (
    Disparity("selection_rate", "max", "newcombe"),  # demographic parity; its ratio is the disparate impact
    Disparity("tpr", "max", "newcombe"),  # equal opportunity
    Disparity("fpr", "min", "newcombe"),  # with tpr: equalized odds
    Disparity("precision", "max", "newcombe"),  # predictive parity
    Disparity("accuracy", "max", "newcombe"),
)
SCORE_DISPARITIES = (
    Disparity("calibration_gap", "zero", "normal"),
    Disparity("auc", "max", "normal"),
)
REGRESSION_DISPARITIES = (
    Disparity("mean_prediction", "max", "normal"),
    Disparity("mae", "min", "normal"),
)

STATUSES = ("ok", "flagged", "insufficient_data")
#: How each ``multiple_testing`` choice is described in a report.
_ADJUSTMENTS = {"holm": "Holm-adjusted", "bh": "Benjamini-Hochberg-adjusted", "none": "unadjusted"}


# ---------------------------------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------------------------------


def _int_option(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise fail(name, f"an integer >= {low}", repr(value))
    return int(value)


def _float_option(value: Any, name: str, low: float, high: float, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        (low < value if open_low else low <= value) and value <= high
    ):
        bracket = "(" if open_low else "["
        raise fail(name, f"a number in {bracket}{low:g}, {high:g}]", repr(value))
    return float(value)


@dataclass(frozen=True)
class Options:
    task: str
    reference: Any
    min_group_size: int
    confidence: float
    z: float
    four_fifths: float
    max_difference: float
    pos_label: Any
    calibration_bins: int
    multiple_testing: str = "holm"

    @classmethod
    def checked(cls, task: str, reference: Any, min_group_size: Any, confidence: Any, four_fifths: Any,
                max_difference: Any, pos_label: Any, calibration_bins: Any,
                multiple_testing: Any = "holm") -> Options:
        z = z_value(confidence)
        if not isinstance(multiple_testing, str) or multiple_testing not in METHODS:
            raise fail("multiple_testing", "one of " + ", ".join(repr(m) for m in METHODS), repr(multiple_testing))
        return cls(
            task=task,
            reference=reference,
            min_group_size=_int_option(min_group_size, "min_group_size", 0),
            confidence=float(confidence),
            z=z,
            four_fifths=_float_option(four_fifths, "four_fifths", 0.0, 1.0, open_low=True),
            max_difference=_float_option(max_difference, "max_difference", 0.0, np.inf),
            pos_label=pos_label,
            calibration_bins=_int_option(calibration_bins, "calibration_bins", 1),
            multiple_testing=multiple_testing,
        )


# ---------------------------------------------------------------------------------------------------------------------
# Per-group metrics from the summed statistics
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Metrics:
    """Per-group metric arrays (the last entry is the overall row): shown values (NaN when insufficient),
    raw values (every non-empty group, for the Fairlearn-convention summary), bounds and standard errors."""

    count: np.ndarray
    shown: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    se: dict[str, np.ndarray]
    num: dict[str, np.ndarray]
    den: dict[str, np.ndarray]
    extra: dict[str, np.ndarray]  # columns reported without an interval (tp, fp, tn, fn, ece, rmse...)


def classification_metrics(conf: np.ndarray, scores: np.ndarray | None, auc: np.ndarray | None,
                           opts: Options) -> Metrics:
    """All the rates (with Wilson intervals) of ``conf`` (groups x [tn, fp, fn, tp]); score metrics if given."""
    floor = max(opts.min_group_size, 1)
    num = conf @ _NUM
    den = conf @ _DEN
    numf, denf = num.astype(np.float64), den.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = numf / denf
    low, high = _wilson(numf, denf, opts.z)
    ok = den >= floor
    shown_all = np.where(ok, raw, np.nan)
    low_all, high_all = np.where(ok, low, np.nan), np.where(ok, high, np.nan)
    m = Metrics(count=den[:, 0], shown={}, raw={}, low={}, high={}, se={}, num={}, den={}, extra={})
    for j, name in enumerate(RATES):
        m.shown[name], m.raw[name] = shown_all[:, j], raw[:, j]
        m.low[name], m.high[name] = low_all[:, j], high_all[:, j]
        m.num[name], m.den[name] = numf[:, j], denf[:, j]
    if scores is not None:
        n = denf[:, 0]
        pos, neg = denf[:, 3], denf[:, 4]  # tpr's denominator: positives; fpr's: negatives
        enough = n >= floor
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_score = scores[:, 0] / n
            gap, gap_se, gap_low, gap_high = mean_interval(scores[:, 2:].sum(axis=1), scores[:, 1], n, opts.z)
            ece = np.abs(scores[:, 2:]).sum(axis=1) / n
        auc_ok = (np.minimum(pos, neg) >= floor) & np.isfinite(auc)
        auc_se = hanley_mcneil_se(auc, pos, neg)
        m.raw["auc"], m.se["auc"] = auc, auc_se
        m.shown["auc"] = np.where(auc_ok, auc, np.nan)
        m.low["auc"] = np.where(auc_ok, np.clip(auc - opts.z * auc_se, 0.0, 1.0), np.nan)
        m.high["auc"] = np.where(auc_ok, np.clip(auc + opts.z * auc_se, 0.0, 1.0), np.nan)
        m.raw["calibration_gap"], m.se["calibration_gap"] = gap, gap_se
        m.shown["calibration_gap"] = np.where(enough, gap, np.nan)
        m.low["calibration_gap"] = np.where(enough, gap_low, np.nan)
        m.high["calibration_gap"] = np.where(enough, gap_high, np.nan)
        m.extra["mean_score"] = np.where(enough, mean_score, np.nan)
        m.extra["ece"] = np.where(enough, ece, np.nan)
    for j, name in enumerate(("tn", "fp", "fn", "tp")):
        m.extra[name] = conf[:, j]
    return m


#: Columns of the per-cell regression sums.
REGRESSION_SUMS = ("count", "prediction", "prediction_sq", "target", "target_sq", "error", "error_sq", "abs_error")


def regression_metrics(sums: np.ndarray, opts: Options) -> Metrics:
    """Means (with normal intervals), MAE and RMSE from the per-group sums of :data:`REGRESSION_SUMS`."""
    floor = max(opts.min_group_size, 1)
    n = sums[:, 0]
    enough = n >= floor
    m = Metrics(count=np.rint(n).astype(np.int64), shown={}, raw={}, low={}, high={}, se={}, num={}, den={},
                extra={})
    for name, total, total_sq in (("mean_prediction", 1, 2), ("mean_target", 3, 4), ("mean_error", 5, 6),
                                  ("mae", 7, 6)):
        mean, se, low, high = mean_interval(sums[:, total], sums[:, total_sq], n, opts.z)
        m.raw[name], m.se[name] = mean, se
        m.shown[name] = np.where(enough, mean, np.nan)
        m.low[name], m.high[name] = np.where(enough, low, np.nan), np.where(enough, high, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        m.extra["rmse"] = np.where(enough, np.sqrt(sums[:, 6] / n), np.nan)
    return m


# ---------------------------------------------------------------------------------------------------------------------
# References and disparities
# ---------------------------------------------------------------------------------------------------------------------


def _reference_label(value: Any) -> str:
    if isinstance(value, tuple):
        return SEP.join(_reference_label(v) for v in value)
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def _is_keyword(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value in ("best", "largest"))


def check_reference(reference: Any, groups: engine.Groups) -> None:
    """Refuse an explicit reference that names no group (or, in a mapping, no attribute)."""
    if _is_keyword(reference):
        return
    if isinstance(reference, Mapping):
        for name, value in reference.items():
            if name not in groups.names:
                raise fail("reference", f"attribute names among {groups.names}", repr(name))
            if _is_keyword(value):
                continue
            k = groups.names.index(name)
            labels = groups.labels[groups.starts[k]:groups.starts[k + 1]]
            if _reference_label(value) not in labels:
                raise fail(f"reference[{name!r}]", f"a group of {name!r} ({labels})", repr(value))
        return
    label = _reference_label(reference)
    if label not in groups.labels:
        shown = {name: groups.labels[groups.starts[k]:groups.starts[k + 1]] for k, name in enumerate(groups.names)}
        raise fail("reference", "None, 'best', 'largest', a group, a tuple of groups (an intersection) or "
                   f"a dict attribute -> group; groups: {shown}", repr(reference))


def _fixed_references(reference: Any, groups: engine.Groups, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per slice: the reference group that does not depend on the metric (explicit or largest; -1 when "best"),
    and the largest group (the fallback when no group has a value)."""
    starts = groups.starts
    mapping = isinstance(reference, Mapping)
    fixed = np.full(len(groups.names), -1, dtype=np.int64)
    largest = np.empty(len(groups.names), dtype=np.int64)
    for k, name in enumerate(groups.names):
        a, b = int(starts[k]), int(starts[k + 1])
        largest[k] = a + int(np.argmax(counts[a:b]))
        target = reference.get(name) if mapping else reference
        if isinstance(target, str) and target == "largest":
            fixed[k] = largest[k]
        elif not _is_keyword(target):
            label = _reference_label(target)
            if label in groups.labels[a:b]:
                fixed[k] = a + groups.labels[a:b].index(label)
    return fixed, largest


def _best(values: np.ndarray, best: str, starts: np.ndarray, slice_of: np.ndarray,
          largest: np.ndarray) -> np.ndarray:
    """Per slice, the first group with the best value ("max", "min" or "zero": nearest 0); the largest if none."""
    key = values if best == "max" else (-values if best == "min" else -np.abs(values))
    key = np.where(np.isnan(key), -np.inf, key)
    top = np.maximum.reduceat(key, starts[:-1])
    hits = np.flatnonzero(key == top[slice_of])
    first = hits[np.searchsorted(slice_of[hits], np.arange(top.shape[0]))]
    return np.where(np.isneginf(top), largest, first)


def disparities(groups: engine.Groups, m: Metrics, defs: Sequence[Disparity], opts: Options,
                overall: dict[str, float]) -> tuple[dict[str, Any], dict[tuple[str, str], tuple[str, float]], int]:
    """Every group against its slice's reference, per metric: the columns of ``.disparities``, the references
    and the size of the family of comparisons the p-values are adjusted over.

    The reference of each slice is picked in a loop over the (few) slices; the
    differences, ratios, intervals, p-values and statuses are computed for all
    groups of all slices at once. The family counts, per slice and metric, the
    comparisons made against a fixed reference (a named or the largest group),
    and every pair of groups with a value when the reference is the best group:
    the comparisons shown are then a data-chosen subset of all the pairs.
    """
    starts = groups.starts
    g = int(starts[-1])
    sizes = np.diff(starts)
    n_slices = sizes.shape[0]
    slice_of = np.repeat(np.arange(n_slices), sizes)
    labels = np.asarray(groups.labels, dtype=object)
    names = np.asarray(groups.names, dtype=object)
    counts = m.count[:g]
    fixed, largest = _fixed_references(opts.reference, groups, counts)
    is_fixed = fixed >= 0
    cols: dict[str, list[np.ndarray]] = {k: [] for k in (
        "attribute", "metric", "group", "reference_group", "value", "reference_value", "difference", "ratio",
        "ci_low", "ci_high", "p_value")}
    material_parts: list[np.ndarray] = []
    counts_of_rates: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    refs: dict[tuple[str, str], tuple[str, float]] = {}
    family = 0
    z = opts.z
    for d in defs:
        if d.metric not in m.shown:
            continue
        shown = m.shown[d.metric][:g]
        ref = np.where(is_fixed, fixed, _best(shown, d.best, starts, slice_of, largest))
        for k, r in enumerate(ref.tolist()):
            refs[(groups.names[k], d.metric)] = (groups.labels[r], float(shown[r]))
        of = ref[slice_of]  # each group's reference
        rows = np.flatnonzero(np.arange(g) != of)
        r = of[rows]
        v, rv = shown[rows], shown[r]
        diff = v - rv
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = v / rv if d.metric != "calibration_gap" else np.full(v.shape, np.nan)
        if d.interval == "newcombe":
            p, lo, hi = m.raw[d.metric], m.low[d.metric], m.high[d.metric]
            ci_low, ci_high = _newcombe(p[rows], lo[rows], hi[rows], p[r], lo[r], hi[r])
            x, n = m.num[d.metric], m.den[d.metric]
            counts_of_rates.append((len(cols["p_value"]), x[rows], n[rows], x[r], n[r], np.isnan(diff)))
            p_value = np.full(rows.shape[0], np.nan)  # computed below, for every rate at once
        else:
            se = m.se[d.metric]
            se_diff = np.sqrt(se[rows] ** 2 + se[r] ** 2)
            half = z * se_diff
            ci_low, ci_high = diff - half, diff + half
            p_value = normal_p(diff, se_diff)
        with np.errstate(divide="ignore", invalid="ignore"):
            if d.metric == "selection_rate":
                material = np.minimum(ratio, 1.0 / ratio) < opts.four_fifths
            elif opts.task == "regression":
                material = np.abs(diff) > opts.max_difference * abs(overall[d.metric])
            else:
                material = np.abs(diff) > opts.max_difference
        valid = np.add.reduceat(np.isfinite(shown).astype(np.int64), starts[:-1])
        compared = np.bincount(slice_of[rows][np.isfinite(diff)], minlength=n_slices)
        family += int(np.where(is_fixed, compared, valid * (valid - 1) // 2).sum())
        cols["attribute"].append(names[slice_of[rows]])
        cols["metric"].append(np.full(rows.shape[0], d.metric, dtype=object))
        cols["group"].append(labels[rows])
        cols["reference_group"].append(labels[r])
        for key, arr in (("value", v), ("reference_value", rv), ("difference", diff), ("ratio", ratio),
                         ("ci_low", ci_low), ("ci_high", ci_high), ("p_value", p_value)):
            cols[key].append(arr)
        material_parts.append(material)
    if counts_of_rates:
        parts = [np.concatenate([c[j] for c in counts_of_rates]) for j in range(1, 6)]
        p_rates = np.where(parts[4], np.nan, proportions_p(*parts[:4]))
        bounds = np.cumsum([0] + [c[1].shape[0] for c in counts_of_rates])
        for (position, *_), a, b in zip(counts_of_rates, bounds[:-1], bounds[1:], strict=True):
            cols["p_value"][position] = p_rates[a:b]
    out: dict[str, Any] = {k: (np.concatenate(parts) if parts else np.zeros(0)) for k, parts in cols.items()}
    out["p_adjusted"] = adjust_p_values(out["p_value"], opts.multiple_testing, family_size=family)
    material = np.concatenate(material_parts) if material_parts else np.zeros(0, dtype=bool)
    significant = out["p_adjusted"] < 1.0 - opts.confidence
    flag = np.where(np.isnan(out["difference"]), 2, np.where(material & significant, 1, 0))
    out["status"] = np.asarray(STATUSES, dtype=object)[flag.astype(np.int64)]
    return out, refs, family


def summary(groups: engine.Groups, m: Metrics, disp: dict[str, Any], opts: Options) -> dict[str, Any]:
    """Per slice: the Fairlearn-convention disparities (max - min over its groups), the four-fifths check, a status."""
    starts = groups.starts[:-1]
    n_groups = np.diff(groups.starts)
    g = int(groups.starts[-1])

    def spread(metric: str) -> tuple[np.ndarray, np.ndarray]:
        v = m.raw[metric][:g]
        with np.errstate(invalid="ignore"):
            return np.fmax.reduceat(v, starts), np.fmin.reduceat(v, starts)

    out: dict[str, Any] = {"attribute": list(groups.names), "groups": n_groups}
    out["insufficient_groups"] = np.add.reduceat((m.count[:g] < opts.min_group_size).astype(np.int64), starts)
    if opts.task == "classification":
        hi, lo = spread("selection_rate")
        out["demographic_parity_difference"] = hi - lo
        with np.errstate(divide="ignore", invalid="ignore"):
            out["demographic_parity_ratio"] = lo / hi
        tpr_hi, tpr_lo = spread("tpr")
        fpr_hi, fpr_lo = spread("fpr")
        out["equal_opportunity_difference"] = tpr_hi - tpr_lo
        out["equalized_odds_difference"] = np.fmax(tpr_hi - tpr_lo, fpr_hi - fpr_lo)
        p_hi, p_lo = spread("precision")
        out["predictive_parity_difference"] = p_hi - p_lo
        if "calibration_gap" in m.raw:
            c_hi, c_lo = spread("calibration_gap")
            out["calibration_gap_difference"] = c_hi - c_lo
        out["four_fifths_passed"] = out["demographic_parity_ratio"] >= opts.four_fifths
    else:
        for metric in ("mean_prediction", "mae", "mean_error"):
            hi, lo = spread(metric)
            out[f"{metric}_difference"] = hi - lo
            if metric != "mean_error":
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[f"{metric}_ratio"] = lo / hi
    status = np.asarray(disp["status"])
    attribute = np.asarray(disp["attribute"], dtype=object)
    flagged = np.array([int(np.count_nonzero((attribute == name) & (status == "flagged"))) for name in groups.names],
                       dtype=np.int64)
    enough = np.add.reduceat((m.count[:g] >= max(opts.min_group_size, 1)).astype(np.int64), starts)
    out["flagged"] = flagged
    out["status"] = np.where(flagged > 0, "flagged", np.where(enough >= 2, "ok", "insufficient_data")).astype(object)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------------------


class FairnessReport:
    """Group metrics, disparities and their summary, for one model's decisions on one data set.

    Attributes are computed when the report is made; the frames are built on
    first access. ``by_group``: one row per group of each attribute (alone and
    crossed), its count, share, metrics with ``<metric>_low``/``<metric>_high``
    bounds, confusion counts and status; ``disparities``: one row per group,
    metric and attribute, against the reference group; ``summary``: one row per
    attribute, the Fairlearn-convention figures and the four-fifths check;
    ``overall``: the metrics on every row. ``family_size`` is the number of
    comparisons the disparities' p-values are adjusted over. Build one with
    :func:`fairness`, or from per-group counts (a SQL ``GROUP BY``) with
    :meth:`from_counts`.
    """

    def __init__(self, *, task: str, n_rows: int, groups: engine.Groups, metrics: Metrics,
                 defs: Sequence[Disparity], opts: Options) -> None:
        self.task = task
        self.n_rows = n_rows
        self.attributes: list[str] = list(groups.names)
        self.options = opts
        self._groups = groups
        self._m = metrics
        self._overall = {k: float(v[-1]) for k, v in metrics.shown.items()}
        self._disp, self._refs, self.family_size = disparities(groups, metrics, defs, opts, self._overall)
        self._summary = summary(groups, metrics, self._disp, opts)

    # -- constructors -------------------------------------------------------------------------------------------

    @classmethod
    def from_counts(cls, counts: pd.DataFrame, attributes: str | Sequence[str] | None = None, *,
                    reference: Any = None, min_group_size: int = 30, confidence: float = 0.95,
                    intersections: bool = True, four_fifths: float = 0.8, max_difference: float = 0.1,
                    multiple_testing: str = "holm") -> FairnessReport:
        """A classification report from a tidy frame of confusion counts, one row per group (or cell).

        ``counts`` has one column per sensitive attribute and the columns
        ``tp``, ``fp``, ``tn`` and ``fn`` (non-negative counts); rows with the
        same attribute values are summed (several windows, several shards).
        ``attributes`` defaults to every other column. Each attribute alone and
        their cross are reported, as :func:`fairness` does from rows: the two
        give identical reports. Scores (AUC, calibration) need the rows.

        >>> counts = pd.DataFrame({"sex": ["F", "M"], "tp": [40, 60], "fp": [10, 30],
        ...                        "tn": [40, 50], "fn": [10, 10]})
        >>> report = FairnessReport.from_counts(counts)
        >>> report.by_group[["group", "count", "selection_rate", "tpr"]]
          group  count  selection_rate       tpr
        0     F    100             0.5  0.800000
        1     M    150             0.6  0.857143
        >>> round(float(report.summary.loc[0, "demographic_parity_difference"]), 4)
        0.1
        """
        if not isinstance(counts, pd.DataFrame):
            raise fail("counts", "a DataFrame with attribute columns and tp, fp, tn, fn", type(counts).__name__)
        needed = ["tp", "fp", "tn", "fn"]
        missing = [c for c in needed if c not in counts.columns]
        if missing:
            raise fail("counts", "the columns tp, fp, tn and fn", f"no column(s) {missing} in {list(counts.columns)}")
        if attributes is None:
            attributes = [c for c in counts.columns if c not in needed]
        elif isinstance(attributes, str):
            attributes = [attributes]
        attributes = list(attributes)
        absent = [c for c in attributes if c not in counts.columns]
        if absent or not attributes:
            raise fail("attributes", f"columns of counts ({list(counts.columns)})",
                       repr(absent) if absent else "none")
        if len(counts) == 0:
            raise fail("counts", "at least one row", "0")
        opts = Options.checked("classification", reference, min_group_size, confidence, four_fifths, max_difference,
                               1, 10, multiple_testing)
        table = np.column_stack([finite_numbers(counts[c], f"counts[{c!r}]", len(counts), low=0.0)
                                 for c in ("tn", "fp", "fn", "tp")])
        if np.all(table == np.rint(table)):
            table = table.astype(np.int64)
        attrs = [renamed(encode(counts[c], f"counts[{c!r}]", len(counts)), str(c)) for c in attributes]
        lay = engine.layout(attrs, len(counts), bool(intersections))
        conf = np.zeros((lay.n_cells, 4), dtype=table.dtype)
        np.add.at(conf, lay.row_cell.astype(np.int64), table)
        return _classification_report(lay, conf, None, None, None, int(table.sum()), opts)

    # -- frames -------------------------------------------------------------------------------------------------

    def _metric_columns(self) -> list[tuple[str, str | None]]:
        """(column, source) in output order: a metric, its bounds, then the extra columns."""
        out: list[tuple[str, str | None]] = []
        for name in self._m.shown:
            out += [(name, "shown"), (f"{name}_low", "low"), (f"{name}_high", "high")]
        for name in self._m.extra:
            out.append((name, "extra"))
        return out

    def _column(self, name: str, source: str | None, rows: slice) -> np.ndarray:
        m = self._m
        if source == "shown":
            return m.shown[name][rows]
        if source == "low":
            return m.low[name[: -len("_low")]][rows]
        if source == "high":
            return m.high[name[: -len("_high")]][rows]
        return m.extra[name][rows]

    @cached_property
    def by_group(self) -> pd.DataFrame:
        """One row per group of each attribute: count, share, metrics and their bounds, confusion counts, status."""
        g = int(self._groups.starts[-1])
        rows = slice(0, g)
        sizes = np.diff(self._groups.starts)
        data: dict[str, Any] = {
            "attribute": np.repeat(np.asarray(self.attributes, dtype=object), sizes),
            "group": np.asarray(self._groups.labels, dtype=object),
            "count": self._m.count[rows],
            "share": self._m.count[rows] / max(self.n_rows, 1),
        }
        for name, source in self._metric_columns():
            data[name] = self._column(name, source, rows)
        data["status"] = np.where(self._m.count[rows] >= self.options.min_group_size, "ok",
                                  "insufficient_data").astype(object)
        return pd.DataFrame(data)

    @cached_property
    def overall(self) -> pd.Series:
        """The metrics on every row, as floats: count, share (1), each metric and its bounds, confusion counts."""
        rows = slice(-1, None)
        names = ["count", "share"]
        values = [float(self._m.count[-1]), 1.0]
        for name, source in self._metric_columns():
            names.append(name)
            values.append(self._column(name, source, rows)[0])
        return pd.Series(np.asarray(values, dtype=np.float64), index=names, name="overall")

    @cached_property
    def disparities(self) -> pd.DataFrame:
        """One row per attribute, metric and group: value against the reference group's, difference, ratio, CI,
        p-values, status.

        ``difference`` is ``value - reference_value``, ``ratio`` ``value / reference_value``
        (for ``selection_rate`` the disparate impact), ``ci_low``/``ci_high`` bound the
        difference at ``confidence``, each on its own (Newcombe for rates, normal for means);
        ``p_value`` is the two-sided p-value of no difference from the test that interval
        inverts, ``p_adjusted`` the same adjusted over the report's family of comparisons
        (``multiple_testing``, :attr:`family_size`); ``status`` is ``"flagged"`` when the
        difference is material and ``p_adjusted`` is below ``1 - confidence``.
        """
        return pd.DataFrame(self._disp)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """One row per attribute: Fairlearn's between-groups disparities, the four-fifths check, flags and status."""
        return pd.DataFrame(self._summary)

    def to_frame(self) -> pd.DataFrame:
        """Every group metric as one tidy row: attribute, group, metric, value, low, high, count, status."""
        frame = self.by_group
        metrics = list(self._m.shown) + [k for k in self._m.extra if k not in ("tn", "fp", "fn", "tp")]
        parts = []
        for name in metrics:
            parts.append(pd.DataFrame({
                "attribute": frame["attribute"], "group": frame["group"], "metric": name, "value": frame[name],
                "low": frame.get(f"{name}_low", np.nan), "high": frame.get(f"{name}_high", np.nan),
                "count": frame["count"], "status": frame["status"],
            }))
        return pd.concat(parts, ignore_index=True)

    # -- display ------------------------------------------------------------------------------------------------

    def reference(self, attribute: str, metric: str) -> tuple[str, float]:
        """The reference group of ``attribute`` for ``metric`` and its value (NaN when insufficient)."""
        try:
            return self._refs[(attribute, metric)]
        except KeyError:
            raise fail("attribute, metric", f"one of {sorted(self._refs)}", repr((attribute, metric))) from None

    def figure(self, metric: str = "selection_rate", attribute: str | None = None) -> Any:
        """A Plotly bar chart of ``metric`` per group with its interval, and the reference line (one panel each).

        The line is the reference group's value for a compared metric, the
        overall value otherwise. ``attribute`` restricts it to one attribute.
        """
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        frame = self.by_group
        choices = [c for c in self._m.shown] + [c for c in self._m.extra if c not in ("tn", "fp", "fn", "tp")]
        if metric not in choices:
            raise fail("metric", f"one of {choices}", repr(metric))
        names = self.attributes if attribute is None else [attribute]
        for name in names:
            if name not in self.attributes:
                raise fail("attribute", f"one of {self.attributes}", repr(name))
        fig = make_subplots(rows=len(names), cols=1, subplot_titles=names, vertical_spacing=0.3 / max(len(names), 1))
        for i, name in enumerate(names, start=1):
            part = frame[frame["attribute"] == name]
            y = part[metric].to_numpy(dtype=float)
            error = None
            if f"{metric}_low" in part:
                error = {"type": "data", "symmetric": False, "array": part[f"{metric}_high"].to_numpy(float) - y,
                         "arrayminus": y - part[f"{metric}_low"].to_numpy(float)}
            fig.add_trace(go.Bar(x=part["group"].astype(str).tolist(), y=y, error_y=error, name=name,
                                 showlegend=False, customdata=part["count"].to_numpy(),
                                 hovertemplate="%{x}: %{y:.3f} (n=%{customdata:,})<extra></extra>"), row=i, col=1)
            if (name, metric) in self._refs:
                label, value = self._refs[(name, metric)]
                text = f"reference: {label}"
            else:
                value, text = float(self.overall[metric]), "overall"
            if np.isfinite(value):
                fig.add_hline(y=value, line_dash="dash", line_color="grey", annotation_text=text, row=i, col=1)
        fig.update_layout(title=f"{metric.replace('_', ' ')} by group ({self.options.confidence:.0%} intervals)",
                          template="plotly_white", height=max(320, 260 * len(names)))
        return fig

    def __repr__(self) -> str:
        flagged = int(np.sum(self._summary["flagged"]))
        return (f"FairnessReport({self.task}, {self.n_rows:,} rows, attributes {self.attributes}, "
                f"{int(self._groups.starts[-1])} groups, {flagged} flagged disparities)")

    def _repr_html_(self) -> str:
        cols = ["attribute", "group", "count", "share", *[c for c in self._m.shown], "status"]
        head = (f"<p><b>Fairness report</b>: {html.escape(self.task)}, {self.n_rows:,} rows; "
                f"reference: {html.escape(repr(self.options.reference))}; groups under "
                f"{self.options.min_group_size} rows are marked insufficient_data; a disparity is flagged when "
                f"material and its p-value ({_ADJUSTMENTS[self.options.multiple_testing]} over "
                f"{self.family_size:,} comparisons) is below {1 - self.options.confidence:.3g}.</p>")
        return (head + self.summary.to_html(index=False, float_format=lambda v: f"{v:.4g}") + "<p>Groups</p>"
                + self.by_group[cols].to_html(index=False, float_format=lambda v: f"{v:.4g}"))


def _classification_report(lay: engine.Layout, conf: np.ndarray, score_cells: np.ndarray | None,
                           y: np.ndarray | None, score: np.ndarray | None, n_rows: int,
                           opts: Options) -> FairnessReport:
    groups = engine.aggregate(lay, conf, score_cells, conf.sum(axis=1))
    check_reference(opts.reference, groups)
    conf_all = np.concatenate([groups.ints, conf.sum(axis=0, keepdims=True)])
    scores_all = auc = None
    if score_cells is not None:
        scores_all = np.concatenate([groups.floats, score_cells.sum(axis=0, keepdims=True)])
        order = np.argsort(score, kind="stable")
        parts = []
        for k, cell_group in enumerate(groups.cell_group):
            size = int(groups.starts[k + 1] - groups.starts[k])
            parts.append(engine.group_auc(cell_group[lay.row_cell], size, y, score, order))
        parts.append(engine.group_auc(np.zeros(y.shape[0], dtype=np.int64), 1, y, score, order))
        auc = np.concatenate(parts)
    metrics = classification_metrics(conf_all, scores_all, auc, opts)
    defs = CLASSIFICATION_DISPARITIES + (SCORE_DISPARITIES if score_cells is not None else ())
    return FairnessReport(task="classification", n_rows=n_rows, groups=groups, metrics=metrics, defs=defs, opts=opts)


def fairness(
    y_true: Any,
    y_pred: Any,
    sensitive_features: Any,
    *,
    y_score: Any = None,
    task: str = "auto",
    reference: Any = None,
    min_group_size: int = 30,
    confidence: float = 0.95,
    intersections: bool = True,
    four_fifths: float = 0.8,
    pos_label: Any = 1,
    calibration_bins: int = 10,
    max_difference: float = 0.1,
    multiple_testing: str = "holm",
) -> FairnessReport:
    """Group metrics, disparities and a Fairlearn-compatible summary of a model's decisions.

    ``sensitive_features`` is one attribute (array, Series, Categorical) or
    several (a DataFrame or a dict name -> values); with several and
    ``intersections=True`` their cross is reported too (and every pair from
    three attributes on). Missing values form a group labelled ``"(missing)"``.

    Classification (binary ``y_true``/``y_pred`` with ``pos_label``, default 1):
    base rate, selection rate, accuracy, TPR, FPR, FNR, TNR, precision, NPV
    with Wilson intervals, and with ``y_score`` (probability of the positive
    class) AUC, mean score, calibration gap and ECE over ``calibration_bins``
    equal-width bins. Regression (``task="regression"``, or a non-binary float
    ``y_true``): mean prediction, mean target, mean error, MAE, RMSE.

    A metric whose denominator (rows, positives, predicted positives...) is
    below ``min_group_size`` is NaN for that group; a group below it is
    ``"insufficient_data"``. ``reference``: None (or ``"best"``: the group with
    the best value of each metric), ``"largest"``, a group, a tuple (an
    intersection) or a dict attribute -> any of these. A disparity is
    ``"flagged"`` when it is material (selection-rate ratio below
    ``four_fifths``; otherwise a difference above ``max_difference``, relative
    to the overall value for a regressor) and significant: its p-value,
    adjusted over every comparison of the report, is below ``1 - confidence``.
    ``multiple_testing``: ``"holm"`` (the chance of any false flag in the
    report stays below ``1 - confidence``), ``"bh"`` (Benjamini-Hochberg: the
    expected share of false flags among the flags does) or ``"none"`` (each
    comparison on its own: its interval excludes 0).

    >>> import numpy as np
    >>> from vigil.core.fairness import fairness
    >>> sex = np.repeat(["F", "M"], 100)
    >>> y_true = np.tile([0, 1], 100)
    >>> y_pred = np.r_[np.tile([0, 0, 0, 1], 25), np.tile([0, 1], 50)]
    >>> report = fairness(y_true, y_pred, sex)
    >>> report.by_group[["group", "count", "selection_rate", "tpr"]]
      group  count  selection_rate  tpr
    0     F    100            0.25  0.5
    1     M    100            0.50  1.0
    >>> s = report.summary.iloc[0]
    >>> float(s["demographic_parity_ratio"]), bool(s["four_fifths_passed"]), s["status"]
    (0.5, False, 'flagged')
    """
    if not isinstance(task, str) or task not in TASKS:
        raise fail("task", "one of " + ", ".join(repr(t) for t in TASKS), repr(task))
    yt_arr = column(y_true, "y_true")
    n = yt_arr.shape[0]
    if n == 0:
        raise fail("y_true", "at least one row", "0")
    if task == "auto":
        task = "classification" if looks_binary(yt_arr) else "regression"
    opts = Options.checked(task, reference, min_group_size, confidence, four_fifths, max_difference, pos_label,
                           calibration_bins, multiple_testing)
    if task == "classification":
        yt = binary(y_true, "y_true", pos_label, hint="; pass task='regression' for a numeric target")
        yp = binary(y_pred, "y_pred", pos_label, n,
                    hint="; pass decisions as y_pred and positive-class probabilities as y_score")
        score = None
        if y_score is not None:
            score = finite_numbers(y_score, "y_score", n, low=0.0, high=1.0,
                                   hint=" (probabilities of the positive class)")
    else:
        if y_score is not None:
            raise fail("y_score", "None for a regression task", "scores")
        yt = finite_numbers(y_true, "y_true", n)
        yp = finite_numbers(y_pred, "y_pred", n)
    attrs = sensitive(sensitive_features, n)
    lay = engine.layout(attrs, n, bool(intersections))
    if task == "classification":
        if score is None:
            conf = engine.confusion_cells(lay, yt, yp, in_place=True)
            return _classification_report(lay, conf, None, None, None, n, opts)
        conf = engine.confusion_cells(lay, yt, yp, in_place=False)
        y = yt.astype(np.float64)
        bins = opts.calibration_bins
        ids = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], score)
        residual = score - y
        cell = lay.row_cell.astype(np.int64)
        score_cells = np.column_stack([
            np.bincount(cell, weights=score, minlength=lay.n_cells),
            np.bincount(cell, weights=residual * residual, minlength=lay.n_cells),
            np.bincount(cell * bins + ids, weights=residual, minlength=lay.n_cells * bins).reshape(lay.n_cells, bins),
        ])
        return _classification_report(lay, conf, score_cells, y, score, n, opts)
    error = yp - yt
    sums = engine.weighted_cells(lay, [np.ones(n), yp, yp * yp, yt, yt * yt, error, error * error, np.abs(error)])
    groups = engine.aggregate(lay, None, sums, sums[:, 0])
    check_reference(opts.reference, groups)
    metrics = regression_metrics(np.concatenate([groups.floats, sums.sum(axis=0, keepdims=True)]), opts)
    return FairnessReport(task="regression", n_rows=n, groups=groups, metrics=metrics, defs=REGRESSION_DISPARITIES,
                          opts=opts)
