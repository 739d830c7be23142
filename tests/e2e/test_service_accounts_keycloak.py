"""Service accounts on a real Keycloak (26.5.6, localdev/harness/keycloak.py): the clients and audience
mappers the program declares for tests/e2e/stacks/Pulumi.keycloak-automation.yaml, created as declared,
issue client-credentials tokens that the shipped auth-manager module (the code Airflow runs at
`POST /auth/token`) accepts as exactly the declared account, and Keycloak refuses them every other grant.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pytest
import requests

from localdev.deployment import run_capture
from localdev.harness.keycloak import KeycloakAdmin, KeycloakServer
from localdev.harness.process import RunDir
from localdev.services import SharedServices

pytestmark = pytest.mark.e2e

STACK = Path(__file__).with_name("stacks") / "Pulumi.keycloak-automation.yaml"
MODULE = Path(__file__).resolve().parents[2] / "components" / "airflow_auth_manager.py"
CLIENT = "keycloak:openid/client:Client"
AUDIENCE = "keycloak:openid/audienceProtocolMapper:AudienceProtocolMapper"


def auth_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airflow_oidc_auth", MODULE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def declared(capture: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in capture["idp"]["declared"]["resources"] if r["type"] == type_]


class Realm:
    """The declared realm on a running Keycloak, and the module's settings pointed at it."""

    def __init__(self, server: KeycloakServer, capture: dict[str, Any]) -> None:
        self.server = server
        self.admin: KeycloakAdmin = server.admin()
        self.capture = capture
        settings_json = next(
            data["airflow_oidc_auth.json"]
            for data in capture["airflow"]["config_maps"].values()
            if "airflow_oidc_auth.json" in data
        )
        self.settings = json.loads(settings_json)["serviceAccounts"]
        self.name = self.settings["issuer"].rsplit("/realms/", 1)[1]
        declared_issuer = self.settings["issuer"]
        self.settings["issuer"] = server.issuer(self.name)
        self.settings["discoveryUrl"] = server.issuer(self.name) + self.settings["discoveryUrl"][len(declared_issuer) :]
        self.secrets: dict[str, str] = {}

    def create_declared(self) -> None:
        self.admin.create_realm(self.name)
        ids: dict[str, str] = {}
        for resource in declared(self.capture, CLIENT):
            inputs = resource["inputs"]
            ids[resource["name"]] = self.admin.create_client(
                self.name,
                {
                    "clientId": inputs["clientId"],
                    "protocol": "openid-connect",
                    "publicClient": inputs["accessType"] != "CONFIDENTIAL",
                    "secret": inputs["clientSecret"],
                    "serviceAccountsEnabled": inputs.get("serviceAccountsEnabled", False),
                    "standardFlowEnabled": inputs.get("standardFlowEnabled", False),
                    "implicitFlowEnabled": inputs.get("implicitFlowEnabled", False),
                    "directAccessGrantsEnabled": inputs.get("directAccessGrantsEnabled", False),
                    "redirectUris": inputs.get("validRedirectUris") or [],
                },
            )
            self.secrets[inputs["clientId"]] = inputs["clientSecret"]
        for resource in declared(self.capture, AUDIENCE):
            inputs = resource["inputs"]
            owner = next(name for name in ids if resource["name"].startswith(name + "-"))
            self.admin.create_protocol_mapper(
                self.name,
                ids[owner],
                {
                    "name": inputs["name"],
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-audience-mapper",
                    "config": {
                        "included.client.audience": inputs["includedClientAudience"],
                        "access.token.claim": str(inputs["addToAccessToken"]).lower(),
                        "id.token.claim": str(inputs["addToIdToken"]).lower(),
                    },
                },
            )

    def token(self, client_id: str, secret: str | None = None, **form: str) -> requests.Response:
        return requests.post(
            self.server.issuer(self.name) + "/protocol/openid-connect/token",
            data={"grant_type": "client_credentials", **form},
            auth=(client_id, secret or self.secrets[client_id]),
            timeout=10,
        )


@pytest.fixture(scope="module")
def realm(e2e_services: SharedServices) -> Iterator[Realm]:
    """The declared realm on the run's Keycloak (leased: deleted afterwards)."""
    run = RunDir.create("keycloak-service-accounts")
    capture = run_capture(STACK, run.path / "capture.json")
    server = e2e_services.keycloak()
    assert server is not None
    running = Realm(server, capture)
    with server.realm_lease(running.name):
        running.create_declared()
        yield running


auth = auth_module()


def test_each_declared_client_gets_a_token_naming_exactly_its_account(realm: Realm) -> None:
    expected = {entry["name"]: entry["role"] for entry in realm.capture["outputs"]["serviceAccounts"]}
    assert expected == {"ci": "Op", "audit": "Viewer"}
    for client_id, account in realm.settings["accounts"].items():
        response = realm.token(client_id)
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["azp"] == client_id and realm.settings["audience"] in claims["aud"]
        assert auth.verify_service_account_token(token, realm.settings) == account
        assert expected[account["name"]] == account["role"]


def test_keycloak_refuses_the_service_accounts_every_other_grant(realm: Realm) -> None:
    client_id = next(iter(realm.settings["accounts"]))
    password = realm.token(client_id, grant_type="password", username="service-account-" + client_id, password="x")
    assert password.status_code in (400, 401) and "unauthorized_client" in password.text
    web = requests.get(
        realm.server.issuer(realm.name) + "/protocol/openid-connect/auth",
        params={"client_id": client_id, "response_type": "code", "redirect_uri": "https://localhost:8443/x"},
        timeout=10,
        allow_redirects=False,
    )
    # No redirect URI is registered, so no browser flow can return a code; and the flow is off.
    assert web.status_code == 400 and "Invalid parameter: redirect_uri" in web.text
    held = realm.admin.get_client(realm.name, client_id)
    assert (held["standardFlowEnabled"], held["implicitFlowEnabled"], held["directAccessGrantsEnabled"]) == (
        False,
        False,
        False,
    )
    assert held["serviceAccountsEnabled"] is True


def test_a_client_without_the_audience_mapper_is_refused(realm: Realm) -> None:
    realm.admin.create_client(
        realm.name,
        {"clientId": "another-team-ci", "publicClient": False, "secret": "another", "serviceAccountsEnabled": True},
    )
    token = realm.token("another-team-ci", "another").json()["access_token"]
    assert realm.settings["audience"] not in jwt.decode(token, options={"verify_signature": False})["aud"]
    with pytest.raises(auth.RefusedTokenError, match="InvalidAudienceError"):
        auth.verify_service_account_token(token, realm.settings)


def test_a_client_of_the_realm_with_the_audience_but_not_in_the_spec_is_refused(realm: Realm) -> None:
    internal = realm.admin.create_client(
        realm.name,
        {"clientId": "airflow-lookalike", "publicClient": False, "secret": "lookalike", "serviceAccountsEnabled": True},
    )
    realm.admin.create_protocol_mapper(
        realm.name,
        internal,
        {
            "name": "aud",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {"included.client.audience": realm.settings["audience"], "access.token.claim": "true"},
        },
    )
    token = realm.token("airflow-lookalike", "lookalike").json()["access_token"]
    with pytest.raises(auth.RefusedTokenError, match="names 0 of this stack's service accounts"):
        auth.verify_service_account_token(token, realm.settings)
