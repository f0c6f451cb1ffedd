"""One exception family for all of Vigil.

Domain and store code raise these; only an interface (CLI exit code, HTTP
status) decides how to show them. Each class carries a stable ``code``; an
error about one input also names it in ``field`` (a parameter, a column, a
row). ``docs/errors.md`` lists every code with its CLI exit code and HTTP
status, and :data:`EXIT_CODES` / :data:`HTTP_STATUSES` are that table.

>>> try:
...     raise NotFoundError("model 'credit' is not registered", field="model")
... except VigilError as err:
...     print(err.code, err.field, "-", err)
not_found model - model 'credit' is not registered
>>> InvalidSegmentError("bad", position=3).code, InvalidSegmentError("bad", position=3).position
('invalid_segment', 3)
"""

from __future__ import annotations

from typing import Any


class VigilError(Exception):
    """Base of every error Vigil raises on purpose.

    ``field`` names the offending parameter, column or row where there is one;
    ``details`` holds anything else an interface may show (JSON-serialisable).
    """

    code = "vigil_error"

    def __init__(self, message: str = "", *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The error as data: ``code``, ``message``, ``field`` and any details.

        >>> BatchError("no rows", field="data").to_dict()
        {'code': 'batch_error', 'message': 'no rows', 'field': 'data'}
        """
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        out.update({k: v for k, v in self.details.items() if v is not None})
        return out


class InvalidParameterError(VigilError, ValueError):
    """An argument with a value Vigil cannot use (a bad window, status, baseline, limit, name...)."""

    code = "invalid_parameter"


class InvalidSegmentError(InvalidParameterError):
    """A segment that is not a condition on the schema's columns in the segment language.

    ``position`` is the character offset of the problem in an expression (None for a mapping).
    """

    code = "invalid_segment"

    def __init__(self, message: str = "", *, position: int | None = None, field: str | None = "segment",
                 **details: Any) -> None:
        super().__init__(message, field=field, position=position, **details)
        self.position = position


class NotFoundError(VigilError, LookupError):
    """A project, model, version, dataset or event that does not exist."""

    code = "not_found"


class ConflictError(VigilError):
    """A request that contradicts what is stored (a status change not allowed, content that differs...)."""

    code = "conflict"


class AlreadyExistsError(ConflictError):
    """An object with that name (or version) is already registered."""

    code = "already_exists"


class SchemaError(VigilError, ValueError):
    """A schema that cannot be built or does not fit the data given."""

    code = "schema_error"


class BatchError(VigilError, ValueError):
    """A whole batch is refused (unknown columns, unreadable file...); nothing was written."""

    code = "batch_error"


class StoreError(VigilError):
    """The store cannot be opened or read: not a Vigil home, a damaged file, a missing dataset file."""

    code = "store_error"


class StoreVersionError(StoreError):
    """The store on disk was written by a newer Vigil than this one (or needs a migration it cannot get)."""

    code = "store_version"


class StoreBusyError(StoreError):
    """Another process holds the store's write lock."""

    code = "store_busy"


class ReadOnlyError(StoreError):
    """A write asked of a store opened ``read_only=True``."""

    code = "read_only"


class ArtifactError(VigilError):
    """A model artifact that cannot be stored or loaded."""

    code = "artifact_error"


class UntrustedArtifactError(ArtifactError):
    """An artifact whose signature does not verify under the caller's signing key: not loaded."""

    code = "untrusted_artifact"


class SecretKeyError(VigilError):
    """A key Vigil needs (a project's PII key, the signing key) is missing or damaged."""

    code = "key_error"


class ExplainError(VigilError, ValueError):
    """A model or method that cannot be explained as asked."""

    code = "explain_error"


class MetricInputError(VigilError, ValueError):
    """Inputs a metric cannot be computed from (empty, mismatched, out of domain)."""

    code = "metric_input"


class ProfileError(VigilError, ValueError):
    """Profiles that cannot be built or merged (different bins, kinds or classes)."""

    code = "profile_error"


#: CLI exit code of each error code (0 is success, 1 an unexpected failure, 2 a usage error).
EXIT_CODES: dict[str, int] = {
    "invalid_parameter": 2,
    "invalid_segment": 2,
    "not_found": 3,
    "conflict": 4,
    "already_exists": 4,
    "schema_error": 5,
    "batch_error": 5,
    "metric_input": 5,
    "profile_error": 5,
    "store_error": 6,
    "store_version": 6,
    "store_busy": 7,
    "read_only": 7,
    "artifact_error": 8,
    "untrusted_artifact": 9,
    "key_error": 10,
    "explain_error": 11,
    "vigil_error": 1,
}

#: HTTP status of each error code, for the server's edge.
HTTP_STATUSES: dict[str, int] = {
    "invalid_parameter": 400,
    "invalid_segment": 400,
    "not_found": 404,
    "conflict": 409,
    "already_exists": 409,
    "schema_error": 422,
    "batch_error": 422,
    "metric_input": 422,
    "profile_error": 422,
    "store_error": 500,
    "store_version": 500,
    "store_busy": 503,
    "read_only": 405,
    "artifact_error": 422,
    "untrusted_artifact": 403,
    "key_error": 500,
    "explain_error": 422,
    "vigil_error": 400,
}


def exit_code(error: VigilError) -> int:
    """The CLI exit code for an error.

    >>> exit_code(NotFoundError("x")), exit_code(UntrustedArtifactError("x"))
    (3, 9)
    """
    return EXIT_CODES.get(error.code, 1)
