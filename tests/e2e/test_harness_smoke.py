"""Smoke test of the e2e harness with a hand-written webserver_config.py.

PostgreSQL + oidc-provider + 2 api-servers sharing their secret keys + nginx (TLS, production
hostname, each sign-in split across both api-servers) + Chromium: a user in a mapped group signs
in and is Admin; a user in no mapped group is refused and gets no user row; a user moved to
another group at the provider gets the new role at the next sign-in; the provider's negative
controls (tampered ID tokens) make Airflow refuse a mapped user.
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

from tests.e2e.harness.airflow import AirflowApiServers, render_constants, shared_secrets
from tests.e2e.harness.browser import Browser
from tests.e2e.harness.nginx import SPLIT_OAUTH_FLOW, Nginx, choose_https_port
from tests.e2e.harness.postgres import Postgres
from tests.e2e.harness.process import ARTIFACTS_ROOT, RunDir, start_in_parallel
from tests.e2e.harness.provider import OidcClient, OidcProvider, Shims

pytestmark = pytest.mark.e2e

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
            # Read by uvicorn only when `airflow api-server` gets --proxy-headers (not passed here):
            # the Flask side relies on ProxyFix, which trusts X-Forwarded-* whatever the peer.
            "FORWARDED_ALLOW_IPS": "*",
            "AIRFLOW_OIDC_CLIENT_ID": client.client_id,
            "AIRFLOW_OIDC_CLIENT_SECRET": client.client_secret,
        }
        airflow = AirflowApiServers(run.sub("airflow"), config_text, env, postgres.url, count=2)
        # Every sign-in starts on api-server 0 and finishes on api-server 1: the shared secret keys
        # and the database session backend must carry the OAuth state across replicas.
        nginx = Nginx(run.sub("nginx"), HOSTNAME, airflow.upstreams, listen_port=https_port, pin_paths=SPLIT_OAUTH_FLOW)
        browser = Browser(map_hosts=[HOSTNAME], artifacts_dir=ARTIFACTS_ROOT / run.path.name)
        start_in_parallel(stack, [airflow, nginx], here=[browser])
        timings["stack ready"] = time.monotonic() - started
        yield SmokeStack(base_url, provider, airflow, nginx, browser, timings)
        timings["tests done"] = time.monotonic() - started
    timings["stopped"] = time.monotonic() - started
    print(
        f"\n[e2e smoke] run dir {run.path}; seconds since start: "
        + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
    )


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
    # The sign-in crossed replicas: started on one api-server, called back on the other.
    upstream_of = {request.target.split("?")[0]: request.upstream for request in smoke.nginx.requests()}
    assert upstream_of[f"/auth/login/{PROVIDER}"] == smoke.airflow.upstreams[0]
    assert upstream_of[f"/auth/oauth-authorized/{PROVIDER}"] == smoke.airflow.upstreams[1]
    assert set(smoke.nginx.upstream_hits()) == set(smoke.airflow.upstreams), smoke.nginx.upstream_hits()


def test_unmapped_user_is_refused_without_a_user_row(smoke: SmokeStack) -> None:
    result = smoke.browser.login(smoke.base_url, PROVIDER, UNMAPPED, label="smoke-unmapped")

    assert not result.has_token, result.final_url
    assert result.landed_on_login_page, f"{result.final_url}: {result.steps}"
    assert "Invalid login" in result.page_text, result.page_text[:500]
    assert not smoke.airflow.user_exists(f"{PROVIDER}_{UNMAPPED}")


def test_moving_a_user_to_another_group_changes_the_role_at_next_login(smoke: SmokeStack) -> None:
    username = f"{PROVIDER}_{MOVER}"
    first = smoke.browser.login(smoke.base_url, PROVIDER, MOVER, label="smoke-mover-viewer", settle=False)
    assert first.has_token, f"{first.final_url}: {first.page_text[:300]}"
    assert smoke.airflow.user_roles(username) == {"Viewer"}

    smoke.provider.set_user_claims(MOVER, {**USERS[MOVER], "groups": ["airflow-admins"]})
    second = smoke.browser.login(smoke.base_url, PROVIDER, MOVER, label="smoke-mover-admin", settle=False)
    assert second.has_token, f"{second.final_url}: {second.page_text[:300]}"
    assert smoke.airflow.user_roles(username) == {"Admin"}


@pytest.mark.parametrize(
    ("shims", "reason"),
    [
        # Authlib 1.9 checks the audience only through `azp` (required when aud != client_id).
        (Shims(wrongAudience=True), "missing_claim: Missing claim: 'azp'"),
        (Shims(signWithUnpublishedKey=True), "bad_signature"),
    ],
    ids=["wrong-audience", "unpublished-signing-key"],
)
def test_provider_shims_make_airflow_refuse_the_id_token(
    smoke: SmokeStack, shims: Shims, reason: str, request: pytest.FixtureRequest
) -> None:
    """The negative controls work: a mapped user is refused when the ID token is tampered with."""
    marks = [path.stat().st_size for path in smoke.airflow.log_paths]
    smoke.provider.set_shims(shims)
    try:
        result = smoke.browser.login(smoke.base_url, PROVIDER, ADMIN, label=f"smoke-shim-{request.node.callspec.id}")
    finally:
        smoke.provider.set_shims(Shims())
    assert not result.has_token, result.final_url
    assert result.landed_on_login_page, f"{result.final_url}: {result.steps}"
    assert "The request to sign in was denied" in result.page_text, result.page_text[:500]
    new_log = "".join(
        path.read_text(errors="replace")[mark:] for path, mark in zip(smoke.airflow.log_paths, marks, strict=True)
    )
    assert f"Error authorizing OAuth access token: {reason}" in new_log, new_log[-2000:]
