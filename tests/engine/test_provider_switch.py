"""A stack deployed before the program bound an explicit provider (the default one, from stack config) takes the
explicit provider without replacing any identity resource: the engine asks the provider (DiffConfig) whether the
new configuration needs replacements, and the Keycloak provider says it does not. Checked with the real engine on
the Keycloak kind's resources as the program declares them (tests/engine/provider_switch/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from localdev.harness.process import REPO_ROOT, RunDir
from tests.engine.conftest import Keycloak
from tests.engine.scenario import preview_json_ops
from tests.engine.workspace import PulumiWorkspace

PROGRAM = Path(__file__).resolve().parent / "provider_switch"
STACK = "switch"


@pytest.fixture(scope="module")
def switch_workspace(workspace: PulumiWorkspace, run_dir: RunDir) -> PulumiWorkspace:
    ws = PulumiWorkspace(run_dir.sub("provider-switch"), workspace.engine, workspace.extra_env)
    ws.project.mkdir(parents=True)
    shutil.copy(PROGRAM / "__main__.py", ws.project / "__main__.py")
    text = (PROGRAM / "Pulumi.yaml").read_text().replace("VIRTUALENV", str(REPO_ROOT / ".venv"))
    (ws.project / "Pulumi.yaml").write_text(text)
    ws.home.mkdir(parents=True)
    ws.state.mkdir(parents=True)
    (ws.home / "plugins").symlink_to(ws.engine.plugins_dir)
    ws.run("login", f"file://{ws.state}")
    return ws


def test_default_to_explicit_provider_replaces_nothing(switch_workspace: PulumiWorkspace, keycloak: Keycloak) -> None:
    ws = switch_workspace
    ws.run("stack", "init", STACK, "--secrets-provider", "passphrase")
    ws.set(STACK, "keycloak:url", keycloak.url)
    # What a stack on the default provider needed on a loaded machine (its 5 s default times out here).
    ws.set(STACK, "keycloak:clientTimeout", "120")
    try:
        ws.run("up", "--yes", "--skip-preview", stack=STACK)
        explicit = {"PROVIDER_SWITCH": "explicit"}
        ops = preview_json_ops(ws.run("preview", "--json", stack=STACK, env=explicit))
        identity = {urn: op for urn, op in ops.items() if "::pulumi:providers:" not in urn}
        # Each resource only moves to the new provider reference: an update at most, never a replacement.
        assert set(identity.values()) <= {"update"}, ops
        assert any(op == "create" and "pulumi:providers:keycloak::airflow-oidc-idp" in urn for urn, op in ops.items())
        before = {r["urn"]: r["id"] for r in ws.resources(STACK) if r["type"].startswith("keycloak:")}
        ws.run("up", "--yes", "--skip-preview", stack=STACK, env=explicit)
        after = {r["urn"]: r for r in ws.resources(STACK) if r["type"].startswith("keycloak:")}
        assert {urn: r["id"] for urn, r in after.items()} == before, "same resources, same ids"
        assert all("airflow-oidc-idp" in r["provider"] for r in after.values())
        ws.run("up", "--yes", "--expect-no-changes", stack=STACK, env=explicit)
    finally:
        ws.run("destroy", "--yes", stack=STACK, check=False, env={"PROVIDER_SWITCH": "explicit"})
