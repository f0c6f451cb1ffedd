"""Demo data for Vigil: the UCI Adult data set, a model fit on it, and simulated drifting traffic."""

from vigil.demo.build import DemoSummary, build_demo
from vigil.demo.simulate import (
    CHANNELS,
    DROPPED_COLUMNS,
    NEGATIVE_LABEL,
    POSITIVE_LABEL,
    TARGET,
    DemoData,
    FittedClassifier,
    default_start,
    load_adult,
    make_demo_data,
    simulate_traffic,
    split_features,
    train_model,
)

__all__ = [
    "CHANNELS",
    "DROPPED_COLUMNS",
    "NEGATIVE_LABEL",
    "POSITIVE_LABEL",
    "TARGET",
    "DemoData",
    "DemoSummary",
    "FittedClassifier",
    "build_demo",
    "default_start",
    "load_adult",
    "make_demo_data",
    "simulate_traffic",
    "split_features",
    "train_model",
]
