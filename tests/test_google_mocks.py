"""kind: google and the gcp-secret-manager store, under the mock engine (stacks/Pulumi.growth-prod.yaml)."""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pulumi
import pytest

import components.airflow_oidc
from tests.conftest import ROOT
from tests.mock_engine import Run, fake_secret, is_secret, plain_occurrences, run_program, stack_config

STACK = "growth-prod"
STACK_FILE = ROOT / "stacks" / f"Pulumi.{STACK}.yaml"
ACCOUNT = "gcp:serviceaccount/account:Account"
SA_IAM_MEMBER = "gcp:serviceaccount/iAMMember:IAMMember"
SM_SECRET = "gcp:secretmanager/secret:Secret"
SM_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
SM_IAM_MEMBER = "gcp:secretmanager/secretIamMember:SecretIamMember"
GROUP = "gcp:cloudidentity/group:Group"
SECRET_STORE = "kubernetes:external-secrets.io/v1:SecretStore"
EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"
K8S_SECRET = "kubernetes:core/v1:Secret"
KSA = "kubernetes:core/v1:ServiceAccount"
RELEASE = "kubernetes:helm.sh/v3:Release"
CLIENT_SECRET = fake_secret("secure:airflow-oidc:spec")  # the stack file's `secure:` clientSecret, as mocked
PROJECT = "data-platform-prod"


@pytest.fixture(scope="module")
def run() -> Run:
    return run_program(STACK, *stack_config(STACK_FILE))


def spec_with(**changes: Any) -> tuple[dict[str, str], list[str]]:
    """The growth-prod config with top-level spec keys replaced (or the idp merged: `idp={...}`)."""
    config, secret_keys = stack_config(STACK_FILE)
    spec = json.loads(config["airflow-oidc:spec"])
    for key, value in changes.items():
        spec[key] = {**spec[key], **value} if key == "idp" else value
    return {**config, "airflow-oidc:spec": json.dumps(spec)}, secret_keys


def values(run: Run) -> dict[str, Any]:
    return run.one(RELEASE).inputs["values"]


def groups_reader(run: Run) -> Any:
    return run.named("airflow-oidc-google-groups-reader")


def test_groups_reader_is_the_api_servers_identity_through_workload_identity(run: Run) -> None:
    reader = groups_reader(run)
    assert reader.type == ACCOUNT
    assert reader.inputs["accountId"] == "airflow-growth-prod-groups"
    assert reader.inputs["project"] == PROJECT
    email = f"airflow-growth-prod-groups@{PROJECT}.iam.gserviceaccount.com"
    binding = run.named("airflow-oidc-google-workload-identity").inputs
    assert binding == {
        "serviceAccountId": f"projects/{PROJECT}/serviceAccounts/{email}",
        "role": "roles/iam.workloadIdentityUser",
        # The chart's api-server service account, named by the program in the values below.
        "member": f"serviceAccount:{PROJECT}.svc.id.goog[airflow-growth/airflow-api-server]",
    }
    assert values(run)["apiServer"]["serviceAccount"] == {
        "name": "airflow-api-server",
        "annotations": {"iam.gke.io/gcp-service-account": email},
    }
    outputs = run.stack_outputs
    assert outputs["groupsReaderServiceAccount"] == email
    assert email in outputs["groupsReaderGrant"] and "Groups Reader" in outputs["groupsReaderGrant"]
    assert reader.protect is True, "prod: replacing the account would lose the Groups Reader grant"


def test_registration_is_the_exact_redirect_uri_and_no_javascript_origin(run: Run) -> None:
    registration = run.stack_outputs["registration"]
    assert registration["clientId"] == "1234-abc.apps.googleusercontent.com"
    assert registration["authorizedRedirectUris"] == [
        "https://airflow.growth.corp-example.net/auth/oauth-authorized/google"
    ]
    assert registration["authorizedJavaScriptOrigins"] == []
    assert registration["hostedDomain"] == "corp-example.net"
    assert run.stack_outputs["redirectUris"] == registration["authorizedRedirectUris"]
    assert run.stack_outputs["issuer"] == "https://accounts.google.com"


def test_rendered_config_asks_cloud_identity_and_requires_hd_and_a_verified_email(run: Run) -> None:
    rendered = values(run)["apiServer"]["apiServerConfig"]
    assert 'ROLE_SOURCE = "cloud-identity"' in rendered
    assert 'REQUIRED_CLAIMS = {"hd": "corp-example.net", "email_verified": True}' in rendered
    assert 'PROVIDER = "google"' in rendered and 'USERNAME_CLAIM = "sub"' in rendered
    assert '"url": "https://cloudidentity.googleapis.com"' in rendered
    assert '"url_env": "AIRFLOW_OIDC_CLOUD_IDENTITY_URL"' in rendered
    assert "growth-oncall@corp-example.net" in rendered


def test_client_secret_is_in_secret_manager_and_only_in_secret_marked_inputs(run: Run) -> None:
    secret = run.one(SM_SECRET)
    assert secret.inputs["secretId"] == "airflow-growth-prod-oidc-client-secret"
    assert secret.inputs["replication"] == {"auto": {}}
    assert secret.inputs["project"] == PROJECT
    assert secret.protect is True
    version = run.one(SM_VERSION)
    assert version.inputs["secret"] == f"projects/{PROJECT}/secrets/airflow-growth-prod-oidc-client-secret"
    assert is_secret(version.raw_inputs["secretData"])
    assert version.inputs["secretData"] == CLIENT_SECRET
    holders = [r.name for r in run.resources if CLIENT_SECRET in json.dumps(r.inputs)]
    assert holders == [version.name]
    for resource in run.resources:
        assert plain_occurrences(resource.raw_inputs, CLIENT_SECRET) == [], resource.name
    for urn, outputs in run.outputs.items():
        assert CLIENT_SECRET not in json.dumps(outputs), urn
    assert "clientSecret" not in run.stack_outputs


def test_no_plain_kubernetes_secret_holds_the_client_secret(run: Run) -> None:
    names = sorted(secret.inputs["metadata"]["name"] for secret in run.of_type(K8S_SECRET))
    assert names == ["airflow-api-secret-key", "airflow-fernet-key", "airflow-jwt-secret"]
    assert all(CLIENT_SECRET not in json.dumps(secret.inputs) for secret in run.of_type(K8S_SECRET))
    assert CLIENT_SECRET not in json.dumps(values(run))


def test_external_secret_writes_exactly_what_the_api_server_reads(run: Run) -> None:
    env = {entry["name"]: entry for entry in values(run)["apiServer"]["env"]}
    reads = env["AIRFLOW_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
    external = run.one(EXTERNAL_SECRET)
    store = run.one(SECRET_STORE)
    assert external.inputs["apiVersion"] == store.inputs["apiVersion"] == "external-secrets.io/v1"
    spec = external.inputs["spec"]
    assert external.inputs["metadata"]["namespace"] == store.inputs["metadata"]["namespace"] == "airflow-growth"
    assert spec["target"] == {"name": reads["name"], "creationPolicy": "Owner"}
    assert spec["secretStoreRef"] == {"kind": "SecretStore", "name": store.inputs["metadata"]["name"]}
    # The key and the version that was written: a rotation changes the pinned version.
    assert spec["data"] == [
        {
            "secretKey": reads["key"],
            "remoteRef": {"key": run.one(SM_SECRET).inputs["secretId"], "version": "1"},
        }
    ]
    # The Helm release waits for the ExternalSecret (the api-server needs its Secret to start).
    assert external.urn in run.one(RELEASE).dependencies


def test_secret_store_authenticates_as_a_reader_of_this_secret_only(run: Run) -> None:
    store = run.one(SECRET_STORE).inputs["spec"]["provider"]["gcpsm"]
    ksa_name = store["auth"]["workloadIdentity"]["serviceAccountRef"]["name"]
    assert store["projectID"] == PROJECT
    ksa = run.one(KSA).inputs
    assert ksa["metadata"]["name"] == ksa_name == "airflow-secret-store"
    assert ksa["metadata"]["namespace"] == "airflow-growth"
    reader = run.named("airflow-oidc-airflow-client-secret-store-reader")
    email = f"{reader.inputs['accountId']}@{PROJECT}.iam.gserviceaccount.com"
    assert ksa["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": email}
    binding = run.named("airflow-oidc-airflow-client-secret-store-reader-workload-identity").inputs
    assert binding["member"] == f"serviceAccount:{PROJECT}.svc.id.goog[airflow-growth/{ksa_name}]"
    assert binding["role"] == "roles/iam.workloadIdentityUser"
    access = run.one(SM_IAM_MEMBER).inputs
    assert access == {
        "project": PROJECT,
        "secretId": "airflow-growth-prod-oidc-client-secret",
        "role": "roles/secretmanager.secretAccessor",
        "member": f"serviceAccount:{email}",
    }
    # Not the api-server's Google identity: the group reader never reads secrets.
    assert email != groups_reader(run).inputs["accountId"] + f"@{PROJECT}.iam.gserviceaccount.com"
    # The operator can read the secret once both grants and the store exist.
    external = run.one(EXTERNAL_SECRET)
    # Namespaced objects wait for the namespace the program creates.
    namespace = run.one("kubernetes:core/v1:Namespace").urn
    for resource in (run.one(KSA), run.one(SECRET_STORE), external):
        assert namespace in resource.dependencies, resource.name
    for name in (
        "airflow-oidc-airflow-client-secret-store-reader-access",
        "airflow-oidc-airflow-client-secret-store-reader-workload-identity",
    ):
        assert run.named(name).urn in external.dependencies


def test_existing_groups_are_not_created_and_create_groups_creates_each(run: Run) -> None:
    assert not run.of_type(GROUP)
    created = run_program(STACK, *spec_with(idp={"createGroups": True}))
    groups = created.of_type(GROUP)
    assert sorted(g.inputs["groupKey"]["id"] for g in groups) == [
        "airflow-admins@corp-example.net",
        "growth-analysts@corp-example.net",
        "growth-engineers@corp-example.net",
        "growth-oncall@corp-example.net",
    ]
    for group in groups:
        assert group.inputs["parent"] == "customers/C01abcde"
        assert group.inputs["labels"] == {"cloudidentity.googleapis.com/groups.discussion_forum": ""}
        assert group.inputs["initialGroupConfig"] == "EMPTY"
        assert group.protect is True


def test_the_store_works_for_another_kind() -> None:
    """An Okta stack with the Secret Manager store: the program's generated secret goes there."""
    config, secret_keys = stack_config(ROOT / "stacks" / "Pulumi.dev.yaml")
    spec = json.loads(config["airflow-oidc:spec"])
    spec["clientSecret"] = {"store": "gcp-secret-manager"}
    okta = run_program("dev", {**config, "airflow-oidc:spec": json.dumps(spec), "gcp:project": "p-dev"}, secret_keys)
    generated = fake_secret("airflow-oidc-okta-client-secret")
    assert okta.one(SM_VERSION).inputs["secretData"] == generated
    assert is_secret(okta.one(SM_VERSION).raw_inputs["secretData"])
    assert all(generated not in json.dumps(s.inputs) for s in okta.of_type(K8S_SECRET))
    assert okta.one(EXTERNAL_SECRET).inputs["spec"]["target"]["name"] == "airflow-oidc-client"
    # Only the store's reader: no groups reader and no api-server annotation for Okta.
    assert [a.name for a in okta.of_type(ACCOUNT)] == ["airflow-oidc-airflow-client-secret-store-reader"]
    assert okta.one(RELEASE).inputs["values"]["apiServer"]["serviceAccount"]["annotations"] == {}


@pytest.mark.parametrize(
    ("stack_file", "spec_change", "expected"),
    [
        ("Pulumi.growth-prod.yaml", {}, "gcp:project is not set"),
        ("Pulumi.dev.yaml", {"clientSecret": {"store": "gcp-secret-manager"}}, "gcp:project is not set"),
    ],
    ids=["google-without-project", "store-without-project"],
)
def test_a_missing_project_is_refused_before_anything_is_declared(
    monkeypatch: pytest.MonkeyPatch, stack_file: str, spec_change: dict[str, Any], expected: str
) -> None:
    for env in ("GOOGLE_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(env, raising=False)
    config, secret_keys = stack_config(ROOT / "stacks" / stack_file)
    config.pop("gcp:project", None)
    spec = {**json.loads(config["airflow-oidc:spec"]), **spec_change}
    stack = stack_file.removeprefix("Pulumi.").removesuffix(".yaml")
    run = Run(stack=stack)
    with pytest.raises(pulumi.RunError) as raised:
        run_program(stack, {**config, "airflow-oidc:spec": json.dumps(spec)}, secret_keys, run=run)
    assert str(raised.value).startswith(f"stacks/{stack_file}: {expected}")
    assert "GOOGLE_PROJECT" in str(raised.value)
    assert run.resources == []


LOADED_MODULES = """
import json, runpy, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.mock_engine import run_program, stack_config
config, secret_keys = stack_config(Path({stack_file!r}))
spec = json.loads(config["airflow-oidc:spec"])
spec["idp"]["createGroups"] = {create_groups}
config["airflow-oidc:spec"] = json.dumps(spec)
started = time.perf_counter()
run_program({stack!r}, config, secret_keys)
elapsed = time.perf_counter() - started
lazy = type(sys.modules["pulumi_gcp"].accessapproval).__name__
loaded = sorted(
    name for name, module in sys.modules.items()
    if name.startswith("pulumi_gcp.") and name.count(".") == 1
    and type(module).__name__ != lazy and hasattr(module, "__path__")
)
sdks = sorted(name for name in sys.modules if name.startswith("pulumi_") and "." not in name)
print(json.dumps({{"loaded": loaded, "sdks": sdks, "seconds": elapsed}}))
"""


def loaded_modules(create_groups: bool) -> dict[str, Any]:
    """Run the stack in a fresh interpreter and report which provider SDKs and gcp submodules it loaded."""
    code = LOADED_MODULES.format(root=str(ROOT), stack_file=str(STACK_FILE), stack=STACK, create_groups=create_groups)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_only_pulumi_gcp_is_loaded_and_only_the_submodules_it_uses() -> None:
    plain = loaded_modules(create_groups=False)
    assert plain["sdks"] == ["pulumi_gcp", "pulumi_kubernetes", "pulumi_random"]
    # Every other subpackage stays a lazy module (pulumi_gcp is ~290 MB of Python); `config` is the
    # provider's own settings, read when any gcp resource is declared.
    used = set(plain["loaded"]) - {"pulumi_gcp.config"}
    assert used == {"pulumi_gcp.projects", "pulumi_gcp.secretmanager", "pulumi_gcp.serviceaccount"}, plain["loaded"]
    with_groups = loaded_modules(create_groups=True)
    assert set(with_groups["loaded"]) - {"pulumi_gcp.config"} == used | {"pulumi_gcp.cloudidentity"}


def okta_in_secret_manager_on(day: datetime.date, monkeypatch: pytest.MonkeyPatch) -> Run:
    """The dev stack (Okta, a rotating secret) with the Secret Manager store, as run on `day`."""

    class Day(datetime.date):
        @classmethod
        def today(cls) -> Day:
            return cls(day.year, day.month, day.day)

    monkeypatch.setattr(components.airflow_oidc, "datetime", types.SimpleNamespace(date=Day))
    config, secret_keys = stack_config(ROOT / "stacks" / "Pulumi.dev.yaml")
    spec = {**json.loads(config["airflow-oidc:spec"]), "clientSecret": {"store": "gcp-secret-manager"}}
    return run_program("dev", {**config, "airflow-oidc:spec": json.dumps(spec), "gcp:project": "p-dev"}, secret_keys)


def test_rotation_writes_a_new_version_and_rolls_the_api_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Okta rotates every 90 days: the next period replaces the generated secret (its keeper changes;
    the mocks' value does not), which the Secret Manager version is made from (secret_data forces a
    new version); the secret itself stays, and the config-version annotation changes."""
    before = okta_in_secret_manager_on(datetime.date(2026, 1, 5), monkeypatch)
    same_period = okta_in_secret_manager_on(datetime.date(2026, 1, 6), monkeypatch)
    after = okta_in_secret_manager_on(datetime.date(2026, 6, 1), monkeypatch)

    def password(run: Run) -> Any:
        return run.named("airflow-oidc-okta-client-secret")

    def annotation(run: Run) -> str:
        return str(values(run)["apiServer"]["podAnnotations"]["airflow-oidc/config-version"])

    keepers = [password(run).inputs["keepers"]["generation"] for run in (before, same_period, after)]
    assert keepers[0] == keepers[1] != keepers[2]
    assert annotation(before) == annotation(same_period) != annotation(after)
    for run in (before, after):
        version = run.one(SM_VERSION)
        assert version.inputs["secretData"] == fake_secret("airflow-oidc-okta-client-secret")
        assert is_secret(version.raw_inputs["secretData"])
        assert password(run).urn in version.dependencies, "the version is made from the rotating secret"
    assert before.one(SM_SECRET).inputs == after.one(SM_SECRET).inputs, "the secret stays; a version is added"


def test_fleet_refuses_two_google_stacks_sharing_the_client_or_the_groups_reader(tmp_path: Path) -> None:
    """`airflow-oidc validate`: another stack with the same console client and team/env is a clash."""
    from components.fleet import fleet_clashes, fleet_member

    (tmp_path / "stacks").mkdir()
    shutil.copytree(ROOT / "stacks" / "defaults", tmp_path / "stacks" / "defaults")
    first = tmp_path / "stacks" / STACK_FILE.name
    first.write_text(STACK_FILE.read_text())
    second = tmp_path / "stacks" / "Pulumi.growth2-prod.yaml"
    second.write_text(
        STACK_FILE.read_text()
        .replace("airflow.growth.corp-example.net", "airflow2.growth.corp-example.net")
        .replace("namespace: airflow-growth", "namespace: airflow-growth2")
    )
    clashes = fleet_clashes([first, second])
    assert any("Google OAuth client id '1234-abc.apps.googleusercontent.com'" in line for line in clashes), clashes
    assert any(f"GCP service account in {PROJECT} 'airflow-growth-prod-groups'" in line for line in clashes), clashes
    second.write_text(
        second.read_text().replace("1234-abc.apps", "5678-def.apps").replace("team: growth", "team: growth2")
    )
    assert fleet_member(second) is not None, "the second stack is valid: it is part of the fleet"
    assert fleet_clashes([first, second]) == []


def test_google_with_the_kubernetes_store_keeps_the_secret_in_the_program_s_secret() -> None:
    """Any store works with kind google: with `kubernetes`, the console secret is in the declared Secret."""
    kube = run_program(STACK, *spec_with(clientSecret={"store": "kubernetes"}))
    assert not kube.of_type(SM_SECRET) and not kube.of_type(EXTERNAL_SECRET) and not kube.of_type(SECRET_STORE)
    secret = kube.named("airflow-oidc-airflow-secret-oidc-client-secret")
    assert secret.inputs["stringData"] == {"client-secret": CLIENT_SECRET}
    assert is_secret(secret.raw_inputs["stringData"])
    assert is_secret(kube.stack_outputs["clientSecret"])
    # The groups reader is the kind's, whatever the store.
    assert [a.name for a in kube.of_type(ACCOUNT)] == ["airflow-oidc-google-groups-reader"]


# --- the Google Cloud APIs the stack calls -----------------------------------------------------

API = "gcp:projects/service:Service"


def apis(run: Run) -> dict[str, Any]:
    return {service.inputs["service"]: service for service in run.of_type(API)}


def test_the_apis_the_stack_calls_are_enabled_and_never_disabled_on_destroy(run: Run) -> None:
    """Cloud Identity (every sign-in's group lookup) and Secret Manager (the store), in the stack's
    project; destroying the stack leaves them on (another workload of the project may use them)."""
    enabled = apis(run)
    assert set(enabled) == {"cloudidentity.googleapis.com", "secretmanager.googleapis.com"}
    for service in enabled.values():
        assert service.inputs["project"] == PROJECT
        assert service.inputs["disableOnDestroy"] is False
        assert service.inputs["disableDependentServices"] is False
    # What needs an API waits for it: the secret (the version, grant and ExternalSecret follow it), and
    # the Helm release (its api-servers ask Cloud Identity at every sign-in).
    assert enabled["secretmanager.googleapis.com"].urn in run.one(SM_SECRET).dependencies
    release = run.one(RELEASE)
    assert enabled["cloudidentity.googleapis.com"].urn in release.dependencies


def test_created_groups_wait_for_the_cloud_identity_api() -> None:
    created = run_program(STACK, *spec_with(idp={"createGroups": True}))
    api = apis(created)["cloudidentity.googleapis.com"]
    groups = created.of_type(GROUP)
    assert groups and all(api.urn in group.dependencies for group in groups)


def test_where_the_platform_enables_apis_the_program_declares_none() -> None:
    """`googleCloud.enableApis: false`: no `projects.Service`, nothing waits for one."""
    central = run_program(STACK, *spec_with(googleCloud={"enableApis": False}, idp={"createGroups": True}))
    assert central.of_type(API) == []
    assert central.of_type(SM_SECRET) and central.of_type(GROUP), "the rest is declared as before"


def test_stacks_that_call_no_google_api_enable_none() -> None:
    okta = run_program("dev", *stack_config(ROOT / "stacks" / "Pulumi.dev.yaml"))
    assert okta.of_type(API) == []
    config, secret_keys = stack_config(ROOT / "stacks" / "Pulumi.dev.yaml")
    spec = {**json.loads(config["airflow-oidc:spec"]), "clientSecret": {"store": "gcp-secret-manager"}}
    okta_in_sm = run_program(
        "dev", {**config, "airflow-oidc:spec": json.dumps(spec), "gcp:project": "p-dev"}, secret_keys
    )
    assert set(apis(okta_in_sm)) == {"secretmanager.googleapis.com"}


def test_environment_defaults_may_leave_the_apis_to_the_platform(tmp_path: Path) -> None:
    """The platform team sets `googleCloud.enableApis: false` once for an environment."""
    from components.env_defaults import resolve_spec

    (tmp_path / "defaults").mkdir()
    (tmp_path / "defaults" / "prod.yaml").write_text(
        "defaults:\n  googleCloud:\n    enableApis: false\n  airflow:\n    forwardedAllowIps: 10.42.0.0/16\n"
    )
    config, _ = stack_config(STACK_FILE)
    raw = json.loads(config["airflow-oidc:spec"])
    resolved = resolve_spec(raw, "stacks/Pulumi.growth-prod.yaml", tmp_path)
    assert resolved.spec.googleCloud.enableApis is False
    assert resolved.inherited == {"googleCloud.enableApis": False, "airflow.forwardedAllowIps": "10.42.0.0/16"}
