"""End-to-end SSO for the Okta stacks, deployed from what the program declares at Okta.

dev: the org authorization server (issuer without a path, app-level groups claim `groups`).
prod: a custom authorization server (issuer path /oauth2/default, its own scope and claim),
defaultRole Viewer for signIn.extraGroups. Users' memberships at the stand-in are Okta group ids;
the provider evaluates the declared claim (getFilteredGroups over the bound groups' ids, emitting
their names) and refuses users in none of the assigned groups (by id), as Okta does.
"""

from __future__ import annotations

import pytest

pytest.importorskip("playwright", reason="!!! playwright is not importable: run with .venv-airflow/bin/pytest")
pytest.importorskip("airflow", reason="!!! airflow is not importable: run with .venv-airflow/bin/pytest")

from localdev.deployment import IMPOSTOR, LocalDeployment
from tests.e2e.conftest import stack_deployment
from tests.e2e.rotation_cases import RotationCases
from tests.e2e.sso_cases import DENIED, SsoLoginCases, assert_refused_in_airflow, describe

pytestmark = pytest.mark.e2e


deployment = stack_deployment("dev", "prod")


class TestOktaStacks(RotationCases, SsoLoginCases):
    """Okta: assignment refusals at the IdP, the claim by group id, the custom server's scope and claim; a
    client-secret rotation applied while a user is signed in."""

    def test_a_same_named_group_with_another_id_maps_nothing(self, deployment: LocalDeployment) -> None:
        """An APP_GROUP (from AD, another app) named like the Admin group: its members are not assigned
        (refused at Okta), and beside a lower mapped group they get that group's role only."""
        alone, beside = deployment.users[f"{IMPOSTOR}-alone"], deployment.users[IMPOSTOR]
        admins = next(group for group, role in deployment.intent.access if role == "Admin")
        assert alone.group_names == (f"{admins} (APP_GROUP)",), alone.group_names
        assert alone.groups[0] != deployment.membership(admins), "the impostor group has its own id"

        provider_mark = deployment.provider_log_mark()
        result = deployment.login(alone, label="impostor-alone")
        assert_refused_in_airflow(deployment, result, alone.username)
        assert DENIED in result.page_text, describe(result)
        deployment.expect_provider_log(provider_mark, "not assigned to the client application")

        # The claim as the provider emits it for this user: the mapped group's name only.
        assert deployment.idp_groups.emitted(beside.groups) == [deployment.intent.access[-1][0]]
        result = deployment.login(beside, label="impostor-beside")
        assert result.has_token, describe(result)
        roles = deployment.roles(beside.username)
        assert roles == set(beside.expected_roles) == {deployment.intent.access[-1][1]}, roles
        assert "Admin" not in (roles or set())
