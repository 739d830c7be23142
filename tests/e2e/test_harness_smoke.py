"""Smoke test of the e2e harness with a hand-written webserver_config.py.

PostgreSQL + oidc-provider + 2 api-servers sharing their secret keys + nginx (TLS, production
hostname) + Chromium: a user in a mapped group signs in and is Admin; a user in no mapped group
is refused and gets no user row.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="!!! playwright is not importable: run with .venv-airflow/bin/pytest")
pytest.importorskip("airflow", reason="!!! airflow is not importable: run with .venv-airflow/bin/pytest")

from tests.e2e.harness.airflow import AirflowApiServers  # noqa: E402
from tests.e2e.harness.browser import Browser  # noqa: E402
from tests.e2e.harness.config import render_constants, shared_secrets  # noqa: E402
from tests.e2e.harness.nginx import Nginx, choose_https_port  # noqa: E402
from tests.e2e.harness.postgres import Postgres  # noqa: E402
from tests.e2e.harness.process import RunDir, start_in_parallel  # noqa: E402
from tests.e2e.harness.provider import OidcClient, OidcProvider, Shims  # noqa: E402

HOSTNAME = "airflow.e2e.example.com"
PROVIDER = "oidc"
CONFIG_FIXTURE = Path(__file__).parent / "fixtures" / "webserver_config_handwritten.py"

ADMIN = "alice"
MOVER = "bob"
UNMAPPED = "mallory"
USERS = {
    ADMIN: {
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Admin",
        "given_name": "Alice",
        "family_name": "Admin",
        "preferred_username": "alice@example.com",
        "groups": ["airflow-admins", "everyone"],
    },
    MOVER: {
        "email": "bob@example.com",
        "email_verified": True,
        "name": "Bob Mover",
        "given_name": "Bob",
        "family_name": "Mover",
        "preferred_username": "bob@example.com",
        "groups": ["airflow-viewers"],
    },
    UNMAPPED: {
        "email": "mallory@example.com",
        "email_verified": True,
        "name": "Mallory Nogroup",
        "given_name": "Mallory",
        "family_name": "Nogroup",
        "preferred_username": "mallory@example.com",
        "groups": ["everyone", "sales"],
    },
}


@dataclass
class SmokeStack:
    """The running stack the tests talk to."""

    base_url: str
    provider: OidcProvider
    airflow: AirflowApiServers
    nginx: Nginx
    browser: Browser
    timings: dict[str, float]


@pytest.fixture(scope="module")
def smoke(e2e_prerequisites: None) -> Iterator[SmokeStack]:
    """Start everything (independent parts in parallel); stop it all at the end of the module."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    run = RunDir.create("smoke")
    https_port = choose_https_port(443)
    base_url = f"https://{HOSTNAME}" + ("" if https_port == 443 else f":{https_port}")
    client = OidcClient(
        client_id="airflow-e2e",
        client_secret=secrets.token_urlsafe(24),
        redirect_uris=[f"{base_url}/auth/oauth-authorized/{PROVIDER}"],
        post_logout_redirect_uris=[f"{base_url}/auth/login/"],
    )
    with ExitStack() as stack:
        postgres = Postgres(run.sub("postgres"))
        provider = OidcProvider(run.sub("provider"), client, USERS, issuer_path="/oauth2/aus1e2e")
        start_in_parallel(stack, [postgres, provider])
        timings["postgres+provider"] = time.monotonic() - started

        config_text = render_constants(CONFIG_FIXTURE.read_text(), ISSUER=provider.issuer)
        env = {
            **shared_secrets(),
            "AIRFLOW__FAB__ENABLE_PROXY_FIX": "True",
            "AIRFLOW__API__BASE_URL": base_url,
            "FORWARDED_ALLOW_IPS": "*",
            "AIRFLOW_OIDC_CLIENT_ID": client.client_id,
            "AIRFLOW_OIDC_CLIENT_SECRET": client.client_secret,
        }
        airflow = AirflowApiServers(run.sub("airflow"), config_text, env, postgres.url, count=2)
        nginx = Nginx(run.sub("nginx"), HOSTNAME, airflow.upstreams, listen_port=https_port)
        browser = Browser(map_hosts=[HOSTNAME])
        start_in_parallel(stack, [airflow, nginx], here=[browser])
        timings["stack ready"] = time.monotonic() - started
        yield SmokeStack(base_url, provider, airflow, nginx, browser, timings)
        timings["tests done"] = time.monotonic() - started
    timings["stopped"] = time.monotonic() - started
    print(f"\n[e2e smoke] run dir {run.path}; seconds since start: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


def test_mapped_user_signs_in_as_admin(smoke: SmokeStack) -> None:
    result = smoke.browser.login(smoke.base_url, PROVIDER, ADMIN, label="smoke-admin")

    assert result.has_token, f"no _token cookie; ended at {result.final_url}: {result.page_text[:300]} {result.steps}"
    assert not result.landed_on_login_page, result.final_url
    assert result.final_url.startswith(smoke.base_url + "/"), result.final_url
    username = f"{PROVIDER}_{ADMIN}"
    assert smoke.airflow.user_roles(username) == {"Admin"}
    # The JWT from one replica is accepted by the other (shared [api_auth] jwt_secret).
    for server in range(smoke.airflow.count):
        response = smoke.airflow.fab_user(result.token or "", username, server=server)
        assert response.status_code == 200, (server, response.status_code, response.text[:300])
        body = response.json()
        assert body["username"] == username
        assert [role["name"] for role in body["roles"]] == ["Admin"]
        assert body["email"] == USERS[ADMIN]["email"]
    # Round-robin really spread the sign-in over both api-servers.
    assert set(smoke.nginx.upstream_hits()) == set(smoke.airflow.upstreams), smoke.nginx.upstream_hits()


def test_unmapped_user_is_refused_without_a_user_row(smoke: SmokeStack) -> None:
    result = smoke.browser.login(smoke.base_url, PROVIDER, UNMAPPED, label="smoke-unmapped")

    assert not result.has_token, result.final_url
    assert result.landed_on_login_page, f"{result.final_url}: {result.steps}"
    assert "Invalid login" in result.page_text, result.page_text[:500]
    assert not smoke.airflow.user_exists(f"{PROVIDER}_{UNMAPPED}")


def test_moving_a_user_to_another_group_changes_the_role_at_next_login(smoke: SmokeStack) -> None:
    username = f"{PROVIDER}_{MOVER}"
    first = smoke.browser.login(smoke.base_url, PROVIDER, MOVER, label="smoke-mover-viewer")
    assert first.has_token, f"{first.final_url}: {first.page_text[:300]}"
    assert smoke.airflow.user_roles(username) == {"Viewer"}

    smoke.provider.set_user_claims(MOVER, {**USERS[MOVER], "groups": ["airflow-admins"]})
    second = smoke.browser.login(smoke.base_url, PROVIDER, MOVER, label="smoke-mover-admin")
    assert second.has_token, f"{second.final_url}: {second.page_text[:300]}"
    assert smoke.airflow.user_roles(username) == {"Admin"}


@pytest.mark.parametrize(
    ("shims", "reason"),
    [
        (Shims(wrongAudience=True), "aud"),
        (Shims(signWithUnpublishedKey=True), "signature"),
    ],
    ids=["wrong-audience", "unpublished-signing-key"],
)
def test_provider_shims_make_airflow_refuse_the_id_token(smoke: SmokeStack, shims: Shims, reason: str) -> None:
    """The negative controls work: a mapped user is refused when the ID token is tampered with."""
    marks = [path.stat().st_size for path in smoke.airflow.log_paths]
    smoke.provider.set_shims(shims)
    try:
        result = smoke.browser.login(smoke.base_url, PROVIDER, ADMIN, label=f"smoke-shim-{reason}")
    finally:
        smoke.provider.set_shims(Shims())
    assert not result.has_token, result.final_url
    assert result.landed_on_login_page, f"{result.final_url}: {result.steps}"
    assert "The request to sign in was denied" in result.page_text, result.page_text[:500]
    new_log = "".join(
        path.read_text(errors="replace")[mark:] for path, mark in zip(smoke.airflow.log_paths, marks, strict=True)
    )
    assert "Error authorizing OAuth access token" in new_log
    assert reason in new_log.lower(), new_log[-2000:]
