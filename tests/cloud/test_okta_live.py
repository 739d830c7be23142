"""Against a real Okta org and cluster: run only where credentials exist, skipped with the reason elsewhere.

    OKTA_ORG_NAME=dev-123456 OKTA_BASE_URL=okta.com OKTA_API_TOKEN=... KUBECONFIG=~/.kube/config \
        .venv/bin/python -m pytest tests/cloud -m cloud

The preview runs the real program with the real providers against a throwaway local backend: it
creates nothing. The discovery checks read the org's public OpenID configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from components.contract import client_contract
from components.idp.okta import okta_org_url
from components.stack_config import spec_from_stack_file

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cloud


def require_env(*names: str) -> dict[str, str]:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.skip(f"needs real Okta credentials: set {', '.join(missing)} (a test org, never production)")
    return {name: os.environ[name] for name in names}


def discovery(issuer: str) -> dict[str, Any]:
    with urllib.request.urlopen(issuer + "/.well-known/openid-configuration", timeout=20) as response:
        return json.loads(response.read())


def test_org_server_advertises_the_groups_scope_the_program_requests() -> None:
    env = require_env("OKTA_ORG_NAME")
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
    require_env("OKTA_ORG_NAME", "OKTA_API_TOKEN", "KUBECONFIG")
    if shutil.which("pulumi") is None:
        pytest.skip("needs the Pulumi CLI on PATH (https://www.pulumi.com/docs/install/)")
    from pulumi import automation as auto

    # A copy of the project, so the stack file can name the test org without touching the repo.
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "components", project / "components")
    shutil.copytree(ROOT / "stacks", project / "stacks")
    os.symlink(ROOT / ".venv", project / ".venv")
    os.environ.setdefault("PULUMI_CONFIG_PASSPHRASE", "airflow-oidc-cloud-test")
    backend = tmp_path / "backend"
    backend.mkdir()
    workspace = auto.LocalWorkspaceOptions(work_dir=str(project), env_vars={"PULUMI_BACKEND_URL": backend.as_uri()})
    stack = auto.create_or_select_stack("dev", work_dir=str(project), opts=workspace)
    stack.set_config("okta:orgName", auto.ConfigValue(os.environ["OKTA_ORG_NAME"]))
    preview = stack.preview(color="never")
    assert preview.change_summary.get(auto.OpType.CREATE, 0) >= 10, preview.stdout[-3000:]
    assert "https://airflow.dev.payments.example.com/auth/oauth-authorized/okta" in preview.stdout or (
        "okta:app/oAuth:OAuth" in preview.stdout
    ), preview.stdout[-3000:]
