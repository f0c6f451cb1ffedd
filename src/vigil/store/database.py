"""Moved to :mod:`vigil.store.duckdb.database`; kept so older imports work for one release."""

from vigil.store.duckdb.database import CURRENT_FORMAT, DB_FILE, HOME_ENV, Database, default_home, quote

__all__ = ["CURRENT_FORMAT", "DB_FILE", "HOME_ENV", "Database", "default_home", "quote"]
