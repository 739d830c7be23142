"""The OIDC client contract of a spec: what the IdP side registers and the Airflow side uses.

The contract's shape lives in `components/idp/base/contract.py` (the kinds build it); this module is the
step after the spec: `client_contract(spec)` asks the spec's kind. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.idp.base.contract import (
    CALLBACK_PATH,
    CLIENT_ID_ENV,
    CLIENT_SECRET_ENV,
    LOGIN_PATH,
    ROLE_SOURCES,
    ClientContract,
    api_server_service_account,
    common_contract,
    slug,
)
from components.spec import Spec

__all__ = [
    "CALLBACK_PATH",
    "CLIENT_ID_ENV",
    "CLIENT_SECRET_ENV",
    "LOGIN_PATH",
    "ROLE_SOURCES",
    "ClientContract",
    "api_server_service_account",
    "client_contract",
    "common_contract",
    "slug",
]


def client_contract(spec: Spec, *, stack: str, provider: Mapping[str, str] | None = None) -> ClientContract:
    """Derive the client contract from the spec, the stack name and the stack's provider settings."""
    return spec.idp.contract(spec, stack=stack, provider=provider or {})
