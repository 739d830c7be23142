"""stacks/Pulumi.local.yaml through the real engine: the realm, client, mapper and groups created by the Keycloak
provider in a real Keycloak; the stand-in chart installed by Helm into a real Kubernetes API; sign-ins on
Keycloak's own page; a rotation; destroy leaves nothing (tests/engine/keycloak_lifecycle.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localdev.harness.process import RunDir
from tests.engine import keycloak_lifecycle as life
from tests.engine.conftest import Keycloak
from tests.engine.kube import KubeApi
from tests.engine.scenario import EngineStack
from tests.engine.sso import ClusterAirflow, RealmUser
from tests.engine.workspace import PulumiWorkspace

STACK = "local"


@pytest.fixture(scope="module")
def stack(workspace: PulumiWorkspace, keycloak: Keycloak) -> Iterator[EngineStack]:
    yield from life.deployed(STACK, workspace, keycloak)


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


def test_one_period_later_up_replaces_exactly_the_secret_and_sign_in_works(
    stack: EngineStack, keycloak: Keycloak, kube: KubeApi, airflow: ClusterAirflow, users: list[RealmUser]
) -> None:
    life.check_rotation(stack, keycloak, kube, airflow, users)


def test_the_policy_pack_passes(stack: EngineStack) -> None:
    life.check_policy_pack_passes(stack)


def test_destroy_leaves_nothing_behind(
    stack: EngineStack, keycloak: Keycloak, kube: KubeApi, airflow: ClusterAirflow
) -> None:
    airflow.stop()  # before the Secrets it read go away
    life.check_destroy_leaves_nothing(stack, keycloak, kube)
