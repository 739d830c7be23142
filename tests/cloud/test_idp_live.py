"""Against a real Entra tenant, Keycloak server and Google Workspace: each test runs only where its
credentials exist and skips with the reason elsewhere.

    ARM_TENANT_ID=... ARM_CLIENT_ID=... ARM_CLIENT_SECRET=... KUBECONFIG=... \\
    KEYCLOAK_URL=https://sso.example.net KEYCLOAK_CLIENT_ID=... KEYCLOAK_CLIENT_SECRET=... \\
    GOOGLE_PROJECT=... GOOGLE_APPLICATION_CREDENTIALS=... \\
        .venv/bin/python -m pytest tests/cloud -m cloud

Discovery checks read the IdP's public OpenID configuration; previews run the real program with the
real providers against a throwaway local backend and create nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.contract import client_contract
from components.stack_config import provider_from_stack_file, spec_from_stack_file
from tests.cloud.live import ROOT, discovery, preview, require_env

pytestmark = pytest.mark.cloud


def contract_of(stack: str, provider: dict[str, str]):  # type: ignore[no-untyped-def]
    path = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    spec = spec_from_stack_file(path)
    return spec, client_contract(spec, stack=stack, provider={**provider_from_stack_file(path, spec), **provider})


def test_entra_discovery_matches_the_issuer_and_tenant_the_program_trusts() -> None:
    env = require_env("ARM_TENANT_ID", what="Entra ID tenant")
    _, contract = contract_of("risk-prod", {"azuread:tenantId": env["ARM_TENANT_ID"]})
    document = discovery(contract.issuer)
    assert document["issuer"] == contract.issuer == f"https://login.microsoftonline.com/{env['ARM_TENANT_ID']}/v2.0"
    assert set(contract.scopes) <= set(document["scopes_supported"])
    assert "code" in document["response_types_supported"]
    assert document.get("end_session_endpoint"), "RP-initiated logout needs it"


def test_entra_preview_with_real_providers(tmp_path: Path) -> None:
    env = require_env("ARM_TENANT_ID", "ARM_CLIENT_ID", "ARM_CLIENT_SECRET", "KUBECONFIG", what="Entra ID credentials")
    result = preview(tmp_path, "risk-prod", {"azuread:tenantId": env["ARM_TENANT_ID"]})
    assert result.change_summary.get("create", 0) >= 10, result.stdout[-3000:]
    assert "azuread:index/application:Application" in result.stdout, result.stdout[-3000:]


def test_keycloak_discovery_matches_the_issuer_the_program_trusts() -> None:
    """The realm of stacks/Pulumi.search-prod.yaml must exist on the server KEYCLOAK_URL names."""
    env = require_env("KEYCLOAK_URL", what="Keycloak server")
    _, contract = contract_of("search-prod", {"keycloak:url": env["KEYCLOAK_URL"]})
    document = discovery(contract.issuer)
    assert document["issuer"] == contract.issuer
    assert "S256" in document.get("code_challenge_methods_supported", [])
    assert document.get("end_session_endpoint")


def test_keycloak_preview_with_real_providers(tmp_path: Path) -> None:
    env = require_env(
        "KEYCLOAK_URL", "KEYCLOAK_CLIENT_ID", "KEYCLOAK_CLIENT_SECRET", "KUBECONFIG", what="Keycloak admin client"
    )
    result = preview(tmp_path, "search-prod", {"keycloak:url": env["KEYCLOAK_URL"]})
    assert "keycloak:openid/client:Client" in result.stdout, result.stdout[-3000:]


def test_google_discovery_publishes_what_the_security_manager_checks() -> None:
    env = require_env("GOOGLE_PROJECT", what="Google Cloud project")
    _, contract = contract_of("growth-prod", {"gcp:project": env["GOOGLE_PROJECT"]})
    document = discovery(contract.issuer)
    assert document["issuer"] == contract.issuer == "https://accounts.google.com"
    assert "email_verified" in document.get("claims_supported", [])  # the security manager requires it true
    assert "end_session_endpoint" not in document  # why Google logout ends Airflow's session only


def test_google_preview_with_real_providers(tmp_path: Path) -> None:
    env = require_env("GOOGLE_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS", "KUBECONFIG", what="Google credentials")
    result = preview(tmp_path, "growth-prod", {"gcp:project": env["GOOGLE_PROJECT"]})
    assert "gcp:serviceaccount/account:Account" in result.stdout, result.stdout[-3000:]
