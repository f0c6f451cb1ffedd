"""One exception family for all of Vigil.

Domain and store code raise these; only an interface (CLI exit code, HTTP
status) decides how to show them. Each carries a stable ``code``.

>>> try:
...     raise NotFoundError("model 'credit' is not registered")
... except VigilError as err:
...     print(err.code, "-", err)
not_found - model 'credit' is not registered
"""

from __future__ import annotations


class VigilError(Exception):
    """Base of every error Vigil raises on purpose."""

    code = "vigil_error"


class NotFoundError(VigilError):
    """A project, model, version, dataset or event that does not exist."""

    code = "not_found"


class AlreadyExistsError(VigilError):
    """An object with that name (or version) is already registered."""

    code = "already_exists"


class SchemaError(VigilError):
    """A schema that cannot be built or does not fit the data given."""

    code = "schema_error"


class BatchError(VigilError):
    """A whole batch is refused (unknown columns, unreadable file...); nothing was written."""

    code = "batch_error"


class StoreVersionError(VigilError):
    """The store on disk was written by a newer Vigil than this one."""

    code = "store_version"


class ArtifactError(VigilError):
    """A model artifact that cannot be stored or loaded."""

    code = "artifact_error"
