"""Vigil: model performance management.

Record every prediction a model makes, join the ground truth when it
arrives, and monitor, explain and govern from that store.

>>> import vigil
>>> vigil.Schema is vigil.core.schema.Schema
True
"""

from vigil import core, metrics
from vigil.core.schema import Column, Kind, Role, Schema, infer_schema
from vigil.errors import (
    AlreadyExistsError,
    ArtifactError,
    BatchError,
    NotFoundError,
    SchemaError,
    StoreVersionError,
    VigilError,
)
from vigil.interfaces.api import Store, open
from vigil.interfaces.notebook import Comparison, compare
from vigil.services.ingest import IngestResult
from vigil.services.registry import Dataset, ModelVersion

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "ArtifactError",
    "BatchError",
    "Column",
    "Comparison",
    "Dataset",
    "IngestResult",
    "Kind",
    "ModelVersion",
    "NotFoundError",
    "Role",
    "Schema",
    "SchemaError",
    "Store",
    "StoreVersionError",
    "VigilError",
    "compare",
    "core",
    "infer_schema",
    "metrics",
    "open",
]
