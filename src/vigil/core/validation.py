"""Check every row of a batch against a schema: typed rows out, or a reason per refused row.

Nothing here raises for a bad *row*: each row is either accepted (coerced to
the column's type) or rejected with a reason code, the column and the value
that failed. Only a batch-level problem (columns that match no role, a
required column absent altogether, some but not all of a multiclass model's
score columns, event ids that are not single values) raises
:class:`~vigil.errors.BatchError`.

Event times outside the schema's plausible range (by default 1990-01-01 to a
day past the ingest time; see :meth:`Schema.timestamp_bounds
<vigil.core.schema.Schema.timestamp_bounds>`) are refused as
``implausible_timestamp``. A classifier's label or prediction that is not one
of its classes is refused as ``unknown_class``; labels compare by value, so
``1``, ``1.0``, ``"1"`` and ``True`` are all the integer class ``1``, while
string classes compare as text (``"Yes"`` is not ``"yes"``).

An unseen category or a number outside the training range is accepted: it is
drift or an integrity signal, counted in :attr:`ValidatedBatch.signals`.

>>> import pandas as pd
>>> from vigil.core.schema import Schema
>>> schema = Schema.infer(pd.DataFrame({"age": [20.0, 60.0], "y": [0, 1]}), target="y")
>>> batch = pd.DataFrame({"event_id": ["a", "b", "c"], "age": [30, "old", 99],
...                       "prediction": [1, 0, 1], "score": [0.9, 0.2, 1.7]})
>>> checked = validate_predictions(batch, schema)
>>> checked.table.column("event_id").to_pylist()
['a']
>>> checked.rejected.select(["row", "reason", "column"]).to_pylist()  # doctest: +NORMALIZE_WHITESPACE
[{'row': 1, 'reason': 'type_mismatch', 'column': 'age'},
 {'row': 2, 'reason': 'probability_out_of_range', 'column': 'score'}]
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
import secrets
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vigil.core.frames import python_values, single_array, to_arrow
from vigil.core.schema import Column, Kind, LabelType, Role, Schema
from vigil.errors import BatchError

#: Why a row is refused. Each is stored with the row in the quarantine.
REASONS: dict[str, str] = {
    "missing_value": "a required value is missing",
    "type_mismatch": "a value cannot be read as the column's type",
    "not_finite": "NaN or infinity where a finite number is required",
    "probability_out_of_range": "a probability outside [0, 1]",
    "probabilities_not_summing_to_one": "class probabilities that do not sum to 1",
    "bad_timestamp": "a timestamp that cannot be parsed",
    "implausible_timestamp": "a timestamp outside the model's plausible range (by default 1990 to a day from now)",
    "unknown_class": "a label or predicted class that is not one of the model's classes",
    "wrong_dimension": "an embedding whose length differs from the schema's",
    "duplicate_conflict": "an event id already stored (or repeated in the batch) with different content",
    "unknown_event": "a label for an event id that is not stored",
    "label_conflict": "a second, different label for an event that already has one",
}

#: What is accepted but counted: integrity signals for monitoring.
SIGNALS: dict[str, str] = {
    "missing_value": "a feature value is missing",
    "unseen_category": "a category the training data did not have",
    "out_of_range": "a number outside the training data's range",
}

#: Default tolerance on the sum of class probabilities.
PROBABILITY_SUM_TOLERANCE = 1e-4

LABEL_TIME = "label_time"

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "DOUBLE": pa.float64(),
    "BIGINT": pa.int64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us"),
    "FLOAT[]": pa.list_(pa.float32()),
    "VARCHAR[]": pa.list_(pa.string()),
}

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}

#: What Python's datetime (and so reading a stored value back) can hold: any timestamp column's bounds.
_REPRESENTABLE = (dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999))
#: Epoch units a number may have been sent in by mistake, with the divisor that makes it seconds.
_EPOCH_UNITS = (("milliseconds", 1_000), ("microseconds", 1_000_000), ("nanoseconds", 1_000_000_000))


def arrow_type(column: Column) -> pa.DataType:
    """The Arrow type a column's values are stored as.

    >>> arrow_type(Column("age", Role.FEATURE, Kind.NUMERIC))
    DataType(double)
    """
    return _ARROW_TYPES[column.storage_type]


@dataclass
class ValidatedBatch:
    """The outcome of validating one batch.

    ``table`` holds the accepted rows, typed, one column per schema column
    present (event id and timestamp always, filled in where absent); ``rows``
    their positions in the input; ``rejected`` one row per refused input row
    (row, event_id, reason, column, value, message); ``signal_masks`` marks,
    per (signal, column), the accepted rows with a value worth a look.
    """

    table: pa.Table
    rows: np.ndarray
    rejected: pa.Table
    signal_masks: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    source: pa.Table | None = None

    @property
    def accepted(self) -> int:
        """Rows accepted."""
        return self.table.num_rows

    @property
    def signals(self) -> dict[str, dict[str, int]]:
        """Accepted values worth a look, counted by signal and column."""
        return self.signal_counts()

    def signal_counts(self, keep: np.ndarray | None = None) -> dict[str, dict[str, int]]:
        """:attr:`signals` over the accepted rows that ``keep`` selects (all by default)."""
        out: dict[str, dict[str, int]] = {}
        for (name, column), mask in self.signal_masks.items():
            count = int(np.count_nonzero(mask if keep is None else mask & keep))
            if count:
                out.setdefault(name, {})[column] = count
        return out

    def reasons(self) -> dict[str, int]:
        """Refused rows counted by reason."""
        return dict(Counter(self.rejected.column("reason").to_pylist()))


class _Checker:
    """Accumulates, per row, the first reason it fails; later checks never overwrite an earlier one."""

    def __init__(self, table: pa.Table, redacted: frozenset[str] = frozenset()) -> None:
        self.source = table
        self.n = table.num_rows
        self.failed = np.zeros(self.n, dtype=bool)
        self.records: list[tuple[np.ndarray, str, str | None, str]] = []
        self.signals: dict[tuple[str, str], np.ndarray] = {}
        self.redacted = redacted  # PII columns: their values are never quoted

    def fail(self, mask: np.ndarray, reason: str, column: str | None, message: str) -> None:
        new = mask & ~self.failed
        if new.any():
            self.records.append((np.flatnonzero(new), reason, column, message))
            self.failed |= new

    def signal(self, name: str, column: str, mask: np.ndarray) -> None:
        """Mark rows with a value worth a look; only rows finally accepted are counted."""
        if mask.any():
            self.signals[(name, column)] = mask

    def rejected_table(self, event_ids: pa.Array | None) -> pa.Table:
        rows, reasons, columns, values, messages = [], [], [], [], []
        for idx, reason, column, message in self.records:
            raw = (
                python_values(self.source.column(column).take(pa.array(idx)))
                if column is not None and column in self.source.column_names
                else [None] * len(idx)
            )
            for i, value in zip(idx.tolist(), raw, strict=True):
                shown = "<redacted>" if column in self.redacted else _show(value)
                rows.append(i)
                reasons.append(reason)
                columns.append(column)
                values.append(shown)
                messages.append(message.format(value=shown, column=column))
        order = np.argsort(np.asarray(rows, dtype=np.int64), kind="stable")
        ids = (
            event_ids.take(pa.array(np.asarray(rows, dtype=np.int64)[order])).cast(pa.string())
            if event_ids is not None and rows
            else pa.nulls(len(rows), pa.string())
        )
        return pa.table(
            {
                "row": pa.array(np.asarray(rows, dtype=np.int64)[order]),
                "event_id": ids,
                "reason": pa.array([reasons[i] for i in order], pa.string()),
                "column": pa.array([columns[i] for i in order], pa.string()),
                "value": pa.array([values[i] for i in order], pa.string()),
                "message": pa.array([messages[i] for i in order], pa.string()),
            }
        )


def empty_rejections() -> pa.Table:
    """A rejection table with no rows."""
    return pa.table(
        {name: pa.array([], t) for name, t in (("row", pa.int64()), ("event_id", pa.string()),
                                              ("reason", pa.string()), ("column", pa.string()),
                                              ("value", pa.string()), ("message", pa.string()))}
    )


def _show(value: Any, limit: int = 120) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- entry points ------------------------------------------------------------------------------------


def validate_predictions(
    data: Any,
    schema: Schema,
    *,
    now: dt.datetime | None = None,
    probability_tolerance: float = PROBABILITY_SUM_TOLERANCE,
) -> ValidatedBatch:
    """Validate a batch of prediction events against ``schema``.

    The event id column may be absent (ids are generated, as UUID4 hex) and so
    may the timestamp (``now``, UTC); a null in either is filled the same way.
    Score, target, metadata and PII columns may be absent (a multiclass
    model's score columns all together); features and the prediction must be
    present.

    >>> import pandas as pd
    >>> from vigil.core.schema import Schema
    >>> schema = Schema.infer(pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}), target="y")
    >>> batch = pd.DataFrame({"x": [1.0, 1.5], "prediction": [2, 1], "timestamp": [1767322800, 1767322800123]})
    >>> rejected = validate_predictions(batch, schema).rejected
    >>> rejected.select(["row", "reason", "column"]).to_pylist()  # doctest: +NORMALIZE_WHITESPACE
    [{'row': 0, 'reason': 'unknown_class', 'column': 'prediction'},
     {'row': 1, 'reason': 'implausible_timestamp', 'column': 'timestamp'}]
    >>> print(rejected.column("message")[1])
    'timestamp' has 1767322800123, which as seconds since 1970 is outside the plausible range 1990-01-01 .. ... UTC;
    it looks like milliseconds since 1970: divide by 1000 or send an ISO-8601 string
    """
    table = to_arrow(data)
    _check_columns(table, schema, labels=False)
    checker = _Checker(table, frozenset(c.name for c in schema.pii))
    n = table.num_rows
    out: dict[str, pa.Array] = {}
    now = _now(now)
    bounds = schema.timestamp_bounds(now)

    id_col = schema.event_id.name
    out["event_id"] = _event_ids(table.column(id_col) if id_col in table.column_names else None, n, id_col)
    ts_col = schema.timestamp.name
    out["timestamp"] = _timestamps(
        checker, ts_col, table.column(ts_col) if ts_col in table.column_names else None, n, now, bounds
    )
    for col in schema.columns:
        if col.role in (Role.EVENT_ID, Role.TIMESTAMP) or col.name not in table.column_names:
            continue
        out[col.name] = _coerce(checker, col, table.column(col.name), classes=model_classes(schema, col))
    scores = [c for c in schema.scores if c.name in out]
    if len(scores) > 1 and schema.task == "multiclass" and len(scores) == len(schema.scores):
        total = np.zeros(n)
        for c in scores:
            total += np.nan_to_num(out[c.name].to_numpy(zero_copy_only=False).astype(float))
        checker.fail(
            np.abs(total - 1.0) > probability_tolerance, "probabilities_not_summing_to_one", None,
            f"class probabilities ({', '.join(c.name for c in scores)}) do not sum to 1 "
            f"within {probability_tolerance}",
        )
    return _finish(checker, out, table)


def validate_labels(data: Any, schema: Schema, *, now: dt.datetime | None = None) -> ValidatedBatch:
    """Validate a batch of labels: the event id, the target, and optionally ``label_time``.

    >>> import pandas as pd
    >>> from vigil.core.schema import Schema
    >>> schema = Schema.infer(pd.DataFrame({"x": [1.0, 2.0], "y": ["no", "yes"]}), target="y")
    >>> checked = validate_labels(pd.DataFrame({"event_id": ["a", None], "y": ["yes", "no"]}), schema)
    >>> checked.accepted, checked.reasons()
    (1, {'missing_value': 1})
    """
    table = to_arrow(data)
    target = schema.target
    if target is None:
        raise BatchError("this model's schema has no target column, so it cannot take labels")
    _check_columns(table, schema, labels=True)
    checker = _Checker(table, frozenset(c.name for c in schema.pii))
    n = table.num_rows
    now = _now(now)
    id_col = schema.event_id.name
    ids = _ids_as_text(table.column(id_col), id_col)
    checker.fail(_null_mask(ids), "missing_value", id_col, "the event id {column!r} is missing")
    required_target = dataclasses.replace(target, required=True)
    out: dict[str, pa.Array] = {
        "event_id": ids,
        target.name: _coerce(checker, required_target, table.column(target.name),
                             classes=model_classes(schema, target)),
    }
    out[LABEL_TIME] = _timestamps(
        checker, LABEL_TIME, table.column(LABEL_TIME) if LABEL_TIME in table.column_names else None, n, now,
        schema.timestamp_bounds(now),
    )
    return _finish(checker, out, table)


def model_classes(schema: Schema, col: Column) -> list[Any] | None:
    """The classes a classifier's prediction or target column may hold, as stored; None if any value may do.

    Integer labels give ints, string labels strings; boolean labels, a binary
    model that saw a single class in training, and columns of other roles
    give None (nothing to check against).

    >>> import pandas as pd
    >>> s = Schema.infer(pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 1]}), target="y")
    >>> model_classes(s, s.target), model_classes(s, s.column("x"))
    ([0, 1], None)
    """
    if col.role not in (Role.PREDICTION, Role.TARGET) or col.kind != Kind.CATEGORICAL:
        return None
    if col.label_type not in (LabelType.INTEGER, LabelType.STRING):
        return None
    raw = list(schema.classes) if schema.classes is not None else list(col.categories or ())
    if len(raw) < (2 if schema.task == "binary" else 1):
        return None
    if col.label_type == LabelType.STRING:
        return [str(c) for c in raw]
    try:
        return [int(c) for c in raw]
    except (TypeError, ValueError):
        return None


def _finish(checker: _Checker, out: dict[str, pa.Array], source: pa.Table) -> ValidatedBatch:
    keep = np.flatnonzero(~checker.failed)
    table = pa.table(out)
    if len(keep) < checker.n:
        table = table.take(pa.array(keep))
    rejected = checker.rejected_table(out.get("event_id")) if checker.records else empty_rejections()
    masks = {key: mask[keep] for key, mask in checker.signals.items()}
    return ValidatedBatch(table=table, rows=keep, rejected=rejected, signal_masks=masks, source=source)


def _check_columns(table: pa.Table, schema: Schema, *, labels: bool) -> None:
    names = table.column_names
    if labels:
        allowed = {schema.event_id.name, schema.target.name, LABEL_TIME}
        required = [schema.event_id.name, schema.target.name]
    else:
        allowed = set(schema.names)
        required = [c.name for c in schema.features] + [c.name for c in schema.by_role(Role.PREDICTION)]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        near = {n: difflib.get_close_matches(n, sorted(allowed), n=1, cutoff=0.6) for n in unknown}
        guesses = ", ".join(f"{m[0]!r} for {n!r}" for n, m in near.items() if m)
        hint = (
            f"labels take {sorted(allowed)}"
            if labels
            else f"the schema expects {_expected_columns(schema)}; declare other columns as metadata "
                 "(metadata=[...]) when registering the model, or drop them"
        )
        raise BatchError(
            f"columns {unknown} match no column of the schema" + (f" (did you mean {guesses}?)" if guesses else "")
            + f"; {hint}", field=unknown[0], columns=unknown)
    absent = [n for n in required if n not in names]
    if absent:
        raise BatchError(f"required columns {absent} are missing from the batch; it has {names}",
                         field=absent[0], columns=absent)
    if not labels and schema.task == "multiclass":
        scores = [c.name for c in schema.scores]
        given = [n for n in scores if n in names]
        missing = [n for n in scores if n not in names]
        if given and missing:
            raise BatchError(
                f"score columns {missing} are missing from the batch while {given} are given: a multiclass "
                "model's class probabilities come all together (so that their sum can be checked) or not at all",
                field=missing[0], columns=missing)


def _expected_columns(schema: Schema) -> str:
    """Each role's columns, for an error message: "event_id: 'event_id'; feature: 'age', 'sex'; ..."."""
    parts = []
    for role in Role:
        cols = schema.by_role(role)
        if cols:
            shown = ", ".join(repr(c.name) for c in cols[:20]) + (", ..." if len(cols) > 20 else "")
            parts.append(f"{role.value}: {shown}")
    return "; ".join(parts)


# -- per-kind coercion -------------------------------------------------------------------------------


def _null_mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if array.null_count == 0:
        return np.zeros(len(array), dtype=bool)
    return pc.is_null(array).to_numpy(zero_copy_only=False)


def _ids_as_text(values: pa.ChunkedArray, name: str) -> pa.Array:
    """Event ids as strings; ids that are not single values (lists, structs...) are a batch error."""
    try:
        return single_array(values.cast(pa.string()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise BatchError(
            f"the event id column {name!r} holds {values.type} values; an event id is one string or integer "
            "per row", field=name) from None


def _event_ids(values: pa.ChunkedArray | None, n: int, name: str = "event_id") -> pa.Array:
    if values is None:
        return new_event_ids(n)
    ids = _ids_as_text(values, name)
    missing = _null_mask(ids)
    if missing.any():
        fresh = new_event_ids(int(missing.sum())).to_numpy(zero_copy_only=False)
        arr = ids.to_numpy(zero_copy_only=False).astype(object)
        arr[missing] = fresh
        ids = pa.array(arr, pa.string())
    return ids


def new_event_ids(n: int) -> pa.Array:
    """``n`` random UUID4s as 32-character hex strings.

    >>> ids = new_event_ids(3).to_pylist()
    >>> len(set(ids)), len(ids[0]), ids[0][12]
    (3, 32, '4')
    """
    raw = np.frombuffer(secrets.token_bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    data = raw.tobytes().hex().encode()
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))


def _now(now: dt.datetime | None) -> dt.datetime:
    """``now`` (the current time by default) as naive UTC."""
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC).replace(tzinfo=None)
    return now


def _timestamps(
    checker: _Checker, name: str, values: pa.ChunkedArray | None, n: int, now: dt.datetime,
    bounds: tuple[dt.datetime, dt.datetime],
) -> pa.Array:
    """Event or label times: unparseable ones are ``bad_timestamp``, implausible ones ``implausible_timestamp``;
    absent or null ones are ``now`` (and never checked: Vigil chose them)."""
    fill = np.datetime64(now, "us")
    if values is None:
        return pa.array(np.full(n, fill, dtype="datetime64[us]"), pa.timestamp("us"))
    parsed, bad = _checked_timestamps(checker, name, values, bounds,
                                      "set timestamp_range=(earliest, latest) on the model's schema to change it")
    missing = np.isnat(parsed) & ~bad
    if missing.any():
        parsed[missing] = fill
    parsed[bad] = fill
    return pa.array(parsed, pa.timestamp("us"))


def _checked_timestamps(
    checker: _Checker, name: str, values: pa.ChunkedArray | pa.Array, bounds: tuple[dt.datetime, dt.datetime],
    advice: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Parse, then refuse what cannot be parsed and what lies outside ``bounds``; returns the parse and the
    mask of rows refused here (their parsed value is meaningless)."""
    parsed, bad = parse_timestamps(values)
    secs = None
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        secs = values.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            # a finite number too large for microseconds is readable, only absurd: refused as implausible
            too_large = bad & np.isfinite(secs)
        bad = bad & ~too_large
    checker.fail(bad, "bad_timestamp", name, "{column!r} has {value}, which is not a timestamp")
    lo, hi = (np.datetime64(b, "us") for b in bounds)
    known = ~np.isnat(parsed)
    outside = known & ((parsed < lo) | (parsed > hi))
    if secs is not None:
        outside |= too_large
    if outside.any():
        span = f"{_day_or_time(bounds[0])} .. {_day_or_time(bounds[1])} UTC"
        if secs is None:
            checker.fail(outside, "implausible_timestamp", name,
                         f"{{column!r}} has {{value}}, outside the plausible range {span}; {advice}")
        else:
            lo_s, hi_s = (float((b - np.datetime64(0, "us")) / np.timedelta64(1, "s")) for b in (lo, hi))
            rest = outside.copy()
            for unit, divisor in _EPOCH_UNITS:
                with np.errstate(invalid="ignore"):
                    fits = rest & (secs / divisor >= lo_s) & (secs / divisor <= hi_s)
                checker.fail(fits, "implausible_timestamp", name,
                             f"{{column!r}} has {{value}}, which as seconds since 1970 is outside the plausible "
                             f"range {span}; it looks like {unit} since 1970: divide by {divisor} or send an "
                             "ISO-8601 string")
                rest &= ~fits
            checker.fail(rest, "implausible_timestamp", name,
                         f"{{column!r}} has {{value}}, which as seconds since 1970 is outside the plausible range "
                         f"{span}; {advice}")
    return parsed, bad | outside


def _day_or_time(when: dt.datetime) -> str:
    return when.date().isoformat() if when.time() == dt.time() else when.isoformat(sep=" ", timespec="seconds")


def parse_timestamps(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """UTC ``datetime64[us]`` values and a mask of unparseable ones.

    Arrow/pandas timestamps (naive ones are taken as UTC), dates, ISO-8601
    strings (with or without an offset) and numbers (Unix seconds) are read;
    nulls come back as NaT, not as failures.

    >>> ts, bad = parse_timestamps(pa.array(["2026-01-02T03:04:05+01:00", "soon", None]))
    >>> str(ts[0]), bad.tolist()
    ('2026-01-02T02:04:05.000000', [False, True, False])
    """
    t = values.type
    null = _null_mask(values)
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            values = values.cast(pa.timestamp(t.unit, tz="UTC"))
        # nanoseconds are truncated to the microseconds the store keeps, never a reason to refuse the batch
        arr = values.cast(pa.timestamp("us", tz=None) if t.tz is None else pa.timestamp("us", tz="UTC"), safe=False)
        out = pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False)
        out = np.where(null, np.iinfo(np.int64).min, np.nan_to_num(out, nan=0)).astype(np.int64)
        return out.view("datetime64[us]"), np.zeros(len(values), dtype=bool)
    if pa.types.is_date(t):
        return parse_timestamps(values.cast(pa.timestamp("us"), safe=False))
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        secs = values.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            # beyond about 292,000 years either side of 1970 microseconds overflow int64
            bad = ~(np.isfinite(secs) & (np.abs(secs) < 9.2e12)) & ~null
        micros = (np.where(bad | null, 0.0, np.nan_to_num(secs)) * 1e6).astype(np.int64)
        out = micros.view("datetime64[us]").copy()
        out[null | bad] = np.datetime64("NaT")
        return out, bad
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        strings = pd.Series(values.to_numpy(zero_copy_only=False), dtype=object)
        parsed = _parse_strings(strings)
        bad = parsed.isna().to_numpy() & ~null
        return parsed.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]", copy=True), bad
    return np.full(len(values), np.datetime64("NaT"), dtype="datetime64[us]"), ~null


def _parse_strings(strings: pd.Series) -> pd.Series:
    """ISO-8601 first (fast, exact); whatever that misses is tried again in any format pandas knows."""
    parsed = pd.to_datetime(strings, utc=True, errors="coerce", format="ISO8601")
    retry = parsed.isna() & strings.notna()
    if retry.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parsed[retry] = pd.to_datetime(strings[retry], utc=True, errors="coerce", format="mixed")
    return parsed


def _coerce(checker: _Checker, col: Column, values: pa.ChunkedArray, *, classes: list[Any] | None = None
            ) -> pa.Array:
    values = single_array(values)
    if col.kind == Kind.NUMERIC:
        return _numeric(checker, col, values)
    if col.kind == Kind.CATEGORICAL and col.label_type in (LabelType.INTEGER, LabelType.BOOLEAN):
        out = _integer_labels(checker, col, values) if col.label_type == LabelType.INTEGER else _boolean(
            checker, col, values
        )
        _check_classes(checker, col, out, classes)
        _check_categories(checker, col, out)
        return out
    if col.kind in (Kind.CATEGORICAL, Kind.TEXT, Kind.ID):
        out = _strings(checker, col, values)
        _check_classes(checker, col, out, classes)
        _check_categories(checker, col, out)
        return out
    if col.kind == Kind.BOOLEAN:
        return _boolean(checker, col, values)
    if col.kind == Kind.EMBEDDING:
        return _embedding(checker, col, values)
    if col.kind == Kind.ITEMS:
        return _items(checker, col, values)
    if col.kind == Kind.TIMESTAMP:
        parsed, refused = _checked_timestamps(checker, col.name, values, _REPRESENTABLE,
                                              "a stored time must lie in the years 1 to 9999")
        _missing(checker, col, np.isnat(parsed) & ~refused)
        parsed[refused] = np.datetime64("NaT")
        return pa.array(parsed, pa.timestamp("us"))
    raise AssertionError(f"unhandled kind {col.kind}")  # pragma: no cover


def _missing(checker: _Checker, col: Column, mask: np.ndarray) -> None:
    """A feature's or metadata's missing value is a signal; a required column's is an error."""
    if not mask.any():
        return
    if _may_be_missing(col):
        if col.role == Role.FEATURE:
            checker.signal("missing_value", col.name, mask)
        return
    checker.fail(mask, "missing_value", col.name, "{column!r} is required but missing")


def _may_be_missing(col: Column) -> bool:
    return not col.required and col.role in (Role.FEATURE, Role.METADATA, Role.TARGET)


def _numeric(checker: _Checker, col: Column, values: pa.Array) -> pa.Array:
    t = values.type
    if t == pa.float64() and values.null_count == 0:  # the common case, in a few reductions
        x = values.to_numpy()
        if math.isfinite(x.sum()):  # NaN and inf make the sum non-finite (so may overflow: then the slow path)
            _check_range(checker, col, x, clean=True)
            return values
    null = _null_mask(values)
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t):
        if t != pa.float64():
            values = values.cast(pa.float64(), safe=False)  # integers beyond 2**53 lose digits, not the batch
        x = values.to_numpy(zero_copy_only=False)
        mismatch = np.zeros(len(x), dtype=bool)
    elif pa.types.is_null(t):
        x = np.full(len(values), np.nan)
        mismatch = np.zeros(len(x), dtype=bool)
    elif pa.types.is_string(t):
        x = pd.to_numeric(pd.Series(values.to_numpy(zero_copy_only=False), dtype=object), errors="coerce")
        x = x.to_numpy(dtype=float, na_value=np.nan)
        mismatch = np.isnan(x) & ~null
        # "nan" and "inf" spelled out are numbers that fail the finiteness check below, not type errors
        spelled = pc.utf8_lower(pc.utf8_trim_whitespace(values)).to_numpy(zero_copy_only=False)
        mismatch &= ~np.isin(spelled, ["nan", "inf", "-inf", "+inf", "infinity", "-infinity"])
    else:
        x = np.full(len(values), np.nan)
        mismatch = ~null
    checker.fail(mismatch, "type_mismatch", col.name, "{column!r} has {value}, which is not a number")
    clean = not mismatch.any() and bool(np.isfinite(x).all())  # the common case: one pass, no masks
    if not clean:
        nan = np.isnan(x) & ~mismatch
        inf = np.isinf(x)
        if _may_be_missing(col):
            # NaN in a feature is how pandas spells "missing"; infinity is never a measurement
            _missing(checker, col, nan)
            checker.fail(inf, "not_finite", col.name, "{column!r} has {value}; a finite number is required")
        else:
            checker.fail(null & ~mismatch, "missing_value", col.name, "{column!r} is required but missing")
            checker.fail((nan & ~null) | inf, "not_finite", col.name,
                         "{column!r} has {value}; a finite number is required")
    _check_range(checker, col, x, clean=clean)
    if clean:
        return values if values.type == pa.float64() else pa.array(x, pa.float64())
    x = np.where(mismatch | np.isinf(x), np.nan, x)
    return pa.array(x, pa.float64(), mask=np.isnan(x))


def _check_range(checker: _Checker, col: Column, x: np.ndarray, *, clean: bool) -> None:
    """A score outside [0, 1] is refused; a feature outside its training range is counted."""
    lo, hi = (0.0, 1.0) if col.role == Role.SCORE else (col.min, col.max)
    if lo is None or hi is None or not len(x):
        return
    if clean:  # every value finite: two reductions tell whether any is outside
        outside_any = bool(x.min() < lo or x.max() > hi)
    else:
        with np.errstate(invalid="ignore"):
            outside_any = not np.isnan(x).all() and bool(np.nanmin(x) < lo or np.nanmax(x) > hi)
    if not outside_any:
        return
    with np.errstate(invalid="ignore"):
        outside = (x < lo) | (x > hi)
    if col.role == Role.SCORE:
        checker.fail(outside, "probability_out_of_range", col.name,
                     "{column!r} has {value}; a probability must lie in [0, 1]")
    else:
        checker.signal("out_of_range", col.name, outside)


def _strings(checker: _Checker, col: Column, values: pa.Array) -> pa.Array:
    t = values.type
    if pa.types.is_string(t):
        out = values
    elif pa.types.is_boolean(t):
        out = pc.if_else(values, "true", "false")
    elif pa.types.is_floating(t):
        # 3.0 read from a CSV means the category "3"
        x = values.to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(x) & (np.mod(np.nan_to_num(x), 1) == 0) & (np.abs(x) < 2.0**63)
        as_int = pa.array(np.where(integral, x, 0).astype(np.int64)).cast(pa.string())
        out = pc.if_else(pa.array(integral), as_int, values.cast(pa.string()))
        out = pc.if_else(pa.array(np.isnan(x)), pa.scalar(None, pa.string()), out)
    else:
        try:
            out = values.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            checker.fail(~_null_mask(values), "type_mismatch", col.name,
                         "{column!r} has {value}, which is not a single value")
            out = pa.nulls(len(values), pa.string())
    _missing(checker, col, _null_mask(out))
    return out


def _check_classes(checker: _Checker, col: Column, values: pa.Array, classes: list[Any] | None) -> None:
    """A label or predicted class that is not one of the model's classes is refused (compared as stored:
    integers by value, strings as text)."""
    if classes is None:
        return
    known = pa.array(classes, values.type)
    unknown = ~pc.is_in(values, value_set=known).to_numpy(zero_copy_only=False) & ~_null_mask(values)
    shown = ", ".join(repr(c) for c in classes[:20]) + (", ..." if len(classes) > 20 else "")
    checker.fail(unknown, "unknown_class", col.name,
                 f"{{column!r}} has {{value}}, which is not one of the model's classes [{shown}]")


def _check_categories(checker: _Checker, col: Column, values: pa.Array) -> None:
    if not col.categories or col.role not in (Role.FEATURE, Role.PREDICTION, Role.METADATA):
        return
    known = pa.array(list(col.categories), pa.string())
    as_text = values.cast(pa.string())
    unseen = ~pc.is_in(as_text, value_set=known).to_numpy(zero_copy_only=False) & ~_null_mask(values)
    checker.signal("unseen_category", col.name, unseen)


def _boolean(checker: _Checker, col: Column, values: pa.Array) -> pa.Array:
    t = values.type
    null = _null_mask(values)
    if pa.types.is_boolean(t):
        out = values
        mismatch = np.zeros(len(values), dtype=bool)
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        x = values.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        mismatch = ~np.isin(x, [0.0, 1.0]) & ~null
        out = pa.array(x == 1.0, pa.bool_(), mask=null | mismatch)
    elif pa.types.is_string(t):
        low = pc.utf8_lower(pc.utf8_trim_whitespace(values)).to_numpy(zero_copy_only=False)
        is_true, is_false = np.isin(low, list(_TRUE)), np.isin(low, list(_FALSE))
        mismatch = ~(is_true | is_false) & ~null
        out = pa.array(is_true, pa.bool_(), mask=null | mismatch)
    else:
        mismatch = ~null
        out = pa.nulls(len(values), pa.bool_())
    checker.fail(mismatch, "type_mismatch", col.name, "{column!r} has {value}, which is not true or false")
    _missing(checker, col, null)
    return out


def _integer_labels(checker: _Checker, col: Column, values: pa.Array) -> pa.Array:
    t = values.type
    null = _null_mask(values)
    if pa.types.is_integer(t) and t != pa.uint64():
        out = values.cast(pa.int64())
        mismatch = np.zeros(len(values), dtype=bool)
    elif t == pa.uint64():
        raw = pc.fill_null(values, 0).to_numpy(zero_copy_only=False)
        mismatch = (raw > np.iinfo(np.int64).max) & ~null
        out = pa.array(np.where(mismatch, 0, raw).astype(np.int64), pa.int64(), mask=null | mismatch)
    else:
        if pa.types.is_string(t):
            x = pd.to_numeric(pd.Series(values.to_numpy(zero_copy_only=False), dtype=object), errors="coerce")
            x = x.to_numpy(dtype=float, na_value=np.nan)
        elif pa.types.is_floating(t) or pa.types.is_boolean(t):
            x = values.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        else:
            x = np.full(len(values), np.nan)
        with np.errstate(invalid="ignore"):
            mismatch = ~null & ~(np.isfinite(x) & (np.mod(np.nan_to_num(x), 1) == 0) & (np.abs(x) < 2.0**63))
        out = pa.array(np.where(mismatch | null, 0, np.nan_to_num(x)).astype(np.int64), pa.int64(),
                       mask=null | mismatch)
    checker.fail(mismatch, "type_mismatch", col.name, "{column!r} has {value}, which is not a class label")
    _missing(checker, col, null)
    return out


def _embedding(checker: _Checker, col: Column, values: pa.Array) -> pa.Array:
    t = values.type
    null = _null_mask(values)
    target = pa.list_(pa.float32())
    try:
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
            raise pa.ArrowInvalid("not a list")
        out = values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        checker.fail(~null, "type_mismatch", col.name, "{column!r} has {value}, which is not a list of numbers")
        return pa.nulls(len(values), target)
    lengths = pc.list_value_length(out).to_numpy(zero_copy_only=False)
    if col.dimension is not None:
        checker.fail(
            ~null & (np.nan_to_num(lengths, nan=-1) != col.dimension), "wrong_dimension", col.name,
            f"{{column!r}} has a vector of another length than {col.dimension}",
        )
    flat = pc.list_flatten(out).to_numpy(zero_copy_only=False)
    if len(flat) and not np.isfinite(flat).all():
        parents = pc.list_parent_indices(out).to_numpy(zero_copy_only=False)
        bad_rows = np.zeros(len(values), dtype=bool)
        bad_rows[parents[~np.isfinite(flat)]] = True
        checker.fail(bad_rows, "not_finite", col.name, "{column!r} has a vector with NaN or infinity")
    _missing(checker, col, null)
    return out


def _items(checker: _Checker, col: Column, values: pa.Array) -> pa.Array:
    target = pa.list_(pa.string())
    null = _null_mask(values)
    try:
        if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
            raise pa.ArrowInvalid("not a list")
        out = values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        checker.fail(~null, "type_mismatch", col.name, "{column!r} has {value}, which is not a list of items")
        return pa.nulls(len(values), target)
    _missing(checker, col, null)
    return out
