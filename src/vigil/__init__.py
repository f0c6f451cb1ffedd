"""Vigil: model performance management.

Record every prediction a model makes, join the ground truth when it
arrives, and monitor, explain and govern from that store.

>>> import vigil
>>> vigil.Schema is vigil.core.schema.Schema
True
"""

from vigil import core, metrics
from vigil.core.explain import Explanation, explain
from vigil.core.explain.counterfactual import counterfactuals, what_if
from vigil.core.fairness import FairnessReport, fairness
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
    "Explanation",
    "FairnessReport",
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
    "counterfactuals",
    "explain",
    "fairness",
    "infer_schema",
    "metrics",
    "open",
    "what_if",
]
