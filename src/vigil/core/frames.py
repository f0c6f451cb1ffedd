"""Turn what users hand us (pandas, polars, pyarrow) into one Arrow form.

Reading files is :mod:`vigil.services.sources`'s job; nothing here does I/O
(a path given to :func:`to_arrow` is handed to it, until callers read files first).

>>> import pandas as pd
>>> to_arrow(pd.DataFrame({"a": [1, 2], "b": ["x", None]})).schema
a: int64
b: string
"""

from __future__ import annotations

import datetime as dt
import hashlib
import numbers
from collections import Counter
from typing import Any

import pyarrow as pa

from vigil.errors import BatchError, InvalidParameterError


def to_arrow(data: Any) -> pa.Table:
    """An Arrow table from a pandas/polars DataFrame, a pyarrow Table/RecordBatch or a dict of columns.

    String columns come out as ``string`` (not ``large_string``) and dictionary
    columns as their values, so equal content always has equal types. Two
    columns with one name are a :class:`BatchError` naming it.

    >>> to_arrow(pa.table({"a": pa.array(["x"], pa.large_string())})).schema.field("a").type
    DataType(string)
    """
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif _is_pandas(data):
        table = _from_pandas(data)
    elif _is_polars(data):
        table = data.to_arrow()
    elif isinstance(data, dict):
        table = pa.table(data)
    else:
        raise BatchError(
            f"cannot read data of type {type(data).__name__}: give a pandas or polars DataFrame, "
            "a pyarrow Table, or the path of a Parquet, CSV or JSON-lines file"
        )
    check_unique_columns(table.column_names)
    return normalize_types(table)


def check_unique_columns(names: list[str], where: str = "the batch") -> None:
    """:class:`BatchError` naming the column names that appear more than once.

    >>> check_unique_columns(["a", "b", "a"])
    Traceback (most recent call last):
    ...
    vigil.errors.BatchError: the batch has duplicate column names ['a']: give each column its own name
    """
    counts = Counter(names)
    duplicates = sorted(name for name, n in counts.items() if n > 1)
    if duplicates:
        raise BatchError(f"{where} has duplicate column names {duplicates}: give each column its own name",
                         field=duplicates[0], columns=duplicates)


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns")


def _is_polars(data: Any) -> bool:
    return type(data).__module__.startswith("polars") and hasattr(data, "to_arrow")


def _from_pandas(frame: Any) -> pa.Table:
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise BatchError(f"expected a DataFrame, got a pandas {type(frame).__name__}")
    frame = frame.rename(columns=str)
    check_unique_columns(list(frame.columns))
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # a column of mixed Python objects: convert column by column, falling back to strings so that
        # validation can name the bad rows instead of the whole batch failing here
        arrays = {}
        for name in frame.columns:
            try:
                arrays[name] = pa.array(frame[name], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                arrays[name] = pa.array(
                    [None if _is_missing(v) else str(v) for v in frame[name].tolist()], pa.string()
                )
        return pa.table(arrays)


def _is_missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def normalize_types(table: pa.Table) -> pa.Table:
    """Cast large strings/lists to their plain form and dictionaries to their values; drop metadata.

    >>> normalize_types(pa.table({"c": pa.array(["a", "b"]).dictionary_encode()})).schema.field("c").type
    DataType(string)
    """
    fields = []
    changed = False
    for f in table.schema:
        t = _plain_type(f.type)
        changed |= t != f.type
        fields.append(pa.field(f.name, t))
    if changed:
        table = table.cast(pa.schema(fields))
    return table.replace_schema_metadata(None) if table.schema.metadata else table


def _plain_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return _plain_type(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(_plain_type(t.value_type))
    if pa.types.is_list(t):
        inner = _plain_type(t.value_type)
        return t if inner == t.value_type else pa.list_(inner)
    return t


def single_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array; a single chunk is returned as it is, not copied.

    >>> single_array(pa.chunked_array([[1], [2, 3]])).to_pylist()
    [1, 2, 3]
    """
    if isinstance(values, pa.ChunkedArray):
        if values.num_chunks == 1:
            return values.chunk(0)
        if values.num_chunks == 0:
            return pa.array([], values.type)
        return values.combine_chunks()
    return values


def naive_utc(value: Any, *, field: str | None = None) -> dt.datetime:
    """A time as the store keeps it: UTC without tzinfo (naive input is taken as UTC).

    Datetimes, dates, ISO-8601 text and numbers (Unix seconds, as events take
    them) are read; anything else is an :class:`InvalidParameterError` naming
    ``field`` (the caller's parameter).

    >>> naive_utc("2026-01-02T03:00:00+01:00")
    datetime.datetime(2026, 1, 2, 2, 0)
    >>> naive_utc(1767322800)
    datetime.datetime(2026, 1, 2, 3, 0)
    >>> naive_utc("garbage", field="start")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidParameterError: start: 'garbage' is not a time; give a datetime or ISO-8601 text ...
    """
    import pandas as pd

    what = field or "time"
    advice = "give a datetime or ISO-8601 text such as '2026-01-02T03:04:05Z'"
    if isinstance(value, bool) or value is None:
        raise InvalidParameterError(f"{what}: {value!r} is not a time; {advice}", field=field)
    try:
        if isinstance(value, numbers.Real) and not isinstance(value, dt.datetime | dt.date):
            ts = pd.Timestamp(float(value), unit="s")
        else:
            ts = pd.Timestamp(value)
        if ts is pd.NaT:
            raise ValueError("NaT")
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return ts.to_pydatetime(warn=False)
    except (ValueError, TypeError, OverflowError, ArithmeticError):  # pandas' OutOfBounds* are ValueErrors
        raise InvalidParameterError(f"{what}: {_short(value)} is not a time; {advice}", field=field) from None


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def python_values(values: pa.Array | pa.ChunkedArray) -> list[Any]:
    """Python values of an array; values Python cannot hold (a year beyond 9999) come back as text.

    >>> python_values(pa.array([253402300800000000], pa.timestamp("us")))
    ['10000-01-01T00:00:00.000000']
    """
    try:
        return values.to_pylist()
    except (OverflowError, ValueError, pa.ArrowException):
        if pa.types.is_timestamp(values.type):
            import numpy as np

            text = np.datetime_as_string(values.to_numpy(zero_copy_only=False)).tolist()
            return [None if t == "NaT" else t for t in text]
        return values.cast(pa.string(), safe=False).to_pylist()


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    """A table's rows as dicts, via :func:`python_values` column by column."""
    columns = {name: python_values(table.column(name)) for name in table.column_names}
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)] if columns else [
        {} for _ in range(table.num_rows)]


def content_hash(table: pa.Table) -> str:
    """sha256 of a table's content: column names, types and values in row order.

    Equal content gives an equal hash whatever the source (pandas, polars,
    Arrow) and however it is chunked, since types are normalised first and
    only logical values are read, never padding or the bytes under a null.

    >>> a = content_hash(pa.table({"x": [1, 2]}))
    >>> a == content_hash(pa.table({"x": [1, 2]})), a == content_hash(pa.table({"x": [2, 1]}))
    (True, False)
    """
    table = normalize_types(table)
    digest = hashlib.sha256()
    digest.update(str(table.num_rows).encode())
    for name, column in zip(table.column_names, table.columns, strict=True):
        digest.update(f"\x00{name}\x00{column.type}\x00".encode())
        _digest_array(digest, single_array(column))
    return digest.hexdigest()


def _digest_array(digest: Any, array: pa.Array) -> None:
    import numpy as np
    import pyarrow.compute as pc

    valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
    digest.update(np.packbits(valid).tobytes())
    t = array.type
    if pa.types.is_string(t) or pa.types.is_binary(t):
        filled = array.fill_null("" if pa.types.is_string(t) else b"")
        offsets = np.frombuffer(filled.buffers()[1], dtype=np.int32)[filled.offset: filled.offset + len(filled) + 1]
        digest.update(np.diff(offsets).tobytes())
        data = filled.buffers()[2]
        if data is not None and len(offsets):
            digest.update(memoryview(data)[offsets[0]: offsets[-1]])
    elif pa.types.is_primitive(t) and not pa.types.is_boolean(t):
        digest.update(array.to_numpy(zero_copy_only=False)[valid].tobytes())
    else:
        digest.update(repr(array.to_pylist()).encode())
