"""Reading and deleting stored events, and the quarantine and batch records, through the event store.

>>> import tempfile, pandas as pd
>>> import vigil
>>> store = vigil.open(tempfile.mkdtemp())
>>> _ = store.register_model("m", version="1", task="regression", training_data=pd.DataFrame(
...     {"x": [1.0, 2.0], "y": [1.0, 2.0]}), target="y")
>>> _ = store.log_predictions("m", "1", pd.DataFrame({"event_id": ["a", "b"], "x": [1.0, 2.0],
...                                                  "prediction": [1.0, 2.0]}))
>>> store.events("m", limit=1)["event_id"].tolist(), store.delete_events("m", event_ids=["a"])
(['a'], 1)
>>> store.events("m")["event_id"].tolist()
['b']
>>> store.close()
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from vigil.core.schema import Role, check_event_ids
from vigil.core.validation import REASONS
from vigil.errors import InvalidParameterError, NotFoundError
from vigil.services.monitoring import time_bound, typed_segment
from vigil.services.registry import ModelVersion, Registry, current_user, typed_frame

#: The columns of the quarantine and batch records and their dtypes (see ``docs/frames.md``).
QUARANTINE_COLUMNS = {"batch_id": "str", "kind": "str", "version": "str", "row_number": "int64", "event_id": "str",
                      "reason": "str", "column": "str", "value": "str", "message": "str", "raw": "str",
                      "quarantined_at": "datetime64[us]", "resolved_at": "datetime64[us]"}
BATCH_COLUMNS = {"batch_id": "str", "kind": "str", "version": "str", "source": "str", "received": "int64",
                 "accepted": "int64", "duplicates": "int64", "quarantined": "int64", "committed_at": "datetime64[us]"}
#: Stored types whose values come back as Python objects (None for missing) in a column of a role that may miss
#: values (see ``docs/frames.md``).
_OBJECT_WHEN_MISSING = ("BIGINT", "BOOLEAN")
_MAY_MISS = (Role.FEATURE, Role.METADATA, Role.TARGET)


#: What a quarantined row was sent as.
QUARANTINE_KINDS = ("predictions", "labels")


class EventReader:
    """Events of one project's models: read with filters and pages, delete, and the quarantine."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store.events

    def events(self, model: str, *, version: str | None = None, start: Any = None, end: Any = None,
               segment: Any = None, labelled: bool | None = None, limit: int | None = None,
               offset: int = 0) -> pd.DataFrame:
        """Stored events with their labels joined, oldest first (see ``Store.events``)."""
        mv = self.registry.model_version(model, version)
        for name, value in (("limit", limit), ("offset", offset)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise InvalidParameterError(f"{name}={value!r}: a whole number, 0 or more", field=name)
        target = mv.schema.target.name if mv.schema.target is not None else None
        seg = typed_segment(mv.schema, segment)
        if labelled is not None and target is None:
            raise InvalidParameterError(f"model {model!r} has no target, so no event is labelled", field="labelled")
        table = self.store.read(
            mv.model_id, version=None if version is None else mv.version, start=time_bound(start, "start"),
            end=time_bound(end, "end"), segment=seg, target=target, labelled_only=labelled is True,
            limit=limit if labelled is not False else None, offset=offset if labelled is not False else 0,
            readable_only=True)
        frame = table.to_pandas(integer_object_nulls=True)
        if labelled is False:
            frame = frame.loc[frame[target].isna()].iloc[offset:]
            frame = (frame if limit is None else frame.iloc[:limit]).reset_index(drop=True)
        for col in ("timestamp", "label_time"):
            if col in frame and pd.api.types.is_datetime64_any_dtype(frame[col]):
                frame[col] = pd.to_datetime(frame[col]).dt.tz_localize("UTC")
        # an integer or boolean column that may miss values (a feature, metadata, the target) is objects whatever
        # the rows: the same dtype with or without a missing value among them, and for no rows at all
        for col in mv.schema.columns:
            if col.name in frame and col.storage_type in _OBJECT_WHEN_MISSING and col.role in _MAY_MISS:
                frame[col.name] = frame[col.name].astype(object)
        return frame

    def event_version(self, model: str, event_ids: list[str]) -> str:
        """The version that predicted these events (one only)."""
        event_ids = check_event_ids(event_ids, "event_id")
        found = self.store.event_versions(self.registry.model_id(model), event_ids)
        if not found:
            raise NotFoundError(f"model {model!r} has no event {event_ids[0]!r}", field="event_id")
        if len(found) > 1:
            raise InvalidParameterError(f"these events were predicted by versions {found}: explain each version's "
                                        "events separately (version=)", field="version")
        return found[0]

    def span(self, mv: ModelVersion) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """The UTC time of a version's first and last readable event; ``(None, None)`` before any."""
        first, last = self.store.event_span(mv.model_id, mv.version)
        return tuple(None if t is None else pd.Timestamp(t, tz="UTC") for t in (first, last))  # type: ignore[return-value]

    def delete(self, model: str, *, event_ids: list[str] | str | None, version: str | None, start: Any, end: Any,
               actor: str | None) -> tuple[int, list[ModelVersion]]:
        """Delete events (audited); returns how many and the versions whose profiles must be recomputed."""
        model_id = self.registry.model_id(model)
        if event_ids is None and start is None and end is None and version is None:
            raise InvalidParameterError("say which events to delete: event_ids=[...], or start=/end= (and "
                                        "version=)", field="event_ids")
        if event_ids is not None:
            event_ids = check_event_ids(event_ids)
        mv = self.registry.model_version(model, version) if version is not None else None
        deleted, touched = self.store.delete(model_id, version=mv.version if mv else None, event_ids=event_ids,
                                             start=time_bound(start, "start"), end=time_bound(end, "end"))
        self.registry.audit("delete", "events", model, {
            "deleted": deleted, "event_ids": None if event_ids is None else len(event_ids), "version": version,
            "start": start, "end": end}, actor or current_user())
        versions = sorted({v for v, _ in touched})
        profiles = self.registry.store.profiles
        out = []
        for v in versions:
            hours = [h for vv, h in touched if vv == v]
            days = sorted({h.replace(hour=0) for h in hours})
            profiles.forget(model_id, v, [("1h", h) for h in hours] + [("1d", d) for d in days])
            out.append(self.registry.model_version(model, v))
        return deleted, out

    def quarantine(self, model: str, *, reason: str | None, kind: str | None, include_resolved: bool) -> pd.DataFrame:
        """Refused rows of a model (see ``Store.quarantine``)."""
        if reason is not None and reason not in REASONS:
            raise InvalidParameterError(f"reason must be one of {sorted(REASONS)} (or None for all), got {reason!r}",
                                        field="reason")
        if kind is not None and kind not in QUARANTINE_KINDS:
            raise InvalidParameterError(f"kind must be one of {list(QUARANTINE_KINDS)} (or None for both), got "
                                        f"{kind!r}", field="kind")
        return typed_frame(self.store.quarantine(self.registry.model_id(model), reason=reason, kind=kind,
                                                 include_resolved=include_resolved), QUARANTINE_COLUMNS)

    def batches(self, model: str) -> pd.DataFrame:
        """The record of every ingest call for a model."""
        return typed_frame(self.store.batches(self.registry.model_id(model)), BATCH_COLUMNS)

