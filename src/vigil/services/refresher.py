"""Profiles kept up to date on the write path, by a background thread the store owns.

After a batch commits, the ingestor tells the refresher which version it
wrote and what to bring up to date (the daily grain of all events, and each
(grain, segment) the store keeps); once writes pause (``quiet`` seconds), the
refresher does it — so bulk ingestion is never slowed by profile work between
its batches, and reads never write. A read that finds the refresher about to
work on its version waits for it (``wait``) rather than computing the same
windows twice; anything still stale is computed by the read in memory.
``close`` finishes what is pending.

>>> done = []
>>> r = ProfileRefresher(lambda *work: done.append(work), quiet=0.01)
>>> r.notify(("credit", "1"), [("1d", "")])
>>> r.wait(("credit", "1"))
>>> done
[(('credit', '1'), '1d', '')]
>>> r.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

log = logging.getLogger("vigil.profiles")


class ProfileRefresher:
    """Runs ``refresh(version_key, grain, segment)`` for what writes and reads asked, off their threads."""

    def __init__(self, refresh: Callable[..., Any], *, quiet: float = 0.25) -> None:
        self._refresh = refresh
        self._quiet = quiet
        self._pending: dict[Hashable, set[tuple[str, str]]] = {}
        self._last_write = 0.0
        self._urgent = False
        self._busy: Hashable | None = None
        self._cond = threading.Condition()
        self._closed = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vigil-profiles", daemon=True)
        self._thread.start()

    def notify(self, key: Hashable, work: Iterable[tuple[str, str]] = (("1d", ""),)) -> None:
        """A write committed for version ``key``: bring ``work`` ((grain, segment) pairs) up to date."""
        with self._cond:
            self._pending.setdefault(key, set()).update(work)
            self._last_write = time.monotonic()
            self._cond.notify_all()

    def wait(self, key: Hashable, timeout: float = 60.0) -> None:
        """Return once nothing is pending or running for ``key`` (work for it starts at once)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (key in self._pending or self._busy == key) and not self._closed:
                self._urgent = True
                self._cond.notify_all()
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._pending:
                        idle = time.monotonic() - self._last_write
                        if self._urgent or idle >= self._quiet:
                            break
                        self._cond.wait(self._quiet - idle)
                    else:
                        self._cond.wait()
                if self._closed and not self._pending:
                    return
                key, work = next(iter(self._pending.items()))
                del self._pending[key]
                self._busy = key
                self._urgent = False
            try:
                for grain, segment in sorted(work):
                    self._refresh(key, grain, segment)
            except Exception as err:  # noqa: BLE001 - reported; a read computes the windows itself meanwhile
                self.error = err
                log.error("bringing profiles of %s up to date failed: %s", key, err)
            finally:
                with self._cond:
                    self._busy = None
                    self._cond.notify_all()

    def close(self, timeout: float = 60.0) -> None:
        """Finish pending work and stop the thread."""
        with self._cond:
            self._closed = True
            self._urgent = True
            self._cond.notify_all()
        self._thread.join(timeout)
