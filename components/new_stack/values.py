"""The new stack's own values: its kind, the base spec, a placeholder for each required `idp` key,
group names as the kind spells them, its Okta policy slot, and what the environment's defaults leave out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from components.env_defaults import load_env_defaults
from components.idp import KINDS, kind_name, kind_names
from components.idp.base import IdpModel
from components.model import CONFIG_KEY
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
PER_STACK_KEYS = ("clientId",)
"""`idp` keys that differ per stack (each stack has its own client): never copied from another stack,
and their placeholder names the stack, so two new stacks never share one."""


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
