# Rendered by airflow-oidc from the stack's `airflow-oidc:spec`. Do not edit: change the spec.
# Airflow's FAB auth manager reads this file as webserver_config.py ([fab] config_file).
"""Airflow webserver_config.py: OpenID Connect single sign-on through the FAB auth manager."""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import urlencode

from airflow.providers.fab.auth_manager.security_manager.override import FabAirflowSecurityManagerOverride
from airflow.providers.fab.auth_manager.views.auth_oauth import CustomAuthOAuthView
from flask import redirect, session
from flask_appbuilder import expose
from flask_appbuilder.security.manager import AUTH_OAUTH

# airflow-oidc: constants begin (replaced when rendered; these example values keep the file importable)
PROVIDER = "oidc"
ISSUER = "https://idp.example.com"
SCOPES = ["openid", "email", "profile", "groups"]
ROLE_CLAIM = "groups"
USERNAME_CLAIM = "sub"
ROLE_BY_CLAIM_VALUE = {"airflow-admins": "Admin"}
DEFAULT_ROLE = None
DEFAULT_ROLE_CLAIM_VALUES: list[str] = []
DEFAULT_ROLE_EVERYONE = False
REQUIRED_CLAIMS: dict[str, Any] = {}
ROLE_SOURCE = "token"
ROLE_LOOKUP: dict[str, Any] = {}
SECURE_COOKIES = True
POST_LOGOUT_REDIRECT_URI = "https://airflow.example.com/auth/login/"
CLIENT_ID_ENV = "AIRFLOW_OIDC_CLIENT_ID"
CLIENT_SECRET_ENV = "AIRFLOW_OIDC_CLIENT_SECRET"
# airflow-oidc: constants end

log = logging.getLogger("airflow_oidc")

# A role key no IdP claim value can carry (names never contain a newline): members of the
# default-role audience get it, and only when they match no mapped claim value.
DEFAULT_ROLE_KEY = "\nairflow-oidc:default-role"


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"airflow-oidc: environment variable {name} is not set on the api-server")
    return value


AUTH_TYPE = AUTH_OAUTH
AUTH_USER_REGISTRATION = True  # users come from the IdP; who may sign in is decided below
AUTH_ROLES_SYNC_AT_LOGIN = True  # a user moved to another group loses the old role at next login
AUTH_ROLES_MAPPING = {value: [role] for value, role in ROLE_BY_CLAIM_VALUE.items()}
if DEFAULT_ROLE:
    AUTH_ROLES_MAPPING[DEFAULT_ROLE_KEY] = [DEFAULT_ROLE]

SESSION_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

OAUTH_PROVIDERS = [
    {
        "name": PROVIDER,
        "icon": "fa-key",
        "token_key": "access_token",
        "remote_app": {
            "client_id": _env(CLIENT_ID_ENV),
            "client_secret": _env(CLIENT_SECRET_ENV),
            # OpenID Connect Discovery 1.0, section 4: a terminating `/` of the issuer is removed first.
            "server_metadata_url": ISSUER.rstrip("/") + "/.well-known/openid-configuration",
            # PKCE (S256) on top of the client secret: a stolen code is useless without the verifier.
            "client_kwargs": {"scope": " ".join(SCOPES), "code_challenge_method": "S256"},
        },
    }
]


def _cloud_identity_groups(claims: dict[str, Any]) -> list[str] | None:
    """The verified user's groups (emails), direct and nested, from the Cloud Identity Groups API
    (`searchTransitiveGroups`), asked as the api-server's Google identity (application default
    credentials: GKE Workload Identity). None when the lookup fails: the caller refuses the login."""
    member = claims.get(ROLE_LOOKUP["member_claim"])
    # The email goes into a CEL string literal: refuse anything that could end it.
    if not isinstance(member, str) or not re.fullmatch(r"[^'\\\s@]+@[^'\\\s@]+", member):
        log.warning("airflow-oidc: refused: claim %r is not an email address", ROLE_LOOKUP["member_claim"])
        return None
    base = (os.environ.get(ROLE_LOOKUP["url_env"]) or ROLE_LOOKUP["url"]).rstrip("/")
    query = f"member_key_id == '{member}' && 'cloudidentity.googleapis.com/groups.discussion_forum' in labels"
    groups: list[str] = []
    page_token = ""
    try:
        session = _google_session()
        for _ in range(ROLE_LOOKUP["max_pages"]):
            params = {"query": query, "pageSize": 1000}
            if page_token:
                params["pageToken"] = page_token
            response = session.get(
                base + "/v1/groups/-/memberships:searchTransitiveGroups",
                params=params,
                timeout=ROLE_LOOKUP["timeout_seconds"],
            )
            if response.status_code != 200:
                log.warning(
                    "airflow-oidc: refused %s: the Cloud Identity lookup answered HTTP %s: %s",
                    member,
                    response.status_code,
                    response.text[:300],
                )
                return None
            body = response.json()
            for relation in body.get("memberships") or []:
                group = (relation.get("groupKey") or {}).get("id")
                if isinstance(group, str):
                    groups.append(group)
            page_token = body.get("nextPageToken") or ""
            if not page_token:
                return groups
    except Exception as error:  # credentials, network, timeout, a malformed answer: never a default role
        log.warning(
            "airflow-oidc: refused %s: the Cloud Identity lookup failed: %s: %s", member, type(error).__name__, error
        )
        return None
    log.warning("airflow-oidc: refused %s: more than %s pages of groups", member, ROLE_LOOKUP["max_pages"])
    return None


_google_sessions: list[Any] = []


def _google_session() -> Any:
    """One authorized HTTP session per process (it refreshes its access token itself)."""
    if not _google_sessions:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _project = google.auth.default(scopes=ROLE_LOOKUP["scopes"])
        _google_sessions.append(AuthorizedSession(credentials, refresh_timeout=ROLE_LOOKUP["timeout_seconds"]))
    return _google_sessions[0]


def _mapped_values(found: list[str]) -> list[str]:
    """Group emails as the spec spells them (email addresses compare case-insensitively)."""
    known = {value.lower(): value for value in [*ROLE_BY_CLAIM_VALUE, *DEFAULT_ROLE_CLAIM_VALUES]}
    return [known.get(value.lower(), value) for value in found]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def role_keys_for(values: list[str]) -> list[str]:
    """The AUTH_ROLES_MAPPING keys of a user whose role claim holds `values` (empty: refused).
    Pure: `airflow-oidc doctor` runs this very function on a pasted ID token."""
    role_keys = [value for value in values if value in ROLE_BY_CLAIM_VALUE]
    in_default_audience = DEFAULT_ROLE_EVERYONE or any(value in DEFAULT_ROLE_CLAIM_VALUES for value in values)
    if not role_keys and DEFAULT_ROLE and in_default_audience:
        role_keys = [DEFAULT_ROLE_KEY]
    return role_keys


# The verified ID token, kept in the (server-side) session: the IdP's logout wants it as id_token_hint.
ID_TOKEN_SESSION_KEY = "airflow_oidc_id_token"


class OidcAuthOAuthView(CustomAuthOAuthView):
    """FAB's OAuth views, with a logout that also ends the IdP session (OpenID RP-initiated logout)."""

    @expose("/logout/")
    def logout(self) -> Any:
        id_token = session.get(ID_TOKEN_SESSION_KEY)
        super().logout()  # logout_user() and on_user_logout(); its redirect is replaced below
        session.clear()
        response = redirect(_end_session_url(self.appbuilder.sm, id_token) or POST_LOGOUT_REDIRECT_URI)
        try:
            from airflow.api_fastapi.app import get_cookie_path

            cookie_path = get_cookie_path()
        except ImportError:  # Airflow before 3.1.8 scoped its cookies to "/"
            cookie_path = "/"
        # /api/v2/auth/logout revoked this JWT; the cookie goes too (FAB's FastAPI logout deletes it).
        response.delete_cookie("_token", path=cookie_path, secure=SECURE_COOKIES, httponly=True)
        return response


def _end_session_url(security_manager: Any, id_token: str | None) -> str | None:
    """The IdP's end_session_endpoint with id_token_hint and the registered post-logout redirect URI;
    None when the IdP has none (Google): then only Airflow's session ends."""
    remote = security_manager.oauth_remotes[PROVIDER]
    try:
        endpoint = remote.load_server_metadata().get("end_session_endpoint")
    except Exception as error:  # discovery unreachable: still log out of Airflow
        log.warning("airflow-oidc: logout: no discovery document (%s): the IdP session stays", error)
        return None
    if not endpoint:
        return None
    params = {"client_id": remote.client_id, "post_logout_redirect_uri": POST_LOGOUT_REDIRECT_URI}
    if id_token:
        params["id_token_hint"] = id_token
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"


def _route_ui_logout_through_flask() -> None:
    """The UI's logout (/api/v2/auth/logout) revokes the JWT, then redirects to the auth manager's
    get_url_logout(): in FAB 3.10 `/auth/logout`, a FastAPI route that only deletes cookies. With a
    trailing slash the same URL reaches FAB's Flask view instead (the FastAPI route matches
    `/logout` exactly), where OidcAuthOAuthView.logout also ends the IdP session."""
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

    original = FabAuthManager.get_url_logout
    if getattr(original, "airflow_oidc", False):  # this file is executed once per Flask app
        return

    def get_url_logout(self: Any) -> str | None:
        url = original(self)
        return url if not url or url.endswith("/") else url + "/"

    get_url_logout.airflow_oidc = True  # type: ignore[attr-defined]
    FabAuthManager.get_url_logout = get_url_logout  # type: ignore[method-assign]


_route_ui_logout_through_flask()


class OidcSecurityManager(FabAirflowSecurityManagerOverride):
    """Maps verified OIDC claims to Airflow users and roles; refuses users the spec does not admit."""

    authoauthview = OidcAuthOAuthView

    def get_oauth_user_info(self, provider: str, resp: dict[str, Any]) -> dict[str, Any]:
        # Authlib put the claims of the ID token in resp["userinfo"] after verifying its signature
        # (jwks_uri), issuer, audience, expiry and nonce. No ID token, no login.
        claims = dict(resp.get("userinfo") or {})
        if not claims.get("sub"):
            log.warning("airflow-oidc: refused a login without a verified ID token")
            return {}
        # Authlib checks `azp` but not that this client is in `aud` (OIDC Core 3.1.3.7, step 3).
        client_id = self.oauth_remotes[provider].client_id
        audience = _as_list(claims.get("aud"))
        if client_id not in audience or (len(audience) > 1 and claims.get("azp") != client_id):
            log.warning("airflow-oidc: refused an ID token issued to another audience: %s", audience)
            return {}
        for name, expected in REQUIRED_CLAIMS.items():
            # E.g. Entra's tenant (`tid`): a token another tenant issued is refused, whatever it carries.
            if claims.get(name) != expected:
                log.warning("airflow-oidc: refused: claim %r is %r, not %r", name, claims.get(name), expected)
                return {}
        if (ROLE_SOURCE == "token" and ROLE_CLAIM not in claims) or USERNAME_CLAIM not in claims:
            # Some IdPs emit group claims only at the userinfo endpoint.
            extra = dict(self.oauth_remotes[provider].userinfo(token=resp))
            if extra.get("sub") != claims["sub"]:
                log.warning("airflow-oidc: refused: userinfo is for another subject")
                return {}
            claims = {**extra, **claims}
        subject = claims.get(USERNAME_CLAIM)
        if not subject:
            log.warning("airflow-oidc: refused: claim %r is missing", USERNAME_CLAIM)
            return {}
        username = f"{PROVIDER}_{subject}"
        if ROLE_SOURCE == "cloud-identity":
            # Google's ID token carries no groups: ask Cloud Identity, after the claims above passed.
            found = _cloud_identity_groups(claims)
            if found is None:
                return {}
            values = _mapped_values(found)
        else:
            values = _as_list(claims.get(ROLE_CLAIM))
        role_keys = role_keys_for(values)
        if not role_keys:
            log.warning(
                "airflow-oidc: refused %s: no group of theirs is mapped to an Airflow role (%s: %s)",
                username,
                ROLE_CLAIM,
                values,
            )
            return {}
        session[ID_TOKEN_SESSION_KEY] = resp.get("id_token")  # the id_token_hint of the IdP logout
        return {
            "username": username,
            "email": claims.get("email") or "",
            "first_name": claims.get("given_name") or claims.get("name") or "",
            "last_name": claims.get("family_name") or "",
            "role_keys": role_keys,
        }

    def _oauth_calculate_user_roles(self, userinfo: dict[str, Any]) -> list[Any]:
        # Roles come from the mapping alone: FAB would add AUTH_USER_REGISTRATION_ROLE to every
        # user at every login, which is how a user in no group ends up with a role.
        return list(self.get_roles_from_keys(userinfo.get("role_keys", [])))

    def auth_user_oauth(self, userinfo: dict[str, Any], rotate_session_id: bool = True) -> Any:
        user = super().auth_user_oauth(userinfo, rotate_session_id=rotate_session_id)
        if user is None:
            return None
        # FAB sets name and email only when it creates the user: keep them current.
        fresh = {key: userinfo.get(key) for key in ("email", "first_name", "last_name") if userinfo.get(key)}
        if any(getattr(user, key) != value for key, value in fresh.items()):
            for key, value in fresh.items():
                setattr(user, key, value)
            self.update_user(user)
        return user


SECURITY_MANAGER_CLASS = OidcSecurityManager
