"""Every kind's IdP resources go through an explicit provider bound to what the spec says.

The default provider reads only the stack config: a stack that names its Keycloak server in `idp.url`, its
Entra tenant in `idp.tenantId` or its Okta org in `idp.orgUrl` would otherwise manage another server,
tenant or org than the one whose issuer Airflow trusts (the real engine found the first at preview).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.idp import KINDS, kind_name
from components.idp.base import PROVIDER_RESOURCE_NAME
from tests.conftest import ROOT
from tests.mock_engine import Registration, Run, run_program, stack_config

# One committed stack per kind.
KIND_STACKS = {
    "okta": "prod",
    "oidc": "local-oidc",
    "keycloak": "search-prod",
    "azuread": "risk-prod",
    "google": "growth-prod",
}
PACKAGES = {kind_name(model): model.PROVIDER_PACKAGE for model in KINDS}


def run_stack(stack: str, edit: Any = None, extra: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> Run:
    """The stack file's config with the spec changed by `edit(spec)`, `extra` config keys set, `drop` removed."""
    config, secret_keys = stack_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    spec = json.loads(config["airflow-oidc:spec"])
    if edit is not None:
        edit(spec)
    config = {key: value for key, value in config.items() if key not in drop}
    config = {**config, **(extra or {}), "airflow-oidc:spec": json.dumps(spec)}
    return run_program(stack, config, secret_keys)


def idp_resources(run: Run, package: str | None) -> list[Registration]:
    """The custom resources under the kind's component (`airflow-oidc:idp:*`) of its package (or, for a kind
    without one, of any package but the program's own secrets')."""
    under_kind = [r for r in run.resources if r.custom and "airflow-oidc:idp:" in r.urn]
    if package is not None:
        return [r for r in under_kind if r.type.startswith(f"{package}:")]
    return [r for r in under_kind if not r.type.startswith(("pulumi:", "random:"))]


def the_provider(run: Run, package: str) -> Registration:
    (provider,) = [r for r in run.resources if r.type == f"pulumi:providers:{package}"]
    return provider


def test_every_kind_is_covered() -> None:
    assert set(KIND_STACKS) == set(PACKAGES)


@pytest.mark.parametrize("kind", sorted(KIND_STACKS))
def test_the_kinds_resources_use_one_explicit_provider_never_the_default(kind: str) -> None:
    run = run_stack(KIND_STACKS[kind])
    package = PACKAGES[kind]
    resources = idp_resources(run, package)
    if package is None:
        # The generic kind registers the client by hand: no IdP resource, no IdP provider.
        assert resources == []
        assert not [r for r in run.resources if r.type.startswith("pulumi:providers:")]
        return
    assert resources, f"{kind}: no IdP resources declared"
    provider = the_provider(run, package)
    assert provider.name == PROVIDER_RESOURCE_NAME
    by_provider = {r.urn: r.provider.rsplit("::", 1)[0] for r in resources}
    assert set(by_provider.values()) == {provider.urn}, by_provider


@pytest.mark.parametrize(
    ("kind", "edit", "extra", "drop", "expected"),
    [
        pytest.param(
            "keycloak",
            lambda spec: spec["idp"].update(url="https://id.corp-example.net"),
            {},
            ("keycloak:url",),
            {"url": "https://id.corp-example.net"},
            id="keycloak-idp-url-alone-reaches-the-provider",
        ),
        pytest.param(
            "keycloak",
            lambda spec: spec["idp"].update(url="https://id.corp-example.net"),
            {"keycloak:url": "https://keycloak-admin.corp-example.internal"},
            (),
            {"url": "https://keycloak-admin.corp-example.internal"},
            id="keycloak-url-set-too-is-the-admin-endpoint",
        ),
        pytest.param(
            "keycloak",
            None,
            {},
            (),
            {"url": "https://sso.corp-example.net", "realm": "master", "clientTimeout": "120"},
            id="keycloak-stack-config-and-the-timeout-default",
        ),
        pytest.param(
            "keycloak",
            None,
            {"keycloak:clientTimeout": "30", "keycloak:clientId": "pulumi"},
            (),
            {"clientTimeout": "30", "clientId": "pulumi"},
            id="keycloak-stack-timeout-wins",
        ),
        pytest.param(
            "okta",
            lambda spec: spec["idp"].update(orgUrl="https://login.acme-corp.com"),
            {},
            (),
            {"orgName": "login", "baseUrl": "acme-corp.com"},
            id="okta-org-url-wins-over-org-name",
        ),
        pytest.param("okta", None, {}, (), {"orgName": "acme", "baseUrl": "okta.com"}, id="okta-stack-org"),
        pytest.param(
            "azuread",
            lambda spec: spec["idp"].update(tenantId="11111111-2222-4333-8444-555555555555"),
            {},
            ("azuread:tenantId",),
            {"tenantId": "11111111-2222-4333-8444-555555555555"},
            id="entra-idp-tenant",
        ),
        pytest.param(
            "azuread", None, {}, (), {"tenantId": "7d1b2c3a-0000-4000-8000-1234567890ab"}, id="entra-stack-tenant"
        ),
        pytest.param("google", None, {}, (), {"project": "data-platform-prod"}, id="google-project"),
    ],
)
def test_the_provider_is_bound_to_what_the_spec_says(
    kind: str, edit: Any, extra: dict[str, str], drop: tuple[str, ...], expected: dict[str, str]
) -> None:
    run = run_stack(KIND_STACKS[kind], edit, extra, drop)
    inputs = the_provider(run, str(PACKAGES[kind])).inputs
    assert {key: inputs.get(key) for key in expected} == expected


def test_the_keycloak_timeout_from_the_environment_is_left_to_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYCLOAK_CLIENT_TIMEOUT", "45")
    inputs = the_provider(run_stack("search-prod"), "keycloak").inputs
    # The SDK reads the variable itself: the program's default does not override it.
    assert inputs["clientTimeout"] == "45"


def test_a_secret_provider_setting_stays_secret() -> None:
    config, secret_keys = stack_config(ROOT / "stacks" / "Pulumi.search-prod.yaml")
    config = {**config, "keycloak:clientSecret": "s3cr3t-value-for-the-provider"}
    run = run_program("search-prod", config, [*secret_keys, "keycloak:clientSecret"])
    provider = the_provider(run, "keycloak")
    assert provider.inputs["clientSecret"] == "s3cr3t-value-for-the-provider"
    assert "s3cr3t-value-for-the-provider" not in json.dumps(
        {key: value for key, value in provider.raw_inputs.items() if key != "clientSecret"}
    )
    assert provider.raw_inputs["clientSecret"] != "s3cr3t-value-for-the-provider"  # wrapped as a secret


def test_the_program_clock_can_be_set_for_a_rotation_rehearsal(monkeypatch: pytest.MonkeyPatch) -> None:
    """AIRFLOW_OIDC_TODAY moves the program into another rotation period: exactly the secret's keeper changes."""

    def keepers(run: Run) -> dict[str, Any]:
        return {r.name: r.inputs.get("keepers") for r in run.of_type("random:index/randomPassword:RandomPassword")}

    monkeypatch.setenv("AIRFLOW_OIDC_TODAY", "2030-01-01")
    now = keepers(run_stack("search-prod"))
    monkeypatch.setenv("AIRFLOW_OIDC_TODAY", "2030-04-01")  # more than the stack's 90 days later
    later = keepers(run_stack("search-prod"))
    changed = {name for name in now if now[name] != later[name]}
    assert changed == {"airflow-oidc-keycloak-client-secret"}
    monkeypatch.setenv("AIRFLOW_OIDC_TODAY", "first of april")
    with pytest.raises(Exception, match="AIRFLOW_OIDC_TODAY='first of april' is not a date"):
        run_stack("search-prod")
