# Shipped by airflow-oidc as airflow_oidc_auth.py: a ConfigMap mounted into every Airflow container and put
# on PYTHONPATH; `[core] auth_manager = airflow_oidc_auth.OidcAuthManager`. Do not edit: change the spec.
# Its settings (verification constants and the service accounts, no secrets) are airflow_oidc_auth.json,
# next to it in the same ConfigMap. Tested against Airflow 3.3.2 with apache-airflow-providers-fab 3.10.2.
"""Airflow's FAB auth manager, extended at its documented extension point (`create_token`).

- `POST /auth/token` (and `/auth/token/cli`) with `Authorization: Bearer <access token>`: a token the
  IdP issued to one of the spec's service accounts (signature against the IdP's JWKS, issuer,
  audience, expiry, the claim naming the account, and the kind's required scope/claims, verified
  with PyJWT as Airflow ships it) returns an Airflow API token for the user named after the account,
  holding exactly the account's role. Anything else: 401, the reason in the api-server's log.
- Username/password requests are refused (400): people sign in through single sign-on, and the
  program creates no password users, so a password can only be a leftover or a guess.
- Every API request of a service account re-checks the spec: an account removed from it, or whose
  role was changed, is refused at once (403) rather than when its Airflow token expires.
- Audit: people's Airflow usernames are `<provider>_<sub>` (stable, unreadable). Airflow records
  `user.get_name()` as a DAG run's triggering user and the event log's owner, so a person's
  records read `<email> (<username>)`; a service account's read its spec name.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import jwt
from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

MODULE_VERSION = "1"
SETTINGS_PATH = Path(os.environ.get("AIRFLOW_OIDC_AUTH_SETTINGS") or Path(__file__).with_name("airflow_oidc_auth.json"))
DISCOVERY_TTL_SECONDS = 3600
HTTP_TIMEOUT_SECONDS = 10
# Airflow's columns for the triggering user and the event log's owner are 512/500 characters.
MAX_NAME_LENGTH = 250

log = logging.getLogger("airflow_oidc")


class RefusedTokenError(Exception):
    """A bearer token that is not a valid service-account token (the message goes to the log only)."""


class _Settings:
    """airflow_oidc_auth.json, re-read when the file changes (a ConfigMap update needs no restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._value: dict[str, Any] = {}

    def service_accounts(self) -> dict[str, Any] | None:
        with self._lock:
            stat = self.path.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if stamp != self._stamp:
                self._value = json.loads(self.path.read_text())
                self._stamp = stamp
            return self._value.get("serviceAccounts")


class _Keys:
    """The IdP's signing keys: `jwks_uri` from its discovery document, keys cached by PyJWKClient (which
    fetches again when a token names a key id it has not seen: the IdP rotated)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[float, jwt.PyJWKClient]] = {}

    def client(self, discovery_url: str) -> jwt.PyJWKClient:
        with self._lock:
            cached = self._clients.get(discovery_url)
            if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_SECONDS:
                return cached[1]
            with urllib.request.urlopen(discovery_url, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
                jwks_uri = json.load(response)["jwks_uri"]
            client = jwt.PyJWKClient(jwks_uri, cache_keys=True, lifespan=300, timeout=HTTP_TIMEOUT_SECONDS)
            self._clients[discovery_url] = (time.monotonic(), client)
            return client


_settings = _Settings(SETTINGS_PATH)
_keys = _Keys()


def bearer_token(headers: dict[str, str]) -> str | None:
    """The bearer token of an `Authorization` header (header names arrive lower-cased from Starlette)."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def verify_service_account_token(token: str, settings: dict[str, Any] | None) -> dict[str, str]:
    """The account ({name, role}) an access token was issued to, or `RefusedTokenError` saying why."""
    if not settings:
        raise RefusedTokenError("this stack declares no service accounts")
    algorithms = list(settings["algorithms"])
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise RefusedTokenError(f"not a JWT: {error}") from None
    if header.get("alg") not in algorithms:
        raise RefusedTokenError(f"signature algorithm {header.get('alg')!r} is not one of {algorithms}")
    try:
        keys = _keys.client(settings["discoveryUrl"])
    except (OSError, ValueError, KeyError) as error:  # unreachable, not JSON, no jwks_uri
        url = settings["discoveryUrl"]
        raise RefusedTokenError(f"the IdP's discovery document {url} is unusable: {error}") from None
    try:
        key = keys.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=algorithms,
            audience=settings["audience"],
            issuer=settings["issuer"],
            leeway=settings.get("leewaySeconds", 30),
            options={"require": ["exp", "iat", "iss", "aud"]},
        )
    except (jwt.PyJWTError, jwt.PyJWKClientError) as error:
        raise RefusedTokenError(f"{type(error).__name__}: {error}") from None
    if "nonce" in claims or "at_hash" in claims:
        raise RefusedTokenError("an ID token (it carries nonce/at_hash): present an access token")
    for name, expected in (settings.get("requiredClaims") or {}).items():
        if claims.get(name) != expected:
            raise RefusedTokenError(f"claim {name!r} is {claims.get(name)!r}, not {expected!r}")
    required_scope = settings.get("requiredScope")
    if required_scope:
        granted = claims.get(settings["scopeClaim"]) or []
        granted = granted.split() if isinstance(granted, str) else list(granted)
        if required_scope not in granted:
            raise RefusedTokenError(f"scope {required_scope!r} is not granted ({settings['scopeClaim']}: {granted})")
    claim = settings["identityClaim"]
    value = claims.get(claim)
    values = [value] if isinstance(value, str) else [str(item) for item in value or []]
    matches = [settings["accounts"][item] for item in values if item in settings["accounts"]]
    if len(matches) != 1:
        raise RefusedTokenError(
            f"claim {claim!r} ({values}) names {len(matches)} of this stack's service accounts, not 1"
        )
    return dict(matches[0])


SERVICE_ACCOUNT_EMAIL_DOMAIN = "@service-account.invalid"


def is_service_account_user(username: str, email: str | None) -> bool:
    """A user this module created for a service account (people's usernames always contain `_`)."""
    return "_" not in username and bool(email) and str(email).endswith(SERVICE_ACCOUNT_EMAIL_DOMAIN)


def _current_accounts() -> dict[str, Any] | None:
    try:
        return _settings.service_accounts()
    except FileNotFoundError:
        return None


def service_account_problem(username: str, roles: list[str], settings: dict[str, Any] | None) -> str | None:
    """Why a service account's Airflow token no longer holds (None: it does)."""
    listed = {account["name"]: account["role"] for account in ((settings or {}).get("accounts") or {}).values()}
    if username not in listed:
        return f"service account {username} is not in the stack's spec any more"
    if roles != [listed[username]]:
        return f"service account {username} holds {roles}, the spec says {listed[username]}: exchange a new token"
    return None


def readable_name(username: str, email: str | None, first_name: str | None, last_name: str | None) -> str:
    """How a user appears in Airflow's records: a person as `<email> (<username>)`, else the username.

    People's usernames are `<provider>_<sub>`; service accounts' names never contain `_`.
    """
    readable = email or " ".join(part for part in (first_name, last_name) if part)
    if "_" not in username or not readable or readable == username:
        return username
    return f"{readable} ({username})"[:MAX_NAME_LENGTH]


class OidcAuthManager(FabAuthManager):
    """FabAuthManager with service-account tokens at `POST /auth/token` and readable audit names."""

    def create_token(self, headers: dict[str, str], body: dict[str, Any]) -> Any:
        token = bearer_token(headers)
        if token is None:
            if body.get("username") or body.get("password"):
                raise ValueError(
                    "this Airflow issues no API token for a username and password: people sign in through "
                    "single sign-on; automation presents its service account's IdP access token "
                    "(Authorization: Bearer <token>)"
                )
            raise ValueError("present a service account's IdP access token: Authorization: Bearer <token>")
        try:
            account = verify_service_account_token(token, _settings.service_accounts())
        except RefusedTokenError as error:
            log.warning("airflow-oidc: refused a service-account token: %s", error)
            return None
        return self._service_account_user(account["name"], account["role"])

    def _service_account_user(self, name: str, role_name: str) -> Any:
        """The account's Airflow user, created or brought back to exactly the spec's role."""
        security = self.security_manager
        role = security.find_role(role_name)
        if role is None:
            log.warning("airflow-oidc: refused service account %s: role %s does not exist", name, role_name)
            return None
        user = security.find_user(username=name)
        if user is None:
            created = security.add_user(
                username=name,
                first_name=name,
                last_name="(service account)",
                email=name + SERVICE_ACCOUNT_EMAIL_DOMAIN,
                role=role,
            )
            # Another api-server may have created it a moment ago.
            user = created or security.find_user(username=name)
            if user is None:
                log.warning("airflow-oidc: could not create the user of service account %s", name)
                return None
        if [r.name for r in user.roles] != [role_name] or not user.active:
            user.roles = [role]
            user.active = True
            security.update_user(user)
            # This process's 30-second user cache must not keep the roles just replaced.
            self.cache.pop(user.id, None)
        log.info("airflow-oidc: API token for service account %s (%s)", name, role_name)
        return user

    def deserialize_user(self, token: dict[str, Any]) -> Any:
        user = super().deserialize_user(token)
        if is_service_account_user(user.username, user.email):
            # Every request re-checks the spec: a removed account, or one whose role changed, is refused
            # at once (a ValueError here is Airflow's 403 "Invalid JWT token"), not when its Airflow token expires.
            problem = service_account_problem(user.username, [role.name for role in user.roles], _current_accounts())
            if problem:
                raise ValueError(problem)
        # Airflow records get_name() (DAG runs' triggering user, the event log's owner): readable
        # for people, beside their stable username. Identity checks use get_id(), never the name.
        name = readable_name(user.username, user.email, user.first_name, user.last_name)
        if name != user.username:
            user.get_name = lambda: name
        return user
