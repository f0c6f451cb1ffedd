"""Store backends behind the protocols of :mod:`vigil.store.protocols`, chosen by URI.

A plain path or ``duckdb:///path`` is the embedded home. An unknown scheme is
answered with the list of the valid ones.

>>> import tempfile
>>> backend = open_backend(tempfile.mkdtemp())
>>> type(backend).__name__
'DuckDBBackend'
>>> backend.close()
>>> open_backend("mysql://db/vigil")
Traceback (most recent call last):
vigil.errors.InvalidParameterError: store URI scheme 'mysql' is not known; valid schemes: duckdb (or a plain path)
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from vigil.errors import InvalidParameterError
from vigil.store.duckdb.database import CURRENT_FORMAT, DB_FILE, HOME_ENV, default_home, home_path

#: The URI schemes ``vigil.open`` understands.
SCHEMES = ("duckdb",)


def open_backend(uri: Any = None, *, read_only: bool = False) -> Any:
    """The backend a URI (or a home path) names, opened."""
    from vigil.store.duckdb import DuckDBBackend

    if uri is None or isinstance(uri, os.PathLike):
        return DuckDBBackend.open(uri, read_only=read_only)
    if isinstance(uri, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri):
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme == "duckdb":
            path = unquote(parts.netloc + parts.path)
            if not path:
                raise InvalidParameterError("a duckdb URI names a home directory: duckdb:///path/to/home",
                                            field="uri")
            return DuckDBBackend.open(path, read_only=read_only)
        raise InvalidParameterError(f"store URI scheme {scheme!r} is not known; valid schemes: "
                                    f"{', '.join(SCHEMES)} (or a plain path)", field="uri")
    return DuckDBBackend.open(home_path(uri), read_only=read_only)


__all__ = ["CURRENT_FORMAT", "DB_FILE", "HOME_ENV", "SCHEMES", "default_home", "open_backend"]
