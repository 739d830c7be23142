"""Shared e2e fixtures. Run with the Airflow venv: `.venv-airflow/bin/pytest tests/e2e`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.deployment import LocalDeployment


def pytest_configure(config: pytest.Config) -> None:
    """Register the e2e tier's own marker."""
    config.addinivalue_line(
        "markers", "restarts_airflow: restarts the api-servers with overrides (undone when a test needs it)"
    )


@pytest.fixture(scope="session")
def e2e_prerequisites() -> None:
    """Install what is missing (apt packages, npm ci); skip LOUDLY only when that is impossible."""
    from tests.e2e.harness.install import PrerequisiteError, ensure_prerequisites

    try:
        ensure_prerequisites(lambda line: print(f"[e2e install] {line}"))
    except PrerequisiteError as exc:
        pytest.skip(f"!!! E2E PREREQUISITE CANNOT BE INSTALLED — end-to-end tests NOT RUN: {exc}")


def deployed(stack_file: Path) -> Iterator[LocalDeployment]:
    """A module fixture's body: the stack deployed from its capture, stopped at the end; timings printed."""
    from tests.e2e.deployment import LocalDeployment

    with LocalDeployment(stack_file) as deployment:
        yield deployment
    print(
        f"\n[e2e {stack_file.name}] run dir {deployment.run.path}; seconds: "
        + ", ".join(f"{key} {value:.1f}" for key, value in deployment.timings.items())
    )
