"""stacks/Pulumi.search-prod.yaml through the real engine: the company's realm exists (created first through the
Admin REST API); the program creates the client, its mapper and the groups in it; an external database's Secret
is the company's. Destroy is refused by protection, as documented, until `pulumi state unprotect`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localdev.harness.process import RunDir
from tests.engine import keycloak_lifecycle as life
from tests.engine.conftest import Keycloak
from tests.engine.kube import KubeApi
from tests.engine.scenario import EngineStack, client_ids, group_paths, namespace_objects
from tests.engine.sso import ClusterAirflow, RealmUser
from tests.engine.workspace import PulumiWorkspace

STACK = "search-prod"
REALM = "corp"


@pytest.fixture(scope="module")
def stack(workspace: PulumiWorkspace, keycloak: Keycloak) -> Iterator[EngineStack]:
    def company_realm(stack: EngineStack) -> None:
        assert stack.spec.idp.realm == REALM  # type: ignore[union-attr]
        keycloak.admin.create_realm(REALM)

    yield from life.deployed(STACK, workspace, keycloak, before_up=company_realm)


@pytest.fixture(scope="module")
def users(stack: EngineStack, keycloak: Keycloak) -> list[RealmUser]:
    return life.realm_users(stack, keycloak)


@pytest.fixture(scope="module")
def airflow(stack: EngineStack, kube: KubeApi, run_dir: RunDir, users: list[RealmUser]) -> Iterator[ClusterAirflow]:
    yield from life.airflow_for(stack, kube, run_dir)


def test_preview_then_up_succeed(stack: EngineStack) -> None:
    life.check_preview_and_up(stack)


def test_a_second_up_changes_nothing(stack: EngineStack) -> None:
    life.check_second_up_changes_nothing(stack)


def test_refresh_finds_no_drift(stack: EngineStack) -> None:
    life.check_refresh_finds_no_drift(stack)


def test_keycloak_holds_exactly_the_contract(stack: EngineStack, keycloak: Keycloak) -> None:
    life.check_keycloak_equals_the_contract(stack, keycloak)


def test_each_user_gets_exactly_its_role_through_what_up_created(
    stack: EngineStack, keycloak: Keycloak, airflow: ClusterAirflow, users: list[RealmUser]
) -> None:
    life.check_every_user_gets_exactly_its_role(stack, keycloak, airflow, users)


def test_the_policy_pack_passes(stack: EngineStack) -> None:
    life.check_policy_pack_passes(stack)


def test_destroy_is_refused_by_protection_until_unprotected(
    stack: EngineStack, keycloak: Keycloak, kube: KubeApi, airflow: ClusterAirflow
) -> None:
    airflow.stop()
    refused = stack.pulumi("destroy", "--yes", check=False)
    assert refused.returncode != 0
    assert "protected" in refused.output, refused.output[-3000:]
    contract = stack.contract
    assert stack.keycloak_client_id in client_ids(keycloak.admin, REALM), "a refused destroy deleted the client"
    # The documented escape.
    stack.pulumi("state", "unprotect", "--all", "--yes")
    stack.pulumi("destroy", "--yes")
    assert stack.ws.resources(stack.name) == []
    assert keycloak.admin.realm_exists(REALM), "the company's realm is not the stack's to delete"
    assert stack.keycloak_client_id not in client_ids(keycloak.admin, REALM)
    assert not group_paths(keycloak.admin, REALM) & set(contract.claim_values)
    assert namespace_objects(kube, stack.spec.airflow.namespace) == {}
