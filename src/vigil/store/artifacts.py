"""Model artifacts kept in the home, named by the sha256 of their bytes.

Any fitted scikit-learn estimator or pipeline, XGBoost or LightGBM model, or
Python callable (a lambda included) is serialised with cloudpickle; loading
checks the bytes against the recorded hash before unpickling.

>>> import tempfile
>>> from pathlib import Path
>>> home = Path(tempfile.mkdtemp())
>>> saved = save_artifact(home, lambda rows: [0] * len(rows))
>>> len(saved.sha256), saved.type_name
(64, 'builtins.function')
>>> load_artifact(home, saved.sha256)([1, 2])
[0, 0]
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from vigil.errors import ArtifactError

ARTIFACT_DIR = "artifacts"


@dataclass(frozen=True)
class SavedArtifact:
    """Where an artifact lies and what it is."""

    sha256: str
    path: str
    type_name: str


def artifact_type(model: Any) -> str:
    """``module.QualName`` of a model's class.

    >>> from sklearn.linear_model import LogisticRegression
    >>> artifact_type(LogisticRegression())
    'sklearn.linear_model._logistic.LogisticRegression'
    """
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def save_artifact(home: Path, model: Any) -> SavedArtifact:
    """Serialise ``model`` into ``home/artifacts/<sha256>.pkl`` (atomically; once per content)."""
    try:
        payload = cloudpickle.dumps(model)
    except Exception as err:  # noqa: BLE001 - pickling can fail in many ways; all mean the same to the user
        raise ArtifactError(f"cannot serialise the model ({artifact_type(model)}): {err}") from None
    sha = hashlib.sha256(payload).hexdigest()
    folder = home / ARTIFACT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sha}.pkl"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return SavedArtifact(sha256=sha, path=str(path.relative_to(home)), type_name=artifact_type(model))


def load_artifact(home: Path, sha256: str) -> Any:
    """Load an artifact, refusing one whose bytes no longer match their hash."""
    path = home / ARTIFACT_DIR / f"{sha256}.pkl"
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"artifact {sha256} is missing from {str(path.parent)!r}") from None
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sha256:
        raise ArtifactError(f"artifact {sha256} is corrupt: its bytes hash to {actual}")
    try:
        return cloudpickle.loads(payload)
    except Exception as err:  # noqa: BLE001
        raise ArtifactError(f"cannot load artifact {sha256}: {err} (is the model's library installed?)") from None
