"""Secrets never in plain text: not in a ConfigMap, not in the Helm values (which Helm stores in its release)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .declared import CONFIG_MAP, HELM_RELEASE, K8S_SECRET, Declared, Violation, is_known, value_at, walk_strings

SECRET_WORDS = ("secret", "password", "passwd", "token", "key")
SECRET_ENV_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE_?KEY|API_?KEY", re.IGNORECASE)
SECRET_CONFIG_OPTION = re.compile(r"secret|password|passwd|fernet_key", re.IGNORECASE)
IDENTIFIER_WORDS = {"id", "user", "username", "login", "issuer", "url", "uri", "host", "name", "email"}
MIN_SECRET_LENGTH = 8
"""Secret values shorter than this are not hunted for in other resources (too many chance matches)."""

HELM_SECRET_VALUES = (
    ("fernetKey",),
    ("apiSecretKey",),
    ("jwtSecret",),
    ("webserverSecretKey",),
    ("data", "metadataConnection", "pass"),
    ("data", "resultBackendConnection", "pass"),
    ("postgresql", "auth", "password"),
    ("postgresql", "auth", "postgresPassword"),
)
"""Chart values that hold a secret in plain text (the chart offers a `...SecretName` for each)."""


def looks_like_secret_key(key: str) -> bool:
    """A ConfigMap data key that names a secret: `client-secret`, `dbPassword`, `api_token`, `tls.key`."""
    words = [word.lower() for word in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", key)]
    return any(word in SECRET_WORDS or word.endswith(("secret", "password", "passwd", "token")) for word in words)


def names_an_identifier(key: str) -> bool:
    """A Secret key whose value is public (`client-id`, `username`): kept beside a secret, not one itself."""
    words = [word.lower() for word in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", key)]
    return bool(words) and words[-1] in IDENTIFIER_WORDS


def declared_secret_values(resources: Iterable[Declared]) -> dict[str, str]:
    """Secret value -> the Secret that holds it, for every k8s Secret's stringData (and decoded data).

    Values under identifier keys (`client-id`, `username`, ...) are left out: they are public.
    """
    import base64
    import binascii

    found: dict[str, str] = {}
    for resource in resources:
        if resource.type != K8S_SECRET:
            continue
        # During a preview a map whose values are not known yet is UNKNOWN as a whole (a rotation's new secret).
        string_data, data = value_at(resource.inputs, "stringData"), value_at(resource.inputs, "data")
        for key, value in (string_data if isinstance(string_data, Mapping) else {}).items():
            if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH and not names_an_identifier(str(key)):
                found[value] = f"{resource.name} stringData.{key}"
        for key, value in (data if isinstance(data, Mapping) else {}).items():
            if not isinstance(value, str) or names_an_identifier(str(key)):
                continue
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
            if len(decoded) >= MIN_SECRET_LENGTH:
                found[decoded] = f"{resource.name} data.{key}"
    return found


def no_secret_in_configmap(resources: Sequence[Declared], config: Mapping[str, Any] | None = None) -> list[Violation]:
    """No ConfigMap data key that names a secret, and no ConfigMap value carrying a declared Secret's value."""
    secrets = declared_secret_values(resources)
    violations: list[Violation] = []
    for resource in resources:
        if resource.type != CONFIG_MAP:
            continue
        for section in ("data", "binaryData"):
            data = resource.inputs.get(section)
            if not isinstance(data, Mapping):
                continue
            for key, value in data.items():
                if looks_like_secret_key(str(key)):
                    violations.append(
                        Violation(
                            resource,
                            f"{resource.name}: {section}.{key} names a secret: put it in a Secret, not a ConfigMap",
                        )
                    )
                elif isinstance(value, str):
                    holders = [holder for secret, holder in secrets.items() if secret in value]
                    if holders:
                        violations.append(
                            Violation(
                                resource,
                                f"{resource.name}: {section}.{key} carries the value of {holders[0]}: "
                                "a ConfigMap is readable by anyone who can read the namespace",
                            )
                        )
    return violations


def _env_lists(values: Any, path: str = "") -> Iterator[tuple[str, Sequence[Any]]]:
    """Every `env` list in the chart values: top-level `env` and each component's (`apiServer.env`, ...)."""
    if isinstance(values, Mapping):
        for key, child in values.items():
            child_path = f"{path}.{key}" if path else str(key)
            if key == "env" and isinstance(child, Sequence) and not isinstance(child, str):
                yield child_path, child
            else:
                yield from _env_lists(child, child_path)


def plain_helm_secrets(resource: Declared) -> list[str]:
    """Secrets given as plain Helm values (Helm keeps values in its release Secret and in `helm get values`)."""
    if resource.type != HELM_RELEASE:
        return []
    values = resource.inputs.get("values")
    if not isinstance(values, Mapping):
        return []
    messages: list[str] = []
    for keys in HELM_SECRET_VALUES:
        value = value_at(values, *keys)
        if is_known(value) and value != "":
            messages.append(
                f"{resource.name}: values.{'.'.join(keys)} holds a secret in the Helm values: "
                "reference a Secret instead (the chart's ...SecretName)"
            )
    for path, env in _env_lists(values):
        for index, item in enumerate(env):
            name, value = value_at(item, "name"), value_at(item, "value")
            if isinstance(name, str) and SECRET_ENV_NAME.search(name) and is_known(value) and value != "":
                messages.append(
                    f"{resource.name}: values.{path}[{index}] `{name}` has a plain `value`: use valueFrom.secretKeyRef"
                )
    airflow_config = values.get("config")
    if isinstance(airflow_config, Mapping):
        for section, options in airflow_config.items():
            if not isinstance(options, Mapping):
                continue
            for option, value in options.items():
                if SECRET_CONFIG_OPTION.search(str(option)) and is_known(value) and value != "":
                    messages.append(
                        f"{resource.name}: values.config.{section}.{option} holds a secret in airflow.cfg: "
                        "set it from a Secret"
                    )
    return messages


def no_secret_in_helm_values(resources: Sequence[Declared], config: Mapping[str, Any] | None = None) -> list[Violation]:
    """No secret in plain Helm values: the chart's secret keys, secret-named env values, airflow.cfg secrets,
    and no declared Secret's value anywhere in the values (`apiServerConfig` becomes a ConfigMap)."""
    secrets = declared_secret_values(resources)
    violations: list[Violation] = []
    for resource in resources:
        if resource.type != HELM_RELEASE:
            continue
        violations.extend(Violation(resource, message) for message in plain_helm_secrets(resource))
        for path, text in walk_strings(resource.inputs.get("values")):
            holders = [holder for secret, holder in secrets.items() if secret in text]
            if holders:
                violations.append(
                    Violation(resource, f"{resource.name}: values.{path} carries the value of {holders[0]}")
                )
    return violations
