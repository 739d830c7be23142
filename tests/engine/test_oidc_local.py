"""stacks/Pulumi.local-oidc.yaml (`idp.kind: oidc`, registered by hand) through the real engine: no IdP provider,
the Airflow side only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engine.conftest import Keycloak
from tests.engine.kube import KubeApi
from tests.engine.scenario import EngineStack, namespace_objects
from tests.engine.workspace import PulumiWorkspace

STACK = "local-oidc"


@pytest.fixture(scope="module")
def stack(workspace: PulumiWorkspace, keycloak: Keycloak) -> Iterator[EngineStack]:
    from tests.engine.keycloak_lifecycle import deployed

    yield from deployed(STACK, workspace, keycloak)


def test_preview_then_up_succeed(stack: EngineStack) -> None:
    assert stack.results["preview"].returncode == 0
    assert stack.results["up --yes --skip-preview"].returncode == 0


def test_a_second_up_changes_nothing(stack: EngineStack) -> None:
    result = stack.pulumi("up", "--yes", "--expect-no-changes", check=False)
    assert result.returncode == 0, result.output[-3000:]


def test_refresh_finds_no_drift(stack: EngineStack) -> None:
    result = stack.pulumi("refresh", "--yes", "--expect-no-changes", check=False)
    assert result.returncode == 0, result.output[-3000:]


def test_the_secrets_reach_the_cluster_as_declared(stack: EngineStack, kube: KubeApi) -> None:
    """The client secret the program generated (an output for the hand registration) is the one in the cluster."""
    spec = stack.spec
    outputs = stack.ws.outputs(stack.name)
    held = kube.secret_data(spec.airflow.namespace, f"{spec.airflow.releaseName}-oidc-client")["client-secret"]
    assert held == outputs["clientSecret"]
    deployment = kube.get(
        f"/apis/apps/v1/namespaces/{spec.airflow.namespace}/deployments/{spec.airflow.releaseName}-api-server"
    )
    env = {item["name"]: item for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AIRFLOW_OIDC_CLIENT_ID"]["value"] == outputs["clientId"]
    assert env["AIRFLOW_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{spec.airflow.releaseName}-oidc-client",
        "key": "client-secret",
    }


def test_the_policy_pack_passes(stack: EngineStack) -> None:
    result = stack.policy_preview()
    assert result.returncode == 0, result.output[-3000:]


def test_destroy_leaves_nothing_behind(stack: EngineStack, kube: KubeApi) -> None:
    result = stack.pulumi("destroy", "--yes", check=False)
    assert result.returncode == 0, result.output[-3000:]
    assert stack.ws.resources(stack.name) == []
    assert namespace_objects(kube, stack.spec.airflow.namespace) == {}
