"""Airflow's Admin role only for the groups and service accounts the stack's environment allows
(`allowedAdminGroups`, `allowedAdminServiceAccounts` in `stacks/defaults/<env>.yaml`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .access import access_model_mismatches, declared_access_model, model_groups, rendered_access
from .declared import Declared, Violation, strings_of, value_at

ADMIN_ALLOWLIST_KEYS = ("allowedAdminGroups", "allowedAdminServiceAccounts")
"""The keys of an environment's defaults file (`stacks/defaults/<env>.yaml`) naming who may be Admin."""


def project_defaults_dir(root: Path) -> Path:
    """The environment defaults of the project at `root`: `<stackConfigDir>/defaults` (Pulumi.yaml).

    `root` may be a directory inside the project (`policy/`, say, as `airflow-oidc plan` passes the rules'
    own parent): the nearest directory at or above it holding a Pulumi.yaml is the project.
    """
    root = next((folder for folder in (root, *root.parents) if (folder / "Pulumi.yaml").is_file()), root)
    config_dir = "."
    try:
        document = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
        if isinstance(document, Mapping) and document.get("stackConfigDir"):
            config_dir = str(document["stackConfigDir"]).strip("/")
    except (OSError, yaml.YAMLError):
        pass
    return root / config_dir / "defaults"


def admin_allowlist(defaults_dir: Path | None, environment: str | None) -> dict[str, Any]:
    """The Admin allowlist of `environment`, read from its defaults file: the one list `validate`, the
    program and this pack use. `{}` (anyone) when the environment has no defaults file or the file names
    none; a file that cannot be read allows nobody and says why (`problem`)."""
    if defaults_dir is None or not environment or not re.fullmatch(r"[a-z][a-z0-9-]{0,19}", environment):
        return {}
    path = defaults_dir / f"{environment}.yaml"
    source = f"stacks/defaults/{path.name}" if defaults_dir.parent.name == "stacks" else str(path)
    if not path.is_file():
        return {}
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        return {"source": source, "problem": f"{source} cannot be read ({type(error).__name__})", **_NOBODY}
    config: dict[str, Any] = {"source": source}
    for key in ADMIN_ALLOWLIST_KEYS:
        value = document.get(key) if isinstance(document, Mapping) else None
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            return {"source": source, "problem": f"{source}: {key} is not a list of names", **_NOBODY}
        config[key] = list(value)
    return config


_NOBODY: dict[str, list[str]] = {key: [] for key in ADMIN_ALLOWLIST_KEYS}


def _allowed(name: str, patterns: Any) -> bool:
    """`patterns` None (the key is absent): anyone; else a shell-style pattern must match."""
    return patterns is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in strings_of(patterns))


def _listed(patterns: Any) -> str:
    return ", ".join(strings_of(patterns)) or "none"


def admin_only_allowed_groups(
    resources: Sequence[Declared], config: Mapping[str, Any] | None = None
) -> list[Violation]:
    """Airflow's Admin role only for principals the environment allows: groups `allowedAdminGroups` matches
    (exact names or shell-style patterns, over the group as the spec names it), service accounts
    `allowedAdminServiceAccounts` matches, never the default role. Neither key: anyone; only the groups'
    key: no service account may be Admin.

    The principals come from the declared access model, checked first against what the resources grant
    (`access_model_mismatches`); a program declaring no model is judged by its rendered role mapping's
    claim values. `config` is the environment's allowlist (`admin_allowlist`), not a second copy.
    """
    config = config or {}
    source = config.get("source") or "the environment defaults"
    groups_allowed, accounts_allowed = config.get("allowedAdminGroups"), config.get("allowedAdminServiceAccounts")
    if accounts_allowed is None and groups_allowed is not None:
        accounts_allowed = []  # a file that limits Admin groups allows no service account Admin unless it names it
    rendered, violations = rendered_access(resources)
    if config.get("problem"):
        holder = rendered[0].holder if rendered else (resources[0] if resources else Declared("", "stack", {}))
        violations.append(Violation(holder, f"{holder.name}: the Admin allowlist: {config['problem']}"))
    access = declared_access_model(resources)
    if access is None:
        for mapping in rendered:
            for claim, role in mapping.roles.items():
                if role == "Admin" and not _allowed(claim, groups_allowed):
                    violations.append(
                        Violation(
                            mapping.holder,
                            f"{mapping.holder.name}: values.{mapping.path} grants Admin to `{claim}`, which "
                            f"{source} does not allow (allowedAdminGroups: {_listed(groups_allowed)})",
                        )
                    )
            if mapping.default_role == "Admin":
                violations.append(
                    Violation(
                        mapping.holder,
                        f"{mapping.holder.name}: values.{mapping.path} makes Admin the default role (users in no "
                        "access group): Admin only through an allowed group",
                    )
                )
        return violations
    violations.extend(access_model_mismatches(resources, access, rendered))
    model, holder = access.model, access.holder
    for group in model_groups(model):
        name = str(group.get("group"))
        if group.get("role") == "Admin" and not _allowed(name, groups_allowed):
            violations.append(
                Violation(
                    holder,
                    f"{holder.name}: grants Admin to `{group.get('principal')}` ({group.get('key')}), which "
                    f"{source} does not allow (allowedAdminGroups: {_listed(groups_allowed)})",
                )
            )
    if value_at(model, "audience", "defaultRole") == "Admin":
        violations.append(
            Violation(
                holder,
                f"{holder.name}: makes Admin the default role (users in no access group): Admin only through an "
                "allowed group",
            )
        )
    for account in model.get("serviceAccounts") or []:
        name = str(value_at(account, "name"))
        if value_at(account, "role") == "Admin" and not _allowed(name, accounts_allowed):
            violations.append(
                Violation(
                    holder,
                    f"{holder.name}: grants Admin to the service account `{name}`, which "
                    f"{source} does not allow (allowedAdminServiceAccounts: {_listed(accounts_allowed)})",
                )
            )
    return violations
