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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from vigil.core.frames import table_rows
from vigil.core.pii import redact_record, redact_table
from vigil.core.validation import ValidatedBatch, validate_labels, validate_predictions
from vigil.errors import SchemaError
from vigil.services.registry import ModelVersion, Registry, utcnow
from vigil.services.sources import load_table
from vigil.store.protocols import Appended, Batch


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
    """Writes events and labels of one project's models.

    ``on_write(mv)`` is called after each committed batch that stored
    something (the store uses it to bring profiles up to date off the read path).
    """

    def __init__(self, registry: Registry, on_write: Callable[[ModelVersion], None] | None = None) -> None:
        self.registry = registry
        self.events = registry.store.events
        self.on_write = on_write

    # -- predictions ---------------------------------------------------------------------------------
    def log_predictions(self, model: str, version: str, data: Any, *, source: str | None = None) -> IngestResult:
        """Validate and store one batch of prediction events (see :class:`IngestResult`)."""
        mv = self.registry.version_for_writing(model, version)
        table = load_table(data)
        checked = validate_predictions(table, mv.schema)
        return self._store_predictions(mv, checked, source)

    def _store_predictions(self, mv: ModelVersion, checked: ValidatedBatch, source: str | None) -> IngestResult:
        schema = mv.schema
        key = self.registry.pii_key() if schema.pii else b""
        batch_id = uuid.uuid4().hex
        now = utcnow()
        target = schema.target
        clean = checked.table
        if schema.pii:
            clean = redact_table(clean, schema, key)
        stored_cols = [c for c in clean.column_names if c not in ("event_id", "timestamp")
                       and not (target is not None and c == target.name)]
        n = clean.num_rows
        received = checked.source.num_rows if checked.source is not None else n
        rejected = _rejections(checked)
        results: list[IngestResult] = []

        def decide(found: Appended) -> tuple[list[dict[str, Any]], Batch]:
            rows = []
            if found.conflict.any():
                ids = clean.column("event_id")
                for pos, row in zip(np.flatnonzero(found.conflict).tolist(), checked.rows[found.conflict].tolist(),
                                    strict=True):
                    rows.append({"row_number": row, "event_id": ids[pos].as_py(), "reason": "duplicate_conflict",
                                 "column_name": None, "value": None,
                                 "message": "event id already stored (or repeated in this batch) with different "
                                            "content"})
            rows += rejected
            result = IngestResult(batch_id, received, int(found.keep.sum()), found.duplicates, len(rows),
                                  dict(Counter(r["reason"] for r in rows)), checked.signal_counts(found.keep),
                                  found.labels)
            results.append(result)
            return (self._quarantine_records(mv, mv.version, batch_id, "predictions", rows, checked, key, now),
                    _batch(result, "predictions", mv.version, source))

        found = self.events.append_predictions(mv.model_id, mv.version, clean, columns=stored_cols,
                                               target=target.name if target is not None else None,
                                               batch_id=batch_id, now=now, decide=decide)
        result = results[0]
        if result.accepted and target is not None and self.events.labels_waiting(mv.model_id):
            ids = clean.column("event_id") if result.accepted == n else clean.column("event_id").filter(
                pa.array(found.keep))
            result.labels += self.retry_labels(mv.model, arrived=ids, notify=False).accepted
        if result.accepted and self.on_write is not None:
            self.on_write(mv)
        return result

    # -- labels --------------------------------------------------------------------------------------
    def retry_labels(self, model: str, *, arrived: pa.Array | pa.ChunkedArray | None = None,
                     notify: bool = True) -> IngestResult:
        """Join quarantined labels whose events have arrived since (``unknown_event`` rows).

        Runs by itself after each prediction batch while such labels wait (then
        ``arrived`` holds the batch's event ids, so only those are looked up),
        so a label that came before its event joins when the event comes. Each
        joined row is marked resolved in the quarantine.
        """
        mv = self.registry.model_version(model)
        waiting = self.events.waiting_labels(mv.model_id, arrived)
        if not waiting:
            return IngestResult("", 0, 0, 0, 0)
        rows = [json.loads(raw) for _, raw in waiting]
        result = self.log_labels(model, pa.Table.from_pylist(rows), source="quarantine: labels that came early",
                                 notify=notify)
        self.events.resolve_quarantine([e for e, _ in waiting], result.batch_id, utcnow())
        return result

    def log_labels(self, model: str, data: Any, *, source: str | None = None, notify: bool = True) -> IngestResult:
        """Join ground truth to stored events by event id.

        A label for an id that is not stored is quarantined (``unknown_event``)
        with its row, so nothing is lost; a label equal to the one stored is a
        no-op; a different one is quarantined as ``label_conflict``.
        """
        mv = self.registry.model_version(model)
        target = mv.schema.target
        if target is None:
            raise SchemaError(f"model {model!r} has no target column, so it takes no labels", field="model")
        checked = validate_labels(load_table(data), mv.schema)
        batch_id = uuid.uuid4().hex
        now = utcnow()
        clean = checked.table
        n = clean.num_rows
        key = self.registry.pii_key() if mv.schema.pii else b""
        rejected = _rejections(checked)
        results: list[IngestResult] = []

        def decide(known: np.ndarray, labelled: np.ndarray, same: np.ndarray
                   ) -> tuple[np.ndarray, list[dict[str, Any]], Batch]:
            ids = clean.column("event_id").to_numpy(zero_copy_only=False)
            values = clean.column(target.name).to_pylist()
            # repeated ids inside the batch: the first wins, a different value is a conflict
            first_value: dict[str, Any] = {}
            repeat_same = np.zeros(n, dtype=bool)
            repeat_conflict = np.zeros(n, dtype=bool)
            _, _, counts = np.unique(ids, return_index=True, return_counts=True)
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
            rows = []
            for pos in np.flatnonzero(unknown | conflict).tolist():
                reason = "unknown_event" if unknown[pos] else "label_conflict"
                message = (f"no stored event has id {ids[pos]!r}" if unknown[pos]
                           else f"event {ids[pos]!r} already has another label")
                rows.append({"row_number": int(checked.rows[pos]), "event_id": ids[pos], "reason": reason,
                             "column_name": "event_id" if unknown[pos] else target.name,
                             "value": repr(values[pos]), "message": message})
            rows += rejected
            accepted = int(keep.sum())
            result = IngestResult(batch_id, checked.source.num_rows, accepted, int(duplicate.sum()), len(rows),
                                  dict(Counter(r["reason"] for r in rows)), checked.signal_counts(keep),
                                  labels=accepted)
            results.append(result)
            return keep, self._quarantine_records(mv, None, batch_id, "labels", rows, checked, key, now), \
                _batch(result, "labels", None, source)

        self.events.append_labels(mv.model_id, clean, target=target.name, batch_id=batch_id, now=now, decide=decide)
        result = results[0]
        if result.accepted and notify and self.on_write is not None:
            self.on_write(mv)
        return result

    # -- shared --------------------------------------------------------------------------------------
    @staticmethod
    def _quarantine_records(mv: ModelVersion, version: str | None, batch_id: str, kind: str,
                            rows: list[dict[str, Any]], checked: ValidatedBatch, key: bytes, now: Any
                            ) -> list[dict[str, Any]]:
        """Quarantine rows with the original row kept (PII redacted), ready for the store."""
        if not rows:
            return []
        source = checked.source
        positions = [r["row_number"] for r in rows]
        raw = table_rows(source.take(pa.array(positions, pa.int64()))) if source is not None else [{}] * len(rows)
        pii = {c.name for c in mv.schema.pii}
        records = []
        for rec, raw_row in zip(rows, raw, strict=True):
            if pii:
                raw_row = redact_record(raw_row, mv.schema, key)
                if rec["column_name"] in pii:
                    rec = {**rec, "value": None}
            records.append({**rec, "version": version, "batch_id": batch_id, "kind": kind,
                            "raw_json": json.dumps(raw_row, default=str, sort_keys=True), "quarantined_at": now})
        return records


def _rejections(checked: ValidatedBatch) -> list[dict[str, Any]]:
    return [{"row_number": rec["row"], "event_id": rec["event_id"], "reason": rec["reason"],
             "column_name": rec["column"], "value": rec["value"], "message": rec["message"]}
            for rec in checked.rejected.to_pylist()]


def _batch(result: IngestResult, kind: str, version: str | None, source: str | None) -> Batch:
    return Batch(batch_id=result.batch_id, kind=kind, version=version, source=source, received=result.received,
                 accepted=result.accepted, duplicates=result.duplicates, quarantined=result.quarantined,
                 signals=result.signals)
