"""Capture what the program declares for a stack, for the end-to-end tier and `make demo`.

Runs the real `__main__.py` under the mock engine (this needs the Pulumi venv) and writes JSON:
the IdP-side registration exactly as declared (client id and secret, redirect URIs, the groups claim
and its filter, the assigned groups; for Keycloak the declared pulumi_keycloak resources themselves,
which the harness applies to a real server) and the Airflow side (the release's Helm values and the
Kubernetes Secrets' data). The end-to-end harness (Airflow venv) configures a real OpenID provider,
Airflow and the ingress from this file alone.

    .venv/bin/python -m tests.capture stacks/Pulumi.local.yaml --out capture.json

The file holds secrets (the mock client secret and keys): it is written with mode 0600 into the
run directory, never logged.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
from pathlib import Path
from typing import Any

from tests.mock_engine import Run, fake, run_stack_file

OKTA_APP = "okta:app/oAuth:OAuth"
ENTRA_APP = "azuread:index/application:Application"
ENTRA_SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
ENTRA_GROUP = "azuread:index/group:Group"
ENTRA_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
ENTRA_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
ENTRA_GET_GROUPS = "azuread:index/getGroups:getGroups"
KEYCLOAK_CLIENT = "keycloak:openid/client:Client"
KEYCLOAK_MAPPER = "keycloak:openid/groupMembershipProtocolMapper:GroupMembershipProtocolMapper"
KEYCLOAK_REALM = "keycloak:index/realm:Realm"
KEYCLOAK_GROUP = "keycloak:index/group:Group"
KEYCLOAK_GET_GROUP = "keycloak:index/getGroup:getGroup"


def idp_side(run: Run) -> dict[str, Any]:
    """The registration the IdP holds, read from the declared resources (not from the spec)."""
    outputs = run.stack_outputs
    secrets = kubernetes_secrets(run)
    client_secret = secrets["airflow-oidc-client"]["client-secret"]
    if run.of_type(ENTRA_APP):
        return entra_side(run, client_secret)
    if run.of_type(KEYCLOAK_CLIENT):
        return keycloak_side(run, client_secret)
    apps = run.of_type(OKTA_APP)
    if apps:
        app = apps[0].inputs
        claims = run.of_type("okta:auth/serverClaim:ServerClaim")
        if claims:
            claim = claims[0].inputs
            claim_name, claim_filter = claim["name"], claim["value"]
            issuer_path = "/oauth2/" + claim["authServerId"]
        else:
            claim_name, claim_filter = app["groupsClaim"]["name"], app["groupsClaim"]["value"]
            issuer_path = ""
        # Group ids as the mocks issue them: created groups by resource name, looked-up ones by name.
        name_by_id = {fake(g.name, "id"): g.inputs["name"] for g in run.of_type("okta:group/group:Group")}
        for token, args in run.invokes:
            if token == "okta:group/getGroup:getGroup":
                name_by_id[fake(args["name"], "00g")] = args["name"]
        assignments = run.one("okta:index/appGroupAssignments:AppGroupAssignments").inputs["groups"]
        return {
            "kind": "okta",
            "client_id": outputs["clientId"],
            "client_secret": client_secret,
            "client_secret_at_idp": app["clientBasicSecret"],
            "redirect_uris": app["redirectUris"],
            "post_logout_redirect_uris": app["postLogoutRedirectUris"],
            "grant_types": app["grantTypes"],
            "pkce_required": app["pkceRequired"],
            "scopes": app["loginScopes"],
            "groups_claim": claim_name,
            "groups_filter": claim_filter,
            # Okta lets only members of assigned groups sign in ("Everyone" admits all).
            "assigned_groups": [name_by_id[a["id"]] for a in assignments],
            "issuer": outputs["issuer"],
            "issuer_path": issuer_path,
        }
    registration = outputs["registration"]
    return {
        "kind": "oidc",
        "client_id": registration["clientId"],
        "client_secret": client_secret,
        "client_secret_at_idp": client_secret,
        "redirect_uris": registration["redirectUris"],
        "post_logout_redirect_uris": registration["postLogoutRedirectUris"],
        "grant_types": registration["grantTypes"],
        "pkce_required": registration["pkce"] == "S256",
        "scopes": registration["scopes"],
        "groups_claim": registration["groupsClaim"],
        "groups_filter": None,  # a hand-registered provider emits the user's groups as they are
        "issuer": registration["issuer"],
        "issuer_path": "",
    }


def keycloak_side(run: Run, client_secret: str) -> dict[str, Any]:
    """Keycloak: the declared pulumi_keycloak resources as the harness applies them to a real server
    (`declared`: resources and the mock id -> resource map), plus what the tests read from them."""
    from tests.e2e.harness.keycloak import capture_declared

    outputs = run.stack_outputs
    client = run.one(KEYCLOAK_CLIENT).inputs
    mapper = run.one(KEYCLOAK_MAPPER).inputs
    realms = run.of_type(KEYCLOAK_REALM)
    # The client's realmId is a declared realm's id (its name) or the name of a realm that must exist.
    realm = realms[0].inputs["realm"] if realms else client["realmId"]
    issuer = outputs["issuer"]
    existing = [args["name"] for token, args in run.invokes if token == KEYCLOAK_GET_GROUP]
    return {
        "kind": "keycloak",
        "client_id": client["clientId"],
        "client_secret": client_secret,
        "client_secret_at_idp": client["clientSecret"],
        "redirect_uris": client["validRedirectUris"],
        "post_logout_redirect_uris": client["validPostLogoutRedirectUris"],
        "grant_types": ["authorization_code"] if client.get("standardFlowEnabled") else [],
        "pkce_required": client.get("pkceCodeChallengeMethod") == "S256",
        "scopes": rendered_scopes(run),
        "groups_claim": mapper["claimName"],
        "groups_filter": None,  # the mapper emits every group of the user
        "mapper_name": mapper["name"],
        "issuer": issuer,
        "issuer_path": "/realms/" + realm,
        "realm": realm,
        "realm_declared": bool(realms),
        # Groups the program looks up: they must exist before it runs.
        "existing_groups": existing,
        # Every group the program creates or looks up (the claim values it expects).
        "groups": [group.inputs["name"] for group in run.of_type(KEYCLOAK_GROUP)] + existing,
        "declared": capture_declared(run),
    }


def rendered_scopes(run: Run) -> list[str]:
    """The scopes Airflow requests, from the rendered webserver_config.py (`SCOPES = [...]`)."""
    text = run.one("kubernetes:helm.sh/v3:Release").inputs["values"]["apiServer"]["apiServerConfig"]
    (line,) = [line for line in text.splitlines() if line.startswith("SCOPES = ")]
    return list(ast.literal_eval(line.removeprefix("SCOPES = ")))


def entra_side(run: Run, client_secret: str) -> dict[str, Any]:
    """Entra ID: the app registration, its service principal and app-role assignments as declared.

    `claim_values` is what Entra puts in `roles` for a direct member of each group: the values of the
    app roles assigned to the group. Mock object ids are matched back to the groups they stand for.
    """
    from components.idp.azuread import GRAPH_SIGN_IN_SCOPES, AzureadIdp, mock_group_id

    outputs = run.stack_outputs
    app_resource = run.one(ENTRA_APP)
    app = app_resource.inputs
    service_principal = run.one(ENTRA_SERVICE_PRINCIPAL)

    def computed(resource: Any, key: str) -> str:
        values = AzureadIdp.mock_outputs(resource.type, resource.name, resource.inputs) or {}
        return str(values[key])

    name_by_id = {computed(group, "objectId"): group.inputs["displayName"] for group in run.of_type(ENTRA_GROUP)}
    for token, args in run.invokes:
        if token == ENTRA_GET_GROUPS:
            name_by_id[mock_group_id(args["displayNamePrefix"])] = args["displayNamePrefix"]
    value_by_role_id = {role["id"]: role["value"] for role in app["appRoles"]}
    claim_values: dict[str, list[str]] = {}
    for assignment in run.of_type(ENTRA_ASSIGNMENT):
        inputs = assignment.inputs
        if inputs["resourceObjectId"] != computed(service_principal, "objectId"):
            raise ValueError(f"{assignment.name} assigns a role of another service principal")
        principal = inputs["principalObjectId"]
        group = name_by_id.get(principal, principal)  # a group given by object id keeps it
        claim_values.setdefault(group, []).append(value_by_role_id[inputs["appRoleId"]])
    # Entra holds both password slots; the client secret Airflow gets must be one of them.
    held = [computed(password, "value") for password in run.of_type(ENTRA_PASSWORD)]
    if client_secret not in held:
        raise ValueError("the client secret in the Kubernetes Secret is none of the app's passwords")
    scope_names = {scope_id: name for name, scope_id in GRAPH_SIGN_IN_SCOPES.items()}
    scopes = [
        scope_names[access["id"]]
        for resource in app["requiredResourceAccesses"]
        for access in resource["resourceAccesses"]
        if access["type"] == "Scope"
    ]
    tenant = outputs["tenantId"]
    required = service_principal.inputs["appRoleAssignmentRequired"]
    return {
        "kind": "azuread",
        "client_id": outputs["clientId"],
        "client_secret": client_secret,
        "client_secret_at_idp": client_secret,
        "client_secrets_held": held,
        "redirect_uris": app["web"]["redirectUris"],
        "post_logout_redirect_uris": [],  # Entra registers a front-channel logout URL, no post-logout list
        "logout_url": app["web"]["logoutUrl"],
        "grant_types": ["authorization_code"],
        "pkce_required": False,  # Entra accepts PKCE when the client sends it (Airflow does)
        "scopes": scopes,
        "groups_claim": "roles",
        "groups_filter": None,
        "claim_values": claim_values,
        # Assignment required: only members of assigned groups may sign in.
        "assigned_groups": list(claim_values) if required else None,
        # Claims Entra adds to every ID token: the user's object id and the tenant.
        "token_claims": ["oid", "tid"],
        "tenant": tenant,
        "issuer": outputs["issuer"],
        "issuer_path": f"/{tenant}/v2.0",
    }


def kubernetes_secrets(run: Run) -> dict[str, dict[str, str]]:
    return {
        secret.inputs["metadata"]["name"]: secret.inputs["stringData"]
        for secret in run.of_type("kubernetes:core/v1:Secret")
    }


def capture(stack_file: Path) -> dict[str, Any]:
    run = run_stack_file(stack_file)
    release = run.one("kubernetes:helm.sh/v3:Release").inputs
    return {
        "stack": run.stack,
        "stack_file": str(stack_file),
        "outputs": {k: v for k, v in run.stack_outputs.items() if k != "clientSecret"},
        "idp": idp_side(run),
        "airflow": {
            "release_name": release["name"],
            "namespace": release["namespace"],
            "values": release["values"],
            "secrets": kubernetes_secrets(run),
            # What the values mount from ConfigMaps (the auth-manager module and its settings).
            "config_maps": {
                config_map.inputs["metadata"]["name"]: config_map.inputs.get("data") or {}
                for config_map in run.of_type("kubernetes:core/v1:ConfigMap")
            },
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack_file", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = capture(args.stack_file)
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)


if __name__ == "__main__":
    main()
