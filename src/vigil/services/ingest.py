"""Ingest predictions and labels: validate, redact PII, de-duplicate, commit in one transaction.

Each call is one transaction: when it returns, its accepted rows, its
quarantined rows and the record of the batch are committed together; if the
process dies before, none of them is there.

Idempotency: an event id already stored with the same content (model
version, features, outputs and metadata; the timestamp is not part of it, so
a re-send that lets Vigil stamp the time again is still the same event) is
skipped and counted as a duplicate; with other content it is quarantined as
``duplicate_conflict``. Within one batch the first row of an id wins.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from vigil.core.frames import table_rows, to_arrow
from vigil.core.pii import redact_record, redact_table
from vigil.core.validation import LABEL_TIME, ValidatedBatch, validate_labels, validate_predictions
from vigil.services.registry import ModelVersion, Registry, events_table, labels_table, utcnow
from vigil.store.database import quote
from vigil.store.id_index import EventIdIndex


@dataclass
class IngestResult:
    """What one ingest call did.

    ``accepted`` rows were stored, ``duplicates`` were already stored with the
    same content (a no-op), ``quarantined`` were refused and kept with a
    reason (``reasons`` counts them by reason code); ``signals`` counts
    accepted values worth a look (unseen categories, out-of-range numbers,
    missing feature values) by signal and column.
    """

    batch_id: str
    received: int
    accepted: int
    duplicates: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    signals: dict[str, dict[str, int]] = field(default_factory=dict)
    labels: int = 0

    def __add__(self, other: IngestResult) -> IngestResult:
        signals = {k: dict(v) for k, v in self.signals.items()}
        for name, cols in other.signals.items():
            for col, n in cols.items():
                signals.setdefault(name, {})[col] = signals.get(name, {}).get(col, 0) + n
        return IngestResult(
            batch_id=other.batch_id, received=self.received + other.received,
            accepted=self.accepted + other.accepted, duplicates=self.duplicates + other.duplicates,
            quarantined=self.quarantined + other.quarantined,
            reasons=dict(Counter(self.reasons) + Counter(other.reasons)), signals=signals,
            labels=self.labels + other.labels)

    def summary(self) -> str:
        """One line for people.

        >>> IngestResult("b", 10, 7, 1, 2, {"not_finite": 2}).summary()
        '10 received: 7 accepted, 1 duplicate, 2 quarantined (not_finite: 2)'
        """
        text = f"{self.received} received: {self.accepted} accepted, {self.duplicates} duplicate" + (
            "s" if self.duplicates != 1 else "") + f", {self.quarantined} quarantined"
        if self.reasons:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.reasons.items())) + ")"
        return text


class Ingestor:
    """Writes events and labels of one project's models."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.db = registry.db
        self._pending_labels: dict[int, bool] = {}

    # -- id index ------------------------------------------------------------------------------------
    def _index(self, table: str) -> EventIdIndex:
        """The id index of an event table, loaded on first use and shared by every user of the file."""
        indexes = self.db.shared["event_id_indexes"]
        index = indexes.get(table)
        if index is None:
            hashes = self.db.execute(f"SELECT hash(event_id) AS h FROM {table}").fetchnumpy()["h"]
            index = indexes[table] = EventIdIndex(np.asarray(hashes, dtype=np.uint64))
        return index

    # -- predictions ---------------------------------------------------------------------------------
    def log_predictions(self, model: str, version: str, data: Any, *, source: str | None = None) -> IngestResult:
        """Validate and store one batch of prediction events (see :class:`IngestResult`)."""
        mv = self.registry.version_for_writing(model, str(version))
        table = to_arrow(data)
        checked = validate_predictions(table, mv.schema)
        return self._store_predictions(mv, checked, source)

    def _store_predictions(self, mv: ModelVersion, checked: ValidatedBatch, source: str | None) -> IngestResult:
        schema = mv.schema
        key = self.registry.pii_key() if schema.pii else b""
        batch_id = uuid.uuid4().hex
        now = utcnow()
        ev_table = events_table(mv.model_id)
        target = schema.target
        clean = checked.table
        if schema.pii:
            clean = redact_table(clean, schema, key)
        stored_cols = [c for c in clean.column_names if c not in ("event_id", "timestamp")
                       and not (target is not None and c == target.name)]
        n = clean.num_rows
        quarantine_rows: list[dict[str, Any]] = []
        duplicates = 0
        with self.db.transaction() as con:
            index = self._index(ev_table)
            # The SQL below reads these Arrow tables by their variable names (DuckDB's replacement scan:
            # half the cost of register/unregister, which matters for small batches).
            vigil_batch = clean  # noqa: F841
            id_hash = np.asarray(
                con.execute("SELECT hash(event_id) AS h FROM vigil_batch").fetchnumpy()["h"], dtype=np.uint64)
            keep = np.ones(n, dtype=bool)
            conflict = np.zeros(n, dtype=bool)
            sorted_ids = np.sort(id_hash)
            repeated = bool(n > 1 and (sorted_ids[1:] == sorted_ids[:-1]).any())
            candidates = index.contains(id_hash)
            if repeated or candidates.any():
                # only rows whose id is repeated or may be stored need their content compared
                keep, conflict, duplicates = self._resolve_duplicates(
                    con, ev_table, clean, id_hash, candidates, repeated, stored_cols, mv.version)
            vigil_kept = clean if keep.all() else clean.filter(pa.array(keep))  # noqa: F841
            columns = ", ".join(quote(c) for c in
                                ["event_id", "timestamp", "model_version", "ingested_at", "batch_id", *stored_cols])
            values = ", ".join(["event_id", "timestamp", "?", "?", "?", *(quote(c) for c in stored_cols)])
            con.execute(f"INSERT INTO {ev_table} ({columns}) SELECT {values} FROM vigil_kept",
                        [mv.version, now, batch_id])
            labels = 0
            if target is not None and target.name in clean.column_names:
                target_sql = quote(target.name)
                (labels,) = con.execute(
                    f"INSERT INTO {labels_table(mv.model_id)} (event_id, {target_sql}, {LABEL_TIME}, ingested_at, "
                    f"batch_id) SELECT event_id, {target_sql}, timestamp, ?, ? FROM vigil_kept "
                    f"WHERE {target_sql} IS NOT NULL", [now, batch_id]).fetchall()[0]

            if conflict.any():
                rows = checked.rows[conflict]
                for pos, row in zip(np.flatnonzero(conflict).tolist(), rows.tolist(), strict=True):
                    quarantine_rows.append({
                        "row_number": row, "event_id": clean.column("event_id")[pos].as_py(),
                        "reason": "duplicate_conflict", "column_name": None, "value": None,
                        "message": "event id already stored (or repeated in this batch) with different content"})
            for rec in checked.rejected.to_pylist():
                quarantine_rows.append({"row_number": rec["row"], "event_id": rec["event_id"],
                                        "reason": rec["reason"], "column_name": rec["column"],
                                        "value": rec["value"], "message": rec["message"]})
            self._write_quarantine(con, mv, mv.version, batch_id, "predictions", quarantine_rows, checked, key, now)
            accepted = int(keep.sum())
            reasons = dict(Counter(r["reason"] for r in quarantine_rows))
            result = IngestResult(batch_id, checked.source.num_rows if checked.source is not None else n,
                                  accepted, duplicates, len(quarantine_rows), reasons,
                                  checked.signal_counts(keep), labels)
            self._record_batch(con, mv, mv.version, batch_id, "predictions", source, result, now)
        if accepted == n:
            index.add(sorted_ids, presorted=True)
        else:
            index.add(id_hash[keep])
        if accepted and self._has_pending_labels(mv.model_id):
            new_ids = clean.column("event_id") if accepted == n else clean.column("event_id").filter(pa.array(keep))
            result.labels += self.retry_labels(mv.model, arrived=new_ids).accepted
        return result

    def _resolve_duplicates(
        self, con: Any, ev_table: str, clean: pa.Table, id_hash: np.ndarray, candidates: np.ndarray,
        repeated: bool, stored_cols: list[str], version: str,
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

    # -- labels --------------------------------------------------------------------------------------
    def _has_pending_labels(self, model_id: int) -> bool:
        """Whether labels wait for their events (read once per process, then kept up to date)."""
        pending = self._pending_labels.get(model_id)
        if pending is None:
            with self.db.lock:
                pending = self._pending_labels[model_id] = self._labels_waiting(self.db.con, model_id)
        return pending

    def retry_labels(self, model: str, *, arrived: pa.Array | pa.ChunkedArray | None = None) -> IngestResult:
        """Join quarantined labels whose events have arrived since (``unknown_event`` rows).

        Runs by itself after each prediction batch while such labels wait (then
        ``arrived`` holds the batch's event ids, so only those are looked up),
        so a label that came before its event joins when the event comes. Each
        joined row is marked resolved in the quarantine, in the same transaction.
        """
        mv = self.registry.model_version(model)
        stored = (events_table(mv.model_id) if arrived is None
                  else "_vigil_arrived")
        with self.db.transaction() as con:
            if arrived is not None:
                con.register("_vigil_arrived", pa.table({"event_id": arrived}))
            try:
                waiting = con.execute(
                    f"SELECT q.entry_id, q.raw_json FROM quarantine q WHERE q.model_id = ? AND q.kind = 'labels' "
                    f"AND q.reason = 'unknown_event' AND q.resolved_at IS NULL AND q.event_id IN "
                    f"(SELECT event_id FROM {stored}) ORDER BY q.entry_id", [mv.model_id]).fetchall()
            finally:
                if arrived is not None:
                    con.unregister("_vigil_arrived")
            if not waiting:
                self._pending_labels[mv.model_id] = self._labels_waiting(con, mv.model_id)
                return IngestResult("", 0, 0, 0, 0)
            rows = [json.loads(raw) for _, raw in waiting]
            result = self.log_labels(model, pa.Table.from_pylist(rows), source="quarantine: labels that came early")
            con.execute(
                "UPDATE quarantine SET resolved_at = ?, resolved_batch = ? WHERE entry_id IN "
                "(SELECT unnest(?::BIGINT[]))", [utcnow(), result.batch_id, [e for e, _ in waiting]])
            self._pending_labels[mv.model_id] = self._labels_waiting(con, mv.model_id)
        return result

    @staticmethod
    def _labels_waiting(con: Any, model_id: int) -> bool:
        return bool(con.execute(
            "SELECT count(*) FROM quarantine WHERE model_id = ? AND kind = 'labels' AND reason = 'unknown_event' "
            "AND resolved_at IS NULL", [model_id]).fetchall()[0][0])

    def log_labels(self, model: str, data: Any, *, source: str | None = None) -> IngestResult:
        """Join ground truth to stored events by event id.

        A label for an id that is not stored is quarantined (``unknown_event``)
        with its row, so nothing is lost; a label equal to the one stored is a
        no-op; a different one is quarantined as ``label_conflict``.
        """
        mv = self.registry.model_version(model)
        target = mv.schema.target
        checked = validate_labels(to_arrow(data), mv.schema)
        batch_id = uuid.uuid4().hex
        now = utcnow()
        clean = checked.table
        n = clean.num_rows
        quarantine_rows: list[dict[str, Any]] = []
        ltable, etable = labels_table(mv.model_id), events_table(mv.model_id)
        tcol = quote(target.name)
        with self.db.transaction() as con:
            staged = clean.append_column("pos", pa.array(np.arange(n)))
            con.register("_vigil_labels", staged)
            try:
                joined = con.execute(
                    f"SELECT s.pos, e.event_id IS NOT NULL AS known, l.event_id IS NOT NULL AS labelled, "
                    f"l.{tcol} IS NOT DISTINCT FROM s.{tcol} AS same "
                    f"FROM _vigil_labels s "
                    f"LEFT JOIN (SELECT DISTINCT event_id FROM {etable} WHERE event_id IN "
                    f"(SELECT event_id FROM _vigil_labels)) e ON e.event_id = s.event_id "
                    f"LEFT JOIN {ltable} l ON l.event_id = s.event_id ORDER BY s.pos").fetchnumpy()
                known = np.asarray(joined["known"], dtype=bool)
                labelled = np.asarray(joined["labelled"], dtype=bool)
                same = np.asarray(joined["same"], dtype=bool)
                ids = clean.column("event_id").to_numpy(zero_copy_only=False)
                values = clean.column(target.name).to_pylist()
                # repeated ids inside the batch: the first wins, a different value is a conflict
                first_value: dict[str, Any] = {}
                repeat_same = np.zeros(n, dtype=bool)
                repeat_conflict = np.zeros(n, dtype=bool)
                _, first_pos, counts = np.unique(ids, return_index=True, return_counts=True)
                if (counts > 1).any():
                    for i, (event_id, value) in enumerate(zip(ids, values, strict=True)):
                        if event_id in first_value:
                            repeat_same[i] = first_value[event_id] == value
                            repeat_conflict[i] = not repeat_same[i]
                        else:
                            first_value[event_id] = value
                unknown = ~known & ~repeat_same & ~repeat_conflict
                conflict = known & labelled & ~same & ~repeat_same | repeat_conflict
                duplicate = (known & labelled & same) | repeat_same
                keep = known & ~labelled & ~repeat_same & ~repeat_conflict
                con.register("_vigil_new_labels", clean.filter(pa.array(keep)))
                try:
                    con.execute(
                        f"INSERT INTO {ltable} (event_id, {tcol}, {LABEL_TIME}, ingested_at, batch_id) "
                        f"SELECT event_id, {tcol}, {LABEL_TIME}, ?, ? FROM _vigil_new_labels", [now, batch_id])
                finally:
                    con.unregister("_vigil_new_labels")
            finally:
                con.unregister("_vigil_labels")
            for pos in np.flatnonzero(unknown | conflict).tolist():
                reason = "unknown_event" if unknown[pos] else "label_conflict"
                message = (f"no stored event has id {ids[pos]!r}" if unknown[pos]
                           else f"event {ids[pos]!r} already has another label")
                quarantine_rows.append({"row_number": int(checked.rows[pos]), "event_id": ids[pos],
                                        "reason": reason, "column_name": "event_id" if unknown[pos] else target.name,
                                        "value": repr(values[pos]), "message": message})
            for rec in checked.rejected.to_pylist():
                quarantine_rows.append({"row_number": rec["row"], "event_id": rec["event_id"],
                                        "reason": rec["reason"], "column_name": rec["column"],
                                        "value": rec["value"], "message": rec["message"]})
            self._write_quarantine(con, mv, None, batch_id, "labels", quarantine_rows, checked,
                                   self.registry.pii_key() if mv.schema.pii else b"", now)
            if unknown.any():
                self._pending_labels[mv.model_id] = True
            accepted = int(keep.sum())
            result = IngestResult(batch_id, checked.source.num_rows, accepted, int(duplicate.sum()),
                                  len(quarantine_rows), dict(Counter(r["reason"] for r in quarantine_rows)),
                                  checked.signal_counts(keep), labels=accepted)
            self._record_batch(con, mv, None, batch_id, "labels", source, result, now)
        return result

    # -- shared --------------------------------------------------------------------------------------
    def _write_quarantine(self, con: Any, mv: ModelVersion, version: str | None, batch_id: str, kind: str,
                          rows: list[dict[str, Any]], checked: ValidatedBatch, key: bytes, now: Any) -> None:
        if not rows:
            return
        source = checked.source
        positions = [r["row_number"] for r in rows]
        raw = table_rows(source.take(pa.array(positions, pa.int64()))) if source is not None else [{}] * len(rows)
        records = []
        for rec, raw_row in zip(rows, raw, strict=True):
            if mv.schema.pii:
                raw_row = redact_record(raw_row, mv.schema, key)
                if rec["column_name"] in {c.name for c in mv.schema.pii}:
                    rec["value"] = None
            records.append({**rec, "model_id": mv.model_id, "version": version, "batch_id": batch_id,
                            "kind": kind, "raw_json": json.dumps(raw_row, default=str), "quarantined_at": now})
        qtable = pa.Table.from_pylist(records, schema=_QUARANTINE_SCHEMA)
        con.register("_vigil_quarantine", qtable)
        try:
            cols = ", ".join(_QUARANTINE_SCHEMA.names)
            con.execute(f"INSERT INTO quarantine ({cols}) SELECT {cols} FROM _vigil_quarantine")
        finally:
            con.unregister("_vigil_quarantine")

    def _record_batch(self, con: Any, mv: ModelVersion, version: str | None, batch_id: str, kind: str,
                      source: str | None, result: IngestResult, now: Any) -> None:
        con.execute(
            "INSERT INTO ingest_batches (batch_id, model_id, version, kind, source, received, accepted, duplicates, "
            "quarantined, signals_json, committed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [batch_id, mv.model_id, version, kind, source, result.received,
             result.accepted, result.duplicates, result.quarantined, json.dumps(result.signals), now])


_QUARANTINE_SCHEMA = pa.schema([
    ("model_id", pa.int64()), ("version", pa.string()), ("batch_id", pa.string()), ("kind", pa.string()),
    ("row_number", pa.int64()), ("event_id", pa.string()), ("reason", pa.string()), ("column_name", pa.string()),
    ("value", pa.string()), ("message", pa.string()), ("raw_json", pa.string()),
    ("quarantined_at", pa.timestamp("us")),
])
