"""Demo data: the UCI Adult data set, a model fit on it, and simulated production traffic.

The traffic drifts slowly over the simulated period, so every monitor in Vigil has something to find:

- covariate drift: ``age`` gets younger, ``hours-per-week`` creeps up, and more people report a small
  ``capital-gain`` (the distribution of gains moves towards small non-zero amounts);
- a protected group's share changes: the share of ``sex == "Female"`` rises from the pool's ~33% to 50%;
- metadata drift: the ``channel`` mix moves from ``branch`` towards ``web``;
- concept drift, which costs accuracy: the degree premium erodes while wages in the skilled trades rise.
  Over the period, a share growing from 0 to 50% of the degree holders (``education-num >= 13``) whose row
  says ``>50K`` get the label ``<=50K``, and a share growing from 0 to 40% of the full-time (40+ hours)
  workers in craft, transport and machine-operator jobs whose row says ``<=50K`` get ``>50K``. The model
  learned the old pattern, so its accuracy is about 5 points lower in the last 10 days than in the first 10
  (the shift to younger people and more women, who mostly earn ``<=50K``, offsets part of the loss).

Labels arrive late (2 to 14 days, most within a week) and only for part of the traffic.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

__all__ = [
    "CHANNELS",
    "DROPPED_COLUMNS",
    "NEGATIVE_LABEL",
    "POSITIVE_LABEL",
    "TARGET",
    "DemoData",
    "FittedClassifier",
    "default_start",
    "load_adult",
    "make_demo_data",
    "simulate_traffic",
    "split_features",
    "train_model",
]

TARGET = "income"
POSITIVE_LABEL = ">50K"
NEGATIVE_LABEL = "<=50K"
DROPPED_COLUMNS = ("fnlwgt",)
CHANNELS = ("web", "branch", "partner")

_CHANNEL_MIX_START = np.array([0.45, 0.40, 0.15])
_CHANNEL_MIX_END = np.array([0.65, 0.20, 0.15])
_FEMALE_SHARE_END = 0.50
_AGE_TILT_PER_YEAR = 0.03
_EXTRA_HOURS_END = 3.0
_NEW_CAPITAL_GAIN_RATE_END = 0.10
_NEW_CAPITAL_GAIN_MEDIAN = 2_000.0
_DEGREE_EDUCATION_NUM = 13
_TRADE_OCCUPATIONS = ("Craft-repair", "Transport-moving", "Machine-op-inspct")
_DEGREE_PREMIUM_LOSS_END = 0.5
_TRADE_RAISE_END = 0.4
_WEEKDAY_VOLUME = np.array([1.10, 1.10, 1.10, 1.05, 1.00, 0.80, 0.75])
_HOURLY_VOLUME = 0.35 + np.exp(-0.5 * ((np.arange(24) - 14.0) / 4.0) ** 2)
_LABEL_DELAY_MIN_DAYS = 2.0
_LABEL_DELAY_SPAN_DAYS = 12.0


class FittedClassifier(Protocol):
    """What :func:`simulate_traffic` needs from a model: a classifier fit on a DataFrame."""

    feature_names_in_: Any
    classes_: Any

    def predict(self, X: pd.DataFrame) -> Any: ...

    def predict_proba(self, X: pd.DataFrame) -> Any: ...


def load_adult() -> pd.DataFrame:
    """Load the packaged UCI Adult training split (32,561 rows, 15 columns).

    Values are stripped of whitespace and the literal ``"?"`` is read as missing. Column names are kept as
    published (with hyphens, e.g. ``education-num``). The target ``income`` holds the strings ``"<=50K"`` and
    ``">50K"``. See ``data/NOTICE.md`` for the source and licence.

    >>> adult = load_adult()
    >>> adult.shape
    (32561, 15)
    >>> int(adult["workclass"].isna().sum())
    1836
    >>> sorted(adult["income"].unique())
    ['<=50K', '>50K']
    """
    with (files("vigil.demo") / "data" / "adult.csv.gz").open("rb") as handle:
        frame = pd.read_csv(handle, compression="gzip", skipinitialspace=True)
    frame.columns = [str(column).strip() for column in frame.columns]
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            stripped = frame[column].str.strip()
            frame[column] = stripped.where(stripped != "?")
    return frame


def split_features(
    frame: pd.DataFrame, *, target: str = TARGET, drop: tuple[str, ...] = DROPPED_COLUMNS
) -> tuple[list[str], list[str]]:
    """Split the feature columns of ``frame`` into (numeric, categorical), without the target and ``drop``.

    >>> numeric, categorical = split_features(load_adult())
    >>> numeric
    ['age', 'education-num', 'capital-gain', 'capital-loss', 'hours-per-week']
    >>> categorical[:3]
    ['workclass', 'education', 'marital-status']
    """
    features = [column for column in frame.columns if column != target and column not in drop]
    numeric = [column for column in features if pd.api.types.is_numeric_dtype(frame[column])]
    categorical = [column for column in features if column not in numeric]
    return numeric, categorical


def train_model(train_df: pd.DataFrame, *, target: str = TARGET, seed: int = 0) -> Pipeline:
    """Fit the demo classifier: preprocessing plus a histogram gradient-boosting classifier.

    Numeric columns are imputed with the median and standardised; categorical columns are imputed with the
    most frequent value and one-hot encoded (unknown categories are ignored). ``fnlwgt`` is not a feature:
    it is the census sampling weight, not an attribute of the person.

    The pipeline predicts the label strings. ``classes_`` is ``['<=50K', '>50K']`` (sorted), so
    ``predict_proba(X)[:, 1]`` is P(">50K"), and ``predict`` returns ``">50K"`` exactly when that
    probability is above 0.5.

    >>> adult = load_adult()
    >>> model = train_model(adult.iloc[:2000])
    >>> list(model.classes_)
    ['<=50K', '>50K']
    >>> model.predict(adult.iloc[2000:2003]).tolist()
    ['<=50K', '<=50K', '<=50K']
    """
    numeric, categorical = split_features(train_df, target=target)
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                numeric,
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            ),
        ]
    )
    model = Pipeline(
        [
            ("preprocess", preprocess),
            ("classify", HistGradientBoostingClassifier(max_iter=200, random_state=seed)),
        ]
    )
    model.fit(train_df[numeric + categorical], train_df[target].astype(object))
    return model


def default_start(days: int) -> datetime:
    """Midnight UTC today minus ``days`` days, so that a simulation of ``days`` days ends today.

    >>> start = default_start(60)
    >>> (start.tzinfo, start.hour, start.minute)
    (datetime.timezone.utc, 0, 0)
    """
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def simulate_traffic(
    pool_df: pd.DataFrame,
    model: FittedClassifier,
    *,
    days: int = 60,
    events_per_day: int = 800,
    start: datetime | None = None,
    seed: int = 0,
    target: str = TARGET,
    drift: float = 1.0,
    label_rate: float = 0.7,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate ``days`` days of production traffic for ``model``, drawn from the held-out ``pool_df``.

    ``pool_df`` has Adult's columns (at least the model's features, ``sex``, ``age`` and the ``target``);
    ``model`` is a fitted classifier that was fit on a DataFrame (its ``feature_names_in_`` picks the
    feature columns). Each day's volume is Poisson around ``events_per_day`` with a weekly cycle (busier on
    weekdays), and timestamps follow a daily cycle that peaks in the UTC afternoon. Rows are drawn from
    ``pool_df`` with weights that move over the period and then altered (see the module docstring for the
    drifts). ``drift`` scales every drift: ``drift=0`` gives stationary traffic.

    Returns ``(events, labels)``, both sorted by time:

    - ``events``: ``event_id`` (32 hex characters, a seeded uuid4), ``timestamp`` (UTC), the model's feature
      columns, ``prediction`` (``model.predict``), ``score`` (``predict_proba`` of ``">50K"``) and ``channel``
      (``web``, ``branch`` or ``partner``).
    - ``labels``: ``event_id``, the true ``income`` and ``label_time`` (UTC), sorted by ``label_time``.
      A share ``label_rate`` of the events gets a label 2 to 14 days after the event (most within a week);
      labels that would arrive at or after the end (``start + days``) are left out, so the last days have
      few labels.

    The same arguments (and ``seed``) give equal frames.

    >>> adult = load_adult()
    >>> model = train_model(adult.iloc[:2000])
    >>> start = datetime(2024, 1, 1, tzinfo=UTC)
    >>> events, labels = simulate_traffic(adult.iloc[2000:], model, days=2, events_per_day=50, start=start)
    >>> events.columns[:3].tolist(), events.columns[-3:].tolist()
    (['event_id', 'timestamp', 'age'], ['prediction', 'score', 'channel'])
    >>> bool(events["timestamp"].between(start, start + timedelta(days=2), inclusive="left").all())
    True
    >>> labels.columns.tolist()
    ['event_id', 'income', 'label_time']
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if events_per_day < 1:
        raise ValueError(f"events_per_day must be at least 1, got {events_per_day}")
    if drift < 0:
        raise ValueError(f"drift must be 0 (no drift) or more, got {drift}")
    if not 0.0 <= label_rate <= 1.0:
        raise ValueError(f"label_rate must be between 0 and 1, got {label_rate}")
    start_time = _utc_start(start, days)
    end_time = start_time + pd.Timedelta(days=days)

    rng = np.random.default_rng(seed)
    features = list(model.feature_names_in_)
    pool = pool_df.reset_index(drop=True)
    day_frames = []
    for day in range(days):
        progress = drift * (day / (days - 1) if days > 1 else 0.0)
        day_start = start_time + pd.Timedelta(days=day)
        volume = events_per_day * _WEEKDAY_VOLUME[day_start.day_of_week] / _WEEKDAY_VOLUME.mean()
        count = max(1, int(rng.poisson(volume)))
        rows = rng.choice(len(pool), size=count, p=_sampling_weights(pool, progress))
        day_frame = pool.iloc[rows].reset_index(drop=True)
        _drift_features(day_frame, progress, rng)
        day_frame[target] = _drift_labels(day_frame, progress, rng, target=target)
        day_frame["timestamp"] = day_start + _times_of_day(count, rng)
        mix = _CHANNEL_MIX_START + (_CHANNEL_MIX_END - _CHANNEL_MIX_START) * min(progress, 1.0)
        day_frame["channel"] = np.asarray(CHANNELS, dtype=object)[
            rng.choice(len(CHANNELS), size=count, p=mix)
        ]
        day_frames.append(day_frame)

    traffic = pd.concat(day_frames, ignore_index=True)
    traffic["timestamp"] = traffic["timestamp"].astype("datetime64[us, UTC]")
    traffic["event_id"] = _event_ids(len(traffic), rng)
    traffic["prediction"] = np.asarray(model.predict(traffic[features]), dtype=object)
    positive_column = list(model.classes_).index(POSITIVE_LABEL)
    traffic["score"] = model.predict_proba(traffic[features])[:, positive_column].astype(float)
    events = traffic[["event_id", "timestamp", *features, "prediction", "score", "channel"]]
    events = events.astype({"prediction": "str", "channel": "str"})

    delay_days = _LABEL_DELAY_MIN_DAYS + _LABEL_DELAY_SPAN_DAYS * rng.beta(1.5, 4.0, size=len(traffic))
    label_time = traffic["timestamp"] + pd.to_timedelta(
        np.round(delay_days * 86_400e6).astype(np.int64), "us"
    )
    labelled = (rng.random(len(traffic)) < label_rate) & (label_time < end_time).to_numpy()
    labels = pd.DataFrame(
        {
            "event_id": traffic["event_id"][labelled],
            target: traffic[target][labelled].astype("str"),
            "label_time": label_time[labelled],
        }
    )
    labels = labels.sort_values("label_time", kind="stable").reset_index(drop=True)
    return events.reset_index(drop=True), labels


def _utc_start(start: datetime | None, days: int) -> pd.Timestamp:
    start_time = pd.Timestamp(default_start(days) if start is None else start)
    if start_time.tzinfo is None:
        raise ValueError(f"start must be timezone-aware (e.g. tzinfo=UTC), got {start!r}")
    return start_time.tz_convert("UTC")


def _sampling_weights(pool: pd.DataFrame, progress: float) -> np.ndarray:
    age = pool["age"].to_numpy(float)
    weights = np.exp(-_AGE_TILT_PER_YEAR * progress * (age - age.mean()))
    is_female = (pool["sex"] == "Female").to_numpy()
    if is_female.any() and not is_female.all():
        base_share = is_female.mean()
        female_share = min(1.0, base_share + (_FEMALE_SHARE_END - base_share) * progress)
        weights[is_female] *= female_share / weights[is_female].sum()
        weights[~is_female] *= (1.0 - female_share) / weights[~is_female].sum()
    return weights / weights.sum()


def _times_of_day(count: int, rng: np.random.Generator) -> pd.TimedeltaIndex:
    hours = rng.choice(24, size=count, p=_HOURLY_VOLUME / _HOURLY_VOLUME.sum())
    microseconds = (hours * 3_600 + rng.uniform(0, 3_600, size=count)) * 1e6
    return pd.to_timedelta(np.sort(microseconds).astype(np.int64), unit="us")


def _event_ids(count: int, rng: np.random.Generator) -> pd.array:
    id_bytes = rng.integers(0, 256, size=(count, 16), dtype=np.uint8)
    return pd.array([uuid.UUID(bytes=row.tobytes(), version=4).hex for row in id_bytes], dtype="str")


def _drift_features(frame: pd.DataFrame, progress: float, rng: np.random.Generator) -> None:
    count = len(frame)
    hours = frame["hours-per-week"].to_numpy()
    extra_hours = rng.poisson(_EXTRA_HOURS_END * progress, size=count)
    frame["hours-per-week"] = np.minimum(hours + extra_hours, 99).astype(hours.dtype)
    gains = frame["capital-gain"].to_numpy().copy()
    new_gain = (gains == 0) & (rng.random(count) < _NEW_CAPITAL_GAIN_RATE_END * progress)
    amounts = rng.lognormal(np.log(_NEW_CAPITAL_GAIN_MEDIAN), 0.6, size=count)
    gains[new_gain] = np.round(amounts[new_gain]).astype(gains.dtype)
    frame["capital-gain"] = gains


def _drift_labels(
    frame: pd.DataFrame, progress: float, rng: np.random.Generator, *, target: str
) -> np.ndarray:
    labels = frame[target].to_numpy(dtype=object).copy()
    draw = rng.random(len(frame))
    degree = (frame["education-num"] >= _DEGREE_EDUCATION_NUM).to_numpy()
    full_time_trade = (
        frame["occupation"].isin(_TRADE_OCCUPATIONS) & (frame["hours-per-week"] >= 40)
    ).to_numpy()
    loses_premium = degree & (labels == POSITIVE_LABEL) & (draw < _DEGREE_PREMIUM_LOSS_END * progress)
    gets_raise = full_time_trade & (labels == NEGATIVE_LABEL) & (draw < _TRADE_RAISE_END * progress)
    labels[loses_premium] = NEGATIVE_LABEL
    labels[gets_raise] = POSITIVE_LABEL
    return labels


@dataclass(frozen=True)
class DemoData:
    """Everything the demo needs: the training frame, the fitted model and the simulated traffic."""

    train_df: pd.DataFrame
    model: Pipeline
    events: pd.DataFrame
    labels: pd.DataFrame
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    target: str
    start: pd.Timestamp
    end: pd.Timestamp


def make_demo_data(
    *,
    days: int = 60,
    events_per_day: int = 800,
    seed: int = 0,
    start: datetime | None = None,
    train_fraction: float = 0.5,
) -> DemoData:
    """Load Adult, split it into a training frame and a production pool, fit the model and simulate traffic.

    The split is stratified on ``income``. ``train_df`` holds the model's features and ``income``
    (``fnlwgt`` is dropped). ``start`` defaults to midnight UTC ``days`` days ago, so the traffic ends today.

    >>> demo = make_demo_data(days=2, events_per_day=50, start=datetime(2024, 1, 1, tzinfo=UTC))
    >>> demo.train_df.shape
    (16280, 14)
    >>> demo.features == demo.numeric + demo.categorical
    True
    >>> str(demo.end)
    '2024-01-03 00:00:00+00:00'
    """
    start_time = _utc_start(start, days)
    adult = load_adult()
    numeric, categorical = split_features(adult)
    features = numeric + categorical
    train_df, pool_df = train_test_split(
        adult, train_size=train_fraction, stratify=adult[TARGET], random_state=seed
    )
    train_df = train_df[[*features, TARGET]].reset_index(drop=True)
    pool_df = pool_df.reset_index(drop=True)
    model = train_model(train_df, seed=seed)
    events, labels = simulate_traffic(
        pool_df, model, days=days, events_per_day=events_per_day, start=start_time, seed=seed
    )
    return DemoData(
        train_df=train_df,
        model=model,
        events=events,
        labels=labels,
        features=features,
        numeric=numeric,
        categorical=categorical,
        target=TARGET,
        start=start_time,
        end=start_time + pd.Timedelta(days=days),
    )
