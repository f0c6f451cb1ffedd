"""Read the files users hand us (Parquet, CSV, JSON lines) into Arrow tables.

Every failure is a :class:`~vigil.errors.BatchError` that names the file and
the problem: missing, of an unknown format, truncated, corrupt, or with two
columns of one name.

>>> import tempfile, pyarrow.parquet as pq
>>> path = Path(tempfile.mkdtemp()) / "events.parquet"
>>> pq.write_table(pa.table({"event_id": ["a", "b"], "age": [30.0, 41.0]}), path)
>>> read_file(path).num_rows, count_file_rows(path)
(2, 2)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from vigil.core.frames import check_unique_columns, to_arrow
from vigil.errors import BatchError

FILE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".gz": "csv", ".jsonl": "jsonl",
                ".ndjson": "jsonl", ".json": "jsonl"}

#: What pyarrow raises for a file it cannot read (OSError covers truncated compressed streams).
_READ_ERRORS = (pa.ArrowException, OSError, EOFError, ValueError)


def file_format(path: str | Path) -> str:
    """``parquet``, ``csv`` or ``jsonl``, from a file's name.

    >>> file_format("events.csv.gz"), file_format("x.parquet"), file_format("x.jsonl.gz")
    ('csv', 'parquet', 'jsonl')
    """
    path = Path(path)
    fmt = FILE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BatchError(f"cannot tell the format of {str(path)!r}: use .parquet, .csv or .jsonl", field="path")
    if path.suffix.lower() == ".gz" and Path(path.stem).suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return fmt


def load_table(data: Any) -> pa.Table:
    """:func:`read_file` for a path, :func:`~vigil.core.frames.to_arrow` for anything else.

    >>> load_table({"a": [1, 2]}).num_rows
    2
    """
    if isinstance(data, str | Path):
        return to_arrow(read_file(data))
    return to_arrow(data)


def read_file(path: str | Path) -> pa.Table:
    """Read a whole Parquet, CSV or JSON-lines file.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "labels.csv"
    >>> _ = path.write_text("event_id,y\\ne1,1\\ne2,0\\n")
    >>> read_file(path).column("y").to_pylist()
    [1, 0]
    """
    return pa.concat_tables(list(iter_file_batches(path)))


def iter_file_batches(path: str | Path, batch_rows: int = 100_000) -> Iterator[pa.Table]:
    """Read a file in tables of about ``batch_rows`` rows, for ingesting files larger than memory.

    A file that cannot be read raises :class:`BatchError` naming it (and, for a
    Parquet file damaged past its first rows, how many rows were read before).

    >>> import tempfile, pyarrow.parquet as pq
    >>> path = Path(tempfile.mkdtemp()) / "e.parquet"
    >>> pq.write_table(pa.table({"x": list(range(10))}), path)
    >>> [t.num_rows for t in iter_file_batches(path, batch_rows=4)]
    [4, 4, 2]
    """
    path = Path(path)
    fmt = file_format(path)
    _check_is_file(path)
    done = 0
    try:
        if fmt == "parquet":
            reader = _open_parquet(path)
            check_unique_columns(reader.schema_arrow.names, where=repr(str(path)))
            for batch in reader.iter_batches(batch_size=batch_rows):
                done += batch.num_rows
                yield pa.Table.from_batches([batch])
            return
        table = pacsv.read_csv(path) if fmt == "csv" else pajson.read_json(path)
    except BatchError:
        raise
    except _READ_ERRORS as err:
        after = f" after {done:,} rows" if done else ""
        raise BatchError(f"cannot read {str(path)!r} as {fmt}{after}: {_describe(err, fmt)}",
                         field="path", path=str(path)) from None
    check_unique_columns(table.column_names, where=repr(str(path)))
    for offset in range(0, max(table.num_rows, 1), batch_rows):
        yield table.slice(offset, batch_rows)


def count_file_rows(path: str | Path) -> int | None:
    """Rows in a Parquet file from its footer; ``None`` for other formats (unknown before reading).

    A missing or unreadable file raises :class:`BatchError` naming it.

    >>> count_file_rows("nowhere.parquet")
    Traceback (most recent call last):
    ...
    vigil.errors.BatchError: no such file: 'nowhere.parquet'
    """
    path = Path(path)
    fmt = file_format(path)
    _check_is_file(path)
    if fmt != "parquet":
        return None
    try:
        return _open_parquet(path).metadata.num_rows
    except _READ_ERRORS as err:
        raise BatchError(f"cannot read {str(path)!r} as parquet: {_describe(err, fmt)}",
                         field="path", path=str(path)) from None


def _check_is_file(path: Path) -> None:
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else None
        raise BatchError(f"{str(path)!r} {what}" if what else f"no such file: {str(path)!r}",
                         field="path", path=str(path))


def _open_parquet(path: Path) -> pq.ParquetFile:
    if path.stat().st_size == 0:
        raise BatchError(f"cannot read {str(path)!r} as parquet: the file is empty", field="path", path=str(path))
    return pq.ParquetFile(path)


def _describe(err: BaseException, fmt: str) -> str:
    """pyarrow's message, with what it most likely means."""
    text = str(err).strip() or type(err).__name__
    if fmt == "parquet" and "magic bytes" in text:
        return "the file is truncated (its footer is missing) or is not Parquet"
    if "Truncated compressed stream" in text or isinstance(err, EOFError):
        return "the compressed file is truncated"
    return text
