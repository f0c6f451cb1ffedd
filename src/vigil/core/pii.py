"""Keep PII out of the store: drop a column, or replace it by a keyed hash.

The hash is HMAC-SHA256 under a per-project secret, cut to 32 hex digits:
the same value always maps to the same token within a project, so joins and
group-bys by user still work, but the value cannot be recovered or guessed
by hashing candidates without the key.

>>> key = b"k" * 32
>>> pseudonymize(pa.array(["ann", "bob", "ann", None]), key).to_pylist()[2:]
['8adee30bc7f03373ea62a78320e36f1b', None]
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vigil.core.frames import single_array
from vigil.core.schema import Schema

TOKEN_HEX_DIGITS = 32


def pseudonymize(values: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """HMAC-SHA256 tokens for each value (nulls stay null); each distinct value is hashed once."""
    values = single_array(values)
    encoded = values.cast(pa.string()).dictionary_encode()
    tokens = [
        hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX_DIGITS]
        for v in encoded.dictionary.to_pylist()
    ]
    return pc.take(pa.array(tokens, pa.string()), encoded.indices)


def pseudonymize_value(value: Any, key: bytes) -> str | None:
    """The token of one value.

    >>> pseudonymize_value("ann", b"k" * 32) == pseudonymize(pa.array(["ann"]), b"k" * 32)[0].as_py()
    True
    """
    if value is None:
        return None
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX_DIGITS]


def redact_table(table: pa.Table, schema: Schema, key: bytes) -> pa.Table:
    """Hash or drop the schema's PII columns in ``table``; other columns pass unchanged.

    >>> import pandas as pd
    >>> s = Schema.infer(pd.DataFrame({"x": [1.0], "y": [0]}), target="y", metadata=["email", "ip"],
    ...                  pii={"email": "hash", "ip": "drop"})
    >>> t = redact_table(pa.table({"x": [1.0], "email": ["a@b.c"], "ip": ["10.0.0.1"]}), s, b"k" * 32)
    >>> t.column_names, len(t.column("email")[0].as_py())
    (['x', 'email'], 32)
    """
    return redact_columns(table, {c.name: c.pii for c in schema.pii}, key)


def redact_columns(table: pa.Table, actions: dict[str, str], key: bytes) -> pa.Table:
    """Apply ``{column: "hash" | "drop"}`` to the columns of ``table`` that are present.

    >>> redact_columns(pa.table({"a": [1], "b": [2]}), {"b": "drop"}, b"k" * 32).column_names
    ['a']
    """
    for name, action in actions.items():
        if name not in table.column_names:
            continue
        i = table.column_names.index(name)
        if action == "drop":
            table = table.remove_column(i)
        else:
            table = table.set_column(i, name, pseudonymize(table.column(name), key))
    return table


def redact_record(record: dict[str, Any], schema: Schema, key: bytes) -> dict[str, Any]:
    """The same redaction for one row as a dict (as kept in the quarantine).

    >>> s = Schema.infer(pa.table({"x": [1.0], "y": [0]}), target="y", metadata=["ip"], pii={"ip": "drop"})
    >>> redact_record({"x": 1.0, "ip": "10.0.0.1"}, s, b"k" * 32)
    {'x': 1.0}
    """
    out = dict(record)
    for col in schema.pii:
        if col.name in out:
            if col.pii == "drop":
                del out[col.name]
            else:
                out[col.name] = pseudonymize_value(out[col.name], key)
    return out


def project_key(home: Path, project: str) -> bytes:
    """The project's PII key from ``home/secrets``, created (mode 0600) on first use."""
    folder = home / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(project.encode()).hexdigest()[:16]
    path = folder / f"{digest}.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
    key = path.read_bytes()
    if len(key) != 32:
        raise ValueError(f"the PII key {str(path)!r} is damaged (expected 32 bytes)")
    return key

