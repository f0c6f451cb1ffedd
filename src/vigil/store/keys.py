"""Each project's PII key, kept in the home's ``secrets/`` folder, and the record that it has been used.

``secrets/<id>.key`` holds 32 random bytes (mode 0600, in a 0700 folder),
made on the project's first use; ``<id>`` is a digest of the project's name.
When the key is first handed out for hashing, its public fingerprint
(:func:`~vigil.core.pii.key_fingerprint`) is written beside it, in
``secrets/<id>.fingerprint``. From then on a key file that is missing, damaged
or holds another key is a :class:`~vigil.errors.SecretKeyError` (code
``key_error``) instead of a fresh key: a new key would give the same person a
new token, and joins with what was hashed before would silently break.

>>> import tempfile
>>> home = Path(tempfile.mkdtemp())
>>> key = project_key(home, "default")
>>> len(key), project_key(home, "default") == key, oct(key_path(home, "default").stat().st_mode & 0o777)
(32, True, '0o600')
>>> key_path(home, "default").unlink()
>>> project_key(home, "default")
Traceback (most recent call last):
...
vigil.errors.SecretKeyError: the PII key of project 'default' ... is missing, but values were already hashed ...
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from pathlib import Path

from vigil.core.pii import KEY_BYTES, key_fingerprint
from vigil.errors import SecretKeyError
from vigil.store.secret_files import write_new_key

SECRETS_DIR = "secrets"
_FIELD = "pii_key"
_FINGERPRINT = re.compile(r"[0-9a-f]{32}")
_POSIX = os.name == "posix"


def key_path(home: Path, project: str) -> Path:
    """The file that holds ``project``'s PII key.

    >>> key_path(Path("home"), "default").as_posix()
    'home/secrets/37a8eec1ce19687d.key'
    """
    return Path(home) / SECRETS_DIR / f"{_key_id(project)}.key"


def fingerprint_path(home: Path, project: str) -> Path:
    """The file that records the fingerprint of ``project``'s key once the key has been used.

    >>> fingerprint_path(Path("home"), "default").name
    '37a8eec1ce19687d.fingerprint'
    """
    return Path(home) / SECRETS_DIR / f"{_key_id(project)}.fingerprint"


def project_key(home: Path, project: str, *, expected_fingerprint: str | None = None) -> bytes:
    """``project``'s PII key, created on first use; records its fingerprint the first time it is handed out.

    Refuses (:class:`SecretKeyError`) a key file that is missing, damaged or
    holds another key once a fingerprint is recorded (beside the key, or given
    as ``expected_fingerprint`` by a caller that keeps it elsewhere), saying
    how to restore it. The message never shows the key.

    >>> import tempfile
    >>> home = Path(tempfile.mkdtemp())
    >>> key = project_key(home, "p")
    >>> fingerprint_path(home, "p").read_text() == key_fingerprint(key)
    True
    """
    path, fp_path = key_path(home, project), fingerprint_path(home, project)
    recorded = _read_fingerprint(fp_path, project)
    if expected_fingerprint is not None:
        if recorded is not None and recorded != expected_fingerprint:
            raise SecretKeyError(
                f"the PII key fingerprint of project {project!r} recorded in {str(fp_path)!r} differs from the one "
                f"the store expects ({expected_fingerprint}): {_restore(path, fp_path)}", field=_FIELD,
                path=str(path))
        recorded = expected_fingerprint
    if not path.exists():
        if recorded is not None:
            raise SecretKeyError(
                f"the PII key of project {project!r} ({str(path)!r}) is missing, but values were already hashed "
                f"with it (its fingerprint {recorded} is recorded): a new key would give each person a new token "
                f"and joins with earlier data would break. {_restore(path, fp_path)}", field=_FIELD, path=str(path))
        _create_key_file(path)
    key = _read_key_file(path, project, fp_path)
    actual = key_fingerprint(key)
    if recorded is None:
        _write_fingerprint(fp_path, actual)
    elif actual != recorded:
        raise SecretKeyError(
            f"the PII key file of project {project!r} ({str(path)!r}) holds another key than the one values were "
            f"hashed with (fingerprint {actual}, expected {recorded}). {_restore(path, fp_path)}", field=_FIELD,
            path=str(path))
    return key


def _key_id(project: str) -> str:
    return hashlib.sha256(project.encode()).hexdigest()[:16]


def _restore(path: Path, fp_path: Path) -> str:
    return (f"Restore {str(path)!r} from a backup of the home; or, knowing that tokens made from now on will not "
            f"join those made before, delete {str(fp_path)!r} (and the key file) to start afresh with a new key.")


def _secrets_folder(path: Path) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise SecretKeyError(f"cannot create the folder {str(path.parent)!r} for PII keys: {err.strerror or err}",
                             field=_FIELD) from None


def _create_key_file(path: Path) -> None:
    """Write a new random key without ever leaving it readable by others, nor replacing a key another process
    created meanwhile."""
    _secrets_folder(path)
    try:
        write_new_key(path, KEY_BYTES)
    except OSError as err:
        raise SecretKeyError(f"cannot create the PII key file {str(path)!r}: {err.strerror or err}",
                             field=_FIELD, path=str(path)) from None


def _read_key_file(path: Path, project: str, fp_path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SecretKeyError(f"the PII key {str(path)!r} of project {project!r} is not a regular file",
                                     field=_FIELD, path=str(path))
            if _POSIX and info.st_mode & 0o077:
                os.chmod(path, 0o600)  # a key stays readable by its owner only
            key = fh.read(KEY_BYTES + 1)
    except OSError as err:
        raise SecretKeyError(f"cannot read the PII key file {str(path)!r}: {err.strerror or err}",
                             field=_FIELD, path=str(path)) from None
    if len(key) != KEY_BYTES:
        size = f"{len(key)} bytes" if len(key) <= KEY_BYTES else "more bytes"
        raise SecretKeyError(
            f"the PII key file of project {project!r} ({str(path)!r}) is damaged: it holds {size} where {KEY_BYTES} "
            f"are expected. {_restore(path, fp_path)}", field=_FIELD, path=str(path))
    return key


def _read_fingerprint(path: Path, project: str) -> str | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise SecretKeyError(f"cannot read the PII key fingerprint {str(path)!r} of project {project!r}: {err}",
                             field=_FIELD, path=str(path)) from None
    if not _FINGERPRINT.fullmatch(text):
        raise SecretKeyError(
            f"the PII key fingerprint file {str(path)!r} of project {project!r} is damaged; restore it from a backup "
            "of the home (or delete it if the key file beside it is the key values were hashed with: the "
            "fingerprint is recorded again on next use)", field=_FIELD, path=str(path))
    return text


def _write_fingerprint(path: Path, fingerprint: str) -> None:
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(fingerprint)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise SecretKeyError(f"cannot record the PII key fingerprint in {str(path)!r}: {err.strerror or err}",
                             field=_FIELD, path=str(path)) from None
