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

import datetime
import functools
import hashlib
import json
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import components.airflow_oidc
from components.airflow_values import VERSION_ANNOTATION, helm_values, keyed_secret_digest, store_secret_key
from components.contract import client_contract
from components.service_accounts import AUTH_VERSION_ANNOTATION, ROLLED_COMPONENTS, auth_module_source, auth_version
from components.spec import parse_spec
from localdev.capture import api_server_client_secret
from tests.conftest import ROOT
from tests.mock_engine import Run, is_secret, run_program, stack_config
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


SPEC_AIRFLOW = {"tls": {"secretName": "t"}, "database": {"secretName": "db"}, "forwardedAllowIps": "10.42.0.0/16"}


def spec(**extra: Any) -> Any:
    raw = {
        "environment": "prod",
        "team": "payments",
        "hostname": "airflow.payments.example.com",
        "idp": {"kind": "oidc", "issuer": "https://login.example.com", "clientId": "airflow"},
        "access": [{"group": "payments-airflow-admins", "role": "Admin"}],
        "airflow": SPEC_AIRFLOW,
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


# --- every kind: a change of the secret Airflow reads rolls the api-server, and nothing else ----------

KIND_STACKS = {
    "okta": "dev",
    "oidc": "local-oidc",
    "keycloak": "search-prod",
    "azuread": "risk-prod",
    "google": "growth-prod",
}
"""One stack file per kind (the examples in stacks/)."""
DAY = datetime.date(2026, 12, 1)
NEXT_PERIOD = DAY + datetime.timedelta(days=90)
"""A day in the next rotation period of every example stack (rotationDays 90)."""
RELEASE = "kubernetes:helm.sh/v3:Release"


@contextmanager
def frozen_today(day: datetime.date) -> Iterator[None]:
    """The program's clock reads `day` (the composer's `datetime.date.today()`)."""

    class FrozenDate(datetime.date):
        @classmethod
        def today(cls) -> FrozenDate:
            return cls(day.year, day.month, day.day)

    original = components.airflow_oidc.datetime
    components.airflow_oidc.datetime = types.SimpleNamespace(date=FrozenDate)  # type: ignore[assignment]
    try:
        yield
    finally:
        components.airflow_oidc.datetime = original


@functools.cache
def run_kind(kind: str, day: datetime.date = DAY, spec_json: str = "{}") -> Run:
    """The kind's example stack run on `day`, with `spec_json`'s keys merged into its spec (`idp` key by key)."""
    stack = KIND_STACKS[kind]
    config, secret_keys = stack_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    spec = json.loads(config["airflow-oidc:spec"])
    for key, value in json.loads(spec_json).items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    config = {**config, "airflow-oidc:spec": json.dumps(spec), "gcp:project": config.get("gcp:project", "p-rollout")}
    # A given secret is set with `pulumi config set --secret --path`: the spec key is then a secret.
    secret_keys = sorted({*secret_keys, "airflow-oidc:spec"})
    with frozen_today(day):
        return run_program(stack, config, secret_keys)


def release_values(run: Run) -> dict[str, Any]:
    return dict(run.one(RELEASE).inputs["values"])


def roll_annotation(run: Run) -> str:
    return str(release_values(run)["apiServer"]["podAnnotations"][VERSION_ANNOTATION])


def given_secret(value: str) -> str:
    """A spec change giving the client secret `value` (the kinds whose spec takes one)."""
    return json.dumps({"idp": {"clientSecret": value}})


ROLLOUT_TABLE = [
    # (kind, what changes, before, after, the api-server rolls)
    *[
        pytest.param(kind, (DAY, "{}"), (DAY + datetime.timedelta(days=1), "{}"), False, id=f"{kind}-same-period")
        for kind in KIND_STACKS
    ],
    # The program's own secret turns over with the rotation period.
    *[
        pytest.param(kind, (DAY, "{}"), (NEXT_PERIOD, "{}"), True, id=f"{kind}-rotation")
        for kind in ("okta", "keycloak", "azuread")
    ],
    # A secret the program never rotates (registered by hand, or given): a new period changes nothing.
    pytest.param("oidc", (DAY, "{}"), (NEXT_PERIOD, "{}"), False, id="oidc-generated-never-rotates"),
    pytest.param("google", (DAY, "{}"), (NEXT_PERIOD, "{}"), False, id="google-given-never-rotates"),
    # A given secret edited (`pulumi config set --secret --path ...clientSecret`): it rolls.
    pytest.param(
        "oidc",
        (DAY, given_secret("first-secret")),
        (DAY, given_secret("second-secret")),
        True,
        id="oidc-given-secret-edited",
    ),
    pytest.param(
        "google",
        (DAY, given_secret("GOCSPX-first")),
        (DAY, given_secret("GOCSPX-second")),
        True,
        id="google-given-secret-edited",
    ),
    # The store switched: the same value, read from elsewhere.
    *[
        pytest.param(
            kind,
            (DAY, json.dumps({"clientSecret": {"store": "kubernetes"}})),
            (DAY, json.dumps({"clientSecret": {"store": "gcp-secret-manager"}})),
            True,
            id=f"{kind}-store-switched",
        )
        for kind in ("okta", "google")
    ],
]


@pytest.mark.parametrize(("kind", "before", "after", "rolls"), ROLLOUT_TABLE)
def test_a_change_of_the_secret_airflow_reads_rolls_the_api_server_and_nothing_else(
    kind: str, before: tuple[datetime.date, str], after: tuple[datetime.date, str], rolls: bool
) -> None:
    old, new = run_kind(kind, *before), run_kind(kind, *after)
    old_values, new_values = release_values(old), release_values(new)
    changed = changed_paths(old_values, new_values)
    if rolls:
        assert roll_annotation(old) != roll_annotation(new)
        assert f"apiServer.podAnnotations.{VERSION_ANNOTATION}" in changed
    else:
        assert changed == [], changed
    # Only the api-server's own values moved (its annotation; the Secret key with the store switched):
    # the scheduler, triggerer, dag-processor and workers keep their pod templates, the Job its inputs.
    assert all(path.startswith("apiServer.") for path in changed), changed
    for component in ROLLED_COMPONENTS:
        if component != "apiServer":
            assert old_values.get(component) == new_values.get(component), component
    assert migration_job_pod_template_inputs(old_values) == migration_job_pod_template_inputs(new_values)
    # The annotation is no secret (a keyed digest): a plain value, like the `configVersion` output.
    for run in (old, new):
        raw = run.one(RELEASE).raw_inputs["values"]["apiServer"]["podAnnotations"][VERSION_ANNOTATION]
        assert isinstance(raw, str) and not is_secret(raw)
        assert run.stack_outputs["configVersion"] == roll_annotation(run)


@pytest.mark.parametrize("kind", list(KIND_STACKS))
def test_the_roll_annotation_is_a_keyed_digest_not_a_hash_of_the_secret(kind: str) -> None:
    """Nothing in the annotation can be checked against a guessed secret without the stack's key."""
    run = run_kind(kind)
    secret = api_server_client_secret(run)
    annotation = roll_annotation(run)
    assert secret not in json.dumps(release_values(run))
    for candidate in (secret, f"{secret}\n", secret.encode().hex()):
        for digest in (hashlib.sha256, hashlib.sha1, hashlib.md5):
            assert annotation not in digest(candidate.encode()).hexdigest()
    # The key is the stack's own random bytes, kept in state (secret outputs of pulumi_random).
    key = run.named("airflow-oidc-airflow-secret-version-key")
    assert key.type == "random:index/randomBytes:RandomBytes" and key.inputs["length"] == 32


def test_keyed_digests_differ_by_key_and_by_secret() -> None:
    key_a, key_b = "00" * 32, "11" * 32
    assert keyed_secret_digest(key_a, "hunter2") != keyed_secret_digest(key_b, "hunter2")
    assert keyed_secret_digest(key_a, "hunter2") != keyed_secret_digest(key_a, "hunter3")
    assert keyed_secret_digest(key_a, "hunter2") == keyed_secret_digest(key_a, "hunter2")


@pytest.mark.parametrize(
    ("version", "key"), [(None, "client-secret"), ("1", "client-secret-v1"), ("17", "client-secret-v17")]
)
def test_with_secret_manager_the_api_server_reads_a_key_naming_the_pinned_version(
    version: str | None, key: str
) -> None:
    """A pod rolled for version N reads `client-secret-vN`: it cannot start on the previous value."""
    assert store_secret_key(version) == key


def test_with_secret_manager_the_external_secret_writes_the_key_the_api_server_reads() -> None:
    run = run_kind("google")
    (external,) = run.of_type("kubernetes:external-secrets.io/v1:ExternalSecret")
    (data,) = external.inputs["spec"]["data"]
    (version,) = run.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    env = {e["name"]: e for e in release_values(run)["apiServer"]["env"]}
    ref = env["AIRFLOW_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
    pinned = data["remoteRef"]["version"]
    assert data["secretKey"] == ref["key"] == f"client-secret-v{pinned}"
    assert api_server_client_secret(run) == version.inputs["secretData"]


def test_your_pod_annotations_sit_beside_the_program_s_roll_annotations() -> None:
    """`airflow.values` may add pod annotations (each component's, the api-server's too): Helm merges them
    key by key with the program's, which stay (a value for one of those keys is refused)."""
    parsed = spec(
        airflow={**SPEC_AIRFLOW, "values": {"apiServer": {"podAnnotations": {"prometheus.io/scrape": "true"}}}}
    )
    values = helm_values(parsed, client_contract(parsed, stack="payments-prod"), client_id="airflow", version="v")
    assert values["apiServer"]["podAnnotations"] == {
        VERSION_ANNOTATION: "v",
        AUTH_VERSION_ANNOTATION: values["scheduler"]["podAnnotations"][AUTH_VERSION_ANNOTATION],
        "prometheus.io/scrape": "true",
    }
