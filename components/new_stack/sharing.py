"""What a team's new stack takes from its other stacks: the IdP, the `access` groups, and who creates them."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.idp import kind_name
from components.idp.base import IdpModel
from components.model import CONFIG_KEY
from components.new_stack.values import PER_STACK_KEYS, secret_keys
from components.spec import Spec

SHARED_SPEC_KEYS = ("access", "signIn", "defaultRole")
"""Who gets in and as what: the same for every environment of a team (they share the groups)."""
GROUPS_KEY = "createGroups"


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
