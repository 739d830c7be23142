"""stacks/Pulumi.local.yaml's rendered webserver_config.py (`idp.kind: keycloak`) in real Airflow + FAB,
with Keycloak-shaped claims.

The claims follow what Keycloak 26 puts in an ID token for a confidential client with the program's
group-membership mapper: `typ: ID`, `azp` the client id, `sid`, `preferred_username`, and `groups`
holding group paths (the mapper's full_path, on; bare names if it were off).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.airflow.test_webserver_config_fab import CLIENT_ID, airflow_home, probe

__all__ = ["airflow_home"]  # the session's Airflow home (db migrated once), reused here

pytestmark = pytest.mark.airflow

ISSUER = "http://127.0.0.1:8180/realms/airflow-local"


def keycloak_claims(
    sub: str, groups: list[str] | None, *, email: str | None = None, username: str = "ada"
) -> dict[str, Any]:
    """An ID token payload as Keycloak issues it (sub: the user's id, a UUID). Emails are unique
    (Keycloak's default, and FAB's ab_user.email is a unique column)."""
    claims: dict[str, Any] = {
        "exp": 1767225900,
        "iat": 1767225600,
        "auth_time": 1767225599,
        "jti": "onrtac:5c1f8f4e-8d7e-4c57-9d59-2e1f3f0a9b11",
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": sub,
        "typ": "ID",
        "azp": CLIENT_ID,
        "nonce": "n-0S6_WzA2Mj",
        "sid": "0b3f6c0e-5a55-4a4e-9a43-3a3c7d8b9e10",
        "at_hash": "MTIzNDU2Nzg5MDEyMzQ1Ng",
        "acr": "1",
        "email_verified": True,
        "name": "Ada Lovelace",
        "preferred_username": username,
        "given_name": "Ada",
        "family_name": "Lovelace",
        "email": email or f"{sub[-4:]}@example.com",
    }
    if groups is not None:
        claims["groups"] = groups
    return claims


def user_id(n: int) -> str:
    return f"8c1e0d4a-3f7b-4c2e-9a51-{n:012d}"


def test_keycloak_group_paths_map_to_roles_bare_names_and_same_named_subgroups_are_refused(
    airflow_home: Path,
) -> None:
    steps = [
        {"op": "login", "claims": keycloak_claims(user_id(1), ["/airflow-admins"]), "userinfo": None},
        # The mapper with full_path off: the bare name "airflow-admins" is no mapped path.
        {"op": "login", "claims": keycloak_claims(user_id(2), ["airflow-admins"]), "userinfo": None},
        # A same-named subgroup elsewhere in the realm is another group: refused.
        {"op": "login", "claims": keycloak_claims(user_id(3), ["/contractors/airflow-admins"]), "userinfo": None},
        # A realm user in no group: Keycloak emits an empty claim (every realm user may authenticate).
        {"op": "login", "claims": keycloak_claims(user_id(4), []), "userinfo": None},
        # Several groups, one unmapped: the mapped ones give their roles.
        {
            "op": "login",
            "claims": keycloak_claims(user_id(5), ["/airflow-operators", "/airflow-viewers", "/payroll"]),
            "userinfo": None,
        },
    ]
    admin, bare_name, subgroup, nobody, several = probe(airflow_home, "local", steps)["results"]
    assert admin["info"]["username"] == f"keycloak_{user_id(1)}"
    assert admin["user"]["roles"] == ["Admin"]
    assert (admin["user"]["first_name"], admin["user"]["last_name"]) == ("Ada", "Lovelace")
    for refused in (bare_name, subgroup, nobody):
        assert refused["info"] == {} and refused["logged_in"] is False and refused["user"] is None
    assert several["user"]["roles"] == ["Op", "Viewer"]
    counts = [result["user_count"] for result in (admin, bare_name, subgroup, nobody)]
    assert counts == [admin["user_count"]] * 4, "refused logins create no user row"
    assert several["user_count"] == admin["user_count"] + 1


def test_keycloak_groups_from_userinfo_when_the_id_token_has_none(airflow_home: Path) -> None:
    """A mapper without `id.token.claim` still reaches userinfo; a userinfo without groups is refused."""
    steps = [
        {
            "op": "login",
            "claims": keycloak_claims(user_id(11), None),
            "userinfo": {"sub": user_id(11), "groups": ["/airflow-users"], "email": "0011@example.com"},
        },
        {
            "op": "login",
            "claims": keycloak_claims(user_id(12), None),
            "userinfo": {"sub": user_id(12), "email": "bob@example.com"},
        },
    ]
    fallback, without = probe(airflow_home, "local", steps)["results"]
    assert fallback["userinfo_calls"] == ["userinfo"] and fallback["user"]["roles"] == ["User"]
    assert without["userinfo_calls"] == ["userinfo"] and without["user"] is None


def test_keycloak_user_keeps_one_row_across_email_and_group_changes(airflow_home: Path) -> None:
    sub = user_id(21)
    steps = [
        {"op": "login", "claims": keycloak_claims(sub, ["/airflow-viewers"]), "userinfo": None},
        # Email and username changed in Keycloak: the same Airflow user (keyed by sub), email kept current.
        {
            "op": "login",
            "claims": keycloak_claims(sub, ["/airflow-viewers"], email="ada.l@example.com", username="ada.l"),
            "userinfo": None,
        },
        # Moved to another group: the old role goes at the next login.
        {"op": "login", "claims": keycloak_claims(sub, ["/airflow-operators"]), "userinfo": None},
        # Removed from every group: refused (the row stays; no session).
        {"op": "login", "claims": keycloak_claims(sub, []), "userinfo": None},
    ]
    first, renamed, moved, removed = probe(airflow_home, "local", steps)["results"]
    assert first["user"]["username"] == renamed["user"]["username"] == f"keycloak_{sub}"
    assert renamed["user"]["email"] == "ada.l@example.com"
    assert renamed["user_count"] == first["user_count"]
    assert moved["user"]["roles"] == ["Op"]
    assert removed["logged_in"] is False and removed["info"] == {}
    assert removed["user_count"] == moved["user_count"]
