"""The pure derivations: plain functions of the spec, tested without Pulumi."""

from __future__ import annotations

import ast
import datetime
import re

import pytest

from components.airflow_values import config_version, render_webserver_config
from components.contract import client_contract
from components.idp.base import secret_generation
from components.idp.okta import is_custom_domain, okta_groups_expression, okta_scope_and_claim
from components.spec import parse_spec


def spec(**overrides: object) -> object:
    raw: dict[str, object] = {
        "environment": "dev",
        "hostname": "airflow.example.com",
        "idp": {"kind": "oidc", "issuer": "https://login.example.com/realms/x", "clientId": "airflow"},
        "access": [{"group": "admins", "role": "Admin"}],
        "airflow": {"tls": {"secretName": "tls"}},
    }
    raw.update(overrides)
    return parse_spec(raw, "test")


@pytest.mark.parametrize(
    ("hostname", "idp", "expected"),
    [
        ("airflow.example.com", {"kind": "okta"}, "https://airflow.example.com/auth/oauth-authorized/okta"),
        ("airflow.example.com:8443", {"kind": "okta"}, "https://airflow.example.com:8443/auth/oauth-authorized/okta"),
        (
            "http://localhost:8080",
            {"kind": "oidc", "issuer": "http://127.0.0.1:9400", "clientId": "c"},
            "http://localhost:8080/auth/oauth-authorized/oidc",
        ),
    ],
)
def test_redirect_uri_is_airflow_3_callback(hostname: str, idp: dict[str, str], expected: str) -> None:
    contract = client_contract(spec(hostname=hostname, idp=idp), stack="dev", provider={"okta:orgName": "o"})
    assert contract.redirect_uris == (expected,)


def test_groups_expression_selects_exactly_these_ids_by_id() -> None:
    ids = ["00g1a2b3c4d5e6f7g8h9", "00gAAAAAAAAAAAAAAAAA"]
    assert (
        okta_groups_expression(ids)
        == 'getFilteredGroups({"00g1a2b3c4d5e6f7g8h9","00gAAAAAAAAAAAAAAAAA"}, "group.name", 2)'
    )
    # Nothing but an id reaches the expression's string literals; Okta allows 1 to 100 groups.
    for bad in (['00g1", "x'], [], ["00g" + "a" * 17] * 101):
        with pytest.raises(ValueError):
            okta_groups_expression(bad)


@pytest.mark.parametrize(
    ("org_url", "custom"),
    [
        ("https://acme.okta.com", False),
        ("https://acme.oktapreview.com", False),
        ("https://acme.okta-emea.com", False),
        ("https://login.acme.com", True),
        ("https://sso.okta.com.evil.example", True),
        (None, False),
    ],
)
def test_custom_domain_is_any_host_outside_oktas_domains(org_url: str | None, custom: bool) -> None:
    assert is_custom_domain(org_url) is custom


def test_per_stack_names_differ_and_are_okta_safe() -> None:
    assert okta_scope_and_claim("payments-prod") == ("airflow_payments_prod_groups", "airflow_payments_prod_groups")
    assert okta_scope_and_claim("risk-prod") != okta_scope_and_claim("payments-prod")


def test_rendered_config_is_python_without_template_braces() -> None:
    tricky = spec(access=[{"group": "team-{{ .Values.x }}", "role": "Admin"}, {"group": 'it\'s "q"', "role": "User"}])
    text = render_webserver_config(client_contract(tricky, stack="dev"))
    assert "{{" not in text
    constants = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:  # not a literal (a call, a comprehension): not a rendered constant
                continue
    assert constants["ROLE_BY_CLAIM_VALUE"] == {"team-{{ .Values.x }}": "Admin", 'it\'s "q"': "User"}
    assert constants["ISSUER"] == "https://login.example.com/realms/x"


def test_secret_generation_turns_over_every_rotation_period() -> None:
    start = datetime.date(2026, 1, 1)
    generations = [secret_generation(start + datetime.timedelta(days=day), 90) for day in range(0, 365)]
    changes = sum(1 for before, after in zip(generations, generations[1:], strict=False) if before != after)
    assert changes == 4  # 365 days hold four boundaries of a 90-day period
    assert secret_generation(start, 90) == secret_generation(start, 90)


def test_config_version_changes_with_config_client_and_secret_generation() -> None:
    base = config_version("config", "client", 3)
    assert base == config_version("config", "client", 3)
    assert (
        len(
            {
                base,
                config_version("config2", "client", 3),
                config_version("config", "other", 3),
                config_version("config", "client", 4),
            }
        )
        == 4
    )


@pytest.mark.parametrize(
    ("hostname", "secure"),
    [("airflow.example.com", True), ("https://localhost:8443", True), ("http://localhost:8080", False)],
)
def test_cookies_are_secure_exactly_when_the_ui_is_https(hostname: str, secure: bool) -> None:
    text = render_webserver_config(client_contract(spec(hostname=hostname), stack="dev"))
    assert f"SECURE_COOKIES = {secure}\n" in text


def test_an_issuer_ending_in_a_slash_is_kept_byte_for_byte_and_discovery_drops_it() -> None:
    """Tokens and discovery must name the issuer exactly as the provider does (Auth0's ends in `/`);
    the discovery URL removes the terminating slash first (OpenID Connect Discovery 1.0, section 4)."""
    given = spec(idp={"kind": "oidc", "issuer": "https://tenant.example-idp.com/", "clientId": "airflow"})
    contract = client_contract(given, stack="dev")
    assert contract.issuer == "https://tenant.example-idp.com/"
    text = render_webserver_config(contract)
    constants = ast.literal_eval(re.search(r"^ISSUER = (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert constants == "https://tenant.example-idp.com/"
    assert 'ISSUER.rstrip("/") + "/.well-known/openid-configuration"' in text
