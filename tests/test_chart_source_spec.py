"""Where Helm gets the chart: the official repository (default), an OCI registry, or a vendored directory.

A vendored chart (`airflow.chartPath`) makes preview and up need no network for the chart; the real engine
found that every fresh stack's preview downloaded it from airflow.apache.org.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.airflow_values import chart_source, local_chart_problem
from components.env_defaults import resolve_spec
from components.spec import SpecError, parse_spec
from tests.conftest import ROOT
from tests.mock_engine import Run, run_program, stack_config

RELEASE = "kubernetes:helm.sh/v3:Release"


def local_spec(**airflow: Any) -> dict[str, Any]:
    spec = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())["config"]["airflow-oidc:spec"]
    spec["airflow"].update(airflow)
    return dict(spec)


def run_local(**airflow: Any) -> Run:
    config, secret_keys = stack_config(ROOT / "stacks" / "Pulumi.local.yaml")
    return run_program("local", {**config, "airflow-oidc:spec": json.dumps(local_spec(**airflow))}, secret_keys)


def vendored_chart(root: Path, version: str = "1.19.0", name: str = "airflow") -> Path:
    chart = root / "charts" / "airflow"
    chart.mkdir(parents=True)
    (chart / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": name, "version": version}))
    return chart


@pytest.mark.parametrize(
    ("airflow", "chart", "repository"),
    [
        pytest.param({}, "airflow", "https://airflow.apache.org", id="official-repository"),
        pytest.param(
            {"chartRepository": "https://charts.corp-example.net/mirror/"},
            "airflow",
            "https://charts.corp-example.net/mirror",
            id="mirror-repository",
        ),
        pytest.param(
            {"chartRepository": "oci://registry.corp-example.net/helm"},
            "oci://registry.corp-example.net/helm/airflow",
            None,
            id="oci-registry",
        ),
        pytest.param({"chartPath": "vendor/airflow"}, "vendor/airflow", None, id="vendored-directory"),
    ],
)
def test_the_chart_source_is_what_the_spec_says(airflow: dict[str, Any], chart: str, repository: str | None) -> None:
    source = chart_source(parse_spec(local_spec(**airflow), "stacks/Pulumi.local.yaml"))
    assert (source.chart, source.repository) == (chart, repository)


def test_the_default_release_inputs_are_unchanged() -> None:
    """An existing stack sees no diff on its release: the same chart inputs, no new wait input."""
    release = run_local().one(RELEASE).inputs
    assert (release["chart"], release["repositoryOpts"], release["version"]) == (
        "airflow",
        {"repo": "https://airflow.apache.org"},
        "1.19.0",
    )
    assert "skipAwait" not in release
    assert release["waitForJobs"] is True


def test_an_oci_chart_and_a_cluster_without_nodes(tmp_path: Path) -> None:
    release = run_local(chartRepository="oci://registry.corp-example.net/helm", wait=False).one(RELEASE).inputs
    assert release["chart"] == "oci://registry.corp-example.net/helm/airflow"
    assert "repositoryOpts" not in release
    # Helm returns once the objects exist: no waiting for pods that a cluster without nodes never runs.
    assert (release["skipAwait"], release["waitForJobs"]) == (True, False)


def test_a_vendored_chart_is_used_from_its_directory(tmp_path: Path) -> None:
    chart = vendored_chart(tmp_path)
    release = run_local(chartPath=str(chart)).one(RELEASE).inputs
    assert (release["chart"], release["version"]) == (str(chart), "1.19.0")
    assert "repositoryOpts" not in release


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda root: root / "nowhere", "holds no Chart.yaml", id="missing"),
        pytest.param(lambda root: vendored_chart(root, version="1.18.0"), "holds chart version 1.18.0", id="version"),
        pytest.param(lambda root: vendored_chart(root, name="nginx"), "is not the Airflow chart", id="other-chart"),
    ],
)
def test_a_wrong_vendored_chart_stops_the_program_naming_the_key(tmp_path: Path, make: Any, message: str) -> None:
    path = make(tmp_path)
    run = Run(stack="local")
    config, secret_keys = stack_config(ROOT / "stacks" / "Pulumi.local.yaml")
    config = {**config, "airflow-oidc:spec": json.dumps(local_spec(chartPath=str(path)))}
    with pytest.raises(pulumi.RunError) as raised:
        run_program("local", config, secret_keys, run=run)
    assert str(raised.value).startswith("stacks/Pulumi.local.yaml: airflow-oidc:spec.airflow.chartPath: ")
    assert message in str(raised.value)
    assert run.resources == []
    assert local_chart_problem(parse_spec(local_spec(chartPath=str(path)), "x"), ROOT) is not None


@pytest.mark.parametrize(
    ("airflow", "problem"),
    [
        pytest.param(
            {"chartRepository": "https://airflow.apache.org", "chartPath": "vendor/airflow"},
            "airflow-oidc:spec.airflow.chartPath: set chartPath (a local chart) or chartRepository, not both",
            id="both",
        ),
        pytest.param(
            {"chartRepository": "http://charts.corp-example.net"},
            "airflow-oidc:spec.airflow.chartRepository: chartRepository 'http://charts.corp-example.net': http is "
            "allowed only for localhost or 127.0.0.1; use https",
            id="plain-http",
        ),
        pytest.param(
            {"chartRepository": "oci://Registry Example/charts"},
            "airflow-oidc:spec.airflow.chartRepository: 'oci://Registry Example/charts' is not an OCI registry path "
            "such as oci://registry.example.com/charts",
            id="bad-oci",
        ),
    ],
)
def test_a_bad_chart_source_is_refused_naming_the_key(airflow: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(local_spec(**airflow), "stacks/Pulumi.local.yaml")
    assert raised.value.problems == [problem]


def test_a_platform_vendors_the_chart_for_every_team_stack(tmp_path: Path) -> None:
    """The environment defaults may set the chart source; a team stack inherits it."""
    (tmp_path / "defaults").mkdir()
    (tmp_path / "defaults" / "local.yaml").write_text(
        yaml.safe_dump({"defaults": {"airflow": {"chartPath": "vendor/airflow-1.19.0", "chartVersion": "1.19.0"}}})
    )
    resolved = resolve_spec(local_spec(), "stacks/Pulumi.local.yaml", tmp_path)
    assert resolved.spec.airflow.chartPath == "vendor/airflow-1.19.0"
    assert resolved.inherited["airflow.chartPath"] == "vendor/airflow-1.19.0"
