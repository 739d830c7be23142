"""What a rule sees: one `Declared` record per resource, the type tokens it is judged by, and the
readers every rule shares (a nested input, a list of strings, a number; `UNKNOWN` during preview is never judged).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Type tokens.
OKTA_APP = "okta:app/oAuth:OAuth"
OKTA_POLICY_RULE = "okta:auth/serverPolicyRule:ServerPolicyRule"
ENTRA_APP = "azuread:index/application:Application"
ENTRA_SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
ENTRA_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
KEYCLOAK_CLIENT = "keycloak:openid/client:Client"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
K8S_SECRET = "kubernetes:core/v1:Secret"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"


class _Unknown:
    """A value the engine does not know yet (during preview); rules skip it, `pulumi up` checks it again."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass(frozen=True)
class Declared:
    """One declared resource, as a rule sees it."""

    type: str
    """Type token, e.g. `okta:app/oAuth:OAuth`."""
    name: str
    """Logical name (the last part of the URN)."""
    inputs: Mapping[str, Any]
    """Inputs in camelCase, secrets unwrapped; `UNKNOWN` where the engine does not know a value yet."""
    protect: bool = False
    """The `protect` resource option."""
    urn: str = ""
    """The URN when known (the pack reports violations against it)."""

    @classmethod
    def of(cls, record: Any) -> Declared:
        """From anything with `.type .name .inputs .protect` (a mock-engine registration, say)."""
        return cls(record.type, record.name, record.inputs, bool(record.protect), getattr(record, "urn", "") or "")


@dataclass(frozen=True)
class Violation:
    """A stack rule's finding: the resource it is about and the message."""

    resource: Declared
    message: str

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------------------------------------- reading inputs


def value_at(value: Any, *path: str) -> Any:
    """The nested input at `path` (`value_at(inputs, "web", "redirectUris")`), None where a level is missing."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def is_known(value: Any) -> bool:
    """Set and known: neither missing nor `UNKNOWN` (a value a rule judges)."""
    return value is not None and value is not UNKNOWN


def strings_of(value: Any) -> list[str]:
    """A list input as its known strings (a single string counts as a list of one)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [item for item in value if isinstance(item, str)]
    return []


def number_of(value: Any) -> float | None:
    """A number input: Pulumi hands numbers over as floats, some providers take strings of digits."""
    if isinstance(value, bool) or not is_known(value):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def in_minutes(value: float) -> str:
    """A lifetime as the messages write it: `90 min`."""
    return f"{value:g} min"


def config_number(config: Mapping[str, Any] | None, key: str, default: float) -> float:
    """A number from the policy's pack configuration, else `default`."""
    found = number_of((config or {}).get(key))
    return default if found is None else found


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, string) for every string anywhere in a nested input (`apiServer.env[0].value`)."""
    if isinstance(value, str):
        yield path or ".", value
    elif isinstance(value, Mapping):
        for key, child in value.items():
            yield from walk_strings(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence):
        for index, child in enumerate(value):
            yield from walk_strings(child, f"{path}[{index}]")
