"""The embedded store: one DuckDB file plus side files in a home directory.

Layout of a home::

    vigil.duckdb          metadata, events, labels, quarantine, audit log
    artifacts/<sha>.pkl   model artifacts, named by the sha256 of their bytes
    datasets/<sha>.parquet registered datasets, named by their content hash
    secrets/<project>.key  per-project keys for hashing PII

The file carries a format number; opening a home written by an older Vigil
migrates it in one transaction, one written by a newer Vigil is refused.

Every query's result is materialised while the connection lock is held
(:meth:`Database.arrow`, :meth:`Database.df`, :meth:`Database.fetchall`...), so
one ``Database`` may be used from several threads.

>>> import tempfile
>>> db = Database.open(tempfile.mkdtemp())
>>> db.format_version == CURRENT_FORMAT
True
>>> db.close()
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from vigil.errors import InvalidParameterError, ReadOnlyError, StoreBusyError, StoreError, StoreVersionError

DB_FILE = "vigil.duckdb"
DEFAULT_HOME = "vigil-data"
HOME_ENV = "VIGIL_HOME"


def default_home() -> Path:
    """``$VIGIL_HOME`` if set, else ``./vigil-data``.

    >>> import os; os.environ.pop("VIGIL_HOME", None) and None
    >>> default_home().name
    'vigil-data'
    """
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def home_path(home: Any) -> Path:
    """A home directory from what the caller gave, refused with a clear error when it cannot be one.

    >>> home_path("vigil-data").name
    'vigil-data'
    >>> home_path(123)
    Traceback (most recent call last):
    vigil.errors.InvalidParameterError: a home is a directory path (str or os.PathLike), got int
    """
    if home is None:
        return default_home()
    if not isinstance(home, str | os.PathLike):
        raise InvalidParameterError(f"a home is a directory path (str or os.PathLike), got {type(home).__name__}",
                                    field="home")
    text = os.fspath(home)
    if isinstance(text, bytes) or "\x00" in text:
        raise InvalidParameterError("a home path cannot hold a NUL byte", field="home")
    if not text.strip():
        raise InvalidParameterError("a home path cannot be blank", field="home")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise InvalidParameterError(f"{text!r} is a file, not a directory: choose a directory for the home",
                                    field="home")
    return path


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__


def _format_1(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE SEQUENCE project_ids START 1;
        CREATE SEQUENCE model_ids START 1;
        CREATE SEQUENCE dataset_ids START 1;
        CREATE TABLE projects (
            project_id INTEGER PRIMARY KEY DEFAULT nextval('project_ids'),
            name VARCHAR NOT NULL UNIQUE,
            description VARCHAR,
            created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE datasets (
            dataset_id INTEGER PRIMARY KEY DEFAULT nextval('dataset_ids'),
            project_id INTEGER NOT NULL,
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            content_hash VARCHAR NOT NULL,
            n_rows BIGINT NOT NULL,
            columns_json VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            description VARCHAR,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR,
            UNIQUE (project_id, name, version)
        );
        CREATE TABLE models (
            model_id INTEGER PRIMARY KEY DEFAULT nextval('model_ids'),
            project_id INTEGER NOT NULL,
            name VARCHAR NOT NULL,
            task VARCHAR NOT NULL,
            owner VARCHAR,
            description VARCHAR,
            created_at TIMESTAMP NOT NULL,
            UNIQUE (project_id, name)
        );
        CREATE TABLE model_versions (
            model_id INTEGER NOT NULL,
            version VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            artifact_sha256 VARCHAR,
            artifact_path VARCHAR,
            artifact_type VARCHAR,
            schema_json VARCHAR NOT NULL,
            training_dataset_id INTEGER,
            description VARCHAR,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR,
            PRIMARY KEY (model_id, version)
        );
        CREATE TABLE ingest_batches (
            batch_id VARCHAR NOT NULL,
            model_id INTEGER NOT NULL,
            version VARCHAR,
            kind VARCHAR NOT NULL,
            source VARCHAR,
            received BIGINT NOT NULL,
            accepted BIGINT NOT NULL,
            duplicates BIGINT NOT NULL,
            quarantined BIGINT NOT NULL,
            signals_json VARCHAR,
            committed_at TIMESTAMP NOT NULL
        );
        CREATE SEQUENCE quarantine_ids START 1;
        CREATE TABLE quarantine (
            entry_id BIGINT PRIMARY KEY DEFAULT nextval('quarantine_ids'),
            model_id INTEGER NOT NULL,
            version VARCHAR,
            batch_id VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            row_number BIGINT,
            event_id VARCHAR,
            reason VARCHAR NOT NULL,
            column_name VARCHAR,
            value VARCHAR,
            message VARCHAR NOT NULL,
            raw_json VARCHAR,
            quarantined_at TIMESTAMP NOT NULL,
            resolved_at TIMESTAMP,
            resolved_batch VARCHAR
        );
    """)


def _format_2(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE SEQUENCE audit_ids START 1;
        CREATE TABLE audit_log (
            entry_id BIGINT PRIMARY KEY DEFAULT nextval('audit_ids'),
            occurred_at TIMESTAMP NOT NULL,
            actor VARCHAR,
            action VARCHAR NOT NULL,
            object_type VARCHAR NOT NULL,
            object_id VARCHAR NOT NULL,
            details_json VARCHAR
        );
    """)


_SHARED: dict[str, dict[str, Any]] = {}
_SHARED_LOCK = threading.Lock()

def _format_3(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE profiles (
            model_id INTEGER NOT NULL,
            version VARCHAR NOT NULL,
            segment VARCHAR NOT NULL,
            grain VARCHAR NOT NULL,
            window_start TIMESTAMP NOT NULL,
            column_name VARCHAR NOT NULL,
            payload VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL
        );
        CREATE TABLE profile_marks (
            model_id INTEGER NOT NULL,
            version VARCHAR NOT NULL,
            segment VARCHAR NOT NULL,
            grain VARCHAR NOT NULL,
            events_through TIMESTAMP,
            labels_through TIMESTAMP,
            PRIMARY KEY (model_id, version, segment, grain)
        );
        CREATE TABLE baselines (
            model_id INTEGER NOT NULL,
            version VARCHAR NOT NULL,
            payload VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL,
            PRIMARY KEY (model_id, version)
        );
    """)


def _format_4(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE explanations (
            model_id INTEGER NOT NULL,
            version VARCHAR NOT NULL,
            event_id VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            event_time TIMESTAMP NOT NULL,
            explained_at TIMESTAMP NOT NULL,
            output VARCHAR NOT NULL,
            baseline VARCHAR NOT NULL,
            expected_value DOUBLE NOT NULL,
            model_output DOUBLE NOT NULL,
            features VARCHAR[] NOT NULL,
            attributions DOUBLE[] NOT NULL,
            errors DOUBLE[],
            row_json VARCHAR,
            extra_json VARCHAR,
            PRIMARY KEY (model_id, version, event_id, method)
        );
        CREATE TABLE explanation_baselines (
            model_id INTEGER NOT NULL,
            version VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            payload VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL,
            PRIMARY KEY (model_id, version, method)
        );
    """)


def _format_5(con: duckdb.DuckDBPyConnection) -> None:
    # the project of an audit entry was only the prefix of its object id, which cannot tell project "a"
    # from project "a/b"; older entries get the longest project name their object id starts with
    con.execute("""
        ALTER TABLE audit_log ADD COLUMN project VARCHAR;
        UPDATE audit_log SET project = coalesce(
            (SELECT p.name FROM projects p WHERE starts_with(audit_log.object_id, p.name || '/')
             ORDER BY length(p.name) DESC LIMIT 1),
            split_part(object_id, '/', 1));
    """)


#: Migrations, in order: ``MIGRATIONS[i]`` takes a store from format ``i`` to ``i + 1``.
MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [_format_1, _format_2, _format_3, _format_4,
                                                                  _format_5]
CURRENT_FORMAT = len(MIGRATIONS)


class Database:
    """A connection to a home's DuckDB file, with its format checked and migrated.

    Writes go through :meth:`transaction`, which commits everything inside it
    or nothing. One lock serialises use of the connection across threads.
    """

    def __init__(self, home: Path, con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
        self.home = home
        self.con = con
        self.read_only = read_only
        self._in_transaction = False
        # every Database on one file in this process shares a lock and in-memory state (such as the
        # event id indexes), so two vigil.open() calls on one home cannot miss each other's writes
        key = str((home / DB_FILE).resolve())
        with _SHARED_LOCK:
            state = _SHARED.get(key)
            if state is None or state["users"] == 0:
                # first user since the file was (re)opened: another process may have written meanwhile
                state = _SHARED[key] = {"lock": threading.RLock(), "users": 0, "event_id_indexes": {}}
            state["users"] += 1
        self._key = key
        self.shared = state
        self.lock: threading.RLock = state["lock"]

    @classmethod
    def open(
        cls, home: str | os.PathLike[str] | None = None, *, read_only: bool = False, migrate_to: int | None = None
    ) -> Database:
        """Open (creating if needed) the store in ``home``.

        ``migrate_to`` stops migrations at an older format; it exists for tests
        of the migration path.
        """
        home = home_path(home)
        target = CURRENT_FORMAT if migrate_to is None else migrate_to
        path = home / DB_FILE
        if read_only and not path.exists():
            raise StoreError(f"no Vigil store in {str(home)!r}: run `vigil init` there first", field="home")
        if not read_only:
            try:
                home.mkdir(parents=True, exist_ok=True)
                for sub in ("artifacts", "datasets", "secrets"):
                    (home / sub).mkdir(exist_ok=True)
            except OSError as err:
                raise StoreError(f"cannot create the home {str(home)!r}: {err.strerror}", field="home") from None
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as err:
            text = str(err).lower()
            if "lock" in text:
                raise StoreBusyError(
                    f"the store in {str(home)!r} is open for writing in another process, and DuckDB lets one "
                    "process write a home at a time: read it through that process (`vigil serve`), open a copy "
                    "of the home, or wait until the other process closes it", field="home") from None
            raise StoreError(f"cannot open the store file {str(path)!r}: it is damaged or not a DuckDB file "
                             f"({_first_line(err)})", field="home") from None
        except duckdb.Error as err:
            raise StoreError(f"cannot open the store file {str(path)!r}: it is damaged or not a DuckDB file "
                             f"({_first_line(err)})", field="home") from None
        con.execute("SET TimeZone = 'UTC'")
        db = cls(home, con, read_only)
        try:
            db._migrate(target)
        except BaseException:
            db.close()
            raise
        return db

    # -- format and migrations -----------------------------------------------------------------------
    @property
    def format_version(self) -> int:
        """The format number the file is at."""
        tables = {r[0] for r in self.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "meta" not in tables:
            if tables:
                raise StoreVersionError(
                    f"{str(self.home / DB_FILE)!r} is a DuckDB file but not a Vigil store "
                    f"(tables {sorted(tables)[:5]}); choose another home"
                )
            return 0
        rows = self.con.execute("SELECT value FROM meta WHERE key = 'format'").fetchall()
        return int(rows[0][0]) if rows else 0

    def _migrate(self, target: int) -> None:
        current = self.format_version
        if current > CURRENT_FORMAT:
            raise StoreVersionError(
                f"the store in {str(self.home)!r} has format {current}, written by a newer Vigil; "
                f"this Vigil reads formats up to {CURRENT_FORMAT}: upgrade Vigil (pip install -U vigil)"
            )
        if current >= target:
            return
        if self.read_only:
            raise StoreVersionError(
                f"the store in {str(self.home)!r} has format {current} and needs migrating to {target}; "
                "open it once for writing"
            )
        with self.transaction():
            if current == 0:
                self.con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
                self.con.execute("INSERT INTO meta VALUES ('format', '0')")
            for step in range(current, target):
                MIGRATIONS[step](self.con)
            self.con.execute("UPDATE meta SET value = ? WHERE key = 'format'", [str(target)])

    # -- transactions and queries --------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run the block in one transaction: all of it is committed, or none of it."""
        if self.read_only:
            raise ReadOnlyError(f"the store in {str(self.home)!r} was opened read_only=True: this call writes; "
                                "open it without read_only to write")
        with self.lock:
            if self._in_transaction:  # nested: the outer block commits
                yield self.con
                return
            self.con.begin()
            self._in_transaction = True
            try:
                yield self.con
            except BaseException:
                self.con.rollback()
                raise
            else:
                self.con.commit()
            finally:
                self._in_transaction = False

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None) -> None:
        """Run one statement under the connection lock (its result is not kept)."""
        with self.lock:
            self.con.execute(sql, params or [])

    def fetchall(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a query."""
        with self.lock:
            return self.con.execute(sql, params or []).fetchall()

    def fetchone(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None) -> tuple[Any, ...] | None:
        """The first row of a query, or ``None``.

        (It fetches all rows: a result left half-read blocks the connection.)
        """
        with self.lock:
            rows = self.con.execute(sql, params or []).fetchall()
            return rows[0] if rows else None

    def arrow(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None, *,
              tables: dict[str, pa.Table] | None = None) -> pa.Table:
        """A query's result as an Arrow table; ``tables`` are Arrow tables the SQL reads by those names."""
        with self.lock, self.registered(tables or {}):
            return self.con.sql(sql, params=list(params) if params else None).to_arrow_table()

    def df(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None) -> pd.DataFrame:
        """A query's result as a pandas frame."""
        with self.lock:
            return self.con.execute(sql, params or []).df()

    def numpy(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None, *,
              tables: dict[str, pa.Table] | None = None) -> dict[str, np.ndarray]:
        """A query's columns as NumPy arrays."""
        with self.lock, self.registered(tables or {}):
            return self.con.execute(sql, params or []).fetchnumpy()

    @contextlib.contextmanager
    def registered(self, tables: dict[str, pa.Table]) -> Iterator[None]:
        """Arrow tables readable by name in SQL for the block (the caller holds the lock)."""
        with self.lock:
            for name, table in tables.items():
                self.con.register(name, table)
            try:
                yield
            finally:
                for name in tables:
                    self.con.unregister(name)

    def table_exists(self, name: str) -> bool:
        """Whether a table of that name exists."""
        return self.fetchone("SELECT 1 FROM duckdb_tables() WHERE table_name = ?", [name]) is not None

    def close(self) -> None:
        """Checkpoint and close the file (closing twice is harmless)."""
        with self.lock:
            if self._key is None:
                return
            with contextlib.suppress(duckdb.Error):
                if not self.read_only:
                    self.con.execute("CHECKPOINT")
            self.con.close()
            with _SHARED_LOCK:
                self.shared["users"] -= 1
            self._key = None


def quote(identifier: str) -> str:
    """A SQL identifier, double-quoted.

    >>> quote('hours-per-week'), quote('a"b')
    ('"hours-per-week"', '"a""b"')
    """
    return '"' + identifier.replace('"', '""') + '"'
