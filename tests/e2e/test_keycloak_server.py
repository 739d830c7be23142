"""The Keycloak harness against a real Keycloak server: what was declared is what the server does.

One server for the module. A hand-written declared set in the mock engine's shape (type token,
camelCase inputs, numbers as floats, references by fake id) is applied through the Admin REST API,
then plain HTTP (no browser) shows the behaviours the e2e tier relies on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.e2e.harness.install import PrerequisiteError, ensure_keycloak
from tests.e2e.harness.keycloak import (
    GROUP,
    GROUP_MAPPER,
    OPENID_CLIENT,
    REALM,
    AppliedResources,
    DeclaredResource,
    KeycloakServer,
    Pkce,
    apply_declared,
    authorization_url,
    jwt_claims,
    login_form_action,
    password_login,
)
from tests.e2e.harness.process import HarnessError, RunDir

pytestmark = pytest.mark.e2e

REALM_NAME = "corp"
CLIENT_ID = "airflow"
CLIENT_SECRET = "kc-test-secret-" + hashlib.sha256(b"client").hexdigest()[:24]
REDIRECT_URI = "https://airflow.corp-example.net/auth/oauth-authorized/keycloak"
LOGOUT_URI = "https://airflow.corp-example.net/auth/login/"
ADMINS = "search-airflow-admins"
VIEWERS = "search-airflow-viewers"
USER, PASSWORD = "alice", "alice-Passw0rd!"


def fake_id(name: str) -> str:
    """The shape of tests/mock_engine.py's fake(name, "id") (that module needs pulumi, absent here)."""
    return "id-" + hashlib.sha256(name.encode()).hexdigest()[:12]


def declared_set(*, client_inputs: dict[str, object] | None = None) -> list[DeclaredResource]:
    """What the program declares for `kind: keycloak, createRealm: true` (as the mock engine records it)."""
    realm_ref = fake_id("corp-realm")
    client = {
        "realmId": realm_ref,
        "clientId": CLIENT_ID,
        "name": "Airflow",
        "enabled": True,
        "accessType": "CONFIDENTIAL",
        "standardFlowEnabled": True,
        "implicitFlowEnabled": False,
        "directAccessGrantsEnabled": False,
        "serviceAccountsEnabled": False,
        "validRedirectUris": [REDIRECT_URI],
        "validPostLogoutRedirectUris": [LOGOUT_URI],
        "webOrigins": [],
        "pkceCodeChallengeMethod": "S256",
        "clientSecret": CLIENT_SECRET,
        "accessTokenLifespan": 900.0,  # protobuf Struct: every number arrives as a float
    }
    return [
        DeclaredResource(
            "corp-realm",
            REALM,
            {
                "realm": REALM_NAME,
                "enabled": True,
                "sslRequired": "external",
                "securityDefenses": {"bruteForceDetection": {}},
            },
        ),
        DeclaredResource("admins-group", GROUP, {"realmId": realm_ref, "name": ADMINS}),
        DeclaredResource("viewers-group", GROUP, {"realmId": realm_ref, "name": VIEWERS}),
        DeclaredResource("airflow-client", OPENID_CLIENT, {**client, **(client_inputs or {})}),
        DeclaredResource(
            "groups-mapper",
            GROUP_MAPPER,
            {
                "realmId": realm_ref,
                "clientId": fake_id("airflow-client"),  # the client's internal id (client.id)
                "name": "groups",
                "claimName": "groups",
                "fullPath": False,
                "addToIdToken": True,
                "addToAccessToken": False,
                "addToUserinfo": True,
            },
        ),
    ]


def ids_of(resources: list[DeclaredResource]) -> dict[str, str]:
    return {fake_id(resource.name): resource.name for resource in resources}


@dataclass
class Deployed:
    server: KeycloakServer
    applied: AppliedResources

    @property
    def issuer(self) -> str:
        return self.server.issuer(REALM_NAME)


@pytest.fixture(scope="module")
def keycloak() -> Iterator[Deployed]:
    """One Keycloak for the module, with the declared set applied and alice in the admins group."""
    try:
        ensure_keycloak(lambda line: print(f"[e2e install] {line}"))
    except PrerequisiteError as exc:
        pytest.skip(f"!!! KEYCLOAK CANNOT BE INSTALLED — Keycloak harness tests NOT RUN: {exc}")
    run = RunDir.create("keycloak-harness")
    with KeycloakServer(run.sub("keycloak")) as server:
        print(f"\n[keycloak] ready in {server.start_seconds:.1f} s (augmented: {server.augmented}); {run.path}")
        resources = declared_set()
        applied = apply_declared(server.admin(), resources, ids_of(resources))
        server.admin().create_user(
            REALM_NAME,
            USER,
            PASSWORD,
            email="alice@corp-example.net",
            first_name="Alice",
            last_name="Admin",
            groups=[ADMINS],
        )
        yield Deployed(server, applied)


def login_groups(keycloak: Deployed, secret: str = CLIENT_SECRET) -> object:
    tokens = password_login(keycloak.issuer, CLIENT_ID, secret, REDIRECT_URI, USER, PASSWORD)
    return jwt_claims(tokens["id_token"]).get("groups")


def test_every_declared_input_reaches_the_server(keycloak: Deployed) -> None:
    admin = keycloak.server.admin()
    client = admin.get_client(REALM_NAME, CLIENT_ID)
    assert keycloak.applied.clients["airflow-client"] == client["id"]
    assert client["publicClient"] is False and client["bearerOnly"] is False
    assert (client["standardFlowEnabled"], client["implicitFlowEnabled"]) == (True, False)
    assert (client["directAccessGrantsEnabled"], client["serviceAccountsEnabled"]) == (False, False)
    assert client["redirectUris"] == [REDIRECT_URI]
    assert client["webOrigins"] == []
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert client["attributes"]["access.token.lifespan"] == "900"
    assert client["attributes"]["post.logout.redirect.uris"] == LOGOUT_URI
    assert admin.client_secret(REALM_NAME, CLIENT_ID) == CLIENT_SECRET
    mapper = admin.protocol_mapper(REALM_NAME, CLIENT_ID, "groups")
    assert mapper["protocolMapper"] == "oidc-group-membership-mapper"
    assert mapper["config"]["full.path"] == "false"
    assert mapper["config"]["claim.name"] == "groups"
    assert (mapper["config"]["id.token.claim"], mapper["config"]["access.token.claim"]) == ("true", "false")
    realm = admin.get_realm(REALM_NAME)
    assert (realm["sslRequired"], realm["bruteForceProtected"]) == ("external", True)
    assert admin.user_groups(REALM_NAME, USER) == [ADMINS]


def test_discovery_names_the_realm_issuer(keycloak: Deployed) -> None:
    response = requests.get(keycloak.server.discovery_url(REALM_NAME), timeout=10)
    assert response.status_code == 200
    assert response.json()["issuer"] == f"{keycloak.server.url}/realms/{REALM_NAME}"


def test_registered_redirect_uri_with_pkce_gets_the_login_form(keycloak: Deployed) -> None:
    page = requests.get(authorization_url(keycloak.issuer, CLIENT_ID, REDIRECT_URI, pkce=Pkce.new()), timeout=10)
    assert page.status_code == 200
    assert login_form_action(page.text) is not None
    assert 'name="password"' in page.text


def test_redirect_uri_one_character_off_is_refused(keycloak: Deployed) -> None:
    wrong = REDIRECT_URI[:-1] + "x"
    page = requests.get(authorization_url(keycloak.issuer, CLIENT_ID, wrong, pkce=Pkce.new()), timeout=10)
    assert page.status_code == 400
    assert "Invalid parameter: redirect_uri" in page.text
    assert login_form_action(page.text) is None


def test_authorization_without_pkce_is_refused(keycloak: Deployed) -> None:
    answer = requests.get(
        authorization_url(keycloak.issuer, CLIENT_ID, REDIRECT_URI, pkce=None), allow_redirects=False, timeout=10
    )
    # The redirect URI is valid, so Keycloak sends the error back to it instead of showing a login form.
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    assert "error=invalid_request" in location and "code_challenge" in location


def test_login_puts_top_level_group_names_in_the_id_token(keycloak: Deployed) -> None:
    tokens = password_login(keycloak.issuer, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USER, PASSWORD)
    id_token = jwt_claims(tokens["id_token"])
    assert id_token["groups"] == [ADMINS]
    assert id_token["iss"] == keycloak.issuer and id_token["aud"] == CLIENT_ID
    access_token = jwt_claims(tokens["access_token"])
    assert "groups" not in access_token  # addToAccessToken false was applied
    assert access_token["exp"] - access_token["iat"] == 900  # the client's access.token.lifespan


def test_full_path_on_gives_a_leading_slash(keycloak: Deployed) -> None:
    admin = keycloak.server.admin()
    admin.update_protocol_mapper_config(REALM_NAME, CLIENT_ID, "groups", {"full.path": "true"})
    try:
        assert login_groups(keycloak) == [f"/{ADMINS}"]
    finally:
        admin.update_protocol_mapper_config(REALM_NAME, CLIENT_ID, "groups", {"full.path": "false"})
    assert login_groups(keycloak) == [ADMINS]


def test_moved_user_gets_the_other_group(keycloak: Deployed) -> None:
    admin = keycloak.server.admin()
    admin.move_user(REALM_NAME, USER, ADMINS, VIEWERS)
    try:
        assert login_groups(keycloak) == [VIEWERS]
    finally:
        admin.move_user(REALM_NAME, USER, VIEWERS, ADMINS)


def test_client_secret_one_character_off_fails_the_code_exchange(keycloak: Deployed) -> None:
    with pytest.raises(HarnessError, match="code exchange.*401"):
        login_groups(keycloak, secret=CLIENT_SECRET[:-1] + "x")


def test_an_input_the_table_does_not_know_raises(keycloak: Deployed) -> None:
    resources = [r for r in declared_set(client_inputs={"consentRequiredEverywhere": True}) if r.type == OPENID_CLIENT]
    with pytest.raises(HarnessError, match="'consentRequiredEverywhere'.*silently dropped") as raised:
        apply_declared(keycloak.server.admin(), resources, ids_of(declared_set()))
    assert CLIENT_SECRET not in str(raised.value)


def test_a_resource_type_the_harness_does_not_know_raises(keycloak: Deployed) -> None:
    unknown = DeclaredResource("scope", "keycloak:openid/clientScope:ClientScope", {"name": "x", "realmId": REALM_NAME})
    with pytest.raises(HarnessError, match="clientScope:ClientScope.*no translation"):
        apply_declared(keycloak.server.admin(), [unknown], {})


def test_a_fractional_lifespan_raises_without_echoing_values(keycloak: Deployed) -> None:
    # A literal realmId names an existing realm (the provider's realm id is its name).
    inputs = {"accessTokenLifespan": 900.5, "realmId": REALM_NAME, "clientId": "other"}
    resources = [r for r in declared_set(client_inputs=inputs) if r.type == OPENID_CLIENT]
    with pytest.raises(HarnessError, match="accessTokenLifespan.*cannot be translated") as raised:
        apply_declared(keycloak.server.admin(), resources, {})
    assert "900.5" not in str(raised.value)
