"""Shared by the doctor's e2e modules: run `airflow-oidc doctor` as a user does, and the logout check."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from components.contract import CLIENT_SECRET_ENV
from localdev.deployment import PULUMI_PYTHON, E2eUser, LocalDeployment
from localdev.harness.process import REPO_ROOT

Checks = dict[str, dict[str, str]]


def run_doctor(
    deployment: LocalDeployment,
    work_dir: Path,
    *,
    token: str | None = None,
    stack: Path | None = None,
    with_secret: bool = True,
) -> tuple[int, Checks, str]:
    """(exit status, check name -> check, raw stdout) of `python -m components.cli doctor ... --format json`,
    in the Pulumi venv, against the deployment (its proxy's certificate, its provider's URL); with the
    client secret the api-server holds in the doctor's environment, as in the api-server pod."""
    args = [
        str(PULUMI_PYTHON),
        "-m",
        "components.cli",
        "doctor",
        str(stack or deployment.stack_file),
        "--format",
        "json",
        "--ca-file",
        str(deployment.nginx.cert_path),
        "--issuer-url",
        deployment.provider.issuer,
    ]
    if token is not None:
        token_file = work_dir / "pasted-id-token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        args += ["--id-token", str(token_file)]
    env = {key: value for key, value in os.environ.items() if key != CLIENT_SECRET_ENV}
    env["PYTHONPATH"] = str(REPO_ROOT)
    if with_secret:
        env[CLIENT_SECRET_ENV] = deployment.declared_env[CLIENT_SECRET_ENV]
    started = time.monotonic()
    result = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    assert deployment.declared_env[CLIENT_SECRET_ENV] not in result.stdout + result.stderr
    report = json.loads(result.stdout)
    print(f"[doctor] {time.monotonic() - started:.1f} s, exit {result.returncode}, {report['failed']} failed")
    return result.returncode, {check["name"]: check for check in report["checks"]}, result.stdout


def failed(checks: Checks) -> Checks:
    """Only the failed checks."""
    return {name: check for name, check in checks.items() if check["status"] == "fail"}


def _claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _close_pages(context: Any) -> None:
    """Close the UI left open by a sign-in: it polls the API and, once logged out, navigates to the
    login page on its own, which would start a second session in the middle of the next sign-in."""
    for page in list(context.pages):
        page.close()


def assert_logout_ends_the_idp_session(deployment: LocalDeployment, user: E2eUser) -> None:
    """FAB's bare cookie-clearing logout leaves the provider's session (the next sign-in skips its form);
    the UI's logout goes on to the provider's end_session_endpoint with id_token_hint, client_id and the
    registered post-logout redirect URI, lands on Airflow's login page, and the next sign-in asks the
    provider for credentials again."""
    base = deployment.base_url
    end_session = requests.get(deployment.provider.discovery_url, timeout=10).json()["end_session_endpoint"]
    post_logout = deployment.client.post_logout_redirect_uris[0]
    first = deployment.login(user, label="logout-first", keep_context=True)
    assert first.has_token and first.context is not None, first
    context = first.context
    try:
        _close_pages(context)
        assert any("login form" in step for step in first.steps), first.steps

        page = context.new_page()
        page.goto(f"{base}/auth/logout")  # FAB's FastAPI logout: cookies only, the provider's session stays
        page.close()
        second = deployment.login(user, label="logout-second", context=context, keep_context=True)
        _close_pages(context)
        assert second.has_token, second
        assert not any("login form" in step for step in second.steps), second.steps

        visited: list[str] = []
        page = context.new_page()
        page.on("request", lambda request: visited.append(request.url))
        page.goto(f"{base}/api/v2/auth/logout")
        page.wait_for_load_state("load")
        # oidc-provider asks to confirm; Keycloak does not with an id_token_hint (its button if it does).
        for confirm in ('button[name="logout"][value="yes"]', "#kc-logout"):
            if page.locator(confirm).count():
                with page.expect_navigation(wait_until="load"):
                    page.locator(confirm).click()
        landed = page.url
        page.close()

        (logout_request,) = [url for url in visited if url.split("?")[0] == end_session]
        query = dict(parse_qsl(urlsplit(logout_request).query))
        assert query["post_logout_redirect_uri"] == post_logout
        assert query["client_id"] == deployment.client.client_id
        hint = _claims(query["id_token_hint"])
        assert deployment.client.client_id in (hint["aud"] if isinstance(hint["aud"], list) else [hint["aud"]])
        assert landed == post_logout, (landed, visited)
        assert not any(cookie["name"] == "_token" for cookie in context.cookies())

        third = deployment.login(user, label="logout-third", context=context)
        assert third.has_token, third
        assert any("login form" in step for step in third.steps), third.steps
    finally:
        context.close()
