"""The Keycloak kind (`idp.kind: keycloak`), run through the real program under the mock engine.

stacks/Pulumi.local.yaml: the realm created on a loopback Keycloak; stacks/Pulumi.search-prod.yaml:
an existing realm in prod (groups created, a default-role audience, protected resources).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from typing import Any

import pulumi
import pytest

from components.idp.base import secret_generation
from components.idp.keycloak import GET_GROUP, looked_up_group_id
from components.mock_values import fake_guid
from tests.conftest import ROOT
from tests.mock_engine import Run, fake_secret, is_secret, plain_occurrences, run_program, stack_config

CLIENT = "keycloak:openid/client:Client"
MAPPER = "keycloak:openid/groupMembershipProtocolMapper:GroupMembershipProtocolMapper"
GROUP = "keycloak:index/group:Group"
REALM = "keycloak:index/realm:Realm"
K8S_SECRET = "kubernetes:core/v1:Secret"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET_NAME = "airflow-oidc-keycloak-client-secret"


def stack_file_config(stack: str) -> tuple[dict[str, str], list[str]]:
    return stack_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")


def run_with(stack: str, edit: Any = None, *, name: str | None = None, extra: dict[str, str] | None = None) -> Run:
    """Run a stack file's config, the spec changed by `edit(spec)` (in place), as stack `name`."""
    config, secret_keys = stack_file_config(stack)
    spec = json.loads(config["airflow-oidc:spec"])
    if edit is not None:
        edit(spec)
    config = {**config, **(extra or {}), "airflow-oidc:spec": json.dumps(spec)}
    return run_program(name or stack, config, secret_keys)


@pytest.fixture(scope="module")
def local() -> Run:
    return run_with("local")


@pytest.fixture(scope="module")
def search() -> Run:
    return run_with("search-prod")


def rendered_config(run: Run) -> str:
    return str(run.one(RELEASE).inputs["values"]["apiServer"]["apiServerConfig"])


# --- the client -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "host", "realm", "lifespan"),
    [
        ("local", "https://localhost:8443", "airflow-local", "3600"),  # non-prod default: 60 minutes
        ("search-prod", "https://airflow.search.corp-example.net", "corp", "600"),  # tokens.accessTokenMinutes: 10
    ],
)
def test_client_is_confidential_code_flow_with_pkce_and_exact_uris(
    stack: str, host: str, realm: str, lifespan: str
) -> None:
    run = run_with(stack)
    client = run.one(CLIENT)
    inputs = dict(client.inputs)
    assert is_secret(client.raw_inputs["clientSecret"])
    assert inputs.pop("clientSecret") == fake_secret(SECRET_NAME)
    assert inputs == {
        "realmId": realm,
        "clientId": f"airflow-{stack}",
        "name": "Airflow (local)" if stack == "local" else "Airflow (search-prod)",
        "enabled": True,
        "accessType": "CONFIDENTIAL",
        "clientAuthenticatorType": "client-secret",
        "standardFlowEnabled": True,  # off by default in the provider
        "implicitFlowEnabled": False,
        "directAccessGrantsEnabled": False,
        "serviceAccountsEnabled": False,
        "pkceCodeChallengeMethod": "S256",
        "validRedirectUris": [f"{host}/auth/oauth-authorized/keycloak"],
        "validPostLogoutRedirectUris": [f"{host}/auth/login/"],
        "webOrigins": [],
        "accessTokenLifespan": lifespan,
    }
    assert "clientSecret" in client.additional_secret_outputs
    outputs = run.stack_outputs
    assert outputs["clientId"] == f"airflow-{stack}"
    assert outputs["redirectUris"] == inputs["validRedirectUris"]


def test_client_ids_differ_per_stack_in_one_realm() -> None:
    ids = {run_with("search-prod", name=stack).one(CLIENT).inputs["clientId"] for stack in ("search-prod", "risk-x")}
    assert ids == {"airflow-search-prod", "airflow-risk-x"}


def test_airflow_reads_the_issuer_scopes_and_claim_keycloak_emits(local: Run, search: Run) -> None:
    text = rendered_config(local)
    assert 'PROVIDER = "keycloak"' in text  # usernames keycloak_<sub>, callback .../oauth-authorized/keycloak
    assert 'ISSUER = "http://127.0.0.1:8180/realms/airflow-local"' in text
    assert 'SCOPES = ["openid", "email", "profile"]' in text
    assert 'ROLE_CLAIM = "groups"' in text and 'USERNAME_CLAIM = "sub"' in text
    # keycloak:url from the stack file is the default server.
    assert search.stack_outputs["issuer"] == "https://sso.corp-example.net/realms/corp"
    assert 'ISSUER = "https://sso.corp-example.net/realms/corp"' in rendered_config(search)


def test_idp_url_overrides_the_provider_url() -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["idp"]["url"] = "https://login.corp-example.net/"

    run = run_with("search-prod", edit)
    assert run.stack_outputs["issuer"] == "https://login.corp-example.net/realms/corp"


# --- the mapper -----------------------------------------------------------------------------------


def test_mapper_emits_full_group_paths_for_this_client_only(local: Run) -> None:
    client = local.one(CLIENT)
    mapper = local.one(MAPPER)
    assert mapper.inputs == {
        "realmId": "airflow-local",
        # The client's internal id (a GUID), not its OAuth client id.
        "clientId": fake_guid(client.name),
        "name": "airflow-groups",
        "claimName": "groups",
        # Paths: a bare name would also match a same-named subgroup anywhere in the realm.
        "fullPath": True,
        "addToIdToken": True,
        "addToUserinfo": True,
        "addToAccessToken": False,
    }
    assert client.urn in mapper.dependencies


# --- groups and realm -----------------------------------------------------------------------------


def test_created_groups_are_exactly_access_then_extra_groups(search: Run) -> None:
    groups = search.of_type(GROUP)
    assert sorted(g.inputs["name"] for g in groups) == sorted(
        ["search-airflow-admins", "search-oncall", "search-engineers", "search-stakeholders"]
    )
    assert all(g.inputs["realmId"] == "corp" and "parentId" not in g.inputs for g in groups)
    assert not search.of_type(REALM), "createRealm defaults to false: the realm is referenced by name"
    assert not [token for token, _ in search.invokes if token == GET_GROUP]


def test_existing_groups_are_looked_up_by_exact_path_never_created() -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["idp"]["createGroups"] = False
        spec["access"].append({"group": "/data/search-auditors", "role": "Viewer"})

    run = run_with("search-prod", edit)
    assert not run.of_type(GROUP)
    looked_up = [args for token, args in run.invokes if token == GET_GROUP]
    # By `group_path` (Keycloak's /group-by-path), never by `name` (a search taking the first match anywhere).
    assert sorted(args["groupPath"] for args in looked_up) == [
        "/data/search-auditors",
        "/search-airflow-admins",
        "/search-engineers",
        "/search-oncall",
        "/search-stakeholders",
    ]
    assert all("name" not in args for args in looked_up)
    assert {args["realmId"] for args in looked_up} == {"corp"}
    assert looked_up_group_id("corp", "search-oncall") != looked_up_group_id("corp", "/data/search-oncall")


def test_the_role_mapping_is_keyed_by_group_path() -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["access"].append({"group": "/data/search-auditors", "role": "Viewer"})

    text = rendered_config(run_with("search-prod", edit))
    mapping = text.split("ROLE_BY_CLAIM_VALUE = ", 1)[1].split("\n", 1)[0]
    assert json.loads(mapping) == {
        "/search-airflow-admins": "Admin",
        "/search-oncall": "Op",
        "/search-engineers": "User",
        "/data/search-auditors": "Viewer",
    }
    assert '"/search-stakeholders"' in text and '"search-stakeholders"' not in text


def test_a_subgroup_is_created_under_its_existing_parent_looked_up_by_path() -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["access"].append({"group": "/data/platform/search-auditors", "role": "Viewer"})

    run = run_with("search-prod", edit)
    (subgroup,) = [g for g in run.of_type(GROUP) if "parentId" in g.inputs]
    assert subgroup.name == "airflow-oidc-keycloak-group-data__platform__search_auditors"
    assert subgroup.inputs["name"] == "search-auditors"
    # The parent is not the stack's: it must exist, and the subgroup goes under the id it was found with.
    assert subgroup.inputs["parentId"] == looked_up_group_id("corp", "/data/platform")
    assert [args["groupPath"] for token, args in run.invokes if token == GET_GROUP] == ["/data/platform"]


def test_in_a_realm_it_creates_the_stack_creates_the_parents_too() -> None:
    def edit(spec: dict[str, Any]) -> None:
        assert {"group": "/data/airflow-auditors", "role": "Viewer"} in spec["access"]
        spec["access"].append({"group": "/data/ops/airflow-oncall", "role": "Op"})

    run = run_with("local", edit)
    by_name = {g.name.removeprefix("airflow-oidc-keycloak-group-"): g for g in run.of_type(GROUP)}
    assert sorted(by_name) == sorted(
        [
            "airflow_admins",
            "airflow_operators",
            "airflow_users",
            "airflow_viewers",
            "data",
            "data__airflow_auditors",
            "data__ops",
            "data__ops__airflow_oncall",
        ]
    )
    parent_of = {name: g.inputs.get("parentId") for name, g in by_name.items()}
    assert parent_of["data"] is None and parent_of["airflow_admins"] is None
    assert parent_of["data__airflow_auditors"] == fake_guid(by_name["data"].name)
    assert parent_of["data__ops"] == fake_guid(by_name["data"].name)
    assert parent_of["data__ops__airflow_oncall"] == fake_guid(by_name["data__ops"].name)
    assert not [token for token, _ in run.invokes if token == GET_GROUP], "nothing to look up in a new realm"


@pytest.mark.parametrize(
    ("edit_groups", "missing", "key_path", "what"),
    [
        pytest.param(False, "/data", "access[3].group", "/data, the parent of /data/search-auditors,", id="parent"),
        pytest.param(True, "/search-oncall", "access[1].group", "the group /search-oncall", id="looked-up-group"),
        pytest.param(
            True, "/search-stakeholders", "signIn.extraGroups[0]", "the group /search-stakeholders", id="extra-group"
        ),
    ],
)
def test_a_group_missing_at_its_path_is_refused_before_anything_is_declared(
    monkeypatch: pytest.MonkeyPatch, edit_groups: bool, missing: str, key_path: str, what: str
) -> None:
    from components.idp import keycloak

    monkeypatch.setattr(keycloak.model, "MOCK_MISSING_GROUPS", {missing})
    config, secret_keys = stack_file_config("search-prod")
    spec = json.loads(config["airflow-oidc:spec"])
    spec["idp"]["createGroups"] = not edit_groups
    spec["access"].append({"group": "/data/search-auditors", "role": "Viewer"})
    run = Run(stack="search-prod")
    with pytest.raises(pulumi.RunError) as raised:
        run_program("search-prod", {**config, "airflow-oidc:spec": json.dumps(spec)}, secret_keys, run=run)
    message = str(raised.value)
    assert message.startswith(f"stacks/Pulumi.search-prod.yaml: airflow-oidc:spec.{key_path}: {what} was not found")
    assert "realm corp" in message and f"group not found at path: {missing}" in message
    # Nothing declared but the provider the lookups go through.
    assert [resource.type for resource in run.resources] == ["pulumi:providers:keycloak"]


def test_created_realm_has_brute_force_protection_and_requires_tls_for_external(local: Run) -> None:
    realm = local.one(REALM)
    assert realm.inputs == {
        "realm": "airflow-local",
        "enabled": True,
        "sslRequired": "external",
        "securityDefenses": {"bruteForceDetection": {"permanentLockout": False, "maxLoginFailures": 5.0}},
    }
    # Everything in the realm waits for it (the realm's id is its name).
    for resource in [local.one(CLIENT), local.one(MAPPER), *local.of_type(GROUP)]:
        assert resource.inputs["realmId"] == "airflow-local"
        assert realm.urn in resource.dependencies, resource.name


# --- the secret -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["local", "search-prod"])
def test_client_secret_only_in_secret_marked_inputs_and_secret_data(stack: str) -> None:
    run = run_with(stack)
    secret = fake_secret(SECRET_NAME)
    holders = sorted((r.type, r.name) for r in run.resources if secret in json.dumps(r.inputs))
    assert holders == [
        (CLIENT, "airflow-oidc-keycloak-client"),
        (K8S_SECRET, "airflow-oidc-airflow-secret-oidc-client-secret"),
    ]
    for resource in run.resources:
        assert plain_occurrences(resource.raw_inputs, secret) == [], resource.name
    for urn, outputs in run.outputs.items():
        assert plain_occurrences(outputs, secret) == [], urn
    assert secret not in rendered_config(run)


def test_secret_rotates_by_period_in_place() -> None:
    # The generation is the rotation keeper: a new period replaces the RandomPassword, whose new
    # value updates the client in place (Keycloak keeps one secret per client) and rolls the api-server.
    run = run_with("search-prod")
    generation = secret_generation(datetime.date.today(), 90)
    assert run.named(SECRET_NAME).inputs["keepers"] == {"generation": str(generation)}
    assert secret_generation(datetime.date(2025, 1, 1), 90) != secret_generation(datetime.date(2025, 4, 1), 90)


# --- prod -----------------------------------------------------------------------------------------


def test_prod_protects_client_mapper_and_created_groups(search: Run, local: Run) -> None:
    for resource in [search.one(CLIENT), search.one(MAPPER), *search.of_type(GROUP)]:
        assert resource.protect is True, resource.name
    for resource in [local.one(CLIENT), local.one(MAPPER), local.one(REALM), *local.of_type(GROUP)]:
        assert resource.protect is False, resource.name


def test_prod_protects_a_realm_it_creates() -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["idp"]["createRealm"] = True

    assert run_with("search-prod", edit).one(REALM).protect is True


# --- refusals that need the provider config -------------------------------------------------------


def _without_url(spec: dict[str, Any]) -> None:
    spec["idp"].pop("url", None)


@pytest.mark.parametrize(
    ("keycloak_url", "reason"),
    [
        (None, "keycloak:url is not set"),
        ("http://sso.corp-example.net", "http is allowed only for localhost or 127.0.0.1"),
    ],
)
def test_program_refuses_a_missing_or_plain_http_server_url(
    monkeypatch: pytest.MonkeyPatch, keycloak_url: str | None, reason: str
) -> None:
    monkeypatch.delenv("KEYCLOAK_URL", raising=False)
    config, secret_keys = stack_file_config("search-prod")
    config = {key: value for key, value in config.items() if key != "keycloak:url"}
    if keycloak_url:
        config["keycloak:url"] = keycloak_url
    run = Run(stack="search-prod")
    with pytest.raises(pulumi.RunError) as raised:
        run_program("search-prod", config, secret_keys, run=run)
    assert str(raised.value).startswith("stacks/Pulumi.search-prod.yaml: ")
    assert reason in str(raised.value) and "airflow-oidc:spec.idp.url" in str(raised.value)
    assert run.resources == []


def test_keycloak_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYCLOAK_URL", "https://env.corp-example.net")
    config, secret_keys = stack_file_config("search-prod")
    config = {key: value for key, value in config.items() if key != "keycloak:url"}
    run = run_program("search-prod", config, secret_keys)
    assert run.stack_outputs["issuer"] == "https://env.corp-example.net/realms/corp"


# --- only this kind's SDK -------------------------------------------------------------------------

SDK_PROBE = """
import sys
from pathlib import Path
from tests.mock_engine import run_stack_file
run = run_stack_file(Path("stacks/Pulumi.local.yaml"))
assert run.of_type("keycloak:openid/client:Client")
print(sorted({name.split(".")[0] for name in sys.modules if name.startswith("pulumi_")}))
"""


def test_only_pulumi_keycloak_is_loaded_for_a_keycloak_stack() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SDK_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert loaded == ["pulumi_keycloak", "pulumi_kubernetes", "pulumi_random"]


def test_fleet_names_are_the_client_id_and_the_groups_it_creates() -> None:
    from components.stack_config import provider_from_stack_file, spec_from_stack_file

    path = ROOT / "stacks" / "Pulumi.search-prod.yaml"
    spec = spec_from_stack_file(path)
    names = spec.idp.fleet_names(spec, stack="search-prod", provider=provider_from_stack_file(path, spec))
    where = "realm corp at https://sso.corp-example.net"
    assert names[f"Keycloak client id in {where}"] == "airflow-search-prod"
    # By path: a bare name is the top-level group, so `search-oncall` and `/search-oncall` would clash.
    assert names[f"Keycloak group /search-oncall created in {where}"] == "/search-oncall"
    assert len(names) == 1 + 4


def test_sign_in_everyone_gives_every_realm_user_the_default_role_and_creates_no_extra_group() -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["signIn"] = {"everyone": True}

    run = run_with("search-prod", edit)
    text = rendered_config(run)
    assert "DEFAULT_ROLE_EVERYONE = True" in text and 'DEFAULT_ROLE = "Viewer"' in text
    assert sorted(g.inputs["name"] for g in run.of_type(GROUP)) == sorted(
        ["search-airflow-admins", "search-oncall", "search-engineers"]
    )
