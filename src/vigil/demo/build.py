"""Build the demo project in a store: the Adult training set, the income model, and its simulated traffic.

:func:`build_demo` registers the training set as dataset ``adult-income-train``, registers model
``adult-income`` version ``1`` (in production), ingests the simulated events one day at a time (each day is
one transaction) and then the late labels. One day's feed carries a few deliberately malformed rows (a
score of 1.3, an age of ``"unknown"``, a missing prediction) so that the quarantine has something realistic
in it; their labels never arrive.

Running it again on the same home reuses the model and re-sends the same events, which is a no-op (events
are idempotent on their ids); the malformed rows already in the quarantine are not sent twice.

>>> MODEL_NAME, MODEL_VERSION, DATASET_NAME, BROKEN_ROWS
('adult-income', '1', 'adult-income-train', 20)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from vigil.demo.simulate import TARGET, make_demo_data

if TYPE_CHECKING:
    from vigil.interfaces.api import Store

__all__ = [
    "BROKEN_ROWS",
    "DATASET_NAME",
    "MODEL_NAME",
    "MODEL_VERSION",
    "DemoProgress",
    "DemoSummary",
    "break_rows",
    "build_demo",
]

MODEL_NAME = "adult-income"
MODEL_VERSION = "1"
DATASET_NAME = "adult-income-train"
#: How many malformed rows the simulated feed carries (on the middle day).
BROKEN_ROWS = 20
#: Why each malformed row is refused, in the order they are made (cycled).
BROKEN_REASONS = ("probability_out_of_range", "type_mismatch", "missing_value")
_LABEL_CHUNK_ROWS = 10_000
_DESCRIPTION = (
    "Predicts whether a person earns more than $50K a year, from census attributes (UCI Adult). "
    "Demo model built by `vigil demo`."
)

#: ``progress(stage, done, total)``; stages are ``simulate``, ``register``, ``events`` (one step per day),
#: ``labels`` and ``explain``.
DemoProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`build_demo` did and what the demo project now holds.

    Counts named ``*_ingested``/``*_joined``/``quarantined``/``duplicates`` are this run's; ``events_stored``,
    ``labels_stored`` and ``label_coverage`` describe the store after it.
    """

    home: Path
    project: str
    model: str
    version: str
    status: str
    reused: bool
    days: int
    start: pd.Timestamp
    end: pd.Timestamp
    events_simulated: int
    events_ingested: int
    duplicates: int
    labels_joined: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    broken_rows: int
    events_stored: int
    labels_stored: int
    artifact_sha256: str | None
    training_data: dict[str, object] | None
    next_steps: list[str] = field(default_factory=list)
    events_explained: int = 0

    @property
    def label_coverage(self) -> float:
        """Share of the stored events that have a label (0 when there are none).

        >>> DemoSummary(Path("h"), "default", "m", "1", "production", False, 1, pd.Timestamp(0),
        ...             pd.Timestamp(0), 10, 10, 0, 4, 0, {}, 0, 10, 4, None, None).label_coverage
        0.4
        """
        return self.labels_stored / self.events_stored if self.events_stored else 0.0


def break_rows(day: pd.DataFrame, count: int = BROKEN_ROWS, *, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """Corrupt ``count`` rows of one day's events the way a faulty feed would; return the frame and their ids.

    Rows are picked at random (seeded) and broken in turn: a score of 1.3, an age of ``"unknown"``, a missing
    prediction. The input frame is not modified.

    >>> day = pd.DataFrame({"event_id": ["a", "b", "c"], "age": [30, 40, 50],
    ...                     "prediction": ["<=50K", ">50K", "<=50K"], "score": [0.1, 0.9, 0.2]})
    >>> broken, ids = break_rows(day, 3)
    >>> sorted(ids), float(broken["score"].max()), int((broken["age"] == "unknown").sum())
    (['a', 'b', 'c'], 1.3, 1)
    >>> int(broken["prediction"].isna().sum()), float(day["score"].max())  # the input is unchanged
    (1, 0.9)
    """
    count = min(count, len(day))
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(day), size=count, replace=False))
    broken = day.copy()
    broken["age"] = broken["age"].astype(object)
    broken["prediction"] = broken["prediction"].astype(object)
    for i, row in enumerate(picked):
        kind = BROKEN_REASONS[i % len(BROKEN_REASONS)]
        if kind == "probability_out_of_range":
            broken.iloc[row, broken.columns.get_loc("score")] = 1.3
        elif kind == "type_mismatch":
            broken.iloc[row, broken.columns.get_loc("age")] = "unknown"
        else:
            broken.iloc[row, broken.columns.get_loc("prediction")] = None
    return broken, broken["event_id"].iloc[picked].astype(str).tolist()


def build_demo(
    store: Store,
    *,
    days: int = 60,
    seed: int = 0,
    events_per_day: int = 800,
    explain_rate: float = 0.05,
    progress: DemoProgress | None = None,
) -> DemoSummary:
    """Build (or top up) the demo project in ``store``'s current project and summarise it.

    Simulates ``days`` days of traffic ending today (see :func:`vigil.demo.make_demo_data`), registers the
    training set and the model unless ``adult-income`` version ``1`` exists already (then it is reused),
    ingests the events day by day, joins the labels and explains a sample (``explain_rate``) of the events.
    ``progress(stage, done, total)`` is called as the work advances.

    >>> import tempfile, vigil
    >>> with vigil.open(tempfile.mkdtemp()) as store:
    ...     summary = build_demo(store, days=2, events_per_day=30)
    >>> summary.model, summary.version, summary.status, summary.reused
    ('adult-income', '1', 'production', False)
    >>> summary.events_ingested == summary.events_simulated - summary.broken_rows, summary.quarantined
    (True, 20)
    """

    def step(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    step("simulate", 0, 1)
    data = make_demo_data(days=days, events_per_day=events_per_day, seed=seed)
    step("simulate", 1, 1)

    step("register", 0, 1)
    models = store.models()
    reused = bool(((models["model"] == MODEL_NAME) & (models["version"] == MODEL_VERSION)).any())
    if not reused:
        dataset = store.register_dataset(
            DATASET_NAME, data.train_df, description="UCI Adult training split used to fit the demo model"
        )
        store.register_model(
            MODEL_NAME, version=MODEL_VERSION, task="binary", model=data.model, training_data=dataset,
            target=TARGET, protected=["sex", "race"], metadata=["channel"], owner="risk-team",
            description=_DESCRIPTION,
        )
        store.set_status(MODEL_NAME, MODEL_VERSION, "production")
    step("register", 1, 1)

    events = data.events
    day_index = ((events["timestamp"] - data.start) // pd.Timedelta(days=1)).to_numpy()
    broken_day = days // 2
    already_quarantined: set[str] = set()
    if reused:
        already_quarantined = set(store.quarantine(MODEL_NAME, kind="predictions")["event_id"].dropna())
    broken_ids: list[str] = []
    result = None
    for day in range(days):
        batch = events[day_index == day]
        if day == broken_day and len(batch):
            batch, broken_ids = break_rows(batch, seed=seed)
            # a re-run must not quarantine the same malformed rows twice
            batch = batch[~batch["event_id"].isin(already_quarantined)]
        if len(batch):
            part = store.log_predictions(MODEL_NAME, MODEL_VERSION, batch)
            result = part if result is None else result + part
        step("events", day + 1, days)

    # the malformed rows never made it into the store, so their labels never arrive
    labels = data.labels[~data.labels["event_id"].isin(broken_ids)]
    chunks = max(1, -(-len(labels) // _LABEL_CHUNK_ROWS))
    labels_joined = 0
    label_quarantined = 0
    label_reasons: dict[str, int] = {}
    step("labels", 0, chunks)
    for i in range(chunks):
        chunk = labels.iloc[i * _LABEL_CHUNK_ROWS:(i + 1) * _LABEL_CHUNK_ROWS]
        if len(chunk):
            res = store.log_labels(MODEL_NAME, chunk)
            labels_joined += res.accepted
            label_quarantined += res.quarantined
            for reason, n in res.reasons.items():
                label_reasons[reason] = label_reasons.get(reason, 0) + n
        step("labels", i + 1, chunks)

    step("explain", 0, 1)
    explained = store.explain_sample(MODEL_NAME, version=MODEL_VERSION, rate=explain_rate,
                                     progress=lambda done, total: step("explain", done, max(total or 1, 1)))
    if not explained:
        step("explain", 1, 1)

    reasons = dict(result.reasons) if result is not None else {}
    for reason, n in label_reasons.items():
        reasons[reason] = reasons.get(reason, 0) + n
    batches = store.batches(MODEL_NAME)
    stored_ids = store.events(MODEL_NAME, version=MODEL_VERSION, limit=1)["event_id"]
    first_id = str(stored_ids.iloc[0]) if len(stored_ids) else "EVENT_ID"
    lineage = store.lineage(MODEL_NAME, MODEL_VERSION)
    times = events["timestamp"]
    if reused:  # an earlier run (maybe on another day) stamped what is stored
        times = store.events(MODEL_NAME, version=MODEL_VERSION)["timestamp"]
    return DemoSummary(
        home=store.home,
        project=store.project,
        model=MODEL_NAME,
        version=MODEL_VERSION,
        status=lineage["status"],
        reused=reused,
        days=days,
        start=_utc(times.min()) if len(times) else data.start,
        end=_utc(times.max()) if len(times) else data.end,
        events_simulated=len(events),
        events_ingested=result.accepted if result is not None else 0,
        duplicates=(result.duplicates if result is not None else 0),
        labels_joined=labels_joined,
        quarantined=(result.quarantined if result is not None else 0) + label_quarantined,
        quarantine_reasons=reasons,
        broken_rows=len(broken_ids),
        events_stored=int(batches.loc[batches["kind"] == "predictions", "accepted"].sum()),
        labels_stored=int(batches["accepted"].where(batches["kind"] == "labels", 0).sum()),
        artifact_sha256=lineage["artifact"]["sha256"],
        training_data=lineage["training_data"],
        events_explained=explained,
        next_steps=[
            f"vigil events {MODEL_NAME} --limit 5",
            f"vigil explain {MODEL_NAME} {first_id}",
            f"vigil fairness {MODEL_NAME} --show disparities",
            f"vigil report {MODEL_NAME} --window 1w",
            f"vigil quarantine {MODEL_NAME}",
            f"vigil model show {MODEL_NAME}",
            f"vigil events {MODEL_NAME} --format csv --output events.csv",
        ],
    )


def _utc(value: object) -> pd.Timestamp:
    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    return ts.tz_localize(dt.UTC) if ts.tzinfo is None else ts.tz_convert(dt.UTC)
