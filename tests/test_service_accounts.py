"""Service accounts (`serviceAccounts`): the machine identity per kind, the auth-manager module's
ConfigMap mounted into every Airflow container, and refusals naming the kind and the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.env_defaults import resolve_spec
from components.service_accounts import AUTH_MODULE_SOURCE, auth_version
from components.spec import SpecError, parse_spec
from tests.conftest import ROOT
from tests.mock_engine import Run, fake, fake_secret, is_secret, plain_occurrences, run_program, stack_config
from tests.test_chart_schema import errors, helm_merge

OKTA_APP = "okta:app/oAuth:OAuth"
SCOPE = "okta:auth/serverScope:ServerScope"
POLICY = "okta:auth/serverPolicy:ServerPolicy"
RULE = "okta:auth/serverPolicyRule:ServerPolicyRule"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"
ACCOUNTS = [
    {"name": "release-pipeline", "role": "Op", "description": "Triggers the release DAGs"},
    {"name": "dashboards", "role": "Viewer"},
]


def stack_file_spec(stack: str) -> tuple[dict[str, str], list[str], dict[str, Any]]:
    config, secret_keys = stack_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    return config, secret_keys, json.loads(config["airflow-oidc:spec"])


def run_with(stack: str, **changes: Any) -> Run:
    """The stack file's spec with `changes` at its top level, run under mocks as stack `stack`."""
    config, secret_keys, spec = stack_file_spec(stack)
    return run_program(stack, {**config, "airflow-oidc:spec": json.dumps({**spec, **changes})}, secret_keys)


@pytest.fixture(scope="module")
def okta_custom() -> Run:
    """stacks/Pulumi.prod.yaml (Okta custom authorization server `default`) with two service accounts."""
    return run_with("prod", serviceAccounts=ACCOUNTS)


@pytest.fixture(scope="module")
def oidc_local() -> Run:
    """stacks/Pulumi.local-oidc.yaml as it is (two service accounts, registered by hand)."""
    config, secret_keys, _ = stack_file_spec("local-oidc")
    return run_program("local-oidc", config, secret_keys)


def service_apps(run: Run) -> list[Any]:
    return [app for app in run.of_type(OKTA_APP) if app.inputs["type"] == "service"]


def settings_of(run: Run) -> dict[str, Any]:
    config_map = run.one(CONFIG_MAP)
    return dict(json.loads(config_map.inputs["data"]["airflow_oidc_auth.json"]))


def values_of(run: Run) -> dict[str, Any]:
    return dict(run.one(RELEASE).inputs["values"])


# --- Okta: service apps, this stack's API scope, a policy rule for exactly those clients -------


def test_okta_service_app_per_account_with_client_credentials_only(okta_custom: Run) -> None:
    apps = {app.name: app for app in service_apps(okta_custom)}
    assert sorted(apps) == ["airflow-oidc-okta-sa-dashboards", "airflow-oidc-okta-sa-release-pipeline"]
    for account in ACCOUNTS:
        app = apps[f"airflow-oidc-okta-sa-{account['name']}"]
        assert app.inputs["label"] == f"Airflow (payments-prod) service account {account['name']}"
        assert app.inputs["grantTypes"] == ["client_credentials"]
        assert app.inputs["responseTypes"] == ["token"]
        assert app.inputs["tokenEndpointAuthMethod"] == "client_secret_basic"
        assert "redirectUris" not in app.inputs and "loginUri" not in app.inputs
        # The secret Okta checks is the program's, marked secret on the wire, and rotates.
        assert is_secret(app.raw_inputs["clientBasicSecret"])
        assert app.inputs["clientBasicSecret"] == fake_secret(f"{app.name}-secret")
        assert "clientSecret" in app.additional_secret_outputs
        assert app.protect  # prod: replacing it would break every pipeline using it


def test_okta_scope_and_policy_rule_allow_exactly_the_service_accounts(okta_custom: Run) -> None:
    ids = okta_custom.stack_outputs["serviceAccountClientIds"]
    assert ids == {name: fake(f"airflow-oidc-okta-sa-{name}", "0oa") for name in ("release-pipeline", "dashboards")}
    scopes = {scope.name: scope.inputs for scope in okta_custom.of_type(SCOPE)}
    assert scopes["airflow-oidc-okta-sa-scope"] == {
        "authServerId": "default",
        "name": "airflow_prod_api",
        "description": "Airflow API (prod): service accounts",
        "consent": "IMPLICIT",
        "metadataPublish": "NO_CLIENTS",
    }
    policies = {policy.name: policy.inputs for policy in okta_custom.of_type(POLICY)}
    automation = policies["airflow-oidc-okta-sa-policy"]
    assert sorted(automation["clientWhitelists"]) == sorted(ids.values())
    assert automation["name"] == "airflow-prod-automation"
    # The people's policy names the web app alone: a service account cannot use the code flow.
    web_client = okta_custom.stack_outputs["clientId"]
    assert policies["airflow-oidc-okta-policy"]["clientWhitelists"] == [web_client]
    assert web_client not in automation["clientWhitelists"]
    rules = {rule.name: rule.inputs for rule in okta_custom.of_type(RULE)}
    rule = rules["airflow-oidc-okta-sa-policy-rule"]
    assert rule["grantTypeWhitelists"] == ["client_credentials"]
    assert rule["groupWhitelists"] == ["EVERYONE"]
    assert rule["scopeWhitelists"] == ["airflow_prod_api"]
    assert rule["accessTokenLifetimeMinutes"] == 15
    assert rule["policyId"] == fake("airflow-oidc-okta-sa-policy", "id")


def test_okta_settings_verify_cid_audience_and_this_stacks_scope(okta_custom: Run) -> None:
    ids = okta_custom.stack_outputs["serviceAccountClientIds"]
    settings = settings_of(okta_custom)["serviceAccounts"]
    assert settings["issuer"] == "https://acme.okta.com/oauth2/default"
    assert settings["audience"] == "api://default"
    assert settings["identityClaim"] == "cid"
    assert (settings["scopeClaim"], settings["requiredScope"]) == ("scp", "airflow_prod_api")
    assert settings["accounts"] == {
        ids["release-pipeline"]: {"name": "release-pipeline", "role": "Op"},
        ids["dashboards"]: {"name": "dashboards", "role": "Viewer"},
    }


def test_okta_credentials_go_to_the_secret_store_and_nowhere_else(okta_custom: Run) -> None:
    for account in ACCOUNTS:
        value = fake_secret(f"airflow-oidc-okta-sa-{account['name']}-secret")
        stored = okta_custom.named(f"airflow-oidc-airflow-secret-sa-{account['name']}")
        assert stored.inputs["metadata"] == {"name": f"airflow-sa-{account['name']}", "namespace": "airflow-payments"}
        assert stored.inputs["stringData"] == {"client-secret": value}
        holders = {r.type for r in okta_custom.resources if value in json.dumps(r.inputs)}
        assert holders == {SECRET, OKTA_APP}
        for resource in okta_custom.resources:
            assert plain_occurrences(resource.raw_inputs, value) == [], resource.name
        for outputs in okta_custom.outputs.values():
            assert plain_occurrences(outputs, value) == []
        # No Airflow container mounts it: the values name no such Secret.
        assert f"airflow-sa-{account['name']}" not in json.dumps(values_of(okta_custom))


def test_okta_outputs_list_names_roles_and_client_ids_only(okta_custom: Run) -> None:
    outputs = okta_custom.stack_outputs
    assert outputs["serviceAccounts"] == [
        {"name": "release-pipeline", "role": "Op"},
        {"name": "dashboards", "role": "Viewer"},
    ]
    assert set(outputs["serviceAccountClientIds"].values()) == {
        fake(app.name, "0oa") for app in service_apps(okta_custom)
    }
    assert not any(key.lower().endswith("secret") for key in outputs if key.startswith("serviceAccount"))


# --- oidc: registered by hand; the registration says exactly what to register -----------------


def test_oidc_registration_lists_each_account_to_register(oidc_local: Run) -> None:
    registration = oidc_local.stack_outputs["serviceAccountRegistration"]
    assert [(entry["name"], entry["role"], entry["clientId"]) for entry in registration] == [
        ("ci-deploy", "Op", "airflow-local-ci-deploy"),
        ("reporting", "Viewer", "airflow-local-reporting"),
    ]
    for entry in registration:
        assert entry["grantTypes"] == ["client_credentials"]
        assert entry["resource"] == "https://localhost:8443"
        assert entry["accessToken"]["aud"] == "https://localhost:8443"
        assert entry["accessToken"]["client_id"] == entry["clientId"]
        assert entry["accessToken"]["iss"] == "http://127.0.0.1:9400"
    settings = settings_of(oidc_local)["serviceAccounts"]
    assert settings["identityClaim"] == "client_id" and settings["requiredScope"] is None
    assert settings["accounts"] == {
        "airflow-local-ci-deploy": {"name": "ci-deploy", "role": "Op"},
        "airflow-local-reporting": {"name": "reporting", "role": "Viewer"},
    }
    # Nothing to keep: the credential stays between the provider and the CI job.
    assert not [s for s in oidc_local.of_type(SECRET) if "-sa-" in s.inputs["metadata"]["name"]]


def test_oidc_client_id_and_audience_can_be_given(tmp_path: Path) -> None:
    config, secret_keys, spec = stack_file_spec("local-oidc")
    spec["idp"]["serviceAccountAudience"] = "api://airflow-local"
    spec["serviceAccounts"] = [{"name": "ci", "role": "User", "clientId": "0oa-given-by-the-idp"}]
    run = run_program("local-oidc", {**config, "airflow-oidc:spec": json.dumps(spec)}, secret_keys)
    settings = settings_of(run)["serviceAccounts"]
    assert settings["audience"] == "api://airflow-local"
    assert settings["accounts"] == {"0oa-given-by-the-idp": {"name": "ci", "role": "User"}}


# --- the module: one ConfigMap, mounted into every Airflow container, on PYTHONPATH ------------


@pytest.mark.parametrize("stack", ["okta_custom", "oidc_local"])
def test_auth_module_is_mounted_into_every_airflow_container(stack: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(stack)
    config_map = run.one(CONFIG_MAP)
    assert config_map.inputs["metadata"]["name"] == "airflow-oidc-auth"
    data = config_map.inputs["data"]
    assert data["airflow_oidc_auth.py"] == AUTH_MODULE_SOURCE.read_text()
    values = values_of(run)
    # Top-level volumes/volumeMounts/env: the chart gives them to the api-server, scheduler,
    # dag-processor, triggerer, workers and jobs alike; no component-level copy is needed.
    assert values["volumes"] == [{"name": "airflow-oidc-auth", "configMap": {"name": "airflow-oidc-auth"}}]
    assert values["volumeMounts"] == [
        {"name": "airflow-oidc-auth", "mountPath": "/opt/airflow/airflow-oidc", "readOnly": True}
    ]
    assert values["env"] == [{"name": "PYTHONPATH", "value": "/opt/airflow/airflow-oidc"}]
    assert values["config"]["core"]["auth_manager"] == "airflow_oidc_auth.OidcAuthManager"
    # The jobs that run Airflow get the top-level env only with applyCustomEnv (owned by the program).
    assert values["migrateDatabaseJob"]["applyCustomEnv"] is True
    assert values["databaseCleanup"]["applyCustomEnv"] is True
    expected = auth_version(data["airflow_oidc_auth.py"], data["airflow_oidc_auth.json"])
    # On each long-running component's pods, never on every pod: the migration Job's template is immutable.
    for component in ("apiServer", "scheduler", "dagProcessor", "triggerer", "workers"):
        assert values[component]["podAnnotations"]["airflow-oidc/auth-version"] == expected, component
    assert "airflowPodAnnotations" not in values
    release = run.one(RELEASE)
    assert config_map.urn in release.dependencies
    # No secret in the ConfigMap: the module and its JSON hold public verification constants only.
    for resource in run.of_type(SECRET):
        for secret_value in resource.inputs["stringData"].values():
            assert secret_value not in json.dumps(data)


def test_values_with_service_accounts_validate_against_the_chart_schema(
    okta_custom: Run, oidc_local: Run, chart_schema: dict[str, Any], chart_defaults: dict[str, Any]
) -> None:
    for run in (okta_custom, oidc_local):
        assert errors(chart_schema, helm_merge(chart_defaults, values_of(run))) == []


def test_a_changed_role_changes_the_settings_and_rolls_every_pod(okta_custom: Run) -> None:
    # User, not Admin: prod's defaults allow no service account Admin (allowedAdminServiceAccounts).
    changed = run_with("prod", serviceAccounts=[{**ACCOUNTS[0], "role": "User"}, ACCOUNTS[1]])
    before, after = settings_of(okta_custom), settings_of(changed)
    roles = {a["name"]: a["role"] for a in after["serviceAccounts"]["accounts"].values()}
    assert roles == {"release-pipeline": "User", "dashboards": "Viewer"}
    assert before != after
    annotation = "airflow-oidc/auth-version"
    for component in ("apiServer", "scheduler", "dagProcessor", "triggerer", "workers"):
        assert (
            values_of(changed)[component]["podAnnotations"][annotation]
            != values_of(okta_custom)[component]["podAnnotations"][annotation]
        ), component


def test_without_service_accounts_the_module_refuses_every_bearer_token() -> None:
    config, secret_keys, _ = stack_file_spec("dev")
    run = run_program("dev", config, secret_keys)
    assert settings_of(run) == {"version": 1, "serviceAccounts": None}
    assert not service_apps(run)
    assert "serviceAccounts" not in run.stack_outputs


# --- refusals: each names the key, the kind and why --------------------------------------------


def spec_with(stack: str, **changes: Any) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]["airflow-oidc:spec"]
    return {**raw, **changes}


def problems(raw: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        resolve_spec(raw, "stacks/Pulumi.test.yaml", ROOT / "stacks")  # with the environment's defaults
    return str(caught.value)


@pytest.mark.parametrize(
    "values",
    [
        {"volumes": []},
        {"volumeMounts": [{"name": "x", "mountPath": "/x"}]},
        {"env": [{"name": "PYTHONPATH", "value": "/elsewhere"}]},
        {"migrateDatabaseJob": {"applyCustomEnv": False}},
        {"airflowPodAnnotations": {"airflow-oidc/auth-version": "pinned"}},
        {"scheduler": {"podAnnotations": {"airflow-oidc/auth-version": "pinned"}}},
        {"workers": {"podAnnotations": {"airflow-oidc/auth-version": "pinned"}}},
        {"apiServer": {"podAnnotations": {"airflow-oidc/config-version": "pinned"}}},
        {"config": {"core": {"auth_manager": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"}}},
    ],
    ids=[
        "volumes",
        "volume-mounts",
        "env",
        "migrate-job-env",
        "auth-version",
        "scheduler-auth-version",
        "workers-auth-version",
        "api-server-config-version",
        "auth-manager",
    ],
)
def test_values_that_would_unmount_the_auth_module_are_refused(values: dict[str, Any]) -> None:
    raw = spec_with("local-oidc")
    raw["airflow"] = {**raw["airflow"], "values": values}
    assert "is owned by the program" in problems(raw)


def test_other_pod_annotations_are_still_yours() -> None:
    raw = spec_with("local-oidc")
    extra = {
        "airflowPodAnnotations": {"team": "data"},
        "scheduler": {"podAnnotations": {"team": "data"}},
        "apiServer": {"podAnnotations": {"prometheus.io/scrape": "true"}},
    }
    raw["airflow"] = {**raw["airflow"], "values": extra}
    spec = parse_spec(raw, "stacks/Pulumi.test.yaml")
    assert spec.airflow.values == extra


@pytest.mark.parametrize(
    ("stack", "idp", "accounts", "expected"),
    [
        (
            "dev",
            None,
            [{"name": "ci", "role": "Op"}],
            "airflow-oidc:spec.serviceAccounts: idp.kind okta with authorizationServer.mode: org cannot offer "
            "service accounts: Okta's org authorization server mints client-credentials access tokens only for "
            "Okta's own APIs",
        ),
        (
            "prod",
            {"authorizationServer": {"mode": "custom", "id": "aus1abc"}},
            [{"name": "ci", "role": "Op"}],
            "airflow-oidc:spec.serviceAccounts: idp.authorizationServer.audience is not set",
        ),
        (
            "local-oidc",
            None,
            [{"name": "ci_deploy", "role": "Op"}],
            "airflow-oidc:spec.serviceAccounts[0].name: 'ci_deploy' contains '_': people's Airflow usernames are "
            "`<provider>_<sub>`",
        ),
        (
            "local-oidc",
            None,
            [{"name": "CI", "role": "Op"}],
            "airflow-oidc:spec.serviceAccounts[0].name: 'CI' is not a service account name",
        ),
        (
            "local-oidc",
            None,
            [{"name": "ci", "role": "Op"}, {"name": "ci", "role": "Viewer"}],
            "airflow-oidc:spec.serviceAccounts[1].name: 'ci' is also serviceAccounts[0]",
        ),
        (
            "local-oidc",
            None,
            [{"name": "ci", "role": "Public"}],
            "airflow-oidc:spec.serviceAccounts[0].role: 'Public' is Airflow's role for anonymous requests",
        ),
        (
            "local-oidc",
            None,
            [{"name": "ci", "role": "Op", "githubRepository": "acme/pipelines"}],
            "airflow-oidc:spec.serviceAccounts[0].githubRepository: githubRepository is for idp.kind azuread only, "
            "not oidc",
        ),
        (
            "prod",
            None,
            [{"name": "ci", "role": "Op", "clientId": "0oa123"}],
            "airflow-oidc:spec.serviceAccounts[0].clientId: clientId is for idp.kind oidc only, not okta",
        ),
        (
            "local-oidc",
            None,
            [{"name": "ci", "role": "Op", "githubEnvironment": "production"}],
            "airflow-oidc:spec.serviceAccounts[0].githubEnvironment: githubEnvironment needs githubRepository",
        ),
    ],
    ids=[
        "okta-org-server",
        "okta-custom-server-no-audience",
        "underscore",
        "upper-case",
        "duplicate",
        "public-role",
        "github-on-oidc",
        "client-id-on-okta",
        "environment-without-repository",
    ],
)
def test_refused_service_accounts(stack: str, idp: dict[str, Any] | None, accounts: Any, expected: str) -> None:
    raw = spec_with(stack, serviceAccounts=accounts)
    if idp:
        raw["idp"] = {**raw["idp"], **idp}
    assert expected in problems(raw)


def test_kinds_without_service_accounts_say_so() -> None:
    from components.idp.base import SERVICE_ACCOUNTS_NOT_OFFERED, IdpModel

    class Other(IdpModel):
        kind: str = "other"

    assert Other(kind="other").service_accounts_refusal(None) == (  # type: ignore[arg-type]
        "idp.kind other does not create service accounts (yet): remove serviceAccounts"
    )
    google = SERVICE_ACCOUNTS_NOT_OFFERED["google"]
    assert "no client-credentials grant" in google and "Google's own APIs" in google


# --- `airflow-oidc plan`: service accounts and their roles, new or escalated ones risky ----------


def test_plan_lists_service_accounts_and_flags_new_or_escalated_ones_as_risky(okta_custom: Run) -> None:
    from components.plan import CHANGED, PRIVILEGE, diff_stack, fact_rows, facts_of

    def facts(accounts: list[dict[str, str]]) -> Any:
        result = {"stack": "prod", "file": "stacks/Pulumi.prod.yaml", "resources": [], "outputs": {}}
        if accounts:
            result["outputs"] = {"serviceAccounts": accounts}
        return facts_of(result, ())

    declared = facts(okta_custom.stack_outputs["serviceAccounts"])
    assert declared.service_accounts == {"release-pipeline": "Op", "dashboards": "Viewer"}
    assert ("service account `release-pipeline`", "Op") in fact_rows(declared)
    base = facts([{"name": "release-pipeline", "role": "Viewer"}, {"name": "legacy", "role": "Op"}])
    head = facts([{"name": "release-pipeline", "role": "Op"}, {"name": "nightly", "role": "User"}])
    changes = {(change.kind, change.message) for change in diff_stack(base, head, {})}
    assert changes == {
        (PRIVILEGE, "service account `release-pipeline`: Viewer → Op"),
        (PRIVILEGE, "service account `nightly` gains User (new)"),
        (CHANGED, "service account `legacy` removed (was Op)"),
    }
    lowered = {
        (c.kind, c.message) for c in diff_stack(head, facts([{"name": "release-pipeline", "role": "Viewer"}]), {})
    }
    assert (CHANGED, "service account `release-pipeline`: Op → Viewer (lower)") in lowered
    assert not [c for c in diff_stack(declared, declared, {}) if "service account" in c.message]
