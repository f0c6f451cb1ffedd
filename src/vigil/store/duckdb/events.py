"""Events, labels, quarantine and ingest batches in the embedded home.

Appending is one transaction: de-duplication is decided inside it (the id
index is read and grown under the same lock), then the caller's ``decide``
callback turns what was found into quarantine rows and the batch record,
which are written in the same transaction.

A quarantined row already held for the same reason (same model, kind,
version, column and original row) is stored once, however often it is
re-sent.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from vigil.core.schema import EARLIEST_TIMESTAMP, FUTURE_TOLERANCE, Schema
from vigil.core.segments import Segment
from vigil.core.validation import LABEL_TIME
from vigil.store.duckdb.database import Database, quote
from vigil.store.duckdb.id_index import EventIdIndex
from vigil.store.duckdb.metadata import utcnow
from vigil.store.duckdb.segments import compile_segment
from vigil.store.duckdb.tables import INTERNAL_COLUMNS, events_table, labels_table, table_columns
from vigil.store.protocols import Appended, Batch, DecideLabels, DecidePredictions

#: Event times a monitoring read can place in a window (pandas' nanosecond range, whole years).
READABLE_FROM, READABLE_UNTIL = dt.datetime(1678, 1, 1), dt.datetime(2262, 1, 1)
_SAMPLE_SCALE = 2**32

QUARANTINE_SCHEMA = pa.schema([
    ("model_id", pa.int64()), ("version", pa.string()), ("batch_id", pa.string()), ("kind", pa.string()),
    ("row_number", pa.int64()), ("event_id", pa.string()), ("reason", pa.string()), ("column_name", pa.string()),
    ("value", pa.string()), ("message", pa.string()), ("raw_json", pa.string()),
    ("quarantined_at", pa.timestamp("us")),
])


def column_sql(target: str | None, alias: str = "e") -> Any:
    """How a segment's column names become SQL: the target from the label table ``l``, the rest from ``alias``.

    >>> column_sql("default")("default"), column_sql("default")("age")
    ('l."default"', 'e."age"')
    """
    return lambda name: f"l.{quote(name)}" if target is not None and name == target else f"{alias}.{quote(name)}"


def time_filter(where: list[str], params: list[Any], start: Any, end: Any, column: str = "e.timestamp") -> None:
    """Append ``start <= column < end`` (either bound optional) to a WHERE list."""
    if start is not None:
        where.append(f"{column} >= ?")
        params.append(start)
    if end is not None:
        where.append(f"{column} < ?")
        params.append(end)


def _naive_utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def sample_condition(rate: float) -> tuple[str, list[Any]]:
    """SQL keeping a stable pseudo-random share ``rate`` of events, decided by the event id alone."""
    cutoff = int(min(max(rate, 0.0), 1.0) * _SAMPLE_SCALE)
    return "CAST(('0x' || left(md5(e.event_id), 8)) AS UBIGINT) < ?", [cutoff]


class DuckDBEvents:
    """:class:`~vigil.store.protocols.EventStore` on a home's DuckDB file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _commit_time(self) -> dt.datetime:
        """An ``ingested_at`` taken inside the writing transaction, strictly after the previous one in this
        process, so "ingested after the mark" never misses a batch that committed later."""
        last = self.db.shared.get("last_ingested_at")
        now = utcnow()
        if last is not None and now <= last:
            now = last + dt.timedelta(microseconds=1)
        self.db.shared["last_ingested_at"] = now
        return now

    # -- the id index ----------------------------------------------------------------------------------
    def _index(self, table: str) -> EventIdIndex:
        """The id index of an event table, loaded on first use and shared by every user of the file."""
        indexes = self.db.shared["event_id_indexes"]
        index = indexes.get(table)
        if index is None:
            hashes = self.db.numpy(f"SELECT hash(event_id) AS h FROM {table}")["h"]
            index = indexes[table] = EventIdIndex(np.asarray(hashes, dtype=np.uint64))
        return index

    # -- appending -------------------------------------------------------------------------------------
    def append_predictions(self, model_id: int, version: str, table: pa.Table, *, columns: Sequence[str],
                           target: str | None, batch_id: str, now: dt.datetime,
                           decide: DecidePredictions) -> Appended:
        """Store a validated, redacted batch of events; ids already stored are duplicates or conflicts."""
        ev_table = events_table(model_id)
        n = table.num_rows
        with self.db.transaction() as con:
            now = self._commit_time()
            index = self._index(ev_table)
            # The SQL below reads these Arrow tables by their variable names (DuckDB's replacement scan:
            # half the cost of register/unregister, which matters for small batches).
            vigil_batch = table  # noqa: F841
            id_hash = np.asarray(
                con.execute("SELECT hash(event_id) AS h FROM vigil_batch").fetchnumpy()["h"], dtype=np.uint64)
            keep = np.ones(n, dtype=bool)
            conflict = np.zeros(n, dtype=bool)
            duplicates = 0
            sorted_ids = np.sort(id_hash)
            repeated = bool(n > 1 and (sorted_ids[1:] == sorted_ids[:-1]).any())
            candidates = index.contains(id_hash)
            if repeated or candidates.any():
                # only rows whose id is repeated or may be stored need their content compared
                keep, conflict, duplicates = self._resolve_duplicates(
                    con, ev_table, table, id_hash, candidates, repeated, columns, version)
            vigil_kept = table if keep.all() else table.filter(pa.array(keep))  # noqa: F841
            names = ", ".join(quote(c) for c in
                              ["event_id", "timestamp", "model_version", "ingested_at", "batch_id", *columns])
            values = ", ".join(["event_id", "timestamp", "?", "?", "?", *(quote(c) for c in columns)])
            con.execute(f"INSERT INTO {ev_table} ({names}) SELECT {values} FROM vigil_kept",
                        [version, now, batch_id])
            labels = 0
            if target is not None and target in table.column_names:
                t = quote(target)
                (labels,) = con.execute(
                    f"INSERT INTO {labels_table(model_id)} (event_id, {t}, {LABEL_TIME}, ingested_at, batch_id) "
                    f"SELECT event_id, {t}, timestamp, ?, ? FROM vigil_kept WHERE {t} IS NOT NULL",
                    [now, batch_id]).fetchall()[0]
            appended = Appended(keep=keep, conflict=conflict, duplicates=duplicates, labels=int(labels))
            quarantined, batch = decide(appended)
            self._write_quarantine(con, model_id, quarantined)
            self._record_batch(con, model_id, batch, now)
            # grown inside the transaction: a concurrent writer waits for the lock and then sees these ids (if
            # the commit fails the index holds ids that are not stored: candidates only, confirmed against the
            # table, so that costs a lookup and never an event)
            index.add(sorted_ids if keep.all() else np.sort(id_hash[keep]), presorted=True)
        return appended

    def _resolve_duplicates(
        self, con: Any, ev_table: str, clean: pa.Table, id_hash: np.ndarray, candidates: np.ndarray,
        repeated: bool, stored_cols: Sequence[str], version: str,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Which rows to keep, which conflict, and how many are exact duplicates (a no-op).

        An event's content is what it predicted from what, under which version (not when). It is
        hashed only here, to compare a re-sent id with the first or the stored one, so the common
        path (all ids new) never computes it.
        """
        n = clean.num_rows
        keep = np.ones(n, dtype=bool)
        conflict = np.zeros(n, dtype=bool)
        duplicates = 0
        staged_content = ", ".join(quote(c) for c in stored_cols)
        vigil_batch = clean  # noqa: F841 - read by name in the SQL (a DuckDB replacement scan)
        content = np.asarray(con.execute(f"SELECT hash(?::VARCHAR, {staged_content}) AS c FROM vigil_batch",
                                         [version]).fetchnumpy()["c"], dtype=np.uint64)
        if repeated:  # the first row of an id wins
            order = np.argsort(id_hash, kind="stable")
            sorted_ids = id_hash[order]
            group_start = np.concatenate([[True], sorted_ids[1:] != sorted_ids[:-1]])
            firsts = np.empty(n, dtype=np.int64)
            firsts[order] = order[np.maximum.accumulate(np.where(group_start, np.arange(n), 0))]
            ids = clean.column("event_id").to_numpy(zero_copy_only=False)
            repeat = (firsts != np.arange(n)) & (ids[firsts] == ids)
            same = repeat & (content[firsts] == content)
            keep &= ~repeat
            conflict |= repeat & ~same
            duplicates += int(same.sum())
        candidates = candidates & keep
        if candidates.any():  # confirm against the table: a hash hit is not yet a match
            rows = np.flatnonzero(candidates)
            cand = pa.table({"event_id": clean.column("event_id").take(pa.array(rows)),
                             "content_hash": pa.array(content[rows], pa.uint64()), "pos": pa.array(rows)})
            con.register("_vigil_candidates", cand)
            try:
                stored = ", ".join(f"e.{quote(c)}" for c in stored_cols)
                found = con.execute(
                    f"SELECT c.pos, hash(e.model_version, {stored}) = c.content_hash AS same "
                    f"FROM _vigil_candidates c JOIN {ev_table} e ON e.event_id = c.event_id").fetchnumpy()
            finally:
                con.unregister("_vigil_candidates")
            pos, same = np.asarray(found["pos"], dtype=np.int64), np.asarray(found["same"], dtype=bool)
            keep[pos] = False
            conflict[pos[~same]] = True
            duplicates += int(same.sum())
        return keep, conflict, duplicates

    def append_labels(self, model_id: int, table: pa.Table, *, target: str, batch_id: str, now: dt.datetime,
                      decide: DecideLabels) -> np.ndarray:
        """Join labels to stored events; ``decide`` says which to keep from what is stored already."""
        ltable, etable = labels_table(model_id), events_table(model_id)
        t = quote(target)
        n = table.num_rows
        with self.db.transaction() as con:
            now = self._commit_time()
            staged = table.append_column("pos", pa.array(np.arange(n)))
            con.register("_vigil_labels", staged)
            try:
                joined = con.execute(
                    f"SELECT s.pos, e.event_id IS NOT NULL AS known, l.event_id IS NOT NULL AS labelled, "
                    f"l.{t} IS NOT DISTINCT FROM s.{t} AS same "
                    f"FROM _vigil_labels s "
                    f"LEFT JOIN (SELECT DISTINCT event_id FROM {etable} WHERE event_id IN "
                    f"(SELECT event_id FROM _vigil_labels)) e ON e.event_id = s.event_id "
                    f"LEFT JOIN {ltable} l ON l.event_id = s.event_id ORDER BY s.pos").fetchnumpy()
            finally:
                con.unregister("_vigil_labels")
            keep, quarantined, batch = decide(np.asarray(joined["known"], dtype=bool),
                                              np.asarray(joined["labelled"], dtype=bool),
                                              np.asarray(joined["same"], dtype=bool))
            con.register("_vigil_new_labels", table.filter(pa.array(keep)))
            try:
                con.execute(f"INSERT INTO {ltable} (event_id, {t}, {LABEL_TIME}, ingested_at, batch_id) "
                            f"SELECT event_id, {t}, {LABEL_TIME}, ?, ? FROM _vigil_new_labels", [now, batch_id])
            finally:
                con.unregister("_vigil_new_labels")
            self._write_quarantine(con, model_id, quarantined)
            self._record_batch(con, model_id, batch, now)
        return keep

    def _write_quarantine(self, con: Any, model_id: int, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        qtable = pa.Table.from_pylist([{**r, "model_id": model_id} for r in records], schema=QUARANTINE_SCHEMA)
        cols = ", ".join(QUARANTINE_SCHEMA.names)
        con.register("_vigil_quarantine", qtable)
        try:
            # a row already held, unresolved, for the same reason by an earlier batch is not held again (re-sending is
            # safe); identical rows within one batch are each held
            con.execute(
                f"INSERT INTO quarantine ({cols}) SELECT {cols} FROM _vigil_quarantine n WHERE NOT EXISTS "
                "(SELECT 1 FROM quarantine q WHERE q.model_id = n.model_id "
                "AND q.kind = n.kind AND coalesce(q.version, '') = coalesce(n.version, '') AND q.reason = n.reason "
                "AND coalesce(q.column_name, '') = coalesce(n.column_name, '') AND q.raw_json = n.raw_json "
                "AND q.resolved_at IS NULL)")
        finally:
            con.unregister("_vigil_quarantine")

    @staticmethod
    def _record_batch(con: Any, model_id: int, batch: Batch, now: dt.datetime) -> None:
        con.execute(
            "INSERT INTO ingest_batches (batch_id, model_id, version, kind, source, received, accepted, duplicates, "
            "quarantined, signals_json, committed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [batch.batch_id, model_id, batch.version, batch.kind, batch.source, batch.received, batch.accepted,
             batch.duplicates, batch.quarantined, json.dumps(batch.signals), now])

    # -- labels that came before their events ----------------------------------------------------------
    def labels_waiting(self, model_id: int) -> bool:
        """Whether quarantined labels wait for their events (read from the store, so every handle sees it)."""
        return self.db.fetchone(
            "SELECT EXISTS (SELECT 1 FROM quarantine WHERE model_id = ? AND kind = 'labels' "
            "AND reason = 'unknown_event' AND resolved_at IS NULL)", [model_id])[0]

    def waiting_labels(self, model_id: int, arrived: pa.Array | pa.ChunkedArray | None) -> list[tuple[int, str]]:
        """``(entry id, original row JSON)`` of waiting labels whose events are stored (among ``arrived``)."""
        source = "_vigil_arrived" if arrived is not None else events_table(model_id)
        tables = {"_vigil_arrived": pa.table({"event_id": arrived})} if arrived is not None else {}
        rows = self.db.arrow(
            f"SELECT q.entry_id, q.raw_json FROM quarantine q WHERE q.model_id = ? AND q.kind = 'labels' "
            f"AND q.reason = 'unknown_event' AND q.resolved_at IS NULL AND q.event_id IN "
            f"(SELECT event_id FROM {source}) ORDER BY q.entry_id", [model_id], tables=tables).to_pylist()
        return [(r["entry_id"], r["raw_json"]) for r in rows]

    def resolve_quarantine(self, entry_ids: Sequence[int], batch_id: str, now: dt.datetime) -> None:
        """Mark quarantine rows resolved by a batch."""
        with self.db.transaction() as con:
            con.execute("UPDATE quarantine SET resolved_at = ?, resolved_batch = ? WHERE entry_id IN "
                        "(SELECT unnest(?::BIGINT[]))", [now, batch_id, list(entry_ids)])

    # -- reading ---------------------------------------------------------------------------------------
    def columns(self, model_id: int) -> list[str]:
        """The event table's content columns, in order."""
        with self.db.lock:
            return [c for c in table_columns(self.db.con, events_table(model_id)) if c not in INTERNAL_COLUMNS]

    def has_labels(self, model_id: int) -> bool:
        """Whether the model has a label table."""
        return self.db.table_exists(labels_table(model_id))

    def read(self, model_id: int, *, version: str | None = None, start: Any = None, end: Any = None,
             segment: Segment | None = None, target: str | None = None, labelled_only: bool = False,
             columns: Iterable[str] | None = None, limit: int | None = None, sample_rate: float | None = None,
             order: bool = True, readable_only: bool = False, offset: int = 0) -> pa.Table:
        """Events of a model (a version's, in ``[start, end)``, in a segment), with the label joined if ``target``.

        ``columns`` limits the event columns read (``event_id`` and ``timestamp`` always come); the label
        columns are the target and ``label_time``. ``readable_only`` keeps events whose time a window can
        hold (see :data:`READABLE_FROM`).
        """
        etable = events_table(model_id)
        present = self.columns(model_id)
        wanted = present if columns is None else [c for c in present if c in set(columns) | {"event_id", "timestamp"}]
        joined = target is not None and self.has_labels(model_id)
        select = [f"e.{quote(c)}" for c in wanted if not (joined and c == target)]
        join = ""
        if joined:
            select += [f"l.{quote(target)}", f"l.{LABEL_TIME}"]
            join = f"{'' if labelled_only else 'LEFT '}JOIN {labels_table(model_id)} l ON l.event_id = e.event_id"
        where, params = self._where(version, start, end, segment, target if joined else None, readable_only)
        if sample_rate is not None:
            cond, extra = sample_condition(sample_rate)
            where.append(cond)
            params += extra
        sql = f"SELECT {', '.join(select)} FROM {etable} e {join} WHERE {' AND '.join(where)}"
        if order:
            sql += " ORDER BY e.timestamp, e.event_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        if offset:
            sql += " OFFSET ?"
            params.append(int(offset))
        return self.db.arrow(sql, params)

    @staticmethod
    def _where(version: str | None, start: Any, end: Any, segment: Segment | None, target: str | None,
               readable_only: bool) -> tuple[list[str], list[Any]]:
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if version is not None:
            where.append("e.model_version = ?")
            params.append(version)
        time_filter(where, params, start, end)
        if readable_only:
            time_filter(where, params, READABLE_FROM, READABLE_UNTIL)
        if segment is not None and not segment.is_all:
            sql, seg_params = compile_segment(segment, column_sql(target))
            where.append(f"({sql})")
            params += seg_params
        return where, params

    def event_versions(self, model_id: int, event_ids: Sequence[str]) -> list[str]:
        """The distinct versions that predicted these events."""
        return [r["model_version"] for r in self.db.arrow(
            f"SELECT DISTINCT model_version FROM {events_table(model_id)} WHERE event_id IN "
            "(SELECT event_id FROM _wanted_ids) ORDER BY 1",
            tables={"_wanted_ids": pa.table({"event_id": pa.array(list(event_ids), pa.string())})}).to_pylist()]

    def rows_by_id(self, model_id: int, event_ids: Sequence[str]) -> pa.Table:
        """The stored rows of some events (any order; missing ones absent)."""
        return self.db.arrow(
            f"SELECT e.* EXCLUDE (batch_id, ingested_at) FROM {events_table(model_id)} e "
            "JOIN _wanted_ids w USING (event_id)",
            tables={"_wanted_ids": pa.table({"event_id": pa.array(list(event_ids), pa.string())})})

    def ingested_through(self, model_id: int) -> dt.datetime | None:
        """When the model's last event was stored."""
        return self.db.fetchone(f"SELECT max(ingested_at) FROM {events_table(model_id)}")[0]

    def event_span(self, model_id: int, version: str | None = None
                   ) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The time of the first and the last readable event (of a version); ``(None, None)`` without events."""
        where, params = self._where(version, None, None, None, None, True)
        first, last = self.db.fetchone(f"SELECT min(e.timestamp), max(e.timestamp) FROM {events_table(model_id)} e "
                                       f"WHERE {' AND '.join(where)}", params)
        return first, last

    # -- deleting --------------------------------------------------------------------------------------
    def delete(self, model_id: int, *, version: str | None, event_ids: Sequence[str] | None, start: Any,
               end: Any) -> tuple[int, list[tuple[str, dt.datetime]]]:
        """Delete events (by id, or in ``[start, end)``) with their labels and explanations.

        Returns how many were deleted and the ``(version, hour)`` base windows they touched, so the
        caller can recompute those windows' profiles.
        """
        etable, ltable = events_table(model_id), labels_table(model_id)
        where, params = self._where(version, start, end, None, None, False)
        tables: dict[str, pa.Table] = {}
        if event_ids is not None:
            where.append("e.event_id IN (SELECT event_id FROM _doomed_ids)")
            tables["_doomed_ids"] = pa.table({"event_id": pa.array(list(event_ids), pa.string())})
        cond = " AND ".join(where)
        with self.db.transaction() as con, self.db.registered(tables):
            touched = con.execute(
                f"SELECT DISTINCT e.model_version, date_trunc('hour', e.timestamp) FROM {etable} e WHERE {cond}",
                params).fetchall()
            doomed = f"(SELECT e.event_id FROM {etable} e WHERE {cond})"
            if self.db.table_exists(ltable):
                con.execute(f"DELETE FROM {ltable} WHERE event_id IN {doomed}", params)
            con.execute(f"DELETE FROM explanations WHERE model_id = ? AND event_id IN {doomed}", [model_id, *params])
            (deleted,) = con.execute(f"DELETE FROM {etable} e WHERE {cond}", params).fetchall()[0]
            # the id index cannot forget ids: a deleted id is a candidate that the table no longer confirms
        return int(deleted), [(v, h) for v, h in touched]

    # -- quarantine and batches ------------------------------------------------------------------------
    def quarantine(self, model_id: int, *, reason: str | None, kind: str | None,
                   include_resolved: bool) -> pd.DataFrame:
        """Refused rows of a model, oldest first."""
        return self.db.df(
            "SELECT batch_id, kind, version, row_number, event_id, reason, column_name AS column, value, message, "
            "raw_json AS raw, quarantined_at, resolved_at FROM quarantine WHERE model_id = ? "
            "AND (? IS NULL OR reason = ?) AND (? IS NULL OR kind = ?) AND (? OR resolved_at IS NULL) "
            "ORDER BY entry_id",
            [model_id, reason, reason, kind, kind, include_resolved])

    def quarantine_counts(self, model_id: int, version: str) -> list[tuple[Any, str | None, str, int, bool]]:
        """``(time, column, reason, rows, by_event_time)`` of a version's quarantined rows: the time is the row's
        own event time (in the version's timestamp column, an offset taken into account) where it parses to a
        plausible time (the version's timestamp bounds, the latest taken from when it was refused) that a read
        can place (``by_event_time`` True), else when it was refused (False): a wrong time is often the fault."""
        row = self.db.fetchone("SELECT schema_json FROM model_versions WHERE model_id = ? AND version = ?",
                               [model_id, version])
        schema = Schema.from_json(row[0]) if row is not None else None
        name = schema.timestamp.name if schema is not None else "timestamp"
        pointer = "/" + name.replace("~", "~0").replace("/", "~1")  # a JSON pointer: any column name
        earliest, latest = EARLIEST_TIMESTAMP, None  # None: a day past when each row was refused
        if schema is not None:
            earliest, fixed = schema.timestamp_bounds(READABLE_FROM)
            latest = fixed if schema.timestamp_range and schema.timestamp_range[1] is not None else None
        earliest, latest = (_naive_utc(earliest), None if latest is None else _naive_utc(latest))
        return self.db.fetchall(
            "SELECT coalesce(CASE WHEN own THEN t END, quarantined_at) AS at, column_name, reason, count(*), own "
            "FROM (SELECT *, coalesce(t >= ? AND t < ? AND t <= coalesce(CAST(? AS TIMESTAMP), quarantined_at + ?), "
            "false) AS own FROM (SELECT *, CAST(TRY_CAST(json_extract_string(raw_json, ?) AS TIMESTAMPTZ) AS "
            "TIMESTAMP) AS t FROM quarantine WHERE model_id = ? AND version = ?)) GROUP BY 1, 2, 3, 5",
            [max(earliest, READABLE_FROM), READABLE_UNTIL, latest, FUTURE_TOLERANCE, pointer, model_id, version])

    def batches(self, model_id: int) -> pd.DataFrame:
        """The record of every ingest call of a model."""
        return self.db.df(
            "SELECT batch_id, kind, version, source, received, accepted, duplicates, quarantined, committed_at "
            "FROM ingest_batches WHERE model_id = ? ORDER BY committed_at", [model_id])
