"""Shared by the cloud tier: skip with the reason when credentials are absent, read a real issuer's
discovery document, and preview a stack with the real providers against a throwaway local backend."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def require_env(*names: str, what: str) -> dict[str, str]:
    """These environment variables, or skip naming the missing ones and what they are for."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.skip(f"needs real {what}: set {', '.join(missing)} (a test tenant, never production)")
    return {name: os.environ[name] for name in names}


def discovery(issuer: str) -> dict[str, Any]:
    """The issuer's OpenID configuration (a terminating `/` is dropped first, as Discovery 1.0 says)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    with urllib.request.urlopen(url, timeout=20) as response:
        return dict(json.loads(response.read()))


def preview(tmp_path: Path, stack: str, config: dict[str, str]) -> Any:
    """`pulumi preview` of `stacks/Pulumi.<stack>.yaml` with the real providers; creates nothing.

    A copy of the project, so the stack's config can name the test tenant without touching the repo.
    """
    if shutil.which("pulumi") is None:
        pytest.skip("needs the Pulumi CLI on PATH (https://www.pulumi.com/docs/install/)")
    from pulumi import automation as auto

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
    selected = auto.create_or_select_stack(stack, work_dir=str(project), opts=workspace)
    for key, value in config.items():
        selected.set_config(key, auto.ConfigValue(value))
    return selected.preview(color="never")
