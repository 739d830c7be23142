"""End-to-end: TLS ends at a load balancer in front of a plain-HTTP ingress (`airflow.tls.terminatedUpstream`).

stacks/Pulumi.local-oidc.yaml with `airflow.tls: {terminatedUpstream: true}` and `forwardedAllowIps` naming
the ingress's address: the program declares an ingress without TLS, so nginx plays both hops (a load
balancer ending TLS on https://localhost:8443, forwarding plain HTTP to an ingress that passes the load
balancer's X-Forwarded-* on and alone reaches the api-servers). A sign-in works only if Airflow still sees
https: the provider refuses any redirect URI but the registered https one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytest.importorskip("playwright", reason="!!! playwright is not importable: run with .venv-airflow/bin/pytest")
pytest.importorskip("airflow", reason="!!! airflow is not importable: run with .venv-airflow/bin/pytest")

from localdev.deployment import LocalDeployment, stack_file
from localdev.harness.nginx import UPSTREAM_BIND
from tests.e2e.conftest import deployed
from tests.e2e.sso_cases import describe

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def deployment(e2e_prerequisites: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    """The local-oidc stack, TLS ended upstream, deployed once for the module."""
    document = yaml.safe_load(stack_file("local-oidc").read_text())
    airflow = document["config"]["airflow-oidc:spec"]["airflow"]
    airflow["tls"] = {"terminatedUpstream": True}
    airflow["forwardedAllowIps"] = f"{UPSTREAM_BIND}/32"  # the ingress; not the load balancer, not anyone
    path = tmp_path_factory.mktemp("stacks") / "Pulumi.local-lb.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    yield from deployed(path)


def test_a_sign_in_through_a_load_balancer_ending_tls_in_front_of_a_plain_http_ingress(
    deployment: LocalDeployment,
) -> None:
    hosts = deployment.values["ingress"]["apiServer"]["hosts"]
    assert hosts == [{"name": "localhost"}] and deployment.tls_terminated_upstream  # no TLS block, no certificate
    assert deployment.values["config"]["api"]["base_url"] == "https://localhost:8443"

    admin = deployment.admin
    result = deployment.login(admin, label="through-load-balancer", settle=True)
    assert result.has_token, describe(result)
    assert result.final_url.startswith("https://localhost:8443/"), describe(result)
    assert deployment.roles(admin.username) == set(admin.expected_roles)

    # Every request went browser -> load balancer (TLS) -> ingress (plain HTTP) -> api-servers.
    ingress = f"127.0.0.1:{deployment.nginx.ingress_port}"
    through_lb = deployment.nginx.load_balancer_requests()
    assert through_lb and {request.upstream for request in through_lb} == {ingress}
    callbacks = [r for r in deployment.nginx.requests() if r.target.startswith("/auth/oauth-authorized/")]
    assert callbacks and all(request.status == 302 for request in callbacks), callbacks
    assert {request.upstream for request in deployment.nginx.requests()} <= set(deployment.airflow.upstreams)
    [listen] = [line for line in Path(deployment.nginx.conf_path).read_text().splitlines() if "the ingress:" in line]
    assert listen.strip().startswith(f"listen {ingress};") and "ssl" not in listen
