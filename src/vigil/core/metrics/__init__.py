"""Metrics: pure functions over arrays, frames and profile counts (no I/O).

Drift: :mod:`vigil.core.metrics.drift` (univariate statistics and the drift decision) and
:mod:`vigil.core.metrics.multivariate` (PCA reconstruction, domain classifier, MMD).
"""

from vigil.core.metrics.drift import (
    DEFAULTS,
    METHODS,
    UNSEEN,
    DriftMethod,
    MetricInputError,
    StatTestResult,
    bin_counts,
    category_counts,
    chi2,
    chi2_from_counts,
    column_drift,
    drift_table,
    hellinger,
    hellinger_from_counts,
    js_distance,
    js_distance_from_counts,
    ks,
    ks_from_counts,
    psi,
    psi_from_counts,
    quantile_edges,
    wasserstein,
    wasserstein_from_counts,
)
from vigil.core.metrics.multivariate import (
    domain_classifier_auc,
    mean_embedding_distance,
    mmd,
    pca_reconstruction_drift,
)

__all__ = [
    "DEFAULTS",
    "METHODS",
    "UNSEEN",
    "DriftMethod",
    "MetricInputError",
    "StatTestResult",
    "bin_counts",
    "category_counts",
    "chi2",
    "chi2_from_counts",
    "column_drift",
    "drift_table",
    "hellinger",
    "hellinger_from_counts",
    "js_distance",
    "js_distance_from_counts",
    "ks",
    "ks_from_counts",
    "psi",
    "psi_from_counts",
    "quantile_edges",
    "wasserstein",
    "wasserstein_from_counts",
    "domain_classifier_auc",
    "mean_embedding_distance",
    "mmd",
    "pca_reconstruction_drift",
]
