"""Rollouts: what rolls when, and upgrades that cannot fail half-way on an immutable Job template.

The chart (1.19.0) builds each long-running component's pod template from that component's own values
(`apiServer.*`, `scheduler.*`, ...) plus the global ones; the migration Job's pod template
(`templates/jobs/migrate-database-job.yaml`) reads only global values and `migrateDatabaseJob.*`. A Job's
pod template is immutable, and with `useHelmHooks: false` the Job keeps its fixed name for
`ttlSecondsAfterFinished` (300 s): a value it reads that changes between two `up`s fails the second
Helm upgrade ("field is immutable", apache/airflow#27561). So what changes between deployments must
live under the long-running components' keys only.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.airflow_values import VERSION_ANNOTATION, helm_values
from components.contract import client_contract
from components.service_accounts import AUTH_VERSION_ANNOTATION, ROLLED_COMPONENTS, auth_module_source, auth_version
from components.spec import parse_spec
from tests.test_chart_schema import errors, helm_merge

# What migrate-database-job.yaml puts in `spec.template` (directly or through its helpers: the image, the
# security context, the service account, `custom_airflow_environment`, `standard_airflow_environment`,
# the config mount): global keys and its own `migrateDatabaseJob.*`, never another component's keys.
MIGRATION_JOB_POD_TEMPLATE_READS = (
    "labels",
    "airflowPodAnnotations",
    "migrateDatabaseJob",
    "images",
    "defaultAirflowRepository",
    "defaultAirflowTag",
    "defaultAirflowDigest",
    "airflowVersion",
    "registry",
    "nodeSelector",
    "affinity",
    "tolerations",
    "topologySpreadConstraints",
    "securityContext",
    "securityContexts",
    "uid",
    "gid",
    "env",
    "secret",
    "extraEnv",
    "extraEnvFrom",
    "enableBuiltInSecretEnvVars",
    "data",
    "executor",
    "fernetKey",
    "fernetKeySecretName",
    "apiSecretKeySecretName",
    "jwtSecretName",
    "webserverSecretKeySecretName",
    "volumes",
    "volumeMounts",
    "airflowConfigAnnotations",
)


def spec(**extra: Any) -> Any:
    raw = {
        "environment": "prod",
        "team": "payments",
        "hostname": "airflow.payments.example.com",
        "idp": {"kind": "oidc", "issuer": "https://login.example.com", "clientId": "airflow"},
        "access": [{"group": "payments-airflow-admins", "role": "Admin"}],
        "airflow": {"tls": {"secretName": "t"}, "database": {"secretName": "db"}},
        **extra,
    }
    return parse_spec(raw, "stacks/Pulumi.payments-prod.yaml")


def rendered(
    chart_defaults: dict[str, Any], *, module: str, settings: str, secret_version: str = "0123456789abcdef"
) -> dict[str, Any]:
    """The merged values Helm renders the templates from, for one auth-module version and one config version."""
    parsed = spec()
    contract = client_contract(parsed, stack="payments-prod")
    values = helm_values(
        parsed, contract, client_id="airflow", version=secret_version, auth_version=auth_version(module, settings)
    )
    return helm_merge(chart_defaults, values)


def migration_job_pod_template_inputs(values: dict[str, Any]) -> dict[str, Any]:
    """The values the migration Job's pod template is rendered from."""
    return {key: values.get(key) for key in MIGRATION_JOB_POD_TEMPLATE_READS}


def changed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose value differs (maps compared key by key, anything else as a whole)."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            path
            for key in sorted(set(before) | set(after), key=str)
            for path in changed_paths(before.get(key), after.get(key), f"{prefix}{key}.")
        ]
    return [] if before == after else [prefix.rstrip(".")]


def test_a_new_auth_module_rolls_the_long_running_components_and_leaves_the_migration_job_alone(
    chart_defaults: dict[str, Any], chart_schema: dict[str, Any]
) -> None:
    """Two auth-module versions (a new module release and new settings): every long-running component's
    pod template changes, the migration Job's pod template inputs do not change at all."""
    module = auth_module_source()
    before = rendered(chart_defaults, module=module, settings='{"version": 1, "serviceAccounts": null}')
    after = rendered(chart_defaults, module=module + "\n# the next release\n", settings='{"version": 1, "x": 1}')
    assert errors(chart_schema, before) == [] and errors(chart_schema, after) == []

    changed = changed_paths(before, after)
    assert changed == sorted(f"{component}.podAnnotations.{AUTH_VERSION_ANNOTATION}" for component in ROLLED_COMPONENTS)
    assert migration_job_pod_template_inputs(before) == migration_job_pod_template_inputs(after)
    # No read of the Job template is under a component's own keys: what changed cannot reach it.
    assert not {path.split(".")[0] for path in changed} & set(MIGRATION_JOB_POD_TEMPLATE_READS)
    # The program puts nothing on every pod (the chart would copy it into the Job's template).
    assert before["airflowPodAnnotations"] == after["airflowPodAnnotations"] == {}


def test_a_new_client_secret_version_rolls_only_the_api_server(chart_defaults: dict[str, Any]) -> None:
    """The config-version annotation (the SSO config, the client, the secret's version) is the api-server's alone."""
    module, settings = auth_module_source(), '{"version": 1, "serviceAccounts": null}'
    before = rendered(chart_defaults, module=module, settings=settings, secret_version="1111111111111111")
    after = rendered(chart_defaults, module=module, settings=settings, secret_version="2222222222222222")
    assert changed_paths(before, after) == [f"apiServer.podAnnotations.{VERSION_ANNOTATION}"]


@pytest.mark.parametrize("component", ["migrateDatabaseJob", "createUserJob", "databaseCleanup", "cleanup"])
def test_jobs_get_no_program_annotation(chart_defaults: dict[str, Any], component: str) -> None:
    """The chart's Jobs and CronJobs: the program sets no pod annotation of theirs."""
    values = rendered(chart_defaults, module=auth_module_source(), settings="{}")
    for key in ("annotations", "podAnnotations", "jobAnnotations"):
        assert values[component].get(key) in (None, {}), (component, key)
