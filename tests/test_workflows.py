"""The GitHub workflows for users: which stacks a pull request concerns, and the safety invariants
(pinned actions, read-only by default, no secrets where a fork's code runs, prod behind approval).
`make lint-workflows` runs actionlint and zizmor; the negative controls here show both would notice."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPT = ROOT / ".github" / "scripts" / "changed_stacks.py"
PINNED_USES = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def workflow(name: str) -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    loaded["on"] = loaded.pop(True, loaded.get("on"))  # YAML 1.1 reads the key `on` as true
    return loaded


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def stack_file(environment: str) -> str:
    return f"config:\n  airflow-oidc:spec:\n    environment: {environment}\n    hostname: h\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A throwaway repository: three stacks (dev, prod, local), some code and a README on `main`."""
    repo = tmp_path / "repo"
    (repo / "stacks").mkdir(parents=True)
    (repo / "components").mkdir()
    for name, environment in (("team-dev", "dev"), ("team-prod", "prod"), ("local", "local")):
        (repo / "stacks" / f"Pulumi.{name}.yaml").write_text(stack_file(environment))
    (repo / "components" / "roles.py").write_text("ROLES = {}\n")
    (repo / "README.md").write_text("# readme\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "change")
    return repo


def changed(repo: Path) -> dict[str, Any]:
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "change")
    output = repo / "github-output"
    subprocess.run(
        [sys.executable, str(SCRIPT), "changed", "--base", "main"],
        cwd=repo,
        check=True,
        env={"GITHUB_OUTPUT": str(output), "PATH": "/usr/bin:/bin"},
    )
    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return {"files": values["files"].split(), "preview": json.loads(values["preview-stacks"])}


ALL = ["stacks/Pulumi.local.yaml", "stacks/Pulumi.team-dev.yaml", "stacks/Pulumi.team-prod.yaml"]


def test_a_stack_file_change_concerns_that_stack(repo: Path) -> None:
    (repo / "stacks" / "Pulumi.team-prod.yaml").write_text(stack_file("prod") + "    team: t\n")
    assert changed(repo) == {"files": ["stacks/Pulumi.team-prod.yaml"], "preview": ["team-prod"]}


def test_a_code_change_counts_for_every_stack(repo: Path) -> None:
    (repo / "components" / "roles.py").write_text("ROLES = {'everyone': 'Admin'}\n")
    assert changed(repo) == {"files": ALL, "preview": ["team-dev", "team-prod"]}


def test_a_removed_stack_plans_every_stack(repo: Path) -> None:
    (repo / "stacks" / "Pulumi.team-dev.yaml").unlink()
    assert changed(repo)["files"] == ["stacks/Pulumi.local.yaml", "stacks/Pulumi.team-prod.yaml"]


def test_docs_and_tests_concern_no_stack(repo: Path) -> None:
    (repo / "README.md").write_text("# more\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_x.py").write_text("")
    assert changed(repo) == {"files": [], "preview": []}


def test_the_local_deployment_concerns_no_stack(repo: Path) -> None:
    """localdev/ (`make demo`, the e2e tier's deployment) is not shipped: no stack runs it."""
    (repo / "localdev" / "harness").mkdir(parents=True)
    (repo / "localdev" / "harness" / "nginx.py").write_text("LISTEN = 8443\n")
    assert changed(repo) == {"files": [], "preview": []}


def test_the_local_demo_stack_is_planned_but_never_previewed_with_credentials(repo: Path) -> None:
    (repo / "stacks" / "Pulumi.local.yaml").write_text(stack_file("local") + "    team: t\n")
    assert changed(repo) == {"files": ["stacks/Pulumi.local.yaml"], "preview": []}


def test_a_stack_file_name_that_could_inject_outputs_is_refused(repo: Path) -> None:
    (repo / "stacks" / 'Pulumi.x\npreview-stacks=["prod"].yaml').write_text(stack_file("dev"))
    for command in (["changed", "--base", "main"], ["by-environment"]):
        result = subprocess.run(
            [sys.executable, str(SCRIPT), *command], cwd=repo, capture_output=True, text=True, check=False
        )
        assert result.returncode == 2 and "stack file names must match" in result.stderr
        assert "preview-stacks" not in result.stdout


def test_deploy_groups_stacks_by_environment(repo: Path) -> None:
    (repo / "stacks" / "Pulumi.team-staging.yaml").write_text(stack_file("staging"))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "by-environment"], cwd=repo, check=True, capture_output=True, text=True
    )
    values = dict(line.split("=", 1) for line in result.stdout.splitlines())
    none = {"kind": "", "gcp": False}  # these stack files name no IdP kind
    assert json.loads(values["pre-prod"]) == [
        {"stack": "team-dev", "environment": "dev", **none},
        {"stack": "team-staging", "environment": "staging", **none},
    ]
    assert json.loads(values["prod"]) == [{"stack": "team-prod", "environment": "prod", **none}]


# ---------------------------------------------------------------------------------------------- credentials per kind


def kind_stack(environment: str, kind: str, store: str | None = None) -> str:
    text = stack_file(environment) + f"    idp:\n      kind: {kind}\n"
    return text + (f"    clientSecret:\n      store: {store}\n" if store else "")


def by_environment(repo: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "by-environment"], cwd=repo, check=True, capture_output=True, text=True
    )
    values = dict(line.split("=", 1) for line in result.stdout.splitlines())
    return [*json.loads(values["pre-prod"]), *json.loads(values["prod"])]


def test_each_stack_says_its_kind_and_whether_it_calls_google_cloud(repo: Path) -> None:
    """The matrices carry what each stack's providers need: a Keycloak stack its kind; a Google stack,
    and any stack keeping its secret in Secret Manager (set in the stack or by its environment's
    defaults), Google credentials."""
    stacks = repo / "stacks"
    (stacks / "Pulumi.search-prod.yaml").write_text(kind_stack("prod", "keycloak"))
    (stacks / "Pulumi.growth-prod.yaml").write_text(kind_stack("prod", "google"))
    (stacks / "Pulumi.pay-qa.yaml").write_text(kind_stack("qa", "okta", store="gcp-secret-manager"))
    (stacks / "defaults").mkdir()
    (stacks / "defaults" / "staging.yaml").write_text("defaults:\n  clientSecret:\n    store: gcp-secret-manager\n")
    (stacks / "Pulumi.risk-staging.yaml").write_text(kind_stack("staging", "azuread"))
    deploy = {entry["stack"]: (entry["kind"], entry["gcp"]) for entry in by_environment(repo)}
    assert deploy["search-prod"] == ("keycloak", False)
    assert deploy["growth-prod"] == ("google", True)
    assert deploy["pay-qa"] == ("okta", True)
    assert deploy["risk-staging"] == ("azuread", True)
    assert changed(repo)["preview"] == ["growth-prod", "pay-qa", "risk-staging", "search-prod", "team-dev", "team-prod"]
    output = repo / "github-output"
    matrix = json.loads(dict(line.split("=", 1) for line in output.read_text().splitlines())["preview-matrix"])
    assert {"stack": "search-prod", "kind": "keycloak", "gcp": False} in matrix
    assert {"stack": "growth-prod", "kind": "google", "gcp": True} in matrix


EXPRESSION = re.compile(r"^\$\{\{\s*(.*?)\s*\}\}$")
CONDITIONAL = re.compile(r"^matrix\.kind == '(\w+)' && (\S+) \|\| (\S+)$")


def evaluate(value: Any, matrix: dict[str, Any]) -> Any:
    """The few expression forms the workflows use, as GitHub evaluates them for one matrix entry;
    `secrets.X` / `vars.X` evaluate to a marker naming where the value comes from. Anything else fails."""
    if not isinstance(value, str) or not (found := EXPRESSION.match(value)):
        return value
    return _term(found.group(1), matrix)


def _term(text: str, matrix: dict[str, Any]) -> Any:
    if conditional := CONDITIONAL.match(text):
        kind, then, otherwise = conditional.groups()
        return _term(then if matrix["kind"] == kind else otherwise, matrix)
    if re.fullmatch(r"(secrets|vars)\.\w+", text):
        return f"<{text}>"
    if re.fullmatch(r"matrix\.\w+", text):
        return matrix[text.split(".")[1]]
    if re.fullmatch(r"'[^']*'", text):
        return text[1:-1]
    raise AssertionError(f"an expression form this test does not know: {text!r}")


CREDENTIALS = ("OKTA_API_TOKEN", "KEYCLOAK_CLIENT_ID", "KEYCLOAK_CLIENT_SECRET", "ARM_CLIENT_ID", "ARM_TENANT_ID")


def job_for(name: str, job: str, matrix: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the pulumi step's env, the steps that run) for one matrix entry of a job."""
    steps = workflow(name)["jobs"][job]["steps"]
    running = [step for step in steps if "if" not in step or evaluate("${{ " + step["if"] + " }}", matrix)]
    pulumi = next(step for step in running if step.get("uses", "").startswith("pulumi/actions@"))
    return {key: evaluate(value, matrix) for key, value in pulumi["env"].items()}, running


JOBS = [("deploy.yml", "up"), ("deploy.yml", "up-prod"), ("identity-review.yml", "preview")]


@pytest.mark.parametrize(("name", "job"), JOBS)
def test_a_keycloak_stack_gets_keycloak_client_credentials_from_secrets_and_nothing_else(name: str, job: str) -> None:
    env, running = job_for(name, job, {"stack": "search-prod", "kind": "keycloak", "gcp": False})
    assert env["KEYCLOAK_CLIENT_ID"] == "<secrets.KEYCLOAK_CLIENT_ID>"
    assert env["KEYCLOAK_CLIENT_SECRET"] == "<secrets.KEYCLOAK_CLIENT_SECRET>"
    assert {key for key in CREDENTIALS if env[key]} == {"KEYCLOAK_CLIENT_ID", "KEYCLOAK_CLIENT_SECRET"}
    assert env["ARM_USE_OIDC"] == "false"
    assert not any(step.get("uses", "").startswith("google-github-actions/auth@") for step in running)


@pytest.mark.parametrize(("name", "job"), JOBS)
def test_a_google_stack_authenticates_by_workload_identity_federation_without_a_key(name: str, job: str) -> None:
    env, running = job_for(name, job, {"stack": "growth-prod", "kind": "google", "gcp": True})
    (auth,) = [step for step in running if step.get("uses", "").startswith("google-github-actions/auth@")]
    inputs = {key: evaluate(value, {}) for key, value in auth["with"].items()}
    assert inputs == {
        "workload_identity_provider": "<vars.GCP_WORKLOAD_IDENTITY_PROVIDER>",
        "service_account": "<vars.GCP_SERVICE_ACCOUNT>",
    }, "no credentials_json: never a service-account key"
    names = [step.get("uses", step.get("name", "")) for step in running]
    assert names.index(auth["uses"]) < next(i for i, n in enumerate(names) if n.startswith("pulumi/actions@"))
    assert {key for key in CREDENTIALS if env[key]} == set(), "no other kind's credentials"
    assert workflow(name)["jobs"][job]["permissions"]["id-token"] == "write"


@pytest.mark.parametrize(("name", "job"), JOBS)
def test_an_entra_stack_signs_in_with_its_federated_credential_and_no_secret(name: str, job: str) -> None:
    env, _ = job_for(name, job, {"stack": "risk-prod", "kind": "azuread", "gcp": False})
    assert env["ARM_USE_OIDC"] == "true"
    assert (env["ARM_CLIENT_ID"], env["ARM_TENANT_ID"]) == ("<vars.ARM_CLIENT_ID>", "<vars.ARM_TENANT_ID>")
    assert "ARM_CLIENT_SECRET" not in env
    assert {key for key in CREDENTIALS if env[key]} == {"ARM_CLIENT_ID", "ARM_TENANT_ID"}


# ---------------------------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("name", ["identity-review.yml", "deploy.yml"])
def test_every_action_is_pinned_by_commit_with_its_version(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    assert uses
    for ref, comment in uses:
        assert PINNED_USES.match(ref), ref
        assert re.search(r"#\s*v\d", comment), f"{ref}: say which version the SHA is"


@pytest.mark.parametrize("name", ["identity-review.yml", "deploy.yml"])
def test_no_permission_unless_a_job_asks(name: str) -> None:
    flow = workflow(name)
    assert flow["permissions"] == {}
    for job_name, job in flow["jobs"].items():
        granted = {scope: level for scope, level in job["permissions"].items() if level != "none"}
        writes = {scope for scope, level in granted.items() if level == "write"}
        # The comment job writes its comment; the credentialed jobs ask GitHub for their OIDC token
        # (Google workload identity federation, Entra's federated credential): no other write anywhere.
        allowed = {"comment": {"pull-requests"}, "up": {"id-token"}, "up-prod": {"id-token"}, "preview": {"id-token"}}
        assert writes <= allowed.get(job_name, set()), (job_name, writes)


def test_the_review_runs_a_forks_code_without_secrets_and_comments_only_for_this_repository() -> None:
    flow = workflow("identity-review.yml")
    assert set(flow["on"]) == {"pull_request"}, "never pull_request_target: it would run a fork's code with secrets"
    jobs = flow["jobs"]
    assert "secrets." not in json.dumps(jobs["plan"]) and "secrets." not in json.dumps(jobs["comment"])
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    assert same_repo in jobs["comment"]["if"] and same_repo in jobs["preview"]["if"]
    assert all("actions/checkout" not in step.get("uses", "") for step in jobs["comment"]["steps"])
    plan_run = " ".join(step.get("run", "") for step in jobs["plan"]["steps"])
    assert 'airflow-oidc plan --base "origin/$BASE_REF" --format markdown' in plan_run
    assert "airflow-oidc validate" in plan_run
    pulumi = next(step for step in jobs["preview"]["steps"] if step.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["diff"] is True
    assert pulumi["with"]["policyPacks"] == "policy" and pulumi["with"]["policyPackConfigs"] == "policy/config.json"
    assert (ROOT / pulumi["with"]["policyPackConfigs"]).is_file()


def test_deploy_runs_prod_last_behind_its_environment() -> None:
    jobs = workflow("deploy.yml")["jobs"]
    assert jobs["up-prod"]["environment"] == "prod"
    assert "up" in jobs["up-prod"]["needs"]
    assert "needs.up.result == 'success' || needs.up.result == 'skipped'" in jobs["up-prod"]["if"]
    for job in ("up", "up-prod"):
        pulumi = next(s for s in jobs[job]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
        assert pulumi["with"]["command"] == "up" and pulumi["with"]["policyPacks"] == "policy"
    assert workflow("deploy.yml")["concurrency"]["cancel-in-progress"] is False


# ---------------------------------------------------------------------------------------------- the linters notice

BAD_WORKFLOW = """name: bad
on: pull_request_target
jobs:
  x:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def test_zizmor_flags_a_dangerous_workflow(tmp_path: Path) -> None:
    zizmor = ROOT / ".venv" / "bin" / "zizmor"
    if not zizmor.exists():
        pytest.skip("zizmor is not installed in .venv (requirements/pulumi.lock)")
    (tmp_path / "bad.yml").write_text(BAD_WORKFLOW)
    result = subprocess.run(
        [str(zizmor), "--offline", "--format", "json", str(tmp_path / "bad.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    found = {finding["ident"] for finding in json.loads(result.stdout)}
    assert {"dangerous-triggers", "template-injection", "unpinned-uses", "excessive-permissions"} <= found


def test_actionlint_flags_a_broken_workflow(tmp_path: Path) -> None:
    actionlint = ROOT / ".venv" / "bin" / "actionlint"
    if not actionlint.exists():
        pytest.skip("actionlint is not built yet: `make lint-workflows` builds it")
    (tmp_path / "bad.yml").write_text(
        BAD_WORKFLOW.replace("runs-on: ubuntu-24.04", "runs-on: ubuntu-24.04\n    needs: y")
    )
    result = subprocess.run([str(actionlint), str(tmp_path / "bad.yml")], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and 'job "x" needs job "y" which does not exist' in result.stdout


# ---------------------------------------------------------------------------------------------- the review step, run


def review_step_script() -> str:
    steps = workflow("identity-review.yml")["jobs"]["plan"]["steps"]
    return str(next(step for step in steps if step.get("id") == "review")["run"])


@pytest.fixture
def pull_request(tmp_path: Path) -> tuple[Path, str]:
    """A clone of this repository on a branch `pr`, with the program's .venv: (checkout, base branch)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    # The workflow diffs against origin/<base_ref>: name this checkout's commit so, whether it is on a
    # branch or detached (a worktree, CI's checkout).
    branch = "review-base"
    git(clone, "update-ref", f"refs/remotes/origin/{branch}", head)
    git(clone, "checkout", "-q", "-b", "pr", head)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    return clone, branch


def run_review(clone: Path, base: str, files: str) -> tuple[str, str]:
    """The workflow's own `validate and plan` script, as the runner runs it (bash -eo pipefail)."""
    git(clone, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-am", "change")
    output, summary = clone / "github-output", clone / "github-summary"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(clone),
        "BASE_REF": base,
        "FILES": files,
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", review_step_script()], cwd=clone, env=env, check=True
    )
    report = (clone / "identity-review.md").read_text()
    assert summary.read_text().startswith(report.split("… cut here")[0])
    return report, dict(line.split("=", 1) for line in output.read_text().splitlines())["status"]


def test_the_review_step_reports_an_escalation_as_risky(pull_request: tuple[Path, str]) -> None:
    clone, base = pull_request
    stack = clone / "stacks" / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("role: User", "role: Op", 1))
    report, status = run_review(clone, base, "stacks/Pulumi.dev.yaml")
    assert status == "1"
    assert "**validate**: 1 stack file(s) valid." in report
    assert "privilege escalation" in report and "User → Op" in report


def test_the_review_step_reports_an_invalid_spec_as_an_error(pull_request: tuple[Path, str]) -> None:
    clone, base = pull_request
    stack = clone / "stacks" / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("role: User", "role: Superuser", 1))
    report, status = run_review(clone, base, "stacks/Pulumi.dev.yaml")
    assert status == "2"
    assert "**validate** failed:" in report and "stacks/Pulumi.dev.yaml" in report and "access[1].role" in report
