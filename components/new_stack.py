"""`airflow-oidc new-stack --team T --env E --idp KIND [--hostname H]`: a team's stack file in one step.

Writes `stacks/Pulumi.<team>-<env>.yaml`, valid as written (it is validated, environment defaults
included, before this command returns), and prints the commands that follow. Generic over the IdP
kinds: the `idp` keys come from the kind's model (`components/idp/<kind>.py`); a required key gets a
placeholder the spec accepts, marked by a comment to replace it. Values the environment's defaults
file sets (lifetimes, rotation, chart, image, replicas) are left out: the stack inherits them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from components.fleet import fleet_clashes, fleet_of
from components.idp import KINDS, kind_name, kind_names
from components.idp.base import IdpModel
from components.model import CONFIG_KEY
from components.project import find_project
from components.spec import SpecError, parse_spec

PLACEHOLDERS: tuple[Any, ...] = (
    "https://idp.example.com",
    "replace-me",
    "00000000-0000-4000-8000-000000000000",
    "example.com",
    "replace-me@example.com",
    "C00000000",
)
"""Candidate values for a required `idp` key, tried in order (after the field's own `examples`) until the
spec accepts one. A kind whose required key has a format none of these meets gives the Field `examples`."""
SECRET_PLACEHOLDER = {"secure": "REPLACE-ME"}
"""A required secret key is written as a `secure:` value: `pulumi config set --secret --path` replaces it
(validate reads any `secure:` value as set; Pulumi refuses this one until it is replaced)."""


def kind_model(kind: str) -> type[IdpModel]:
    for model in KINDS:
        if kind_name(model) == kind:
            return model
    raise ValueError(f"{kind!r} is not an IdP kind (one of {', '.join(kind_names())})")


def base_spec(team: str, env: str, kind: str, hostname: str) -> dict[str, Any]:
    """The stack's spec before the kind's required keys: team groups, namespace, TLS, database."""
    airflow: dict[str, Any] = {
        "namespace": f"airflow-{team}-{env}"[:63].rstrip("-"),
        "tls": {"issuer": {"name": "letsencrypt"}},
        "ingressClassName": "nginx",
        "database": {"secretName": "airflow-metadata-db"} if env == "prod" else {"bundled": True},
    }
    return {
        "environment": env,
        "team": team,
        "hostname": hostname,
        "idp": {"kind": kind},
        "access": [
            {"group": f"{team}-airflow-admins", "role": "Admin"},
            {"group": f"{team}-engineers", "role": "User"},
            {"group": f"{team}-analysts", "role": "Viewer"},
        ],
        "airflow": airflow,
    }


def _problems_at(spec: dict[str, Any], key: str) -> list[str]:
    """The spec's problems about `idp.<key>` (empty: the key's value is accepted)."""
    try:
        parse_spec(spec, "new stack")
    except SpecError as error:
        return [problem for problem in error.problems if f"{CONFIG_KEY}.idp.{key}" in problem]
    return []


def fill_required(spec: dict[str, Any], model: type[IdpModel]) -> dict[str, str]:
    """Give every required `idp` key of the kind a placeholder the spec accepts; key -> its description."""
    filled: dict[str, str] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key == "kind" or not info.is_required():
            continue
        spec["idp"][key] = _placeholder(spec, key, info)
        filled[key] = " ".join((info.description or "required").split())
    return filled


def _placeholder(spec: dict[str, Any], key: str, info: FieldInfo) -> Any:
    for candidate in (*(info.examples or ()), *PLACEHOLDERS):
        spec["idp"][key] = candidate
        if not _problems_at(spec, key):
            return candidate
    problems = _problems_at(spec, key)
    raise ValueError(f"idp.{key}: no placeholder is accepted ({'; '.join(problems) or 'unknown type'}); set it by hand")


def name_groups(spec: dict[str, Any]) -> None:
    """Group names as the kind spells them: plain names, or (when the kind refuses those) group emails."""
    try:
        parse_spec(spec, "new stack")
        return
    except SpecError as error:
        if not any(f"{CONFIG_KEY}.access[" in problem for problem in error.problems):
            return
    domain = spec["idp"].get("domain") if isinstance(spec["idp"].get("domain"), str) else "example.com"
    for rule in spec["access"]:
        rule["group"] = f"{rule['group']}@{domain}"


def render_stack_file(spec: dict[str, Any], filled: dict[str, str], model: type[IdpModel], stack: str) -> str:
    """The stack file's text: a header, the spec, and a comment on each placeholder."""
    spec = {**spec, "idp": dict(spec["idp"])}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key in filled and info.annotation is SecretStr:
            spec["idp"][key] = dict(SECRET_PLACEHOLDER)
    document = {"config": {"kubernetes:context": "REPLACE-ME-kube-context", CONFIG_KEY: spec}}
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    lines = []
    previous = ""
    for line in body.splitlines():
        stripped = line.strip()
        key = stripped.split(":", 1)[0]
        if line.startswith("      ") and not line.startswith("       ") and key in filled:
            line += f"  # REPLACE: {filled[key]}"
        elif stripped.startswith("secure: REPLACE-ME"):
            line += f"  # pulumi config set --secret --path '{CONFIG_KEY}.idp.{previous}' <secret>"
        elif stripped.startswith("kubernetes:context:"):
            line += "  # REPLACE: the cluster's kube context"
        previous = key
        lines.append(line)
    provider = ", ".join(model.PROVIDER_CONFIG) or "none"
    header = [
        f"# Stack {stack}: written by `airflow-oidc new-stack`. Replace the values marked REPLACE.",
        f"# Values stacks/defaults/{spec['environment']}.yaml sets (lifetimes, rotation, chart, image, replicas)",
        "# are inherited; see README, Environment defaults.",
        f"# Provider settings of idp.kind {spec['idp']['kind']}: {provider} (pulumi config set).",
    ]
    return "\n".join(header + lines) + "\n"


def next_commands(stack: str, path: str, model: type[IdpModel]) -> list[str]:
    commands = [f"pulumi stack init {stack}"]
    for key, env in model.PROVIDER_CONFIG.items():
        commands.append(f"pulumi config set -s {stack} {key} <value>    # or export {env}")
    commands += [
        f"pulumi config set -s {stack} kubernetes:context <context>",
        f"airflow-oidc validate {path}",
        f"airflow-oidc plan {path}",
        f"pulumi preview -s {stack} --diff --policy-pack policy",
    ]
    return commands


def new_stack(team: str, env: str, kind: str, hostname: str | None, stacks_dir: Path, force: bool = False) -> int:
    """Write the stack file; print where and what next. 0 on success, 1 when it cannot be written valid."""
    from components.cli import check_stack_file

    try:
        model = kind_model(kind)
    except ValueError as error:
        print(f"airflow-oidc new-stack: {error}", file=sys.stderr)
        return 1
    stack = f"{team}-{env}"
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if path.exists() and not force:
        print(f"airflow-oidc new-stack: {path} exists (--force replaces it)", file=sys.stderr)
        return 1
    spec = base_spec(team, env, kind, hostname or f"airflow-{team}.{env}.example.com")
    try:
        filled = fill_required(spec, model)
        name_groups(spec)
        parse_spec(spec, f"stacks/{path.name}")
    except (ValueError, SpecError) as error:
        print(f"airflow-oidc new-stack: {error}", file=sys.stderr)
        return 1
    stacks_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(render_stack_file(spec, filled, model, stack))
    ok, text = check_stack_file(path)  # with the environment's defaults, as the program reads it
    clashes = fleet_clashes(fleet_of([path]), only=[path]) if ok else []
    if not ok or clashes:
        path.unlink()
        for line in [text] if not ok else clashes:
            print(line, file=sys.stderr)
        print("airflow-oidc new-stack: not written (fix the above: --hostname, or the defaults file)", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    if filled:
        print(f"replace the placeholders marked REPLACE (idp: {', '.join(filled)}), then:")
    else:
        print("then:")
    for command in next_commands(stack, str(path), model):
        print(f"  {command}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team", required=True, help="team name (lower-case letters, digits, dashes)")
    parser.add_argument("--env", required=True, help="environment (dev, prod, ...): stacks/defaults/<env>.yaml applies")
    parser.add_argument("--idp", required=True, choices=kind_names(), help="the IdP kind")
    parser.add_argument("--hostname", help="public host of the UI (default airflow-<team>.<env>.example.com)")
    parser.add_argument("--stacks-dir", type=Path, help=argparse.SUPPRESS)  # default: the project's
    parser.add_argument("--force", action="store_true", help="replace an existing stack file")


def run(args: argparse.Namespace) -> int:
    stacks_dir = args.stacks_dir or find_project(getattr(args, "project_dir", None)).stacks_dir
    return new_stack(args.team, args.env, args.idp, args.hostname, stacks_dir, args.force)
