"""Integrity beside the training figures, and quarantined rows counted by their own time: through a real store.

Each store is small (a few hundred training rows, a few dozen events) so that the module stays fast. The
training figures are checked against NumPy/pandas on the training frame; the windows of the refused rows
against an oracle that parses the refused rows' raw timestamps with pandas.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

import vigil
from vigil.core.monitoring import robust_range, training_integrity
from vigil.core.profiles import NumericProfile
from vigil.interfaces.report import build_report

MODEL = "m"
COLUMNS = ["window", "segment", "column", "metric", "value", "training", "counted_by"]
DAY = pd.Timedelta(days=1)
NOW = pd.Timestamp.now(tz="UTC").floor("s")
TODAY = NOW.floor("D")
BACKFILL = TODAY - 40 * DAY  # a day the backfill's events belong to
REFUSED_WHOLE = TODAY - 30 * DAY  # a backfilled day whose every row is refused


def training_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Normal bulk with a tenth of far outliers in ``age``, missing values in ``age`` and ``channel``."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n)
    far = rng.choice(n, n // 10, replace=False)
    age[far] = rng.choice([-500.0, 600.0], far.size) + rng.normal(0, 5, far.size)
    frame = pd.DataFrame({"age": age, "hours": rng.normal(38, 5, n),
                          "channel": rng.choice(["web", "app", "shop"], n).astype(object),
                          "y": rng.integers(0, 2, n)})
    rest = np.setdiff1d(np.arange(n), far)
    frame.loc[rest[:n // 18], "age"] = np.nan
    frame.loc[rest[-(n // 30):], "channel"] = None
    return frame


def events(times, prefix: str, *, age=None, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    k = len(times)
    return pd.DataFrame({
        "event_id": [f"{prefix}{i}" for i in range(k)],
        "timestamp": pd.Series(list(times), dtype=object) if any(isinstance(t, str) for t in times) else times,
        "age": rng.normal(40, 10, k) if age is None else age,
        "hours": rng.normal(38, 5, k), "channel": rng.choice(["web", "app"], k),
        "prediction": rng.integers(0, 2, k), "score": rng.random(k)})


def bad_age(good: int, bad: int) -> pd.Series:
    return pd.Series([30.0] * good + ["old"] * bad, dtype=object)


@pytest.fixture
def store(tmp_path):
    s = vigil.open(tmp_path / "home")
    s.register_model(MODEL, version="1", training_data=training_frame(180), target="y")
    yield s
    s.close()


def oracle_windows(store) -> dict[pd.Timestamp, tuple[int, set[str]]]:
    """Per day: refused rows, and whether each was placed by its own time or by when it was refused (pandas
    parses the raw timestamp; a plausible time lies between 1990 and a day past the refusal)."""
    q = store.quarantine(MODEL)
    out: dict[pd.Timestamp, tuple[int, set[str]]] = {}
    for raw, refused in zip(q["raw"], pd.to_datetime(q["quarantined_at"], utc=True), strict=True):
        own = pd.to_datetime(json.loads(raw)["timestamp"], utc=True, errors="coerce")
        plausible = own is not pd.NaT and pd.Timestamp("1990-01-01", tz="UTC") <= own <= refused + DAY
        day = (own if plausible else refused).floor("D")
        n, how = out.get(day, (0, set()))
        out[day] = (n + 1, how | {"event time" if plausible else "refusal time"})
    return out


def expected_counted_by(how: set[str]) -> str:
    return how.pop() if len(how) == 1 else "event time, else refusal time"


def quarantine_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["metric"] == "quarantined_rows"].set_index("window")


def check_against_oracle(store, frame: pd.DataFrame) -> dict[pd.Timestamp, tuple[int, set[str]]]:
    oracle = oracle_windows(store)
    rows = quarantine_rows(frame)
    counted = rows[rows["value"] > 0]
    assert {w: int(v) for w, v in counted["value"].items()} == {w: n for w, (n, _) in oracle.items()}
    for window, (_, how) in oracle.items():
        assert rows.loc[window, "counted_by"] == expected_counted_by(set(how)), window
    return oracle


# -- training figures -----------------------------------------------------------------------------------------


def outlier_share(values: pd.Series) -> float:
    """The oracle: the share of the finite values outside 3 IQRs of NumPy's quartiles."""
    x = values.to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    q1, q3 = np.quantile(x, [0.25, 0.75])
    return float(np.mean((x < q1 - 3 * (q3 - q1)) | (x > q3 + 3 * (q3 - q1))))


@pytest.mark.parametrize("n", [180, 3000])
def test_training_figures_are_the_training_frames_own(tmp_path, n):
    train = training_frame(n, seed=n)
    with vigil.open(tmp_path / "home") as s:
        s.register_model(MODEL, version="1", training_data=train, target="y")
        s.log_predictions(MODEL, "1", events([TODAY - 3 * DAY + pd.Timedelta(hours=h) for h in range(24)], "e",
                                             age=np.r_[[900.0, np.nan, -900.0], np.full(21, 41.0)]))
        frame = s.integrity(MODEL, version="1", window="1d")
    assert list(frame.columns) == COLUMNS
    training = frame.groupby(["column", "metric"])["training"]
    assert (training.nunique(dropna=False) == 1).all()  # one figure per column and metric, in every window
    got = training.first()
    for column in ("age", "hours", "channel"):
        assert got[column, "missing_rate"] == train[column].isna().mean()  # exact: counts
    assert got["age", "out_of_range_rate"] == 0.0 and got["hours", "out_of_range_rate"] == 0.0
    assert got["channel", "unseen_category_rate"] == 0.0
    # at most 200 values the sketch keeps them all: exact; beyond, within its rank error
    tolerance = 1e-12 if n <= 200 else 2 * NumericProfile().rank_error
    assert got["age", "outlier_rate"] == pytest.approx(outlier_share(train["age"]), abs=tolerance)
    assert got["age", "outlier_rate"] > 0.05  # the tenth of far values is seen
    assert got["hours", "outlier_rate"] == pytest.approx(outlier_share(train["hours"]), abs=tolerance)
    # the window's own figure is a different number, read against the same robust range
    window = frame[(frame["column"] == "age") & (frame["metric"] == "outlier_rate")]
    assert window["value"].tolist() == [pytest.approx(2 / 23, abs=1e-12)]
    # columns the training data lacks, and the quarantine rows, have no training figure
    assert frame.loc[frame["column"].isin(["prediction", "score"]), "training"].isna().all()
    assert frame.loc[frame["metric"].str.startswith("quarantined"), "training"].isna().all()
    assert frame.loc[~frame["metric"].str.startswith("quarantined"), "counted_by"].isna().all()


def test_training_integrity_is_the_robust_range_share_of_the_profile():
    values = np.r_[np.arange(100.0), [1000.0, -1000.0, np.nan]]
    p = NumericProfile().update(values)
    lo, hi = robust_range(p)
    expected = float(np.mean((values[:-1] < lo) | (values[:-1] > hi)))
    figures = training_integrity(p)
    assert figures["outlier_rate"] == pytest.approx(expected, abs=1e-12) and expected == 2 / 102
    assert figures["missing_rate"] == 1 / 103 and figures["out_of_range_rate"] == 0.0
    assert training_integrity(None) == {}


# -- counted by -----------------------------------------------------------------------------------------------


def test_a_backfills_refused_rows_are_counted_in_its_period_by_event_time(store):
    store.log_predictions(MODEL, "1", events([TODAY - DAY + pd.Timedelta(hours=h + 1) for h in range(5)], "c"))
    backfill = events([BACKFILL + pd.Timedelta(hours=h) for h in range(8)], "b", age=bad_age(5, 3))
    assert store.log_predictions(MODEL, "1", backfill).quarantined == 3
    whole = events([REFUSED_WHOLE + pd.Timedelta(hours=3), REFUSED_WHOLE + pd.Timedelta(hours=9)], "w",
                   age=bad_age(0, 2))
    assert store.log_predictions(MODEL, "1", whole).accepted == 0
    frame = store.integrity(MODEL, version="1", window="1d")
    oracle = check_against_oracle(store, frame)
    assert set(oracle) == {BACKFILL, REFUSED_WHOLE}  # none where they were refused (today)
    rows = quarantine_rows(frame)
    assert rows.loc[BACKFILL, "value"] == 3 and rows.loc[BACKFILL, "counted_by"] == "event time"
    assert rows.loc[REFUSED_WHOLE, "value"] == 2  # a window of refused rows only is still shown
    by_reason = frame[frame["metric"] == "quarantined_type_mismatch"].set_index("window")
    assert by_reason.loc[BACKFILL, "column"] == "age" and by_reason.loc[BACKFILL, "value"] == 3
    assert by_reason.loc[BACKFILL, "counted_by"] == "event time"
    refused_day = pd.to_datetime(store.quarantine(MODEL)["quarantined_at"], utc=True).dt.floor("D")
    assert rows["value"].reindex(refused_day.unique()).fillna(0).eq(0).all()  # not where they were refused
    assert rows.loc[TODAY - DAY, "value"] == 0 and rows.loc[TODAY - DAY, "counted_by"] == "event time"
    # start and end bound the refused rows' windows as they bound the events'
    period = store.integrity(MODEL, version="1", window="1d", start=BACKFILL, end=BACKFILL + DAY)
    assert set(period["window"]) == {BACKFILL}
    assert quarantine_rows(period).loc[BACKFILL, "value"] == 3
    weekly = store.integrity(MODEL, version="1", window="1w")
    assert quarantine_rows(weekly)["value"].sum() == 5


def test_rows_without_a_usable_time_are_counted_by_refusal_time(store):
    store.log_predictions(MODEL, "1", events([BACKFILL + pd.Timedelta(hours=h) for h in range(4)], "c"))
    times = ["soon", "2999-01-01T00:00:00", "2100-01-01T00:00:00", "1970-01-02"]  # 2100: readable, implausible
    assert store.log_predictions(MODEL, "1", events(times, "x")).quarantined == 4
    frame = store.integrity(MODEL, version="1", window="1d")
    oracle = check_against_oracle(store, frame)
    refused_day = pd.to_datetime(store.quarantine(MODEL)["quarantined_at"], utc=True).dt.floor("D")
    assert set(oracle) == set(refused_day)  # not in 2999, 2100 or 1970
    assert frame["window"].min() == BACKFILL and frame["window"].max() < pd.Timestamp("2100-01-01", tz="UTC")
    rows = quarantine_rows(frame)
    (day,) = set(refused_day)
    assert rows.loc[day, "value"] == 4 and rows.loc[day, "counted_by"] == "refusal time"
    assert rows.loc[BACKFILL, "value"] == 0
    by_reason = frame[frame["metric"].str.startswith("quarantined_") & frame["column"].notna()]
    assert set(by_reason["counted_by"]) == {"refusal time"}
    assert by_reason.groupby("metric")["value"].sum().to_dict() == {
        "quarantined_bad_timestamp": 1, "quarantined_implausible_timestamp": 3}


def test_a_window_with_both_says_event_time_else_refusal_time(store):
    store.log_predictions(MODEL, "1", events(["not a time"], "x"))
    (refused_at,) = pd.to_datetime(store.quarantine(MODEL)["quarantined_at"], utc=True)
    # a later batch whose refused row's own time falls in the same day as the first refusal
    store.log_predictions(MODEL, "1", events([refused_at, refused_at], "b", age=bad_age(1, 1)))
    frame = store.integrity(MODEL, version="1", window="1d")
    oracle = check_against_oracle(store, frame)
    day = refused_at.floor("D")
    assert oracle == {day: (2, {"event time", "refusal time"})}
    rows = quarantine_rows(frame)
    assert rows.loc[day, "counted_by"] == "event time, else refusal time"
    by_reason = frame[frame["metric"].str.startswith("quarantined_") & frame["column"].notna()]
    assert dict(zip(by_reason["metric"], by_reason["counted_by"], strict=True)) == {
        "quarantined_bad_timestamp": "refusal time", "quarantined_type_mismatch": "event time"}


# -- the report -----------------------------------------------------------------------------------------------


def section(document: str, heading: str) -> str:
    match = re.search(rf"<section id=\"[^\"]+\"><h2>{re.escape(heading)}</h2>(.*?)</section>", document, re.S)
    assert match, heading
    return match.group(1)


def test_the_report_shows_training_figures_what_rows_are_counted_by_and_the_datas_span(store):
    days = [TODAY - k * DAY + pd.Timedelta(hours=h) for k in (5, 4, 3) for h in (6, 12, 18)]
    days.append(TODAY - 2 * DAY + pd.Timedelta(hours=7, minutes=13))  # the data ends early in that day
    ages = np.r_[np.tile([41.0, 900.0, 39.0], 3), [40.0]]  # a third of each complete day outlying
    store.log_predictions(MODEL, "1", events(days, "e", age=ages))
    store.log_predictions(MODEL, "1", events([BACKFILL + pd.Timedelta(hours=2)], "b", age=bad_age(0, 1)))
    store.log_predictions(MODEL, "1", events(["soon"], "x"))
    integrity = store.integrity(MODEL, version="1", window="1d")
    traffic = store.traffic(MODEL, version="1", window="1d")
    times = store.events(MODEL)["timestamp"]
    first, last = times.min(), times.max()
    report = build_report(title="t", meta={"model": MODEL, "version": "1", "window": "1d"}, integrity=integrity,
                          traffic=traffic, data_span=(first, last))
    header = report.html[:report.html.index("<section")]
    assert f"<b>data</b> {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC" in header
    assert f"{last:%Y-%m-%d %H:%M}" == f"{TODAY - 2 * DAY:%Y-%m-%d} 07:13"  # the last event, not a window start
    # the headline window is the last complete day: its outlier share beside the training data's
    table = report.sections[3].table
    row = table[table["column"] == "age"].iloc[0]
    picked = integrity[(integrity["window"] == TODAY - 3 * DAY) & (integrity["column"] == "age")
                       & (integrity["metric"] == "outlier_rate")].iloc[0]
    assert row["outliers"] == f"{picked['value']:.1%}" == "33.3%"
    assert row["outliers (training)"] == f"{outlier_share(training_frame(180)['age']):.1%}"
    assert row["missing (training)"] == f"{training_frame(180)['age'].isna().mean():.1%}"
    integrity_html = section(report.html, "Data integrity")
    assert "outliers (training)" in integrity_html and f">{row['outliers (training)']}<" in integrity_html
    assert "beside the same share in the training data" in integrity_html
    # one backfilled row by its own time, one unparseable by when it was refused: both said
    assert "2 row(s) quarantined at ingestion in the period, counted by event time, else refusal time" in (
        integrity_html)
    # without the events' times the header says it only knows the windows' bounds
    unknown = build_report(title="t", meta={"window": "1d"}, integrity=integrity, traffic=traffic)
    starts = pd.to_datetime(integrity["window"]).sort_values()
    assert unknown.meta["data"] == (f"within {starts.iloc[0]:%Y-%m-%d %H:%M} to "
                                    f"{starts.iloc[-1] + DAY:%Y-%m-%d %H:%M} UTC (the windows; the first and last "
                                    "event times were not given)")


def test_the_report_says_event_time_or_refusal_time_as_the_frame_does(store):
    store.log_predictions(MODEL, "1", events([BACKFILL + pd.Timedelta(hours=h) for h in range(3)], "b",
                                             age=bad_age(2, 1)))
    by_event = build_report(title="q", meta={}, integrity=store.integrity(MODEL, version="1", window="1d"))
    assert "1 row(s) quarantined at ingestion in the period, counted by event time." in section(
        by_event.html, "Data integrity")
    store.log_predictions(MODEL, "1", events(["soon", "later"], "x"))
    frame = store.integrity(MODEL, version="1", window="1d", start=TODAY)  # only the refusals' day
    only_refused = build_report(title="q", meta={}, integrity=frame)
    assert "2 row(s) quarantined at ingestion in the period, counted by refusal time." in section(
        only_refused.html, "Data integrity")
