"""Match label and prediction values to a model's classes by value, whatever the column's type.

A label column often does not keep the type the classes have: 0/1 integers
with a missing label come back as floats (``1.0``), booleans with a missing
label as objects (``True``/``None``), text as ``category`` or Arrow strings.
:func:`class_index` tells, for each value, which class it is:

- missing values (``None``, ``NaN``, ``pd.NA``, ``NaT``, Arrow nulls) are no
  class (``-1``); :func:`is_missing` tells them apart from unknown values;
- numbers and booleans compare as numbers: ``1 == 1.0 == True`` and
  ``0 == 0.0 == False``, integers exactly (no rounding through floats);
- strings compare as strings, exactly (``"yes" != "Yes"``, ``"1.0" != "1"``);
- a string and a number are equal when the string reads as that number:
  a decimal numeral as Python's ``int()``/``float()`` reads it, without
  surrounding spaces or underscores (``"1"``, ``"1.0"``, ``"1e0"`` read as 1),
  and ``"True"``/``"False"`` (or ``"true"``/``"false"``) as 1/0. So a string
  class ``"1"`` takes the values ``1``, ``1.0`` and ``True``, and a class
  ``1`` takes the value ``"1"``; a match of the same kind comes first (with
  classes ``("1", 1)`` the value ``1`` is class 1, the value ``"1"`` class 0);
- any other value (bytes are read as UTF-8 text) matches a class equal to it;
  a value matching no class is ``-1``. When two classes are equal by these
  rules the first one takes the value.

Columns are compared column-wise (numbers with one sorted search, category and
dictionary columns through their categories, text through its distinct values),
so a million labels take a fraction of a second, not a Python loop over rows.

>>> import numpy as np
>>> class_index(np.array([1.0, 0.0, np.nan, 2.0]), [0, 1])
array([ 1,  0, -1, -1])
>>> is_class(pd.Series([True, None, False], dtype=object), 1)
array([ True, False, False])
"""

from __future__ import annotations

import decimal
import fractions
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from vigil.errors import MetricInputError

__all__ = ["class_index", "is_class", "is_missing"]

_TRUE, _FALSE = frozenset({"True", "true"}), frozenset({"False", "false"})
_INT64 = np.iinfo(np.int64)


@dataclass
class _Classes:
    """The classes as lookup tables: numbers (of number classes, then of string classes read as numbers)."""

    numbers: dict[int | float, int] = field(default_factory=dict)
    number_classes: dict[int | float, int] = field(default_factory=dict)
    text: dict[str, int] = field(default_factory=dict)
    other: dict[Any, int] = field(default_factory=dict)


def _number(value: Any) -> int | float | None:
    """A real number as an ``int`` when integral (exact for big integers), else a float; None for NaN."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    number = float(value)
    if math.isnan(number):
        return None
    if number.is_integer():
        return int(value) if isinstance(value, decimal.Decimal | fractions.Fraction) else int(number)
    return number


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating | np.bool_ | decimal.Decimal | fractions.Fraction)


def _read_number(text: str) -> int | float | None:
    """The number a string reads as (see the module's rules), or None."""
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    if not text or text != text.strip() or "_" in text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return _number(float(text))
    except ValueError:
        return None


def _scalar_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    if isinstance(value, np.datetime64 | np.timedelta64):
        return bool(np.isnat(value))
    if isinstance(value, decimal.Decimal):
        return value.is_nan()
    return False


def _table(classes: Any) -> _Classes:
    if isinstance(classes, pa.ChunkedArray | pa.Array):
        classes = classes.to_pylist()
    elif isinstance(classes, np.ndarray | pd.Index | pd.Series | pd.Categorical):
        classes = list(np.asarray(classes, dtype=object))
    elif isinstance(classes, str | bytes) or not isinstance(classes, Sequence):
        raise MetricInputError(f"classes: expected a sequence of class values, got {type(classes).__name__} "
                               f"{classes!r}", field="classes")
    table, read = _Classes(), {}
    for i, cls in enumerate(classes):
        if isinstance(cls, bytes):
            cls = cls.decode("utf-8", errors="replace")
        if _scalar_missing(cls):
            continue
        if isinstance(cls, str):
            table.text.setdefault(cls, i)
            number = _read_number(cls)
            if number is not None:
                read.setdefault(number, i)
        elif _is_number(cls):
            table.number_classes.setdefault(_number(cls), i)
        else:
            try:
                table.other.setdefault(cls, i)
            except TypeError:  # an unhashable class takes no value
                continue
    table.numbers = dict(table.number_classes)
    for number, i in read.items():
        table.numbers.setdefault(number, i)
    return table


def _lookup(value: Any, table: _Classes) -> int:
    """The class of one value (the slow path, for mixed object columns)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        found = table.text.get(value)
        if found is not None:
            return found
        number = _read_number(value)
        return -1 if number is None else table.number_classes.get(number, -1)
    if _is_number(value):
        number = _number(value)
        return -1 if number is None else table.numbers.get(number, -1)
    if _scalar_missing(value):
        return -1
    try:
        return table.other.get(value, -1)
    except TypeError:
        return -1


def _sorted_search(values: np.ndarray, keys: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``index`` of the key equal to each value (the first class among equal keys), else -1."""
    out = np.full(values.shape[0], -1, dtype=np.int64)
    if keys.size == 0 or values.size == 0:
        return out
    order = np.lexsort((index, keys))
    keys, index = keys[order], index[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    keys, index = keys[first], index[first]
    pos = np.minimum(np.searchsorted(keys, values), keys.size - 1)
    hit = keys[pos] == values
    out[hit] = index[pos[hit]]
    return out


def _numeric(values: np.ndarray, table: _Classes) -> np.ndarray:
    kind = values.dtype.kind
    entries = list(table.numbers.items())
    if kind == "b":
        lut = np.array([table.numbers.get(0, -1), table.numbers.get(1, -1)], dtype=np.int64)
        return lut[values.astype(np.intp)]
    if kind == "u" and values.size and values.max() > _INT64.max:
        return np.fromiter((_lookup(int(v), table) for v in values), dtype=np.int64, count=values.shape[0])
    if kind in "iu":
        ints = [(k, i) for k, i in entries if isinstance(k, int) and _INT64.min <= k <= _INT64.max]
        keys = np.array([k for k, _ in ints], dtype=np.int64)
        return _sorted_search(values.astype(np.int64, copy=False), keys, np.array([i for _, i in ints], np.int64))
    keys = np.array([float(k) for k, _ in entries], dtype=np.float64)
    return _sorted_search(values.astype(np.float64, copy=False), keys, np.array([i for _, i in entries], np.int64))


def _by_distinct(values: np.ndarray, table: _Classes) -> np.ndarray:
    """Text columns: look each distinct value up once (missing values are code -1 and stay -1)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lut = np.array([_lookup(u, table) for u in np.asarray(uniques, dtype=object)] + [-1], dtype=np.int64)
    return lut[codes]


def _objects(values: np.ndarray, table: _Classes) -> np.ndarray:
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "empty":
        return np.full(values.shape[0], -1, dtype=np.int64)
    if inferred in ("string", "bytes"):
        return _by_distinct(values, table)
    if inferred == "boolean":
        missing = pd.isna(values)
        out = _numeric(np.where(missing, False, values).astype(bool), table)
        out[missing] = -1
        return out
    # mixed kinds: 1, 1.0 and True hash alike but can differ against string classes, so no factorizing
    return np.fromiter((_lookup(v, table) for v in values), dtype=np.int64, count=values.shape[0])


def _from_numpy(values: np.ndarray, table: _Classes) -> np.ndarray:
    if values.ndim != 1:
        raise MetricInputError(f"values: expected one column of labels, got an array of shape {values.shape}",
                               field="values")
    kind = values.dtype.kind
    if kind in "biuf":
        return _numeric(values, table)
    if kind in "US":
        return _by_distinct(values.astype(object), table)
    if kind in "mM":  # as Timestamps (NaT missing): astype(object) would give integers for nanoseconds
        return _objects(pd.Series(values).to_numpy(dtype=object), table)
    return _objects(values.astype(object, copy=False), table)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _distinct_values(dictionary: pa.Array, table: _Classes) -> np.ndarray:
    """The class of each entry of a dictionary (its values are distinct: one lookup each)."""
    if _is_text(dictionary.type):
        return np.fromiter((_lookup(v, table) for v in dictionary.to_pylist()), dtype=np.int64,
                           count=len(dictionary))
    return _from_arrow(dictionary, table)


def _from_arrow(values: pa.Array, table: _Classes) -> np.ndarray:
    kind = values.type
    if pa.types.is_dictionary(kind):
        lut = np.append(_distinct_values(values.dictionary, table), -1)
        indices = values.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp)
        return lut[indices]
    if pa.types.is_null(kind):
        return np.full(len(values), -1, dtype=np.int64)
    if _is_text(kind):
        return _from_arrow(values.dictionary_encode(), table)  # each distinct text looked up once
    nulls = values.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
        filler = False if pa.types.is_boolean(kind) else 0
        filled = values.fill_null(pa.scalar(filler, kind)) if nulls.any() else values
        out = _from_numpy(filled.to_numpy(zero_copy_only=False), table)
    else:
        out = _from_numpy(values.to_numpy(zero_copy_only=False), table)
    out[nulls] = -1
    return out


def _as_objects(values: Any) -> np.ndarray:
    items = list(values)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def class_index(values: Any, classes: Any) -> np.ndarray:
    """For each value, the position of its class in ``classes``: -1 when missing or not a class.

    ``values``: a numpy array, pandas Series or Index (any dtype: bool, int,
    float with NaN, nullable, string, category, Arrow-backed), a pyarrow Array
    or ChunkedArray (dictionary-encoded or not), a polars Series, or a list.
    Values match classes by value (see the module's rules): ``1.0`` is class
    ``1`` and ``True``; strings match strings exactly; a string reading as a
    number matches that number.

    >>> class_index([1, 1.0, True, "1", None, 7], [0, 1])
    array([ 1,  1,  1,  1, -1, -1])
    >>> class_index(pd.Series(["no", "yes", None], dtype="category"), ["no", "yes"])
    array([ 0,  1, -1])
    >>> class_index(pa.chunked_array([[1, None, 0]]), [False, True])
    array([ 1, -1,  0])
    >>> class_index(np.array([1, 0]), ["0", "1"])   # a number and the string that reads as it
    array([1, 0])
    """
    table = _table(classes)
    if type(values).__module__.split(".")[0] == "polars":
        values = values.to_arrow()
    if isinstance(values, pa.ChunkedArray):
        parts = [_from_arrow(chunk, table) for chunk in values.chunks]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    if isinstance(values, pa.Array):
        return _from_arrow(values, table)
    if isinstance(values, pd.Index | pd.Categorical):
        values = pd.Series(values)
    if isinstance(values, pd.Series):
        if isinstance(values.dtype, pd.CategoricalDtype):
            lut = np.append(class_index(values.cat.categories, classes), -1)
            return lut[values.cat.codes.to_numpy()]
        if isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
            try:
                arrow = pa.array(values.array)
            except (pa.ArrowException, TypeError, ValueError):
                return _from_numpy(values.to_numpy(dtype=object, na_value=None), table)
            return class_index(arrow, classes)
        return _from_numpy(values.to_numpy(), table)
    if isinstance(values, np.ndarray):
        return _from_numpy(values, table)
    if isinstance(values, str | bytes) or np.ndim(values) == 0:
        raise MetricInputError(f"values: expected a column of labels, got the single value {values!r}",
                               field="values")
    return _from_numpy(_as_objects(values), table)


def is_class(values: Any, cls: Any) -> np.ndarray:
    """Whether each value is the class ``cls``, by value (False where missing); see :func:`class_index`.

    >>> is_class(np.array([1.0, 0.0, np.nan]), 1)
    array([ True, False, False])
    >>> is_class(["yes", "Yes", "no"], "yes")
    array([ True, False, False])
    """
    return class_index(values, [cls]) == 0


def is_missing(values: Any) -> np.ndarray:
    """Whether each value is missing (None, NaN, ``pd.NA``, ``NaT``, an Arrow null); as :func:`class_index` reads.

    >>> is_missing(pd.Series([1.0, None, 0.0]))
    array([False,  True, False])
    >>> is_missing(pa.array(["a", None]))
    array([False,  True])
    """
    if type(values).__module__.split(".")[0] == "polars":
        values = values.to_arrow()
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        nan_aware = pa.types.is_floating(values.type)
        return np.asarray(values.is_null(nan_is_null=nan_aware).to_numpy(zero_copy_only=False), dtype=bool)
    if isinstance(values, pd.Series | pd.Index | pd.Categorical):
        return np.asarray(pd.isna(values), dtype=bool)
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise MetricInputError(f"values: expected one column of labels, got an array of shape {values.shape}",
                                   field="values")
        return np.asarray(pd.isna(values), dtype=bool)
    if isinstance(values, str | bytes) or np.ndim(values) == 0:
        raise MetricInputError(f"values: expected a column of labels, got the single value {values!r}",
                               field="values")
    return np.fromiter((_scalar_missing(v) for v in values), dtype=bool)
