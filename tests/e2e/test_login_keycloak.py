"""End-to-end SSO for the Keycloak stacks (`idp.kind: keycloak`) against a real Keycloak 26.

local: the realm created by the program; Keycloak on the stack's own URL, http://127.0.0.1:8180 (no
replacement in the rendered webserver_config.py); nginx on https://localhost:8443 (both ports must be
free). search-prod: the company realm exists (the harness creates it first), groups created, a
default-role audience; Keycloak on a free port (only the issuer's scheme and host move), nginx on 443.
The realm, groups, client and mapper are exactly what the program declared (applied through the Admin
REST API); the users sign in on Keycloak's own login page with a username and password.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("playwright", reason="!!! playwright is not importable: run with .venv-airflow/bin/pytest")
pytest.importorskip("airflow", reason="!!! airflow is not importable: run with .venv-airflow/bin/pytest")

import requests

from localdev.deployment import LocalDeployment, one_character_off
from localdev.harness.keycloak import Pkce, authorization_url, login_form_action
from localdev.keycloak_idp import KeycloakIdp
from tests.e2e.conftest import stack_deployment
from tests.e2e.rotation_cases import RotationCases
from tests.e2e.sso_cases import AUTHLIB_REFUSED, NOT_MAPPED, SsoLoginCases, assert_refused_in_airflow

pytestmark = pytest.mark.e2e


deployment = stack_deployment("local", "search-prod")


def keycloak(deployment: LocalDeployment) -> KeycloakIdp:
    assert isinstance(deployment.provider, KeycloakIdp)
    return deployment.provider


class TestKeycloakLocalStack(RotationCases, SsoLoginCases):
    """Keycloak: every realm user may authenticate, so Airflow refuses the unmapped; the real server's
    refusals; a client-secret rotation applied while a user is signed in."""

    def test_mapper_without_full_path_maps_nobody(self, deployment: LocalDeployment) -> None:
        """The declared mapper with full_path switched off emits bare names: no mapped path, refused."""
        user = deployment.users["nc-full-path-groups"]
        (group,) = user.groups
        marks = deployment.airflow_log_marks()
        with keycloak(deployment).mapper_config({"full.path": "false"}):
            result = deployment.login(user, label="control-bare-names")
        assert_refused_in_airflow(deployment, result, user.username)
        log = deployment.expect_airflow_log(marks, NOT_MAPPED)
        assert f"'{group.rsplit('/', 1)[-1]}'" in log, log[-2000:]

    def test_a_same_named_subgroup_elsewhere_gets_no_role(self, deployment: LocalDeployment) -> None:
        """Anyone who can make `/contractors/<the Admin group's name>` makes nobody Admin: the claim
        carries that group's own path, which no `access` entry maps; the user is refused."""
        idp = keycloak(deployment)
        admin_group = next(group for group, role in deployment.intent.access if role == "Admin")
        impostor = "/contractors" + admin_group[admin_group.rindex("/") :]
        admin = idp.server.admin()
        admin.ensure_group(idp.realm, impostor)
        username, password = "contractor", f"contractor-{secrets.token_hex(3)}"
        user_id = admin.create_user(
            idp.realm,
            username,
            password,
            email="contractor@example.com",
            first_name="Con",
            last_name="Tractor",
            groups=[impostor],
        )
        marks = deployment.airflow_log_marks()
        result = deployment.browser.login(
            deployment.base_url,
            deployment.provider_name,
            username,
            password=password,
            label="control-subgroup",
            reuse_context=True,
        )
        assert_refused_in_airflow(deployment, result, f"{deployment.provider_name}_{user_id}")
        log = deployment.expect_airflow_log(marks, NOT_MAPPED)
        assert f"'{impostor}'" in log, log[-2000:]

    def test_a_member_of_a_mapped_subgroup_gets_its_role(self, deployment: LocalDeployment) -> None:
        """A subgroup named by path in `access` (`/data/airflow-auditors`) maps its members."""
        nested = dict((group, role) for group, role in deployment.intent.access if group.count("/") > 1)
        if not nested:
            pytest.skip(f"{deployment.stack_file.name} maps no subgroup")
        users = [user for user in deployment.users_of("mapped") if user.groups[0] in nested]
        assert len(users) == len(nested), "one mapped user per subgroup"
        for user in users:
            result = deployment.login(user, label=f"subgroup-{user.account_id}")
            assert result.has_token, result.final_url
            assert deployment.roles(user.username) == set(user.expected_roles) == {nested[user.groups[0]]}

    def test_client_secret_one_character_off_is_refused(self, deployment: LocalDeployment) -> None:
        """Keycloak holding a secret one character off: the code exchange fails, no session, no row."""
        user = deployment.users["nc-client-secret"]
        marks = deployment.airflow_log_marks()
        with deployment.provider_registered_with(client_secret=one_character_off(deployment.client.client_secret)):
            result = deployment.login(user, label="control-client-secret")
        assert_refused_in_airflow(deployment, result, user.username)
        deployment.expect_airflow_log(marks, AUTHLIB_REFUSED + "unauthorized_client")

    def test_authorization_request_without_pkce_is_refused(self, deployment: LocalDeployment) -> None:
        """The declared client requires PKCE S256: a request without a challenge never reaches the login form."""
        idp = keycloak(deployment)

        def authorize(pkce: Pkce | None) -> requests.Response:
            url = authorization_url(idp.issuer, deployment.client.client_id, deployment.redirect_uri, pkce=pkce)
            return requests.get(url, allow_redirects=False, timeout=10)

        refused = authorize(None)
        assert refused.status_code in (302, 303), refused.status_code
        location = refused.headers["Location"]
        assert location.startswith(deployment.redirect_uri), location
        query = parse_qs(urlsplit(location).query)
        assert query["error"] == ["invalid_request"], query
        assert "code_challenge_method" in query["error_description"][0], query
        # Same request with a challenge: Keycloak's login form.
        accepted = authorize(Pkce.new())
        assert accepted.status_code == 200 and login_form_action(accepted.text), accepted.status_code
        # And it is the declared attribute that refuses: without it the same request is accepted.
        with idp.client_attributes({"pkce.code.challenge.method": ""}):
            assert login_form_action(authorize(None).text), "Keycloak refused without the PKCE attribute too"

    def test_declared_client_is_what_keycloak_holds(self, deployment: LocalDeployment) -> None:
        """Read back: the realm, the client and the mapper as the Admin API reports them."""
        idp = keycloak(deployment)
        admin = idp.server.admin()
        client = admin.get_client(idp.realm, deployment.client.client_id)
        assert client["standardFlowEnabled"] is True
        assert (client["implicitFlowEnabled"], client["directAccessGrantsEnabled"]) == (False, False)
        assert client["serviceAccountsEnabled"] is False and client["publicClient"] is False
        assert client["redirectUris"] == [deployment.redirect_uri]
        assert client["webOrigins"] == []
        assert client["attributes"]["pkce.code.challenge.method"] == "S256"
        assert client["attributes"]["post.logout.redirect.uris"] == deployment.idp["post_logout_redirect_uris"][0]
        mapper = admin.protocol_mapper(idp.realm, deployment.client.client_id, deployment.idp["mapper_name"])
        assert mapper["config"]["full.path"] == "true" and mapper["config"]["claim.name"] == "groups"
        if deployment.idp["realm_declared"]:
            realm = admin.get_realm(idp.realm)
            assert realm["sslRequired"] == "external" and realm["bruteForceProtected"] is True
