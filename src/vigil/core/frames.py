"""Turn what users hand us (pandas, polars, pyarrow, files) into one Arrow form.

>>> import pandas as pd
>>> to_arrow(pd.DataFrame({"a": [1, 2], "b": ["x", None]})).schema
a: int64
b: string
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from vigil.errors import BatchError

FILE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".gz": "csv", ".jsonl": "jsonl",
                ".ndjson": "jsonl", ".json": "jsonl"}


def to_arrow(data: Any) -> pa.Table:
    """An Arrow table from a pandas/polars DataFrame, a pyarrow Table/RecordBatch, or a file path.

    String columns come out as ``string`` (not ``large_string``) and dictionary
    columns as their values, so equal content always has equal types.

    >>> to_arrow(pa.table({"a": pa.array(["x"], pa.large_string())})).schema.field("a").type
    DataType(string)
    """
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif isinstance(data, str | Path):
        table = read_file(data)
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
    return normalize_types(table)


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns")


def _is_polars(data: Any) -> bool:
    return type(data).__module__.startswith("polars") and hasattr(data, "to_arrow")


def _from_pandas(frame: Any) -> pa.Table:
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise BatchError(f"expected a DataFrame, got a pandas {type(frame).__name__}")
    frame = frame.rename(columns=str)
    if frame.columns.duplicated().any():
        dup = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise BatchError(f"duplicate column names {dup}")
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


def file_format(path: str | Path) -> str:
    """``parquet``, ``csv`` or ``jsonl``, from a file's name.

    >>> file_format("events.csv.gz"), file_format("x.parquet")
    ('csv', 'parquet')
    """
    path = Path(path)
    fmt = FILE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BatchError(f"cannot tell the format of {str(path)!r}: use .parquet, .csv or .jsonl")
    if path.suffix.lower() == ".gz" and Path(path.stem).suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return fmt


def read_file(path: str | Path) -> pa.Table:
    """Read a whole Parquet, CSV or JSON-lines file."""
    return pa.concat_tables(list(iter_file_batches(path)))


def iter_file_batches(path: str | Path, batch_rows: int = 100_000) -> Iterator[pa.Table]:
    """Read a file in tables of about ``batch_rows`` rows, for ingesting files larger than memory.

    A file that cannot be read raises :class:`BatchError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise BatchError(f"no such file: {str(path)!r}")
    fmt = file_format(path)
    try:
        if fmt == "parquet":
            reader = pq.ParquetFile(path)
            for batch in reader.iter_batches(batch_size=batch_rows):
                yield pa.Table.from_batches([batch])
        elif fmt == "csv":
            table = pacsv.read_csv(path)
            for offset in range(0, max(table.num_rows, 1), batch_rows):
                yield table.slice(offset, batch_rows)
        else:
            table = pajson.read_json(path)
            for offset in range(0, max(table.num_rows, 1), batch_rows):
                yield table.slice(offset, batch_rows)
    except (pa.ArrowInvalid, OSError) as err:
        raise BatchError(f"cannot read {str(path)!r} as {fmt}: {err}") from None


def count_file_rows(path: str | Path) -> int | None:
    """Rows in a Parquet file from its footer; ``None`` for other formats (unknown before reading).

    A missing or unreadable file raises :class:`BatchError` naming it.
    """
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise BatchError(f"no such file: {str(path)!r}")
    if fmt != "parquet":
        return None
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as err:
        raise BatchError(f"cannot read {str(path)!r} as parquet: {err}") from None


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


def naive_utc(value: Any) -> dt.datetime:
    """A time as the store keeps it: UTC without tzinfo (naive input is taken as UTC).

    >>> naive_utc("2026-01-02T03:00:00+01:00")
    datetime.datetime(2026, 1, 2, 2, 0)
    """
    import pandas as pd

    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


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
