"""kind: azuread (Microsoft Entra ID) under the mock engine: stacks/Pulumi.risk-prod.yaml and variants.

The rotation tests move the program's clock: the composer takes `today` from
`datetime.date.today()` in `components/airflow_oidc.py`, which `frozen_today` replaces for one run.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import types
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulumi
import pytest

import components.airflow_oidc
from components.airflow_values import VERSION_ANNOTATION
from components.contract import client_contract
from components.idp import azuread
from components.idp.azuread import (
    DEFAULT_APP_ROLE,
    GRAPH_APP_ID,
    GRAPH_SIGN_IN_SCOPES,
    app_role_id,
    mock_group_id,
    period_start,
    secret_slots,
)
from components.idp.base import secret_generation
from components.mock_values import fake_guid
from components.stack_config import provider_from_stack_file, spec_from_stack_file
from tests.conftest import ROOT
from tests.mock_engine import Registration, Run, is_secret, plain_occurrences, run_program, stack_config
from tests.test_spec_errors import file_error, key, problem_lines, without_lines

STACK = "risk-prod"
STACK_FILE = ROOT / "stacks" / f"Pulumi.{STACK}.yaml"
TENANT = "7d1b2c3a-0000-4000-8000-1234567890ab"
APP = "azuread:index/application:Application"
SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
GRANT = "azuread:index/servicePrincipalDelegatedPermissionGrant:ServicePrincipalDelegatedPermissionGrant"
GROUP = "azuread:index/group:Group"
ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
GET_GROUPS = "azuread:index/getGroups:getGroups"
K8S_SECRET = "kubernetes:core/v1:Secret"
RELEASE = "kubernetes:helm.sh/v3:Release"
OIDC_SECRET = "airflow-oidc-airflow-secret-oidc-client-secret"
ONCALL_GUID = "4b0c2d1e-5f6a-4b7c-8d9e-0a1b2c3d4e5f"
DAY = datetime.date(2026, 12, 1)
"""A fixed day for runs that compare declarations (the rotation period never turns over between them)."""


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


def spec_with(**changes: Any) -> tuple[dict[str, str], list[str]]:
    """The risk-prod config with top-level spec keys replaced (`idp={...}` is merged into the idp)."""
    config, secret_keys = stack_config(STACK_FILE)
    spec = json.loads(config["airflow-oidc:spec"])
    for name, value in changes.items():
        spec[name] = {**spec[name], **value} if name == "idp" else value
    return {**config, "airflow-oidc:spec": json.dumps(spec)}, secret_keys


def run_on(day: datetime.date, config: tuple[dict[str, str], list[str]] | None = None, stack: str = STACK) -> Run:
    with frozen_today(day):
        return run_program(stack, *(config or stack_config(STACK_FILE)))


@pytest.fixture(scope="module")
def run() -> Run:
    return run_on(DAY)


def app_inputs(run: Run) -> dict[str, Any]:
    return run.one(APP).inputs


def values(run: Run) -> dict[str, Any]:
    return run.one(RELEASE).inputs["values"]


def password_value(password: Registration) -> str:
    computed = azuread.AzureadIdp.mock_outputs(PASSWORD, password.name, password.inputs)
    assert computed is not None
    return str(computed["value"])


def slots_by_name(run: Run) -> dict[str, Registration]:
    return {password.name: password for password in run.of_type(PASSWORD)}


# --- the app registration ------------------------------------------------------------------------


def test_redirect_uris_are_exactly_the_contracts_callback_and_post_logout_uri(run: Run) -> None:
    """Entra returns users after logout only to a registered redirect URI: the post-logout URI is one,
    or Microsoft's own signed-out page is where they stay."""
    spec = spec_from_stack_file(STACK_FILE)
    contract = client_contract(spec, stack=STACK, provider=provider_from_stack_file(STACK_FILE, spec))
    web = app_inputs(run)["web"]
    assert web["redirectUris"] == [*contract.redirect_uris, *contract.post_logout_redirect_uris]
    assert web["redirectUris"] == [
        "https://airflow.risk.example.com/auth/oauth-authorized/azuread",
        "https://airflow.risk.example.com/auth/login/",
    ]
    # The rendered config sends exactly that URI as post_logout_redirect_uri.
    config = values(run)["apiServer"]["apiServerConfig"]
    assert 'POST_LOGOUT_REDIRECT_URI = "https://airflow.risk.example.com/auth/login/"' in config
    assert web["logoutUrl"] == "https://airflow.risk.example.com/auth/logout"
    assert web["implicitGrant"] == {"accessTokenIssuanceEnabled": False, "idTokenIssuanceEnabled": False}
    assert app_inputs(run)["signInAudience"] == "AzureADMyOrg"
    assert run.stack_outputs["issuer"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert run.stack_outputs["clientId"] == fake_guid("airflow-oidc-azuread-app:client-id")


def test_id_token_carries_email_and_names_and_graph_sign_in_scopes_are_required(run: Run) -> None:
    inputs = app_inputs(run)
    assert inputs["optionalClaims"] == {
        "idTokens": [{"name": "email"}, {"name": "given_name"}, {"name": "family_name"}]
    }
    assert inputs["requiredResourceAccesses"] == [
        {
            "resourceAppId": "00000003-0000-0000-c000-000000000000",
            "resourceAccesses": [
                {"id": "37f7f235-527c-4136-accd-4a02d197296e", "type": "Scope"},  # openid
                {"id": "14dad69e-099b-42c9-810b-d002981feec1", "type": "Scope"},  # profile
                {"id": "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0", "type": "Scope"},  # email
            ],
        }
    ]


def test_one_app_role_per_airflow_role_plus_the_default_audience(run: Run) -> None:
    roles = {role["value"]: role for role in app_inputs(run)["appRoles"]}
    assert set(roles) == {"Airflow.Admin", "Airflow.Op", "Airflow.User", DEFAULT_APP_ROLE}
    for value, role in roles.items():
        assert role["id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, f"airflow-oidc:{STACK}:{value}"))
        assert role["allowedMemberTypes"] == ["User"]
        assert role["enabled"] is True
    # The rendered config maps exactly these values, and the default audience only to the default role.
    rendered = values(run)["apiServer"]["apiServerConfig"]
    assert 'ROLE_BY_CLAIM_VALUE = {"Airflow.Admin": "Admin", "Airflow.Op": "Op", "Airflow.User": "User"}' in rendered
    assert 'DEFAULT_ROLE_CLAIM_VALUES = ["Airflow.Default"]' in rendered
    assert 'ROLE_CLAIM = "roles"' in rendered and 'USERNAME_CLAIM = "oid"' in rendered
    assert f'REQUIRED_CLAIMS = {{"tid": "{TENANT}"}}' in rendered


def test_app_role_ids_never_churn_and_differ_per_stack() -> None:
    assert app_role_id(STACK, "Airflow.Admin") == app_role_id(STACK, "Airflow.Admin")
    assert app_role_id(STACK, "Airflow.Admin") != app_role_id("risk-dev", "Airflow.Admin")
    assert app_role_id(STACK, "Airflow.Admin") != app_role_id(STACK, "Airflow.Op")


def test_two_groups_with_one_role_share_its_app_role() -> None:
    access = [
        {"group": "risk-airflow-admins", "role": "Admin"},
        {"group": "risk-platform-airflow-admins", "role": "Admin"},
        {"group": "risk-engineers", "role": "User"},
    ]
    run = run_on(DAY, spec_with(access=access))
    assert sorted(role["value"] for role in app_inputs(run)["appRoles"]) == [
        "Airflow.Admin",
        DEFAULT_APP_ROLE,
        "Airflow.User",
    ]
    admin = app_role_id(STACK, "Airflow.Admin")
    assert sorted(a.name for a in run.of_type(ASSIGNMENT) if a.inputs["appRoleId"] == admin) == [
        "airflow-oidc-azuread-assignment-risk_airflow_admins",
        "airflow-oidc-azuread-assignment-risk_platform_airflow_admins",
    ]


# --- who may sign in -------------------------------------------------------------------------------


def test_created_groups_and_assignments_match_access_exactly(run: Run) -> None:
    groups = run.of_type(GROUP)
    expected = {"risk-airflow-admins": "Airflow.Admin", "risk-oncall": "Airflow.Op", "risk-engineers": "Airflow.User"}
    expected["risk-stakeholders"] = DEFAULT_APP_ROLE  # signIn.extraGroups: the default role's audience
    assert sorted(g.inputs["displayName"] for g in groups) == sorted(expected)
    for group in groups:
        assert group.inputs["securityEnabled"] is True
        assert group.inputs["mailEnabled"] is False
        assert group.inputs["preventDuplicateNames"] is True
    object_ids = {g.inputs["displayName"]: fake_guid(f"{g.name}:object-id") for g in groups}
    service_principal = fake_guid(f"{run.one(SERVICE_PRINCIPAL).name}:object-id")
    assigned = {
        a.inputs["principalObjectId"]: a.inputs["appRoleId"]
        for a in run.of_type(ASSIGNMENT)
        if a.inputs["resourceObjectId"] == service_principal
    }
    assert len(run.of_type(ASSIGNMENT)) == len(assigned) == 4
    # Each assignment waits for the application, which defines the app roles it assigns.
    assert all(run.one(APP).urn in a.dependencies for a in run.of_type(ASSIGNMENT))
    assert assigned == {object_ids[group]: app_role_id(STACK, value) for group, value in expected.items()}


def test_service_principal_requires_assignment_and_consent_is_granted_tenant_wide(run: Run) -> None:
    service_principal = run.one(SERVICE_PRINCIPAL).inputs
    assert service_principal["clientId"] == run.stack_outputs["clientId"]
    assert service_principal["appRoleAssignmentRequired"] is True
    grant = run.one(GRANT).inputs
    assert grant["servicePrincipalObjectId"] == fake_guid(f"{run.one(SERVICE_PRINCIPAL).name}:object-id")
    assert grant["resourceServicePrincipalObjectId"] == fake_guid(f"service-principal:{GRAPH_APP_ID}")
    assert grant["claimValues"] == ["openid", "profile", "email"] == list(GRAPH_SIGN_IN_SCOPES)


def test_everyone_drops_assignment_required_and_no_consent_drops_the_grant() -> None:
    run = run_on(DAY, spec_with(signIn={"everyone": True}, idp={"adminConsent": False}))
    assert run.one(SERVICE_PRINCIPAL).inputs["appRoleAssignmentRequired"] is False
    assert not run.of_type(GRANT)
    # No extraGroups: no default-role app role; everyone in no group gets the default role in Airflow.
    assert DEFAULT_APP_ROLE not in {role["value"] for role in app_inputs(run)["appRoles"]}
    rendered = values(run)["apiServer"]["apiServerConfig"]
    assert "DEFAULT_ROLE_EVERYONE = True" in rendered


def test_existing_groups_are_looked_up_by_exact_name_or_used_by_object_id() -> None:
    access = [
        {"group": "risk-airflow-admins", "role": "Admin"},
        {"group": ONCALL_GUID, "role": "Op"},
        {"group": "risk-engineers", "role": "User"},
    ]
    run = run_on(DAY, spec_with(access=access, idp={"createGroups": False}))
    assert not run.of_type(GROUP)
    looked_up = sorted(args["displayNamePrefix"] for token, args in run.invokes if token == GET_GROUPS)
    assert looked_up == ["risk-airflow-admins", "risk-engineers", "risk-stakeholders"], "a GUID is not looked up"
    assigned = {a.inputs["principalObjectId"]: a.inputs["appRoleId"] for a in run.of_type(ASSIGNMENT)}
    # The mocked tenant also holds "<name> (archived)": only the exact display name is taken.
    assert assigned == {
        mock_group_id("risk-airflow-admins"): app_role_id(STACK, "Airflow.Admin"),
        ONCALL_GUID: app_role_id(STACK, "Airflow.Op"),
        mock_group_id("risk-engineers"): app_role_id(STACK, "Airflow.User"),
        mock_group_id("risk-stakeholders"): app_role_id(STACK, DEFAULT_APP_ROLE),
    }


def test_a_guid_group_is_used_as_is_when_groups_are_created() -> None:
    access = [{"group": "risk-airflow-admins", "role": "Admin"}, {"group": ONCALL_GUID, "role": "Op"}]
    run = run_on(DAY, spec_with(access=access))
    assert sorted(g.inputs["displayName"] for g in run.of_type(GROUP)) == ["risk-airflow-admins", "risk-stakeholders"]
    assigned = {a.inputs["principalObjectId"]: a.inputs["appRoleId"] for a in run.of_type(ASSIGNMENT)}
    assert assigned[ONCALL_GUID] == app_role_id(STACK, "Airflow.Op")


# --- secrets, protection, SDKs ------------------------------------------------------------------


def test_client_secret_reaches_only_secret_data_and_secret_outputs(run: Run) -> None:
    passwords = run.of_type(PASSWORD)
    assert len(passwords) == 2
    generated = [password_value(password) for password in passwords]
    for resource in run.resources:
        for value in generated:
            assert plain_occurrences(resource.raw_inputs, value) == [], f"a password in plaintext in {resource.name}"
    for urn, outputs in run.outputs.items():
        for value in generated:
            assert plain_occurrences(outputs, value) == [], f"a password in plaintext in the outputs of {urn}"
    holders = {r.name for r in run.resources if any(value in json.dumps(r.inputs) for value in generated)}
    assert holders == {OIDC_SECRET}
    assert is_secret(run.named(OIDC_SECRET).raw_inputs["stringData"])
    assert is_secret(run.stack_outputs["clientSecret"])
    assert "MOCKSECRET" not in values(run)["apiServer"]["apiServerConfig"]


def test_prod_protects_the_app_the_service_principal_and_created_groups(run: Run) -> None:
    assert run.one(APP).protect and run.one(SERVICE_PRINCIPAL).protect
    assert [g.protect for g in run.of_type(GROUP)] == [True] * 4
    dev = run_on(DAY, spec_with(environment="dev"), stack="risk-dev")
    assert not dev.one(APP).protect and not dev.one(SERVICE_PRINCIPAL).protect
    assert not any(g.protect for g in dev.of_type(GROUP))


LOADED_SDKS = """
import sys
from pathlib import Path
from tests.mock_engine import run_stack_file
run_stack_file(Path(sys.argv[1]))
print(sorted(name for name in sys.modules if name.startswith("pulumi_") and "." not in name))
"""


@pytest.mark.parametrize(
    ("stack", "loaded", "not_loaded"),
    [("risk-prod", "pulumi_azuread", "pulumi_okta"), ("dev", "pulumi_okta", "pulumi_azuread")],
)
def test_only_the_stacks_own_kind_sdk_is_loaded(stack: str, loaded: str, not_loaded: str) -> None:
    path = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    done = subprocess.run(
        [sys.executable, "-c", LOADED_SDKS, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sdks = json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert loaded in sdks and not_loaded not in sdks, sdks


# --- two-slot rotation ----------------------------------------------------------------------------


def test_two_runs_in_one_period_declare_identical_inputs() -> None:
    generation = secret_generation(DAY, 90)
    later = DAY + datetime.timedelta(days=1)
    assert secret_generation(later, 90) == generation, "the fixed days must share a period"
    first, second = run_on(DAY), run_on(later)
    declared = [{(r.type, r.name): (r.raw_inputs, r.protect) for r in run.resources} for run in (first, second)]
    assert len(declared[0]) == len(first.resources)
    assert declared[0] == declared[1]


def test_one_period_later_exactly_one_slot_is_replaced_and_the_secret_follows_it() -> None:
    start = period_start(secret_generation(DAY, 90), 90)
    before, after = run_on(start), run_on(start + datetime.timedelta(days=90))
    old, new = slots_by_name(before), slots_by_name(after)
    assert set(old) == set(new) == {"airflow-oidc-azuread-secret-slot-0", "airflow-oidc-azuread-secret-slot-1"}
    changed = [name for name in old if old[name].raw_inputs != new[name].raw_inputs]
    assert len(changed) == 1, changed
    (replaced,) = changed
    (kept,) = set(old) - {replaced}
    # The replaced slot is the new newest: the Secret switches to its value, and to nothing else.
    assert new[replaced].inputs["rotateWhenChanged"]["period"] == str(secret_generation(start, 90) + 1)
    secret = run_secret_value(after)
    assert secret == password_value(new[replaced])
    assert secret != run_secret_value(before) == password_value(old[kept])
    # The Secret is built from the new password's output: it can only follow once that password exists.
    assert new[replaced].urn in after.named(OIDC_SECRET).dependencies
    # The api-server pods roll: the secret version is in the config-version annotation.
    annotations = [values(run)["apiServer"]["podAnnotations"][VERSION_ANNOTATION] for run in (before, after)]
    assert annotations[0] != annotations[1]
    # The kept slot's password is still valid past the rotation after this one.
    end = datetime.date.fromisoformat(new[kept].inputs["endDate"][:10])
    assert end > period_start(secret_generation(start, 90) + 2, 90)


@pytest.mark.parametrize("rotation_days", [1, 30, 90, 365])
def test_each_slot_outlives_the_next_rotation(rotation_days: int) -> None:
    for offset in range(0, 4 * rotation_days, max(1, rotation_days // 3)):
        day = DAY + datetime.timedelta(days=offset)
        slots, newest = secret_slots(day, rotation_days)
        generation = secret_generation(day, rotation_days)
        assert slots[newest].generation == generation
        assert {slot.generation for slot in slots} == {generation, generation - 1}
        for slot in slots:
            end = datetime.date.fromisoformat(slot.end_date[:10])
            # Valid until after it is replaced (at the start of period generation + 2), with a period to spare.
            assert end >= period_start(slot.generation + 2, rotation_days) + datetime.timedelta(days=rotation_days)


def run_secret_value(run: Run) -> str:
    return str(run.named(OIDC_SECRET).inputs["stringData"]["client-secret"])


# --- bad specs -----------------------------------------------------------------------------------

SOURCE = f"stacks/Pulumi.{STACK}.yaml"


def base_spec() -> dict[str, Any]:
    config, _ = stack_config(STACK_FILE)
    spec = dict(json.loads(config["airflow-oidc:spec"]))
    # What stacks/defaults/prod.yaml gives it (the bad-spec files are checked without the defaults).
    spec["airflow"] = {**spec["airflow"], "forwardedAllowIps": "10.42.0.0/16"}
    return spec


@pytest.mark.parametrize(
    ("change", "key_path", "reason"),
    [
        pytest.param(
            {"idp": {"kind": "azuread", "tenantId": "contoso.onmicrosoft.com"}},
            "idp.tenantId",
            "'contoso.onmicrosoft.com' is not a tenant id: use the tenant's GUID",
            id="tenant-not-a-guid",
        ),
        pytest.param(
            {"tokens": {"accessTokenMinutes": 15}},
            "tokens.accessTokenMinutes",
            "the azuread provider has no token-lifetime policy resource",
            id="access-token-minutes",
        ),
    ],
)
def test_bad_entra_spec_names_file_key_and_reason(
    tmp_path: Path, change: dict[str, Any], key_path: str, reason: str
) -> None:
    raw = {**base_spec(), **change}
    error = file_error(tmp_path, raw)
    lines = problem_lines(str(error), key(key_path))
    assert any(reason in line for line in lines), str(error)
    assert len(error.problems) == 1, str(error)
    # The program refuses it the same way, before declaring anything.
    config, secret_keys = stack_config(STACK_FILE)
    run = Run(stack="badstack")
    with pytest.raises(pulumi.RunError) as raised:
        run_program("badstack", {**config, "airflow-oidc:spec": json.dumps(raw)}, secret_keys, run=run)
    assert str(raised.value) == without_lines(str(error))
    assert run.resources == []


def test_missing_tenant_names_the_provider_key_and_declares_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARM_TENANT_ID", raising=False)
    config, secret_keys = stack_config(STACK_FILE)
    del config["azuread:tenantId"]
    run = Run(stack=STACK)
    with pytest.raises(pulumi.RunError) as raised:
        run_program(STACK, config, secret_keys, run=run)
    assert str(raised.value).startswith(f"{SOURCE}: azuread:tenantId is not set:")
    assert "ARM_TENANT_ID" in str(raised.value) and "airflow-oidc:spec.idp.tenantId" in str(raised.value)
    assert run.resources == []
    # The environment variable the provider honours is enough.
    monkeypatch.setenv("ARM_TENANT_ID", TENANT)
    assert run_on(DAY, (config, secret_keys)).of_type(APP)


@pytest.mark.parametrize(
    ("group", "count", "key_path", "what"),
    [
        pytest.param("risk-oncall", 2, "access[1].group", "matches 2 groups", id="ambiguous-access-group"),
        pytest.param("risk-stakeholders", 2, "signIn.extraGroups[0]", "matches 2 groups", id="ambiguous-extra-group"),
        pytest.param("risk-engineers", 0, "access[2].group", "matches no group", id="missing-group"),
    ],
)
def test_a_group_lookup_matching_zero_or_several_groups_is_refused_before_anything_is_declared(
    monkeypatch: pytest.MonkeyPatch, group: str, count: int, key_path: str, what: str
) -> None:
    monkeypatch.setitem(azuread.MOCK_GROUP_COUNT, group, count)
    run = Run(stack=STACK)
    with pytest.raises(pulumi.RunError) as raised, frozen_today(DAY):
        run_program(STACK, *spec_with(idp={"createGroups": False}), run=run)
    message = str(raised.value)
    assert message.startswith(f"{SOURCE}: {key(key_path)}: {group!r} {what}"), message
    assert "display names are not unique in Entra ID; give the group's object id instead" in message
    if count:
        assert mock_group_id(group, 0) in message and mock_group_id(group, 1) in message
    # The lookups run with the provider checks, before the program declares anything but the provider
    # bound to the spec's tenant, which they go through (no resource at the IdP or in the cluster).
    assert [(resource.type, resource.inputs["tenantId"]) for resource in run.resources] == [
        ("pulumi:providers:azuread", TENANT)
    ]
    assert {token for token, _ in run.invokes} == {GET_GROUPS}
