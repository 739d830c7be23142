"""One valid prod stack per IdP kind, alike where the kinds allow: the tables over all kinds start here.

Each is a stack file's `config:` (provider settings beside `airflow-oidc:spec`), with a service account
where the kind offers them. Adding a kind adds an entry (a test fails until it does).
"""

from __future__ import annotations

import copy
from typing import Any

TEAM = "conf"
SECURE = {"secure": "AAABAConformanceCiphertextPlaceholder"}
"""A secret as `pulumi config set --secret --path` writes it."""

IDPS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "okta": ({"kind": "okta", "authorizationServer": {"mode": "custom", "id": "default"}}, {"okta:orgName": "acme"}),
    "oidc": (
        {"kind": "oidc", "issuer": "https://idp.example.com", "clientId": "airflow-conf", "clientSecret": SECURE},
        {},
    ),
    "keycloak": (
        {"kind": "keycloak", "url": "https://sso.example.com", "realm": "corp"},
        {"keycloak:url": "https://sso.example.com"},
    ),
    "azuread": ({"kind": "azuread"}, {"azuread:tenantId": "7d1b2c3a-0000-4000-8000-1234567890ab"}),
    "google": (
        {
            "kind": "google",
            "clientId": "1234-conf.apps.googleusercontent.com",
            "clientSecret": SECURE,
            "domain": "example.com",
        },
        {"gcp:project": "conf-project"},
    ),
}

SERVICE_ACCOUNT_EXTRAS: dict[str, dict[str, Any] | None] = {
    "okta": {},
    "oidc": {"clientId": "conf-deploy"},
    "keycloak": {},
    "azuread": {"githubRepository": "acme/pipelines", "githubEnvironment": "production"},
    "google": None,
}
"""Kind-only keys of the example service account; None: the kind offers no service accounts."""


def group(kind: str, name: str) -> str:
    """A group as the kind names it: Google maps group emails."""
    return f"{name}@example.com" if kind == "google" else name


def spec(kind: str) -> dict[str, Any]:
    """The kind's example spec (prod, valid with stacks/defaults/prod.yaml)."""
    idp, _ = IDPS[kind]
    body: dict[str, Any] = {
        "environment": "prod",
        "team": TEAM,
        "hostname": f"airflow.{kind}.example.com",
        "idp": copy.deepcopy(idp),
        "access": [
            {"group": group(kind, f"{TEAM}-airflow-admins"), "role": "Admin"},
            # On call: Op, and (its name matching prod's allowedAdminGroups) eligible for Admin.
            {"group": group(kind, f"{TEAM}-oncall-airflow-admins"), "role": "Op"},
            {"group": group(kind, f"{TEAM}-analysts"), "role": "Viewer"},
        ],
        "airflow": {
            "namespace": f"airflow-{kind}",
            "database": {"secretName": "airflow-metadata-db"},
            "tls": {"secretName": "airflow-tls"},
        },
    }
    extras = SERVICE_ACCOUNT_EXTRAS[kind]
    if extras is not None:
        body["serviceAccounts"] = [{"name": "deploy", "role": "Viewer", **extras}]
    return body


def named(kind: str, body: dict[str, Any], suffix: str) -> dict[str, Any]:
    """`body` with its own hostname, team and namespace (many stacks of one kind side by side)."""
    body = copy.deepcopy(body)
    body["hostname"] = f"airflow.{kind}-{suffix}.example.com"
    body["team"] = f"{TEAM}{suffix}"[:30].rstrip("-")
    body["airflow"]["namespace"] = f"airflow-{kind}-{suffix}"[:63].rstrip("-")
    return body


def config(kind: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stack file's `config:` for the kind (its provider settings, then the spec)."""
    _, provider = IDPS[kind]
    return {**provider, "kubernetes:context": "conformance", "airflow-oidc:spec": body or spec(kind)}
