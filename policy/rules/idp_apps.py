"""The IdP application's registration: redirect and post-logout URIs (https, no wildcard), no implicit grant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .declared import ENTRA_APP, KEYCLOAK_CLIENT, OKTA_APP, Declared, strings_of, value_at

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


# ---------------------------------------------------------------------------------------------- redirect URIs


def _redirect_uris(resource: Declared) -> list[tuple[str, str]]:
    """(input path, URI) for every redirect or post-logout URI the resource registers."""
    inputs = resource.inputs
    found: list[tuple[str, str]] = []

    def add(path: str, value: Any) -> None:
        found.extend((path, uri) for uri in strings_of(value))

    if resource.type == OKTA_APP:
        add("redirectUris", inputs.get("redirectUris"))
        add("postLogoutRedirectUris", inputs.get("postLogoutRedirectUris"))
    elif resource.type == ENTRA_APP:
        add("web.redirectUris", value_at(inputs, "web", "redirectUris"))
        add("web.logoutUrl", value_at(inputs, "web", "logoutUrl"))
        add("singlePageApplication.redirectUris", value_at(inputs, "singlePageApplication", "redirectUris"))
    elif resource.type == KEYCLOAK_CLIENT:
        add("validRedirectUris", inputs.get("validRedirectUris"))
        add("validPostLogoutRedirectUris", inputs.get("validPostLogoutRedirectUris"))
    return found


def uri_problem(uri: str) -> str | None:
    """Why a redirect URI is refused, or None: https only (http on loopback allowed), no wildcard."""
    if "*" in uri:
        return "contains a wildcard `*`: register the exact callback URI"
    try:
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "is not a valid URL"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return None
    if parts.scheme == "http":
        return "uses http: only https is allowed (http only for localhost / 127.0.0.1)"
    return "is not an absolute https URL"


def redirect_uris_https(resource: Declared, config: Mapping[str, Any] | None = None) -> list[str]:
    """Redirect and post-logout URIs are https (loopback http excepted) and carry no wildcard."""
    messages = [
        f"{resource.name}: {path} `{uri}` {problem}"
        for path, uri in _redirect_uris(resource)
        if (problem := uri_problem(uri))
    ]
    if resource.type == OKTA_APP:
        wildcard = resource.inputs.get("wildcardRedirect")
        if isinstance(wildcard, str) and wildcard.upper() not in ("", "DISABLED"):
            messages.append(f"{resource.name}: wildcardRedirect is `{wildcard}`: it must be DISABLED")
    return messages


# ---------------------------------------------------------------------------------------------- implicit grant


def no_implicit_grant(resource: Declared, config: Mapping[str, Any] | None = None) -> list[str]:
    """No implicit grant: tokens only through the authorization code flow."""
    inputs = resource.inputs
    messages: list[str] = []
    if resource.type == OKTA_APP:
        if "implicit" in strings_of(inputs.get("grantTypes")):
            messages.append(f"{resource.name}: grantTypes contains `implicit`: use authorization_code only")
        tokens = [rt for rt in strings_of(inputs.get("responseTypes")) if rt in ("token", "id_token")]
        # A service app (client credentials only, no user, no browser) is where Okta wants `token`.
        machine = inputs.get("type") == "service" and set(strings_of(inputs.get("grantTypes"))) == {
            "client_credentials"
        }
        if tokens and not machine:
            messages.append(f"{resource.name}: responseTypes {tokens} are implicit-flow responses: use `code` only")
    elif resource.type == ENTRA_APP:
        implicit = value_at(inputs, "web", "implicitGrant") or {}
        for flag in ("accessTokenIssuanceEnabled", "idTokenIssuanceEnabled"):
            if value_at(implicit, flag) is True:
                messages.append(f"{resource.name}: web.implicitGrant.{flag} is true: turn the implicit grant off")
    elif resource.type == KEYCLOAK_CLIENT and inputs.get("implicitFlowEnabled") is True:
        messages.append(f"{resource.name}: implicitFlowEnabled is true: turn the implicit flow off")
    return messages
