"""Explanations of stored events, and of each version's training sample, in the embedded home."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from vigil.store.duckdb.database import Database
from vigil.store.duckdb.events import sample_condition, time_filter
from vigil.store.duckdb.metadata import utcnow
from vigil.store.duckdb.tables import events_table


class DuckDBExplanations:
    """:class:`~vigil.store.protocols.ExplanationStore` on a home's DuckDB file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def stored(self, model_id: int, version: str, method: str, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The stored explanations of some events (those never explained are absent)."""
        if not event_ids:
            return []
        return self.db.arrow(
            "SELECT x.event_id, x.output, x.baseline, x.expected_value, x.model_output, x.features, "
            "x.attributions, x.errors, x.row_json, x.extra_json, x.explained_at FROM explanations x "
            "JOIN _wanted_ids w USING (event_id) WHERE x.model_id = ? AND x.version = ? AND x.method = ?",
            [model_id, version, method],
            tables={"_wanted_ids": pa.table({"event_id": pa.array(list(event_ids), pa.string())})}).to_pylist()

    def save(self, table: pa.Table) -> None:
        """Keep new explanations (an explanation already stored is kept as it was)."""
        with self.db.transaction() as con, self.db.registered({"_new_explanations": table}):
            con.execute("INSERT INTO explanations SELECT * FROM _new_explanations ON CONFLICT DO NOTHING")

    def unexplained(self, model_id: int, version: str, method: str, *, rate: float, start: Any, end: Any,
                    since: Any, limit: int | None) -> list[str]:
        """Ids of a stable sample of a version's events not yet explained by ``method``, oldest first."""
        cond, params = sample_condition(rate)
        where = ["e.model_version = ?", cond]
        params = [version, *params]
        time_filter(where, params, start, end)
        if since is not None:
            where.append("e.ingested_at > ?")
            params.append(since)
        sql = (f"SELECT e.event_id FROM {events_table(model_id)} e WHERE {' AND '.join(where)} AND NOT EXISTS "
               "(SELECT 1 FROM explanations x WHERE x.model_id = ? AND x.version = ? AND x.method = ? "
               "AND x.event_id = e.event_id) ORDER BY e.timestamp, e.event_id")
        params += [model_id, version, method]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [r[0] for r in self.db.fetchall(sql, params)]

    def frame(self, model_id: int, version: str, method: str, start: Any, end: Any) -> pd.DataFrame:
        """Event time, output, features and attributions of a version's stored explanations."""
        where, params = ["model_id = ?", "version = ?", "method = ?"], [model_id, version, method]
        time_filter(where, params, start, end, column="event_time")
        return self.db.arrow("SELECT event_time AS timestamp, output, features, attributions FROM explanations "
                             f"WHERE {' AND '.join(where)}", params).to_pandas()

    def any(self, model_id: int, version: str) -> bool:
        """Whether any event of the version has a stored explanation."""
        return self.db.fetchone("SELECT EXISTS (SELECT 1 FROM explanations WHERE model_id = ? AND version = ?)",
                                [model_id, version])[0]

    def baseline(self, model_id: int, version: str, method: str) -> str | None:
        """The stored explanations of the version's training sample (JSON), if computed."""
        row = self.db.fetchone("SELECT payload FROM explanation_baselines WHERE model_id = ? AND version = ? "
                               "AND method = ?", [model_id, version, method])
        return None if row is None else row[0]

    def methods(self, model_id: int, version: str) -> list[str]:
        """The methods a version has stored explanations of (training sample or events), most used first."""
        return [r[0] for r in self.db.fetchall(
            "SELECT method FROM (SELECT method, count(*) AS n FROM explanations WHERE model_id = ? AND version = ? "
            "GROUP BY method UNION ALL SELECT method, 0 AS n FROM explanation_baselines WHERE model_id = ? "
            "AND version = ?) GROUP BY method ORDER BY sum(n) DESC, method", [model_id, version, model_id, version])]

    def save_baseline(self, model_id: int, version: str, method: str, payload: str) -> None:
        """Keep the explanations of a version's training sample (once)."""
        with self.db.transaction() as con:
            con.execute("INSERT INTO explanation_baselines VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [model_id, version, method, payload, utcnow()])
