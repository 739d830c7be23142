"""Capture what the program declares for a stack, for the end-to-end tier and `make demo`.

Runs the real `__main__.py` under the mock engine (this needs the Pulumi venv) and writes JSON:
the IdP-side registration exactly as declared (client id and secret, redirect URIs, the groups claim
and its filter, the assigned groups) and the Airflow side (the release's Helm values and the
Kubernetes Secrets' data). The end-to-end harness (Airflow venv) configures a real OpenID provider,
Airflow and the ingress from this file alone.

    .venv/bin/python -m tests.capture stacks/Pulumi.local.yaml --out capture.json

The file holds secrets (the mock client secret and keys): it is written with mode 0600 into the
run directory, never logged.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from tests.mock_engine import Run, fake, run_stack_file

OKTA_APP = "okta:app/oAuth:OAuth"


def idp_side(run: Run) -> dict[str, Any]:
    """The registration the IdP holds, read from the declared resources (not from the spec)."""
    outputs = run.stack_outputs
    secrets = kubernetes_secrets(run)
    client_secret = secrets["airflow-oidc-client"]["client-secret"]
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
