"""`airflow.tls.terminatedUpstream`: TLS ends at a load balancer in front of the ingress (ALB, GCLB, Front Door).

On every kind the ingress carries no TLS block and no certificate, Airflow's base URL and the redirect
URIs stay https, and the api-server trusts X-Forwarded-* only from the given range, never `*`. The e2e
tier logs in through an nginx that ends TLS in front of a plain-HTTP ingress (tests/e2e/test_tls_upstream.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.mock_engine import run_program, stack_config
from tests.test_spec_errors import SOURCE, changed, file_error, key, problem_lines

KIND_STACKS = {
    "okta": "dev",
    "oidc": "local-oidc",
    "keycloak": "search-prod",
    "azuread": "risk-prod",
    "google": "growth-prod",
}
RANGE = "10.0.0.0/8"
RELEASE = "kubernetes:helm.sh/v3:Release"


PROD_RANGE = "10.42.0.0/16"
"""stacks/defaults/prod.yaml's range: prod stacks inherit it (and may not override it)."""


def upstream_tls(spec: dict[str, Any]) -> dict[str, Any]:
    airflow = {**spec.get("airflow", {}), "tls": {"terminatedUpstream": True}}
    if spec["environment"] != "prod":
        airflow["forwardedAllowIps"] = RANGE
    return {**spec, "airflow": airflow}


@pytest.mark.parametrize("kind", list(KIND_STACKS))
def test_the_ingress_serves_plain_http_while_users_reach_https(kind: str) -> None:
    stack = KIND_STACKS[kind]
    config, secret_keys = stack_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    spec = upstream_tls(json.loads(config["airflow-oidc:spec"]))
    assert spec["idp"]["kind"] == kind
    run = run_program(stack, {**config, "airflow-oidc:spec": json.dumps(spec)}, secret_keys)
    values = run.one(RELEASE).inputs["values"]
    ingress = values["ingress"]["apiServer"]
    assert [set(host) for host in ingress["hosts"]] == [{"name"}]  # no `tls:` block
    assert not any(key.startswith("cert-manager.io/") for key in ingress.get("annotations", {}))
    public = "https://" + spec["hostname"]
    assert values["config"]["api"]["base_url"] == public
    assert run.stack_outputs["redirectUris"] and all(
        uri.startswith(public + "/") for uri in run.stack_outputs["redirectUris"]
    )
    api_server = values["apiServer"]
    trusted = PROD_RANGE if spec["environment"] == "prod" else RANGE
    assert {"name": "FORWARDED_ALLOW_IPS", "value": trusted} in api_server["env"]
    assert "--proxy-headers" in " ".join(str(arg) for arg in api_server.get("args") or [])
    assert values["config"]["fab"]["enable_proxy_fix"] in (True, "True")
    # No certificate anywhere: no TLS Secret is declared for the ingress.
    secrets = [r.inputs.get("metadata", {}).get("name") for r in run.of_type("kubernetes:core/v1:Secret")]
    assert not any(str(name).endswith("-tls") for name in secrets), secrets


TLS_CASES = [
    pytest.param(
        {"tls": {"terminatedUpstream": True}},
        "airflow.forwardedAllowIps",
        "trust them only from the range your ingress controller's (or load balancer's) requests come from",
        id="forwarded-from-anywhere",
    ),
    pytest.param(
        {"tls": {"terminatedUpstream": True, "secretName": "airflow-tls"}, "forwardedAllowIps": RANGE},
        "airflow.tls.terminatedUpstream",
        "true means no certificate at the ingress",
        id="certificate-and-upstream",
    ),
    pytest.param(
        {"tls": {}},
        "airflow.tls",
        "or terminatedUpstream: true when a load balancer in front of the ingress ends TLS",
        id="no-source-names-the-new-key",
    ),
]


@pytest.mark.parametrize(("airflow", "key_path", "reason"), TLS_CASES)
def test_what_terminated_upstream_refuses(tmp_path: Path, airflow: dict[str, Any], key_path: str, reason: str) -> None:
    error = file_error(tmp_path, changed(("airflow", airflow)))
    lines = problem_lines(str(error), key(key_path))
    assert any(reason in line for line in lines), str(error)


def test_an_http_hostname_cannot_be_terminated_upstream(tmp_path: Path) -> None:
    raw = changed(
        ("hostname", "http://localhost:8080"),
        ("airflow", {"tls": {"terminatedUpstream": True}, "forwardedAllowIps": RANGE}),
    )
    error = file_error(tmp_path, raw)
    assert problem_lines(str(error), key("airflow.tls.terminatedUpstream")), str(error)
    assert str(error).startswith(SOURCE)
