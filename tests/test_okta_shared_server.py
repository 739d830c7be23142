"""Okta: team stacks sharing one custom authorization server never fight over policy priorities.

Okta keeps a server's access policies in one priority order: asking for a priority another policy
holds shifts that one down, and several policies created with one priority at once have answered 500
(okta/terraform-provider-okta#1198). The provider's `priority` is required and read back after
Okta's renumbering. So each stack gets a slot (`idp.authorizationServer.policySlot`, assigned by the
platform team, checked across the fleet by `airflow-oidc validate`), its two policies ask for the
slot's two priorities when created, and the program never re-imposes them (`ignore_changes`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from components.fleet import fleet_clashes
from components.idp.okta import okta_policy_priorities
from tests.conftest import ROOT
from tests.mock_engine import Registration, Run, run_program, stack_config

POLICY = "okta:auth/serverPolicy:ServerPolicy"
ACCOUNTS = [{"name": "release-pipeline", "role": "Op"}]


def team_stack(team: str, slot: int | None) -> tuple[str, dict[str, str], list[str]]:
    """stacks/Pulumi.prod.yaml (custom server `default`) as team `team`'s stack, with service accounts."""
    config, secret_keys = stack_config(ROOT / "stacks" / "Pulumi.prod.yaml")
    spec = json.loads(config["airflow-oidc:spec"])
    server = {"mode": "custom", "id": "default", **({"policySlot": slot} if slot is not None else {})}
    spec["idp"] = {**spec["idp"], "authorizationServer": server}
    spec.update(
        team=team,
        hostname=f"airflow.{team}.example.com",
        access=[{"group": f"{team}-airflow-admins", "role": "Admin"}],
        signIn={},
        defaultRole=None,
        serviceAccounts=ACCOUNTS,
    )
    return f"{team}-prod", {**config, "airflow-oidc:spec": json.dumps(spec)}, secret_keys


def policies(run: Run) -> list[Registration]:
    return run.of_type(POLICY)


@pytest.fixture(scope="module")
def two_teams() -> dict[str, Run]:
    """Two team stacks on the same org and server, slots 1 and 2."""
    runs = {}
    for team, slot in (("payments", 1), ("search", 2)):
        stack, config, secret_keys = team_stack(team, slot)
        runs[team] = run_program(stack, config, secret_keys)
    return runs


def test_two_team_stacks_on_one_server_ask_for_no_common_priority(two_teams: dict[str, Run]) -> None:
    """Four policies on `default` (each stack's sign-in and service-account policy): four priorities."""
    asked = [
        (policy.inputs["authServerId"], int(policy.inputs["priority"]), team)
        for team, run in two_teams.items()
        for policy in policies(run)
    ]
    assert len(asked) == 4
    assert {server for server, _, _ in asked} == {"default"}
    priorities = [priority for _, priority, _ in asked]
    assert len(set(priorities)) == len(priorities), asked
    assert sorted(priorities) == [1, 2, 3, 4]
    # Each stack's own two policies differ too, and come in its slot's order (sign-in first).
    for team, slot in (("payments", 1), ("search", 2)):
        by_name = {policy.name: int(policy.inputs["priority"]) for policy in policies(two_teams[team])}
        sign_in, service_accounts = okta_policy_priorities(slot)
        assert by_name == {"airflow-oidc-okta-policy": sign_in, "airflow-oidc-okta-sa-policy": service_accounts}


def test_the_priority_is_asked_for_at_creation_and_never_re_imposed(two_teams: dict[str, Run]) -> None:
    """Okta renumbers policies as stacks come and go: the read-back number is no drift to undo."""
    for run in two_teams.values():
        for policy in policies(run):
            assert policy.ignore_changes == ["priority"], policy.name
            # Everything else of the policy is still managed (names, clients, status).
            assert policy.inputs["clientWhitelists"] and policy.inputs["status"] == "ACTIVE"


def test_two_runs_of_a_stack_declare_the_same_priorities(two_teams: dict[str, Run]) -> None:
    """The slot alone decides: nothing of the run (order of registration, date) moves a priority."""
    stack, config, secret_keys = team_stack("payments", 1)
    again = run_program(stack, config, secret_keys)

    def declared(run: Run) -> dict[str, Any]:
        return {policy.name: policy.inputs["priority"] for policy in policies(run)}

    assert declared(again) == declared(two_teams["payments"])


@pytest.mark.parametrize("slot", [1, 2, 3, 50, 500])
def test_slots_give_disjoint_pairs(slot: int) -> None:
    mine = set(okta_policy_priorities(slot))
    assert len(mine) == 2
    for other in {1, 2, 3, 49, 50, 51, 499, 500} - {slot}:
        assert not mine & set(okta_policy_priorities(other)), (slot, other)


# --- the fleet: validate refuses two stacks with one slot on one server ----------------------


def write_stack(directory: Path, team: str, slot: int | None, server: str = "default", org: str = "acme") -> Path:
    stack, config, _ = team_stack(team, slot)
    spec = json.loads(config["airflow-oidc:spec"])
    spec["idp"]["authorizationServer"]["id"] = server
    spec["airflow"] = {**spec["airflow"], "namespace": f"airflow-{team}"}
    document: dict[str, Any] = {
        "config": {
            "okta:orgName": org,
            "okta:baseUrl": "okta.com",
            "kubernetes:context": "prod",
            "airflow-oidc:spec": spec,
        }
    }
    path = directory / f"Pulumi.{stack}.yaml"
    path.write_text(json.dumps(document))  # JSON is YAML
    return path


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    shutil.copytree(ROOT / "stacks" / "defaults", stacks / "defaults")
    return stacks


def test_validate_refuses_two_stacks_with_one_slot_on_one_server(fleet_dir: Path) -> None:
    first = write_stack(fleet_dir, "payments", None)  # the default slot, 1
    second = write_stack(fleet_dir, "search", 1)
    clashes = fleet_clashes([first, second])
    assert clashes == [
        "stacks/Pulumi.search-prod.yaml: Okta policy slot on https://acme.okta.com authorization server default "
        "'1' is also taken by stacks/Pulumi.payments-prod.yaml"
    ]


def test_distinct_slots_or_servers_or_orgs_do_not_clash(fleet_dir: Path) -> None:
    first = write_stack(fleet_dir, "payments", 1)
    assert fleet_clashes([first, write_stack(fleet_dir, "search", 2)]) == []
    assert fleet_clashes([first, write_stack(fleet_dir, "growth", 1, server="aus1a2b3c")]) == []
    assert fleet_clashes([first, write_stack(fleet_dir, "risk", 1, org="other")]) == []


def test_new_stack_gives_the_team_s_next_environment_the_first_free_slot(fleet_dir: Path) -> None:
    """A team's next stack copies the Okta server from its other stack and takes the first slot no
    stack of the fleet takes there, so it is valid against the fleet as written."""
    import yaml

    from components.new_stack import new_stack

    write_stack(fleet_dir, "payments", 1)
    write_stack(fleet_dir, "search", 2)
    assert new_stack("payments", "dev", None, "airflow.dev.payments.example.com", fleet_dir) == 0
    written = yaml.safe_load((fleet_dir / "Pulumi.payments-dev.yaml").read_text())
    server = written["config"]["airflow-oidc:spec"]["idp"]["authorizationServer"]
    assert server == {"mode": "custom", "id": "default", "policySlot": 3}
    assert fleet_clashes(sorted(fleet_dir.glob("Pulumi.*.yaml"))) == []
