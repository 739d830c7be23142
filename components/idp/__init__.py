"""The IdP kinds. Each is one module of this package; adding a kind is that module and one line here.

Importing this package loads no provider SDK: a kind imports its SDK inside its component.
"""

from __future__ import annotations

from components.idp.azuread import AzureadIdp
from components.idp.base import IdpModel
from components.idp.google import GoogleIdp
from components.idp.keycloak import KeycloakIdp
from components.idp.oidc import OidcIdp
from components.idp.okta import OktaIdp

KINDS: tuple[type[IdpModel], ...] = (
    OktaIdp,
    OidcIdp,
    KeycloakIdp,
    AzureadIdp,
    GoogleIdp,
)
"""The `idp` model of every kind, in the order the docs list them."""


def kind_name(model: type[IdpModel]) -> str:
    """The `kind` value of a kind's model (its Literal)."""
    annotation = model.model_fields["kind"].annotation
    return str(annotation.__args__[0])  # type: ignore[union-attr]


def kind_names() -> tuple[str, ...]:
    """Every `idp.kind` value."""
    return tuple(kind_name(model) for model in KINDS)
