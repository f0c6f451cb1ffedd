"""Model artifacts kept in the home, named by the sha256 of their bytes and signed with the user's key.

Any fitted scikit-learn estimator or pipeline, XGBoost or LightGBM model, or
Python callable (a lambda included) is serialised with cloudpickle into
``artifacts/<sha256>.pkl``, beside a signature ``artifacts/<sha256>.sig``
made with the user's signing key (:mod:`vigil.store.signing`, kept outside
the home). Unpickling runs code, so loading checks the bytes against their
hash, then the signature against the caller's key, and unpickles only what
verifies — or what the caller says it trusts (``trust=True``).

>>> import tempfile
>>> from pathlib import Path
>>> home, mine, theirs = Path(tempfile.mkdtemp()), bytes(range(32)), bytes(range(1, 33))
>>> saved = save_artifact(home, lambda rows: [0] * len(rows), key=mine)
>>> len(saved.sha256), saved.type_name
(64, 'builtins.function')
>>> load_artifact(home, saved.sha256, key=mine)([1, 2])
[0, 0]
>>> load_artifact(home, saved.sha256, key=theirs)
Traceback (most recent call last):
...
vigil.errors.UntrustedArtifactError: artifact ... was signed by another key (...), not by yours (...) ...
>>> load_artifact(home, saved.sha256, key=theirs, trust=True)([1])
[0]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from vigil.errors import ArtifactError, InvalidParameterError, UntrustedArtifactError
from vigil.store import signing

ARTIFACT_DIR = "artifacts"
#: Suffix of the signature file beside each artifact.
SIGNATURE_SUFFIX = ".sig"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_HOW_TO_TRUST = ("Loading a model runs code from its file. If you know where this home came from and trust it, "
                 "load with trust=True (Python) or --trust (CLI); or re-register the model under your own key.")


@dataclass(frozen=True)
class SavedArtifact:
    """Where an artifact lies, what it is, and who signed it."""

    sha256: str
    path: str
    type_name: str
    signature: str
    key_id: str


@dataclass(frozen=True)
class ArtifactTrust:
    """Whether an artifact's signature verifies under the caller's key.

    ``reason`` is one of ``verified``, ``not_signed`` (no signature file),
    ``other_key`` (signed by the key ``signed_by``, not the caller's
    ``key_id``), ``bad_signature`` (the signature names the caller's key but
    does not match the bytes: they, or it, changed after signing) and
    ``unreadable_signature`` (a signature file that is not one).
    """

    verified: bool
    reason: str
    key_id: str
    signed_by: str | None


def artifact_type(model: Any) -> str:
    """``module.QualName`` of a model's class.

    >>> from sklearn.linear_model import LogisticRegression
    >>> artifact_type(LogisticRegression())
    'sklearn.linear_model._logistic.LogisticRegression'
    """
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def save_artifact(home: Path, model: Any, *, key: bytes | None = None) -> SavedArtifact:
    """Serialise ``model`` into ``home/artifacts/<sha256>.pkl`` and sign it with ``key`` (default: the user's).

    The artifact is written atomically, once per content; its signature is
    (re)written whenever it does not already verify under ``key``, so saving
    the same model under another key makes that key its signer.

    >>> import tempfile
    >>> home = Path(tempfile.mkdtemp())
    >>> saved = save_artifact(home, {"weights": [0.5, 2.0]}, key=bytes(range(32)))
    >>> saved.path == f"artifacts/{saved.sha256}.pkl", saved.key_id
    (True, 'fec2eca9c82af641')
    >>> sorted(p.suffix for p in (home / "artifacts").iterdir())
    ['.pkl', '.sig']
    """
    key = signing.signing_key() if key is None else key
    try:
        payload = cloudpickle.dumps(model)
    except Exception as err:  # noqa: BLE001 - pickling can fail in many ways; all mean the same to the user
        raise ArtifactError(f"cannot serialise the model ({artifact_type(model)}): {err}", field="model") from None
    sha = hashlib.sha256(payload).hexdigest()
    signature, kid = signing.sign(payload, key), signing.key_id(key)
    folder = Path(home) / ARTIFACT_DIR
    path = folder / f"{sha}.pkl"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != payload:  # a damaged copy is replaced, not kept
            _write_atomic(folder, path, payload)
        if not _trust_of(folder, sha, payload, key).verified:
            record = {"alg": signing.ALGORITHM, "key_id": kid, "signature": signature}
            _write_atomic(folder, _signature_path(folder, sha), json.dumps(record).encode())
    except OSError as err:
        raise ArtifactError(f"cannot write artifact {sha} into {str(folder)!r}: {err.strerror or err}") from None
    return SavedArtifact(sha256=sha, path=f"{ARTIFACT_DIR}/{sha}.pkl", type_name=artifact_type(model),
                         signature=signature, key_id=kid)


def verify_artifact(home: Path, sha256: str, *, key: bytes | None = None) -> ArtifactTrust:
    """Whether an artifact's signature verifies under ``key`` (default: the user's); reads bytes, never unpickles.

    A missing artifact, or one whose bytes no longer hash to ``sha256``, is an
    :class:`~vigil.errors.ArtifactError`.

    >>> import tempfile
    >>> home = Path(tempfile.mkdtemp())
    >>> sha = save_artifact(home, [1, 2, 3], key=bytes(range(32))).sha256
    >>> verify_artifact(home, sha, key=bytes(range(32))).reason
    'verified'
    >>> verify_artifact(home, sha, key=bytes(range(1, 33)))
    ArtifactTrust(verified=False, reason='other_key', key_id='...', signed_by='fec2eca9c82af641')
    """
    folder = Path(home) / ARTIFACT_DIR
    payload = _read_checked(folder, sha256)
    return _trust_of(folder, sha256, payload, signing.signing_key() if key is None else key)


def load_artifact(home: Path, sha256: str, *, trust: bool = False, key: bytes | None = None) -> Any:
    """Load an artifact whose bytes match their hash and whose signature verifies under ``key`` (default: the
    user's); ``trust=True`` skips the signature check (the hash is still checked).

    An artifact that does not verify raises
    :class:`~vigil.errors.UntrustedArtifactError` before anything is unpickled.

    >>> import tempfile
    >>> home = Path(tempfile.mkdtemp())
    >>> sha = save_artifact(home, max, key=bytes(range(32))).sha256
    >>> load_artifact(home, sha, key=bytes(range(32)))([3, 5])
    5
    """
    folder = Path(home) / ARTIFACT_DIR
    payload = _read_checked(folder, sha256)
    if not trust:
        state = _trust_of(folder, sha256, payload, signing.signing_key() if key is None else key)
        if not state.verified:
            raise UntrustedArtifactError(_untrusted_message(sha256, state, folder), field="sha256",
                                         sha256=sha256, reason=state.reason, key_id=state.key_id,
                                         signed_by=state.signed_by)
    try:
        return cloudpickle.loads(payload)
    except ModuleNotFoundError as err:
        raise ArtifactError(f"cannot load artifact {sha256}: it needs the module {err.name!r}, which is not "
                            "installed here (install the model's library, at the version it was saved with)",
                            field="sha256") from None
    except Exception as err:  # noqa: BLE001 - unpickling fails in many ways; all mean "cannot rebuild the model"
        raise ArtifactError(f"cannot load artifact {sha256}: {type(err).__name__}: {err} (is the model's library "
                            "installed, at the version it was saved with?)", field="sha256") from None


def _read_checked(folder: Path, sha256: str) -> bytes:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise InvalidParameterError(f"an artifact is named by 64 lowercase hex digits, got {sha256!r}",
                                    field="sha256")
    path = folder / f"{sha256}.pkl"
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"artifact {sha256} is missing from {str(folder)!r}", field="sha256") from None
    except OSError as err:
        raise ArtifactError(f"cannot read artifact {sha256}: {err.strerror or err}", field="sha256") from None
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sha256:
        raise ArtifactError(f"artifact {sha256} is corrupt: its bytes hash to {actual}", field="sha256")
    return payload


def _trust_of(folder: Path, sha256: str, payload: bytes, key: bytes) -> ArtifactTrust:
    mine = signing.key_id(key)
    try:
        raw = _signature_path(folder, sha256).read_bytes()
    except FileNotFoundError:
        return ArtifactTrust(False, "not_signed", mine, None)
    except OSError:
        return ArtifactTrust(False, "unreadable_signature", mine, None)
    try:
        record = json.loads(raw)
        alg, signed_by, signature = record["alg"], record["key_id"], record["signature"]
    except (ValueError, TypeError, KeyError):
        return ArtifactTrust(False, "unreadable_signature", mine, None)
    if alg != signing.ALGORITHM or not isinstance(signed_by, str) or not isinstance(signature, str):
        return ArtifactTrust(False, "unreadable_signature", mine, signed_by if isinstance(signed_by, str) else None)
    if signed_by != mine:
        return ArtifactTrust(False, "other_key", mine, signed_by)
    if not signing.verify(payload, signature, key):
        return ArtifactTrust(False, "bad_signature", mine, signed_by)
    return ArtifactTrust(True, "verified", mine, signed_by)


def _untrusted_message(sha256: str, state: ArtifactTrust, folder: Path) -> str:
    sig = str(_signature_path(folder, sha256))
    why = {
        "not_signed": f"is not signed (no signature file {sig!r}), so nothing says who made it",
        "other_key": f"was signed by another key ({state.signed_by}), not by yours ({state.key_id})",
        "bad_signature": (f"does not match its signature under your key ({state.key_id}): its bytes or its "
                          "signature changed after signing"),
        "unreadable_signature": f"has a signature file {sig!r} that cannot be read as one",
    }[state.reason]
    return f"artifact {sha256} {why}; it was not loaded. {_HOW_TO_TRUST}"


def _signature_path(folder: Path, sha256: str) -> Path:
    return folder / f"{sha256}{SIGNATURE_SUFFIX}"


def _write_atomic(folder: Path, path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def require_trusted(home: Path, sha256: str, *, key: bytes | None = None) -> None:
    """Raise :class:`~vigil.errors.UntrustedArtifactError` unless the artifact verifies under ``key`` (default:
    the user's); reads bytes, never unpickles.

    >>> import tempfile
    >>> home = Path(tempfile.mkdtemp())
    >>> sha = save_artifact(home, [1], key=bytes(range(32))).sha256
    >>> require_trusted(home, sha, key=bytes(range(32)))
    """
    folder = Path(home) / ARTIFACT_DIR
    state = verify_artifact(home, sha256, key=key)
    if not state.verified:
        raise UntrustedArtifactError(_untrusted_message(sha256, state, folder), field="sha256", sha256=sha256,
                                     reason=state.reason, key_id=state.key_id, signed_by=state.signed_by)
