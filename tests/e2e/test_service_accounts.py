"""Service accounts end to end: stacks/Pulumi.local-oidc.yaml deployed as declared (its two
`serviceAccounts` registered at the real oidc-provider as `serviceAccountRegistration` says).

A script playing a CI job gets an access token from the provider with client credentials, exchanges
it at Airflow's `POST /auth/token` (through the TLS ingress), and triggers a DAG run through the
public REST API: the run's triggering user is the service account. Each refusal has its own test,
and the api-servers' log must name its reason. A person who triggers a run appears by a readable
identity beside their stable username.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from localdev.deployment import OTHER_RESOURCE, UNLISTED_SERVICE_ACCOUNT, LocalDeployment
from localdev.harness.process import STATE_DEADLINE, wait_until
from tests.e2e.conftest import stack_deployment

pytestmark = pytest.mark.e2e

DAGS = Path(__file__).with_name("dags")
DAG_ID = "airflow_oidc_deploy"


def serialize_test_dag(deployment: LocalDeployment) -> None:
    """The api-servers parse no DAGs: `airflow dags reserialize` writes the test DAG to the database
    (idempotent: the deployment is shared with the stack's other modules)."""
    env = {**deployment.airflow.process_env(0), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS)}
    log = deployment.run.sub("airflow") / "dags-reserialize.log"
    with log.open("w") as out:
        subprocess.run(
            [str(deployment.airflow.airflow_bin), "dags", "reserialize"],
            env=env,
            cwd=deployment.airflow.home,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=True,
        )


deployment = stack_deployment("local-oidc", setup=serialize_test_dag)


class _ResolvedTo(requests.adapters.HTTPAdapter):
    """Connects to the local ingress while TLS (SNI, certificate check) and Host name the stack's hostname."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(server_hostname=self.hostname, assert_hostname=self.hostname)
        super().init_poolmanager(*args, **kwargs)


def public_request(deployment: LocalDeployment, method: str, path: str, **kwargs: Any) -> Any:
    """A request to the stack's public URL through the local TLS ingress (the hostname need not resolve)."""
    session = requests.Session()
    session.mount("https://", _ResolvedTo(deployment.hostname))
    port = deployment.https_port
    host = deployment.hostname + ("" if port == 443 else f":{port}")
    headers = {"Host": host, **kwargs.pop("headers", {})}
    url = f"https://127.0.0.1:{port}{path}"
    return session.request(method, url, headers=headers, verify=str(deployment.nginx.cert_path), timeout=30, **kwargs)


def exchange(deployment: LocalDeployment, *, bearer: str | None = None, body: dict[str, Any] | None = None) -> Any:
    """`POST /auth/token` at the public URL, as the CI job calls it."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return public_request(deployment, "POST", "/auth/token", json=body if body is not None else {}, headers=headers)


def airflow_token(deployment: LocalDeployment, account: str) -> str:
    response = exchange(deployment, bearer=deployment.service_account_token(account))
    assert response.status_code == 201, response.text
    return str(response.json()["access_token"])


def api(deployment: LocalDeployment, method: str, path: str, token: str, **kwargs: Any) -> Any:
    return public_request(deployment, method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def trigger(deployment: LocalDeployment, token: str) -> Any:
    return api(deployment, "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", token, json={"logical_date": None})


def refused_with(deployment: LocalDeployment, bearer: str, reason: str) -> None:
    """The exchange answers 401 and an api-server logged the refusal with `reason`."""
    marks = deployment.airflow_log_marks()
    response = exchange(deployment, bearer=bearer)
    assert response.status_code == 401, response.text
    assert "access_token" not in response.text
    logged = assert_logged(deployment, marks, reason)
    assert "refused a service-account token" in logged


def assert_logged(deployment: LocalDeployment, marks: list[int], text: str) -> str:
    """An api-server logged `text` after `marks` (waited for); what they logged."""
    return deployment.expect_airflow_log(marks, text)


def resigned(token: str, key: Any, *, kid: str | None = None, **claims: Any) -> str:
    """The provider's token with `claims` changed, signed with `key` (the provider's own, or another)."""
    header = jwt.get_unverified_header(token)
    payload = {**jwt.decode(token, options={"verify_signature": False}), **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid or header["kid"], "typ": header["typ"]})


def provider_key(deployment: LocalDeployment) -> Any:
    """The provider's signing key (the harness keeps it on disk so restarts sign with the same key)."""
    return jwt.algorithms.RSAAlgorithm.from_jwk(deployment.provider.key_path.read_text())


def human_id_token(deployment: LocalDeployment, account: str) -> str:
    """A person's real ID token for the Airflow client: the code flow driven without a browser."""
    provider, client = deployment.provider, deployment.client
    redirect_uri = client.redirect_uris[0]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    session = requests.Session()
    url = (
        provider.issuer
        + "/auth?"
        + requests.compat.urlencode(
            {
                "client_id": client.client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": "openid email profile",
                "state": secrets.token_urlsafe(8),
                "nonce": secrets.token_urlsafe(8),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
    )
    response = session.get(url, allow_redirects=True, timeout=10)
    assert "/interaction/" in response.url, response.url
    response = session.post(
        response.url, data={"prompt": "login", "login": account, "password": "any"}, allow_redirects=False, timeout=10
    )
    for _ in range(10):
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(redirect_uri):
            break
        response = session.get(location, allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(location).query)["code"][0]
    tokens = requests.post(
        provider.issuer + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(client.client_id, client.client_secret),
        timeout=10,
    )
    assert tokens.status_code == 200, tokens.text
    return str(tokens.json()["id_token"])


# --- the CI job ------------------------------------------------------------------------------


def test_ci_job_triggers_a_dag_run_as_its_service_account(deployment: LocalDeployment) -> None:
    access_token = deployment.service_account_token("ci-deploy")
    claims = jwt.decode(access_token, options={"verify_signature": False})
    assert claims["client_id"] == "airflow-local-ci-deploy" and claims["aud"] == "https://localhost:8443"
    token = airflow_token(deployment, "ci-deploy")
    response = trigger(deployment, token)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["triggering_user_name"] == "ci-deploy"
    fetched = api(deployment, "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}", token)
    assert fetched.status_code == 200 and fetched.json()["triggering_user_name"] == "ci-deploy"
    # The Airflow user holds exactly the spec's role.
    assert deployment.airflow.user_roles("ci-deploy") == {"Op"}
    assert deployment.roles("ci-deploy") == {"Op"}


def test_each_account_holds_exactly_its_role(deployment: LocalDeployment) -> None:
    token = airflow_token(deployment, "reporting")
    assert deployment.airflow.user_roles("reporting") == {"Viewer"}
    assert api(deployment, "GET", f"/api/v2/dags/{DAG_ID}", token).status_code == 200
    assert trigger(deployment, token).status_code == 403


def test_a_role_changed_by_hand_is_put_back_at_the_next_exchange(deployment: LocalDeployment) -> None:
    airflow_token(deployment, "reporting")
    with deployment.airflow._connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO ab_user_role (id, user_id, role_id) "
            "SELECT nextval('ab_user_role_id_seq'), u.id, r.id FROM ab_user u, ab_role r "
            "WHERE u.username = 'reporting' AND r.name = 'Admin'"
        )
    assert deployment.airflow.user_roles("reporting") == {"Viewer", "Admin"}
    airflow_token(deployment, "reporting")
    assert deployment.airflow.user_roles("reporting") == {"Viewer"}


def test_an_account_removed_from_the_spec_is_refused_at_once(deployment: LocalDeployment) -> None:
    token = airflow_token(deployment, "reporting")
    assert api(deployment, "GET", f"/api/v2/dags/{DAG_ID}", token).status_code == 200
    # The settings file as the ConfigMap's update would leave it (kubelet replaces the mounted file).
    settings_file = deployment.run.sub("volumes") / "airflow-oidc-auth" / "airflow_oidc_auth.json"
    declared = settings_file.read_text()
    settings = json.loads(declared)
    accounts = settings["serviceAccounts"]["accounts"]
    settings["serviceAccounts"]["accounts"] = {k: v for k, v in accounts.items() if v["name"] != "reporting"}
    settings_file.write_text(json.dumps(settings))
    try:
        marks = deployment.airflow_log_marks()
        # Airflow answers a token whose user cannot be loaded with 403 "Invalid JWT token".
        refused = api(deployment, "GET", f"/api/v2/dags/{DAG_ID}", token)
        assert (refused.status_code, refused.json()["detail"]) == (403, "Invalid JWT token")
        assert_logged(deployment, marks, "service account reporting is not in the stack's spec any more")
        refused_with(deployment, deployment.service_account_token("reporting"), "names 0 of this stack's")
    finally:
        settings_file.write_text(declared)
    assert api(deployment, "GET", f"/api/v2/dags/{DAG_ID}", token).status_code == 200


# --- refused, each for its own reason ---------------------------------------------------------


def test_refused_an_identity_not_in_the_spec(deployment: LocalDeployment) -> None:
    token = deployment.service_account_token(UNLISTED_SERVICE_ACCOUNT)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "https://localhost:8443"
    refused_with(deployment, token, "names 0 of this stack's service accounts")
    assert not deployment.has_user_row("airflow-unlisted-automation")


def test_refused_an_expired_token(deployment: LocalDeployment) -> None:
    token = deployment.service_account_token("ci-deploy")
    now = int(time.time())
    expired = resigned(token, provider_key(deployment), iat=now - 7200, exp=now - 3600)
    refused_with(deployment, expired, "ExpiredSignatureError")


def test_refused_a_token_for_another_audience(deployment: LocalDeployment) -> None:
    token = deployment.service_account_token("ci-deploy", resource=OTHER_RESOURCE)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == OTHER_RESOURCE
    refused_with(deployment, token, "InvalidAudienceError")


def test_refused_a_token_signed_by_an_unknown_key(deployment: LocalDeployment) -> None:
    token = deployment.service_account_token("ci-deploy")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # Under the provider's key id (the signature fails) and under an unpublished one (no such key).
    refused_with(deployment, resigned(token, stranger), "InvalidSignatureError")
    refused_with(deployment, resigned(token, stranger, kid="unpublished-key"), "PyJWKClientError")


def test_refused_a_humans_id_token(deployment: LocalDeployment) -> None:
    admin = deployment.admin
    id_token = human_id_token(deployment, admin.account_id)
    assert jwt.decode(id_token, options={"verify_signature": False})["sub"] == admin.account_id
    refused_with(deployment, id_token, "InvalidAudienceError")


def test_refused_a_username_and_password(deployment: LocalDeployment) -> None:
    response = exchange(deployment, body={"username": "admin", "password": "admin"})
    assert response.status_code == 400
    assert "no API token for a username and password" in response.json()["detail"]
    assert exchange(deployment).status_code == 400  # no credentials at all


# --- audit: a person by a readable identity ---------------------------------------------------


def test_a_person_appears_by_a_readable_identity(deployment: LocalDeployment) -> None:
    admin = deployment.admin
    assert trigger(deployment, airflow_token(deployment, "ci-deploy")).status_code == 200
    token = deployment.admin_token()  # a real browser sign-in; the UI calls the API with this token
    response = trigger(deployment, token)
    assert response.status_code == 200, response.text
    readable = f"{admin.account_id}@example.com ({admin.username})"
    assert response.json()["triggering_user_name"] == readable
    logs = api(deployment, "GET", "/api/v2/eventLogs", token, params={"dag_id": DAG_ID, "limit": 100})
    assert logs.status_code == 200, logs.text
    owners = {entry["owner"] for entry in logs.json()["event_logs"] if entry["event"] == "trigger_dag_run"}
    assert readable in owners and "ci-deploy" in owners
    # The stable username is unchanged (the user row, roles and lookups use it).
    assert deployment.has_user_row(admin.username)
    assert deployment.airflow.user_roles(admin.username) == {"Admin"}


def test_a_person_who_triggers_from_the_ui_appears_by_a_readable_identity(deployment: LocalDeployment) -> None:
    admin = deployment.admin
    readable = f"{admin.account_id}@example.com ({admin.username})"
    token = deployment.admin_token()

    def runs_by(name: str) -> list[str]:
        listed = api(deployment, "GET", f"/api/v2/dags/{DAG_ID}/dagRuns", token, params={"limit": 100})
        assert listed.status_code == 200, listed.text
        return [run["dag_run_id"] for run in listed.json()["dag_runs"] if run["triggering_user_name"] == name]

    before = set(runs_by(readable))
    result = deployment.login(admin, label="ui-trigger", settle=True, keep_context=True)
    assert result.context is not None and result.has_token
    try:
        page = result.context.new_page()
        page.goto(f"{deployment.base_url}/dags/{DAG_ID}")
        page.get_by_role("button", name=re.compile(r"^Trigger", re.IGNORECASE)).first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name=re.compile(r"^Trigger", re.IGNORECASE)).last.click()
        wait_until(lambda: set(runs_by(readable)) - before, timeout=STATE_DEADLINE, what=f"a run by {readable}")
        page.screenshot(path=str(deployment.run.sub("screenshots") / "ui-trigger.png"))
        # Airflow's own UI answers "who triggered which workflow": the runs list shows the readable name.
        page.goto(f"{deployment.base_url}/dags/{DAG_ID}/runs")
        page.get_by_text(readable).first.wait_for()
        page.get_by_text("ci-deploy").first.wait_for()
        page.screenshot(path=str(deployment.run.sub("screenshots") / "ui-runs.png"), full_page=True)
    finally:
        result.context.close()
    assert set(runs_by(readable)) - before, f"no run triggered from the UI by {readable}"
