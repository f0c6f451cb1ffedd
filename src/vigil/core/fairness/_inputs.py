"""Input checks and encodings shared by the fairness functions: labels, scores and sensitive features.

The fast paths matter: a pandas categorical is used through its integer codes
(no string is ever factorised again), 0/1 integer and boolean labels go
through without a copy, and such labels are checked with two reductions (min and max).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.metrics.drift import MetricInputError

#: Label of the group holding the rows whose sensitive value is missing (None, NaN, NA).
MISSING = "(missing)"
#: Separator of the attributes' names, and of their values, in an intersection ("race & sex", "Black & Female").
SEP = " & "
#: Name given to a sensitive feature that comes without one (a bare array).
DEFAULT_NAME = "sensitive_feature"

TASKS = ("auto", "classification", "regression")


def fail(name: str, expected: str, got: str) -> MetricInputError:
    return MetricInputError(f"{name}: expected {expected}, got {got}")


def described(name: str, value: Any) -> str:
    """``name`` with the column name of a named Series: ``y_true ('two_year_recid')``."""
    label = getattr(value, "name", None)
    return f"{name} ({label!r})" if isinstance(label, str) and label else name


def show(values: Any, limit: int = 6) -> str:
    """A short list of values for a message: ``[0, 1, 2]`` or ``[0.1, 0.2, ... (1,000 distinct)]``."""
    items = [v.item() if isinstance(v, np.generic) else v for v in list(values)]
    if len(items) <= limit:
        return repr(items)
    return "[" + ", ".join(repr(v) for v in items[:limit]) + f", ... ({len(items):,} distinct)]"


def column(value: Any, name: str, n: int | None = None, like: str = "y_true") -> np.ndarray:
    """A 1-d NumPy view of an array-like (Series, list, array), its length checked against ``n``."""
    if value is None:
        raise fail(name, "an array", "None")
    if isinstance(value, str | bytes):
        raise fail(name, "an array", f"the string {value!r}")
    if isinstance(value, pd.DataFrame):
        if value.shape[1] != 1:
            raise fail(name, "one column", f"a frame of {value.shape[1]} columns")
        value = value.iloc[:, 0]
    if isinstance(value, pd.Series | pd.Index):
        if isinstance(value.dtype, pd.CategoricalDtype):
            value = value.astype(value.dtype.categories.dtype)
        arr = value.to_numpy()
        if arr.dtype.kind == "O" and value.hasnans and pd.api.types.is_numeric_dtype(value.dtype):
            arr = value.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            arr = np.asarray(value)
        except Exception as err:  # ragged lists
            raise fail(name, "an array", f"{type(value).__name__} ({err})") from None
    if arr.ndim != 1:
        raise fail(name, "a 1-d array", f"an array of shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise fail(name, f"{n:,} rows (as {like})", f"{arr.shape[0]:,}")
    return arr


def _distinct(arr: np.ndarray, name: str) -> np.ndarray:
    """Distinct values of a label array; missing values refused (naming the first row)."""
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise fail(name, "labels without missing or infinite values", f"{arr[bad[0]]} at row {bad[0]:,}")
    if arr.dtype.kind == "O":
        missing = pd.isna(arr)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise fail(name, "labels without missing values", f"{arr[row]!r} at row {row:,}")
        try:
            return np.asarray(sorted(set(arr.tolist())), dtype=object)
        except TypeError:
            return np.asarray(list(dict.fromkeys(arr.tolist())), dtype=object)
    return np.unique(arr)


def _is_pos(value: Any, pos_label: Any) -> bool:
    if isinstance(value, str) != isinstance(pos_label, str):
        return False
    return bool(value == pos_label)


def binary(value: Any, name: str, pos_label: Any, n: int | None = None, hint: str = "",
           like: str = "y_true") -> np.ndarray:
    """0/1 positive indicator of a binary label array (no copy for 0/1 integers and booleans).

    Raises naming the argument and showing the offending values when there
    are more than two, or when two values do not include ``pos_label``.
    """
    arr = column(value, name, n, like)
    label = described(name, value)
    if arr.shape[0] == 0:
        return arr.astype(np.uint8)
    kind = arr.dtype.kind
    one = not isinstance(pos_label, str | bytes) and pos_label == 1
    if kind == "b":
        if one:
            return arr.view(np.uint8)
        if not isinstance(pos_label, str | bytes) and pos_label == 0:
            return (~arr).view(np.uint8)
    elif kind in "iu" and one:
        if arr.min() >= 0 and arr.max() <= 1:  # two SIMD reductions, no copy
            return arr
    elif kind == "f" and one:
        positive = arr == 1.0
        if np.count_nonzero(positive | (arr == 0.0)) == arr.shape[0]:
            return positive.view(np.uint8)
    values = _distinct(arr, label)
    if len(values) > 2:
        raise fail(label, f"binary labels (two values, the positive one pos_label={pos_label!r})",
                   f"{len(values):,} distinct values {show(values)}{hint}")
    if len(values) == 2 and not any(_is_pos(v, pos_label) for v in values.tolist()):
        raise fail(label, f"the positive label pos_label={pos_label!r} among its two values",
                   f"{show(values)}; pass pos_label=")
    if kind in "US":
        return (arr == pos_label).view(np.uint8) if isinstance(pos_label, str) else np.zeros(arr.shape[0], np.uint8)
    if kind == "O":
        return np.fromiter((_is_pos(v, pos_label) for v in arr.tolist()), dtype=bool, count=arr.shape[0]).view(
            np.uint8)
    if isinstance(pos_label, str | bytes):
        return np.zeros(arr.shape[0], np.uint8)
    return (arr == pos_label).view(np.uint8)


def looks_binary(arr: np.ndarray) -> bool:
    """Whether a target array has at most two distinct values (decides task="auto"); cheap for numbers."""
    if arr.shape[0] == 0 or arr.dtype.kind in "bUSO":
        return True
    if arr.dtype.kind in "iu":
        return True  # integers are class labels; more than two is an error, not a regression
    if arr.dtype.kind != "f":
        return True
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return True
    lo, hi = finite.min(), finite.max()
    return np.count_nonzero((arr == lo) | (arr == hi)) == arr.shape[0]


def finite_numbers(value: Any, name: str, n: int, *, low: float | None = None, high: float | None = None,
                   hint: str = "") -> np.ndarray:
    """Finite float64 values (optionally within [low, high]); the first bad row is named."""
    arr = column(value, name, n)
    label = described(name, value)
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise fail(label, "numbers", f"values of dtype {arr.dtype}") from None
    arr = arr.astype(np.float64, copy=False)
    checks = [(~np.isfinite(arr), "finite numbers")]
    if low is not None:
        checks.append((arr < low, f"values >= {low:g}{hint}"))
    if high is not None:
        checks.append((arr > high, f"values <= {high:g}{hint}"))
    for bad, expected in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise fail(label, expected, f"{arr[row]:g} at row {row:,}")
    return arr


# ---------------------------------------------------------------------------------------------------------------------
# Sensitive features
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Attribute:
    """One sensitive feature as integer codes (0..k-1, every row) and the k group labels."""

    name: str
    codes: np.ndarray
    labels: list[str]


def _label(value: Any) -> str:
    return str(value.item() if isinstance(value, np.generic) else value)


def _with_missing(codes: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Rows coded -1 (missing) become their own last group, labelled :data:`MISSING`."""
    if codes.shape[0] and codes.min() < 0:
        k = len(labels)
        dtype = codes.dtype if k < np.iinfo(codes.dtype).max else np.int64
        codes = np.where(codes < 0, k, codes).astype(dtype, copy=False)
        labels = [*labels, MISSING]
    return codes, labels


def encode(value: Any, name: str, n: int | None) -> Attribute:
    """Codes and labels of one sensitive feature; a categorical's codes are used as they are."""
    if isinstance(value, pd.Series | pd.Index) and isinstance(value.dtype, pd.CategoricalDtype):
        value = value.array
    if isinstance(value, pd.Categorical):
        if n is not None and len(value) != n:
            raise fail(name, f"{n:,} rows (as y_true)", f"{len(value):,}")
        codes, labels = _with_missing(np.asarray(value.codes), [_label(c) for c in value.categories.tolist()])
        return Attribute(name, codes, labels)
    if isinstance(value, pd.Series | pd.Index) and not isinstance(value.dtype, np.dtype):
        if n is not None and len(value) != n:
            raise fail(name, f"{n:,} rows (as y_true)", f"{len(value):,}")
        return _factorize(value, name)
    arr = column(value, name, n)
    if arr.dtype.kind == "b":
        return Attribute(name, arr.view(np.uint8), ["False", "True"])
    if arr.dtype.kind in "iu" and arr.shape[0]:
        lo, hi = int(arr.min()), int(arr.max())
        if hi - lo < 1024:  # a small range of integers: the codes are an offset away
            codes = (arr - lo).astype(np.int16) if lo else arr
            return Attribute(name, codes, [str(v) for v in range(lo, hi + 1)])
    return _factorize(arr, name)


def _factorize(values: Any, name: str) -> Attribute:
    try:
        codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    except TypeError:  # values that cannot be ordered (mixed types): first-seen order
        codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=True)
    codes, labels = _with_missing(np.asarray(codes), [_label(u) for u in list(uniques)])
    if len(set(labels)) != len(labels):  # 1 and "1" would print alike: keep them apart
        labels = [f"{lab} ({type(u).__name__})" for lab, u in zip(labels, [*list(uniques), None], strict=False)]
    return Attribute(name, codes, labels)


def sensitive(value: Any, n: int | None, name: str = "sensitive_features") -> list[Attribute]:
    """The attributes of ``sensitive_features``: a 1-d array or Series, a DataFrame, a dict, or a 2-d array."""
    if isinstance(value, pd.DataFrame):
        if value.shape[1] == 0:
            raise fail(name, "at least one column", "a frame without columns")
        names = [str(c) for c in value.columns]
        if len(set(names)) != len(names):
            raise fail(name, "distinct column names", repr(names))
        return [renamed(encode(value[c], f"{name}[{str(c)!r}]", n), str(c)) for c in value.columns]
    if isinstance(value, Mapping):
        if not value:
            raise fail(name, "at least one attribute", "an empty mapping")
        return [renamed(encode(v, f"{name}[{str(k)!r}]", n), str(k)) for k, v in value.items()]
    if isinstance(value, np.ndarray) and value.ndim == 2:
        return [renamed(encode(value[:, i], f"{name}[:, {i}]", n), f"{DEFAULT_NAME}_{i}")
                for i in range(value.shape[1])]
    label = getattr(value, "name", None)
    attr = encode(value, name, n)
    return [renamed(attr, str(label) if label is not None else DEFAULT_NAME)]


def renamed(attr: Attribute, name: str) -> Attribute:
    """The attribute, named ``name`` (the name its column or key gives it)."""
    attr.name = name
    return attr
