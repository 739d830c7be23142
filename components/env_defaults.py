"""Environment defaults: `stacks/defaults/<environment>.yaml`, owned by the platform team.

A team stack inherits the values its environment's defaults file sets (lifetimes, rotation, chart and
image, replicas) and may set another value only for keys the file lists in `teamMayOverride`;
`allowedAdminGroups` limits which groups may get Admin, `allowedAdminServiceAccounts` which service
accounts (the one allowlist: `validate`, the program and the policy pack read it from this file).
How a value resolves, first match wins:

1. the stack file's value, when the defaults file does not set the key, or lists it in `teamMayOverride`,
   or it is a lifetime (`STRICTER_BELOW`) below the default's, which is stricter and always allowed (a
   stack repeating the default's own value overrides nothing and is always accepted, but pins it);
2. the defaults file's value;
3. the spec model's default (which may depend on the environment: `prod` gets the strictest).

A stack whose environment has no defaults file resolves as before (the model's defaults). The program
(`components.stack_config.read_program_inputs`) and `airflow-oidc validate` both resolve through
`resolve_spec`, so they cannot disagree.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.access import AdminAllowlist
from components.model import CONFIG_KEY
from components.spec import Spec, SpecError, parse_spec

DEFAULTS_DIR = "defaults"
"""Under the stack config directory (`stacks/`, Pulumi.yaml's `stackConfigDir`)."""

INHERITABLE: dict[str, str] = {
    "tokens.accessTokenMinutes": "IdP access-token lifetime (minutes)",
    "tokens.sessionMinutes": "Airflow session lifetime from login (minutes)",
    "tokens.idleMinutes": "Airflow idle timeout (minutes)",
    "clientSecret.store": "where the client secret lives",
    "clientSecret.rotationDays": "client secret rotation period (days)",
    "airflow.chartVersion": "official chart version",
    "airflow.chartRepository": "where Helm gets the chart: a chart repository or an OCI registry path",
    "airflow.chartPath": "a vendored copy of the chart (a directory, relative to the project)",
    "airflow.image.repository": "Airflow image repository",
    "airflow.image.tag": "Airflow image tag",
    "airflow.image.digest": "Airflow image digest",
    "airflow.apiServerReplicas": "api-server replicas",
    "googleCloud.enableApis": "whether stacks enable the Google Cloud APIs they call (false: the platform does)",
    "airflow.forwardedAllowIps": "addresses the api-server trusts for X-Forwarded-* (the ingress controller's)",
    "airflow.ingressClassName": "ingress class",
    "airflow.tls.issuer": "cert-manager issuer of the ingress certificate",
}
"""Spec keys (dotted, below `airflow-oidc:spec`) an environment defaults file may set."""

STRICTER_BELOW: tuple[str, ...] = (
    "tokens.accessTokenMinutes",
    "tokens.sessionMinutes",
    "tokens.idleMinutes",
    "clientSecret.rotationDays",
)
"""Lifetimes: a team value below the environment's is stricter and always allowed; above it only when
`teamMayOverride` names the key."""

_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_TOP_KEYS = ("defaults", "teamMayOverride", "allowedAdminGroups", "allowedAdminServiceAccounts")


@dataclass(frozen=True)
class EnvDefaults:
    """One environment's defaults file, checked."""

    source: str
    """The file as errors name it (`stacks/defaults/prod.yaml`)."""
    values: dict[str, Any]
    """Dotted spec key -> the default value (keys from `INHERITABLE`)."""
    team_may_override: tuple[str, ...] = ()
    """Dotted keys (or their parents, `airflow.image`) a team stack may set to another value."""
    allowed_admin_groups: tuple[str, ...] | None = None
    """Groups that may be mapped to Admin (shell-style patterns, `*-airflow-admins`); None: any group."""
    allowed_admin_service_accounts: tuple[str, ...] | None = None
    """Service accounts that may have Admin (shell-style patterns over their names); None: any."""

    def may_override(self, key: str) -> bool:
        return any(key == allowed or key.startswith(allowed + ".") for allowed in self.team_may_override)

    def admin_allowed(self, group: str) -> bool:
        patterns = self.allowed_admin_groups
        return patterns is None or any(fnmatch.fnmatchcase(group, pattern) for pattern in patterns)

    @property
    def allowlist(self) -> AdminAllowlist:
        """Who may be Admin in this environment, as `components.access.admin_problems` checks it. A file that
        limits Admin groups and names no service account allows no service account Admin."""
        accounts = self.allowed_admin_service_accounts
        if accounts is None and self.allowed_admin_groups is not None:
            accounts = ()
        return AdminAllowlist(groups=self.allowed_admin_groups, service_accounts=accounts, source=self.source)


@dataclass(frozen=True)
class Resolved:
    """A stack's spec after its environment's defaults, and where each inherited value came from."""

    spec: Spec
    defaults: EnvDefaults | None
    inherited: dict[str, Any] = field(default_factory=dict)
    """Dotted spec key -> the value taken from the defaults file (the stack did not set it)."""
    repeated: dict[str, Any] = field(default_factory=dict)
    """Dotted spec key -> the value the stack repeats from the defaults file: not an override, but pinned
    (a later change of the default does not reach it; `validate` says so)."""


class DefaultsFileError(Exception):
    """A defaults file that cannot be used; the message names the file and the key."""


def shown_path(path: Path) -> str:
    """`stacks/defaults/<env>.yaml` when under a `stacks/` directory, as errors name stack files."""
    if path.parent.name == DEFAULTS_DIR and path.parent.parent.name == "stacks":
        return f"stacks/{DEFAULTS_DIR}/{path.name}"
    return str(path)


def defaults_path(stacks_dir: Path, environment: str) -> Path:
    return stacks_dir / DEFAULTS_DIR / f"{environment}.yaml"


def load_env_defaults(stacks_dir: Path, environment: Any) -> EnvDefaults | None:
    """The defaults file of `environment` under `stacks_dir`, or None when there is none."""
    if not isinstance(environment, str) or not _ENVIRONMENT.match(environment):
        return None  # the spec refuses the environment itself, naming the stack file
    path = defaults_path(stacks_dir, environment)
    if not path.is_file():
        return None
    source = shown_path(path)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise DefaultsFileError(f"{source}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(document, dict):
        raise DefaultsFileError(f"{source}: must be a mapping with `defaults:` (and `teamMayOverride:`)")
    for key in document:
        if key not in _TOP_KEYS:
            raise DefaultsFileError(f"{source}: {key}: unknown key (expected one of {', '.join(_TOP_KEYS)})")
    raw_defaults = document.get("defaults") or {}
    if not isinstance(raw_defaults, dict):
        raise DefaultsFileError(f"{source}: defaults: must be a mapping of spec keys")
    values: dict[str, Any] = {}
    for key, value in _leaves(raw_defaults):
        if key not in INHERITABLE:
            raise DefaultsFileError(
                f"{source}: defaults.{key}: not a key environment defaults may set "
                f"(one of {', '.join(sorted(INHERITABLE))})"
            )
        values[key] = value
    overridable = document.get("teamMayOverride") or []
    if not isinstance(overridable, list) or not all(isinstance(key, str) for key in overridable):
        raise DefaultsFileError(f"{source}: teamMayOverride: must be a list of spec keys")
    for index, key in enumerate(overridable):
        if not any(known == key or known.startswith(key + ".") for known in INHERITABLE):
            raise DefaultsFileError(f"{source}: teamMayOverride[{index}]: {key!r} is not a key defaults may set")
    allowlists: dict[str, tuple[str, ...] | None] = {}
    for key, what in (("allowedAdminGroups", "group names"), ("allowedAdminServiceAccounts", "service-account names")):
        names = document.get(key)
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) and n for n in names)):
            raise DefaultsFileError(f"{source}: {key}: must be a list of {what} (or patterns)")
        allowlists[key] = tuple(names) if names is not None else None
    return EnvDefaults(
        source=source,
        values=values,
        team_may_override=tuple(overridable),
        allowed_admin_groups=allowlists["allowedAdminGroups"],
        allowed_admin_service_accounts=allowlists["allowedAdminServiceAccounts"],
    )


@dataclass(frozen=True)
class Defaulted:
    """A stack's raw spec with its environment's defaults applied (not parsed yet), and what that found."""

    raw: Any
    """The stack's `airflow-oidc:spec` value with the inherited values filled in."""
    defaults: EnvDefaults | None
    inherited: dict[str, Any] = field(default_factory=dict)
    repeated: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    """What the defaults refuse whatever the spec says: an environment spelled like a known one."""
    overrides: tuple[str, ...] = ()
    """Values the stack overrides though its defaults file does not let it (reported once the spec parses,
    so a value the model refuses is reported as such)."""

    def mark(self, problem: str) -> str:
        """A spec problem about an inherited value names the defaults file too."""
        if self.defaults is None:
            return problem
        return _mark_inherited(problem, self.inherited, self.defaults)


def apply_env_defaults(raw: Any, source: str, stacks_dir: Path) -> Defaulted:
    """The first step from a stack file: its raw spec over its environment's defaults
    (`<stacks_dir>/defaults/<env>.yaml`), before the spec parses. Raises `SpecError` naming `source` when
    the defaults file cannot be read."""
    if not isinstance(raw, dict):
        return Defaulted(raw, None)  # parse_spec names what is wrong
    try:
        env_defaults = load_env_defaults(stacks_dir, raw.get("environment"))
    except DefaultsFileError as error:
        raise SpecError(source, [f"{CONFIG_KEY}.environment: its defaults cannot be read: {error}"]) from None
    if env_defaults is None:
        unknown = unknown_environment_problem(raw.get("environment"), stacks_dir)
        return Defaulted(raw, None, problems=(unknown,) if unknown else ())
    merged = copy.deepcopy(raw)
    overrides: list[str] = []
    inherited: dict[str, Any] = {}
    repeated: dict[str, Any] = {}
    for key, default in env_defaults.values.items():
        present, value = _lookup(raw, key)
        if key == "airflow.tls.issuer" and not present and _own_certificate(raw):
            continue  # the team brings its own certificate (or a load balancer ends TLS): no issuer is added
        if not present:
            _assign(merged, key, default)
            inherited[key] = default
        elif _same(key, value, default):
            repeated[key] = value  # not an override
        elif key in STRICTER_BELOW and _below(value, default):
            continue  # a shorter lifetime or a faster rotation: stricter, always allowed
        elif not env_defaults.may_override(key):
            above = " is above" if key in STRICTER_BELOW and _below(default, value) else " overrides"
            overrides.append(
                f"{CONFIG_KEY}.{key}: {value!r}{above} {default!r} from {env_defaults.source}, which does not "
                f"let team stacks override it (add {key!r} to its teamMayOverride, or remove the key here to "
                "follow the default)"
            )
    return Defaulted(merged, env_defaults, inherited, repeated, overrides=tuple(overrides))


def resolve_spec(raw: Any, source: str, stacks_dir: Path) -> Resolved:
    """The stack's spec with its environment's defaults applied, validated: `apply_env_defaults`, then
    `parse_spec` of its result (once).

    `source` names the stack file in errors; `stacks_dir` holds `defaults/`. Raises `SpecError` naming
    the stack file (and the defaults file, for an inherited value or a refused override).
    """
    defaulted = apply_env_defaults(raw, source, stacks_dir)
    try:
        # The spec's own checks first: a value the model refuses is reported as such, not as an override.
        spec = parse_spec(defaulted.raw, source)
    except SpecError as error:
        raise SpecError(source, [*defaulted.problems, *map(defaulted.mark, error.problems)]) from None
    if defaulted.problems or defaulted.overrides:
        raise SpecError(source, [*defaulted.problems, *defaulted.overrides])
    return Resolved(spec, defaulted.defaults, defaulted.inherited, defaulted.repeated)


IMPLIED: dict[str, dict[str, Any]] = {"airflow.tls.issuer": {"kind": "ClusterIssuer"}}
"""Mapping values compared with the model's defaults filled in (`{name: x}` is `{name: x, kind: ClusterIssuer}`)."""


def _same(key: str, value: Any, default: Any) -> bool:
    if key in IMPLIED and isinstance(value, dict) and isinstance(default, dict):
        return {**IMPLIED[key], **value} == {**IMPLIED[key], **default}
    return bool(value == default)


def _own_certificate(raw: dict[str, Any]) -> bool:
    """The stack names its certificate (`airflow.tls.secretName`) or lets a load balancer end TLS."""
    return _lookup(raw, "airflow.tls.secretName")[0] or bool(_lookup(raw, "airflow.tls.terminatedUpstream")[1])


def _below(value: Any, bound: Any) -> bool:
    """Both numbers (not booleans) and `value` < `bound`."""
    numbers = all(isinstance(item, int | float) and not isinstance(item, bool) for item in (value, bound))
    return numbers and value < bound


def repeated_notes(resolved: Resolved) -> list[str]:
    """What `validate` notes (not errors): keys the stack repeats from its defaults file, pinned there."""
    if resolved.defaults is None:
        return []
    return [
        f"{CONFIG_KEY}.{key}: {value!r} repeats the default of {resolved.defaults.source}: not an override, but "
        "pinned here; remove the key so this stack follows a later change of the default"
        for key, value in resolved.repeated.items()
    ]


def known_environments(stacks_dir: Path) -> list[str]:
    """The environments that have a defaults file (`stacks/defaults/<env>.yaml`)."""
    return sorted(path.stem for path in (stacks_dir / DEFAULTS_DIR).glob("*.yaml"))


def meant_environment(environment: str, known: list[str]) -> str | None:
    """The known environment `environment` looks like a spelling of (`production`, `prd` -> `prod`), or None."""
    if environment in known:
        return None
    for name in known:
        if len(environment) >= 2 and (environment.startswith(name) or name.startswith(environment)):
            return name
    close = difflib.get_close_matches(environment, known, n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_environment_problem(environment: Any, stacks_dir: Path) -> str | None:
    """An environment without a defaults file that looks like a known one is refused: it would silently
    drop that environment's defaults and protections (`production` is not `prod`)."""
    if not isinstance(environment, str) or not _ENVIRONMENT.match(environment):
        return None
    meant = meant_environment(environment, known_environments(stacks_dir))
    if meant is None:
        return None
    return (
        f"{CONFIG_KEY}.environment: {environment!r} has no defaults file ({DEFAULTS_DIR}/{environment}.yaml), so "
        f"none of {meant!r}'s defaults and protections would apply; did you mean {meant!r}? (A new environment: "
        f"add stacks/{DEFAULTS_DIR}/{environment}.yaml.)"
    )


def _mark_inherited(problem: str, inherited: dict[str, Any], env_defaults: EnvDefaults) -> str:
    """A spec problem about an inherited value names the defaults file too."""
    for key in inherited:
        if problem.startswith(f"{CONFIG_KEY}.{key}:"):
            return f"{problem} (inherited from {env_defaults.source}: defaults.{key})"
    return problem


def _leaves(value: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted key -> value for every leaf; a mapping under a known key (`airflow.image`) is walked too."""
    leaves: list[tuple[str, Any]] = []
    for key, child in value.items():
        path = f"{prefix}{key}"
        if isinstance(child, dict) and path not in INHERITABLE:
            leaves.extend(_leaves(child, path + "."))
        else:
            leaves.append((path, child))
    return leaves


def _lookup(value: Any, key: str) -> tuple[bool, Any]:
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _assign(value: dict[str, Any], key: str, new: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        child = value.get(part)
        if not isinstance(child, dict):
            if child is not None:
                return  # not a mapping: the spec reports it at the stack file's key
            child = value[part] = {}
        value = child
    value[last] = copy.deepcopy(new)
