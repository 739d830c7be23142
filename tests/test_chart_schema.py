"""The Helm values the program generates validate against the official chart's values.schema.json.

Helm validates the merged values (the chart's values.yaml with the overrides on top), so that is
what is validated here, with the schema kept unchanged in shared/airflow-chart (chart 1.19.0).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from components.airflow_values import helm_values, merge_values
from components.contract import client_contract
from components.spec import parse_spec
from tests.conftest import STACK_FILES, stack_name
from tests.mock_engine import Run


def helm_merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalesce: maps merge, a null override deletes the key, anything else replaces."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def errors(schema: dict[str, Any], values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]


@pytest.mark.parametrize("path", STACK_FILES, ids=stack_name)
def test_generated_values_validate_against_the_chart_schema(
    runs: dict[str, Run], chart_schema: dict[str, Any], chart_defaults: dict[str, Any], path: Any
) -> None:
    values = runs[stack_name(path)].one("kubernetes:helm.sh/v3:Release").inputs["values"]
    assert errors(chart_schema, helm_merge(chart_defaults, values)) == []


def test_the_schema_catches_a_misplaced_key(chart_schema: dict[str, Any], chart_defaults: dict[str, Any]) -> None:
    """Negative control: the same check refuses values the chart would refuse."""
    bad = {"apiServer": {"apiServerConfg": "typo", "replicas": "two"}}
    found = errors(chart_schema, helm_merge(chart_defaults, bad))
    assert any("apiServerConfg" in e for e in found)
    assert any(e.startswith("apiServer.replicas:") for e in found)


@pytest.mark.parametrize(
    "extra",
    [
        {"airflow": {"tls": {"issuer": {"name": "letsencrypt", "kind": "Issuer"}}, "ingressClassName": "nginx"}},
        {"airflow": {"tls": {"secretName": "t"}, "image": {"tag": "3.3.2", "digest": "sha256:" + "a" * 64}}},
        {"airflow": {"tls": {"secretName": "t"}, "database": {"secretName": "db"}, "apiServerReplicas": 3}},
        {"defaultRole": "Viewer", "signIn": {"everyone": True}, "airflow": {"tls": {"secretName": "t"}}},
    ],
    ids=["cert-manager-issuer", "image-digest", "external-db", "default-role-everyone"],
)
def test_variants_validate(chart_schema: dict[str, Any], chart_defaults: dict[str, Any], extra: dict[str, Any]) -> None:
    raw = merge_values(
        {
            "environment": "staging",
            "hostname": "airflow.example.com",
            "idp": {"kind": "oidc", "issuer": "https://login.example.com", "clientId": "airflow"},
            "access": [{"group": "admins", "role": "Admin"}],
        },
        extra,
    )
    spec = parse_spec(raw, "test")
    contract = client_contract(spec, stack="staging")
    values = helm_values(spec, contract, client_id="airflow", version="0123456789abcdef")
    assert errors(chart_schema, helm_merge(chart_defaults, values)) == []
