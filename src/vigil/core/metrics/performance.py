"""Model performance metrics: pure functions on raw arrays and on sufficient statistics.

Every function follows scikit-learn's conventions: ``f(y_true, y_pred, *,
sample_weight=None, ...)`` with options keyword-only; a ``*_score`` (or a rate,
or a ranking metric) is better when higher, a ``*_error`` or ``*_loss`` when
lower. Scalars come back as Python floats, per-class results as NumPy arrays.
Bad input raises :class:`MetricInputError` (a :class:`~vigil.errors.VigilError`
and a :class:`ValueError`, code ``metric_input``, shared with the drift
metrics) naming the argument, what was expected and what was given.

Monitoring keeps profiles, not raw events, so each metric also has a form that
works on sufficient statistics, and the two agree:

==========================  =============================================  ==========================
metric family               raw form                                       from statistics
==========================  =============================================  ==========================
labels (precision, ...)     :func:`precision_score`, ...                   :func:`classification_from_confusion`
                                                                           on a confusion matrix (exact)
decision threshold          :func:`binary_confusion_at_threshold`          :func:`confusion_from_histograms`
                                                                           (exact at bin edges)
ranking quality             :func:`roc_auc_score`, :func:`pr_auc_score`    :func:`roc_auc_from_histograms`,
                                                                           :func:`pr_auc_from_histograms`
calibration                 :func:`expected_calibration_error`             :func:`ece_from_histograms`
regression                  :func:`mean_absolute_error`, ...               :func:`regression_from_sums` (exact)
recommendation              :func:`precision_at_k`, ...                    ``(value, count)`` pairs
business                    :meth:`CustomMetric.evaluate`                  :meth:`CustomMetric.from_stats`
==========================  =============================================  ==========================

A score histogram (see :func:`score_histogram`) is a ``2 x bins`` array of
counts (or summed weights) of the positive-class score in equal-width bins over
[0, 1], bin ``j`` holding ``j/bins <= score < (j+1)/bins`` (a score of 1 goes
to the last bin); row 0 holds the rows whose true class is negative, row 1 the
positive ones. Histograms of two windows merge by addition. Build them with
:func:`score_histogram` (edges ``numpy.arange(bins + 1) / bins``): binning by
``int(score * bins)`` puts a few scores one bin low (0.29 with 100 bins), and
thresholds at those edges are then no longer exact.

Conventions worth knowing:

- *Zero division.* A ratio whose denominator is zero (precision with no
  predicted positive, ...) is ``zero_division`` (default 0.0, as
  scikit-learn's default after its warning), never a silent NaN.
  ``zero_division=float("nan")`` is accepted; averages then skip NaN classes
  as scikit-learn does.
- *Undefined metrics.* ROC AUC needs both classes, average precision needs a
  positive: without them the functions raise :class:`MetricInputError`
  (scikit-learn returns NaN or 0 with a warning).
- *pos_label* defaults to 1, as in scikit-learn; pass it for other labels.
- :data:`METRICS` lists every metric with its task, direction, inputs and
  range, for generic code (tests, the monitoring layer).

>>> precision_score([0, 1, 1, 0], [0, 1, 0, 1])
0.5
>>> cm = confusion_matrix([0, 1, 1, 0], [0, 1, 0, 1])
>>> classification_from_confusion(cm)["precision"]
0.5
>>> try:
...     mean_absolute_error([1.0, 2.0], [1.0])
... except MetricInputError as err:
...     print(err.code, "-", err)
metric_input - y_pred: expected 2 rows (as y_true), got 1
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# one error class for every metric module (defined beside the drift metrics, re-exported here)
from vigil.core.metrics.drift import MetricInputError

__all__ = [
    "METRICS",
    "CustomMetric",
    "MetricInfo",
    "MetricInputError",
    "accuracy_score",
    "binary_confusion_at_threshold",
    "brier_score_loss",
    "calibration_curve",
    "classification_from_confusion",
    "confusion_from_histograms",
    "confusion_matrix",
    "ece_from_histograms",
    "expected_calibration_error",
    "f1_score",
    "false_negative_rate",
    "false_positive_rate",
    "hit_rate_at_k",
    "log_loss",
    "map_at_k",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "merge_regression_sums",
    "ndcg_at_k",
    "npv_score",
    "pr_auc_from_histograms",
    "pr_auc_score",
    "precision_at_k",
    "precision_score",
    "r2_score",
    "recall_at_k",
    "recall_score",
    "regression_from_sums",
    "regression_sums",
    "residual_quantiles",
    "roc_auc_from_histograms",
    "roc_auc_score",
    "root_mean_squared_error",
    "score_histogram",
    "specificity_score",
]

#: The ``average`` values the classification metrics accept.
AVERAGES = ("binary", "micro", "macro", "weighted", None)

#: Tolerance on the row sums of a class-probability matrix (as ingestion's).
PROBABILITY_SUM_TOLERANCE = 1e-4

#: The epsilon of :func:`mean_absolute_percentage_error` (scikit-learn's).
MAPE_EPSILON = float(np.finfo(np.float64).eps)

_CLASSIFICATION_KEYS = ("accuracy", "precision", "recall", "specificity", "npv", "f1", "fpr", "fnr", "support")


# ---------------------------------------------------------------------------------------------------------------------
# The shared input checker
# ---------------------------------------------------------------------------------------------------------------------


def _fail(name: str, expected: str, got: str) -> MetricInputError:
    return MetricInputError(f"{name}: expected {expected}, got {got}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _label_kind(arr: np.ndarray, name: str) -> str:
    """'number' or 'text' for a label array; mixes and missing values are refused."""
    if arr.dtype.kind in "biuf":
        if arr.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                raise _fail(name, "labels without missing or infinite values", f"{arr[bad[0]]} at row {bad[0]}")
        return "number"
    if arr.dtype.kind in "US":
        return "text"
    if arr.dtype.kind == "O":
        kinds = set()
        for i, v in enumerate(arr.tolist()):
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                raise _fail(name, "labels without missing or infinite values", f"{v!r} at row {i}")
            if isinstance(v, str):
                kinds.add("text")
            elif isinstance(v, numbers.Number) and not isinstance(v, complex):
                kinds.add("number")
            else:
                raise _fail(name, "labels that are numbers, booleans or strings", f"{type(v).__name__} at row {i}")
        if len(kinds) > 1:
            raise _fail(name, "labels of one kind", "a mix of numbers and strings")
        return kinds.pop() if kinds else "number"
    raise _fail(name, "labels that are numbers, booleans or strings", f"an array of dtype {arr.dtype}")


def _check(
    value: Any,
    name: str,
    *,
    kind: str = "number",
    ndim: int | tuple[int, ...] = 1,
    length: int | None = None,
    like: str | None = None,
    low: float | None = None,
    high: float | None = None,
    min_rows: int = 1,
) -> np.ndarray:
    """The one input checker: an array of the expected shape and kind, or an error naming ``name``.

    ``kind`` is "label" (numbers, booleans or strings, no missing values, one
    kind), "number" (finite floats) or "weight" (finite floats >= 0).
    ``length``/``like`` require as many rows as another argument.
    """
    if value is None:
        raise _fail(name, "an array", "None")
    if isinstance(value, str | bytes):
        raise _fail(name, "an array", f"a string {_short(value)}")
    try:
        arr = np.asarray(value)
    except Exception as err:  # ragged lists, objects numpy cannot hold
        raise _fail(name, "an array", f"{type(value).__name__} ({err})") from None
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in dims:
        want = " or ".join(f"{d}-d" for d in dims)
        raise _fail(name, f"a {want} array", f"an array of shape {arr.shape}")
    if length is not None and arr.ndim and arr.shape[0] != length:
        raise _fail(name, f"{length} rows (as {like})", f"{arr.shape[0]}")
    if arr.ndim and arr.shape[0] < min_rows:
        raise _fail(name, f"at least {min_rows} row{'s' if min_rows > 1 else ''}", f"{arr.shape[0]}")
    if kind == "label":
        labels_kind = _label_kind(arr, name)
        if arr.dtype.kind == "O":  # homogeneous now: let numpy pick a proper dtype
            arr = np.asarray(arr.tolist()) if arr.size else arr.astype(float)
        if labels_kind == "text":
            arr = arr.astype(str)
        return arr
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise _fail(name, "numbers", f"values of dtype {arr.dtype}") from None
    elif arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    if kind == "weight" and low is None:
        low = 0.0
    checks = [(~np.isfinite(arr), "finite numbers")]
    if low is not None:
        checks.append((arr < low, f"values >= {low:g}"))
    if high is not None:
        checks.append((arr > high, f"values <= {high:g}"))
    for bad, expected in checks:
        if np.any(bad):
            where = np.argwhere(np.atleast_1d(bad))[0]
            value = np.atleast_1d(arr)[tuple(where)]
            raise _fail(name, expected, f"{value:g}" + (f" at row {where[0]}" if arr.ndim else ""))
    return arr


def _check_weights(sample_weight: Any, n: int, like: str) -> np.ndarray | None:
    if sample_weight is None:
        return None
    return _check(sample_weight, "sample_weight", kind="weight", length=n, like=like, min_rows=0)


def _check_option(value: Any, name: str, options: Sequence[Any]) -> Any:
    if not any(value is o or (o is not None and value == o) for o in options):
        raise _fail(name, "one of " + ", ".join(repr(o) for o in options), _short(value))
    return value


def _check_int(value: Any, name: str, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise _fail(name, f"an integer >= {low}", _short(value))
    return int(value)


def _check_float(value: Any, name: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise _fail(name, "a number", _short(value))
    if not low <= value <= high:
        raise _fail(name, f"a number in [{low:g}, {high:g}]", _short(value))
    return float(value)


def _check_zero_division(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail("zero_division", "a number (0.0, 1.0 or nan)", _short(value))
    return float(value)


_KIND_NAMES = {"number": "numbers", "text": "strings"}


def _check_pair(y_true: Any, y_pred: Any, pred_name: str = "y_pred") -> tuple[np.ndarray, np.ndarray]:
    yt = _check(y_true, "y_true", kind="label")
    yp = _check(y_pred, pred_name, kind="label", length=yt.shape[0], like="y_true")
    if yt.size and yp.size and _label_kind(yt, "y_true") != _label_kind(yp, pred_name):
        raise _fail(pred_name, f"labels of the same kind as y_true ({_KIND_NAMES[_label_kind(yt, 'y_true')]})",
                    _KIND_NAMES[_label_kind(yp, pred_name)])
    return yt, yp


def _union(*arrays: np.ndarray) -> np.ndarray:
    arrays = tuple(a for a in arrays if a.size)
    if not arrays:
        return np.asarray([])
    return np.unique(np.concatenate(arrays))


def _index(labels: np.ndarray, value: Any) -> int:
    """Position of ``value`` among ``labels`` (-1 if absent); a string never equals a number."""
    for i, lab in enumerate(labels.tolist()):
        if isinstance(lab, str) == isinstance(value, str) and lab == value:
            return i
    return -1


def _encode(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Index of each value in ``labels`` (in ``labels``' order), -1 for values not among them."""
    if not labels.size or not values.size:
        return np.full(values.shape[0], -1, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    pos = np.minimum(np.searchsorted(ordered, values), labels.size - 1)
    found = ordered[pos] == values
    return np.where(found, order[pos], -1)


def _check_labels(labels: Any, like: np.ndarray | None, name: str = "labels") -> np.ndarray:
    arr = _check(labels, name, kind="label")
    if np.unique(arr).size != arr.size:
        raise _fail(name, "distinct labels", _short(arr.tolist()))
    if like is not None and like.size and _label_kind(like, "y_true") != _label_kind(arr, name):
        raise _fail(name, f"labels of the same kind as y_true ({_KIND_NAMES[_label_kind(like, 'y_true')]})",
                    _short(arr.tolist()))
    return arr


def _safe_div(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, zero_division, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nan_average(values: np.ndarray, weights: np.ndarray | None) -> float:
    """scikit-learn's average of per-class values: NaN classes skipped, zero total weight -> plain mean."""
    mask = ~np.isnan(values)
    if not mask.any():
        return float("nan")
    values = values[mask]
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)[mask]
        if weights.sum() > 0:
            return float(np.average(values, weights=weights))
    return float(np.mean(values))


# ---------------------------------------------------------------------------------------------------------------------
# Classification from labels: the confusion matrix and its ratios
# ---------------------------------------------------------------------------------------------------------------------


def confusion_matrix(y_true: Any, y_pred: Any, *, labels: Any = None, sample_weight: Any = None) -> np.ndarray:
    """Counts (or summed weights) of (true, predicted) pairs: ``cm[i, j]`` = true ``labels[i]``, predicted ``labels[j]``

    ``labels`` defaults to the sorted union of the labels in ``y_true`` and
    ``y_pred``; rows whose true or predicted label is not among ``labels`` are
    not counted (as scikit-learn). Integer counts unless float weights are given.

    >>> confusion_matrix(["a", "b", "b"], ["a", "a", "b"])
    array([[1, 0],
           [1, 1]])
    """
    yt, yp = _check_pair(y_true, y_pred)
    w = _check_weights(sample_weight, yt.shape[0], "y_true")
    labs = _union(yt, yp) if labels is None else _check_labels(labels, yt)
    return _confusion(yt, yp, labs, w, integral=sample_weight is None or np.asarray(sample_weight).dtype.kind in "biu")


def _confusion(yt: np.ndarray, yp: np.ndarray, labels: np.ndarray, w: np.ndarray | None, *, integral: bool = False):
    k = labels.size
    t = _encode(yt, labels)
    p = _encode(yp, labels)
    keep = (t >= 0) & (p >= 0)
    flat = t[keep] * k + p[keep]
    if w is None:
        return np.bincount(flat, minlength=k * k).reshape(k, k).astype(np.int64)
    cm = np.bincount(flat, weights=w[keep], minlength=k * k).reshape(k, k)
    return cm.astype(np.int64) if integral else cm


def _ratios(cm: np.ndarray, selected: np.ndarray, average: str | None, zero_division: float) -> dict[str, Any]:
    """Every ratio of the confusion matrix ``cm`` for the classes at positions ``selected``."""
    cm = np.asarray(cm)
    total = cm.sum()
    diag = np.diagonal(cm)
    tp = diag[selected]
    if cm.shape[0] == 2:  # single cells: exact, so swapping the positive class swaps the metrics exactly
        other = 1 - selected
        fp, fn, tn = cm[other, selected], cm[selected, other], cm[other, other]
    else:
        off = cm - np.diag(diag)
        fp = off.sum(axis=0)[selected]
        fn = off.sum(axis=1)[selected]
        tn = total - tp - fp - fn
    support = tp + fn
    if average == "micro":
        tp, fp, fn, tn = (np.atleast_1d(x.sum()) for x in (tp, fp, fn, tn))
    true_sum = tp + fn
    pred_sum = tp + fp
    out = {
        "precision": _safe_div(tp, pred_sum, zero_division),
        "recall": _safe_div(tp, true_sum, zero_division),
        "specificity": _safe_div(tn, tn + fp, zero_division),
        "npv": _safe_div(tn, tn + fn, zero_division),
        "f1": _safe_div(2.0 * tp, np.asarray(true_sum, dtype=np.float64) + pred_sum, zero_division),
        "fpr": _safe_div(fp, fp + tn, zero_division),
        "fnr": _safe_div(fn, fn + tp, zero_division),
    }
    if average is None:
        result: dict[str, Any] = dict(out)
        result["support"] = support.copy()
    else:
        weights = support if average == "weighted" else None
        result = {key: _nan_average(val, weights) for key, val in out.items()}
        tot = support.sum()
        result["support"] = int(tot) if np.asarray(tot).dtype.kind in "biu" else float(tot)
    result["accuracy"] = float(_safe_div(diag.sum(), total, zero_division))
    return {key: result[key] for key in _CLASSIFICATION_KEYS}


def classification_from_confusion(
    cm: Any,
    *,
    labels: Any = None,
    average: str | None = "binary",
    pos_label: Any = None,
    zero_division: float = 0.0,
) -> dict[str, Any]:
    """Accuracy, precision, recall, specificity, npv, f1, fpr, fnr and support from a confusion matrix.

    ``cm`` is k x k (rows = true, columns = predicted, in the order of
    ``labels``, default ``0..k-1``), counts or summed weights; matrices of two
    windows merge by addition. Per class ``c``: ``precision = tp/(tp+fp)``,
    ``recall`` (sensitivity) ``= tp/(tp+fn)``, ``specificity = tn/(tn+fp)``,
    ``npv = tn/(tn+fn)``, ``f1 = 2tp/(2tp+fp+fn)``, ``fpr = fp/(fp+tn)``,
    ``fnr = fn/(fn+tp)``. A zero denominator gives ``zero_division`` (0.0).

    ``average``: "binary" (the class ``pos_label``, default the last label;
    at most two labels), "micro" (ratios of the counts summed over classes),
    "macro" (mean over classes), "weighted" (mean weighted by support) or None
    (one value per class, as arrays). ``accuracy`` is always the overall
    ``trace/total``; ``support`` is the true count of the positive class
    (binary), of all classes (averages) or per class (None).

    >>> out = classification_from_confusion([[5, 1], [2, 2]])
    >>> out["precision"], out["recall"], out["specificity"], out["accuracy"]
    (0.6666666666666666, 0.5, 0.8333333333333334, 0.7)
    """
    arr = _check(cm, "cm", kind="weight", ndim=2)
    k = arr.shape[0]
    if arr.shape != (k, k):
        raise _fail("cm", "a square k x k matrix", f"shape {arr.shape}")
    if np.asarray(cm).dtype.kind in "biu":
        arr = np.asarray(cm, dtype=np.int64)
    labs = np.arange(k) if labels is None else _check_labels(labels, None)
    if labs.size != k:
        raise _fail("labels", f"{k} labels (one per row of cm)", f"{labs.size}")
    _check_option(average, "average", AVERAGES)
    zd = _check_zero_division(zero_division)
    if average == "binary":
        if k > 2:
            raise _fail("average", "'micro', 'macro', 'weighted' or None for more than two classes",
                        f"'binary' with {k} classes")
        pos = k - 1 if pos_label is None else _index(labs, pos_label)
        if pos < 0:
            raise _fail("pos_label", f"one of {labs.tolist()}", _short(pos_label))
        out = _ratios(arr, np.array([pos]), "macro", zd)
        return out
    return _ratios(arr, np.arange(k), average, zd)


def _from_labels(
    metric: str,
    y_true: Any,
    y_pred: Any,
    *,
    labels: Any,
    pos_label: Any,
    average: str | None,
    sample_weight: Any,
    zero_division: float,
) -> Any:
    yt, yp = _check_pair(y_true, y_pred)
    w = _check_weights(sample_weight, yt.shape[0], "y_true")
    _check_option(average, "average", AVERAGES)
    zd = _check_zero_division(zero_division)
    present = _union(yt, yp)
    if average == "binary":
        if present.size > 2:
            raise _fail("average", "'micro', 'macro', 'weighted' or None for more than two classes",
                        f"'binary' with {present.size} classes: {_short(present.tolist())}")
        pos = _index(present, pos_label)
        if pos < 0:
            if present.size == 2:
                raise _fail("pos_label", f"one of {present.tolist()}", _short(pos_label))
            present = _union(present, _check_labels([pos_label], yt, "pos_label"))
            pos = _index(present, pos_label)
        cm = _confusion(yt, yp, present, w)
        return _ratios(cm, np.array([pos]), "macro", zd)[metric]
    if labels is None:
        all_labels, selected = present, np.arange(present.size)
    else:
        wanted = _check_labels(labels, yt)
        all_labels = _union(present, wanted)
        selected = _encode(wanted, all_labels)
    cm = _confusion(yt, yp, all_labels, w)
    return _ratios(cm, selected, average, zd)[metric]


def accuracy_score(y_true: Any, y_pred: Any, *, sample_weight: Any = None, zero_division: float = 0.0) -> float:
    """Share (or weight share) of rows whose predicted label is the true one.

    ``zero_division`` is returned when all weights are zero.

    >>> accuracy_score([0, 1, 2, 2], [0, 2, 2, 2])
    0.75
    """
    yt, yp = _check_pair(y_true, y_pred)
    w = _check_weights(sample_weight, yt.shape[0], "y_true")
    labels = _union(yt, yp)
    return _ratios(_confusion(yt, yp, labels, w), np.arange(labels.size), "macro", _check_zero_division(zero_division))[
        "accuracy"
    ]


_LABEL_OPTIONS = """
    ``average``: "binary" (the class ``pos_label``, default 1; at most two labels
    in the data), "micro" (ratio of the counts summed over classes), "macro"
    (mean over classes), "weighted" (mean weighted by each class's true count)
    or None (an array, one value per class of ``labels``). ``labels`` (not with
    "binary") chooses the classes reported and averaged, default the sorted
    labels of ``y_true`` and ``y_pred``. A zero denominator gives
    ``zero_division`` (default 0.0, scikit-learn's value after its warning).
"""


def _label_doc(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn.__doc__ = (fn.__doc__ or "").replace("    {options}\n", _LABEL_OPTIONS.lstrip("\n") + "\n")
    return fn


@_label_doc
def precision_score(y_true: Any, y_pred: Any, *, labels: Any = None, pos_label: Any = 1,
                    average: str | None = "binary", sample_weight: Any = None, zero_division: float = 0.0) -> Any:
    """Precision ``tp / (tp + fp)``: the share of predicted positives that are positive.

    {options}
    >>> precision_score([0, 1, 1, 0], [1, 1, 1, 0])
    0.6666666666666666
    >>> precision_score([0, 1, 2, 2], [0, 2, 2, 1], average=None)
    array([1. , 0. , 0.5])
    """
    return _from_labels("precision", y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
                        sample_weight=sample_weight, zero_division=zero_division)


@_label_doc
def recall_score(y_true: Any, y_pred: Any, *, labels: Any = None, pos_label: Any = 1,
                 average: str | None = "binary", sample_weight: Any = None, zero_division: float = 0.0) -> Any:
    """Recall (sensitivity, true positive rate) ``tp / (tp + fn)``.

    {options}
    >>> recall_score([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return _from_labels("recall", y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
                        sample_weight=sample_weight, zero_division=zero_division)


@_label_doc
def specificity_score(y_true: Any, y_pred: Any, *, labels: Any = None, pos_label: Any = 1,
                      average: str | None = "binary", sample_weight: Any = None, zero_division: float = 0.0) -> Any:
    """Specificity (true negative rate) ``tn / (tn + fp)``; binary, it is the recall of the negative class.

    {options}
    >>> specificity_score([0, 0, 0, 1], [0, 0, 1, 1])
    0.6666666666666666
    """
    return _from_labels("specificity", y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
                        sample_weight=sample_weight, zero_division=zero_division)


@_label_doc
def npv_score(y_true: Any, y_pred: Any, *, labels: Any = None, pos_label: Any = 1,
              average: str | None = "binary", sample_weight: Any = None, zero_division: float = 0.0) -> Any:
    """Negative predictive value ``tn / (tn + fn)``; binary, it is the precision of the negative class.

    {options}
    >>> npv_score([0, 0, 1, 1], [0, 0, 0, 1])
    0.6666666666666666
    """
    return _from_labels("npv", y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
                        sample_weight=sample_weight, zero_division=zero_division)


@_label_doc
def f1_score(y_true: Any, y_pred: Any, *, labels: Any = None, pos_label: Any = 1,
             average: str | None = "binary", sample_weight: Any = None, zero_division: float = 0.0) -> Any:
    """F1, the harmonic mean of precision and recall: ``2tp / (2tp + fp + fn)``.

    {options}
    >>> f1_score([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return _from_labels("f1", y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
                        sample_weight=sample_weight, zero_division=zero_division)


@_label_doc
def false_positive_rate(y_true: Any, y_pred: Any, *, labels: Any = None, pos_label: Any = 1,
                        average: str | None = "binary", sample_weight: Any = None, zero_division: float = 0.0) -> Any:
    """False positive rate ``fp / (fp + tn)``, 1 - specificity (lower is better).

    A zero denominator gives ``zero_division``, as every ratio here (not ``1 - zero_division``).

    {options}
    >>> false_positive_rate([0, 0, 0, 1], [0, 0, 1, 1])
    0.3333333333333333
    """
    return _from_labels("fpr", y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
                        sample_weight=sample_weight, zero_division=zero_division)


@_label_doc
def false_negative_rate(y_true: Any, y_pred: Any, *, labels: Any = None, pos_label: Any = 1,
                        average: str | None = "binary", sample_weight: Any = None, zero_division: float = 0.0) -> Any:
    """False negative rate ``fn / (fn + tp)``, 1 - recall (lower is better).

    A zero denominator gives ``zero_division``, as every ratio here (not ``1 - zero_division``).

    {options}
    >>> false_negative_rate([0, 1, 1, 1], [0, 1, 0, 1])
    0.3333333333333333
    """
    return _from_labels("fnr", y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
                        sample_weight=sample_weight, zero_division=zero_division)


# ---------------------------------------------------------------------------------------------------------------------
# Binary scores: thresholds, histograms, ranking quality
# ---------------------------------------------------------------------------------------------------------------------


def _binary_truth(y_true: Any, pos_label: Any, scores: Any, score_name: str, *, ndim: int = 1, low=None, high=None):
    """(is_positive, scores) for a binary problem; y_true holds at most two labels, one of them pos_label if two."""
    yt = _check(y_true, "y_true", kind="label")
    s = _check(scores, score_name, ndim=ndim, length=yt.shape[0], like="y_true", low=low, high=high)
    present = np.unique(yt)
    if present.size > 2:
        raise _fail("y_true", "at most two classes (a binary target)", f"{present.size}: {_short(present.tolist())}")
    if present.size == 2 and _index(present, pos_label) < 0:
        raise _fail("pos_label", f"one of {present.tolist()}", _short(pos_label))
    pos = _index(present, pos_label)
    is_pos = _encode(yt, present) == pos if pos >= 0 else np.zeros(yt.shape[0], dtype=bool)
    return is_pos, s


def binary_confusion_at_threshold(
    y_true: Any, scores: Any, *, threshold: float = 0.5, pos_label: Any = 1, sample_weight: Any = None
) -> np.ndarray:
    """The 2 x 2 confusion matrix ``[[tn, fp], [fn, tp]]`` of predicting positive when ``score >= threshold``.

    Rows and columns are (negative, positive), so
    ``classification_from_confusion(cm)`` reads it with its defaults.

    >>> binary_confusion_at_threshold([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)
    array([[1, 1],
           [1, 1]])
    """
    is_pos, s = _binary_truth(y_true, pos_label, scores, "scores")
    w = _check_weights(sample_weight, s.shape[0], "y_true")
    t = _check_float(threshold, "threshold")
    pred = s >= t
    idx = is_pos.astype(np.int64) * 2 + pred.astype(np.int64)
    if w is None:
        return np.bincount(idx, minlength=4).reshape(2, 2).astype(np.int64)
    return np.bincount(idx, weights=w, minlength=4).reshape(2, 2)


def _bin_edges(bins: int) -> np.ndarray:
    return np.arange(bins + 1) / bins


def score_histogram(
    y_true: Any, scores: Any, *, bins: int = 100, pos_label: Any = 1, sample_weight: Any = None
) -> np.ndarray:
    """The 2 x bins histogram of positive-class scores in [0, 1] split by true class (row 0 negative, row 1 positive).

    Bin ``j`` holds ``j/bins <= score < (j+1)/bins``, a score of 1 the last bin;
    the edges are ``numpy.arange(bins + 1) / bins`` exactly, the ones
    :func:`confusion_from_histograms` compares thresholds with. Counts, or
    summed weights when ``sample_weight`` is given. This is the profile the
    ``*_from_histograms`` functions read.

    >>> score_histogram([0, 1, 1], [0.1, 0.55, 1.0], bins=4)
    array([[1, 0, 0, 0],
           [0, 0, 1, 1]])
    """
    b = _check_int(bins, "bins")
    is_pos, s = _binary_truth(y_true, pos_label, scores, "scores", low=0.0, high=1.0)
    w = _check_weights(sample_weight, s.shape[0], "y_true")
    j = np.minimum(np.searchsorted(_bin_edges(b), s, side="right") - 1, b - 1)
    idx = is_pos.astype(np.int64) * b + j
    if w is None:
        return np.bincount(idx, minlength=2 * b).reshape(2, b).astype(np.int64)
    return np.bincount(idx, weights=w, minlength=2 * b).reshape(2, b)


def _check_hist(score_hist: Any) -> np.ndarray:
    h = _check(score_hist, "score_hist", kind="weight", ndim=2)
    if h.shape[0] != 2 or h.shape[1] < 1:
        raise _fail("score_hist", "a 2 x bins array (row 0 negatives, row 1 positives)", f"shape {h.shape}")
    return h


def confusion_from_histograms(score_hist: Any, threshold: float = 0.5, bins: int | None = None) -> np.ndarray:
    """The 2 x 2 confusion matrix ``[[tn, fp], [fn, tp]]`` at ``threshold`` from a score histogram.

    A bin counts as predicted positive when its lower edge ``j/bins`` is
    ``>= threshold``: thresholds are resolved at the bin granularity 1/bins,
    i.e. rounded up to the next bin edge. At a bin edge the result equals
    :func:`binary_confusion_at_threshold` on the raw scores exactly (when the
    histogram comes from :func:`score_histogram`). ``bins``, if given, must be
    the histogram's number of columns.

    >>> confusion_from_histograms([[3, 1, 0, 0], [0, 1, 1, 2]], 0.5)
    array([[4, 0],
           [1, 3]])
    """
    h = _check_hist(score_hist)
    b = h.shape[1]
    if bins is not None and _check_int(bins, "bins") != b:
        raise _fail("bins", f"the number of columns of score_hist ({b})", _short(bins))
    t = _check_float(threshold, "threshold")
    positive = _bin_edges(b)[:-1] >= t
    cm = np.array([[h[0, ~positive].sum(), h[0, positive].sum()], [h[1, ~positive].sum(), h[1, positive].sum()]])
    return cm.astype(np.int64) if np.asarray(score_hist).dtype.kind in "biu" else cm


def _auc_from_counts(neg: np.ndarray, pos: np.ndarray, what: str) -> float:
    """Trapezoidal ROC AUC from counts per score group in ascending score order (ties count one half)."""
    p, n = pos.sum(), neg.sum()
    if p <= 0 or n <= 0:
        raise _fail(what, "both classes (ROC AUC is undefined with one)",
                    f"{'no positive' if p <= 0 else 'no negative'} rows")
    neg_below = np.cumsum(neg) - neg
    return float(np.sum(pos * (neg_below + 0.5 * neg)) / (p * n))


def _ap_from_counts(neg: np.ndarray, pos: np.ndarray, what: str) -> float:
    """Average precision (step integral of the PR curve) from counts per score group in ascending score order."""
    tps = np.cumsum(pos[::-1])
    fps = np.cumsum(neg[::-1])
    if tps.size == 0 or tps[-1] <= 0:
        raise _fail(what, "at least one positive row (average precision is undefined without)", "none")
    precision = _safe_div(tps, tps + fps, 0.0)
    recall = tps / tps[-1]
    return float(max(0.0, np.sum(np.diff(recall, prepend=0.0) * precision)))


def _ap_interpolated(neg: np.ndarray, pos: np.ndarray, what: str) -> float:
    """Average precision with each group's rows interleaved: TP and FP grow linearly through the group.

    Within a group of ``a`` positives and ``b`` negatives after ``tp0``/``fp0``
    above it, precision is ``(tp0 + a t) / (tp0 + fp0 + (a + b) t)`` for t in
    [0, 1] (Davis and Goadrich's PR interpolation, the analogue of the ROC
    trapezoid); its integral is closed-form.
    """
    a = np.asarray(pos[::-1], dtype=np.float64)
    b = np.asarray(neg[::-1], dtype=np.float64)
    total = a.sum()
    if total <= 0:
        raise _fail(what, "at least one positive row (average precision is undefined without)", "none")
    tp0 = np.cumsum(a) - a
    fp0 = np.cumsum(b) - b
    d = tp0 + fp0
    e = a + b
    mean_precision = np.zeros_like(a)
    first = (a > 0) & (d == 0)
    mean_precision[first] = a[first] / e[first]
    later = (a > 0) & (d > 0)
    a_, b_, e_, d_ = a[later], b[later], e[later], d[later]
    mean_precision[later] = a_ / e_ + (tp0[later] * b_ - a_ * fp0[later]) / e_**2 * np.log1p(e_ / d_)
    return float(min(1.0, max(0.0, np.sum(mean_precision * a) / total)))


def _grouped_counts(is_pos: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if w is not None:  # zero-weight rows do not exist for the curves (as scikit-learn)
        keep = w > 0
        is_pos, s, w = is_pos[keep], s[keep], w[keep]
    _, inv = np.unique(s, return_inverse=True)
    ww = np.ones(s.shape[0]) if w is None else w
    m = int(inv.max()) + 1 if inv.size else 0
    return (np.bincount(inv, weights=ww * ~is_pos, minlength=m), np.bincount(inv, weights=ww * is_pos, minlength=m))


def _ranking_score(binary: Callable, y_true, scores, *, labels, average, pos_label, sample_weight) -> Any:
    s = _check(scores, "scores", ndim=(1, 2))
    if s.ndim == 1:
        is_pos, s = _binary_truth(y_true, pos_label, s, "scores")
        w = _check_weights(sample_weight, s.shape[0], "y_true")
        return binary(*_grouped_counts(is_pos, s, w), "y_true")
    # multiclass, one-vs-rest
    yt = _check(y_true, "y_true", kind="label", length=s.shape[0], like="scores")
    w = _check_weights(sample_weight, yt.shape[0], "y_true")
    _check_option(average, "average", ("micro", "macro", "weighted", None))
    labs = np.unique(yt) if labels is None else np.sort(_check_labels(labels, yt))
    if labs.size != s.shape[1]:
        raise _fail("scores", f"{labs.size} columns (one per class: {_short(labs.tolist())})", f"{s.shape[1]}")
    t = _encode(yt, labs)
    if (t < 0).any():
        raise _fail("y_true", f"labels among {_short(labs.tolist())}", _short(yt[np.argmax(t < 0)]))
    onehot = np.zeros(s.shape, dtype=bool)
    onehot[np.arange(t.size), t] = True
    if average == "micro":
        ww = None if w is None else np.repeat(w, s.shape[1])
        return binary(*_grouped_counts(onehot.ravel(), s.ravel(), ww), "y_true")
    per_class = np.array([
        binary(*_grouped_counts(onehot[:, c], s[:, c], w), f"y_true (class {labs[c].tolist()!r} vs rest)")
        for c in range(labs.size)
    ])
    if average is None:
        return per_class
    if average == "weighted":
        support = onehot.sum(axis=0) if w is None else (onehot * w[:, None]).sum(axis=0)
        return float(np.average(per_class, weights=support))
    return float(np.mean(per_class))


def roc_auc_score(
    y_true: Any,
    scores: Any,
    *,
    sample_weight: Any = None,
    pos_label: Any = 1,
    average: str | None = "macro",
    labels: Any = None,
) -> float | np.ndarray:
    """Area under the ROC curve (trapezoidal, as scikit-learn): P(score of a positive > score of a negative).

    Binary: ``scores`` is 1-d, the score of ``pos_label``. Multiclass:
    ``scores`` is n x k, one column per class in the sorted order of
    ``labels`` (default the labels of ``y_true``), scored one-vs-rest and
    averaged by ``average`` ("macro", "weighted" by support, "micro" over the
    flattened one-vs-rest problem, or None for an array per class). Tied scores
    count one half; ``pos_label`` is for the binary case only. Raises
    :class:`MetricInputError` when a class has no positive or no negative row
    (the AUC is undefined).

    >>> roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    return _ranking_score(_auc_from_counts, y_true, scores, labels=labels, average=average, pos_label=pos_label,
                          sample_weight=sample_weight)


def pr_auc_score(
    y_true: Any,
    scores: Any,
    *,
    sample_weight: Any = None,
    pos_label: Any = 1,
    average: str | None = "macro",
    labels: Any = None,
) -> float | np.ndarray:
    """Area under the precision-recall curve as average precision (scikit-learn's ``average_precision_score``).

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in
    decreasing order (no interpolation). Binary and one-vs-rest multiclass
    inputs as :func:`roc_auc_score`. Raises :class:`MetricInputError` when a
    class has no positive row (scikit-learn returns 0 with a warning).

    >>> pr_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333333333333333
    """
    return _ranking_score(_ap_from_counts, y_true, scores, labels=labels, average=average, pos_label=pos_label,
                          sample_weight=sample_weight)


def roc_auc_from_histograms(score_hist: Any) -> float:
    """ROC AUC from a score histogram, the scores of one bin counted as tied (one half).

    Bin approximation: pairs of a positive and a negative in the same bin
    count 1/2 whatever their order, so the error against the exact AUC is at
    most ``sum_j P_j N_j / (2 P N)`` (P_j, N_j the bin's positives and
    negatives), usually far less; with 1,000 bins it is within 1e-3 of
    scikit-learn on 100,000 rows. Exact when each bin holds one distinct score.

    >>> roc_auc_from_histograms([[2, 1, 0, 0], [0, 1, 1, 0]])
    0.9166666666666666
    """
    h = _check_hist(score_hist)
    return _auc_from_counts(h[0], h[1], "score_hist")


def pr_auc_from_histograms(score_hist: Any, *, interpolation: str = "linear") -> float:
    """Average precision from a score histogram; the order of the rows inside a bin is unknown.

    ``interpolation="linear"`` (default) takes a bin's positives and negatives
    as interleaved: true and false positives grow linearly through the bin and
    precision is integrated along that path (Davis and Goadrich's PR
    interpolation, the analogue of the trapezoidal ROC's half-counted ties).
    On 100,000 rows with 1,000 bins (beta-distributed scores) it was within
    about 1e-5 of scikit-learn's ``average_precision_score`` at 30% positives
    and 2e-4 at 1% (the rarer the positives, the larger; the tests require
    1e-3). ``interpolation="step"`` treats each bin as one tied score, as
    scikit-learn treats ties: exact when each bin holds a single distinct
    score, but biased low when bins mix scores (by 2.5e-4 to 1e-3 in the same
    setting).

    >>> pr_auc_from_histograms([[2, 1, 0, 0], [0, 1, 1, 0]], interpolation="step")
    0.8333333333333333
    >>> round(pr_auc_from_histograms([[2, 1, 0, 0], [0, 1, 1, 0]]), 6)
    0.887327
    """
    h = _check_hist(score_hist)
    _check_option(interpolation, "interpolation", ("linear", "step"))
    if interpolation == "step":
        return _ap_from_counts(h[0], h[1], "score_hist")
    return _ap_interpolated(h[0], h[1], "score_hist")


# ---------------------------------------------------------------------------------------------------------------------
# Probabilistic quality: log loss, Brier score, calibration
# ---------------------------------------------------------------------------------------------------------------------


def log_loss(
    y_true: Any, proba: Any, *, labels: Any = None, sample_weight: Any = None, eps: float | str = "auto"
) -> float:
    """Mean negative log-likelihood (natural log) of the true class.

    ``proba`` is n x k (columns in the sorted order of ``labels``, default the
    labels of ``y_true``, as scikit-learn) or 1-d, the probability of the
    greater of two labels. Rows must sum to 1 within 1e-4; they are not
    renormalised. Probabilities are clipped to ``[eps, 1 - eps]``; ``eps="auto"``
    is the machine epsilon of ``proba``'s dtype, as scikit-learn >= 1.5.

    >>> round(log_loss(["ham", "spam"], [[0.9, 0.1], [0.2, 0.8]]), 6)
    0.164252
    """
    yt = _check(y_true, "y_true", kind="label")
    p = _check(proba, "proba", ndim=(1, 2), length=yt.shape[0], like="y_true", low=0.0, high=1.0)
    w = _check_weights(sample_weight, yt.shape[0], "y_true")
    labs = np.unique(yt) if labels is None else np.sort(_check_labels(labels, yt))
    if labs.size < 2:
        raise _fail("y_true", "at least two classes (or pass labels=)", f"only {_short(labs.tolist())}")
    t = _encode(yt, labs)
    if (t < 0).any():
        raise _fail("y_true", f"labels among {_short(labs.tolist())}", _short(yt[np.argmax(t < 0)]))
    if p.ndim == 1 or p.shape[1] == 1:
        p = p.reshape(-1)
        if labs.size != 2:
            raise _fail("proba", f"an n x {labs.size} matrix (one column per class)", "a 1-d array")
        p = np.column_stack([1 - p, p])
    elif p.shape[1] != labs.size:
        raise _fail("proba", f"{labs.size} columns (one per class: {_short(labs.tolist())})", f"{p.shape[1]}")
    else:
        sums = p.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1) > PROBABILITY_SUM_TOLERANCE)
        if bad.size:
            raise _fail("proba", "rows summing to 1", f"a row summing to {sums[bad[0]]:g} at row {bad[0]}")
    e = float(np.finfo(p.dtype).eps) if eps == "auto" else _check_float(eps, "eps", low=0.0, high=0.5)
    p = np.clip(p, e, 1 - e)
    loss = -np.log(p[np.arange(t.size), t])
    return float(np.average(loss, weights=w))


def brier_score_loss(y_true: Any, proba: Any, *, sample_weight: Any = None, pos_label: Any = 1) -> float:
    """Mean squared difference between the probability of ``pos_label`` and the outcome (binary; 0 is perfect).

    >>> brier_score_loss([0, 1, 1, 0], [0.25, 0.75, 1.0, 0.0])
    0.03125
    """
    is_pos, p = _binary_truth(y_true, pos_label, proba, "proba", low=0.0, high=1.0)
    w = _check_weights(sample_weight, p.shape[0], "y_true")
    return float(np.average((is_pos - p) ** 2, weights=w))


def _calibration_bins(y_true, scores, bins, strategy, pos_label, sample_weight):
    """(weight, summed score, summed positives) per bin, as scikit-learn's calibration_curve bins."""
    b = _check_int(bins, "bins")
    _check_option(strategy, "strategy", ("uniform", "quantile"))
    is_pos, s = _binary_truth(y_true, pos_label, scores, "scores", low=0.0, high=1.0)
    w = _check_weights(sample_weight, s.shape[0], "y_true")
    edges = np.linspace(0.0, 1.0, b + 1)
    if strategy == "quantile":
        edges = np.percentile(s, np.linspace(0, 1, b + 1) * 100)
    ids = np.searchsorted(edges[1:-1], s)
    ww = np.ones(s.shape[0]) if w is None else w
    total = np.bincount(ids, weights=ww, minlength=b)
    pred = np.bincount(ids, weights=ww * s, minlength=b)
    true = np.bincount(ids, weights=ww * is_pos, minlength=b)
    return total, pred, true


def calibration_curve(
    y_true: Any,
    scores: Any,
    *,
    bins: int = 10,
    strategy: str = "uniform",
    pos_label: Any = 1,
    sample_weight: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(fraction of positives, mean predicted probability) per non-empty bin, as scikit-learn's ``calibration_curve``.

    ``bins`` is scikit-learn's ``n_bins`` (default 10 here, 5 there);
    ``strategy`` "uniform" (equal-width bins over [0, 1]) or "quantile" (edges
    at the unweighted quantiles of ``scores``). Bins are ``(a, b]`` except the
    first (scikit-learn's ``searchsorted``); weights, when given, weigh rows.

    >>> calibration_curve([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=2)
    (array([0., 1.]), array([0.15, 0.8 ]))
    """
    total, pred, true = _calibration_bins(y_true, scores, bins, strategy, pos_label, sample_weight)
    nonzero = total > 0
    return true[nonzero] / total[nonzero], pred[nonzero] / total[nonzero]


def expected_calibration_error(
    y_true: Any,
    scores: Any,
    *,
    bins: int = 10,
    strategy: str = "uniform",
    pos_label: Any = 1,
    sample_weight: Any = None,
) -> float:
    """Expected calibration error: ``sum_b (n_b / n) |fraction of positives_b - mean score_b|`` (0 is perfect).

    Bins as :func:`calibration_curve`. Raises :class:`MetricInputError` when the
    total weight is zero.

    >>> expected_calibration_error([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=2)
    0.175
    """
    total, pred, true = _calibration_bins(y_true, scores, bins, strategy, pos_label, sample_weight)
    n = total.sum()
    if n <= 0:
        raise _fail("sample_weight", "a positive total weight", "0")
    return float(np.sum(np.abs(true - pred)) / n)


def ece_from_histograms(score_hist: Any, *, bins: int = 10) -> float:
    """Expected calibration error from a (fine) score histogram regrouped into ``bins`` equal-width bins.

    Fine bin ``j`` of F goes to the coarse bin holding its centre
    ``(j + 0.5)/F``, and its rows' mean score is approximated by that centre.
    When F is a multiple of ``bins`` the regrouping is exact and the result is
    within ``1/(2F)`` of :func:`expected_calibration_error` (``strategy="uniform"``),
    except for scores lying exactly on a coarse edge, which scikit-learn's
    ``(a, b]`` bins put one bin lower.

    >>> ece_from_histograms([[2, 0, 0, 0], [0, 0, 0, 2]], bins=2)
    0.125
    """
    h = _check_hist(score_hist)
    b = _check_int(bins, "bins")
    f = h.shape[1]
    centres = (np.arange(f) + 0.5) / f
    coarse = np.minimum((centres * b).astype(np.int64), b - 1)
    counts = h[0] + h[1]
    total = np.bincount(coarse, weights=counts, minlength=b)
    pred = np.bincount(coarse, weights=counts * centres, minlength=b)
    true = np.bincount(coarse, weights=h[1], minlength=b)
    n = total.sum()
    if n <= 0:
        raise _fail("score_hist", "at least one counted row", "an empty histogram")
    return float(np.sum(np.abs(true - pred)) / n)


# ---------------------------------------------------------------------------------------------------------------------
# Regression
# ---------------------------------------------------------------------------------------------------------------------

_SUM_KEYS = ("count", "sum_abs", "sum_sq", "sum_ape", "ape_count", "y_mean", "y_m2")


def regression_sums(y_true: Any, y_pred: Any, *, sample_weight: Any = None) -> dict[str, float]:
    """The sufficient statistics of the regression metrics, keyed as :func:`regression_from_sums`'s arguments.

    ``count`` = sum of weights (rows), ``sum_abs`` = sum |e|, ``sum_sq`` =
    sum e^2, ``sum_ape`` = sum |e| / max(|y|, eps) over ``ape_count`` rows (all
    of them), ``y_mean`` and ``y_m2`` = sum (y - y_mean)^2, all weighted, with
    e = y_true - y_pred. Windows merge with :func:`merge_regression_sums`.

    >>> regression_sums([1.0, 3.0], [2.0, 3.0])
    {'count': 2.0, 'sum_abs': 1.0, 'sum_sq': 1.0, 'sum_ape': 1.0, 'ape_count': 2.0, 'y_mean': 2.0, 'y_m2': 2.0}
    """
    yt = _check(y_true, "y_true")
    yp = _check(y_pred, "y_pred", length=yt.shape[0], like="y_true")
    w = _check_weights(sample_weight, yt.shape[0], "y_true")
    yt = yt.astype(np.float64, copy=False)
    yp = yp.astype(np.float64, copy=False)
    ww = np.ones(yt.shape[0]) if w is None else w
    err = np.abs(yp - yt)
    count = float(ww.sum())
    y_mean = float(np.sum(ww * yt) / count) if count > 0 else 0.0
    return {
        "count": count,
        "sum_abs": float(np.sum(ww * err)),
        "sum_sq": float(np.sum(ww * err**2)),
        "sum_ape": float(np.sum(ww * (err / np.maximum(np.abs(yt), MAPE_EPSILON)))),
        "ape_count": count,
        "y_mean": y_mean,
        "y_m2": float(np.sum(ww * (yt - y_mean) ** 2)),
    }


def merge_regression_sums(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    """Merge the :func:`regression_sums` of two windows (sums add; mean and M2 by Chan's parallel formula).

    >>> merged = merge_regression_sums(regression_sums([1.0], [2.0]), regression_sums([3.0], [3.0]))
    >>> merged == regression_sums([1.0, 3.0], [2.0, 3.0])
    True
    """
    for name, stats in (("a", a), ("b", b)):
        missing = [k for k in _SUM_KEYS if k not in stats]
        if missing:
            raise _fail(name, f"the keys {', '.join(_SUM_KEYS)}", f"no {', '.join(missing)}")
    out = {k: float(a[k]) + float(b[k]) for k in ("count", "sum_abs", "sum_sq", "sum_ape", "ape_count")}
    na, nb, n = float(a["count"]), float(b["count"]), out["count"]
    delta = float(b["y_mean"]) - float(a["y_mean"])
    if n > 0:
        out["y_mean"] = float(a["y_mean"]) + delta * nb / n
        out["y_m2"] = float(a["y_m2"]) + float(b["y_m2"]) + delta**2 * na * nb / n
    else:
        out["y_mean"], out["y_m2"] = 0.0, 0.0
    return {k: out[k] for k in _SUM_KEYS}


def regression_from_sums(
    count: float,
    sum_abs: float,
    sum_sq: float,
    sum_ape: float,
    ape_count: float,
    y_mean: float,
    y_m2: float,
    *,
    zero_division: float = 0.0,
) -> dict[str, float]:
    """MAE, RMSE, MAPE and R^2 from sufficient statistics (see :func:`regression_sums`).

    ``mae = sum_abs/count``, ``rmse = sqrt(sum_sq/count)``,
    ``mape = sum_ape/ape_count``, ``r2 = 1 - sum_sq/y_m2`` (1.0 if both are 0,
    0.0 if only ``y_m2`` is: scikit-learn's ``force_finite``). ``y_mean`` is
    only needed to merge windows. A zero count gives ``zero_division``.
    Equal to the raw-array functions exactly.

    >>> regression_from_sums(**regression_sums([1.0, 3.0], [2.0, 3.0]))
    {'mae': 0.5, 'rmse': 0.7071067811865476, 'mape': 0.5, 'r2': 0.5}
    """
    values = {}
    for name, v in zip(_SUM_KEYS, (count, sum_abs, sum_sq, sum_ape, ape_count, y_mean, y_m2), strict=True):
        values[name] = _check_float(v, name, low=-math.inf if name == "y_mean" else 0.0)
    zd = _check_zero_division(zero_division)
    n = values["count"]
    mae = values["sum_abs"] / n if n > 0 else zd
    rmse = math.sqrt(values["sum_sq"] / n) if n > 0 else zd
    mape = values["sum_ape"] / values["ape_count"] if values["ape_count"] > 0 else zd
    r2 = 1.0 if values["sum_sq"] == 0 else 0.0
    if values["y_m2"] > 0:
        r2 = 1.0 - values["sum_sq"] / values["y_m2"]
    return {"mae": float(mae), "rmse": float(rmse), "mape": float(mape), "r2": float(r2)}


def mean_absolute_error(y_true: Any, y_pred: Any, *, sample_weight: Any = None) -> float:
    """Mean absolute error ``mean |y_true - y_pred|``.

    >>> mean_absolute_error([1.0, 2.0, 3.0], [1.5, 2.0, 2.0])
    0.5
    """
    return regression_from_sums(**regression_sums(y_true, y_pred, sample_weight=sample_weight))["mae"]


def root_mean_squared_error(y_true: Any, y_pred: Any, *, sample_weight: Any = None) -> float:
    """Root mean squared error ``sqrt(mean (y_true - y_pred)^2)``.

    >>> root_mean_squared_error([0.0, 0.0], [3.0, 4.0])
    3.5355339059327378
    """
    return regression_from_sums(**regression_sums(y_true, y_pred, sample_weight=sample_weight))["rmse"]


def mean_absolute_percentage_error(y_true: Any, y_pred: Any, *, sample_weight: Any = None) -> float:
    """Mean absolute percentage error ``mean |y_true - y_pred| / max(|y_true|, eps)``, as a fraction (not %).

    ``eps`` is ``numpy.finfo(float64).eps`` (scikit-learn's), so a zero
    ``y_true`` with a wrong prediction gives a huge value rather than an error.

    >>> mean_absolute_percentage_error([100.0, 200.0], [110.0, 180.0])
    0.1
    """
    return regression_from_sums(**regression_sums(y_true, y_pred, sample_weight=sample_weight))["mape"]


def r2_score(y_true: Any, y_pred: Any, *, sample_weight: Any = None) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (1 is perfect, can be negative).

    A constant ``y_true`` gives 1.0 for a perfect prediction and 0.0 otherwise
    (scikit-learn's ``force_finite``; with a single row scikit-learn returns NaN).

    >>> r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    0.5
    """
    return regression_from_sums(**regression_sums(y_true, y_pred, sample_weight=sample_weight))["r2"]


def residual_quantiles(
    y_true: Any,
    y_pred: Any,
    *,
    qs: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
    sample_weight: Any = None,
) -> dict[float, float]:
    """Quantiles of the residuals ``y_true - y_pred``, as ``{q: value}``.

    Without weights: numpy's default (linear) quantiles. With weights: the
    inverted-CDF quantile (the smallest residual whose cumulative weight share
    reaches q), which equals numpy's ``method="inverted_cdf"`` on rows repeated
    by integer weights.

    >>> residual_quantiles([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], qs=(0.0, 0.5, 1.0))
    {0.0: 0.0, 0.5: 1.0, 1.0: 2.0}
    """
    yt = _check(y_true, "y_true")
    yp = _check(y_pred, "y_pred", length=yt.shape[0], like="y_true")
    q = np.atleast_1d(_check(qs, "qs", ndim=(0, 1), low=0.0, high=1.0))
    w = _check_weights(sample_weight, yt.shape[0], "y_true")
    res = yt.astype(np.float64) - yp.astype(np.float64)
    if w is None:
        values = np.quantile(res, q)
    else:
        keep = w > 0
        if not keep.any():
            raise _fail("sample_weight", "a positive total weight", "0")
        order = np.argsort(res[keep], kind="stable")
        r, cw = res[keep][order], np.cumsum(w[keep][order])
        idx = np.minimum(np.searchsorted(cw, q * cw[-1], side="left"), r.size - 1)
        values = r[idx]
    return {float(k): float(v) for k, v in zip(q, values, strict=True)}


# ---------------------------------------------------------------------------------------------------------------------
# Ranking and recommendation
# ---------------------------------------------------------------------------------------------------------------------


def _items(value: Any, name: str, i: int) -> list:
    if value is None:
        return []
    if isinstance(value, float) and math.isnan(value):
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise _fail(f"{name}[{i}]", "a list of items", f"{type(value).__name__} {_short(value)}")
    items = list(value)
    for item in items:
        try:
            hash(item)
        except TypeError:
            raise _fail(f"{name}[{i}]", "hashable items", f"{type(item).__name__}") from None
    return items


def _ranking(per_event: Callable[[list, set, int], float], recommended, relevant, k, sample_weight, return_count,
             zero_division):
    kk = _check_int(k, "k")
    zd = _check_zero_division(zero_division)
    if isinstance(recommended, str | bytes) or not isinstance(recommended, Iterable):
        raise _fail("recommended", "a sequence of lists (one per event)", type(recommended).__name__)
    if isinstance(relevant, str | bytes) or not isinstance(relevant, Iterable):
        raise _fail("relevant", "a sequence of lists (one per event)", type(relevant).__name__)
    recs, rels = list(recommended), list(relevant)
    if len(rels) != len(recs):
        raise _fail("relevant", f"{len(recs)} events (as recommended)", f"{len(rels)}")
    w = _check_weights(sample_weight, len(recs), "recommended")
    total = weight = 0.0
    used = 0
    for i, (rec, rel) in enumerate(zip(recs, rels, strict=True)):
        rec_items = _items(rec, "recommended", i)
        rel_set = set(_items(rel, "relevant", i))
        if not rel_set:
            continue
        wi = 1.0 if w is None else float(w[i])
        used += 1
        weight += wi
        total += wi * per_event(rec_items, rel_set, kk)
    value = total / weight if weight > 0 else zd
    return (float(value), used) if return_count else float(value)


def _hits(rec: list, rel: set, k: int) -> list[bool]:
    """Whether each of the first k recommendations is relevant; a repeated item counts once (its first time)."""
    seen: set = set()
    hits = []
    for item in rec[:k]:
        hits.append(item in rel and item not in seen)
        seen.add(item)
    return hits


def _precision_event(rec, rel, k):
    return sum(_hits(rec, rel, k)) / k


def _recall_event(rec, rel, k):
    return sum(_hits(rec, rel, k)) / len(rel)


def _hit_event(rec, rel, k):
    return 1.0 if any(_hits(rec, rel, k)) else 0.0


def _ndcg_event(rec, rel, k):
    dcg = sum(1.0 / math.log2(i + 2) for i, h in enumerate(_hits(rec, rel, k)) if h)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), k)))
    return dcg / ideal


def _ap_event(rec, rel, k):
    found = 0
    total = 0.0
    for i, h in enumerate(_hits(rec, rel, k)):
        if h:
            found += 1
            total += found / (i + 1)
    return total / min(len(rel), k)


_RANKING_DOC = """
    ``recommended`` and ``relevant`` are sequences with one entry per event:
    the recommended items in rank order, and the items acted upon (any
    collection; None counts as empty). Returns the mean over events
    (weighted by ``sample_weight``, one weight per event). Events with no
    relevant item are skipped; with ``return_count=True`` the result is
    ``(value, events used)``, and windows merge as the count-weighted mean of
    their values. No event used gives ``zero_division`` (0.0). An item repeated
    in a list counts once, at its first rank.
"""


def _ranking_doc(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn.__doc__ = (fn.__doc__ or "").replace("    {ranking}\n", _RANKING_DOC.lstrip("\n") + "\n")
    return fn


@_ranking_doc
def precision_at_k(recommended: Any, relevant: Any, *, k: int, sample_weight: Any = None, return_count: bool = False,
                   zero_division: float = 0.0) -> float | tuple[float, int]:
    """Precision at k: relevant items among the first k recommended, divided by k.

    {ranking}
    >>> precision_at_k([["a", "b", "c"], ["x", "y"]], [{"a", "c"}, {"z"}], k=2)
    0.25
    """
    return _ranking(_precision_event, recommended, relevant, k, sample_weight, return_count, zero_division)


@_ranking_doc
def recall_at_k(recommended: Any, relevant: Any, *, k: int, sample_weight: Any = None, return_count: bool = False,
                zero_division: float = 0.0) -> float | tuple[float, int]:
    """Recall at k: relevant items among the first k recommended, divided by the number of relevant items.

    {ranking}
    >>> recall_at_k([["a", "b", "c"], ["x", "y"]], [{"a", "c"}, {"z"}], k=2, return_count=True)
    (0.25, 2)
    """
    return _ranking(_recall_event, recommended, relevant, k, sample_weight, return_count, zero_division)


@_ranking_doc
def hit_rate_at_k(recommended: Any, relevant: Any, *, k: int, sample_weight: Any = None, return_count: bool = False,
                  zero_division: float = 0.0) -> float | tuple[float, int]:
    """Hit rate at k: share of events with at least one relevant item among the first k recommended.

    {ranking}
    >>> hit_rate_at_k([["a", "b"], ["x", "y"], ["q"]], [{"b"}, {"z"}, []], k=2)
    0.5
    """
    return _ranking(_hit_event, recommended, relevant, k, sample_weight, return_count, zero_division)


@_ranking_doc
def ndcg_at_k(recommended: Any, relevant: Any, *, k: int, sample_weight: Any = None, return_count: bool = False,
              zero_division: float = 0.0) -> float | tuple[float, int]:
    """Normalised discounted cumulative gain at k with binary relevance.

    ``DCG = sum_(i<k) rel_i / log2(i + 2)`` (rank i from 0), divided by the
    ideal DCG of ``min(|relevant|, k)`` relevant items at the top.

    {ranking}
    >>> round(ndcg_at_k([["x", "a"]], [{"a"}], k=2), 6)
    0.63093
    """
    return _ranking(_ndcg_event, recommended, relevant, k, sample_weight, return_count, zero_division)


@_ranking_doc
def map_at_k(recommended: Any, relevant: Any, *, k: int, sample_weight: Any = None, return_count: bool = False,
             zero_division: float = 0.0) -> float | tuple[float, int]:
    """Mean average precision at k.

    Per event ``AP@k = sum_(i<k) P@(i+1) * rel_i / min(|relevant|, k)``, the
    common definition (e.g. ``ml_metrics.apk``).

    {ranking}
    >>> map_at_k([["a", "x", "b"]], [{"a", "b"}], k=3)
    0.8333333333333333
    """
    return _ranking(_ap_event, recommended, relevant, k, sample_weight, return_count, zero_division)


# ---------------------------------------------------------------------------------------------------------------------
# Custom business metrics
# ---------------------------------------------------------------------------------------------------------------------


class CustomMetric:
    """A user-defined ratio of sums over event columns, e.g. purchases per recommendation.

    ``numerator`` and ``denominator`` are column names or callables
    ``frame -> array`` (one value per row); ``denominator=None`` counts rows,
    making the metric a mean. The value is ``sum(numerator) / sum(denominator)``
    (``zero_division`` when the denominator sums to 0). Windows merge through
    :meth:`sufficient_stats`: add the ``(num_sum, den_sum)`` pairs and call
    :meth:`from_stats` -- a ratio of sums, not a mean of the windows' ratios.
    Non-finite values raise :class:`MetricInputError`: filter the frame first.

    >>> import pandas as pd
    >>> m = CustomMetric("purchases_per_rec", "purchases", "recommendations")
    >>> m.evaluate(pd.DataFrame({"purchases": [1, 0, 2], "recommendations": [5, 5, 10]}))
    0.15
    """

    def __init__(
        self,
        name: str,
        numerator: str | Callable[[Any], Any],
        denominator: str | Callable[[Any], Any] | None = None,
        *,
        higher_is_better: bool = True,
        zero_division: float = 0.0,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise _fail("name", "a non-empty string", _short(name))
        for arg, spec in (("numerator", numerator), ("denominator", denominator)):
            if not (isinstance(spec, str) or callable(spec) or (spec is None and arg == "denominator")):
                raise _fail(arg, "a column name or a callable frame -> array", _short(spec))
        self.name = name
        self.numerator = numerator
        self.denominator = denominator
        self.higher_is_better = bool(higher_is_better)
        self.zero_division = _check_zero_division(zero_division)

    def __repr__(self) -> str:
        return (f"CustomMetric({self.name!r}, {self.numerator!r}, {self.denominator!r}, "
                f"higher_is_better={self.higher_is_better})")

    def _values(self, frame: Any, spec: Any, role: str) -> np.ndarray:
        where = f"{self.name}.{role}"
        if callable(spec):
            values = spec(frame)
        else:
            try:
                values = frame[spec]
            except (KeyError, IndexError, TypeError):
                columns = list(getattr(frame, "columns", getattr(frame, "keys", list)()))
                raise _fail(where, f"a column of the frame ({_short(columns)})", _short(spec)) from None
        return _check(values, where, ndim=(0, 1), min_rows=0)

    def sufficient_stats(self, frame: Any) -> tuple[float, float]:
        """``(sum of numerator, sum of denominator)`` over the frame's rows.

        >>> CustomMetric("ctr", "clicks").sufficient_stats({"clicks": [1, 0, 0, 1]})
        (2.0, 4.0)
        """
        num = self._values(frame, self.numerator, "numerator")
        if self.denominator is None:
            den_sum = float(num.shape[0]) if num.ndim == 1 else float(len(frame))
        else:
            den_sum = float(np.sum(self._values(frame, self.denominator, "denominator")))
        return float(np.sum(num)), den_sum

    def from_stats(self, num_sum: float, den_sum: float) -> float:
        """The metric from (summed) sufficient statistics.

        >>> m = CustomMetric("ctr", "clicks")
        >>> a, b = m.sufficient_stats({"clicks": [1, 0]}), m.sufficient_stats({"clicks": [1, 1, 1]})
        >>> m.from_stats(a[0] + b[0], a[1] + b[1])
        0.8
        """
        n = _check_float(num_sum, "num_sum")
        d = _check_float(den_sum, "den_sum")
        return float(n / d) if d != 0 else self.zero_division

    def evaluate(self, frame: Any) -> float:
        """The metric on one frame.

        >>> CustomMetric("spend_per_user", lambda f: f["spend"], lambda f: f["users"]).evaluate(
        ...     {"spend": [10.0, 30.0], "users": [1, 3]})
        10.0
        """
        return self.from_stats(*self.sufficient_stats(frame))


# ---------------------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricInfo:
    """What generic code needs to know about a metric.

    ``tasks``: among "binary", "multiclass", "regression", "ranking".
    ``needs``: what goes in the second argument -- "labels" (predicted labels),
    "scores" (score of the positive class, or n x k scores), "proba"
    (probabilities in [0, 1]: of the positive class, or n x k), "values"
    (regression predictions) or "rankings" (then the function is
    ``f(recommended, relevant, *, k)``). ``bounds``: the range of values.
    ``required``: keyword options that must be passed (``k``); ``options``: the
    keyword options the function accepts (``average``, ``pos_label``, ...).

    >>> METRICS["f1"].higher_is_better, METRICS["f1"].needs
    (True, 'labels')
    """

    name: str
    function: Callable[..., Any]
    tasks: tuple[str, ...]
    higher_is_better: bool
    needs: str
    bounds: tuple[float, float] = (0.0, 1.0)
    required: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def _info(name, function, tasks, higher_is_better, needs, bounds=(0.0, 1.0), required=()) -> tuple[str, MetricInfo]:
    options = tuple(p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY)
    return name, MetricInfo(name, function, tuple(tasks), higher_is_better, needs, bounds, tuple(required), options)


_CLASSES = ("binary", "multiclass")

#: Every metric of this module by name (the keys of :func:`classification_from_confusion` and
#: :func:`regression_from_sums` where they overlap).
METRICS: dict[str, MetricInfo] = dict([
    _info("accuracy", accuracy_score, _CLASSES, True, "labels"),
    _info("precision", precision_score, _CLASSES, True, "labels"),
    _info("recall", recall_score, _CLASSES, True, "labels"),
    _info("specificity", specificity_score, _CLASSES, True, "labels"),
    _info("npv", npv_score, _CLASSES, True, "labels"),
    _info("f1", f1_score, _CLASSES, True, "labels"),
    _info("fpr", false_positive_rate, _CLASSES, False, "labels"),
    _info("fnr", false_negative_rate, _CLASSES, False, "labels"),
    _info("roc_auc", roc_auc_score, _CLASSES, True, "scores"),
    _info("pr_auc", pr_auc_score, _CLASSES, True, "scores"),
    _info("log_loss", log_loss, _CLASSES, False, "proba", (0.0, math.inf)),
    _info("brier", brier_score_loss, ("binary",), False, "proba"),
    _info("ece", expected_calibration_error, ("binary",), False, "proba"),
    _info("mae", mean_absolute_error, ("regression",), False, "values", (0.0, math.inf)),
    _info("rmse", root_mean_squared_error, ("regression",), False, "values", (0.0, math.inf)),
    _info("mape", mean_absolute_percentage_error, ("regression",), False, "values", (0.0, math.inf)),
    _info("r2", r2_score, ("regression",), True, "values", (-math.inf, 1.0)),
    _info("precision_at_k", precision_at_k, ("ranking",), True, "rankings", required=("k",)),
    _info("recall_at_k", recall_at_k, ("ranking",), True, "rankings", required=("k",)),
    _info("ndcg_at_k", ndcg_at_k, ("ranking",), True, "rankings", required=("k",)),
    _info("map_at_k", map_at_k, ("ranking",), True, "rankings", required=("k",)),
    _info("hit_rate_at_k", hit_rate_at_k, ("ranking",), True, "rankings", required=("k",)),
])
