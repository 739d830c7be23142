"""Against a real Okta org and cluster: run only where credentials exist, skipped with the reason elsewhere.

    OKTA_ORG_NAME=dev-123456 OKTA_BASE_URL=okta.com OKTA_API_TOKEN=... KUBECONFIG=~/.kube/config \
        .venv/bin/python -m pytest tests/cloud -m cloud

The preview runs the real program with the real providers against a throwaway local backend: it
creates nothing. The discovery checks read the org's public OpenID configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from components.contract import client_contract
from components.idp.okta import okta_org_url
from components.stack_config import spec_from_stack_file
from tests.cloud.live import ROOT, discovery, preview, require_env

pytestmark = pytest.mark.cloud


def require_okta(*names: str) -> dict[str, str]:
    return require_env(*names, what="Okta credentials")


def test_org_server_advertises_the_groups_scope_the_program_requests() -> None:
    env = require_okta("OKTA_ORG_NAME")
    org = okta_org_url(env["OKTA_ORG_NAME"], os.environ.get("OKTA_BASE_URL"))
    spec = spec_from_stack_file(ROOT / "stacks" / "Pulumi.dev.yaml")
    provider = {"okta:orgName": env["OKTA_ORG_NAME"], "okta:baseUrl": os.environ.get("OKTA_BASE_URL") or "okta.com"}
    contract = client_contract(spec, stack="dev", provider=provider)
    assert contract.issuer == org
    document = discovery(contract.issuer)
    assert document["issuer"] == contract.issuer
    assert set(contract.scopes) <= set(document["scopes_supported"])
    assert "S256" in document.get("code_challenge_methods_supported", [])


def test_preview_of_the_dev_stack_with_real_providers(tmp_path: Path) -> None:
    env = require_okta("OKTA_ORG_NAME", "OKTA_API_TOKEN", "KUBECONFIG")
    result = preview(tmp_path, "dev", {"okta:orgName": env["OKTA_ORG_NAME"]})
    assert result.change_summary.get("create", 0) >= 10, result.stdout[-3000:]
    assert "https://airflow.dev.payments.example.com/auth/oauth-authorized/okta" in result.stdout or (
        "okta:app/oAuth:OAuth" in result.stdout
    ), result.stdout[-3000:]
