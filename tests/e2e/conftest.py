"""Shared e2e fixtures. Run with the Airflow venv: `.venv-airflow/bin/pytest tests/e2e`."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def e2e_prerequisites() -> None:
    """Install what is missing (apt packages, npm ci); skip LOUDLY only when that is impossible."""
    from tests.e2e.harness.install import PrerequisiteError, ensure_prerequisites

    try:
        ensure_prerequisites(lambda line: print(f"[e2e install] {line}"))
    except PrerequisiteError as exc:
        pytest.skip(f"!!! E2E PREREQUISITE CANNOT BE INSTALLED — end-to-end tests NOT RUN: {exc}")
