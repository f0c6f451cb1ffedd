"""The user's signing key, and HMAC-SHA256 signatures of artifact bytes made with it.

The key lives outside every home: ``$VIGIL_SIGNING_KEY`` (hex) if set, else
``$XDG_CONFIG_HOME/vigil/signing.key`` (default ``~/.config/vigil/signing.key``),
created with 32 random bytes on first use, mode 0600 in a 0700 folder. A home
holds signatures and the public :func:`key_id` of the key that made them, never
the key itself, so whoever builds or edits a home cannot sign for you.

>>> key = bytes(range(32))
>>> signature = sign(b"model bytes", key)
>>> verify(b"model bytes", signature, key), verify(b"other bytes", signature, key)
(True, False)
>>> verify(b"model bytes", signature, bytes(range(1, 33)))
False
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

from vigil.errors import InvalidParameterError, SecretKeyError
from vigil.store.secret_files import write_new_key

#: Environment variable holding the signing key as hex (it takes precedence over the key file).
SIGNING_KEY_ENV = "VIGIL_SIGNING_KEY"
#: Length of the key Vigil creates, and the least it accepts.
KEY_BYTES = 32
#: The signature algorithm, as recorded beside each signature.
ALGORITHM = "hmac-sha256"

_SIGN_DOMAIN = b"vigil-artifact-v1\0"
_KEY_ID_DOMAIN = b"vigil-key-id-v1\0"
_CHECK_MODES = os.name == "posix"


def key_path() -> Path:
    """Where the signing key file is: ``$XDG_CONFIG_HOME/vigil/signing.key``, else ``~/.config/vigil/signing.key``.

    >>> from unittest import mock
    >>> with mock.patch.dict("os.environ", {"XDG_CONFIG_HOME": "/cfg"}):
    ...     key_path().as_posix()
    '/cfg/vigil/signing.key'
    """
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vigil" / "signing.key"


def signing_key() -> bytes:
    """The caller's signing key: ``$VIGIL_SIGNING_KEY`` if set, else the key file (created on first use).

    Refuses (:class:`~vigil.errors.SecretKeyError`, code ``key_error``) a
    malformed environment value, a key file others can read and a key file of
    the wrong length, saying how to fix each; no message ever shows the key.

    >>> import tempfile
    >>> from unittest import mock
    >>> with mock.patch.dict("os.environ", {"XDG_CONFIG_HOME": tempfile.mkdtemp()}):
    ...     _ = os.environ.pop(SIGNING_KEY_ENV, None)
    ...     first = signing_key()
    ...     len(first), signing_key() == first, oct(key_path().stat().st_mode & 0o777)
    (32, True, '0o600')
    >>> with mock.patch.dict("os.environ", {SIGNING_KEY_ENV: "ab" * 32}):
    ...     signing_key() == bytes.fromhex("ab" * 32)
    True
    """
    value = os.environ.get(SIGNING_KEY_ENV)
    if value is not None:
        return _key_from_env(value)
    path = key_path()
    if not path.exists():
        _create_key_file(path)
    return _read_key_file(path)


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key (16 hex digits), safe to store and show.

    >>> key_id(bytes(range(32)))
    'fec2eca9c82af641'
    >>> key_id(bytes(range(32))) == key_id(bytes(range(1, 33)))
    False
    """
    return hashlib.sha256(_KEY_ID_DOMAIN + _checked(key)).hexdigest()[:16]


def sign(payload: bytes, key: bytes) -> str:
    """The HMAC-SHA256 signature (hex) of ``payload`` under ``key``.

    >>> len(sign(b"model bytes", bytes(range(32))))
    64
    """
    return _mac(payload, _checked(key))


def verify(payload: bytes, signature: str, key: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature of ``payload`` (compared in constant time).

    >>> key = bytes(range(32))
    >>> verify(b"x", sign(b"x", key), key), verify(b"x", "not a signature", key)
    (True, False)
    """
    expected = _mac(payload, _checked(key))
    if not isinstance(signature, str) or not signature.isascii():
        return False
    return hmac.compare_digest(expected, signature.lower())


def _mac(payload: bytes, key: bytes) -> str:
    return hmac.new(key, _SIGN_DOMAIN + hashlib.sha256(payload).digest(), hashlib.sha256).hexdigest()


def _checked(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray):
        raise InvalidParameterError(f"a signing key must be bytes, not {type(key).__name__}", field="key")
    if len(key) < KEY_BYTES:
        raise InvalidParameterError(f"a signing key must be at least {KEY_BYTES} bytes long, got {len(key)}",
                                    field="key")
    return bytes(key)


def _key_from_env(value: str) -> bytes:
    how = (f"set {SIGNING_KEY_ENV} to at least {2 * KEY_BYTES} hex digits (e.g. the output of "
           f"`python -c \"import secrets; print(secrets.token_hex({KEY_BYTES}))\"`), or unset it to use the key "
           f"file {str(key_path())!r}")
    try:
        key = bytes.fromhex(value.strip())
    except ValueError:
        raise SecretKeyError(f"{SIGNING_KEY_ENV} is not a hex string: {how}", field=SIGNING_KEY_ENV) from None
    if len(key) < KEY_BYTES:
        raise SecretKeyError(f"{SIGNING_KEY_ENV} holds {len(key)} bytes, fewer than {KEY_BYTES}: {how}",
                             field=SIGNING_KEY_ENV)
    return key


def _create_key_file(path: Path) -> None:
    """Write a new random key to ``path`` without ever leaving it readable by others, nor replacing a key
    another process created meanwhile."""
    try:
        write_new_key(path, KEY_BYTES)
    except OSError as err:
        raise SecretKeyError(f"cannot create the signing key file {str(path)!r}: {err.strerror or err}; make its "
                             f"folder writable, point XDG_CONFIG_HOME elsewhere, or set {SIGNING_KEY_ENV}",
                             field="signing_key") from None


def _read_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise SecretKeyError(f"cannot read the signing key file {str(path)!r}: {err.strerror or err}",
                             field="signing_key") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SecretKeyError(f"the signing key {str(path)!r} is not a regular file", field="signing_key")
        if _CHECK_MODES and info.st_mode & 0o077:
            raise SecretKeyError(
                f"the signing key file {str(path)!r} can be read or changed by other users (mode "
                f"{oct(info.st_mode & 0o777)}); restrict it with `chmod 600 {path}` (and, if others may have "
                "read it, delete it so a new key is made, then re-register your models under the new key)",
                field="signing_key")
        if _CHECK_MODES and os.stat(path.parent).st_mode & 0o022:
            raise SecretKeyError(
                f"the folder of the signing key {str(path.parent)!r} is writable by other users, who could replace "
                f"the key; restrict it with `chmod 700 {path.parent}`", field="signing_key")
        key = fh.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise SecretKeyError(
            f"the signing key file {str(path)!r} is damaged: it holds {len(key) if len(key) <= KEY_BYTES else 'more'}"
            f" bytes where {KEY_BYTES} are expected; delete it so a new key is made on next use (models signed by "
            "the old key will then need re-registering, or loading with trust=True)", field="signing_key")
    return key
