"""The Keycloak harness against a real Keycloak server: what was declared is what the server does.

The test run's shared Keycloak (localdev/services.py), realm `corp` leased for the module. A
hand-written declared set in the mock engine's shape (type token, camelCase inputs, numbers as floats,
references by fake id) is applied through the Admin REST API, then plain HTTP (no browser) shows the
behaviours the e2e tier relies on.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from localdev.harness.install import PrerequisiteError, ensure_keycloak
from localdev.harness.keycloak import (
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
    check_known,
    declared_from_capture,
    jwt_claims,
    login_form_action,
    password_login,
)
from localdev.harness.process import REPO_ROOT, HarnessError
from localdev.services import SharedServices

pytestmark = pytest.mark.e2e

REALM_NAME = "corp"
CLIENT_ID = "airflow"
CLIENT_SECRET = "kc-test-secret-" + hashlib.sha256(b"client").hexdigest()[:24]
REDIRECT_URI = "https://airflow.corp-example.net/auth/oauth-authorized/keycloak"
LOGOUT_URI = "https://airflow.corp-example.net/auth/login/"
ADMINS = "search-airflow-admins"
VIEWERS = "search-airflow-viewers"
USER, PASSWORD = "alice", "alice-Passw0rd!"


PULUMI_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
# Runs in the Pulumi venv: the real program under the mock engine, its keycloak resources as JSON (0600).
CAPTURE_SCRIPT = """
import json, os, sys
from pathlib import Path
from tests.mock_engine import run_stack_file
from localdev.harness.keycloak import capture_declared
data = {Path(p).name: capture_declared(run_stack_file(Path(p))) for p in sys.argv[2:]}
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as handle:
    json.dump(data, handle)
"""


def keycloak_stack_files() -> list[Path]:
    """The stack files whose IdP is Keycloak."""
    return [
        path
        for path in sorted((REPO_ROOT / "stacks").glob("Pulumi.*.yaml"))
        if re.search(r"^\s+kind:\s*keycloak\s*$", path.read_text(), re.MULTILINE)
    ]


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
def keycloak(e2e_services: SharedServices) -> Iterator[Deployed]:
    """The run's Keycloak, with the declared set applied in realm `corp` (deleted afterwards) and alice in
    the admins group."""
    try:
        ensure_keycloak(lambda line: print(f"[e2e install] {line}"))
    except PrerequisiteError as exc:
        pytest.skip(f"!!! KEYCLOAK CANNOT BE INSTALLED — Keycloak harness tests NOT RUN: {exc}")
    server = e2e_services.keycloak()
    assert server is not None
    print(f"\n[keycloak] ready in {server.start_seconds:.1f} s (augmented: {server.augmented}); {server.log_dir}")
    with server.realm_lease(REALM_NAME):
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


@pytest.fixture(scope="module")
def program_captures(keycloak: Deployed) -> dict[str, Any]:
    """What the real program declares for every Keycloak stack (captured in the Pulumi venv)."""
    stacks = keycloak_stack_files()
    assert stacks, "no stack file in stacks/ has idp.kind: keycloak"
    if not PULUMI_PYTHON.exists():
        raise HarnessError(f"{PULUMI_PYTHON} not found: the capture runs the program in the Pulumi venv (make venvs)")
    out = keycloak.server.log_dir / "program-captures.json"
    result = subprocess.run(
        [str(PULUMI_PYTHON), "-c", CAPTURE_SCRIPT, str(out), *map(str, stacks)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode != 0:
        raise HarnessError(f"capture failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return dict(json.loads(out.read_text()))


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
    assert admin.user_groups(REALM_NAME, USER) == [f"/{ADMINS}"]


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


def test_every_input_the_program_declares_is_in_the_tables(program_captures: dict[str, Any]) -> None:
    for stack, capture in program_captures.items():
        resources, _ = declared_from_capture(capture)
        types = {resource.type for resource in resources}
        assert {OPENID_CLIENT, GROUP_MAPPER} <= types, stack
        for resource in resources:
            check_known(resource)


def test_the_program_as_declared_signs_a_user_in(keycloak: Deployed, program_captures: dict[str, Any]) -> None:
    """A stack that creates its realm, applied exactly as captured: a member of a created group signs in."""
    with_realm = [
        capture for capture in program_captures.values() if any(r["type"] == REALM for r in capture["resources"])
    ]
    if not with_realm:
        pytest.skip("no Keycloak stack creates its realm")
    resources, ids = declared_from_capture(with_realm[0])
    realm_names = [r.inputs["realm"] for r in resources if r.type == REALM]
    # The shared server: the stack's realm is leased (deleted afterwards) so its deployment finds none.
    with keycloak.server.realm_lease(*realm_names) as admin:
        applied = apply_declared(admin, resources, ids)
        client = next(r.inputs for r in resources if r.type == OPENID_CLIENT)
        group = next(r.inputs["name"] for r in resources if r.type == GROUP)
        realm = next(iter(applied.realms.values()))
        admin.create_user(
            realm, "bob", PASSWORD, email="bob@corp-example.net", first_name="Bob", last_name="B", groups=[group]
        )
        tokens = password_login(
            keycloak.server.issuer(realm),
            client["clientId"],
            client["clientSecret"],
            client["validRedirectUris"][0],
            "bob",
            PASSWORD,
        )
        # The program's mapper emits full paths (a created top-level group: `/<name>`).
        assert jwt_claims(tokens["id_token"])["groups"] == [f"/{group}"]


def test_a_failing_start_raises_with_the_log_tail(keycloak: Deployed, tmp_path: Path) -> None:
    server = KeycloakServer(tmp_path / "broken", extra_args=["--no-such-option=1"])
    with pytest.raises(HarnessError, match="exited before it was ready") as raised, server:
        pass
    assert "no-such-option" in str(raised.value).split("--- last", 1)[1]
    assert server._admin_password not in str(raised.value)
