"""What stops the program before it declares anything, beyond the spec's own validation."""

from __future__ import annotations

import json

import pulumi
import pytest

from tests.mock_engine import Run, run_program

VALID_OKTA = {
    "environment": "dev",
    "hostname": "airflow.example.com",
    "idp": {"kind": "okta"},
    "access": [{"group": "admins", "role": "Admin"}],
    "airflow": {"tls": {"secretName": "tls"}},
}


def refused(config: dict[str, str], secret_keys: list[str] | None = None) -> tuple[str, Run]:
    run = Run(stack="team-dev")
    with pytest.raises(pulumi.RunError) as raised:
        run_program("team-dev", config, secret_keys, run=run)
    return str(raised.value), run


def test_a_spec_that_is_not_a_mapping_names_the_file_and_hides_the_value() -> None:
    message, run = refused({"airflow-oidc:spec": "s3cr3t-looking-value"}, ["airflow-oidc:spec"])
    # validate's words, never the value (Pulumi's own message repeats it)
    assert message == "stacks/Pulumi.team-dev.yaml: airflow-oidc:spec: must be a mapping, got str"
    assert run.resources == []


def test_okta_without_an_org_is_refused_before_anything_is_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OKTA_ORG_NAME", raising=False)
    message, run = refused({"airflow-oidc:spec": json.dumps(VALID_OKTA)})
    assert message.startswith("stacks/Pulumi.team-dev.yaml: okta:orgName is not set")
    assert "idp.orgUrl" in message
    assert run.resources == []


def test_the_org_comes_from_the_environment_as_the_provider_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKTA_ORG_NAME", "example")
    monkeypatch.setenv("OKTA_BASE_URL", "oktapreview.com")
    run = run_program("team-dev", {"airflow-oidc:spec": json.dumps(VALID_OKTA)})
    assert run.stack_outputs["issuer"] == "https://example.oktapreview.com"


def test_idp_org_url_overrides_the_provider_config() -> None:
    spec = {**VALID_OKTA, "idp": {"kind": "okta", "orgUrl": "https://login.example.com"}}
    run = run_program("team-dev", {"airflow-oidc:spec": json.dumps(spec), "okta:orgName": "acme"})
    assert run.stack_outputs["issuer"] == "https://login.example.com"
