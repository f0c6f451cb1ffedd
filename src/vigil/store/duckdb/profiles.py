"""Window profiles, their marks and version baselines in the embedded home.

A profile row is keyed by (model, version, segment, grain, window start,
column); the segment by its canonical text, never by what the user typed. A
mark records the newest ``ingested_at`` of events and labels the profiles of
one (version, segment, grain) cover, so finding what changed is one query.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from typing import Any

import pyarrow as pa

from vigil.core.segments import Segment
from vigil.store.duckdb.database import Database, quote
from vigil.store.duckdb.events import READABLE_FROM, READABLE_UNTIL, column_sql, time_filter
from vigil.store.duckdb.metadata import utcnow
from vigil.store.duckdb.segments import compile_segment
from vigil.store.duckdb.tables import events_table, labels_table

_UNITS = {"1h": "hour", "1d": "day"}


class DuckDBProfiles:
    """:class:`~vigil.store.protocols.ProfileStore` on a home's DuckDB file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def high_water(self, model_id: int, labels: bool) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The newest ``ingested_at`` of the model's events and (with ``labels``) labels."""
        row = self.db.fetchone(
            f"SELECT (SELECT max(ingested_at) FROM {events_table(model_id)})"
            + (f", (SELECT max(ingested_at) FROM {labels_table(model_id)})" if labels else ", NULL"))
        return row[0], row[1]

    def mark(self, model_id: int, version: str, segment: str, grain: str) -> tuple[Any, Any] | None:
        """What the stored profiles cover: ``(events_through, labels_through)``, or None if never computed."""
        return self.db.fetchone(
            "SELECT events_through, labels_through FROM profile_marks WHERE model_id = ? AND version = ? "
            "AND segment = ? AND grain = ?", [model_id, version, segment, grain])

    def _segment(self, segment: Segment, target: str | None) -> tuple[str, list[Any]]:
        if segment.is_all:
            return "TRUE", []
        sql, params = compile_segment(segment, column_sql(target))
        return f"({sql})", params

    def dirty_windows(self, model_id: int, version: str, segment: Segment, grain: str,
                      marks: tuple[Any, Any] | None, target: str | None) -> list[dt.datetime]:
        """Base windows that received events or labels after ``marks`` (all windows when None)."""
        etable, ltable = events_table(model_id), labels_table(model_id)
        events_through, labels_through = marks if marks else (None, None)
        unit = _UNITS[grain]
        seg_sql, seg_params = self._segment(segment, target)
        join = f"LEFT JOIN {ltable} l ON l.event_id = e.event_id" if target is not None else ""
        where, params = ["e.model_version = ?", "(? IS NULL OR e.ingested_at > ?)", seg_sql], [
            version, events_through, events_through, *seg_params]
        time_filter(where, params, READABLE_FROM, READABLE_UNTIL)
        sql = (f"SELECT DISTINCT date_trunc('{unit}', e.timestamp) AS w FROM {etable} e {join} "
               f"WHERE {' AND '.join(where)}")
        if target is not None:
            lwhere, lparams = ["e.model_version = ?", "(? IS NULL OR l.ingested_at > ?)", seg_sql], [
                version, labels_through, labels_through, *seg_params]
            time_filter(lwhere, lparams, READABLE_FROM, READABLE_UNTIL)
            sql += (f" UNION SELECT DISTINCT date_trunc('{unit}', e.timestamp) FROM {ltable} l "
                    f"JOIN {etable} e ON e.event_id = l.event_id WHERE {' AND '.join(lwhere)}")
            params += lparams
        return sorted(r[0] for r in self.db.fetchall(sql, params))

    def window_rows(self, model_id: int, version: str, start: dt.datetime, end: dt.datetime,
                    segment: Segment, target: str | None) -> pa.Table:
        """Every event of one base window and segment, with its label (when the model has a target)."""
        etable = events_table(model_id)
        select, join = "e.*", ""
        if target is not None:
            select += f", l.{quote(target)}, l.label_time"
            join = f"LEFT JOIN {labels_table(model_id)} l ON l.event_id = e.event_id"
        seg_sql, seg_params = self._segment(segment, target)
        return self.db.arrow(
            f"SELECT {select} FROM {etable} e {join} WHERE e.model_version = ? AND e.timestamp >= ? "
            f"AND e.timestamp < ? AND {seg_sql}", [version, start, end, *seg_params])

    def replace(self, model_id: int, version: str, segment: str, grain: str,
                windows: dict[dt.datetime, dict[str, bytes]], marks: tuple[Any, Any],
                stale: Iterable[dt.datetime] = ()) -> None:
        """Store recomputed windows (replacing what they held; ``stale`` windows are emptied) and the new marks."""
        now = utcnow()
        with self.db.transaction() as con:
            for start in sorted({*windows, *stale}):
                con.execute("DELETE FROM profiles WHERE model_id = ? AND version = ? AND segment = ? AND grain = ? "
                            "AND window_start = ?", [model_id, version, segment, grain, start])
                rows = windows.get(start, {})
                if rows:
                    con.executemany("INSERT INTO profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                    [[model_id, version, segment, grain, start, name, payload.decode(), now]
                                     for name, payload in rows.items()])
            con.execute("DELETE FROM profile_marks WHERE model_id = ? AND version = ? AND segment = ? AND grain = ?",
                        [model_id, version, segment, grain])
            con.execute("INSERT INTO profile_marks VALUES (?, ?, ?, ?, ?, ?)",
                        [model_id, version, segment, grain, marks[0], marks[1]])

    def forget(self, model_id: int, version: str, windows: Iterable[tuple[str, dt.datetime]]) -> None:
        """Drop the stored profiles of some base windows (``(grain, window start)``) and every mark of the version,
        so the next refresh recomputes them (after a deletion)."""
        with self.db.transaction() as con:
            for grain, start in windows:
                con.execute("DELETE FROM profiles WHERE model_id = ? AND version = ? AND grain = ? "
                            "AND window_start = ?", [model_id, version, grain, start])
            con.execute("DELETE FROM profile_marks WHERE model_id = ? AND version = ?", [model_id, version])

    def tracked(self, model_id: int, version: str) -> list[tuple[str, str]]:
        """The (grain, canonical segment) pairs whose profiles are kept for a version."""
        return [(r[0], r[1]) for r in self.db.fetchall(
            "SELECT grain, segment FROM profile_marks WHERE model_id = ? AND version = ? ORDER BY grain, segment",
            [model_id, version])]

    def read(self, model_id: int, version: str, segment: str, grain: str, *, columns: Iterable[str] | None,
             start: Any, end: Any) -> list[tuple[dt.datetime, str, bytes]]:
        """Stored profiles ``(window start, column, payload)`` of a version and segment, oldest first."""
        return [(at, name, payload) for at, name, _, payload in  # type: ignore[misc]
                self.read_stamped(model_id, version, segment, grain, columns=columns, start=start, end=end)]

    def read_stamped(self, model_id: int, version: str, segment: str, grain: str, *,
                     columns: Iterable[str] | None, start: Any, end: Any,
                     have: Collection[tuple[dt.datetime, str, Any]] = ()
                     ) -> list[tuple[dt.datetime, str, Any, bytes | None]]:
        """:meth:`read` with each profile's stamp (when it was computed): ``(window start, column, stamp,
        payload)``, the payload None for the ``(window start, column, stamp)`` the caller already holds in
        ``have``."""
        where, params = ["model_id = ?", "version = ?", "segment = ?", "grain = ?"], [model_id, version, segment,
                                                                                      grain]
        if columns is not None:
            where.append("list_contains(?, column_name)")
            params.append(list(columns))
        time_filter(where, params, start, end, column="window_start")
        # the payloads are read by row id, after the filter: a filter that reads them decompresses the payloads of
        # every profile in the row groups it scans (several times slower for a series of one column)
        if not have:
            return [(r[0], r[1], r[2], r[3].encode()) for r in self.db.fetchall(
                "SELECT window_start, column_name, computed_at, payload FROM profiles WHERE rowid IN "
                f"(SELECT rowid FROM profiles WHERE {' AND '.join(where)}) ORDER BY window_start", params)]
        with self.db.lock:  # one connection: no write comes between the two queries, so the row ids hold
            keys = self.db.fetchall(f"SELECT rowid, window_start, column_name, computed_at FROM profiles "
                                    f"WHERE {' AND '.join(where)} ORDER BY window_start", params)
            wanted = [r[0] for r in keys if (r[1], r[2], r[3]) not in have]
            found = self.db.fetchall("SELECT rowid, payload FROM profiles WHERE rowid IN "
                                     "(SELECT unnest(?::BIGINT[]))", [wanted]) if wanted else []
        payloads = {rowid: payload.encode() for rowid, payload in found}
        return [(at, name, stamp, payloads.get(rowid)) for rowid, at, name, stamp in keys]

    def baseline(self, model_id: int, version: str) -> str | None:
        """A version's stored baseline payload."""
        row = self.db.fetchone("SELECT payload FROM baselines WHERE model_id = ? AND version = ?", [model_id, version])
        return None if row is None else row[0]

    def save_baseline(self, model_id: int, version: str, payload: str) -> None:
        """Store a version's baseline (once: a second save keeps the first)."""
        with self.db.transaction() as con:
            con.execute("INSERT INTO baselines VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [model_id, version, payload, utcnow()])

    def first_day(self, model_id: int, version: str) -> pa.Table:
        """The first day of a version's events (the baseline of a version without training data)."""
        etable = events_table(model_id)
        return self.db.arrow(
            f"SELECT * FROM {etable} WHERE model_version = ? AND timestamp >= ? AND timestamp < ? AND timestamp < "
            f"(SELECT min(timestamp) + INTERVAL 1 DAY FROM {etable} WHERE model_version = ? AND timestamp >= ? "
            f"AND timestamp < ?)",
            [version, READABLE_FROM, READABLE_UNTIL, version, READABLE_FROM, READABLE_UNTIL])

