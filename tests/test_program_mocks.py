"""The real program, run under Pulumi's mock engine with each stack file's config."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.airflow_values import VERSION_ANNOTATION
from components.idp.okta import OktaIdp, mock_group_id, mock_groups, okta_groups_expression
from components.stack_config import spec_from_stack_file
from tests.conftest import ROOT, STACK_FILES, stack_name
from tests.mock_engine import (
    Registration,
    Run,
    fake,
    fake_secret,
    is_secret,
    plain_occurrences,
    run_program,
    stack_config,
)

OKTA_APP = "okta:app/oAuth:OAuth"
KEYCLOAK_CLIENT = "keycloak:openid/client:Client"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
ENTRA_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
GENERATED_SECRETS = [
    "airflow-oidc-okta-client-secret",
    "airflow-oidc-oidc-client-secret",
    "airflow-oidc-keycloak-client-secret",
    "airflow-oidc-airflow-api-secret-key",
    "airflow-oidc-airflow-jwt-secret",
]


def spec_of(stack: str) -> Any:
    # `secure:` values (kind google's clientSecret) become placeholders, as `pulumi up` would decrypt them.
    return spec_from_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")


def in_secret_manager(run: Run) -> bool:
    """The stack keeps the client secret in Google Secret Manager (`clientSecret.store: gcp-secret-manager`)."""
    return spec_of(run.stack).clientSecret.store == "gcp-secret-manager"


def client_secret_resource(run: Run) -> str | None:
    """The RandomPassword the kind declares as the client secret (`airflow-oidc-<kind>-client-secret`)."""
    names = [
        r.name
        for r in run.of_type("random:index/randomPassword:RandomPassword")
        if r.name.endswith("-client-secret") and not r.name.startswith("airflow-oidc-airflow-")
    ]
    assert len(names) <= 1, names
    return names[0] if names else None


def client_secret_value(run: Run) -> str:
    """The client secret Airflow must get: the kind's RandomPassword, or Entra's newest password slot."""
    slots = run.of_type(ENTRA_PASSWORD)
    if slots:
        return entra_password_value(max(slots, key=lambda slot: int(slot.inputs["rotateWhenChanged"]["period"])))
    generated = client_secret_resource(run)
    # Otherwise it comes from the stack config (kind google: `idp.clientSecret: {secure: ...}`).
    return fake_secret(generated) if generated else fake_secret("secure:airflow-oidc:spec")


def entra_password_value(password: Registration) -> str:
    """The value Entra generated for an ApplicationPassword (as the mocks generate it)."""
    from components.idp.azuread import AzureadIdp

    computed = AzureadIdp.mock_outputs(ENTRA_PASSWORD, password.name, password.inputs)
    assert computed is not None
    return str(computed["value"])


def release_values(run: Run) -> dict[str, Any]:
    return run.one(RELEASE).inputs["values"]


@pytest.mark.parametrize("path", STACK_FILES, ids=stack_name)
def test_every_stack_file_declares_one_release_and_its_secrets(runs: dict[str, Run], path: Any) -> None:
    run = runs[stack_name(path)]
    release = run.one(RELEASE)
    assert release.inputs["chart"] == "airflow"
    assert release.inputs["repositoryOpts"] == {"repo": "https://airflow.apache.org"}
    assert release.inputs["version"] == spec_of(run.stack).airflow.chartVersion
    # Service accounts' credential Secrets (`airflow-sa-<name>`) are pinned in tests/test_service_accounts.py.
    declared = sorted(
        name
        for name in (secret.inputs["metadata"]["name"] for secret in run.of_type(SECRET))
        if not name.startswith("airflow-sa-")
    )
    synced = sorted(e.inputs["spec"]["target"]["name"] for e in run.of_type(EXTERNAL_SECRET))
    if in_secret_manager(run):
        # The operator writes the client secret's Secret: the program declares none holding it.
        assert declared == ["airflow-api-secret-key", "airflow-fernet-key", "airflow-jwt-secret"]
        assert synced == ["airflow-oidc-client"]
    else:
        assert declared == ["airflow-api-secret-key", "airflow-fernet-key", "airflow-jwt-secret", "airflow-oidc-client"]
        assert synced == []
    # The release waits for the Secrets it references (and for the ExternalSecret that writes one).
    secret_urns = {secret.urn for secret in run.of_type(SECRET) + run.of_type(EXTERNAL_SECRET)}
    assert secret_urns <= set(release.dependencies)
    # One ConfigMap: the auth-manager module every Airflow container mounts (tests/test_service_accounts.py).
    config_maps = run.of_type("kubernetes:core/v1:ConfigMap")
    assert [config_map.inputs["metadata"]["name"] for config_map in config_maps] == ["airflow-oidc-auth"]
    assert config_maps[0].urn in release.dependencies


@pytest.mark.parametrize("path", STACK_FILES, ids=stack_name)
def test_generated_secrets_never_travel_in_plaintext(runs: dict[str, Run], path: Any) -> None:
    run = runs[stack_name(path)]
    secrets = [fake_secret(name) for name in GENERATED_SECRETS if any(r.name == name for r in run.resources)]
    secrets += [entra_password_value(password) for password in run.of_type(ENTRA_PASSWORD)]
    fernet = run.named("airflow-oidc-airflow-fernet-key")
    assert fernet.type == "random:index/randomBytes:RandomBytes"
    assert secrets, "the mock secrets were not generated"
    for resource in run.resources:
        for secret in secrets:
            assert plain_occurrences(resource.raw_inputs, secret) == [], f"{secret} in plaintext in {resource.name}"
    for urn, outputs in run.outputs.items():
        for secret in secrets:
            assert plain_occurrences(outputs, secret) == [], f"secret in plaintext in the outputs of {urn}"
    # The client secret reaches Secret data and secret-marked IdP inputs, and nothing else.
    client_secret = client_secret_value(run)
    holders = {r.type for r in run.resources if client_secret in json.dumps(r.inputs)}
    assert holders <= {SECRET, OKTA_APP, KEYCLOAK_CLIENT, SECRET_VERSION}, holders
    assert client_secret not in release_values(run)["apiServer"]["apiServerConfig"]
    if in_secret_manager(run):
        # Only the secret-marked Secret Manager version holds it; no output at all carries it.
        assert holders == {SECRET_VERSION}, holders
        assert "clientSecret" not in run.stack_outputs
        assert all(client_secret not in json.dumps(outputs) for outputs in run.outputs.values())
    else:
        assert is_secret(run.stack_outputs["clientSecret"])


def test_client_secret_reaches_the_api_server_only(runs: dict[str, Run]) -> None:
    for run in runs.values():
        values = release_values(run)
        assert "secret" not in values and "extraEnv" not in values
        # Every container's env carries PYTHONPATH for the auth-manager module, and nothing else.
        assert values["env"] == [{"name": "PYTHONPATH", "value": "/opt/airflow/airflow-oidc"}]
        env = {entry["name"]: entry for entry in values["apiServer"]["env"]}
        # With Secret Manager the key names the pinned version (the mocks' first version is "1").
        key = "client-secret-v1" if in_secret_manager(run) else "client-secret"
        assert env["AIRFLOW_OIDC_CLIENT_SECRET"] == {
            "name": "AIRFLOW_OIDC_CLIENT_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "airflow-oidc-client", "key": key}},
        }
        # The spec's (prod's defaults give the ingress controllers' range; `*` elsewhere by default).
        assert env["FORWARDED_ALLOW_IPS"]["value"] == spec_of(run.stack).airflow.forwardedAllowIps
        assert (env["FORWARDED_ALLOW_IPS"]["value"] == "*") == (not spec_of(run.stack).is_prod)
        if in_secret_manager(run):
            version = run.one(SECRET_VERSION)
            assert is_secret(version.raw_inputs["secretData"])
            assert version.inputs["secretData"] == client_secret_value(run)
            continue
        secret = run.named("airflow-oidc-airflow-secret-oidc-client-secret")
        assert is_secret(secret.raw_inputs["stringData"])
        assert secret.inputs["stringData"] == {"client-secret": client_secret_value(run)}


def created_group_id(group: Registration) -> str:
    """The id the mocked Okta gives a group the program creates."""
    return str((OktaIdp.mock_outputs(group.type, group.name, group.inputs) or {})["id"])


def test_okta_org_server_groups_assignments_and_claim_match_access(runs: dict[str, Run]) -> None:
    run, spec = runs["dev"], spec_of("dev")
    groups = run.of_type("okta:group/group:Group")
    assert sorted(g.inputs["name"] for g in groups) == sorted(rule.group for rule in spec.access)
    ids = {g.inputs["name"]: created_group_id(g) for g in groups}
    app = run.one(OKTA_APP)
    # The claim selects the created groups BY ID (an expression), emitting their names.
    assert app.inputs["groupsClaim"] == {
        "type": "EXPRESSION",
        "name": "groups",
        "value": okta_groups_expression([ids[rule.group] for rule in spec.access]),
    }
    admins, engineers, analysts = ids["payments-airflow-admins"], ids["payments-engineers"], ids["payments-analysts"]
    assert (
        app.inputs["groupsClaim"]["value"]
        == f'getFilteredGroups({{"{admins}","{engineers}","{analysts}"}}, "group.name", 3)'
    )
    assignments = run.one("okta:index/appGroupAssignments:AppGroupAssignments")
    assert len(assignments.inputs["groups"]) == len(spec.access) == len(ids)
    assert assignments.inputs["appId"] == fake(app.name, "id")
    assert sorted(g["id"] for g in assignments.inputs["groups"]) == sorted(ids.values())
    assert not run.of_type("okta:auth/serverClaim:ServerClaim"), "the org server needs no custom claim"
    assert "issuerMode" not in app.inputs, "an okta.com org keeps Okta's default issuer (ORG_URL)"


def test_okta_app_registers_exactly_airflows_callback(runs: dict[str, Run]) -> None:
    for stack in ("dev", "prod"):
        app = runs[stack].one(OKTA_APP).inputs
        host = spec_of(stack).hostname
        assert app["redirectUris"] == [f"https://{host}/auth/oauth-authorized/okta"]
        assert app["postLogoutRedirectUris"] == [f"https://{host}/auth/login/"]
        assert app["grantTypes"] == ["authorization_code"]
        assert app["responseTypes"] == ["code"]
        assert app["wildcardRedirect"] == "DISABLED"
        assert app["pkceRequired"] is True
        assert app["implicitAssignment"] is False
        assert is_secret(runs[stack].one(OKTA_APP).raw_inputs["clientBasicSecret"])


def test_okta_custom_server_claim_scope_and_policy_are_scoped_to_this_client(runs: dict[str, Run]) -> None:
    run, spec = runs["prod"], spec_of("prod")
    claim = run.one("okta:auth/serverClaim:ServerClaim").inputs
    scope = run.one("okta:auth/serverScope:ServerScope").inputs
    policy = run.one("okta:auth/serverPolicy:ServerPolicy").inputs
    rule = run.one("okta:auth/serverPolicyRule:ServerPolicyRule").inputs
    expected_groups = [r.group for r in spec.access] + list(spec.signIn.extraGroups)
    # createGroups false: each looked up by exact name among OKTA_GROUPs, then selected by that id.
    looked_up = {args["q"]: args for token, args in run.invokes if token == "okta:index/getGroups:getGroups"}
    assert sorted(looked_up) == sorted(expected_groups)
    assert {args["type"] for args in looked_up.values()} == {"OKTA_GROUP"}
    ids = [mock_group_id(f"OKTA_GROUP:{group}#0") for group in expected_groups]
    assert [g["id"] for g in mock_groups("payments-oncall", "OKTA_GROUP")][1:] != ids[1:2], "the neighbour is skipped"
    assert claim["value"] == okta_groups_expression(ids)
    assert claim["valueType"] == "EXPRESSION" and "groupFilterType" not in claim
    assert claim["claimType"] == "IDENTITY" and claim["alwaysIncludeInToken"] is True
    assert claim["name"] == scope["name"] == "airflow_prod_groups"
    assert claim["scopes"] == [scope["name"]]
    assert claim["authServerId"] == scope["authServerId"] == policy["authServerId"] == "default"
    assert policy["clientWhitelists"] == [fake(run.one(OKTA_APP).name, "0oa")]
    assert rule["grantTypeWhitelists"] == ["authorization_code"]
    assert rule["accessTokenLifetimeMinutes"] == 15
    assert scope["name"] in rule["scopeWhitelists"]
    # Existing groups are looked up, never created, when createGroups is false; assigned by the same ids.
    assert not run.of_type("okta:group/group:Group")
    assigned = [g["id"] for g in run.one("okta:index/appGroupAssignments:AppGroupAssignments").inputs["groups"]]
    assert assigned == ids


def test_custom_server_names_are_unique_per_stack() -> None:
    config, secret_keys = stack_config(ROOT / "stacks" / "Pulumi.prod.yaml")
    names = {}
    for stack in ("payments-prod", "risk-prod"):
        run = run_program(stack, config, secret_keys)
        names[stack] = (
            run.one("okta:auth/serverClaim:ServerClaim").inputs["name"],
            run.one("okta:auth/serverScope:ServerScope").inputs["name"],
            run.one("okta:auth/serverPolicy:ServerPolicy").inputs["name"],
        )
        # Airflow requests the scope and reads the claim that this stack declared.
        rendered = release_values(run)["apiServer"]["apiServerConfig"]
        assert f'ROLE_CLAIM = "{names[stack][0]}"' in rendered
        assert f'"{names[stack][1]}"' in rendered.split("SCOPES = ", 1)[1].split("\n", 1)[0]
    assert set(names["payments-prod"]).isdisjoint(names["risk-prod"])


def fernet_protection(run: Run) -> tuple[bool, list[bool]]:
    """The protect option of the Fernet key's random bytes and of its Secret."""
    secret = [s.protect for s in run.of_type(SECRET) if s.inputs["metadata"]["name"] == "airflow-fernet-key"]
    return run.named("airflow-oidc-airflow-fernet-key").protect, secret


def test_prod_protects_identity_resources_and_the_fernet_key_where_its_data_outlives_the_release(
    runs: dict[str, Run],
) -> None:
    assert runs["prod"].one(OKTA_APP).protect is True
    assert runs["dev"].one(OKTA_APP).protect is False
    for stack, run in runs.items():
        values = release_values(run)
        external = "metadataSecretName" in (values.get("data") or {})
        # The bundled Postgres dies with the release: a throwaway stack can be destroyed.
        expected = stack.endswith("prod") or external
        assert fernet_protection(run) == (expected, [expected]), stack
    config, secret_keys = stack_config(ROOT / "stacks" / "Pulumi.dev.yaml")
    spec = json.loads(config["airflow-oidc:spec"])
    spec["airflow"]["database"] = {"secretName": "airflow-metadata-db"}
    external_dev = run_program("dev", {**config, "airflow-oidc:spec": json.dumps(spec)}, secret_keys)
    assert fernet_protection(external_dev) == (True, [True]), "an external database outlives the release"
    assert external_dev.one(OKTA_APP).protect is False


def test_prod_protects_groups_it_creates() -> None:
    config, secret_keys = stack_config(ROOT / "stacks" / "Pulumi.prod.yaml")
    spec = json.loads(config["airflow-oidc:spec"])
    spec["idp"]["createGroups"] = True
    run = run_program("prod", {**config, "airflow-oidc:spec": json.dumps(spec)}, secret_keys)
    groups = run.of_type("okta:group/group:Group")
    assert len(groups) == 4 and all(group.protect for group in groups)


def test_two_runs_declare_identical_inputs() -> None:
    for path in STACK_FILES:
        first = run_program(stack_name(path), *stack_config(path))
        second = run_program(stack_name(path), *stack_config(path))
        # Registration order is asynchronous; the declarations themselves must not differ.
        declared = [{(r.type, r.name): (r.raw_inputs, r.protect) for r in run.resources} for run in (first, second)]
        assert len(declared[0]) == len(first.resources)
        assert declared[0] == declared[1]


def test_release_values_carry_the_sso_wiring(runs: dict[str, Run]) -> None:
    values = release_values(runs["prod"])
    assert values["migrateDatabaseJob"]["useHelmHooks"] is False
    assert values["createUserJob"]["enabled"] is False
    assert values["webserver"]["defaultUser"]["enabled"] is False
    assert values["postgresql"]["enabled"] is False
    assert values["data"] == {"metadataSecretName": "airflow-metadata-db"}
    assert values["fernetKeySecretName"] == "airflow-fernet-key"
    assert values["apiSecretKeySecretName"] == "airflow-api-secret-key"
    assert values["jwtSecretName"] == "airflow-jwt-secret"
    assert values["config"]["api"]["base_url"] == "https://airflow.payments.example.com"
    assert values["config"]["fab"] == {
        "enable_proxy_fix": "True",
        "session_lifetime_minutes": 60,
        "session_max_lifetime_minutes": 480,
    }
    assert values["config"]["api_auth"]["jwt_expiration_time"] == 480 * 60
    assert values["apiServer"]["replicas"] == 2
    assert values["scheduler"]["replicas"] == 2, "airflow.values are merged last"
    assert set(values["scheduler"]) == {"replicas", "podAnnotations"}, "merged key by key: the program's stay"
    assert values["ingress"]["apiServer"]["hosts"] == [
        {"name": "airflow.payments.example.com", "tls": {"enabled": True, "secretName": "airflow-tls"}}
    ]
    assert "{{" not in values["apiServer"]["apiServerConfig"]
    version = values["apiServer"]["podAnnotations"][VERSION_ANNOTATION]
    assert len(version) == 16 and version == runs["prod"].stack_outputs["configVersion"]


def test_dev_uses_cert_manager_and_the_bundled_database(runs: dict[str, Run]) -> None:
    values = release_values(runs["dev"])
    ingress = values["ingress"]["apiServer"]
    assert ingress["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["hosts"][0]["tls"] == {"enabled": True, "secretName": "airflow-tls"}
    assert values["postgresql"]["enabled"] is True and "data" not in values


def test_version_annotation_changes_with_the_access_mapping() -> None:
    config, secret_keys = stack_config(ROOT / "stacks" / "Pulumi.dev.yaml")
    spec = json.loads(config["airflow-oidc:spec"])
    before = release_values(run_program("dev", config, secret_keys))["apiServer"]["podAnnotations"]
    spec["access"][2]["role"] = "User"
    changed = {**config, "airflow-oidc:spec": json.dumps(spec)}
    after = release_values(run_program("dev", changed, secret_keys))["apiServer"]["podAnnotations"]
    assert before[VERSION_ANNOTATION] != after[VERSION_ANNOTATION]


def test_structured_outputs_expose_access_redirects_and_client(runs: dict[str, Run]) -> None:
    outputs = runs["prod"].stack_outputs
    assert outputs["access"] == [
        {"group": "payments-airflow-admins", "role": "Admin"},
        {"group": "payments-oncall", "role": "Op"},
        {"group": "payments-engineers", "role": "User"},
    ]
    assert outputs["redirectUris"] == ["https://airflow.payments.example.com/auth/oauth-authorized/okta"]
    assert outputs["issuer"] == "https://acme.okta.com/oauth2/default"
    assert outputs["clientId"].startswith("0oa-")
    local = runs["local-oidc"].stack_outputs
    assert local["registration"]["redirectUris"] == ["https://localhost:8443/auth/oauth-authorized/oidc"]
    assert local["registration"]["groupsClaimMustContain"] == [
        "airflow-admins",
        "airflow-operators",
        "airflow-users",
        "airflow-viewers",
    ]
