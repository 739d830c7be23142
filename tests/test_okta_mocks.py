"""The Okta kind's group binding by id and its custom-domain issuer, run through the real program under mocks.

stacks/Pulumi.dev.yaml: the org server, groups created; stacks/Pulumi.prod.yaml: a custom server,
groups looked up (`createGroups: false`). The mocked org (components/idp/okta/mocks.py) holds, for each name,
`MOCK_GROUP_COUNT` OKTA_GROUPs of exactly that name, a starts-with neighbour `<name>-secondary`, and an
APP_GROUP of the same name (from another directory).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components.contract import client_contract
from components.env_defaults import resolve_spec
from components.idp import okta
from components.idp.okta import mock_group_id, okta_groups_expression
from components.spec import Spec
from components.stack_config import spec_from_stack_file
from tests.conftest import ROOT
from tests.mock_engine import Run, run_program, stack_config

OKTA_APP = "okta:app/oAuth:OAuth"
GROUP = "okta:group/group:Group"
CLAIM = "okta:auth/serverClaim:ServerClaim"
ASSIGNMENTS = "okta:index/appGroupAssignments:AppGroupAssignments"
RELEASE = "kubernetes:helm.sh/v3:Release"
GET_GROUPS = "okta:index/getGroups:getGroups"
GET_GROUP = "okta:group/getGroup:getGroup"
AD_ADMINS = "00gADadmins000000001"
"""An APP_GROUP imported from Active Directory, bound by its id."""


def run_stack(stack: str, edit: Any = None, run: Run | None = None) -> Run:
    config, secret_keys = stack_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    spec = json.loads(config["airflow-oidc:spec"])
    if edit is not None:
        edit(spec)
    return run_program(stack, {**config, "airflow-oidc:spec": json.dumps(spec)}, secret_keys, run=run)


def parse_stack(raw: dict[str, Any], stack: str) -> Spec:
    """A spec as the stack file's (over its environment's defaults), without the program."""
    return resolve_spec(raw, f"stacks/Pulumi.{stack}.yaml", ROOT / "stacks").spec


def refused(stack: str, edit: Any) -> tuple[str, Run]:
    run = Run(stack=stack)
    with pytest.raises(pulumi.RunError) as raised:
        run_stack(stack, edit, run)
    return str(raised.value), run


def role_mapping(run: Run) -> dict[str, str]:
    text = run.one(RELEASE).inputs["values"]["apiServer"]["apiServerConfig"]
    return dict(json.loads(text.split("ROLE_BY_CLAIM_VALUE = ", 1)[1].split("\n", 1)[0]))


def claim_of(run: Run) -> str:
    claims = run.of_type(CLAIM)
    return str(claims[0].inputs["value"] if claims else run.one(OKTA_APP).inputs["groupsClaim"]["value"])


# --- lookups by exact name among OKTA_GROUPs --------------------------------------------------------


def test_a_looked_up_group_is_the_one_okta_group_of_exactly_that_name() -> None:
    run = run_stack("prod")
    lookups = [args for token, args in run.invokes if token == GET_GROUPS]
    # Not the provider's get_group (a single starts-with match is accepted there); OKTA_GROUPs only.
    assert not [args for token, args in run.invokes if token == GET_GROUP and args.get("name") != "Everyone"]
    assert {args["type"] for args in lookups} == {"OKTA_GROUP"}
    oncall = mock_group_id("OKTA_GROUP:payments-oncall#0")
    assert oncall in claim_of(run)
    # Neither the starts-with neighbour nor the same-named APP_GROUP is selected.
    assert mock_group_id("OKTA_GROUP:payments-oncall-secondary") not in claim_of(run)
    assert mock_group_id("APP_GROUP:payments-oncall") not in claim_of(run)
    assert oncall in [group["id"] for group in run.one(ASSIGNMENTS).inputs["groups"]]


@pytest.mark.parametrize(
    ("group", "count", "key_path", "what"),
    [
        pytest.param("payments-oncall", 2, "access[1].group", "matches 2 OKTA_GROUPs", id="ambiguous"),
        pytest.param(
            "payments-oncall",
            0,
            "access[1].group",
            "matches no OKTA_GROUP (only names starting so: payments-oncall-secondary)",
            id="fuzzy-only",
        ),
        pytest.param("payments-stakeholders", 0, "signIn.extraGroups[0]", "matches no OKTA_GROUP", id="missing-extra"),
    ],
)
def test_a_lookup_matching_no_or_several_okta_groups_is_refused_before_anything_is_declared(
    monkeypatch: pytest.MonkeyPatch, group: str, count: int, key_path: str, what: str
) -> None:
    monkeypatch.setitem(okta.MOCK_GROUP_COUNT, group, count)
    message, run = refused("prod", None)
    assert message.startswith(f"stacks/Pulumi.prod.yaml: airflow-oidc:spec.{key_path}: {group!r} {what}"), message
    assert "give the group's id (00g…) instead" in message
    if count == 2:
        assert mock_group_id(f"OKTA_GROUP:{group}#0") in message and mock_group_id(f"OKTA_GROUP:{group}#1") in message
    # The lookups run before the program declares anything (but the provider they go through).
    assert [resource.type for resource in run.resources] == ["pulumi:providers:okta"]
    assert {token for token, _ in run.invokes} == {GET_GROUPS}


# --- groups given by id -------------------------------------------------------------------------------


def with_ad_admins(spec: dict[str, Any]) -> None:
    spec["access"][0]["group"] = AD_ADMINS


def test_a_group_given_by_id_is_bound_by_that_id_and_mapped_by_the_name_okta_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(okta.MOCK_GROUP_NAMES, AD_ADMINS, "AD Airflow Admins")
    run = run_stack("dev", with_ad_admins)
    # Never created (createGroups: true creates only the groups named by name), never searched by name.
    assert sorted(group.inputs["name"] for group in run.of_type(GROUP)) == ["payments-analysts", "payments-engineers"]
    assert [args for token, args in run.invokes if token == GET_GROUP and "id" in args] == [{"id": AD_ADMINS}]
    assert f'"{AD_ADMINS}"' in claim_of(run)
    assert AD_ADMINS in [group["id"] for group in run.one(ASSIGNMENTS).inputs["groups"]]
    # The claim emits the group's name: Airflow maps that name, never the id.
    assert role_mapping(run) == {
        "AD Airflow Admins": "Admin",
        "payments-engineers": "User",
        "payments-analysts": "Viewer",
    }


def test_a_group_id_okta_does_not_hold_is_refused_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(okta.MOCK_GROUP_NAMES, AD_ADMINS, None)
    message, run = refused("dev", with_ad_admins)
    assert message.startswith(
        f"stacks/Pulumi.dev.yaml: airflow-oidc:spec.access[0].group: no group with id {AD_ADMINS} at https://dev-123456.okta.com"
    ), message
    assert [resource.type for resource in run.resources] == ["pulumi:providers:okta"]


def test_two_bound_groups_that_emit_one_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # An AD group carrying the name of a group the stack creates: Airflow could not tell the members apart.
    monkeypatch.setitem(okta.MOCK_GROUP_NAMES, AD_ADMINS, "payments-engineers")
    message, run = refused("dev", with_ad_admins)
    assert "airflow-oidc:spec.access[1].group: 'payments-engineers' is a group named 'payments-engineers'" in message
    assert "as airflow-oidc:spec.access[0].group is" in message
    assert [resource.type for resource in run.resources] == ["pulumi:providers:okta"]


def test_one_group_bound_twice_by_name_and_by_id_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    same = mock_group_id("OKTA_GROUP:payments-oncall#0")
    monkeypatch.setitem(okta.MOCK_GROUP_NAMES, same, "payments-oncall")

    def edit(spec: dict[str, Any]) -> None:
        spec["signIn"]["extraGroups"] = [same]

    message, run = refused("prod", edit)
    assert f"airflow-oidc:spec.signIn.extraGroups[0]: {same!r} is the group {same} again" in message
    assert "(also airflow-oidc:spec.access[1].group)" in message
    assert [resource.type for resource in run.resources] == ["pulumi:providers:okta"]


def test_without_the_lookup_a_group_given_by_id_stands_for_itself() -> None:
    """`validate`, `doctor` and the pure access model read the stack file alone: the name Okta holds for a
    group given by id is unknown there, so the id stands in (it maps no token until the program looks it up)."""
    raw = json.loads(stack_config(ROOT / "stacks" / "Pulumi.dev.yaml")[0]["airflow-oidc:spec"])
    with_ad_admins(raw)
    spec = parse_stack(raw, "dev")
    contract = client_contract(spec, stack="dev", provider={"okta:orgName": "dev-123456"})
    assert contract.role_by_claim_value[AD_ADMINS] == "Admin"


def test_more_groups_than_the_claim_can_return_are_refused() -> None:
    raw = json.loads(stack_config(ROOT / "stacks" / "Pulumi.dev.yaml")[0]["airflow-oidc:spec"])
    raw["access"] = [{"group": f"team-{index}", "role": "Viewer"} for index in range(101)]
    with pytest.raises(Exception, match=r"access\[100\]\.group: 101 groups: Okta's groups claim"):
        parse_stack(raw, "dev")


def test_the_limit_is_the_number_of_groups_so_no_member_is_truncated() -> None:
    run = run_stack("prod")
    assert claim_of(run).endswith(', "group.name", 4)')
    assert claim_of(run) == okta_groups_expression(
        [
            mock_group_id(f"OKTA_GROUP:{g}#0")
            for g in ("payments-airflow-admins", "payments-oncall", "payments-engineers", "payments-stakeholders")
        ]
    )


# --- the org's custom domain ----------------------------------------------------------------------


def on_custom_domain(spec: dict[str, Any]) -> None:
    spec["idp"]["orgUrl"] = "https://login.payments.example.com"


def test_the_org_server_on_a_custom_domain_issues_under_it() -> None:
    run = run_stack("dev", on_custom_domain)
    assert run.one(OKTA_APP).inputs["issuerMode"] == "CUSTOM_URL"
    assert run.stack_outputs["issuer"] == "https://login.payments.example.com"
    assert "issuerMode" not in run_stack("dev").one(OKTA_APP).inputs


def test_a_custom_server_on_a_custom_domain_gets_a_note_saying_what_to_set() -> None:
    run = run_stack("prod", on_custom_domain)
    assert "issuerMode" not in run.one(OKTA_APP).inputs, "the app's issuer mode is the org server's"
    assert run.stack_outputs["issuer"] == "https://login.payments.example.com/oauth2/default"
    spec = spec_from_stack_file(ROOT / "stacks" / "Pulumi.prod.yaml")
    assert spec.idp.setup_notes(spec, {"okta:orgName": "acme"}) == []
    raw = json.loads(stack_config(ROOT / "stacks" / "Pulumi.prod.yaml")[0]["airflow-oidc:spec"])
    on_custom_domain(raw)
    custom = parse_stack(raw, "prod")
    (note,) = custom.idp.setup_notes(custom, {"okta:orgName": "acme"})
    assert "Issuer: the custom URL (issuer mode CUSTOM_URL" in note and "authorization server 'default'" in note
