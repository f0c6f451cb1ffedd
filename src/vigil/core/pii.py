"""Keep PII out of the store: drop a column, or replace it by a keyed hash.

The hash is HMAC-SHA256 under a per-project secret, cut to 32 hex digits:
the same value always maps to the same token within a project, so joins and
group-bys by user still work, but the value cannot be recovered or guessed
by hashing candidates without the key. The key itself is kept by
:mod:`vigil.store.keys`; everything here is pure.

>>> key = b"k" * 32
>>> pseudonymize(pa.array(["ann", "bob", "ann", None]), key).to_pylist()[2:]
['8adee30bc7f03373ea62a78320e36f1b', None]
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vigil.core.frames import single_array
from vigil.core.schema import PII_ACTIONS, Schema
from vigil.errors import InvalidParameterError, SchemaError

TOKEN_HEX_DIGITS = 32
#: Length of a key the HMAC takes, in bytes.
KEY_BYTES = 32


def key_fingerprint(key: bytes) -> str:
    """A short public digest of a key, to tell later whether a key file still holds the same key.

    It reveals nothing usable about the key (SHA-256 of a domain-separated
    input); two keys have the same fingerprint only if they are the same key.

    >>> key_fingerprint(b"k" * 32)
    'd6978fccd40b783608bb80aa89251ddd'
    >>> key_fingerprint(b"k" * 32) == key_fingerprint(b"j" * 32)
    False
    """
    return hashlib.sha256(b"vigil-pii-key-fingerprint\x00" + key).hexdigest()[:32]


def pii_actions(pii: Mapping[str, str] | Sequence[str] | str) -> dict[str, str]:
    """``{column: action}`` of a PII spec: a mapping as given, a column or list of columns to hash.

    Anything else (a number, a list of non-strings) is an :class:`InvalidParameterError` with ``field="pii"``.

    >>> pii_actions(["email"]), pii_actions({"user_id": "drop"})
    ({'email': 'hash'}, {'user_id': 'drop'})
    >>> pii_actions(3)
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidParameterError: pii maps columns to 'hash' or 'drop' or lists columns to hash, got int 3
    """
    if isinstance(pii, str):
        pii = [pii]
    if isinstance(pii, Mapping):
        actions = dict(pii)
    elif isinstance(pii, (list, tuple, set, frozenset)):
        actions = {name: "hash" for name in pii}
    else:
        actions = None
    if actions is None or not all(isinstance(name, str) for name in actions):
        raise InvalidParameterError(f"pii maps columns to 'hash' or 'drop' or lists columns to hash, got "
                                    f"{type(pii).__name__} {pii!r}"[:300], field="pii")
    return actions


def check_pii_columns(pii: Mapping[str, str] | Sequence[str], columns: Sequence[str]) -> dict[str, str]:
    """``{column: action}`` for a PII spec, once each column exists and each action is hash or drop.

    ``pii`` maps columns to ``"hash"`` or ``"drop"``, or lists columns to hash.
    A name that is not among ``columns`` (a typo would leave the real column
    in clear) or another action is a :class:`SchemaError` with ``field="pii"``
    that names the closest columns.

    >>> check_pii_columns(["email"], ["email", "age"])
    {'email': 'hash'}
    >>> check_pii_columns({"userid": "hash"}, ["user_id", "age"])
    Traceback (most recent call last):
    ...
    vigil.errors.SchemaError: pii names column 'userid', which is not a column (did you mean 'user_id'?); ...
    """
    actions = pii_actions(pii)
    known = list(dict.fromkeys(str(c) for c in columns))
    for name, action in actions.items():
        if action not in PII_ACTIONS:
            raise SchemaError(f"pii action for column {name!r} must be one of {list(PII_ACTIONS)}, got {action!r}",
                              field="pii")
    unknown = [name for name in actions if name not in known]
    if unknown:
        name = unknown[0]
        near = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
        lowered = [c for c in known if c.lower() == str(name).lower() and c not in near]
        near = lowered + near
        hint = f" (did you mean {' or '.join(repr(c) for c in near)}?)" if near else ""
        others = f" and {unknown[1:]}" if len(unknown) > 1 else ""
        raise SchemaError(
            f"pii names column {name!r}{others}, which is not a column{hint}; "
            f"columns: {known[:50]}{' ...' if len(known) > 50 else ''}",
            field="pii", columns=[str(u) for u in unknown])
    return actions


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
