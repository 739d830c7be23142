"""The Airflow tier's probe processes (tests/airflow/fab_probe.py) live for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.airflow.fab_probe import POOL


@pytest.fixture(scope="session", autouse=True)
def fab_probes() -> Iterator[None]:
    """Stop every probe process the session started (their log files stay in each Airflow home)."""
    yield
    POOL.close()
