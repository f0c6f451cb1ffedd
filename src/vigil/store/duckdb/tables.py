"""Each model's event and label tables in the embedded home, and the types its columns are stored as.

>>> events_table(3), labels_table(3)
('events_3', 'labels_3')
>>> from vigil.core.schema import Column, Kind, Role
>>> duckdb_type(Column("age", Role.FEATURE, Kind.NUMERIC))
'DOUBLE'
"""

from __future__ import annotations

from typing import Any

from vigil.core.schema import Column, Role, Schema
from vigil.core.validation import LABEL_TIME, arrow_type
from vigil.errors import SchemaError
from vigil.store.duckdb.database import quote

#: Columns the event table has besides the schema's, in order, with their types.
SYSTEM_COLUMNS = {
    "event_id": "VARCHAR NOT NULL",
    "timestamp": "TIMESTAMP NOT NULL",
    "model_version": "VARCHAR NOT NULL",
    "ingested_at": "TIMESTAMP NOT NULL",
    "batch_id": "VARCHAR NOT NULL",
}
#: Event-table columns that are bookkeeping, not event content.
INTERNAL_COLUMNS = ("batch_id", "ingested_at")


def events_table(model_id: int) -> str:
    """Name of a model's event table."""
    return f"events_{int(model_id)}"


def labels_table(model_id: int) -> str:
    """Name of a model's label table."""
    return f"labels_{int(model_id)}"


def duckdb_type(col: Column) -> str:
    """The DuckDB type a schema column is stored as."""
    return col.storage_type


def stored_columns(schema: Schema) -> list[Column]:
    """The schema columns an event row stores (the target lives in the label table; dropped PII nowhere)."""
    return [c for c in schema.columns if c.role not in (Role.EVENT_ID, Role.TIMESTAMP, Role.TARGET)
            and c.pii != "drop"]


def table_columns(con: Any, table: str) -> dict[str, str]:
    """``{column: type}`` of a table (empty when it does not exist)."""
    return {r[0]: r[1] for r in con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
        [table]).fetchall()}


def ensure_event_tables(con: Any, model_id: int, schema: Schema) -> None:
    """Create the model's event and label tables, or add the columns a new version brings."""
    table = events_table(model_id)
    stored = stored_columns(schema)
    existing = table_columns(con, table)
    if not existing:
        cols = [f"{quote(n)} {t}" for n, t in SYSTEM_COLUMNS.items()]
        cols += [f"{quote(c.name)} {duckdb_type(c)}" for c in stored]
        con.execute(f"CREATE TABLE {table} ({', '.join(cols)})")
    else:
        for col in stored:
            have = existing.get(col.name)
            if have is None:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {quote(col.name)} {duckdb_type(col)}")
            elif have != duckdb_type(col):
                raise SchemaError(
                    f"column {col.name!r} is stored as {have} for earlier versions of this model; "
                    f"this version's schema makes it {duckdb_type(col)}: rename it or keep its kind",
                    field=col.name)
    target = schema.target
    if target is None:
        return
    ltable = labels_table(model_id)
    existing = table_columns(con, ltable)
    if not existing:
        con.execute(
            f"CREATE TABLE {ltable} (event_id VARCHAR NOT NULL, {quote(target.name)} {duckdb_type(target)}, "
            f"{LABEL_TIME} TIMESTAMP NOT NULL, ingested_at TIMESTAMP NOT NULL, batch_id VARCHAR NOT NULL)")
    elif existing.get(target.name) is None:
        raise SchemaError(f"this model's target is {[c for c in existing if c not in SYSTEM_COLUMNS]}; "
                          f"a version cannot change it to {target.name!r}", field="target")
    _ = arrow_type(target)  # every target kind must be storable
