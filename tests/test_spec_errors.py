"""Bad specs: each is the smallest change to a valid base spec and must be refused with an error that
names the stack file and the exact key path, by `spec_from_stack_file` and by the real program under
mocks, before a single resource is declared. The whole corpus, provider settings, environment names,
plain-text secrets and the Admin allowlist included, then goes through `validate`, `plan` and the
program at once: the same verdict, the same key, the same text.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import traceback
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.spec import CONFIG_KEY, SpecError, parse_spec
from components.stack_config import spec_from_stack_file
from tests.conftest import ROOT
from tests.mock_engine import Run, run_program

STACK = "badstack"
SOURCE = f"stacks/Pulumi.{STACK}.yaml"
MISSING = object()
"""A key (or the whole spec) left out."""

BASE: dict[str, Any] = {
    "environment": "dev",
    "hostname": "airflow.example.com",
    "idp": {"kind": "okta", "authorizationServer": {"mode": "custom"}},
    "access": [
        {"group": "airflow-admins", "role": "Admin"},
        {"group": "airflow-users", "role": "User"},
        {"group": "airflow-viewers", "role": "Viewer"},
    ],
    "tokens": {"accessTokenMinutes": 15},
    "airflow": {"tls": {"secretName": "airflow-tls"}},
}
OKTA_CONFIG = {"okta:orgName": "acme", "okta:baseUrl": "okta.com"}
"""Beside the spec, so a run of BASE deploys and each case differs from a deploying run by its change."""
OIDC_IDP: dict[str, Any] = {"kind": "oidc", "issuer": "https://idp.example.com", "clientId": "airflow"}
KEYCLOAK_IDP: dict[str, Any] = {"kind": "keycloak", "url": "https://sso.example.com", "realm": "corp"}
GOOGLE_IDP: dict[str, Any] = {
    "kind": "google",
    "clientId": "1234-abc.apps.googleusercontent.com",
    "clientSecret": "google-client-secret",
    "domain": "example.com",
}
GOOGLE_ACCESS = [{"group": "airflow-viewers@example.com", "role": "Viewer"}]


def changed(*edits: tuple[str, Any]) -> dict[str, Any]:
    """BASE with each (key path, value) applied: `access[2].role`; an index one past the end appends."""
    spec = copy.deepcopy(BASE)
    for path, value in edits:
        parts: list[str | int] = [int(part) if part.isdigit() else part for part in re.findall(r"[^.\[\]]+", path)]
        parent: Any = spec
        for part in parts[:-1]:
            parent = parent.setdefault(part, {}) if isinstance(part, str) else parent[part]
        last = parts[-1]
        if value is MISSING:
            del parent[last]
        elif isinstance(last, int) and last == len(parent):
            parent.append(value)
        else:
            parent[last] = value
    return spec


def key(path: str = "") -> str:
    """The key path as errors spell it: `airflow-oidc:spec.access[2].role`."""
    return CONFIG_KEY + (path if not path or path.startswith("[") else "." + path)


CASES = [
    # hostname
    pytest.param(
        changed(("hostname", "http://airflow.example.com")),
        key("hostname"),
        "http is allowed only for localhost or 127.0.0.1",
        id="http-non-loopback-host",
    ),
    pytest.param(
        changed(("hostname", "*.example.com")), key("hostname"), "wildcard hosts are refused", id="wildcard-host"
    ),
    pytest.param(
        changed(("hostname", "airflow.example.com/ui")),
        key("hostname"),
        "is not host[:port] (no path, no query)",
        id="host-with-path",
    ),
    pytest.param(
        changed(("hostname", "Airflow.example.com")), key("hostname"), "is not a host name", id="host-upper-case"
    ),
    pytest.param(changed(("hostname", MISSING)), key("hostname"), "required key is missing", id="hostname-missing"),
    pytest.param(
        changed(("environment", MISSING)), key("environment"), "required key is missing", id="environment-missing"
    ),
    pytest.param(changed(("environment", "Prod")), key("environment"), "'Prod' does not match", id="environment-case"),
    # access
    pytest.param(
        changed(("access[3]", {"group": "airflow-users", "role": "Op"})),
        key("access[3].group"),
        "'airflow-users' is mapped twice (also access[1])",
        id="group-mapped-twice",
    ),
    pytest.param(
        changed(("access[2].role", "Public")),
        key("access[2].role"),
        "'Public' is Airflow's role for anonymous requests",
        id="role-public",
    ),
    pytest.param(
        changed(("access[2].role", "Superuser")),
        key("access[2].role"),
        "'Superuser' is not one of Admin, Op, User, Viewer",
        id="role-superuser",
    ),
    pytest.param(
        changed(("access[0].group", "airflow-admins ")),
        key("access[0].group"),
        "leading or trailing spaces",
        id="group-trailing-space",
    ),
    pytest.param(changed(("access", [])), key("access"), "at least 1 item", id="access-empty"),
    pytest.param(changed(("access", MISSING)), key("access"), "required key is missing", id="access-missing"),
    # unknown keys
    pytest.param(changed(("defaultrole", "Viewer")), key("defaultrole"), "unknown key", id="unknown-top-level-key"),
    pytest.param(
        changed(("idp.authorizationServer.idd", "aus1")),
        key("idp.authorizationServer.idd"),
        "unknown key",
        id="unknown-nested-key",
    ),
    # A key spelled like the union tag stays in the path (it used to be reported at `idp`).
    pytest.param(changed(("idp.okta", {})), key("idp.okta"), "unknown key", id="unknown-key-named-like-tag"),
    # idp
    pytest.param(
        changed(("idp.kind", "azure")), key("idp.kind"), "'azure' is not one of okta, oidc", id="unknown-idp-kind"
    ),
    pytest.param(changed(("idp.kind", MISSING)), key("idp.kind"), "required key is missing", id="idp-kind-missing"),
    pytest.param(
        changed(("idp.authorizationServer.mode", "private")),
        key("idp.authorizationServer.mode"),
        "'private' is not one of org, custom",
        id="unknown-authorization-server-mode",
    ),
    pytest.param(
        changed(("idp.orgUrl", "http://acme.okta.com")),
        key("idp.orgUrl"),
        "is not an https origin",
        id="okta-org-url-http",
    ),
    pytest.param(
        changed(("idp", {**OIDC_IDP, "issuer": "http://idp.example.com"})),
        key("idp.issuer"),
        "http is allowed only for localhost or 127.0.0.1",
        id="oidc-issuer-http-public-host",
    ),
    pytest.param(
        changed(("idp", {**OIDC_IDP, "scopes": ["email", "profile"]})),
        key("idp.scopes"),
        "scopes must include 'openid'",
        id="oidc-scopes-without-openid",
    ),
    pytest.param(
        changed(("idp", {"kind": "keycloak", "url": "https://sso.example.com"})),
        key("idp.realm"),
        "required key is missing",
        id="keycloak-realm-missing",
    ),
    pytest.param(
        changed(("idp", KEYCLOAK_IDP), ("access[1].group", "/corp//airflow-users")),
        key("access[1].group"),
        "'/corp//airflow-users' is not a Keycloak group path",
        id="keycloak-group-path-empty-segment",
    ),
    pytest.param(
        changed(("idp", KEYCLOAK_IDP), ("defaultRole", "Viewer"), ("signIn.extraGroups", ["/corp/stakeholders/"])),
        key("signIn.extraGroups[0]"),
        "'/corp/stakeholders/' is not a Keycloak group path",
        id="keycloak-extra-group-trailing-slash",
    ),
    pytest.param(
        changed(("idp", KEYCLOAK_IDP), ("access[1].group", "/corp/ airflow-users")),
        key("access[1].group"),
        "the group name ' airflow-users' has leading or trailing spaces",
        id="keycloak-group-path-segment-spaces",
    ),
    pytest.param(
        changed(("idp", KEYCLOAK_IDP), ("access[1].group", "/airflow-admins")),
        key("access[1].group"),
        "'/airflow-admins' is the Keycloak group /airflow-admins again (also airflow-oidc:spec.access[0].group)",
        id="keycloak-bare-name-and-its-path",
    ),
    pytest.param(
        changed(("idp", {**KEYCLOAK_IDP, "createRealm": True, "createGroups": False})),
        key("idp.createGroups"),
        "the realm is created by this stack, so it holds no groups to look up",
        id="keycloak-lookup-in-created-realm",
    ),
    pytest.param(
        changed(("idp", {**KEYCLOAK_IDP, "url": "http://sso.example.com"})),
        key("idp.url"),
        "http is allowed only for localhost or 127.0.0.1",
        id="keycloak-url-http-public-host",
    ),
    # tokens
    pytest.param(
        changed(("idp.authorizationServer.mode", "org")),
        key("tokens.accessTokenMinutes"),
        "org authorization server has a fixed 60-minute access token",
        id="org-server-access-token-minutes",
    ),
    pytest.param(
        changed(("tokens.accessTokenMinutes", 4)),
        key("tokens.accessTokenMinutes"),
        "greater than or equal to 5",
        id="access-token-minutes-4",
    ),
    pytest.param(
        changed(("tokens.accessTokenMinutes", 1441)),
        key("tokens.accessTokenMinutes"),
        "less than or equal to 1440",
        id="access-token-minutes-1441",
    ),
    # who may sign in
    pytest.param(
        changed(("defaultRole", "Viewer")),
        key("defaultRole"),
        "would apply to no one",
        id="default-role-without-audience",
    ),
    pytest.param(
        changed(("defaultRole", "Public"), ("signIn.everyone", True)),
        key("defaultRole"),
        "'Public' is not one of Admin, Op, User, Viewer",
        id="default-role-public",
    ),
    pytest.param(
        changed(("signIn.everyone", True)), key("signIn"), "defaultRole is null", id="everyone-without-default-role"
    ),
    pytest.param(
        changed(("defaultRole", "Viewer"), ("signIn.extraGroups", ["stakeholders", "airflow-users"])),
        key("signIn.extraGroups[1]"),
        "'airflow-users' is already an `access` group",
        id="extra-groups-overlap-access",
    ),
    # airflow
    pytest.param(
        changed(("environment", "prod"), ("airflow.database", {"bundled": True})),
        key("airflow.database.bundled"),
        "prod refuses the bundled Postgres",
        id="prod-bundled-database",
    ),
    pytest.param(
        changed(("environment", "prod")),
        key("airflow.database"),
        "prod needs an external database",
        id="prod-without-database",
    ),
    pytest.param(
        changed(("airflow.database", {"secretName": "db", "bundled": True})),
        key("airflow.database"),
        "set exactly one of secretName",
        id="database-both",
    ),
    # In an environment whose defaults give no certificate issuer (dev's give one).
    pytest.param(
        changed(("environment", "staging"), ("airflow.tls", MISSING)),
        key("airflow.tls"),
        "is served over https",
        id="public-host-without-tls",
    ),
    pytest.param(
        changed(("environment", "staging"), ("airflow.tls", {})),
        key("airflow.tls"),
        "set secretName or issuer",
        id="tls-empty",
    ),
    pytest.param(
        changed(("airflow.values", {"apiServer": {"env": []}})),
        key("airflow.values"),
        "'apiServer.env' is owned by the program",
        id="values-api-server-env",
    ),
    pytest.param(
        changed(("airflow.values", {"config": {"api": {"base_url": "https://x.example.com"}}})),
        key("airflow.values"),
        "'config.api.base_url' is owned by the program",
        id="values-base-url",
    ),
    pytest.param(
        changed(("airflow.values", {"secret": []})),
        key("airflow.values"),
        "'secret' is owned by the program",
        id="values-secret",
    ),
    pytest.param(
        changed(("airflow.values", {"ingress": {"web": {"enabled": True}}})),
        key("airflow.values"),
        "'ingress' is owned by the program",
        id="values-ingress",
    ),
    pytest.param(
        changed(("airflow.image.digest", "sha256:abc")),
        key("airflow.image.digest"),
        "'sha256:abc' does not match",
        id="bad-image-digest",
    ),
    pytest.param(
        changed(("airflow.image.tag", "2.10.5")),
        key("airflow.image.tag"),
        "'2.10.5' does not match",
        id="airflow-2-image",
    ),
    pytest.param(
        changed(("airflow.namespace", "Airflow")),
        key("airflow.namespace"),
        "'Airflow' does not match",
        id="namespace-upper-case",
    ),
    pytest.param(
        changed(("clientSecret.rotationDays", 0)),
        key("clientSecret.rotationDays"),
        "greater than or equal to 1",
        id="rotation-days-0",
    ),
    # kind google
    pytest.param(
        changed(("idp", {k: v for k, v in GOOGLE_IDP.items() if k != "clientSecret"}), ("access", GOOGLE_ACCESS)),
        key("idp.clientSecret"),
        "required key is missing",
        id="google-without-client-secret",
    ),
    pytest.param(
        changed(("idp", {**GOOGLE_IDP, "domain": "https://example.com"}), ("access", GOOGLE_ACCESS)),
        key("idp.domain"),
        "is not a domain name",
        id="google-domain-not-a-domain",
    ),
    pytest.param(
        changed(("idp", {**GOOGLE_IDP, "createGroups": True}), ("access", GOOGLE_ACCESS)),
        key("idp.customerId"),
        "createGroups: true needs the Workspace customer id",
        id="google-create-groups-without-customer-id",
    ),
    pytest.param(
        changed(("idp", GOOGLE_IDP), ("access", [*GOOGLE_ACCESS, {"group": "airflow-users", "role": "User"}])),
        key("access[1].group"),
        "'airflow-users' is not a group email",
        id="google-group-not-an-email",
    ),
    # the spec as a whole
    pytest.param("airflow", key(), "must be a mapping, got str", id="spec-is-a-string"),
    pytest.param([BASE], key(), "must be a mapping, got list", id="spec-is-a-list"),
    pytest.param(MISSING, key(), "required config key is missing", id="spec-key-missing"),
]


def write_stack_file(directory: Path, raw: Any) -> Path:
    """A stack file `stacks/Pulumi.badstack.yaml` carrying `raw` as the spec (or no spec: MISSING)."""
    config: dict[str, Any] = {"kubernetes:context": "test"}
    if raw is not MISSING:
        config[CONFIG_KEY] = raw
    path = directory / "stacks" / f"Pulumi.{STACK}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


def file_error(directory: Path, raw: Any) -> SpecError:
    """What `airflow-oidc validate` reports for a stack file with this spec."""
    with pytest.raises(SpecError) as raised:
        spec_from_stack_file(write_stack_file(directory, raw))
    return raised.value


def program_error(raw: Any, secret: bool = False) -> tuple[pulumi.RunError, Run]:
    """Run the real program with this spec; return its error and what it declared before failing.

    The mock runner (`@pulumi.runtime.test`) re-raises the program's exception unwrapped.
    """
    config = dict(OKTA_CONFIG) if raw is MISSING else {**OKTA_CONFIG, CONFIG_KEY: json.dumps(raw)}
    run = Run(stack=STACK)
    with pytest.raises(pulumi.RunError) as raised:
        run_program(STACK, config, [CONFIG_KEY] if secret else None, run=run)
    return raised.value, run


def problem_lines(text: str, key_path: str) -> list[str]:
    """The error's lines about exactly `key_path` (not a longer path that starts with it); a stack file's
    line number may follow the file's name (`stacks/Pulumi.x.yaml:7: ...`)."""
    about = re.compile(re.escape(SOURCE) + r"(:\d+)?: " + re.escape(key_path) + ": ")
    return [line for line in text.splitlines() if about.match(line)]


def without_lines(text: str) -> str:
    """The error as the program reports it from config alone (no stack file to count lines in)."""
    return re.sub(r"^(" + re.escape(SOURCE) + r"):\d+: ", r"\1: ", text, flags=re.MULTILINE)


def test_base_spec_is_valid_and_deploys(tmp_path: Path) -> None:
    spec_from_stack_file(write_stack_file(tmp_path, BASE))
    assert run_program(STACK, {**OKTA_CONFIG, CONFIG_KEY: json.dumps(BASE)}).resources


def test_cases_are_distinct_and_enough() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 25


@pytest.mark.parametrize(("raw", "key_path", "reason"), CASES)
def test_stack_file_error_names_file_key_and_reason(tmp_path: Path, raw: Any, key_path: str, reason: str) -> None:
    error = file_error(tmp_path, raw)
    lines = problem_lines(str(error), key_path)
    assert lines, f"no problem reported at {key_path}:\n{error}"
    assert any(reason in line for line in lines), f"{reason!r} not in:\n{error}"
    assert error.source == SOURCE
    assert len(error.problems) == 1, f"one change, one problem:\n{error}"


@pytest.mark.parametrize(("raw", "key_path", "reason"), CASES)
def test_program_refuses_before_declaring_anything(raw: Any, key_path: str, reason: str) -> None:
    error, run = program_error(raw)
    # Exactly RunError, raised by read_program_inputs: not a subclass such as pulumi's ConfigTypeError.
    assert type(error) is pulumi.RunError
    assert any(reason in line for line in problem_lines(str(error), key_path)), str(error)
    assert str(error) == str(_spec_error(raw)), "the program and the CLI must report the same text"
    assert run.resources == []


def _spec_error(raw: Any) -> SpecError:
    with pytest.raises(SpecError) as raised:
        parse_spec(None if raw is MISSING else raw, SOURCE)
    return raised.value


SEVERAL = changed(
    ("environment", "Prod"),
    ("hostname", "*.example.com"),
    ("access[2].role", "Public"),
    ("tokenz", {"accessTokenMinutes": 15}),
    ("airflow.image.digest", "sha256:abc"),
)
SEVERAL_KEYS = ["environment", "hostname", "access[2].role", "tokenz", "airflow.image.digest"]


def test_several_problems_are_reported_at_once(tmp_path: Path) -> None:
    error = file_error(tmp_path, SEVERAL)
    assert len(error.problems) == len(SEVERAL_KEYS), str(error)
    for path in SEVERAL_KEYS:
        assert len(problem_lines(str(error), key(path))) == 1, f"{path} not reported once:\n{error}"
    run_error, run = program_error(SEVERAL)
    assert str(run_error) == without_lines(str(error))
    assert run.resources == []


SECRET = "s3cr3t-DO-NOT-PRINT-7f41c2"


@pytest.mark.parametrize(
    ("raw", "key_path"),
    [
        pytest.param(
            changed(("idp", {**OIDC_IDP, "clientSecret": SECRET, "scopes": ["email"]})),
            key("idp.scopes"),
            id="field-error-beside-the-secret",
        ),
        # A model-level check fails after the secret was validated: pydantic's own error would
        # print the whole input, secret included.
        pytest.param(
            changed(("idp", {**OIDC_IDP, "clientSecret": SECRET}), ("defaultRole", "Viewer")),
            key("defaultRole"),
            id="model-error-with-the-secret-in-input",
        ),
        pytest.param(
            changed(("idp", {**OIDC_IDP, "clientSecret": [SECRET]})), key("idp.clientSecret"), id="secret-is-a-list"
        ),
        pytest.param(
            changed(("idp", {**OIDC_IDP, "clientSecret": {"value": SECRET}})),
            key("idp.clientSecret"),
            id="secret-is-a-mapping",
        ),
        pytest.param(
            changed(("idp", {"kind": "okta", "clientSecret": SECRET})),
            key("idp.clientSecret"),
            id="secret-under-the-wrong-kind",
        ),
        pytest.param(
            changed(("idp", {**GOOGLE_IDP, "clientSecret": SECRET, "createGroups": True}), ("access", GOOGLE_ACCESS)),
            key("idp.customerId"),
            id="google-check-after-the-secret",
        ),
    ],
)
def test_secret_never_appears_in_the_error(tmp_path: Path, raw: Any, key_path: str) -> None:
    error = file_error(tmp_path, raw)
    assert problem_lines(str(error), key_path), str(error)
    run_error, run = program_error(raw, secret=True)
    assert run.resources == []
    for text in (
        str(error),
        "".join(traceback.format_exception(error)),
        str(run_error),
        "".join(traceback.format_exception(run_error)),
    ):
        assert SECRET not in text


# --- errors that teach: the key meant, the line, the command ---------------------------------------


@pytest.mark.parametrize(
    ("raw", "key_path", "meant"),
    [
        pytest.param(changed(("acess", []), ("access", MISSING)), "acess", "access", id="top-level-typo"),
        pytest.param(changed(("tokenz", {})), "tokenz", "tokens", id="top-level-letter-swapped"),
        pytest.param(changed(("airflow.namspace", "x")), "airflow.namspace", "namespace", id="nested-typo"),
        pytest.param(changed(("defaultrole", "Viewer")), "defaultrole", "defaultRole", id="case-only"),
        pytest.param(
            changed(("idp", {"kind": "azuread", "tenantID": "00000000-0000-4000-8000-000000000000"})),
            "idp.tenantID",
            "tenantId",
            id="kind-key-case",
        ),
        pytest.param(
            changed(("idp.authorizationServer.idd", "aus1")), "idp.authorizationServer.idd", "id", id="union-variant"
        ),
        pytest.param(
            changed(("idp", {**KEYCLOAK_IDP, "creatGroups": True})), "idp.creatGroups", "createGroups", id="kind-typo"
        ),
    ],
)
def test_an_unknown_key_says_which_key_it_likely_meant(tmp_path: Path, raw: Any, key_path: str, meant: str) -> None:
    error = file_error(tmp_path, raw)
    lines = problem_lines(str(error), key(key_path))
    assert lines and lines[0].endswith(f": unknown key; did you mean `{meant}`?"), str(error)


def test_an_unknown_key_far_from_any_lists_the_keys_allowed_there(tmp_path: Path) -> None:
    error = file_error(tmp_path, changed(("tokens.zzz", 1)))
    assert problem_lines(str(error), key("tokens.zzz")) == [
        f"{SOURCE}:19: {key('tokens.zzz')}: unknown key (keys here: `accessTokenMinutes`, `sessionMinutes`, "
        "`idleMinutes`)"
    ], str(error)


@pytest.mark.parametrize(
    ("raw", "key_path", "written"),
    [
        pytest.param(changed(("hostname", "*.example.com")), "hostname", "hostname:", id="a-value"),
        pytest.param(changed(("access[2].role", "Boss")), "access[2].role", "role: Boss", id="a-list-item"),
        pytest.param(changed(("airflow.tls", MISSING)), "airflow.tls", "airflow:", id="missing-under-parent"),
        pytest.param(changed(("idp.orgUrl", "http://x")), "idp.orgUrl", "orgUrl:", id="a-kind-key"),
    ],
)
def test_each_problem_names_the_line_of_its_key(tmp_path: Path, raw: Any, key_path: str, written: str) -> None:
    """`file:LINE: key: problem`, the line where the key is written (or, when missing, its parent)."""
    error = file_error(tmp_path, raw)
    [line] = problem_lines(str(error), key(key_path))
    number = int(line.split(":")[1])
    text = (tmp_path / "stacks" / f"Pulumi.{STACK}.yaml").read_text().splitlines()
    assert text[number - 1].strip().lstrip("- ").startswith(written), (number, text)


def test_a_missing_secret_says_the_command_that_sets_it(tmp_path: Path) -> None:
    google = {key: value for key, value in GOOGLE_IDP.items() if key != "clientSecret"}
    error = file_error(tmp_path, changed(("idp", google), ("access", GOOGLE_ACCESS)))
    assert [problem.split(": ", 1)[1] for problem in error.problems] == [
        "required key is missing: it is a secret, set it with "
        "`pulumi config set --secret --path 'airflow-oidc:spec.idp.clientSecret' <value>`"
    ]


def test_the_program_names_the_same_lines_as_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `pulumi up` the config comes from the project's stack file: the program counts its lines too."""
    (tmp_path / "Pulumi.yaml").write_text("name: airflow-oidc\nruntime: python\nstackConfigDir: stacks\n")
    raw = changed(("acess", []), ("hostname", "*.example.com"))
    error = file_error(tmp_path, raw)
    monkeypatch.chdir(tmp_path)
    run_error, run = program_error(raw)
    assert str(run_error) == str(error) and f"{SOURCE}:5: " in str(error) and run.resources == []


# --- one corpus, three readers: validate, plan and the program -------------------------------------

TENANT = "7d1b2c3a-0000-4000-8000-1234567890ab"
ENTRA = changed(("idp", {"kind": "azuread"}), ("tokens", MISSING))
PROD = changed(
    ("environment", "prod"),
    ("airflow.database", {"secretName": "airflow-metadata-db"}),
    ("access[0].group", "payments-airflow-admins"),  # prod's allowlist: *-airflow-admins
)

CONFIG_CASES = [
    # Each: the spec, the provider settings beside it, the key the refusal names, what it says.
    pytest.param(
        changed(("environment", "production")),
        OKTA_CONFIG,
        key("environment"),
        "did you mean 'prod'?",
        id="environment-production",
    ),
    pytest.param(changed(("environment", "prd")), OKTA_CONFIG, key("environment"), "did you mean 'prod'?", id="prd"),
    pytest.param(
        changed(("environment", "develop")), OKTA_CONFIG, key("environment"), "did you mean 'dev'?", id="develop"
    ),
    pytest.param(BASE, {}, "okta:orgName", "is not set: set it", id="okta-org-unset"),
    pytest.param(
        changed(("idp.orgUrl", "https://other.okta.com")),
        OKTA_CONFIG,
        key("idp.orgUrl"),
        "is another Okta org than okta:orgName/okta:baseUrl (https://acme.okta.com)",
        id="okta-org-split",
    ),
    pytest.param(ENTRA, {}, "azuread:tenantId", "is not set: set it", id="entra-tenant-unset"),
    pytest.param(
        ENTRA,
        {"azuread:tenantId": "contoso.onmicrosoft.com"},
        "azuread:tenantId",
        "'contoso.onmicrosoft.com' is not a tenant id (a GUID)",
        id="entra-tenant-domain",
    ),
    pytest.param(
        changed(("idp", {"kind": "azuread", "tenantId": TENANT}), ("tokens", MISSING)),
        {"azuread:tenantId": "11111111-2222-4333-8444-555555555555"},
        key("idp.tenantId"),
        "differs from azuread:tenantId (or ARM_TENANT_ID) '11111111-2222-4333-8444-555555555555'",
        id="entra-tenant-split",
    ),
    pytest.param(
        changed(("idp", {"kind": "keycloak", "realm": "corp"})),
        {},
        "keycloak:url",
        "is not set: set it",
        id="keycloak-url-unset",
    ),
    pytest.param(
        changed(("idp", {**KEYCLOAK_IDP, "url": "https://sso.example.com/auth"})),
        {"keycloak:url": "https://sso.example.com"},
        key("idp.url"),
        "are one server under two base paths",
        id="keycloak-url-split",
    ),
    pytest.param(
        changed(("idp", {**GOOGLE_IDP, "clientSecret": {"secure": "AAAB"}}), ("access", GOOGLE_ACCESS)),
        {},
        "gcp:project",
        "is not set: set it",
        id="google-project-unset",
    ),
    pytest.param(
        changed(("idp", {**OIDC_IDP, "clientSecret": SECRET})),
        {},
        key("idp.clientSecret"),
        "a secret given in plain text: encrypt it in the stack file with "
        "`pulumi config set --secret --path 'airflow-oidc:spec.idp.clientSecret' <value>`",
        id="secret-in-plain-text",
    ),
    pytest.param(
        changed(("idp", {**GOOGLE_IDP, "clientSecret": SECRET}), ("access", GOOGLE_ACCESS)),
        {"gcp:project": "p"},
        key("idp.clientSecret"),
        "a secret given in plain text",
        id="google-secret-in-plain-text",
    ),
    pytest.param(
        {**PROD, "access": [{"group": "contractors", "role": "Admin"}]},
        OKTA_CONFIG,
        key("access[0].role"),
        "Admin for 'contractors', which stacks/defaults/prod.yaml does not allow",
        id="prod-admin-outside-the-allowlist",
    ),
    pytest.param(
        {**PROD, "serviceAccounts": [{"name": "release", "role": "Admin"}]},
        OKTA_CONFIG,
        key("serviceAccounts[0].role"),
        "Admin for the service account 'release', which stacks/defaults/prod.yaml does not allow",
        id="prod-service-account-admin",
    ),
]


def corpus() -> list[tuple[str, Any, dict[str, str], str, str]]:
    """Every bad input of this module: (id, spec, provider settings, key, what the refusal says)."""
    cases = [(case.id, *case.values[:1], OKTA_CONFIG, *case.values[1:]) for case in CASES]
    cases += [(case.id, *case.values) for case in CONFIG_CASES]
    return [(str(id_), raw, config, key_path, reason) for id_, raw, config, key_path, reason in cases]


def test_the_corpus_covers_every_check() -> None:
    ids = [case[0] for case in corpus()]
    assert len(ids) == len(set(ids)) and len(ids) >= 60


def test_validate_plan_and_the_program_refuse_the_corpus_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole corpus, each case a stack file of one project (its real environment defaults): `validate`,
    `plan` (one worker for them all) and the program under mocks each refuse it, naming the same key with
    the same text, and nothing is declared."""
    from components.cli import check_stack_file
    from components.plan import plan
    from tests.mock_engine import run_stack_file

    root = tmp_path / "project"
    (root / "stacks").mkdir(parents=True)
    shutil.copytree(ROOT / "stacks" / "defaults", root / "stacks" / "defaults")
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, root / name)
    (root / "components").symlink_to(ROOT / "components")
    (root / "policy").symlink_to(ROOT / "policy")
    for variable in ("OKTA_ORG_NAME", "OKTA_BASE_URL", "ARM_TENANT_ID", "KEYCLOAK_URL", "GOOGLE_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(root)
    files = {}
    for id_, raw, config, _, _ in corpus():
        path = root / "stacks" / f"Pulumi.bad-{id_}.yaml"
        document = {**config, "kubernetes:context": "test"} | ({} if raw is MISSING else {CONFIG_KEY: raw})
        path.write_text(yaml.safe_dump({"config": document}, sort_keys=False))
        files[id_] = path
    planned = plan(list(files.values()), None, root)
    assert planned.head == {} and planned.status == 2
    plan_errors = {}
    for error in planned.errors:
        text = error.removeprefix("this change: ")
        plan_errors[re.sub(r"(:\d+)?: .*", "", text.splitlines()[0])] = text

    wrong: list[str] = []
    for id_, _, _, key_path, reason in corpus():
        source = f"stacks/Pulumi.bad-{id_}.yaml"
        # `file[:LINE]: key: problem`; a provider setting's own message starts with its key (`okta:orgName is…`).
        about = re.compile(re.escape(source) + r"(:\d+)?: " + re.escape(key_path) + "[: ].*" + re.escape(reason))
        ok, validated = check_stack_file(files[id_])
        run = Run(stack=f"bad-{id_}")
        try:
            run_stack_file(files[id_], run=run)
            programmed = "(the program declared it)"
        except pulumi.RunError as error:
            programmed = str(error)
        planned_text = plan_errors.get(source, "(plan found no error)")
        for reader, text in (("validate", validated), ("the program", programmed), ("plan", planned_text)):
            if not any(about.match(line) for line in text.splitlines()):
                wrong.append(f"{id_}: {reader} does not refuse it at {key_path} ({reason!r}):\n{text}")
        if ok:
            wrong.append(f"{id_}: validate says ok")
        if run.resources:
            wrong.append(f"{id_}: the program declared {len(run.resources)} resources before refusing")
        if not (validated == programmed == planned_text):
            wrong.append(f"{id_}: the three texts differ:\n{validated}\n---\n{programmed}\n---\n{planned_text}")
    assert not wrong, "\n\n".join(wrong)
