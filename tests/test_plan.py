"""`airflow-oidc plan --base`: a throwaway git repository with two revisions, each change class asserted.

The repository holds a copy of the project's program (components/, __main__.py, Pulumi.yaml,
stacks/defaults/) and stack files written here, so the example stacks can change without moving
these tests. Each plan runs both revisions' own programs (one worker process per side): the cases
share runs (one stack per change class), so the module needs four plans.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import cli
from components.plan import (
    LIFETIME,
    POLICY,
    PRIVILEGE,
    PROTECTION,
    REDIRECT,
    REPLACED,
    SECRET,
    STACK_ADDED,
    STACK_REMOVED,
    Plan,
    plan,
    render_json,
    render_markdown,
    render_text,
)
from components.plan import fact_rows as render_rows
from tests.import_reader import imported

ROOT = Path(__file__).resolve().parent.parent


def okta_stack(team: str, env: str = "dev", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "environment": env,
        "team": team,
        "hostname": f"airflow.{team}.example.com",
        "idp": {"kind": "okta"},
        "access": [
            {"group": "payments-airflow-admins", "role": "Admin"},
            {"group": f"{team}-engineers", "role": "User"},
            {"group": f"{team}-analysts", "role": "Viewer"},
        ],
        "airflow": {"namespace": f"airflow-{team}", "tls": {"issuer": {"name": "letsencrypt"}}},
    }
    if env == "prod":
        body["idp"]["authorizationServer"] = {"mode": "custom", "id": "default"}
        body["airflow"]["database"] = {"secretName": "airflow-metadata-db"}
        body["airflow"]["forwardedAllowIps"] = "10.42.0.0/16"  # never `*` in prod
    else:
        body["airflow"]["database"] = {"bundled": True}
    body.update(spec)
    return {"config": {"okta:orgName": "dev-123456", "airflow-oidc:spec": body}}


def write(repo: Path, stack: str, document: dict[str, Any]) -> None:
    (repo / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def edit(repo: Path, stack: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = repo / "stacks" / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text())
    change(document["config"]["airflow-oidc:spec"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def reset(repo: Path) -> None:
    git(repo, "reset", "-q", "--hard")
    git(repo, "clean", "-q", "-fd")


BASE_STACKS = {
    "same-dev": okta_stack("same"),
    "escalate-dev": okta_stack("escalate"),
    "redirect-dev": okta_stack("redirect"),
    "lifetime-dev": okta_stack("lifetime"),
    "protect-prod": okta_stack("protect", "prod"),
    "replace-dev": okta_stack("replace"),
    "rotate-qa": okta_stack("rotate", "qa"),
    "gone-dev": okta_stack("gone"),
    # Entra ID: the roles ride on app roles and assignments; the access model makes its changes read as Okta's.
    "entra-dev": {
        "config": {
            "azuread:tenantId": "7d1b2c3a-0000-4000-8000-1234567890ab",
            "airflow-oidc:spec": {
                **okta_stack("entra")["config"]["airflow-oidc:spec"],
                "idp": {"kind": "azuread"},
                "serviceAccounts": [{"name": "deploy", "role": "Op", "githubRepository": "acme/pipelines"}],
            },
        }
    },
    # A secret set with `pulumi config set --secret --path`: the plan must never print its stand-in.
    "secret-dev": okta_stack(
        "secret",
        idp={"kind": "oidc", "issuer": "https://idp.example.com", "clientId": "s", "clientSecret": {"secure": "AAAB"}},
    ),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A git repository whose first revision is the program and BASE_STACKS; the working tree is reset per use."""
    repo = tmp_path_factory.mktemp("plan-repo")
    shutil.copytree(ROOT / "components", repo / "components", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "__main__.py", repo / "__main__.py")
    shutil.copy(ROOT / "Pulumi.yaml", repo / "Pulumi.yaml")
    shutil.copytree(ROOT / "policy", repo / "policy", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "stacks" / "defaults").mkdir(parents=True)
    # Differs from the model's 720-minute dev session: the plan must show the inherited value.
    (repo / "stacks" / "defaults" / "dev.yaml").write_text(
        yaml.safe_dump({"defaults": {"tokens": {"sessionMinutes": 600}}, "teamMayOverride": ["tokens"]})
    )
    for stack, document in BASE_STACKS.items():
        write(repo, stack, document)
    git(repo, "init", "-q", "-b", "main")
    return repo, commit_all(repo, "base")


def kinds(result: Plan, stack: str) -> set[str]:
    return {change.kind for change in result.changes if change.stack == stack}


def messages(result: Plan, stack: str, kind: str) -> list[str]:
    return [change.message for change in result.changes if change.stack == stack and change.kind == kind]


@pytest.fixture(scope="module")
def stack_file_changes(repo: tuple[Path, str]) -> Plan:
    """One plan over stack-file changes, one stack per change class."""
    path, base = repo
    reset(path)
    edit(path, "escalate-dev", lambda s: s["access"][2].update(role="Op"))
    edit(path, "redirect-dev", lambda s: s.update(hostname="airflow.elsewhere.example.net"))
    edit(path, "lifetime-dev", lambda s: s.update(tokens={"sessionMinutes": 1440}))
    edit(path, "protect-prod", lambda s: s.update(environment="staging"))
    edit(
        path,
        "replace-dev",
        lambda s: s.update(idp={"kind": "oidc", "issuer": "https://idp.example.com", "clientId": "c"}),
    )
    edit(path, "rotate-qa", lambda s: s.update(clientSecret={"rotationDays": 30}))
    edit(
        path,
        "entra-dev",
        lambda s: (
            s["access"][2].update(role="Admin"),
            s.update(defaultRole="Viewer", signIn={"extraGroups": ["entra-stakeholders"]}),
            s["serviceAccounts"][0].update(githubRepository="someone-else/pipelines"),
        ),
    )
    (path / "stacks" / "Pulumi.gone-dev.yaml").unlink()
    added = okta_stack("added")
    added["config"]["airflow-oidc:spec"]["tokens"] = {"sessionMinutes": 2000}  # above the pack's 1440
    write(path, "added-dev", added)
    config = json.loads((path / "policy" / "config.json").read_text())
    config["lifetimes-within-bounds"]["maxSessionMinutes"] = 1500
    (path / "policy" / "config.json").write_text(json.dumps(config))
    defaults = path / "stacks" / "defaults" / "dev.yaml"
    document = yaml.safe_load(defaults.read_text())
    document["allowedAdminGroups"] = ["*-airflow-admins", "entra-analysts"]  # the one allowlist, now set
    defaults.write_text(yaml.safe_dump(document))
    try:
        return plan([], base, root=path)
    finally:
        reset(path)


@pytest.mark.parametrize(
    ("stack", "kind", "says"),
    [
        ("escalate-dev", PRIVILEGE, "`escalate-analysts`: Viewer → Op"),
        (
            "redirect-dev",
            REDIRECT,
            "new redirect host: https://airflow.elsewhere.example.net/auth/oauth-authorized/okta",
        ),
        ("lifetime-dev", LIFETIME, "Airflow session (min): 600 → 1440"),
        ("protect-prod", PROTECTION, "`airflow-oidc-okta-app` (okta:app/oAuth:OAuth) is no longer protected"),
        ("replace-dev", REPLACED, "`airflow-oidc-okta-app` (okta:app/oAuth:OAuth) is deleted and created anew"),
        ("rotate-qa", SECRET, "clientSecret.rotationDays: 90 → 30"),
        ("gone-dev", STACK_REMOVED, "stacks/Pulumi.gone-dev.yaml is removed"),
        ("added-dev", STACK_ADDED, "new stack stacks/Pulumi.added-dev.yaml"),
        ("added-dev", POLICY, "lifetimes-within-bounds"),
    ],
)
def test_each_change_class_is_named(stack_file_changes: Plan, stack: str, kind: str, says: str) -> None:
    found = messages(stack_file_changes, stack, kind)
    assert any(says in message for message in found), (kind, found, kinds(stack_file_changes, stack))


def test_entra_access_changes_read_as_on_every_kind(stack_file_changes: Plan) -> None:
    """A group raised to Admin, an extra group and a service account trusting another repository, on Entra:
    each a named privilege change; the assignment re-created for the new app role is no app replaced."""
    found = messages(stack_file_changes, "entra-dev", PRIVILEGE)
    for says in (
        "`entra-analysts`: Viewer → Admin",
        "default role none → Viewer",
        "audience widened: `entra-stakeholders` may now sign in (default role Viewer)",
        "service account `deploy` trusts another subject: repo:acme/pipelines:ref:refs/heads/main → "
        "repo:someone-else/pipelines:ref:refs/heads/main",
    ):
        assert says in found, found
    assert REPLACED not in kinds(stack_file_changes, "entra-dev"), messages(stack_file_changes, "entra-dev", REPLACED)
    head = stack_file_changes.head["stacks/Pulumi.entra-dev.yaml"]
    rows = dict(render_rows(head))
    assert rows["role of `entra-analysts`"] == "Admin (claim value `Airflow.Admin`)"


def test_a_base_without_the_access_model_still_plans(repo: tuple[Path, str]) -> None:
    """A base revision from before the model: both sides are compared by the rendered role mapping."""
    path, _ = repo
    reset(path)
    main = path / "__main__.py"
    main.write_text("\n".join(line for line in main.read_text().splitlines() if '"accessModel"' not in line) + "\n")
    old_base = commit_all(path, "a revision without the access model")
    try:
        git(path, "checkout", "-q", "HEAD~1", "--", "__main__.py")
        edit(path, "escalate-dev", lambda s: s["access"][2].update(role="Op"))
        result = plan([], old_base, root=path)
    finally:
        git(path, "reset", "-q", "--hard", "HEAD~1")
        reset(path)
    assert result.errors == []
    assert result.base_facts["stacks/Pulumi.escalate-dev.yaml"].access_model is None
    assert result.head["stacks/Pulumi.escalate-dev.yaml"].access_model is not None
    assert messages(result, "escalate-dev", PRIVILEGE) == ["`escalate-analysts`: Viewer → Op"]
    assert result.status == 1


def test_a_base_whose_kinds_cannot_fail_a_lookup_still_plans(repo: tuple[Path, str]) -> None:
    """This revision's mock engine runs the base's components: a base from before `MockLookupError`."""
    path, _ = repo
    reset(path)
    base_py = path / "components" / "idp" / "base" / "model.py"
    text = base_py.read_text()
    start = text.index("class MockLookupError(Exception):")
    end = text.index("class ProviderConfigError(Exception):")
    base_py.write_text(text[:start] + text[end:])
    package = path / "components" / "idp" / "base" / "__init__.py"  # re-exports it: not there either
    exported = package.read_text().replace("    MockLookupError,\n", "")
    package.write_text(exported.replace('    "MockLookupError",\n', ""))
    for kind in ("okta", "keycloak"):  # kinds that raise something else (or nothing) for a failed lookup
        module = path / "components" / "idp" / kind / "model.py"
        text = module.read_text()
        assert "    MockLookupError,\n" in text, f"{kind}/model.py imports MockLookupError otherwise: update this test"
        module.write_text(text.replace("    MockLookupError,\n", "", 1) + "\nMockLookupError = LookupError\n")
    old_base = commit_all(path, "a revision without lookup failures under mocks")
    try:
        git(path, "checkout", "-q", "HEAD~1", "--", "components")
        edit(path, "escalate-dev", lambda s: s["access"][2].update(role="Op"))
        result = plan([], old_base, root=path)
    finally:
        git(path, "reset", "-q", "--hard", "HEAD~1")
        reset(path)
    assert result.errors == []
    assert messages(result, "escalate-dev", PRIVILEGE) == ["`escalate-analysts`: Viewer → Op"]


def test_a_change_to_the_policy_configuration_is_risky(stack_file_changes: Plan) -> None:
    assert messages(stack_file_changes, "(policy pack)", POLICY) == [
        "policy/config.json changes (lifetimes-within-bounds.maxSessionMinutes): "
        "the rules now judge with the new configuration",
        "stacks/defaults/dev.yaml allowedAdminGroups: anyone (not set) → *-airflow-admins, entra-analysts "
        "(who may be Admin)",
    ]


def test_no_secret_value_reaches_any_format(stack_file_changes: Plan) -> None:
    assert "secret-dev" in {facts.stack for facts in stack_file_changes.head.values()}
    for render in (render_json, render_markdown, render_text):
        assert "MOCKSECRET" not in render(stack_file_changes)  # the mock engine's generated and secure: values


def test_the_rotation_regenerates_the_client_secret(stack_file_changes: Plan) -> None:
    found = messages(stack_file_changes, "rotate-qa", SECRET)
    assert any("`airflow-oidc-okta-client-secret` is regenerated" in message for message in found), found


def test_an_untouched_stack_has_no_change_and_risky_changes_exit_1(stack_file_changes: Plan) -> None:
    assert kinds(stack_file_changes, "same-dev") == set()
    assert stack_file_changes.errors == []
    assert stack_file_changes.status == 1


def test_plan_shows_the_value_inherited_from_the_environment_defaults(stack_file_changes: Plan) -> None:
    facts = stack_file_changes.head["stacks/Pulumi.same-dev.yaml"]
    assert facts.lifetimes["Airflow session (min)"] == 600  # what the program declared on the Helm release
    assert facts.resolved["tokens.sessionMinutes"] == {"value": 600, "from": "stacks/defaults/dev.yaml"}


def test_a_change_in_code_alone_is_classified(repo: tuple[Path, str]) -> None:
    """No stack file touched: the head's own program maps every group to Admin, changes the Okta app's
    type (an input the provider cannot update in place) and stops protecting identity resources."""
    path, base = repo
    reset(path)
    try:
        for file, old, new in (
            (
                "idp/base/contract.py",
                "{rule.group: rule.role for rule in spec.access}",
                '{rule.group: "Admin" for rule in spec.access}',
            ),
            ("idp/okta/resources.py", 'type="web",', 'type="native",'),
            ("idp/okta/resources.py", "protect=spec.is_prod)", "protect=False)"),
        ):
            source = path / "components" / file
            text = source.read_text()
            assert old in text, f"{file} no longer has {old!r}: update this test"
            source.write_text(text.replace(old, new))
        assert git(path, "status", "--porcelain", "--", "stacks") == ""
        result = plan([], base, root=path)
    finally:
        reset(path)
    assert result.status == 1
    assert any("`same-engineers`: User → Admin" in m for m in messages(result, "same-dev", PRIVILEGE))
    assert any("type cannot change in place" in m for m in messages(result, "same-dev", REPLACED))
    assert any("no longer protected" in m for m in messages(result, "protect-prod", PROTECTION))


def test_a_team_label_change_is_benign_and_exits_0(
    repo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, base = repo
    reset(path)
    edit(path, "same-dev", lambda s: s.update(team="renamed"))
    monkeypatch.chdir(path)
    try:
        status = cli.main(["plan", "stacks/Pulumi.same-dev.yaml", "--base", base, "--format", "markdown"])
    finally:
        reset(path)
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.startswith("**airflow-oidc plan: no risky change in 1 stack(s)")
    assert "Risky changes" not in out
    assert "`airflow-oidc-okta-app` updated in place: label" in out  # listed, not flagged


def test_a_deleted_stack_file_may_be_named(repo: tuple[Path, str]) -> None:
    path, base = repo
    reset(path)
    (path / "stacks" / "Pulumi.gone-dev.yaml").unlink()
    try:
        result = plan([path / "stacks" / "Pulumi.gone-dev.yaml"], base, root=path)
    finally:
        reset(path)
    assert [(c.stack, c.kind) for c in result.changes] == [("gone-dev", STACK_REMOVED)]
    assert result.status == 1


def test_a_bad_spec_on_either_side_exits_2_naming_file_and_key(repo: tuple[Path, str]) -> None:
    path, _ = repo
    reset(path)
    edit(path, "same-dev", lambda s: s["access"][0].update(role="Boss"))
    bad_base = commit_all(path, "a bad spec")
    try:
        edit(path, "same-dev", lambda s: s["access"][0].update(role="Admin"))  # fixed here ...
        edit(path, "escalate-dev", lambda s: s.update(hostname="http://airflow.example.com"))  # ... broken here
        result = plan([], bad_base, root=path)
    finally:
        git(path, "reset", "-q", "--hard", "HEAD~1")
        reset(path)
    assert result.status == 2
    # Each names the file, the line of the key in it, and the key path.
    assert any(
        re.match(rf"base {bad_base}: stacks/Pulumi\.same-dev\.yaml:\d+: airflow-oidc:spec\.access\[0\]\.role", e)
        for e in result.errors
    ), result.errors
    assert any(
        re.match(r"this change: stacks/Pulumi\.escalate-dev\.yaml:\d+: airflow-oidc:spec\.hostname", e)
        for e in result.errors
    ), result.errors


# --- the report reads like `terraform plan` ------------------------------------------------------------


def section(text: str, header: str) -> list[str]:
    """The lines of one stack's section of the text report: its header line up to the next blank line."""
    lines = text.splitlines()
    start = lines.index(header)
    end = next((index for index in range(start + 1, len(lines)) if not lines[index]), len(lines))
    return lines[start:end]


def test_the_text_report_shows_only_what_changes(stack_file_changes: Plan) -> None:
    text = render_text(stack_file_changes)
    assert "`" not in text and "<br>" not in text and "**" not in text  # plain text
    # An unchanged stack is one line, after every stack that changes.
    assert "= same-dev (stacks/Pulumi.same-dev.yaml): unchanged" in text.splitlines()
    assert "same-engineers" not in text and "same-analysts" not in text
    headers = [line for line in text.splitlines() if line[:2] in ("~ ", "+ ", "- ", "= ")]
    states = [header[0] for header in headers]
    assert states.index("=") > max(index for index, state in enumerate(states) if state != "=")
    # A changed stack: only the rows that differ; a list as the items added and removed.
    redirect = section(text, "~ redirect-dev (stacks/Pulumi.redirect-dev.yaml)")
    assert "    redirect and post-logout URIs:" in redirect
    assert "      - https://airflow.redirect.example.com/auth/oauth-authorized/okta" in redirect
    assert "      + https://airflow.elsewhere.example.net/auth/oauth-authorized/okta" in redirect
    assert not any(line.startswith("    IdP kind") or "role of" in line for line in redirect)
    # The protected row: the item no longer protected, not both whole lists.
    protect = section(text, "~ protect-prod (stacks/Pulumi.protect-prod.yaml)")
    listed = protect[protect.index("    protected:") + 1 :]
    assert listed[0] == "      - airflow-oidc-okta-app" and "fernet" not in " ".join(listed[:2])
    # A new stack in full, a removed one on one line.
    added = section(text, "+ added-dev (stacks/Pulumi.added-dev.yaml): new stack")
    assert "    client id: (known after apply)" in added and "    IdP kind: okta" in added
    assert "- gone-dev (stacks/Pulumi.gone-dev.yaml): removed" in text.splitlines()


def test_the_markdown_report_shows_only_what_changes(stack_file_changes: Plan) -> None:
    text = render_markdown(stack_file_changes)
    assert "- `same-dev` (stacks/Pulumi.same-dev.yaml): unchanged" in text.splitlines()
    assert "### `same-dev`" not in text and "same-engineers" not in text
    protect = text[text.index("### `protect-prod`") :]
    protect = protect[: protect.index("\n### ")] if "\n### " in protect else protect
    [row] = [line for line in protect.splitlines() if line.startswith("| protected |")]
    # Only what is no longer protected (prod -> staging: the app and the groups), not the unchanged fernet keys.
    assert row.startswith("| protected | − `airflow-oidc-okta-app`<br>− `") and row.endswith(" |  |"), row
    assert "fernet" not in row
    assert "### `added-dev` (stacks/Pulumi.added-dev.yaml): new stack" in text
    assert "### `gone-dev` (stacks/Pulumi.gone-dev.yaml): removed" in text


def test_values_known_only_after_apply_are_shown_as_such(stack_file_changes: Plan) -> None:
    """The mock engine's stand-in ids never read as real ones: three Okta stacks, no shared made-up client id."""
    okta = [facts for facts in stack_file_changes.head.values() if facts.kind == "okta"]
    assert len(okta) >= 3 and {facts.client_id for facts in okta} == {"(known after apply)"}
    for render in (render_text, render_markdown, render_json):
        assert "0oa-" not in render(stack_file_changes)  # what mock_values.fake() makes of an Okta client id
    document = json.loads(render_json(stack_file_changes))
    assert document["stacks"]["stacks/Pulumi.added-dev.yaml"]["client_id"] == "(known after apply)"


def test_a_base_whose_stand_ins_are_unmarked_still_reads_them_as_unknown(repo: tuple[Path, str]) -> None:
    """A base revision from before `mock_values.GENERATED`: the worker records its stand-ins itself, so the
    base's made-up client ids neither show nor read as a replaced client."""
    path, _ = repo
    reset(path)
    values = path / "components" / "mock_values.py"
    old = values.read_text()
    values.write_text(
        old.replace("GENERATED: set[str] = set()", "")
        .replace("def generated(value: str) -> str:", "def _unused(value: str) -> str:")
        .replace("    GENERATED.add(value)\n", "")
        .replace("return generated(", "return (")
    )
    assert "GENERATED: set" not in values.read_text() and "GENERATED.add" not in values.read_text()
    old_base = commit_all(path, "a revision without the stand-in record")
    try:
        git(path, "checkout", "-q", "HEAD~1", "--", "components/mock_values.py")
        result = plan([path / "stacks" / "Pulumi.same-dev.yaml"], old_base, root=path)
    finally:
        git(path, "reset", "-q", "--hard", "HEAD~1")
        reset(path)
    assert result.errors == []
    assert result.base_facts["stacks/Pulumi.same-dev.yaml"].client_id == "(known after apply)"
    assert kinds(result, "same-dev") == set() and result.status == 0


PLAN_LAYERS = {"facts": 0, "diff": 1, "render": 2, "worktree": 2, "command": 3}
"""components/plan/ by floor: a module imports only modules of lower floors (command → worktree / render →
diff → facts)."""


def plan_imports(path: Path, module_level: bool = False) -> tuple[set[str], set[str]]:
    """(the components/plan modules `path` imports, every top-level package it imports)."""
    names = imported(path, module_level=module_level)
    within = {
        (name.split(".")[2] if name.count(".") >= 2 else "__init__")
        for name in names
        if name == "components.plan" or name.startswith("components.plan.")
    }
    return within, {name.split(".")[0] for name in names}


def test_the_plan_package_imports_one_way() -> None:
    """Each module of components/plan/ imports only the modules below it (never the package itself); the
    worker, run by path against a side's own checkout (an older revision has no components/plan/), imports
    none of them and only the standard library before it puts that checkout on sys.path."""
    package = ROOT / "components" / "plan"
    modules = {path.stem: path for path in package.glob("*.py")}
    assert set(modules) == {*PLAN_LAYERS, "__init__", "worker"}, "a new module of components/plan/ needs a floor"
    for name, floor in PLAN_LAYERS.items():
        within, _ = plan_imports(modules[name])
        upward = {other for other in within if PLAN_LAYERS.get(other, floor) >= floor}
        assert not upward, f"components/plan/{name}.py imports {sorted(upward)} (not below it)"
    within, packages = plan_imports(modules["worker"], module_level=True)
    assert not within
    assert packages <= {*sys.stdlib_module_names, "__future__"}, sorted(packages - set(sys.stdlib_module_names))
    assert not plan_imports(modules["worker"])[0]
