"""Shared fixtures: every stack file run once under the mock engine, the chart's schema and defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))


def stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


@pytest.fixture(scope="session")
def runs() -> dict[str, Any]:
    """Every stack file, run once through the real __main__.py under mocks."""
    from tests.mock_engine import run_stack_file

    return {stack_name(path): run_stack_file(path) for path in STACK_FILES}


@pytest.fixture(scope="session")
def chart_dir() -> Path:
    """The official chart's files (tests/chart_source.py: AIRFLOW_CHART_DIR, ../shared, or `make chart`'s cache)."""
    from tests.chart_source import HOW_TO_GET, ChartError, default_cache_dir, locate_chart

    try:
        found = locate_chart()
    except ChartError as error:
        pytest.fail(f"the chart source is unusable: {error}")
    if found is None:
        pytest.skip(HOW_TO_GET.format(cache=default_cache_dir()))
    return found.path


@pytest.fixture(scope="session")
def chart_schema(chart_dir: Path) -> dict[str, Any]:
    return json.loads((chart_dir / "values.schema.json").read_text())


@pytest.fixture(scope="session")
def chart_defaults(chart_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((chart_dir / "values.yaml").read_text())
