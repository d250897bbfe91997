"""Shared data fixtures."""

import os
from pathlib import Path

import pytest

# The Makefile passes ML100K; its default, like here, is ../shared/data/ml-100k beside the repository.
ML100K = Path(os.environ.get("ML100K") or Path(__file__).resolve().parents[3] / "shared/data/ml-100k")


@pytest.fixture
def ml100k() -> Path:
    """The real MovieLens-100k directory, read in place (never copied into the repository)."""
    if not (ML100K / "u.data").is_file():
        pytest.fail(f"{ML100K}/u.data not found: put the shared data beside the repository or set ML100K=DIR")
    return ML100K
