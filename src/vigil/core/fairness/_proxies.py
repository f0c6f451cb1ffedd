"""Proxies: features that carry a protected attribute, and how much the model leans on them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.fairness._engine import group_auc
from vigil.core.fairness._inputs import column, encode, fail
from vigil.core.fairness._report import _float_option, _int_option

METHODS = ("mutual_information", "auc")
#: Default association thresholds: a normalised mutual information (share of the attribute's entropy), an AUC.
THRESHOLDS = {"mutual_information": 0.1, "auc": 0.7}
#: Rows used for the single-feature classifiers (a uniform sample beyond).
AUC_MAX_ROWS = 200_000


def _discretise(values: pd.Series, name: str, bins: int) -> tuple[np.ndarray, str]:
    """Integer codes of a feature: its categories or a number's quantile bins (missing values: a code of their own)."""
    dtype = values.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if numeric:
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(x)
        if np.unique(x[finite]).shape[0] > bins:
            edges = np.unique(np.quantile(x[finite], np.linspace(0, 1, bins + 1)[1:-1]))
            codes = np.searchsorted(edges, x, side="right")
            return np.where(finite, codes, edges.shape[0] + 1), "numeric"
    return encode(values, name, len(values)).codes.astype(np.int64), "numeric" if numeric else "categorical"


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _cross_fitted_auc(codes: np.ndarray, target: np.ndarray, k: int, folds: np.ndarray) -> float:
    """Macro one-vs-rest AUC of P(attribute = c | feature code), each half scored with rates from the other half."""
    n_codes = int(codes.max()) + 1
    scores = np.zeros((codes.shape[0], k))
    prior = np.bincount(target, minlength=k) / target.shape[0]
    for f in (0, 1):
        train = folds != f
        table = np.bincount(codes[train] * k + target[train], minlength=n_codes * k).reshape(n_codes, k)
        rates = (table + prior) / (table.sum(axis=1, keepdims=True) + 1.0)  # one pseudo-row at the prior
        scores[~train] = rates[codes[~train]]
    aucs = []
    one_group = np.zeros(target.shape[0], dtype=np.int64)
    for c in range(k):
        positive = target == c
        if 0 < positive.sum() < target.shape[0]:  # scikit-learn's roc_auc_score, without its input checks
            aucs.append(float(group_auc(one_group, 1, positive, scores[:, c],
                                        np.argsort(scores[:, c], kind="stable"))[0]))
        if k == 2:  # one class vs the other: the same AUC either way
            break
    return float(np.mean(aucs)) if aucs else float("nan")


def proxies(
    features: pd.DataFrame,
    protected: Any,
    *,
    attributions: Any = None,
    method: str = "mutual_information",
    threshold: float | None = None,
    min_attribution_share: float = 0.05,
    bins: int = 10,
    random_state: int = 0,
) -> pd.DataFrame:
    """How strongly each feature stands in for a protected attribute, and how much the model uses it.

    For every column of ``features`` (numbers cut into ``bins`` quantile bins,
    categories as they are, missing values as a level):

    - ``mutual_information``: the mutual information with the attribute over
      the attribute's entropy (the uncertainty coefficient: the share of what
      there is to know about the attribute that the feature tells; 0 for
      independence, 1 when the feature determines it), from scikit-learn's
      ``mutual_info_score``;
    - ``auc``: the ROC AUC of predicting the attribute from that feature alone
      (the rate of each attribute value per feature level, fit on one half of
      the rows and scored on the other, both ways; one-vs-rest macro average
      for an attribute of more than two values).

    ``association`` is the ``method`` column. With ``attributions`` (a frame of
    per-row attributions, one column per feature, or a mapping feature ->
    importance), ``attribution_share`` is the feature's mean absolute
    attribution over the total. ``flag``: ``"proxy"`` when the association
    reaches ``threshold`` (default 0.1 for mutual information, 0.7 for AUC) and,
    if attributions are given, the attribution share reaches
    ``min_attribution_share``; ``"associated"`` when only the association does;
    else ``"ok"``. Rows are sorted by association, strongest first.

    >>> rng = np.random.default_rng(0)
    >>> sex = rng.choice(["F", "M"], 2_000)
    >>> role = np.where(rng.random(2_000) < 0.9, np.where(sex == "F", "wife", "husband"), "other")
    >>> frame = pd.DataFrame({"role": role, "noise": rng.normal(size=2_000)})
    >>> proxies(frame, sex)[["feature", "flag"]].to_dict("list")
    {'feature': ['role', 'noise'], 'flag': ['proxy', 'ok']}
    """
    if not isinstance(features, pd.DataFrame):
        raise fail("features", "a DataFrame", type(features).__name__)
    if method not in METHODS:
        raise fail("method", f"one of {METHODS}", repr(method))
    threshold = THRESHOLDS[method] if threshold is None else _float_option(threshold, "threshold", 0.0, 1.0)
    share_floor = _float_option(min_attribution_share, "min_attribution_share", 0.0, 1.0)
    bins = _int_option(bins, "bins", 2)
    n = len(features)
    if n == 0:
        raise fail("features", "at least one row", "0")
    name = getattr(protected, "name", None)
    attr = encode(protected, "protected", n) if not isinstance(protected, pd.DataFrame) else None
    if attr is None:
        raise fail("protected", "one attribute (an array or Series)", f"a frame of {protected.shape[1]} columns")
    target = attr.codes.astype(np.int64)
    k = len(attr.labels)
    present = np.bincount(target, minlength=k)
    if np.count_nonzero(present) < 2:
        raise fail("protected", "at least two groups", f"{attr.labels}")
    h_attr = _entropy(present)
    rng = np.random.default_rng(random_state)
    sample = np.sort(rng.choice(n, AUC_MAX_ROWS, replace=False)) if n > AUC_MAX_ROWS else np.arange(n)
    folds = rng.integers(0, 2, sample.shape[0])
    importance = _mean_abs(attributions, features.columns)
    from sklearn.metrics import mutual_info_score  # scikit-learn is imported when proxies are asked for
    rows = []
    for col in features.columns:
        if name is not None and col == name:  # the attribute itself is not its own proxy
            continue
        codes, kind = _discretise(features[col], f"features[{str(col)!r}]", bins)
        table = np.bincount(codes * k + target, minlength=(int(codes.max()) + 1) * k).reshape(-1, k)
        mi = mutual_info_score(None, None, contingency=table)
        rows.append({
            "feature": str(col), "kind": kind, "levels": int(np.count_nonzero(table.sum(axis=1))),
            "mutual_information": float(mi / h_attr) if h_attr > 0 else 0.0,
            "auc": _cross_fitted_auc(codes[sample], target[sample], k, folds),
        })
    out = pd.DataFrame(rows, columns=["feature", "kind", "levels", "mutual_information", "auc"])
    out.insert(0, "attribute", str(name) if name is not None else "protected")
    out["association"] = out[method]
    associated = out["association"].to_numpy() >= threshold
    if importance is None:
        out["mean_abs_attribution"] = np.nan
        out["attribution_share"] = np.nan
        flag = np.where(associated, "proxy", "ok")
    else:
        values = np.array([importance.get(f, np.nan) for f in out["feature"]], dtype=np.float64)
        total = np.nansum(values)
        out["mean_abs_attribution"] = values
        out["attribution_share"] = values / total if total > 0 else np.nan
        used = out["attribution_share"].to_numpy() >= share_floor
        flag = np.where(associated & used, "proxy", np.where(associated, "associated", "ok"))
    out["flag"] = flag.astype(object)
    return out.sort_values("association", ascending=False, kind="stable").reset_index(drop=True)


def _mean_abs(attributions: Any, columns: pd.Index) -> dict[str, float] | None:
    """{feature: mean |attribution|} from a per-row frame, or {feature: |importance|} from a mapping/Series."""
    if attributions is None:
        return None
    if isinstance(attributions, pd.DataFrame):
        return {str(c): float(np.nanmean(np.abs(column(attributions[c], f"attributions[{str(c)!r}]").astype(float))))
                for c in attributions.columns}
    if isinstance(attributions, pd.Series):
        attributions = attributions.to_dict()
    if isinstance(attributions, Mapping):
        return {str(k): abs(float(v)) for k, v in attributions.items()}
    raise fail("attributions", "a DataFrame of per-row attributions or a mapping feature -> importance",
               type(attributions).__name__)
