"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

#: The public data sets beside the project (``../shared/data``), each with a README.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; tests that need it skip, saying why, on a clone without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data sets not found at {SHARED_DATA} (a clone without ../shared): real-data tests "
                    "skipped")
    return SHARED_DATA


@pytest.fixture(scope="module")
def torch_one_thread():
    """torch on one thread for the module's tests (tiny models spin against each other on several); skips
    without the torch extra."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("captum")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)
