"""Shared fixtures: every stack file run once under the mock engine, the chart's schema and defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))
CHART_DIR = ROOT.parent / "shared" / "airflow-chart"


def stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


@pytest.fixture(scope="session")
def runs() -> dict[str, Any]:
    """Every stack file, run once through the real __main__.py under mocks."""
    from tests.mock_engine import run_stack_file

    return {stack_name(path): run_stack_file(path) for path in STACK_FILES}


@pytest.fixture(scope="session")
def chart_schema() -> dict[str, Any]:
    if not CHART_DIR.is_dir():
        pytest.fail(f"the official chart's schema is missing: {CHART_DIR} (see shared/airflow-chart/SOURCE.md)")
    return json.loads((CHART_DIR / "values.schema.json").read_text())


@pytest.fixture(scope="session")
def chart_defaults() -> dict[str, Any]:
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text())
