"""Token and session lifetimes: at the IdP (Okta's access policy, Keycloak's client) and in Airflow's own config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .declared import (
    HELM_RELEASE,
    KEYCLOAK_CLIENT,
    OKTA_POLICY_RULE,
    Declared,
    config_number,
    in_minutes,
    is_known,
    number_of,
    value_at,
)

DEFAULT_MAX_ACCESS_TOKEN_MINUTES = 60
DEFAULT_MAX_SESSION_MINUTES = 1440


def lifetimes_within_bounds(resource: Declared, config: Mapping[str, Any] | None = None) -> list[str]:
    """Access tokens at most `maxAccessTokenMinutes` (60); sessions at most `maxSessionMinutes` (1440);
    the idle timeout no longer than the session.

    Airflow's own JWT (`[api_auth] jwt_expiration_time`) is the UI session's credential, so it is
    bounded like the session, not like an IdP access token.
    """
    max_access = config_number(config, "maxAccessTokenMinutes", DEFAULT_MAX_ACCESS_TOKEN_MINUTES)
    max_session = config_number(config, "maxSessionMinutes", DEFAULT_MAX_SESSION_MINUTES)
    inputs = resource.inputs
    messages: list[str] = []

    def bound(path: str, minutes: float | None, limit: float, what: str) -> None:
        if minutes is not None and minutes > limit:
            messages.append(
                f"{resource.name}: {path} is {in_minutes(minutes)}, above the {what} bound {in_minutes(limit)}"
            )

    if resource.type == OKTA_POLICY_RULE:
        bound(
            "accessTokenLifetimeMinutes",
            number_of(inputs.get("accessTokenLifetimeMinutes")),
            max_access,
            "access-token",
        )
    elif resource.type == KEYCLOAK_CLIENT:
        seconds = {key: number_of(inputs.get(key)) for key in ("accessTokenLifespan", "clientSessionIdleTimeout")}
        seconds["clientSessionMaxLifespan"] = number_of(inputs.get("clientSessionMaxLifespan"))
        for key, value in seconds.items():
            if is_known(inputs.get(key)) and value is None:
                messages.append(f"{resource.name}: {key} `{inputs.get(key)}` is not a number of seconds")
        as_minutes = {key: None if value is None else value / 60 for key, value in seconds.items()}
        bound("accessTokenLifespan", as_minutes["accessTokenLifespan"], max_access, "access-token")
        bound("clientSessionMaxLifespan", as_minutes["clientSessionMaxLifespan"], max_session, "session")
        bound("clientSessionIdleTimeout", as_minutes["clientSessionIdleTimeout"], max_session, "session")
        idle, most = as_minutes["clientSessionIdleTimeout"], as_minutes["clientSessionMaxLifespan"]
        if idle is not None and most is not None and most > 0 and idle > most:
            messages.append(f"{resource.name}: clientSessionIdleTimeout is longer than clientSessionMaxLifespan")
    elif resource.type == HELM_RELEASE:
        airflow_config = value_at(inputs, "values", "config")
        if not isinstance(airflow_config, Mapping):
            return messages
        idle = number_of(value_at(airflow_config, "fab", "session_lifetime_minutes"))
        session = number_of(value_at(airflow_config, "fab", "session_max_lifetime_minutes"))
        jwt_seconds = number_of(value_at(airflow_config, "api_auth", "jwt_expiration_time"))
        jwt = None if jwt_seconds is None else jwt_seconds / 60
        bound("values.config.fab.session_max_lifetime_minutes", session, max_session, "session")
        bound("values.config.fab.session_lifetime_minutes", idle, max_session, "session")
        bound("values.config.api_auth.jwt_expiration_time", jwt, max_session, "session")
        if idle is not None and session is not None and idle > session:
            messages.append(
                f"{resource.name}: values.config.fab.session_lifetime_minutes (idle, {in_minutes(idle)}) is longer "
                f"than session_max_lifetime_minutes ({in_minutes(session)})"
            )
        if jwt is not None and session is not None and jwt > session:
            messages.append(
                f"{resource.name}: values.config.api_auth.jwt_expiration_time ({in_minutes(jwt)}) outlives the "
                f"session ({in_minutes(session)}): a signed-out user's token would keep working"
            )
    return messages
