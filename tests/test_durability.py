"""Crash safety: a process killed with SIGKILL at any moment leaves whole batches or none.

A child process ingests batches of 20,000 events (ids ``b{k}-{i}``) into a
store and prints ``committed k`` after each call returns. The parent kills it
with SIGKILL at a chosen moment (between batches or in the middle of one),
then opens the store and checks that every batch is wholly present or wholly
absent, that every batch the child reported is there, and that the record of
ingest batches matches the stored rows.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import vigil

BATCH = 20_000

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import vigil

    home, batch = sys.argv[1], int(sys.argv[2])
    store = vigil.open(home)
    train = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": ["a", "b", "a", "b"], "y": [0, 1, 0, 1]})
    store.register_model("m", version="1", training_data=train, target="y")
    print("registered", flush=True)
    rng = np.random.default_rng(0)
    k = 0
    while True:
        table = pa.table({
            "event_id": pa.array([f"b{k}-{i}" for i in range(batch)]),
            "x": rng.normal(size=batch),
            "c": pa.array(np.where(rng.random(batch) < 0.5, "a", "b")),
            "prediction": rng.integers(0, 2, batch),
            "score": rng.random(batch),
            "y": pa.array(rng.integers(0, 2, batch), mask=rng.random(batch) < 0.5),
        })
        print(f"start {k}", flush=True)
        store.log_predictions("m", "1", table)
        print(f"committed {k}", flush=True)
        k += 1
    """
)


class Child:
    """The ingesting process, with its stdout lines timestamped as they arrive."""

    def __init__(self, home, log) -> None:
        self.log = log
        with open(log, "w") as err:  # a file, not a pipe: a chatty child can never block on it
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(home), str(BATCH)],
                stdout=subprocess.PIPE, stderr=err, text=True,
            )
        self.lines: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), line.strip()))
                self.cond.notify_all()
        with self.cond:
            self.lines.append((time.monotonic(), "<eof>"))
            self.cond.notify_all()

    def wait_for(self, text: str, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for when, line in self.lines:
                    if line == text:
                        return when
                    if line == "<eof>":
                        raise AssertionError(f"child exited before {text!r}: {self.log.read_text()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {text!r} from the child within {timeout} s")
                self.cond.wait(left)

    def kill(self) -> list[int]:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.reader.join(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL
        return [int(line.split()[1]) for _, line in self.lines if line.startswith("committed ")]


def check_store(home, reported: list[int]) -> list[int]:
    """Open the store after the crash and check it; returns the batches found."""
    with vigil.open(home) as store:
        per_prefix = store._db.fetchall(
            "SELECT split_part(event_id, '-', 1) AS prefix, count(*), count(DISTINCT event_id), "
            "count(DISTINCT batch_id) FROM events_1 GROUP BY prefix ORDER BY prefix")
        found = sorted(int(prefix[1:]) for prefix, *_ in per_prefix)
        for prefix, rows, distinct, batch_ids in per_prefix:
            assert (rows, distinct, batch_ids) == (BATCH, BATCH, 1), f"batch {prefix} is partial or split"
        assert set(reported) <= set(found), f"reported committed {reported}, found {found}"
        # at most the batch in flight when the process died may be there without having been reported
        assert len(set(found) - set(reported)) <= 1
        assert found == list(range(len(found))), f"batches {found} have a gap"
        batches = store.batches("m")
        assert len(batches) == len(found)
        assert (batches["kind"] == "predictions").all()
        assert (batches["received"] == BATCH).all() and (batches["accepted"] == BATCH).all()
        assert (batches["quarantined"] == 0).all() and (batches["duplicates"] == 0).all()
        stored = dict(store._db.fetchall("SELECT batch_id, count(*) FROM events_1 GROUP BY batch_id"))
        assert stored == dict(zip(batches["batch_id"], batches["accepted"], strict=True))
        labels = store._db.fetchall(
            "SELECT count(*), count(*) FILTER (WHERE l.batch_id <> e.batch_id) FROM labels_1 l "
            "JOIN events_1 e USING (event_id)")[0]
        assert labels[1] == 0 and labels[0] == store._db.fetchall("SELECT count(*) FROM labels_1")[0][0]
        # the store still takes writes after the crash
        res = store.log_predictions("m", "1", {"event_id": ["after-0", "b0-0"], "x": [0.5, 0.5], "c": ["a", "a"],
                                               "prediction": [1, 1], "score": [0.5, 0.5]})
        assert (res.accepted, res.quarantined) == (1, 1)  # b0-0 is stored, with other content
        return found


@pytest.mark.slow
@pytest.mark.parametrize("run", [0, 1, 2])
def test_sigkill_leaves_whole_batches(tmp_path, run):
    rng = random.Random(1234 + run)
    child = Child(tmp_path / "home", tmp_path / "child.err")
    try:
        if run == 0:
            # after enough batches for DuckDB to checkpoint its WAL, at a random moment (between or inside batches)
            started = child.wait_for("start 12")
            batch_s = max(child.wait_for("committed 12") - started, 0.01)
            time.sleep(rng.uniform(0, 2 * batch_s))
        else:
            # inside a batch: early (validation) on one run, late (the write and commit) on the other
            started = child.wait_for("start 2")
            batch_s = max(child.wait_for("committed 2") - started, 0.01)
            child.wait_for("start 3")
            time.sleep(batch_s * (rng.uniform(0.05, 0.4) if run == 1 else rng.uniform(0.6, 1.0)))
        reported = child.kill()
    finally:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()
    assert len(reported) >= 3
    found = check_store(tmp_path / "home", reported)
    assert len(found) >= 3
