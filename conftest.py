"""Fixtures for every test and doctest (tests/ and the doctests under src/)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_signing_config(tmp_path_factory):
    """A throwaway config dir (and so signing key) for the whole session: tests never read or write the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
        mp.delenv("VIGIL_SIGNING_KEY", raising=False)
        yield
