"""Microsoft Entra ID (`idp.kind: azuread`): `model.py` (the `idp` keys, the contract, the access model: pure),
`service_accounts.py` (the service accounts' registrations), `resources.py` (the Pulumi components and the kind's
resources hooks).

Re-exports the names other modules import from `components.idp.azuread`; those of `resources.py` load it on
first use, so importing the model (the spec, the pure tools) never does."""

from __future__ import annotations

from typing import Any

from components.idp.azuread.model import (
    APP_ROLE_PREFIX,
    DEFAULT_APP_ROLE,
    GRAPH_APP_ID,
    GRAPH_SIGN_IN_SCOPES,
    ID_TOKEN_OPTIONAL_CLAIMS,
    MOCK_GROUP_COUNT,
    SLOTS,
    AzureadIdp,
    GroupBinding,
    SecretSlot,
    app_role_id,
    app_role_value,
    entra_app_display_name,
    entra_redirect_uris,
    group_bindings,
    is_guid,
    mock_group,
    mock_group_id,
    period_start,
    roles_used,
    secret_slots,
)

_RESOURCES = ("EntraApplication", "GroupLookupError", "group_field", "lookup_groups")
"""Names defined by `resources.py`."""

__all__ = [
    "APP_ROLE_PREFIX",
    "AzureadIdp",
    "DEFAULT_APP_ROLE",
    "EntraApplication",
    "GRAPH_APP_ID",
    "GRAPH_SIGN_IN_SCOPES",
    "GroupBinding",
    "GroupLookupError",
    "ID_TOKEN_OPTIONAL_CLAIMS",
    "MOCK_GROUP_COUNT",
    "SLOTS",
    "SecretSlot",
    "app_role_id",
    "app_role_value",
    "entra_app_display_name",
    "entra_redirect_uris",
    "group_bindings",
    "group_field",
    "is_guid",
    "lookup_groups",
    "mock_group",
    "mock_group_id",
    "period_start",
    "roles_used",
    "secret_slots",
]


def __getattr__(name: str) -> Any:
    if name in _RESOURCES:
        from components.idp.azuread import resources

        return getattr(resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
