"""Okta (`idp.kind: okta`): `model.py` (the `idp` keys, the contract, the access model: pure), `mocks.py` (the mock
engine's stand-ins), `resources.py` (the Pulumi components and the kind's resources hooks).

Re-exports the names other modules import from `components.idp.okta`; those of `resources.py` load it on
first use, so importing the model (the spec, the pure tools) never does."""

from __future__ import annotations

from typing import Any

from components.idp.okta.mocks import (
    GET_GROUP,
    GET_GROUPS,
    GROUP_TYPE,
    MOCK_GROUP_COUNT,
    MOCK_GROUP_NAMES,
    mock_group_id,
    mock_groups,
)
from components.idp.okta.model import (
    GROUPS_CLAIM_LIMIT,
    OKTA_DOMAINS,
    OKTA_GROUP_ID,
    CustomAuthorizationServer,
    GroupBinding,
    Loc,
    OktaAppSettings,
    OktaGroup,
    OktaIdp,
    OrgAuthorizationServer,
    group_bindings,
    is_custom_domain,
    is_okta_group_id,
    okta_api_scope,
    okta_app_label,
    okta_app_settings,
    okta_groups_expression,
    okta_hosted,
    okta_org_url,
    okta_policy_name,
    okta_policy_priorities,
    okta_scope_and_claim,
)

_RESOURCES = ("GroupLookupError", "OktaApplication", "lookup_groups", "okta_service_accounts", "server_policy")
"""Names defined by `resources.py`."""

__all__ = [
    "CustomAuthorizationServer",
    "GET_GROUP",
    "GET_GROUPS",
    "GROUPS_CLAIM_LIMIT",
    "GROUP_TYPE",
    "GroupBinding",
    "GroupLookupError",
    "Loc",
    "MOCK_GROUP_COUNT",
    "MOCK_GROUP_NAMES",
    "OKTA_DOMAINS",
    "OKTA_GROUP_ID",
    "OktaAppSettings",
    "OktaApplication",
    "OktaGroup",
    "OktaIdp",
    "OrgAuthorizationServer",
    "group_bindings",
    "is_custom_domain",
    "is_okta_group_id",
    "lookup_groups",
    "mock_group_id",
    "mock_groups",
    "okta_api_scope",
    "okta_app_label",
    "okta_app_settings",
    "okta_groups_expression",
    "okta_hosted",
    "okta_org_url",
    "okta_policy_name",
    "okta_policy_priorities",
    "okta_scope_and_claim",
    "okta_service_accounts",
    "server_policy",
]


def __getattr__(name: str) -> Any:
    if name in _RESOURCES:
        from components.idp.okta import resources

        return getattr(resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
