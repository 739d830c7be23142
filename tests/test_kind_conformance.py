"""The kind conformance suite: one table of edits × the five kinds.

Every edit is made to each kind's example prod stack (`tests/kind_stacks.py`), and for each the table
states what `airflow-oidc plan --base` says (its class, the message, old → new, and the exit status the
stack alone would give), the policy pack's verdict, and `validate`'s. The same edit must read the same on
every kind: the messages differ only by the principal or subject the kind binds. A kind that cannot make
an edit (no service accounts, no subject a spec key moves) has its row say why. Adding a kind adds a
row to `tests/kind_stacks.py`; adding an edit adds a row here.

All stacks go through one `plan --base` (one worker per side), in a git repository holding the project's
program, policy pack and real environment defaults.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.access import AccessModel
from components.cli import check_stack_file
from components.env_defaults import resolve_spec
from components.idp import kind_names
from components.idp.base import SERVICE_ACCOUNTS_NOT_OFFERED
from components.plan import PRIVILEGE, SECRET, Plan, plan
from components.stack_config import replace_secure_values
from policy import rules
from tests import kind_stacks
from tests.conftest import ROOT
from tests.mock_engine import run_stack_file

KINDS = list(kind_stacks.IDPS)
PROD_DEFAULTS = ROOT / "stacks" / "defaults"


@dataclass(frozen=True)
class Edit:
    """One row: what the edit does to a spec, and what every kind must answer."""

    name: str
    apply: Callable[[str, dict[str, Any]], str | None]
    """Edits the spec in place; returns why the kind cannot make the edit (the row's reason), else None."""
    says: Callable[[AccessModel, AccessModel], list[str]]
    """The plan's messages of class `kind` for the stack (from the base's and the head's access models)."""
    kind: str | None
    """The plan's class (PRIVILEGE), None for no risky change, or "error" (refused: exit 2)."""
    exit: int
    policy_fails: bool = False
    validate_ok: bool = True
    key: str = ""
    """For a refusal: the spec key every reader names."""


def group_at(model: AccessModel, index: int) -> str:
    return model.groups[index].principal


def no_service_accounts(kind: str) -> str | None:
    return SERVICE_ACCOUNTS_NOT_OFFERED.get(kind)


def raise_group(index: int, role: str) -> Callable[[str, dict[str, Any]], str | None]:
    def apply(kind: str, spec: dict[str, Any]) -> str | None:
        spec["access"][index]["role"] = role
        return None

    return apply


def extra_group(kind: str, spec: dict[str, Any]) -> str | None:
    spec["defaultRole"] = "Viewer"
    spec["signIn"] = {"extraGroups": [kind_stacks.group(kind, "conf-stakeholders")]}
    return None


def everyone(kind: str, spec: dict[str, Any]) -> str | None:
    spec["defaultRole"] = "Viewer"
    spec["signIn"] = {"everyone": True}
    return None


def add_account(kind: str, spec: dict[str, Any]) -> str | None:
    if reason := no_service_accounts(kind):
        return reason
    extras = {"clientId": "conf-nightly"} if kind == "oidc" else {}
    spec.setdefault("serviceAccounts", []).append({"name": "nightly", "role": "Viewer", **extras})
    return None


def raise_account(kind: str, spec: dict[str, Any]) -> str | None:
    if reason := no_service_accounts(kind):
        return reason
    spec["serviceAccounts"][0]["role"] = "Op"
    return None


SUBJECT_FIXED = {
    "okta": "the subject is the service app the program creates for the account (Okta assigns its client id): "
    "no spec key points the account at another client; another name is another account",
    "keycloak": "the subject is the client the program creates for the account (`<Airflow client>-<name>`): "
    "no spec key points the account at another client; another name is another account",
}


def move_subject(kind: str, spec: dict[str, Any]) -> str | None:
    if reason := no_service_accounts(kind) or SUBJECT_FIXED.get(kind):
        return reason
    account = spec["serviceAccounts"][0]
    if kind == "azuread":
        account["githubRepository"] = "someone-else/pipelines"  # another owner
    else:
        account["clientId"] = "someone-elses-client"
    return None


def replicas(kind: str, spec: dict[str, Any]) -> str | None:
    spec["airflow"]["apiServerReplicas"] = 3
    return None


EDITS = [
    Edit(
        "raise-to-admin",
        raise_group(1, "Admin"),
        lambda base, head: [f"`{group_at(head, 1)}`: Op → Admin"],
        PRIVILEGE,
        1,
    ),
    Edit(
        "raise-to-op",
        raise_group(2, "Op"),
        lambda base, head: [f"`{group_at(head, 2)}`: Viewer → Op"],
        PRIVILEGE,
        1,
    ),
    Edit(
        "extra-group",
        extra_group,
        lambda base, head: [
            "default role none → Viewer",
            f"audience widened: `{head.extra_groups[0].principal}` may now sign in (default role Viewer)",
        ],
        PRIVILEGE,
        1,
    ),
    Edit(
        "everyone",
        everyone,
        lambda base, head: [
            "default role none → Viewer",
            "audience widened: everyone at the IdP may now sign in (default role Viewer)",
        ],
        PRIVILEGE,
        1,
    ),
    Edit(
        "account-added",
        add_account,
        lambda base, head: [
            f"service account `nightly` gains Viewer (new, trusting {head.service_accounts[-1].subject})"
        ],
        PRIVILEGE,
        1,
    ),
    Edit(
        "account-raised",
        raise_account,
        lambda base, head: ["service account `deploy`: Viewer → Op"],
        PRIVILEGE,
        1,
    ),
    Edit(
        "account-trusts-another-subject",
        move_subject,
        lambda base, head: [
            f"service account `deploy` trusts another subject: {base.service_accounts[0].subject} → "
            f"{head.service_accounts[0].subject}"
        ],
        PRIVILEGE,
        1,
    ),
    Edit(
        "admin-outside-the-allowlist",
        raise_group(2, "Admin"),
        lambda base, head: [],
        "error",
        2,
        policy_fails=True,
        validate_ok=False,
        key="airflow-oidc:spec.access[2].role",
    ),
    Edit("benign-replicas", replicas, lambda base, head: [], None, 0),
]


def cases() -> list[tuple[str, Edit]]:
    return [(kind, edit) for edit in EDITS for kind in KINDS]


def stack_name(kind: str, edit: Edit) -> str:
    return f"{kind}-{edit.name}"


def edited(kind: str, edit: Edit) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(base spec, edited spec, why the kind cannot make the edit)."""
    base = kind_stacks.named(kind, kind_stacks.spec(kind), edit.name)
    head = copy.deepcopy(base)
    return base, head, edit.apply(kind, head)


def model_of(kind: str, body: dict[str, Any], stack: str) -> AccessModel:
    spec = resolve_spec(replace_secure_values(body)[0], "conformance", ROOT / "stacks").spec
    return spec.idp.access_model(spec, stack=stack, provider=kind_stacks.IDPS[kind][1])


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def write(repo: Path, kind: str, edit: Edit, body: dict[str, Any]) -> Path:
    path = repo / "stacks" / f"Pulumi.{stack_name(kind, edit)}.yaml"
    path.write_text(yaml.safe_dump({"config": kind_stacks.config(kind, body)}, sort_keys=False))
    return path


@dataclass
class Conformance:
    repo: Path
    plan: Plan
    benign: Plan
    files: dict[str, Path]
    reasons: dict[str, str]


@pytest.fixture(scope="module")
def conformance(tmp_path_factory: pytest.TempPathFactory) -> Conformance:
    """The base revision: every (kind, edit) stack as the kind's example; the working tree: each edited."""
    repo = tmp_path_factory.mktemp("conformance")
    shutil.copytree(ROOT / "components", repo / "components", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "policy", repo / "policy", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("__main__.py", "Pulumi.yaml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(PROD_DEFAULTS, repo / "stacks" / "defaults")
    heads: dict[str, dict[str, Any]] = {}
    reasons: dict[str, str] = {}
    for kind, edit in cases():
        base, head, reason = edited(kind, edit)
        if reason is not None:
            reasons[stack_name(kind, edit)] = reason
            continue
        write(repo, kind, edit, base)
        heads[stack_name(kind, edit)] = head
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base")
    revision = git(repo, "rev-parse", "HEAD")
    files = {}
    for kind, edit in cases():
        if stack_name(kind, edit) in heads:
            files[stack_name(kind, edit)] = write(repo, kind, edit, heads[stack_name(kind, edit)])
    benign = [files[stack_name(kind, EDITS[-1])] for kind in KINDS]
    return Conformance(repo, plan([], revision, repo), plan(benign, revision, repo), files, reasons)


def test_every_kind_has_a_row_and_every_edit_a_verdict() -> None:
    assert list(kind_names()) == KINDS
    assert EDITS[-1].name == "benign-replicas" and EDITS[-1].exit == 0


@pytest.mark.parametrize(("kind", "edit"), cases(), ids=[f"{edit.name}-{kind}" for kind, edit in cases()])
def test_the_edit_reads_the_same_on_every_kind(conformance: Conformance, kind: str, edit: Edit) -> None:
    stack = stack_name(kind, edit)
    base, head, reason = edited(kind, edit)
    if reason is not None:
        # The row says why the kind has no such edit (never silently skipped).
        assert stack in conformance.reasons and len(reason) > 40
        assert edit.name.startswith("account"), f"{edit.name} must be possible on every kind"
        return
    result, path = conformance.plan, conformance.files[stack]
    changes = [change for change in result.changes if change.stack == stack]
    errors = [error for error in result.errors if f"stacks/Pulumi.{stack}.yaml" in error]

    # plan: the class and the exit status this stack alone gives, the message old → new.
    exit_status = 2 if errors else 1 if any(change.risky for change in changes) else 0
    assert exit_status == edit.exit, (changes, errors)
    if edit.kind == "error":
        assert any(f"Pulumi.{stack}.yaml" in error and edit.key in error for error in errors), errors
    elif edit.kind is not None:
        found = [change.message for change in changes if change.kind == edit.kind]
        for message in edit.says(model_of(kind, base, stack), model_of(kind, head, stack)):
            assert message in found, (message, found)
        # Never read as the app replaced (Entra's raise used to be only that): a privilege change, plus for a
        # new account the credential the kind holds for it (a secret generated, a Secret holding it).
        allowed = {PRIVILEGE, SECRET} if edit.name == "account-added" else {PRIVILEGE}
        assert {change.kind for change in changes if change.risky} <= allowed, changes
    else:
        assert not [change for change in changes if change.risky], changes

    # validate: the same verdict, naming the same key.
    ok, text = check_stack_file(path)
    assert ok == edit.validate_ok, text
    if not ok:
        assert edit.key in text, text

    # the policy pack, judging with the environment's own allowlist (prod's).
    verdict = policy_verdict(conformance, kind, edit, head, path)
    assert bool(verdict.get("admin-only-allowed-groups")) == edit.policy_fails, verdict
    assert {name for name, messages in verdict.items() if messages} <= {"admin-only-allowed-groups"}, verdict


def policy_verdict(
    conformance: Conformance, kind: str, edit: Edit, head: dict[str, Any], path: Path
) -> dict[str, list[str]]:
    """The pack's verdict on what the edited stack declares: from the plan's own run (the change's rules
    and defaults), or, for a stack the program refuses, from a run as `dev` (whose defaults allow any
    Admin, so the program declares it) judged as prod, as the pack would judge a program that did not refuse."""
    facts = conformance.plan.head.get(f"stacks/{path.name}")
    if facts is not None:
        return facts.policy
    as_dev = copy.deepcopy(head)
    as_dev["environment"] = "dev"
    as_dev["airflow"].pop("database", None)
    dev_path = path.with_name(path.name.replace(".yaml", "-dev.yaml"))
    dev_path.write_text(yaml.safe_dump({"config": kind_stacks.config(kind, as_dev)}, sort_keys=False))
    try:
        run = run_stack_file(dev_path)
    finally:
        dev_path.unlink()
    declared = [rules.Declared.of(resource) for resource in run.resources]
    found = rules.check_all(declared, {}, None, environment="prod", defaults_dir=PROD_DEFAULTS)
    return {name: messages for name, messages in found.items() if messages and name == "admin-only-allowed-groups"}


def test_the_benign_edit_exits_0_on_every_kind(conformance: Conformance) -> None:
    assert conformance.benign.errors == []
    assert conformance.benign.status == 0, [change for change in conformance.benign.changes if change.risky]
    assert {change.stack for change in conformance.benign.changes} == {
        stack_name(kind, EDITS[-1]) for kind in KINDS
    }  # each shows its replica count as a plain change


def test_the_whole_plan_names_every_risky_edit(conformance: Conformance) -> None:
    risky = {change.stack for change in conformance.plan.changes if change.risky}
    errored = {stack for stack in conformance.files if any(stack + ".yaml" in e for e in conformance.plan.errors)}
    for kind, edit in cases():
        stack = stack_name(kind, edit)
        if stack in conformance.files:
            assert (stack in risky) == (edit.exit == 1) and (stack in errored) == (edit.exit == 2), stack
