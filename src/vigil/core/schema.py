"""Column roles of a model's events, declared or inferred from training data.

A :class:`Schema` says, for each column a model's events carry, what it is
(its :class:`Role`: feature, prediction, score, target, metadata...), how it
is typed (its :class:`Kind`) and what the training data looked like (range,
known categories, whether it had missing values). Those observed constraints
are the baseline for integrity checks: a value outside them is stored and
counted, not refused.

>>> import pandas as pd
>>> train = pd.DataFrame({"age": [25, 40, 61], "sex": ["F", "M", "F"], "default": [0, 1, 0]})
>>> schema = Schema.infer(train, target="default", protected=["sex"])
>>> [(c.name, c.role.value, c.kind.value) for c in schema.columns]  # doctest: +NORMALIZE_WHITESPACE
[('event_id', 'event_id', 'id'), ('timestamp', 'timestamp', 'timestamp'),
 ('age', 'feature', 'numeric'), ('sex', 'feature', 'categorical'),
 ('prediction', 'prediction', 'categorical'), ('score', 'score', 'numeric'),
 ('default', 'target', 'categorical')]
>>> schema.column("age").min, schema.column("age").max
(25.0, 61.0)
>>> schema.column("sex").protected, schema.positive_class
(True, 1)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa

from vigil.errors import InvalidParameterError, SchemaError

TASKS = ("binary", "multiclass", "regression", "ranking")

#: Column names the event store uses for its own fields; a schema column may not take them
#: except in the role they name.
RESERVED_NAMES = {
    "event_id": "event_id",
    "timestamp": "timestamp",
    "model_version": None,
    "ingested_at": None,
    "batch_id": None,
    "label_time": None,
    "content_hash": None,
}

#: Up to this many distinct string values a training column is a categorical feature; above, text.
DEFAULT_MAX_CATEGORIES = 200

#: Event times before this (UTC) are implausible unless a model's ``timestamp_range`` says otherwise: it
#: lets decades-old backfills in and catches a zero or negative epoch.
EARLIEST_TIMESTAMP = dt.datetime(1990, 1, 1)
#: How far past the ingest time an event time may lie by default (clocks that run a little fast).
FUTURE_TOLERANCE = dt.timedelta(days=1)

#: The longest name (of a model, version, dataset, project) Vigil accepts.
MAX_NAME_LENGTH = 200


def check_name(value: object, field: str) -> str:
    """``value`` if it can name a model, version, dataset or project; else :class:`InvalidParameterError`.

    A name is a string that is not blank, holds no NUL byte and has at most
    :data:`MAX_NAME_LENGTH` characters.

    >>> check_name("credit-risk", "model")
    'credit-risk'
    >>> check_name("  ", "model")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidParameterError: model must not be blank
    """
    if not isinstance(value, str):
        raise InvalidParameterError(f"{field} must be a string, got {type(value).__name__} {value!r}", field=field)
    if not value.strip():
        raise InvalidParameterError(f"{field} must not be blank", field=field)
    if "\x00" in value:
        raise InvalidParameterError(f"{field} must not contain a NUL byte: {value!r}", field=field)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidParameterError(
            f"{field} has {len(value)} characters; at most {MAX_NAME_LENGTH} are allowed: {value[:40]!r}...",
            field=field)
    return value


class Role(StrEnum):
    """What a column is to the model."""

    EVENT_ID = "event_id"
    TIMESTAMP = "timestamp"
    FEATURE = "feature"
    PREDICTION = "prediction"
    SCORE = "score"
    TARGET = "target"
    METADATA = "metadata"


class Kind(StrEnum):
    """How a column's values are typed and stored."""

    ID = "id"
    TIMESTAMP = "timestamp"
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    TEXT = "text"
    EMBEDDING = "embedding"
    ITEMS = "items"  # a list of item ids: a ranking's recommendations or the items acted upon


class LabelType(StrEnum):
    """Storage type of a class label (a prediction or target of a classifier)."""

    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"


PII_ACTIONS = ("hash", "drop")


@dataclass(frozen=True)
class Column:
    """One column of a model's events.

    ``nullable``, ``min``, ``max`` and ``categories`` are what the training
    data held (a baseline for integrity checks: values outside it are stored
    and counted); ``required`` makes a missing feature or metadata value an
    error instead of a counted signal (event ids, timestamps, predictions and
    scores are always required); ``label_type`` types a
    classifier's prediction and target; ``class_label`` names the class a
    score column is the probability of; ``pii`` is ``"hash"`` or ``"drop"``.

    >>> Column("age", Role.FEATURE, Kind.NUMERIC, min=18.0, max=90.0).storage_type
    'DOUBLE'
    """

    name: str
    role: Role
    kind: Kind
    nullable: bool = True
    required: bool = False
    protected: bool = False
    pii: str | None = None
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    dimension: int | None = None
    label_type: LabelType | None = None
    class_label: str | None = None

    def __post_init__(self) -> None:
        if self.pii is not None and self.pii not in PII_ACTIONS:
            raise SchemaError(f"column {self.name!r}: pii must be one of {PII_ACTIONS}, got {self.pii!r}")
        if self.pii is not None and self.role in (Role.EVENT_ID, Role.TIMESTAMP, Role.PREDICTION, Role.SCORE):
            raise SchemaError(f"column {self.name!r}: a {self.role.value} column cannot be PII")

    @property
    def storage_type(self) -> str:
        """The DuckDB type this column is stored as."""
        if self.pii == "hash":
            return "VARCHAR"
        if self.kind in (Kind.CATEGORICAL,) and self.label_type is not None:
            return {LabelType.STRING: "VARCHAR", LabelType.INTEGER: "BIGINT", LabelType.BOOLEAN: "BOOLEAN"}[
                self.label_type
            ]
        return {
            Kind.ID: "VARCHAR",
            Kind.TIMESTAMP: "TIMESTAMP",
            Kind.NUMERIC: "DOUBLE",
            Kind.CATEGORICAL: "VARCHAR",
            Kind.BOOLEAN: "BOOLEAN",
            Kind.TEXT: "VARCHAR",
            Kind.EMBEDDING: "FLOAT[]",
            Kind.ITEMS: "VARCHAR[]",
        }[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; :meth:`from_dict` reads it back."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v is not False}
        out["role"], out["kind"] = self.role.value, self.kind.value
        out["nullable"] = self.nullable
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.label_type is not None:
            out["label_type"] = self.label_type.value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        """Build a column from :meth:`to_dict` output or a hand-written dict."""
        data = dict(data)
        try:
            data["role"] = Role(data["role"])
            data["kind"] = Kind(data["kind"])
            if data.get("label_type") is not None:
                data["label_type"] = LabelType(data["label_type"])
        except (KeyError, ValueError) as err:
            raise SchemaError(f"column {data.get('name')!r}: {err}") from None
        if data.get("categories") is not None:
            data["categories"] = tuple(str(c) for c in data["categories"])
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SchemaError(f"column {data.get('name')!r}: unknown fields {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class Schema:
    """The columns of a model's events and their roles; immutable, JSON round-trips.

    >>> import pandas as pd
    >>> s = Schema.infer(pd.DataFrame({"x": [1.0, 2.0], "y": [0.5, 1.5]}), target="y", task="regression")
    >>> Schema.from_json(s.to_json()) == s
    True
    """

    columns: tuple[Column, ...]
    task: str = "binary"
    positive_class: Any = None
    classes: tuple[Any, ...] | None = None
    version: int = 1
    timestamp_range: tuple[str | None, str | None] | None = None
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise SchemaError(f"task must be one of {TASKS}, got {self.task!r}")
        object.__setattr__(self, "timestamp_range", _timestamp_range(self.timestamp_range))
        by_name: dict[str, Column] = {}
        for col in self.columns:
            if col.name in by_name:
                raise SchemaError(f"column {col.name!r} appears twice in the schema")
            reserved_role = RESERVED_NAMES.get(col.name, "")
            if col.name in RESERVED_NAMES and reserved_role != col.role.value:
                raise SchemaError(
                    f"column {col.name!r} is a name Vigil keeps for its own field; rename it"
                    + (f" or give it the role {reserved_role!r}" if reserved_role else "")
                )
            by_name[col.name] = col
        object.__setattr__(self, "_by_name", by_name)
        for role in (Role.EVENT_ID, Role.TIMESTAMP):
            if len(self.by_role(role)) != 1:
                raise SchemaError(f"a schema needs exactly one {role.value} column")
        if len(self.by_role(Role.PREDICTION)) > 1 or len(self.by_role(Role.TARGET)) > 1:
            raise SchemaError("a schema has at most one prediction and one target column")
        if not self.by_role(Role.PREDICTION) and not self.by_role(Role.SCORE):
            raise SchemaError("a schema needs a prediction column or score columns")

    # -- lookups -------------------------------------------------------------------------------------
    def column(self, name: str) -> Column:
        """The column called ``name``; :class:`SchemaError` naming the known ones if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaError(f"no column {name!r} in the schema; columns: {list(self._by_name)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        """Column names in schema order."""
        return [c.name for c in self.columns]

    def by_role(self, role: Role | str) -> list[Column]:
        """The columns with that role, in schema order."""
        role = Role(role)
        return [c for c in self.columns if c.role == role]

    def _one(self, role: Role) -> Column | None:
        cols = self.by_role(role)
        return cols[0] if cols else None

    @property
    def event_id(self) -> Column:
        """The event id column."""
        return self.by_role(Role.EVENT_ID)[0]

    @property
    def timestamp(self) -> Column:
        """The event time column."""
        return self.by_role(Role.TIMESTAMP)[0]

    @property
    def prediction(self) -> Column | None:
        """The prediction column, if the model has one."""
        return self._one(Role.PREDICTION)

    @property
    def target(self) -> Column | None:
        """The target (ground truth) column, if declared."""
        return self._one(Role.TARGET)

    @property
    def features(self) -> list[Column]:
        """The model's input columns."""
        return self.by_role(Role.FEATURE)

    @property
    def scores(self) -> list[Column]:
        """Score or class-probability columns."""
        return self.by_role(Role.SCORE)

    @property
    def protected(self) -> list[Column]:
        """Protected attributes (features or metadata)."""
        return [c for c in self.columns if c.protected]

    @property
    def pii(self) -> list[Column]:
        """Columns never stored in clear."""
        return [c for c in self.columns if c.pii]

    def timestamp_bounds(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The earliest and latest plausible event time (naive UTC) for events ingested at ``now``.

        By default :data:`EARLIEST_TIMESTAMP` and ``now`` + :data:`FUTURE_TOLERANCE`;
        ``timestamp_range=(earliest, latest)`` replaces either (``None`` keeps the default).

        >>> import pandas as pd
        >>> s = Schema.infer(pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}), target="y")
        >>> [str(t) for t in s.timestamp_bounds(dt.datetime(2026, 3, 1))]
        ['1990-01-01 00:00:00', '2026-03-02 00:00:00']
        >>> s = dataclasses.replace(s, timestamp_range=("1960-01-01", None))
        >>> str(s.timestamp_bounds(dt.datetime(2026, 3, 1))[0])
        '1960-01-01 00:00:00'
        """
        if now.tzinfo is not None:
            now = now.astimezone(dt.UTC).replace(tzinfo=None)
        lo, hi = self.timestamp_range or (None, None)
        return (EARLIEST_TIMESTAMP if lo is None else dt.datetime.fromisoformat(lo),
                now + FUTURE_TOLERANCE if hi is None else dt.datetime.fromisoformat(hi))

    # -- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``timestamp_range`` only when set, so older readers see what they know)."""
        out = {
            "version": self.version,
            "task": self.task,
            "positive_class": _jsonable(self.positive_class),
            "classes": None if self.classes is None else [_jsonable(c) for c in self.classes],
            "columns": [c.to_dict() for c in self.columns],
        }
        if self.timestamp_range is not None:
            out["timestamp_range"] = list(self.timestamp_range)
        return out

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """Read back :meth:`to_dict` output."""
        if data.get("version", 1) > 1:
            raise SchemaError(f"schema version {data['version']} is newer than this Vigil reads (1)")
        classes = data.get("classes")
        return cls(
            columns=tuple(Column.from_dict(c) for c in data["columns"]),
            task=data.get("task", "binary"),
            positive_class=data.get("positive_class"),
            classes=None if classes is None else tuple(classes),
            timestamp_range=data.get("timestamp_range"),  # absent from schemas stored before it existed
        )

    @classmethod
    def from_json(cls, text: str) -> Schema:
        """Read back :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    def replace_column(self, column: Column) -> Schema:
        """A copy with ``column`` in place of the one with the same name (or appended)."""
        cols = [column if c.name == column.name else c for c in self.columns]
        if column.name not in self:
            cols.append(column)
        return dataclasses.replace(self, columns=tuple(cols))

    # -- inference -----------------------------------------------------------------------------------
    @classmethod
    def infer(
        cls,
        training_data: Any,
        *,
        target: str | None = None,
        task: str | None = None,
        features: Sequence[str] | None = None,
        prediction: str | None = "prediction",
        scores: Sequence[str] | Mapping[str, Any] | str | None = None,
        metadata: Sequence[str] | Mapping[str, str] = (),
        protected: Iterable[str] = (),
        pii: Sequence[str] | Mapping[str, str] = (),
        event_id: str = "event_id",
        timestamp: str = "timestamp",
        overrides: Mapping[str, Any] | None = None,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        timestamp_range: Sequence[Any] | None = None,
    ) -> Schema:
        """Infer a schema from a training DataFrame (pandas, polars or pyarrow).

        Every column but the target, event id, timestamp and metadata becomes a
        feature unless ``features`` lists them; each feature's kind comes from its dtype
        (numbers are numeric, booleans boolean, strings categorical up to
        ``max_categories`` distinct values and text beyond, lists of numbers
        embeddings). ``metadata`` names columns events carry beside the
        features (a mapping gives their kind), ``protected`` marks protected
        attributes (features or metadata), ``pii`` maps columns to ``"hash"``
        or ``"drop"`` (each must be a training or metadata column). ``overrides`` maps a
        column name to a role, a kind, or a dict of :class:`Column` fields, and wins over
        everything inferred. ``timestamp_range=(earliest, latest)`` bounds the plausible
        event times (see :meth:`timestamp_bounds`).

        >>> import pandas as pd
        >>> df = pd.DataFrame({"income": [1.0, 2.0], "zip": ["1", "2"], "y": ["a", "b"]})
        >>> s = Schema.infer(df, target="y", metadata=["user"], pii={"user": "hash"},
        ...                  overrides={"zip": "text"})
        >>> s.column("zip").kind.value, s.column("user").role.value, s.column("user").pii
        ('text', 'metadata', 'hash')
        """
        table = _as_arrow(training_data)
        names = table.column_names
        if target is not None and target not in names:
            raise SchemaError(f"target column {target!r} is not in the training data; columns: {names}")
        overrides = dict(overrides or {})
        metadata_kinds = dict(metadata) if isinstance(metadata, Mapping) else {m: "categorical" for m in metadata}
        from vigil.core.pii import check_pii_columns

        pii_actions = check_pii_columns(pii, [*names, *metadata_kinds, *overrides]) if pii else {}
        protected = set(protected)

        if task is None:
            task = _infer_task(table.column(target)) if target is not None else "binary"
        if task not in TASKS:
            raise SchemaError(f"task must be one of {TASKS}, got {task!r}")

        if features is None:  # every column but those of another role, the model's own outputs among them
            outputs = {prediction, *(name for name, _ in _score_columns(scores, task, None))}
            features = [n for n in names if n not in {target, event_id, timestamp, *metadata_kinds, *outputs}]
        missing = [f for f in features if f not in names]
        if missing:
            raise SchemaError(f"feature columns {missing} are not in the training data; columns: {names}")

        cols: list[Column] = [
            Column(event_id, Role.EVENT_ID, Kind.ID, nullable=False),
            Column(timestamp, Role.TIMESTAMP, Kind.TIMESTAMP, nullable=False),
        ]
        for name in features:
            cols.append(_infer_feature(name, table.column(name), max_categories))

        classes: tuple[Any, ...] | None = None
        positive: Any = None
        label_type: LabelType | None = None
        if target is not None and task in ("binary", "multiclass"):
            label_type, classes = _label_info(target, table.column(target))
            if task == "binary":
                if len(classes) > 2:
                    raise SchemaError(
                        f"task 'binary' but target {target!r} has {len(classes)} classes: {list(classes)[:10]}"
                    )
                positive = classes[-1] if classes else None

        def output_column(name: str, role: Role) -> Column:
            if task == "regression":
                return Column(name, role, Kind.NUMERIC, nullable=role is Role.TARGET)
            if task == "ranking":
                return Column(name, role, Kind.ITEMS, nullable=role is Role.TARGET)
            return Column(
                name,
                role,
                Kind.CATEGORICAL,
                nullable=role is Role.TARGET,
                label_type=label_type or LabelType.STRING,
                categories=None if classes is None else tuple(str(c) for c in classes),
            )

        if prediction is not None:
            cols.append(output_column(prediction, Role.PREDICTION))
        for name, class_label in _score_columns(scores, task, classes):
            cols.append(Column(name, Role.SCORE, Kind.NUMERIC, nullable=False, min=0.0, max=1.0,
                               class_label=class_label))
        if target is not None:
            cols.append(output_column(target, Role.TARGET))
        for name, kind in metadata_kinds.items():
            cols.append(Column(name, Role.METADATA, _kind(kind, name)))

        by_name = {c.name: c for c in cols}
        for name in pii_actions:
            if name not in by_name:
                cols.append(Column(name, Role.METADATA, Kind.CATEGORICAL))
                by_name[name] = cols[-1]
        for name in protected:
            if name not in by_name:
                raise SchemaError(
                    f"protected attribute {name!r} is neither a feature nor a metadata column; "
                    f"add it to metadata=[...] if the model does not use it"
                )
        updated = []
        for col in cols:
            changes: dict[str, Any] = {}
            if col.name in protected:
                changes["protected"] = True
            if col.name in pii_actions:
                changes["pii"] = pii_actions[col.name]
            if col.name in overrides:
                changes.update(_override_fields(col.name, overrides.pop(col.name)))
            updated.append(dataclasses.replace(col, **changes) if changes else col)
        for name, spec in overrides.items():  # overrides for columns not seen in the training data
            fields = _override_fields(name, spec)
            fields.setdefault("role", Role.METADATA)
            fields.setdefault("kind", Kind.CATEGORICAL)
            updated.append(Column(name=name, **fields))
        return cls(columns=tuple(updated), task=task, positive_class=positive, classes=classes,
                   timestamp_range=None if timestamp_range is None else tuple(timestamp_range))


# -- helpers -----------------------------------------------------------------------------------------


def check_event_ids(value: object, field: str = "event_ids") -> list[str]:
    """Stored event ids as a list of strings: one id (a string or an integer) or a list-like of them.

    Anything else is an :class:`InvalidParameterError` naming ``field``.

    >>> check_event_ids("e1"), check_event_ids(["e1", 7])
    (['e1'], ['e1', '7'])
    >>> check_event_ids({"e1": 1})
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidParameterError: event_ids is an event id or a list of event ids, got dict
    """
    def one(item: object) -> str | None:
        if isinstance(item, str):
            return item
        if isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
            return str(item)
        return None

    single = one(value)
    if single is not None:
        return [single]
    if not isinstance(value, Iterable) or isinstance(value, (bytes, Mapping)):
        raise InvalidParameterError(f"{field} is an event id or a list of event ids, got {type(value).__name__}",
                                    field=field)
    value = list(value)
    ids = [one(item) for item in value]
    if None in ids:
        bad = next(item for item, text in zip(value, ids, strict=True) if text is None)
        raise InvalidParameterError(f"{field} holds {type(bad).__name__} {bad!r}: an event id is a string or an "
                                    "integer"[:300], field=field)
    return [text for text in ids if text is not None]


def _as_arrow(data: Any) -> pa.Table:
    from vigil.core.frames import to_arrow

    return to_arrow(data)


def _timestamp_range(value: Any) -> tuple[str | None, str | None] | None:
    """``(earliest, latest)`` as ISO-8601 text, naive UTC; either may be None (the default bound)."""
    if value is None:
        return None
    from vigil.core.frames import naive_utc

    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise SchemaError(f"timestamp_range must be a pair (earliest, latest), got {value!r}",
                          field="timestamp_range")
    bounds = []
    for bound in value:
        if bound is None:
            bounds.append(None)
            continue
        try:
            when = naive_utc(bound, field="timestamp_range")
        except InvalidParameterError as err:
            raise SchemaError(err.message, field="timestamp_range") from None
        bounds.append(when.isoformat())
    lo, hi = bounds
    if lo is not None and hi is not None and dt.datetime.fromisoformat(lo) >= dt.datetime.fromisoformat(hi):
        raise SchemaError(f"timestamp_range: the earliest time {lo} is not before the latest {hi}",
                          field="timestamp_range")
    return lo, hi


def _jsonable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _kind(value: Any, name: str) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        raise SchemaError(
            f"column {name!r}: unknown kind {value!r}; kinds: {[k.value for k in Kind]}"
        ) from None


def _override_fields(name: str, spec: Any) -> dict[str, Any]:
    """Turn an override (a role, a kind, 'protected', 'pii', or a dict of fields) into Column fields."""
    if isinstance(spec, Column):
        return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name != "name"}
    if isinstance(spec, str):
        if spec == "protected":
            return {"protected": True}
        if spec == "pii":
            return {"pii": "hash"}
        if spec in Role.__members__.values():
            return {"role": Role(spec)}
        if spec in Kind.__members__.values():
            return {"kind": Kind(spec)}
        raise SchemaError(
            f"override for column {name!r}: {spec!r} is neither a role {[r.value for r in Role]}, "
            f"a kind {[k.value for k in Kind]}, 'protected' nor 'pii'"
        )
    if isinstance(spec, Mapping):
        fields = dict(spec)
        if "role" in fields:
            fields["role"] = Role(fields["role"])
        if "kind" in fields:
            fields["kind"] = _kind(fields["kind"], name)
        if fields.get("categories") is not None:
            fields["categories"] = tuple(str(c) for c in fields["categories"])
        allowed = {f.name for f in dataclasses.fields(Column)} - {"name"}
        unknown = set(fields) - allowed
        if unknown:
            raise SchemaError(f"override for column {name!r}: unknown fields {sorted(unknown)}")
        return fields
    raise SchemaError(f"override for column {name!r} must be a string or a dict, got {type(spec).__name__}")


def _infer_task(target: pa.ChunkedArray) -> str:
    t = target.type
    if pa.types.is_floating(t):
        values = target.drop_null().to_numpy()
        if len(values) and not np.all(np.equal(np.mod(values, 1), 0)):
            return "regression"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "ranking"
    n_classes = len(target.drop_null().unique())
    if pa.types.is_floating(t) or pa.types.is_integer(t):
        return "binary" if n_classes <= 2 else ("multiclass" if n_classes <= 50 else "regression")
    return "binary" if n_classes <= 2 else "multiclass"


def _label_info(name: str, target: pa.ChunkedArray) -> tuple[LabelType, tuple[Any, ...]]:
    t = target.type
    if pa.types.is_dictionary(t):
        target = target.cast(t.value_type)
        t = t.value_type
    values = target.drop_null().unique().to_pylist()
    if pa.types.is_boolean(t):
        return LabelType.BOOLEAN, tuple(sorted(values))
    if pa.types.is_integer(t):
        return LabelType.INTEGER, tuple(sorted(int(v) for v in values))
    if pa.types.is_floating(t):
        if not all(float(v).is_integer() for v in values):
            raise SchemaError(f"target {name!r} has non-integer numbers; a classifier's classes must be labels")
        return LabelType.INTEGER, tuple(sorted(int(v) for v in values))
    return LabelType.STRING, tuple(sorted(str(v) for v in values))


def _score_columns(
    scores: Sequence[str] | Mapping[str, Any] | str | None, task: str, classes: tuple[Any, ...] | None
) -> list[tuple[str, str | None]]:
    if scores is None:
        return [("score", None if classes is None else str(classes[-1]))] if task == "binary" else []
    if isinstance(scores, str):
        if task == "multiclass":
            raise SchemaError("a multiclass model needs one score column per class: scores={column: class}")
        return [(scores, None if classes is None else str(classes[-1]))]
    if isinstance(scores, Mapping):
        return [(name, str(label)) for name, label in scores.items()]
    scores = list(scores)
    if task == "multiclass" and classes is not None:
        if len(scores) != len(classes):
            raise SchemaError(
                f"{len(scores)} score columns for {len(classes)} classes {list(classes)}; "
                "give one per class, in the order of the classes, or a mapping column -> class"
            )
        return [(name, str(label)) for name, label in zip(scores, classes, strict=True)]
    return [(name, None) for name in scores]


def _infer_feature(name: str, values: pa.ChunkedArray, max_categories: int) -> Column:
    t = values.type
    nullable = values.null_count > 0
    if pa.types.is_dictionary(t):
        values = values.cast(t.value_type)
        t = t.value_type
    if pa.types.is_boolean(t):
        return Column(name, Role.FEATURE, Kind.BOOLEAN, nullable=nullable)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        arr = values.cast(pa.float64()).to_numpy()
        finite = arr[np.isfinite(arr)]
        nullable = nullable or len(finite) < len(arr)
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (None, None)
        return Column(name, Role.FEATURE, Kind.NUMERIC, nullable=nullable, min=lo, max=hi)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        vt = t.value_type
        if pa.types.is_floating(vt) or pa.types.is_integer(vt):
            lengths = pa.compute.list_value_length(values).drop_null().unique().to_pylist()
            dim = lengths[0] if len(lengths) == 1 else None
            return Column(name, Role.FEATURE, Kind.EMBEDDING, nullable=nullable, dimension=dim)
        return Column(name, Role.FEATURE, Kind.ITEMS, nullable=nullable)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        distinct = values.drop_null().unique()
        if len(distinct) <= max_categories:
            return Column(name, Role.FEATURE, Kind.CATEGORICAL, nullable=nullable,
                          categories=tuple(sorted(distinct.to_pylist())))
        return Column(name, Role.FEATURE, Kind.TEXT, nullable=nullable)
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        raise SchemaError(
            f"column {name!r} holds dates; give it a role (timestamp=..., or metadata) or convert it to a number"
        )
    raise SchemaError(f"column {name!r} has type {t}, which Vigil cannot use as a feature; override its kind")


def infer_schema(training_data: Any, **options: Any) -> Schema:
    """Shorthand for :meth:`Schema.infer`.

    >>> import pandas as pd
    >>> infer_schema(pd.DataFrame({"x": [0.0], "y": [1]}), target="y").task
    'binary'
    """
    return Schema.infer(training_data, **options)

