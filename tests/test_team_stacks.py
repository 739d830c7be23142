"""A stack per team: environment defaults, `new-stack` for every kind, and the fleet check of `validate`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.cli import check_stack_file, main
from components.env_defaults import repeated_notes, resolve_spec
from components.idp import KINDS, kind_name
from components.mock_engine import run_program
from components.spec import CONFIG_KEY, SpecError, parse_spec
from components.stack_config import input_problems, resolved_from_stack_file
from components.stack_schema import MODELINES
from tests.conftest import ROOT

DEFAULTS = {
    "defaults": {
        "tokens": {"sessionMinutes": 600, "idleMinutes": 30},
        "clientSecret": {"rotationDays": 45},
        "airflow": {"chartVersion": "1.18.0", "image": {"tag": "3.3.1"}, "apiServerReplicas": 3},
    },
    "teamMayOverride": ["tokens.idleMinutes", "airflow.image"],
    "allowedAdminGroups": ["*-airflow-admins"],
}


def spec(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "environment": "qa",
        "team": "blue",
        "hostname": "airflow.blue.example.com",
        "idp": {"kind": "oidc", "issuer": "https://idp.example.com", "clientId": "blue"},
        "access": [{"group": "blue-airflow-admins", "role": "Admin"}, {"group": "blue-users", "role": "User"}],
        "airflow": {"tls": {"secretName": "tls"}},
    }
    body.update(changes)
    return body


def write_stack(stacks: Path, name: str, body: dict[str, Any], **config: Any) -> Path:
    path = stacks / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": {**config, CONFIG_KEY: body}}, sort_keys=False))
    return path


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    directory = tmp_path / "stacks"
    (directory / "defaults").mkdir(parents=True)
    (directory / "defaults" / "qa.yaml").write_text(yaml.safe_dump(DEFAULTS))
    return directory


# --- environment defaults -------------------------------------------------------------------------


def test_unset_values_are_inherited_and_set_ones_resolve_from_the_stack(stacks: Path) -> None:
    resolved = resolve_spec(spec(tokens={"idleMinutes": 20}), "stacks/Pulumi.blue-qa.yaml", stacks)
    assert resolved.spec.session_minutes == 600  # defaults file
    assert resolved.spec.idle_minutes == 20  # the stack: teamMayOverride lists it
    assert resolved.spec.clientSecret.rotationDays == 45
    assert resolved.spec.airflow.chartVersion == "1.18.0"
    assert resolved.spec.airflow.image.tag == "3.3.1"
    assert resolved.spec.airflow.image.repository == "apache/airflow"  # not in the defaults: the model's
    assert resolved.spec.api_server_replicas == 3
    assert "tokens.idleMinutes" not in resolved.inherited
    assert resolved.inherited["tokens.sessionMinutes"] == 600


def test_an_override_the_defaults_do_not_allow_names_both_files(stacks: Path) -> None:
    with pytest.raises(SpecError) as error:
        resolve_spec(
            spec(airflow={"tls": {"secretName": "tls"}, "chartVersion": "1.19.0"}), "stacks/Pulumi.b.yaml", stacks
        )
    (problem,) = error.value.problems
    assert str(error.value).startswith("stacks/Pulumi.b.yaml: airflow-oidc:spec.airflow.chartVersion: '1.19.0'")
    assert "overrides '1.18.0' from stacks/defaults/qa.yaml" in problem
    assert "teamMayOverride" in problem


def test_repeating_the_default_value_is_not_an_override(stacks: Path) -> None:
    resolved = resolve_spec(spec(clientSecret={"rotationDays": 45}), "s", stacks)
    assert resolved.spec.clientSecret.rotationDays == 45
    assert resolved.repeated == {"clientSecret.rotationDays": 45} and resolved.inherited.get("tokens.sessionMinutes")
    assert repeated_notes(resolved) == [
        "airflow-oidc:spec.clientSecret.rotationDays: 45 repeats the default of stacks/defaults/qa.yaml: not an "
        "override, but pinned here; remove the key so this stack follows a later change of the default"
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("tokens.sessionMinutes", 240),
        ("tokens.accessTokenMinutes", 10),
        ("clientSecret.rotationDays", 30),
    ],
)
def test_a_stricter_lifetime_is_always_allowed(stacks: Path, key: str, value: int) -> None:
    """Below the environment's value (a shorter session, a faster rotation), with no teamMayOverride entry."""
    defaults = json.loads(json.dumps(DEFAULTS))
    defaults["defaults"]["tokens"]["accessTokenMinutes"] = 15
    (stacks / "defaults" / "qa.yaml").write_text(yaml.safe_dump(defaults))
    section, name = key.split(".")
    resolved = resolve_spec(spec(**{section: {name: value}}), "s", stacks)
    assert getattr(getattr(resolved.spec, section), name) == value
    assert key not in resolved.inherited and key not in resolved.repeated


def test_a_longer_lifetime_needs_team_may_override(stacks: Path) -> None:
    with pytest.raises(SpecError) as error:
        resolve_spec(spec(tokens={"sessionMinutes": 900}), "stacks/Pulumi.b.yaml", stacks)
    assert error.value.problems == [
        "airflow-oidc:spec.tokens.sessionMinutes: 900 is above 600 from stacks/defaults/qa.yaml, which does not let "
        "team stacks override it (add 'tokens.sessionMinutes' to its teamMayOverride, or remove the key here to "
        "follow the default)"
    ]
    # idleMinutes is listed: longer is allowed (the model still caps it at the session).
    assert resolve_spec(spec(tokens={"idleMinutes": 90}), "s", stacks).spec.tokens.idleMinutes == 90


def test_a_later_change_of_the_default_reaches_the_stacks_that_leave_it_out(stacks: Path) -> None:
    """The platform team lowers the session: a stack without the key follows; one that repeated the old value
    pinned it, and is now told to remove the key (validate noted it while it was equal)."""
    silent, repeating = spec(), spec(tokens={"sessionMinutes": 600})
    assert resolve_spec(repeating, "s", stacks).repeated == {"tokens.sessionMinutes": 600}
    lowered = json.loads(json.dumps(DEFAULTS))
    lowered["defaults"]["tokens"]["sessionMinutes"] = 480
    (stacks / "defaults" / "qa.yaml").write_text(yaml.safe_dump(lowered))
    assert resolve_spec(silent, "s", stacks).spec.session_minutes == 480
    with pytest.raises(SpecError) as error:
        resolve_spec(repeating, "s", stacks)
    assert "600 is above 480" in str(error.value) and "remove the key here to follow the default" in str(error.value)
    raised = json.loads(json.dumps(DEFAULTS))
    raised["defaults"]["tokens"]["sessionMinutes"] = 720
    (stacks / "defaults" / "qa.yaml").write_text(yaml.safe_dump(raised))
    assert resolve_spec(silent, "s", stacks).spec.session_minutes == 720
    assert resolve_spec(repeating, "s", stacks).spec.session_minutes == 600  # now stricter: its own


def test_defaults_may_set_forwarded_ips_ingress_class_and_issuer(stacks: Path) -> None:
    defaults = json.loads(json.dumps(DEFAULTS))
    defaults["defaults"]["airflow"].update(
        forwardedAllowIps="10.42.0.0/16", ingressClassName="nginx", tls={"issuer": {"name": "letsencrypt"}}
    )
    (stacks / "defaults" / "qa.yaml").write_text(yaml.safe_dump(defaults))
    issued = resolve_spec(spec(airflow={}), "s", stacks)
    assert issued.spec.airflow.forwardedAllowIps == "10.42.0.0/16"
    assert issued.spec.airflow.ingressClassName == "nginx"
    assert issued.spec.airflow.tls is not None and issued.spec.airflow.tls.issuer is not None
    assert issued.spec.airflow.tls.issuer.name == "letsencrypt" and issued.spec.airflow.tls.secretName is None
    # A team with its own certificate keeps it: no issuer would overwrite its Secret.
    own = resolve_spec(spec(), "s", stacks)  # airflow.tls.secretName: tls
    assert own.spec.airflow.tls is not None and own.spec.airflow.tls.issuer is None
    upstream = resolve_spec(spec(airflow={"tls": {"terminatedUpstream": True}}), "s", stacks)  # a load balancer's
    assert upstream.spec.airflow.tls is not None and upstream.spec.airflow.tls.issuer is None
    # The same issuer spelt with the model's default kind is no override.
    explicit = spec(airflow={"tls": {"issuer": {"name": "letsencrypt", "kind": "ClusterIssuer"}}})
    assert resolve_spec(explicit, "s", stacks).repeated == {"airflow.tls.issuer": explicit["airflow"]["tls"]["issuer"]}
    with pytest.raises(SpecError, match="airflow.forwardedAllowIps: '\\*' overrides '10.42.0.0/16'"):
        resolve_spec(spec(airflow={"tls": {"secretName": "tls"}, "forwardedAllowIps": "*"}), "s", stacks)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("*", "in prod the api-server never trusts X-Forwarded-* from every peer"),
        ("10.42.0.0/16,0.0.0.0/0", "in prod the api-server never trusts X-Forwarded-* from every peer"),
        ("10.42.0.1/16", "'10.42.0.1/16' is not an IP address or network"),
        ("ingress-nginx", "'ingress-nginx' is not an IP address or network"),
    ],
)
def test_prod_never_trusts_forwarded_headers_from_everyone(value: str, says: str) -> None:
    body = spec(environment="prod", airflow={"tls": {"secretName": "t"}, "database": {"secretName": "db"}})
    body["airflow"]["forwardedAllowIps"] = value
    with pytest.raises(SpecError) as error:
        parse_spec(body, "s")
    assert [problem.split(": ", 1)[0] for problem in error.value.problems] == [
        "airflow-oidc:spec.airflow.forwardedAllowIps"
    ]
    assert says in str(error.value)


def test_the_shipped_prod_defaults_give_every_prod_stack_a_range() -> None:
    for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        resolved = resolved_from_stack_file(path)
        if resolved.spec.is_prod:
            assert not resolved.spec.airflow.trusts_every_peer(), path
            assert resolved.inherited.get("airflow.forwardedAllowIps") == "10.42.0.0/16", path
        assert resolved.repeated == {}, f"{path.name} repeats its defaults: {resolved.repeated}"


def test_admin_only_for_the_groups_the_defaults_allow(stacks: Path) -> None:
    body = spec(access=[{"group": "blue-users", "role": "Admin"}])
    problems = input_problems(resolve_spec(body, "stacks/Pulumi.b.yaml", stacks), stack="b", provider={})
    assert problems == [
        "airflow-oidc:spec.access[0].role: Admin for 'blue-users', which stacks/defaults/qa.yaml does not allow "
        "(allowedAdminGroups: *-airflow-admins)"
    ]


def test_a_service_account_needs_its_own_admin_allowance(stacks: Path) -> None:
    """Defaults that limit Admin groups allow no service account Admin unless allowedAdminServiceAccounts names it."""
    body = spec(serviceAccounts=[{"name": "release", "role": "Admin"}])
    problems = input_problems(resolve_spec(body, "s", stacks), stack="b", provider={})
    assert problems == [
        "airflow-oidc:spec.serviceAccounts[0].role: Admin for the service account 'release', which "
        "stacks/defaults/qa.yaml does not allow (allowedAdminServiceAccounts: none): name it there, or give it "
        "a lower role"
    ]
    (stacks / "defaults" / "qa.yaml").write_text(yaml.safe_dump({**DEFAULTS, "allowedAdminServiceAccounts": ["rel*"]}))
    assert input_problems(resolve_spec(body, "s", stacks), stack="b", provider={}) == []
    (stacks / "defaults" / "qa.yaml").write_text(yaml.safe_dump({"defaults": {}}))
    assert input_problems(resolve_spec(body, "s", stacks), stack="b", provider={}) == []  # no allowlist: anyone


def test_a_bad_inherited_value_names_the_defaults_file(stacks: Path) -> None:
    (stacks / "defaults" / "qa.yaml").write_text(yaml.safe_dump({"defaults": {"tokens": {"sessionMinutes": 1}}}))
    with pytest.raises(SpecError) as error:
        resolve_spec(spec(), "s", stacks)
    assert "(inherited from stacks/defaults/qa.yaml: defaults.tokens.sessionMinutes)" in str(error.value)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({"defaults": {"hostname": "x"}}, "defaults.hostname: not a key environment defaults may set"),
        ({"defaults": {}, "teamMayOverride": ["access"]}, "teamMayOverride[0]: 'access' is not a key"),
        ({"default": {}}, "default: unknown key"),
        ({"allowedAdminGroups": "admins"}, "allowedAdminGroups: must be a list"),
    ],
)
def test_a_bad_defaults_file_is_refused_naming_it(stacks: Path, document: dict[str, Any], says: str) -> None:
    (stacks / "defaults" / "qa.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(SpecError) as error:
        resolve_spec(spec(), "stacks/Pulumi.b.yaml", stacks)
    assert "stacks/defaults/qa.yaml: " + says in str(error.value)


def test_without_a_defaults_file_a_stack_resolves_as_before(stacks: Path) -> None:
    resolved = resolve_spec(spec(environment="staging"), "s", stacks)
    assert resolved.defaults is None and resolved.inherited == {}
    assert resolved.spec.session_minutes == 720 and resolved.spec.api_server_replicas == 1


def test_the_program_and_validate_resolve_the_same(stacks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The program reads its project's stacks/defaults/; in this project, it declares exactly what validate
    resolved."""
    path = write_stack(stacks, "blue-qa", spec())
    resolved = resolved_from_stack_file(path)
    (stacks.parent / "Pulumi.yaml").write_text("name: airflow-oidc\nruntime: python\nstackConfigDir: stacks\n")
    monkeypatch.chdir(stacks.parent)  # the project is found from the working directory, as `pulumi` finds it
    run = run_program("blue-qa", {CONFIG_KEY: json.dumps(spec())})
    release = run.one("kubernetes:helm.sh/v3:Release")
    fab = release.inputs["values"]["config"]["fab"]
    assert fab["session_max_lifetime_minutes"] == resolved.spec.session_minutes == 600
    assert fab["session_lifetime_minutes"] == resolved.spec.idle_minutes == 30
    assert release.inputs["version"] == resolved.spec.airflow.chartVersion == "1.18.0"
    assert release.inputs["values"]["apiServer"]["replicas"] == 3


# --- new-stack ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [kind_name(model) for model in KINDS])
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_new_stack_writes_a_valid_stack_for_every_kind(
    tmp_path: Path, kind: str, env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stacks = tmp_path / "stacks"
    argv = ["new-stack", "--team", "green", "--env", env, "--idp", kind, "--stacks-dir", str(stacks), "--no-defaults"]
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 0, err
    path = stacks / f"Pulumi.green-{env}.yaml"
    ok, text = check_stack_file(path, check_settings=False)
    assert ok, text
    assert f"({kind}, 3 groups)" in text
    assert f"pulumi stack init green-{env}" in out and f"pulumi preview -s green-{env}" in out
    model = next(model for model in KINDS if kind_name(model) == kind)
    for key in model.PROVIDER_CONFIG:
        assert f"pulumi config set -s green-{env} {key} <value>" in out
    # Editors check it as it is edited: the modelines name the project's stack-file schema, which it passes.
    assert path.read_text().splitlines()[:2] == list(MODELINES)
    schema = json.loads((ROOT / "schema" / "stack-file.schema.json").read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(yaml.safe_load(path.read_text()))) == []
    if model.PROVIDER_CONFIG:  # validate, as the program, wants the settings the printed commands set
        ok, text = check_stack_file(path)
        assert not ok and f"{next(iter(model.PROVIDER_CONFIG))} is not set" in text, text


@pytest.mark.parametrize("kind", [kind_name(model) for model in KINDS])
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_new_stack_passes_the_projects_own_environment_defaults(
    tmp_path: Path, kind: str, env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """What new-stack writes must pass the platform team's real defaults (allowedAdminGroups in prod)."""
    stacks = tmp_path / "stacks"
    shutil.copytree(ROOT / "stacks" / "defaults", stacks / "defaults")
    status = main(["new-stack", "--team", "green", "--env", env, "--idp", kind, "--stacks-dir", str(stacks)])
    _, err = capsys.readouterr()
    assert status == 0, err
    ok, text = check_stack_file(stacks / f"Pulumi.green-{env}.yaml", check_settings=False)
    assert ok, text


def test_new_stack_inherits_the_environment_defaults_and_refuses_to_overwrite(
    stacks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["new-stack", "--team", "green", "--env", "qa", "--idp", "oidc", "--stacks-dir", str(stacks)]
    assert main(argv) == 0
    path = stacks / "Pulumi.green-qa.yaml"
    assert "chartVersion" not in path.read_text()  # left to stacks/defaults/qa.yaml
    assert resolved_from_stack_file(path).spec.airflow.chartVersion == "1.18.0"
    capsys.readouterr()
    assert main(argv) == 1
    assert "exists (--force replaces it)" in capsys.readouterr().err


def test_new_stack_refuses_a_hostname_another_stack_takes(stacks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_stack(stacks, "blue-qa", spec())
    argv = ["new-stack", "--team", "green", "--env", "qa", "--idp", "okta", "--stacks-dir", str(stacks)]
    assert main([*argv, "--hostname", "airflow.blue.example.com"]) == 1
    err = capsys.readouterr().err
    assert "hostname 'airflow.blue.example.com'" in err and "stacks/Pulumi.blue-qa.yaml" in err
    assert (
        err.splitlines()[-1] == "airflow-oidc new-stack: not written; use --hostname (another host for this stack's UI)"
    )
    assert not (stacks / "Pulumi.green-qa.yaml").exists()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with the shipped environment defaults and no stack yet."""
    (tmp_path / "Pulumi.yaml").write_text("name: airflow-oidc\nruntime: python\nstackConfigDir: stacks\n")
    shutil.copytree(ROOT / "stacks" / "defaults", tmp_path / "stacks" / "defaults")
    return tmp_path


KIND_NAMES = [kind_name(model) for model in KINDS]
GROUP_KINDS = [kind_name(model) for model in KINDS if model.GROUPS_BOUND_BY is not None]


def new_stack(project: Path, *args: str) -> list[str]:
    return ["--project-dir", str(project), "new-stack", "--team", "ledger", *args]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_a_teams_next_environment_shares_its_idp_and_groups(
    project: Path, kind: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`new-stack --env prod` after ledger-dev: the same kind and groups, created by at most one stack and
    bound by the other the way the kind binds them, and the output says which."""
    assert main(new_stack(project, "--env", "dev", "--idp", kind)) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(new_stack(project, "--env", "prod")) == 0, capsys.readouterr().err  # the kind from ledger-dev
    out = capsys.readouterr().out
    dev = resolved_from_stack_file(project / "stacks" / "Pulumi.ledger-dev.yaml").spec
    prod = resolved_from_stack_file(project / "stacks" / "Pulumi.ledger-prod.yaml").spec
    assert prod.idp.kind == kind and prod.access == dev.access
    # Provider settings as `pulumi config set` would give them (validate checks them, as the program does).
    for key, value in {
        "OKTA_ORG_NAME": "acme",
        "KEYCLOAK_URL": "https://sso.example.com",
        "ARM_TENANT_ID": "7d1b2c3a-0000-4000-8000-1234567890ab",
        "GOOGLE_PROJECT": "ledger",
    }.items():
        monkeypatch.setenv(key, value)
    assert main(["--project-dir", str(project), "validate"]) == 0, capsys.readouterr().err  # no fleet clash
    model = next(model for model in KINDS if kind_name(model) == kind)
    if model.GROUPS_BOUND_BY is None:
        assert "groups:" not in out
        return
    creators = [spec.environment for spec in (dev, prod) if spec.idp.createGroups]  # type: ignore[union-attr]
    assert creators in (["dev"], [])  # never both
    groups = next(line for line in out.splitlines() if line.startswith("groups: "))
    assert f"ledger-prod binds them {model.GROUPS_BOUND_BY} (idp.createGroups: false)" in groups
    assert ("ledger-dev creates the `access` groups" in groups) == (creators == ["dev"])
    assert "shared with ledger-dev: " in out


@pytest.mark.parametrize("kind", GROUP_KINDS)
def test_two_stacks_creating_one_groups_are_refused_with_the_fix(
    project: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(new_stack(project, "--env", "dev", "--idp", kind, "--groups", "create")) == 0
    capsys.readouterr()
    assert main(new_stack(project, "--env", "prod", "--groups", "create")) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        "airflow-oidc new-stack: not written; use --groups bind "
        "(share the groups stacks/Pulumi.ledger-dev.yaml creates)"
    )
    for line in err[:-1]:  # one line per group, naming it once, the kind's words read as a sentence
        assert line.startswith("stacks/Pulumi.ledger-prod.yaml: ") and line.endswith(
            " is also taken by stacks/Pulumi.ledger-dev.yaml"
        ), line
        assert re.search(r"group '?/?ledger-[a-z-]+(@[a-z.-]+)?'? created (in|at) ", line), line
        assert len(re.findall(r"ledger-(airflow-admins|engineers|analysts)", line)) == 1, line
        assert "tenant the" not in line and ": ledger" not in line.split(": ", 1)[1], line
    assert not (project / "stacks" / "Pulumi.ledger-prod.yaml").exists()


def test_a_kind_without_groups_at_the_idp_refuses_the_groups_flag(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(new_stack(project, "--env", "dev", "--idp", "oidc", "--groups", "create")) == 1
    assert "idp.kind oidc creates no groups at the IdP" in capsys.readouterr().err


def test_an_environment_without_defaults_is_refused_naming_the_known_ones(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(new_stack(project, "--env", "staging", "--idp", "okta")) == 1
    err = capsys.readouterr().err
    assert "environment 'staging' has no defaults file (stacks/defaults/staging.yaml)" in err
    assert "Known environments: dev, prod." in err and "--no-defaults" in err
    assert not (project / "stacks" / "Pulumi.ledger-staging.yaml").exists()
    assert main(new_stack(project, "--env", "staging", "--idp", "okta", "--no-defaults")) == 0
    text = (project / "stacks" / "Pulumi.ledger-staging.yaml").read_text()
    assert "# No stacks/defaults/staging.yaml: the spec model's own defaults apply (--no-defaults)." in text


def test_the_teams_provider_settings_are_copied_and_not_asked_again(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(new_stack(project, "--env", "dev", "--idp", "azuread")) == 0
    dev = project / "stacks" / "Pulumi.ledger-dev.yaml"
    tenant = "11111111-2222-4333-8444-555555555555"
    dev.write_text(dev.read_text().replace("config:\n", f"config:\n  azuread:tenantId: {tenant}\n", 1))
    capsys.readouterr()
    assert main(new_stack(project, "--env", "prod")) == 0
    out = capsys.readouterr().out
    prod = yaml.safe_load((project / "stacks" / "Pulumi.ledger-prod.yaml").read_text())["config"]
    assert prod["azuread:tenantId"] == tenant
    assert "shared with ledger-dev: access, azuread:tenantId" in out
    assert "pulumi config set -s ledger-prod azuread:tenantId" not in out
    assert "pulumi config set -s ledger-prod kubernetes:context <context>" in out


# --- the fleet ------------------------------------------------------------------------------------


def test_a_fleet_with_a_duplicate_hostname_fails_naming_both_files(
    stacks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_stack(stacks, "blue-qa", spec())
    red_idp = {"kind": "oidc", "issuer": "https://idp.example.com", "clientId": "red"}
    second = write_stack(stacks, "red-qa", spec(team="red", idp=red_idp, airflow={"namespace": "red", "tls": {}}))
    second.write_text(second.read_text().replace("tls: {}", "tls: {secretName: tls}"))
    assert main(["validate", str(first), str(second)]) == 1
    out, err = capsys.readouterr()
    assert out.count("ok  ") == 2  # each file is valid on its own
    assert err.strip() == (
        "stacks/Pulumi.red-qa.yaml: hostname 'airflow.blue.example.com' is also taken by stacks/Pulumi.blue-qa.yaml"
    )


def test_the_same_namespace_and_release_in_one_context_clash(stacks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_stack(stacks, "blue-qa", spec(), **{"kubernetes:context": "qa-cluster"})
    red_idp = {"kind": "oidc", "issuer": "https://idp.example.com", "clientId": "red"}
    red = write_stack(
        stacks,
        "red-qa",
        spec(team="red", hostname="airflow.red.example.com", idp=red_idp),
        **{"kubernetes:context": "qa-cluster"},
    )
    assert main(["validate", str(red)]) == 1
    assert capsys.readouterr().err.strip() == (
        "stacks/Pulumi.red-qa.yaml: kube context + namespace + release 'qa-cluster / airflow / airflow' "
        "is also taken by stacks/Pulumi.blue-qa.yaml"
    )


def test_the_same_okta_app_label_and_custom_server_policy_clash(
    stacks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    okta = {"kind": "okta", "authorizationServer": {"mode": "custom"}}
    write_stack(stacks, "blue-qa", spec(idp=okta), **{"okta:orgName": "acme"})
    # Another file for the same team and environment: the same app label; `blue_qa` slugs like `blue-qa`.
    other = write_stack(
        stacks,
        "blue_qa",
        spec(
            idp=okta, hostname="airflow.blue2.example.com", airflow={"namespace": "blue2", "tls": {"secretName": "t"}}
        ),
        **{"okta:orgName": "acme"},
    )
    assert main(["validate", str(other)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "stacks/Pulumi.blue_qa.yaml: Okta app label at https://acme.okta.com 'Airflow (blue-qa)' "
        "is also taken by stacks/Pulumi.blue-qa.yaml",
        "stacks/Pulumi.blue_qa.yaml: Okta policy name on https://acme.okta.com authorization server default "
        "'airflow-blue_qa' is also taken by stacks/Pulumi.blue-qa.yaml",
        # Neither was given a policy slot: both would ask Okta for priorities 1 and 2.
        "stacks/Pulumi.blue_qa.yaml: Okta policy slot on https://acme.okta.com authorization server default "
        "'1' is also taken by stacks/Pulumi.blue-qa.yaml",
        # Both create the team's groups (createGroups defaults to true): Okta keeps one group per name.
        "stacks/Pulumi.blue_qa.yaml: Okta group 'blue-airflow-admins' created at https://acme.okta.com "
        "is also taken by stacks/Pulumi.blue-qa.yaml",
        "stacks/Pulumi.blue_qa.yaml: Okta group 'blue-users' created at https://acme.okta.com "
        "is also taken by stacks/Pulumi.blue-qa.yaml",
    ]


def test_the_example_fleet_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    assert "also taken by" not in capsys.readouterr().err


def test_validate_notes_a_repeated_default_and_still_exits_0(stacks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_stack(stacks, "blue-qa", spec(clientSecret={"rotationDays": 45}))
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ok  ")
    assert captured.err == (
        "note: stacks/Pulumi.blue-qa.yaml: airflow-oidc:spec.clientSecret.rotationDays: 45 repeats the default of "
        "stacks/defaults/qa.yaml: not an override, but pinned here; remove the key so this stack follows a later "
        "change of the default\n"
    )
