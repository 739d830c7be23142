"""`airflow-oidc new-stack --team T --env E [--idp KIND] [--hostname H]`: a team's stack file in one step.

Writes `stacks/Pulumi.<team>-<env>.yaml` in the project, valid as written (it is validated, environment
defaults included, before this command returns), and prints the commands that follow. Generic over the
IdP kinds: the `idp` keys come from the kind's model (`components/idp/<kind>.py`); a required key gets a
placeholder the spec accepts, marked by a comment to replace it. Values the environment's defaults
file sets (lifetimes, rotation, chart, image, replicas) are left out: the stack inherits them.

A team's next environment shares what its other stacks set up: the same IdP (their `idp` keys and
provider settings, never a client id or a secret) and the same `access` groups. Groups are created by
one stack and bound by the others, the way the kind binds them (`GROUPS_BOUND_BY`); `--groups` decides
instead. An environment without a defaults file is refused unless `--no-defaults` says so.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from components.env_defaults import DEFAULTS_DIR, defaults_path, load_env_defaults, resolve_spec
from components.env_defaults import known_environments as env_known_environments
from components.fleet import Clash, fleet_clash_list, fleet_of
from components.idp import KINDS, kind_name, kind_names
from components.idp.base import IdpModel
from components.model import CONFIG_KEY
from components.project import find_project
from components.spec import Spec, SpecError, parse_spec
from components.stack_files import check_stack_file
from components.stack_schema import MODELINES

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
PER_STACK_KEYS = ("clientId",)
"""`idp` keys that differ per stack (each stack has its own client): never copied from another stack,
and their placeholder names the stack, so two new stacks never share one."""
SECRET_PLACEHOLDER = {"secure": "REPLACE-ME"}
"""A required secret key is written as a `secure:` value: `pulumi config set --secret --path` replaces it
(validate reads any `secure:` value as set; Pulumi refuses this one until it is replaced)."""
SHARED_SPEC_KEYS = ("access", "signIn", "defaultRole")
"""Who gets in and as what: the same for every environment of a team (they share the groups)."""
GROUPS_KEY = "createGroups"


def kind_model(kind: str) -> type[IdpModel]:
    for model in KINDS:
        if kind_name(model) == kind:
            return model
    raise ValueError(f"{kind!r} is not an IdP kind (one of {', '.join(kind_names())})")


def secret_keys(model: type[IdpModel]) -> set[str]:
    """The kind's `idp` keys that hold a secret."""
    return {info.alias or name for name, info in model.model_fields.items() if _is_secret(info)}


def _is_secret(info: FieldInfo) -> bool:
    return info.annotation is SecretStr or "SecretStr" in str(info.annotation)


# --- the team's other stacks ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sibling:
    """Another valid stack of the same team."""

    path: Path
    stack: str
    spec: Spec
    raw: dict[str, Any]
    """Its `airflow-oidc:spec` as written (not resolved)."""
    config: dict[str, Any]
    """Its whole `config:` map."""

    @property
    def kind(self) -> str:
        return self.spec.idp.kind

    @property
    def creates_groups(self) -> bool:
        return bool(getattr(self.spec.idp, GROUPS_KEY, False))


def team_stacks(stacks_dir: Path, team: str, skip: Path) -> list[Sibling]:
    """The team's valid stack files in the project (`team:` in their spec), except `skip`."""
    from components.stack_config import load_stack_file, spec_from_stack_file

    found = []
    for path in sorted(stacks_dir.glob("Pulumi.*.yaml")):
        if path.resolve() == skip.resolve():
            continue
        try:
            spec = spec_from_stack_file(path)
            config = load_stack_file(path)
        except Exception:  # noqa: BLE001 - an invalid file is `validate`'s to report
            continue
        if spec.team == team and isinstance(config.get(CONFIG_KEY), dict):
            stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
            found.append(Sibling(path, stack, spec, config[CONFIG_KEY], config))
    return found


@dataclass
class Sharing:
    """What the new stack takes from the team's other stacks, and how it shares their groups."""

    source: Sibling | None = None
    """The stack whose IdP settings and access groups are copied (the one that creates the groups, if any)."""
    copied: list[str] = field(default_factory=list)
    """Keys copied from it (`idp.tenantId`, `azuread:tenantId`, `access`, ...)."""
    provider: dict[str, str] = field(default_factory=dict)
    """Provider settings copied (plain values only: a `secure:` value is encrypted for its own stack)."""
    groups: str | None = None
    """What the output says about the groups (None: nothing to say)."""
    groups_note: str | None = None
    """The comment on the `createGroups` line of the stack file."""


def plan_sharing(
    model: type[IdpModel], siblings: list[Sibling], groups: str | None, stack: str, spec: dict[str, Any]
) -> Sharing:
    """Fill `spec` from the team's other stacks (same kind) and decide who creates the groups.

    `groups`: `create`, `bind` or None (decide: bind when another stack creates them or binds them too)."""
    kind = kind_name(model)
    same_kind = [sibling for sibling in siblings if sibling.kind == kind]
    creator = next((sibling for sibling in same_kind if sibling.creates_groups), None)
    source = creator or (same_kind[0] if same_kind else None)
    sharing = Sharing(source=source)
    can_create = GROUPS_KEY in model.model_fields and model.GROUPS_BOUND_BY is not None
    if groups is not None and not can_create:
        raise ValueError(
            f"--groups {groups}: idp.kind {kind} creates no groups at the IdP (the `access` groups are your "
            "provider's, named as its groups claim sends them): leave --groups out"
        )
    if source is not None:
        secrets = secret_keys(model)
        for key, value in source.raw.get("idp", {}).items():
            if key in ("kind", GROUPS_KEY, *PER_STACK_KEYS) or key in secrets:
                continue
            spec["idp"][key] = copy.deepcopy(value)
            sharing.copied.append(f"idp.{key}")
        for key in SHARED_SPEC_KEYS:
            if key in source.raw:
                spec[key] = copy.deepcopy(source.raw[key])
                sharing.copied.append(key)
        for key in model.PROVIDER_CONFIG:
            value = source.config.get(key)
            if isinstance(value, str):
                sharing.provider[key] = value
                sharing.copied.append(key)
    if not can_create:
        return sharing
    default = bool(model.model_fields[GROUPS_KEY].get_default())
    create = (groups == "create") if groups is not None else (default if not same_kind else False)
    if groups is not None or same_kind or create != default:
        spec["idp"][GROUPS_KEY] = create
    how = f"{model.GROUPS_BOUND_BY} (idp.{GROUPS_KEY}: false)"
    if create:
        sharing.groups = f"{stack} creates the `access` groups (idp.{GROUPS_KEY}: true)"
        sharing.groups_note = f"{stack} creates the groups"
        if same_kind:
            others = ", ".join(sibling.stack for sibling in same_kind)
            sharing.groups += f"; {others} must bind them {model.GROUPS_BOUND_BY} (idp.{GROUPS_KEY}: false)"
    elif creator is not None:
        sharing.groups = f"{creator.stack} creates the `access` groups; {stack} binds them {how}"
        sharing.groups_note = f"{creator.stack} creates the groups; this stack binds them {model.GROUPS_BOUND_BY}"
    elif same_kind:
        sharing.groups = f"the `access` groups exist (no stack of the team creates them); {stack} binds them {how}"
        sharing.groups_note = f"the groups exist; bound {model.GROUPS_BOUND_BY}"
    elif not create:
        sharing.groups = f"the `access` groups must exist; {stack} binds them {how}"
        sharing.groups_note = f"the groups exist; bound {model.GROUPS_BOUND_BY}"
    return sharing


# --- the spec -------------------------------------------------------------------------------------


FORWARDED_PLACEHOLDER = "10.0.0.0/8"
"""Prod without a forwarded-IPs default: a private range to narrow to the ingress controller's pods."""


def base_spec(team: str, env: str, kind: str, hostname: str) -> dict[str, Any]:
    """The stack's spec before the kind's required keys: team groups, namespace, TLS, database."""
    airflow: dict[str, Any] = {
        "namespace": f"airflow-{team}-{env}"[:63].rstrip("-"),
        "tls": {"issuer": {"name": "letsencrypt"}},
        "ingressClassName": "nginx",
        "database": {"secretName": "airflow-metadata-db"} if env == "prod" else {"bundled": True},
    }
    if env == "prod":  # never `*` there: a private range to narrow (the defaults' own replaces it)
        airflow["forwardedAllowIps"] = FORWARDED_PLACEHOLDER
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


def fill_required(spec: dict[str, Any], model: type[IdpModel], stack: str) -> dict[str, str]:
    """Give every required `idp` key of the kind not set yet a placeholder the spec accepts; key -> its
    description."""
    filled: dict[str, str] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key == "kind" or not info.is_required() or key in spec["idp"]:
            continue
        spec["idp"][key] = _placeholder(spec, key, info, stack)
        filled[key] = " ".join((info.description or "required").split())
    name_groups(spec)
    # Optional keys the chosen settings make necessary (Google's customerId with createGroups: true).
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in spec["idp"] and _problems_at(spec, key):
            spec["idp"][key] = _placeholder(spec, key, info, stack)
            filled[key] = " ".join((info.description or "required").split())
    return filled


def _placeholder(spec: dict[str, Any], key: str, info: FieldInfo, stack: str) -> Any:
    candidates: list[Any] = [*(info.examples or ()), *PLACEHOLDERS]
    if key in PER_STACK_KEYS:  # one per stack: the stack's name in it
        alnum = re.sub(r"[^a-z0-9]", "", stack.lower())
        own = [c.replace("replaceme", f"replaceme{alnum}") for c in candidates if "replaceme" in str(c)]
        candidates = [*own, f"replace-me-{stack}", *candidates]
    for candidate in candidates:
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
        if "@" not in rule["group"]:
            rule["group"] = f"{rule['group']}@{domain}"


# --- the file -------------------------------------------------------------------------------------


def render_stack_file(
    spec: dict[str, Any],
    filled: dict[str, str],
    model: type[IdpModel],
    stack: str,
    *,
    provider: dict[str, str] | None = None,
    sharing: Sharing | None = None,
    has_defaults: bool = True,
) -> str:
    """The stack file's text: a header, the spec, and a comment on each placeholder."""
    spec = {**spec, "idp": dict(spec["idp"])}
    for key in secret_keys(model):
        if key in filled:
            spec["idp"][key] = dict(SECRET_PLACEHOLDER)
    config: dict[str, Any] = {"kubernetes:context": "REPLACE-ME-kube-context", **(provider or {}), CONFIG_KEY: spec}
    body = yaml.safe_dump({"config": config}, sort_keys=False, default_flow_style=False)
    lines = []
    previous = ""
    notes = {GROUPS_KEY: sharing.groups_note} if sharing is not None and sharing.groups_note else {}
    for line in body.splitlines():
        stripped = line.strip()
        key = stripped.split(":", 1)[0]
        idp_key = line.startswith("      ") and not line.startswith("       ")
        if idp_key and key in filled:
            line += f"  # REPLACE: {filled[key]}"
        elif idp_key and key in notes:
            line += f"  # {notes[key]}"
        elif stripped.startswith("secure: REPLACE-ME"):
            line += f"  # pulumi config set --secret --path '{CONFIG_KEY}.idp.{previous}' <secret>"
        elif stripped.startswith("kubernetes:context:"):
            line += "  # REPLACE: the cluster's kube context"
        elif stripped.startswith("forwardedAllowIps:"):
            line += "  # REPLACE: the ingress controller's pod range (docs/stacks.md: Forwarded headers)"
        previous = key
        lines.append(line)
    provider_keys = ", ".join(model.PROVIDER_CONFIG) or "none"
    environment = spec["environment"]
    inherited = (
        [
            f"# Values stacks/{DEFAULTS_DIR}/{environment}.yaml sets (lifetimes, rotation, chart, image, replicas)",
            "# are inherited; see docs/stacks.md, Environment defaults.",
        ]
        if has_defaults
        else [f"# No stacks/{DEFAULTS_DIR}/{environment}.yaml: the spec model's own defaults apply (--no-defaults)."]
    )
    header = [
        *MODELINES,  # editors check the file against schema/stack-file.schema.json as you type
        f"# Stack {stack}: written by `airflow-oidc new-stack`. Replace the values marked REPLACE.",
        *inherited,
        f"# Provider settings of idp.kind {spec['idp']['kind']}: {provider_keys} (pulumi config set).",
    ]
    if sharing is not None and sharing.source is not None:
        header.append(f"# Shares the IdP and the `access` groups of {sharing.source.stack}.")
    return "\n".join(header + lines) + "\n"


def next_commands(stack: str, model: type[IdpModel], provided: dict[str, str] | None = None) -> list[str]:
    commands = [f"pulumi stack init {stack}"]
    for key, env in model.PROVIDER_CONFIG.items():
        if key not in (provided or {}):
            commands.append(f"pulumi config set -s {stack} {key} <value>    # or export {env}")
    commands += [
        f"pulumi config set -s {stack} kubernetes:context <context>",
        f"airflow-oidc validate {stack}",
        f"airflow-oidc plan {stack}",
        f"pulumi preview -s {stack} --diff --policy-pack policy",
    ]
    return commands


def assign_policy_slot(
    spec: dict[str, Any], stack: str, provider: dict[str, str], stacks_dir: Path, skip: Path
) -> int | None:
    """An Okta custom server shared with other stacks: the smallest policy slot none of them takes on
    that org and server (the numbering the platform team would give; README: the Okta shared-server
    rule). None when the stack's kind takes no slot."""
    from components.fleet import fleet_member

    parsed = parse_spec(spec, f"stacks/Pulumi.{stack}.yaml")
    keys = [what for what in parsed.idp.fleet_names(parsed, stack=stack, provider=provider) if "policy slot" in what]
    if not keys:
        return None
    taken: set[str] = set()
    for path in sorted(stacks_dir.glob("Pulumi.*.yaml")):
        member = fleet_member(path) if path != skip else None
        taken.update(name for what, name in (member.taken() if member else []) if what in keys)
    slot = 1
    while str(slot) in taken:
        slot += 1
    spec["idp"]["authorizationServer"] = {**spec["idp"]["authorizationServer"], "policySlot": slot}
    return slot


def clash_fix(clash: Clash) -> str:
    """The flag or key that resolves a clash with another stack."""
    what = clash.what.lower()
    if clash.what == "hostname":
        return "--hostname (another host for this stack's UI)"
    if "group" in what and "created" in what:
        return f"--groups bind (share the groups {clash.other} creates)"
    if what.startswith("kube context"):
        return "another airflow.namespace or kubernetes:context in the file"
    if what.startswith("okta policy slot"):
        return (
            "idp.authorizationServer.policySlot: a slot no other stack on that server takes (the platform assigns them)"
        )
    return f"another value for {clash.what} in the file"


def leave_out_defaults(spec: dict[str, Any], stacks_dir: Path, env: str) -> None:
    """Drop what the environment's defaults file sets: the stack inherits it, and follows its later changes."""
    env_defaults = load_env_defaults(stacks_dir, env)
    values = env_defaults.values if env_defaults is not None else {}
    for key in values:
        *parents, last = key.split(".")
        holder: Any = spec
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder.pop(last, None)
    tls = spec.get("airflow", {}).get("tls")
    if tls == {}:
        del spec["airflow"]["tls"]


def known_environments(stacks_dir: Path) -> list[str]:
    return env_known_environments(stacks_dir)


def new_stack(
    team: str,
    env: str,
    kind: str | None,
    hostname: str | None,
    stacks_dir: Path,
    force: bool = False,
    *,
    groups: str | None = None,
    no_defaults: bool = False,
) -> int:
    """Write the stack file; print where and what next. 0 on success, 1 when it cannot be written valid."""

    def refuse(message: str) -> int:
        print(f"airflow-oidc new-stack: {message}", file=sys.stderr)
        return 1

    stack = f"{team}-{env}"
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if path.exists() and not force:
        return refuse(f"{path} exists (--force replaces it)")
    has_defaults = defaults_path(stacks_dir, env).is_file()
    if not has_defaults and not no_defaults:
        known = known_environments(stacks_dir)
        names = ", ".join(known) if known else f"none (the project has no stacks/{DEFAULTS_DIR}/)"
        return refuse(
            f"environment {env!r} has no defaults file (stacks/{DEFAULTS_DIR}/{env}.yaml): the platform team's "
            f"lifetimes, rotation, chart and image would not apply. Known environments: {names}. Use one of "
            f"them, add stacks/{DEFAULTS_DIR}/{env}.yaml, or pass --no-defaults to write it on the model's defaults"
        )
    siblings = team_stacks(stacks_dir, team, skip=path)
    if kind is None:
        kinds = sorted({sibling.kind for sibling in siblings})
        if len(kinds) != 1:
            why = f"team {team}'s stacks use {', '.join(kinds)}" if kinds else f"team {team} has no stack yet"
            return refuse(f"--idp is required: {why} (one of {', '.join(kind_names())})")
        kind = kinds[0]
    try:
        model = kind_model(kind)
    except ValueError as error:
        return refuse(str(error))
    spec = base_spec(team, env, kind, hostname or f"airflow-{team}.{env}.example.com")
    try:
        sharing = plan_sharing(model, siblings, groups, stack, spec)
        filled = fill_required(spec, model, stack)
        slot = assign_policy_slot(spec, stack, sharing.provider, stacks_dir, skip=path)
        leave_out_defaults(spec, stacks_dir, env)
        resolve_spec(spec, f"stacks/{path.name}", stacks_dir)  # with the environment's defaults
    except (ValueError, SpecError) as error:
        return refuse(str(error))
    stacks_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        render_stack_file(
            spec, filled, model, stack, provider=sharing.provider, sharing=sharing, has_defaults=has_defaults
        )
    )
    # With the environment's defaults, as the program reads it; the provider settings come next (printed below).
    ok, text = check_stack_file(path, check_settings=False)
    clashes = fleet_clash_list(fleet_of([path]), only=[path]) if ok else []
    if not ok or clashes:
        path.unlink()
        for line in [text] if not ok else [str(clash) for clash in clashes]:
            print(line, file=sys.stderr)
        if not ok:
            return refuse(f"not written: the spec is refused (check stacks/{DEFAULTS_DIR}/{env}.yaml and the flags)")
        fixes = list(dict.fromkeys(clash_fix(clash) for clash in clashes))
        return refuse("not written; use " + "; or ".join(fixes))
    print(f"wrote {path}")
    if sharing.source is not None:
        print(f"shared with {sharing.source.stack}: {', '.join(sharing.copied) or 'nothing'}")
    elif siblings:
        print(f"team {team}'s stacks ({', '.join(s.stack for s in siblings)}) use another kind: nothing shared")
    if sharing.groups:
        print(f"groups: {sharing.groups}")
    if slot is not None:
        print(f"okta: idp.authorizationServer.policySlot {slot}, the first free on that server")
    if filled:
        print(f"replace the placeholders marked REPLACE (idp: {', '.join(filled)}), then:")
    else:
        print("then:")
    for command in next_commands(stack, model, sharing.provider):
        print(f"  {command}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team", required=True, help="team name (lower-case letters, digits, dashes)")
    parser.add_argument("--env", required=True, help="environment (dev, prod, ...): stacks/defaults/<env>.yaml applies")
    parser.add_argument(
        "--idp", choices=kind_names(), help="the IdP kind (default: the kind of the team's other stacks)"
    )
    parser.add_argument("--hostname", help="public host of the UI (default airflow-<team>.<env>.example.com)")
    parser.add_argument(
        "--groups",
        choices=("create", "bind"),
        help="create the `access` groups at the IdP, or bind existing ones (default: bind when another stack "
        "of the team has them, else the kind's default)",
    )
    parser.add_argument(
        "--no-defaults",
        action="store_true",
        help="write a stack for an environment without stacks/defaults/<env>.yaml (the model's defaults apply)",
    )
    parser.add_argument("--stacks-dir", type=Path, help=argparse.SUPPRESS)  # default: the project's
    parser.add_argument("--force", action="store_true", help="replace an existing stack file")


def run(args: argparse.Namespace) -> int:
    stacks_dir = args.stacks_dir or find_project(getattr(args, "project_dir", None)).stacks_dir
    return new_stack(
        args.team,
        args.env,
        args.idp,
        args.hostname,
        stacks_dir,
        args.force,
        groups=args.groups,
        no_defaults=args.no_defaults,
    )
