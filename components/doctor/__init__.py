"""`airflow-oidc doctor STACK_FILE`: a preflight of a live setup, from the stack's client contract.

Each check is one line, `pass`, `fail` or `cannot check`, and a failed check says which spec key to
change. Works for every IdP kind: it reads only the `ClientContract` (issuer, redirect URI, scopes,
role claim, claim values -> roles) and the provider's own discovery document. HTTP with `urllib`
(the Pulumi venv has no HTTP client of its own); no secret is read, sent or printed: the pasted
ID token is decoded, never echoed.

    airflow-oidc doctor stacks/Pulumi.dev.yaml [--airflow-url URL] [--id-token FILE] [--format json]

The package, bottom up: `report` (a check, the report), `http_client`, `id_token`, `roles` (the rendered
security manager's mapping), `state` (the target and what the groups share); the check groups
`discovery` (discovery and keys), `idp_client` (the client at the IdP), `airflow_request` (Airflow's
own request), `tokens` (clocks and ID tokens); `runner` (one `Doctor` over every group, in order);
`command` (the sub-command).
"""

from components.doctor.command import add_arguments, doctor, provider_sources
from components.doctor.http_client import Http, Response
from components.doctor.id_token import LEEWAY_SECONDS, Jwt, TokenError, verify_signature
from components.doctor.report import CANNOT, FAIL, PASS, Check, render
from components.doctor.roles import RoleMapping
from components.doctor.runner import Doctor
from components.doctor.state import DoctorTarget, issuer_keys

__all__ = [
    "CANNOT",
    "FAIL",
    "LEEWAY_SECONDS",
    "PASS",
    "Check",
    "Doctor",
    "DoctorTarget",
    "Http",
    "Jwt",
    "Response",
    "RoleMapping",
    "TokenError",
    "add_arguments",
    "doctor",
    "issuer_keys",
    "provider_sources",
    "render",
    "verify_signature",
]
