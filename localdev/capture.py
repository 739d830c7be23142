"""Capture what the program declares for a stack, for the end-to-end tier and `make demo`.

Runs the real `__main__.py` under the mock engine (this needs the Pulumi venv) and writes JSON:
the IdP-side registration exactly as declared (client id and secret, redirect URIs, the groups claim
and its filter, the assigned groups; for Keycloak the declared pulumi_keycloak resources themselves,
which the harness applies to a real server) and the Airflow side (the release's Helm values and the
Kubernetes Secrets' data). The end-to-end harness (Airflow venv) configures a real OpenID provider,
Airflow and the ingress from this file alone.

    .venv/bin/python -m localdev.capture stacks/Pulumi.local.yaml --out capture.json

The file holds secrets (the mock client secret and keys): it is written with mode 0600 into the
run directory, never logged.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
from pathlib import Path
from typing import Any

from components.mock_engine import Run, run_stack_file

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
GOOGLE_CLIENT = "airflow-oidc:idp:GoogleWorkspaceClient"
GCP_ACCOUNT = "gcp:serviceaccount/account:Account"
GCP_SECRET = "gcp:secretmanager/secret:Secret"
GCP_SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
ESO_SECRET_STORE = "kubernetes:external-secrets.io/v1:SecretStore"
ESO_EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"
CALLBACK_PATH_PREFIX = "/auth/oauth-authorized/"


def idp_side(run: Run) -> dict[str, Any]:
    """The registration the IdP holds, read from the declared resources (not from the spec)."""
    outputs = run.stack_outputs
    client_secret = api_server_client_secret(run)
    if run.of_type(ENTRA_APP):
        return entra_side(run, client_secret)
    if run.of_type(KEYCLOAK_CLIENT):
        return keycloak_side(run, client_secret)
    if run.of_type(GOOGLE_CLIENT):
        return google_side(run, client_secret)
    # The web app (service apps are service accounts'; registration order is not guaranteed).
    apps = [a for a in run.of_type(OKTA_APP) if a.inputs.get("type") != "service"]
    if apps:
        app = apps[0].inputs
        claims = run.of_type("okta:auth/serverClaim:ServerClaim")
        if claims:
            claim = claims[0].inputs
            if claim["valueType"] != "EXPRESSION":
                raise ValueError(f"the custom server's claim is of value type {claim['valueType']}, not EXPRESSION")
            claim_name, claim_expression = claim["name"], claim["value"]
            issuer_path = "/oauth2/" + claim["authServerId"]
        else:
            if app["groupsClaim"]["type"] != "EXPRESSION":
                raise ValueError(f"the app's groups claim is of type {app['groupsClaim']['type']}, not EXPRESSION")
            claim_name, claim_expression = app["groupsClaim"]["name"], app["groupsClaim"]["value"]
            issuer_path = ""
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
            "groups_filter": None,
            # The claim as declared (getFilteredGroups by group id), evaluated by the stand-in provider.
            "groups_expression": claim_expression,
            # The org's groups the program created or saw: id -> name and type.
            "group_directory": okta_directory(run),
            # Okta lets only members of assigned groups sign in ("Everyone" admits all): group ids.
            "assigned_groups": [a["id"] for a in assignments],
            "issuer": outputs["issuer"],
            "issuer_path": issuer_path,
            **okta_service_accounts(run),
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


def okta_directory(run: Run) -> dict[str, dict[str, str]]:
    """The Okta org's groups as the mocks hold them: the groups the program creates (the ids the mocks
    give them) and every group its lookups saw (each lookup replayed on the mocks)."""
    from components.idp.okta import OktaIdp

    directory: dict[str, dict[str, str]] = {}
    for group in run.of_type("okta:group/group:Group"):
        group_id = (OktaIdp.mock_outputs(group.type, group.name, group.inputs) or {})["id"]
        directory[group_id] = {"name": group.inputs["name"], "type": "OKTA_GROUP"}
    for token, args in run.invokes:
        answer = OktaIdp.mock_call(token, args) or {}
        for found in answer.get("groups") or ([answer] if "id" in answer else []):
            directory[found["id"]] = {"name": found["name"], "type": found["type"]}
    return directory


def keycloak_side(run: Run, client_secret: str) -> dict[str, Any]:
    """Keycloak: the declared pulumi_keycloak resources as the harness applies them to a real server
    (`declared`: resources and the mock id -> resource map), plus what the tests read from them."""
    from localdev.harness.keycloak import capture_declared

    outputs = run.stack_outputs
    # The Airflow client (the service accounts' clients have service accounts on).
    (client,) = [c.inputs for c in run.of_type(KEYCLOAK_CLIENT) if not c.inputs.get("serviceAccountsEnabled")]
    mapper = run.one(KEYCLOAK_MAPPER).inputs
    realms = run.of_type(KEYCLOAK_REALM)
    # The client's realmId is a declared realm's id (its name) or the name of a realm that must exist.
    realm = realms[0].inputs["realm"] if realms else client["realmId"]
    issuer = outputs["issuer"]
    declared = capture_declared(run)
    existing = sorted(set(declared["existing"].values()))
    groups = keycloak_group_paths(run, declared) + existing
    # No assignment in Keycloak: the default-role audience is the paths Airflow gives the default role.
    default_role_groups = list(rendered_setting(run, "DEFAULT_ROLE_CLAIM_VALUES"))
    if not set(default_role_groups) <= set(groups):
        raise ValueError(f"Airflow's default-role groups {default_role_groups} are not all declared: {groups}")
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
        # Group paths the program looks up: they must exist before it runs.
        "existing_groups": existing,
        # The path of every group the program creates or looks up (full-path claim values).
        "groups": groups,
        "default_role_groups": default_role_groups,
        "declared": declared,
    }


def keycloak_group_paths(run: Run, declared: dict[str, Any]) -> list[str]:
    """The paths of the groups the program creates: each under its parent (created, or looked up)."""
    path_by_id = dict(declared["existing"])
    name_by_id = declared["ids"]
    paths = []
    for group in run.of_type(KEYCLOAK_GROUP):  # declared parents first
        parent = group.inputs.get("parentId")
        path = (path_by_id[parent] if parent else "") + "/" + group.inputs["name"]
        (own_id,) = [mock_id for mock_id, name in name_by_id.items() if name == group.name]
        path_by_id[own_id] = path
        paths.append(path)
    return paths


def rendered_scopes(run: Run) -> list[str]:
    """The scopes Airflow requests, from the rendered webserver_config.py (`SCOPES = [...]`)."""
    return list(rendered_setting(run, "SCOPES"))


def rendered_setting(run: Run, name: str) -> Any:
    """A literal setting of the rendered webserver_config.py (`NAME = <literal>` or `NAME: <type> = ...`)."""
    text = run.one("kubernetes:helm.sh/v3:Release").inputs["values"]["apiServer"]["apiServerConfig"]
    (line,) = [line for line in text.splitlines() if re.match(rf"{name}(: [^=]+)? = ", line)]
    return ast.literal_eval(line.split(" = ", 1)[1])


def entra_side(run: Run, client_secret: str) -> dict[str, Any]:
    """Entra ID: the app registration, its service principal and app-role assignments as declared.

    `claim_values` is what Entra puts in `roles` for a direct member of each group: the values of the
    app roles assigned to the group. Mock object ids are matched back to the groups they stand for.
    """
    from components.idp.azuread import GRAPH_SIGN_IN_SCOPES, AzureadIdp, mock_group_id

    outputs = run.stack_outputs
    # The Airflow app registration and its service principal (not the service accounts' `-sa-` ones).
    (app_resource,) = [a for a in run.of_type(ENTRA_APP) if "-sa-" not in a.name]
    app = app_resource.inputs
    (service_principal,) = [p for p in run.of_type(ENTRA_SERVICE_PRINCIPAL) if "-sa-" not in p.name]

    def computed(resource: Any, key: str) -> str:
        values = AzureadIdp.mock_outputs(resource.type, resource.name, resource.inputs) or {}
        return str(values[key])

    name_by_id = {computed(group, "objectId"): group.inputs["displayName"] for group in run.of_type(ENTRA_GROUP)}
    for token, args in run.invokes:
        if token == ENTRA_GET_GROUPS:
            name_by_id[mock_group_id(args["displayNamePrefix"])] = args["displayNamePrefix"]
    value_by_role_id = {role["id"]: role["value"] for role in app["appRoles"]}
    claim_values: dict[str, list[str]] = {}
    for assignment in [a for a in run.of_type(ENTRA_ASSIGNMENT) if "-sa-" not in a.name]:
        inputs = assignment.inputs
        if inputs["resourceObjectId"] != computed(service_principal, "objectId"):
            raise ValueError(f"{assignment.name} assigns a role of another service principal")
        principal = inputs["principalObjectId"]
        group = name_by_id.get(principal, principal)  # a group given by object id keeps it
        claim_values.setdefault(group, []).append(value_by_role_id[inputs["appRoleId"]])
    # Entra holds both password slots; the client secret Airflow gets must be one of them.
    held = [computed(password, "value") for password in run.of_type(ENTRA_PASSWORD) if "-sa-" not in password.name]
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
    registered = app["web"]["redirectUris"]
    return {
        "kind": "azuread",
        "client_id": outputs["clientId"],
        "client_secret": client_secret,
        "client_secret_at_idp": client_secret,
        "client_secrets_held": held,
        # Entra has one list: a post_logout_redirect_uri is accepted when it is a registered redirect URI.
        "redirect_uris": [uri for uri in registered if CALLBACK_PATH_PREFIX in uri],
        "post_logout_redirect_uris": [uri for uri in registered if CALLBACK_PATH_PREFIX not in uri],
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


def okta_service_accounts(run: Run) -> dict[str, Any]:
    """Okta's service apps as the custom server lets them get tokens: only the clients the
    client-credentials policy names, with the secret Okta holds, and the scope its rule grants."""
    rules = [
        rule.inputs
        for rule in run.of_type("okta:auth/serverPolicyRule:ServerPolicyRule")
        if rule.inputs.get("grantTypeWhitelists") == ["client_credentials"]
    ]
    if not rules:
        return {}
    (rule,) = rules
    (policy,) = [p.inputs for p in run.of_type("okta:auth/serverPolicy:ServerPolicy") if p.name.endswith("-sa-policy")]
    allowed = set(policy["clientWhitelists"])
    ids = run.stack_outputs["serviceAccountClientIds"]
    apps = {a.name: a.inputs for a in run.of_type(OKTA_APP) if a.inputs.get("type") == "service"}
    accounts = []
    for name, client_id in ids.items():
        (app,) = [inputs for resource, inputs in apps.items() if resource.endswith(f"-sa-{name}")]
        if client_id in allowed and app["grantTypes"] == ["client_credentials"]:
            accounts.append({"name": name, "client_id": client_id, "client_secret": app["clientBasicSecret"]})
    return {"service_accounts": accounts, "service_account_scopes": list(rule["scopeWhitelists"])}


def api_server_client_secret(run: Run) -> str:
    """The client secret as the api-server reads it: its env's secretKeyRef, resolved in the Secrets."""
    values = run.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    (entry,) = [e for e in values["apiServer"]["env"] if e["name"] == "AIRFLOW_OIDC_CLIENT_SECRET"]
    ref = entry["valueFrom"]["secretKeyRef"]
    return kubernetes_secrets(run)[ref["name"]][ref["key"]]


def kubernetes_secrets(run: Run) -> dict[str, dict[str, str]]:
    """The Secrets in the namespace: those declared, and those External Secrets Operator writes."""
    declared = {
        secret.inputs["metadata"]["name"]: secret.inputs["stringData"]
        for secret in run.of_type("kubernetes:core/v1:Secret")
    }
    synced = external_secrets(run)
    both = set(declared) & set(synced)
    if both:
        raise ValueError(f"Secrets both declared and written by an ExternalSecret: {sorted(both)}")
    return {**declared, **synced}


def external_secrets(run: Run) -> dict[str, dict[str, str]]:
    """What the operator writes for each declared ExternalSecret: its target Secret, each key from
    the Secret Manager version it pins, through the SecretStore it names (which must be declared)."""
    stores = {store.inputs["metadata"]["name"]: store.inputs for store in run.of_type(ESO_SECRET_STORE)}
    from components.gcp import gcp_mock_outputs

    def computed(resource: Any, key: str) -> str:
        return str((gcp_mock_outputs(resource.type, resource.name, resource.inputs) or {})[key])

    # (secretId, version number) -> the data, as Secret Manager would hold it (ids as the mocks give them).
    secret_by_id = {computed(secret, "id"): secret.inputs["secretId"] for secret in run.of_type(GCP_SECRET)}
    versions = {
        (secret_by_id[version.inputs["secret"]], computed(version, "version")): version.inputs["secretData"]
        for version in run.of_type(GCP_SECRET_VERSION)
    }
    synced: dict[str, dict[str, str]] = {}
    for external in run.of_type(ESO_EXTERNAL_SECRET):
        spec = external.inputs["spec"]
        store = stores.get(spec["secretStoreRef"]["name"])
        if store is None or "gcpsm" not in store["spec"]["provider"]:
            raise ValueError(f"{external.name} names no declared Secret Manager SecretStore")
        data = {}
        for item in spec["data"]:
            ref = item["remoteRef"]
            if ref["key"] not in secret_by_id.values():
                raise ValueError(f"{external.name} reads {ref['key']!r}, which the program does not declare")
            data[item["secretKey"]] = versions[(ref["key"], ref["version"])]
        synced[spec["target"]["name"]] = data
    return synced


def google_side(run: Run, client_secret: str) -> dict[str, Any]:
    """Google: the console client as the registration output describes it, and the Cloud Identity
    lookup the api-server makes as the groups reader (its service account, bound by Workload Identity)."""
    outputs = run.stack_outputs
    registration = outputs["registration"]
    component = run.one(GOOGLE_CLIENT)
    (reader,) = [account for account in run.of_type(GCP_ACCOUNT) if account.parent == component.urn]
    values = run.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    annotations = values["apiServer"]["serviceAccount"]["annotations"]
    return {
        "kind": "google",
        "client_id": registration["clientId"],
        "client_secret": client_secret,
        # The console generated it and the stack file holds it: the same value on both sides.
        "client_secret_at_idp": client_secret,
        "redirect_uris": registration["authorizedRedirectUris"],
        "post_logout_redirect_uris": [],  # Google registers none
        "grant_types": ["authorization_code"],
        "pkce_required": False,  # Google accepts PKCE when the client sends it (Airflow does)
        "scopes": rendered_scopes(run),
        # No groups in Google's tokens: the claim is never emitted (no claim values at all).
        "groups_claim": "groups",
        "groups_filter": None,
        "claim_values": {},
        "token_claims": ["hd"],
        "domain": registration["hostedDomain"],
        "groups_reader": annotations["iam.gke.io/gcp-service-account"],
        "groups_reader_declared": reader.inputs["accountId"],
        "project": reader.inputs["project"],
        "issuer": outputs["issuer"],
        "issuer_path": "",
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
