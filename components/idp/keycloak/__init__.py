"""Keycloak (`idp.kind: keycloak`): `model.py` (the `idp` keys, the contract, the access model: pure),
`service_accounts.py` (the service accounts' registrations), `resources.py` (the Pulumi components and the kind's
resources hooks).

Re-exports the names other modules import from `components.idp.keycloak`; those of `resources.py` load it on
first use, so importing the model (the spec, the pure tools) never does."""

from __future__ import annotations

from typing import Any

from components.idp.keycloak.model import (
    CLIENT_TYPE,
    GET_GROUP,
    GROUP_TYPE,
    MAPPER_TYPE,
    MOCK_MISSING_GROUPS,
    REALM_TYPE,
    ExistingGroup,
    KeycloakClientSettings,
    KeycloakGroups,
    KeycloakIdp,
    Loc,
    keycloak_client_id,
    keycloak_client_settings,
    keycloak_group_path,
    keycloak_groups,
    keycloak_parent_path,
    keycloak_path_problem,
    keycloak_split,
    looked_up_group_id,
    spec_groups,
)

_RESOURCES = ("GroupLookupError", "KeycloakClient", "group_resource_suffix", "lookup_groups")
"""Names defined by `resources.py`."""

__all__ = [
    "CLIENT_TYPE",
    "ExistingGroup",
    "GET_GROUP",
    "GROUP_TYPE",
    "GroupLookupError",
    "KeycloakClient",
    "KeycloakClientSettings",
    "KeycloakGroups",
    "KeycloakIdp",
    "Loc",
    "MAPPER_TYPE",
    "MOCK_MISSING_GROUPS",
    "REALM_TYPE",
    "group_resource_suffix",
    "keycloak_client_id",
    "keycloak_client_settings",
    "keycloak_group_path",
    "keycloak_groups",
    "keycloak_parent_path",
    "keycloak_path_problem",
    "keycloak_split",
    "looked_up_group_id",
    "lookup_groups",
    "spec_groups",
]


def __getattr__(name: str) -> Any:
    if name in _RESOURCES:
        from components.idp.keycloak import resources

        return getattr(resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
