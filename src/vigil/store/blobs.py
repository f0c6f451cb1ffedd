"""Artifacts and dataset files in a directory: the blob area of a home (or of a lake).

Datasets are Parquet files named by their content hash, written atomically
once per content; a missing or damaged file is a :class:`~vigil.errors.StoreError`
that names it.

>>> import tempfile, pyarrow as pa
>>> blobs = DirectoryBlobs(tempfile.mkdtemp())
>>> path = blobs.write_dataset(pa.table({"x": [1, 2]}), "abc")
>>> path, blobs.read_dataset(path).num_rows
('datasets/abc.parquet', 2)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vigil.errors import ReadOnlyError, StoreError
from vigil.store.artifacts import load_artifact, require_trusted, save_artifact


class DirectoryBlobs:
    """:class:`~vigil.store.protocols.BlobStore` in a local directory."""

    def __init__(self, root: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.root = Path(root)
        self.read_only = read_only

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"the store in {str(self.root)!r} was opened read_only=True: this call writes; "
                                "open it without read_only to write")

    def write_dataset(self, table: pa.Table, digest: str) -> str:
        """Write a dataset under its content hash (once); returns its path relative to the root."""
        self._check_writable()
        path = Path("datasets") / f"{digest}.parquet"
        target = self.root / path
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            pq.write_table(table, tmp)
            tmp.replace(target)
        return str(path)

    def read_dataset(self, path: str) -> pa.Table:
        """A dataset's rows."""
        full = self.root / path
        try:
            return pq.read_table(full)
        except FileNotFoundError:
            raise StoreError(f"the dataset file {str(full)!r} is missing from the home: restore it from a backup "
                             "or register the dataset again", field="dataset") from None
        except (OSError, pa.ArrowException) as err:
            raise StoreError(f"the dataset file {str(full)!r} is damaged ({str(err).splitlines()[0][:160]}): "
                             "restore it from a backup or register the dataset again", field="dataset") from None

    def save_artifact(self, model: Any) -> Any:
        """Serialise and sign a model (see :mod:`vigil.store.artifacts`)."""
        self._check_writable()
        return save_artifact(self.root, model)

    def check_artifact(self, sha256: str) -> None:
        """Raise :class:`~vigil.errors.UntrustedArtifactError` unless the artifact verifies under the caller's key."""
        require_trusted(self.root, sha256)

    def load_artifact(self, sha256: str, *, trust: bool = False) -> Any:
        """A model object, only when its signature verifies under the caller's key (or ``trust``)."""
        return load_artifact(self.root, sha256, trust=trust)
