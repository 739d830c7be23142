"""The effective-access model (components/access.py): one table over the five kinds.

Each kind's model names every principal by the identity its IdP binds, with the role Airflow gives it;
the program exports exactly that model and declares it in the auth-manager ConfigMap (where the policy
pack reads it); values the IdP computes read `known after apply`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.access import ACCESS_MODEL_FILE, KNOWN_AFTER_APPLY, AccessModel, access_model_of
from components.contract import client_contract
from components.env_defaults import resolve_spec
from components.idp import kind_names
from components.idp.keycloak import keycloak_group_path
from components.spec import Spec
from components.stack_config import replace_secure_values
from tests import kind_stacks
from tests.conftest import ROOT
from tests.mock_engine import Run, run_stack_file

STACK = "conf-prod"

# kind -> (principal of the Admin group, the claim value Airflow maps for it, the service account's subject)
EXPECTED: dict[str, tuple[str, str, str | None]] = {
    "okta": ("conf-airflow-admins", "conf-airflow-admins", KNOWN_AFTER_APPLY),
    "oidc": ("conf-airflow-admins", "conf-airflow-admins", "conf-deploy"),
    "keycloak": ("/conf-airflow-admins", "/conf-airflow-admins", "airflow-conf-prod-deploy"),
    "azuread": ("conf-airflow-admins", "Airflow.Admin", "repo:acme/pipelines:environment:production"),
    "google": ("conf-airflow-admins@example.com", "conf-airflow-admins@example.com", None),
}


def test_every_kind_has_an_example_and_a_row() -> None:
    assert set(kind_stacks.IDPS) == set(kind_names()) == set(EXPECTED)


def parsed(body: dict[str, Any]) -> Spec:
    """The spec as the program sees it (`secure:` values decrypted: a placeholder here; prod's defaults)."""
    return resolve_spec(replace_secure_values(body)[0], "test", ROOT / "stacks").spec


def pure_model(kind: str, body: dict[str, Any] | None = None) -> AccessModel:
    spec = parsed(body or kind_stacks.spec(kind))
    _, provider = kind_stacks.IDPS[kind]
    return spec.idp.access_model(spec, stack=STACK, provider=provider)


def run_kind(tmp_path: Path, kind: str, body: dict[str, Any] | None = None) -> Run:
    path = tmp_path / "stacks" / f"Pulumi.{STACK}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"config": kind_stacks.config(kind, body)}, sort_keys=False))
    return run_stack_file(path)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_the_model_names_what_the_idp_binds(kind: str) -> None:
    principal, claim_value, subject = EXPECTED[kind]
    model = pure_model(kind)
    admins = model.groups[0]
    assert (admins.group, admins.principal, admins.claim_value, admins.role) == (
        kind_stacks.group(kind, "conf-airflow-admins"),
        principal,
        claim_value,
        "Admin",
    )
    assert admins.key == "access[0].group"
    assert [grant.role for grant in model.groups] == ["Admin", "Op", "Viewer"]
    assert [(account.name, account.role, account.subject) for account in model.service_accounts] == (
        [] if subject is None else [("deploy", "Viewer", subject)]
    )
    assert model.kind == kind and model.environment == "prod"
    assert (model.everyone, model.default_role, model.extra_groups) == (False, None, ())


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_the_model_agrees_with_the_contract_airflow_renders(kind: str) -> None:
    """Each group's claim value maps, in the contract Airflow renders, to the group's role; nothing else
    is mapped; the extra groups' claim values are the contract's default-role values."""
    body = kind_stacks.spec(kind)
    body["defaultRole"] = "Viewer"
    body["signIn"] = {"extraGroups": [kind_stacks.group(kind, "conf-stakeholders")]}
    spec = parsed(body)
    _, provider = kind_stacks.IDPS[kind]
    contract = client_contract(spec, stack=STACK, provider=provider)
    model = spec.idp.access_model(spec, stack=STACK, provider=provider)
    for grant in model.groups:
        assert contract.role_by_claim_value[grant.claim_value] == grant.role
    assert {grant.claim_value for grant in model.groups} == set(contract.role_by_claim_value)
    assert [grant.role for grant in model.extra_groups] == ["Viewer"]
    assert {grant.claim_value for grant in model.extra_groups} == set(contract.default_role_claim_values)
    assert model.extra_groups[0].key == "signIn.extraGroups[0]"
    assert model.default_role == contract.default_role == "Viewer"


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_the_program_exports_and_declares_the_model(tmp_path: Path, kind: str) -> None:
    run = run_kind(tmp_path, kind)
    expected = pure_model(kind)
    assert access_model_of(run.stack_outputs) == expected
    (config_map,) = run.of_type("kubernetes:core/v1:ConfigMap")
    declared = config_map.inputs["data"][ACCESS_MODEL_FILE]
    assert AccessModel.from_json(json.loads(declared)) == expected
    # Never a value the provider computes, made up by the mocks: Okta's service app id is one.
    if kind == "okta":
        client_ids = run.stack_outputs["serviceAccountClientIds"]
        assert client_ids["deploy"] not in declared and KNOWN_AFTER_APPLY in declared


def test_entra_extra_groups_get_the_default_app_role() -> None:
    body = kind_stacks.spec("azuread")
    body["defaultRole"] = "Viewer"
    body["signIn"] = {"extraGroups": ["conf-stakeholders"]}
    (extra,) = pure_model("azuread", body).extra_groups
    assert (extra.principal, extra.claim_value, extra.role) == ("conf-stakeholders", "Airflow.Default", "Viewer")


def test_entra_service_account_without_github_trusts_its_app_registration() -> None:
    body = kind_stacks.spec("azuread")
    body["serviceAccounts"] = [{"name": "nightly", "role": "Viewer"}]
    (account,) = pure_model("azuread", body).service_accounts
    assert account.subject == KNOWN_AFTER_APPLY and "client secret" in account.trust


@pytest.mark.parametrize(
    ("group", "path"), [("airflow-admins", "/airflow-admins"), ("/data/airflow-admins", "/data/airflow-admins")]
)
def test_keycloak_group_path(group: str, path: str) -> None:
    assert keycloak_group_path(group) == path


def test_keycloak_binding_says_what_the_claim_carries() -> None:
    """A bare-name claim binds every group of that name at any depth, and the model says so."""
    grant = pure_model("keycloak").groups[0]
    if grant.claim_value.startswith("/"):
        assert "full paths" in grant.binding
    else:
        assert "at any depth" in grant.binding


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_the_model_reads_back_what_it_writes(kind: str) -> None:
    model = pure_model(kind)
    assert AccessModel.from_json(json.loads(model.to_text())) == model
    assert access_model_of({"accessModel": model.to_text()}) == model


@pytest.mark.parametrize("data", [None, {}, {"version": 99, "kind": "okta"}, {"version": 1}, "not json"])
def test_a_run_without_a_readable_model_has_none(data: Any) -> None:
    assert access_model_of({} if data is None else {"accessModel": data}) is None
