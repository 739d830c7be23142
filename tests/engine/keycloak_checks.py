"""What the engine tier checks on a Keycloak stack after `pulumi up` (shared by the Keycloak stacks' modules)."""

from __future__ import annotations

from typing import Any

from components.idp.keycloak import keycloak_client_settings
from components.idp.keycloak import keycloak_group_path as group_path
from localdev.harness.keycloak import KeycloakAdmin
from tests.engine.scenario import EngineStack, group_paths

MAPPER_TYPE = "oidc-group-membership-mapper"


def keycloak_differences(admin: KeycloakAdmin, stack: EngineStack) -> list[str]:
    """Where what Keycloak holds (read through its Admin REST API) differs from the contract; [] when it equals."""
    spec, contract = stack.spec, stack.contract
    settings = keycloak_client_settings(spec, contract, stack.name)
    realm = settings.realm
    problems: list[str] = []

    def same(what: str, held: Any, wanted: Any) -> None:
        if held != wanted:
            problems.append(f"{what}: Keycloak holds {held!r}, the contract says {wanted!r}")

    client = admin.get_client(realm, settings.client_id)
    attributes = client.get("attributes") or {}
    same("redirectUris", sorted(client.get("redirectUris") or []), sorted(contract.redirect_uris))
    same(
        "post.logout.redirect.uris",
        sorted(filter(None, str(attributes.get("post.logout.redirect.uris", "")).split("##"))),
        sorted(contract.post_logout_redirect_uris),
    )
    same("pkce.code.challenge.method", attributes.get("pkce.code.challenge.method"), "S256")
    same("publicClient", client.get("publicClient"), False)
    same("standardFlowEnabled", client.get("standardFlowEnabled"), True)
    same("implicitFlowEnabled", client.get("implicitFlowEnabled"), False)
    same("directAccessGrantsEnabled", client.get("directAccessGrantsEnabled"), False)
    same("serviceAccountsEnabled", client.get("serviceAccountsEnabled"), False)
    same("webOrigins", client.get("webOrigins") or [], [])
    same("access.token.lifespan", attributes.get("access.token.lifespan"), settings.access_token_lifespan)
    mappers = [m for m in client.get("protocolMappers") or [] if m.get("protocolMapper") == MAPPER_TYPE]
    if len(mappers) != 1:
        problems.append(f"group membership mappers: {len(mappers)}, the contract says exactly one")
    else:
        config = mappers[0].get("config") or {}
        same("mapper claim.name", config.get("claim.name"), contract.role_claim)
        same("mapper id.token.claim", config.get("id.token.claim"), "true")
        same("mapper userinfo.token.claim", config.get("userinfo.token.claim"), "true")
        # The claim's values are what Airflow's role mapping is keyed by: full paths exactly when they are paths.
        paths = all(value.startswith("/") for value in contract.claim_values)
        same("mapper full.path", config.get("full.path"), "true" if paths else "false")
    # Groups by full path (a bare spec name is the top-level group): a same-named group elsewhere is not it.
    missing = {group_path(group) for group in contract.claim_values} - group_paths(admin, realm)
    if missing:
        problems.append(f"groups missing in realm {realm}: {sorted(missing)}")
    return problems
