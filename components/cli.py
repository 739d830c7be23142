"""The `airflow-oidc` command: validate stack files, print the spec's JSON Schema or its Markdown reference.

airflow-oidc validate [STACK_FILE ...]   # default: every stacks/Pulumi.*.yaml
airflow-oidc schema                      # JSON Schema of `airflow-oidc:spec`, for editors
airflow-oidc reference [--update docs/reference.md]
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from components import new_stack as new_stack_command
from components import plan as plan_command
from components import validate_report as report
from components.fleet import fleet_clash_list, fleet_of
from components.project import Project, ProjectNotFoundError, find_project
from components.spec import CONFIG_KEY, Spec, json_schema
from components.stack_files import check_stack_file, shown_name, stack_notes

REFERENCE_BEGIN = "<!-- spec-reference:begin -->"
REFERENCE_END = "<!-- spec-reference:end -->"
REGENERATE = "reference --update docs/reference.md"
"""The arguments that rewrite the reference in docs/reference.md (run from the project root)."""


# --- validate -------------------------------------------------------------------------------------


def validate(paths: Sequence[Path], project: Project | None = None, form: str = "text") -> int:
    """Validate each stack file's spec: `ok` lines on stdout, problems on stderr; 1 if any file is bad.
    No file given: every stack file of the project (found from the working directory unless given).
    `form` json or sarif: one document on stdout instead (components/validate_report.py).

    Then the fleet (components/fleet.py): the files and the other stack files beside them must not
    share a hostname, a kube context + namespace + release, or a name at the IdP.
    """
    given = list(paths)
    if not paths:
        project = project or find_project()
        paths = project.stack_files()
        if not paths:
            print(f"airflow-oidc: no stack files (Pulumi.*.yaml) in {project.stacks_dir}", file=sys.stderr)
            return 1
    checked = []
    for path in paths:
        ok, text = check_stack_file(path)
        checked.append(report.Checked(path, shown_name(path), ok, text))
        if form == "text":
            print(text, file=sys.stdout if ok else sys.stderr)
            for note in stack_notes(path) if ok else []:
                print(note, file=sys.stderr)  # not a problem: the exit status stays 0
    clashes = fleet_clash_list(fleet_of(paths), only=given or None)
    if form == "text":
        for clash in clashes:
            print(clash, file=sys.stderr)
    else:
        findings = [finding for item in checked for finding in report.findings_of(item)]
        findings += report.clash_findings(clashes, {item.file: item.path for item in checked})
        if form == "json":
            print(report.render_json(checked, findings))
        else:
            uris = {item.file: artifact_uri(item.path, project) for item in checked}
            print(report.render_sarif(findings, lambda file: uris.get(file, file), version()))
    return 1 if any(not item.ok for item in checked) or clashes else 0


def artifact_uri(path: Path, project: Project | None) -> str:
    """Where a SARIF consumer finds the file: relative to the project (the repository) root, else to the
    working directory, else absolute."""
    for base in (project.root if project else None, Path.cwd()):
        if base is not None:
            try:
                return path.resolve().relative_to(base.resolve()).as_posix()
            except ValueError:
                continue
    return path.resolve().as_uri()


# --- reference ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceRow:
    """One spec key in the reference table."""

    key: str
    type: str
    default: str
    description: str


def render_reference() -> str:
    """Markdown table of every spec key (dotted path, type, default, description), from the models."""
    lines = [
        f"<!-- generated from components/spec.py by `airflow-oidc {REGENERATE}`: edit the models, not this table -->",
        "| Key | Type | Default | Description |",
        "| --- | --- | --- | --- |",
    ]
    for row in reference_rows(Spec):
        cells = (f"`{row.key}`", row.type, row.default, row.description)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def reference_rows(model: type[BaseModel], prefix: str = "") -> list[ReferenceRow]:
    """Rows for every key of `model` and, depth first, of the models inside it."""
    rows: list[ReferenceRow] = []
    for name, field in model.model_fields.items():
        rows.extend(_field_rows(prefix + (field.alias or name), field))
    return rows


def _field_rows(key: str, field: FieldInfo, condition: str = "") -> list[ReferenceRow]:
    """The field's row, then the rows of the model(s) it holds: itself, its list items or its union's variants."""
    members, _ = _union_members(field.annotation)
    inner = members[0] if len(members) == 1 else None
    item = get_args(inner)[0] if get_origin(inner) is list else None
    models = [member for member in members if _is_model(member)] or ([item] if _is_model(item) else [])
    description = field.description or (_doc(models[0]) if len(models) == 1 else "")
    rows = [ReferenceRow(key, _type_text(field), _default_text(field), _one_line(condition + description))]
    if len(models) > 1 and isinstance(field.discriminator, str):
        rows.extend(_variant_rows(key, field.discriminator, models))
    elif models:
        rows.extend(reference_rows(models[0], key + ("[]." if item is not None else ".")))
    return rows


def _variant_rows(key: str, tag: str, variants: list[type[BaseModel]]) -> list[ReferenceRow]:
    """A discriminated union: one row for the tag, then each variant's own keys, marked with their tag."""
    choices = {get_args(variant.model_fields[tag].annotation)[0]: variant for variant in variants}
    rows = [
        ReferenceRow(
            f"{key}.{tag}",
            "one of " + ", ".join(f"`{choice}`" for choice in choices),
            "required",
            _one_line(" ".join(f"`{choice}`: {_doc(variant)}" for choice, variant in choices.items())),
        )
    ]
    for choice, variant in choices.items():
        for name, field in variant.model_fields.items():
            alias = field.alias or name
            if alias != tag:
                rows.extend(_field_rows(f"{key}.{alias}", field, f"Only when `{key}.{tag}` is `{choice}`. "))
    return rows


def _type_text(field: FieldInfo) -> str:
    members, nullable = _union_members(field.annotation)
    limits: dict[str, Any] = {}
    for meta in field.metadata:  # annotated-types constraints (Ge, MinLen, ...) and pydantic's pattern
        for attr in ("ge", "le", "min_length", "max_length", "pattern"):
            if getattr(meta, attr, None) is not None:
                limits[attr] = getattr(meta, attr)
    text = _kind_text(members[0], limits) if len(members) == 1 else "object"
    return text + (", or null" if nullable else "")


def _kind_text(annotation: Any, limits: dict[str, Any]) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        values = [f"`{value}`" for value in get_args(annotation)]
        return values[0] if len(values) == 1 else "one of " + ", ".join(values)
    if origin is list:
        item = get_args(annotation)[0]
        noun = "objects" if _is_model(item) else _kind_text(item, {}) + "s"
        return ("non-empty " if limits.get("min_length") else "") + f"list of {noun}"
    if origin is dict or annotation is dict:
        return "mapping"
    if _is_model(annotation):
        return "object"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        low, high = limits.get("ge"), limits.get("le")
        if low is not None and high is not None:
            return f"integer, {low} to {high}"
        if low is not None:
            return f"integer, at least {low}"
        return "integer" if high is None else f"integer, at most {high}"
    text = "string (secret)" if annotation is SecretStr else "string" if annotation is str else str(annotation)
    if limits.get("pattern"):
        return f"{text} matching `{limits['pattern']}`"
    if limits.get("max_length"):
        return f"{text}, {limits.get('min_length', 0)} to {limits['max_length']} characters"
    return ("non-empty " if limits.get("min_length") else "") + text


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        # Only what differs from the model's own defaults: those are listed row by row below it.
        value = value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    # JSON is valid YAML and quotes what bare YAML would misread (`*` is an alias in YAML).
    return f"`{json.dumps(value)}`"


def _union_members(annotation: Any) -> tuple[list[Any], bool]:
    """(members of the union other than None, whether None is allowed); a plain type is a union of one."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        members = [arg for arg in args if arg is not type(None)]
        return members, len(members) < len(args)
    return [annotation], False


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _doc(model: type[BaseModel]) -> str:
    # __doc__, not inspect.getdoc: an undocumented model must not borrow its base class's docstring.
    return inspect.cleandoc(model.__doc__ or "")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def replace_reference_block(text: str, reference: str) -> str:
    """`text` (a README) with the block between the reference markers replaced by `reference`."""
    head, _, rest = text.partition(REFERENCE_BEGIN)
    _, _, tail = rest.partition(REFERENCE_END)
    if text.count(REFERENCE_BEGIN) != 1 or text.count(REFERENCE_END) != 1 or REFERENCE_END in head:
        raise ValueError(
            f"needs {REFERENCE_BEGIN} then {REFERENCE_END}, once each "
            f"(this project keeps the reference in docs/reference.md: `airflow-oidc {REGENERATE}`)"
        )
    return f"{head}{REFERENCE_BEGIN}\n{reference.strip()}\n{REFERENCE_END}{tail}"


def reference(update: Path | None) -> int:
    """Print the reference, or rewrite it in place between the markers of the file `update`."""
    if update is None:
        sys.stdout.write(render_reference())
        return 0
    try:
        text = update.read_text()
        updated = replace_reference_block(text, render_reference())
    except (OSError, ValueError) as error:
        print(f"{update}: {getattr(error, 'strerror', None) or error}", file=sys.stderr)
        return 1
    if updated == text:
        print(f"{update}: the spec reference is up to date")
    else:
        update.write_text(updated)
        print(f"{update}: spec reference updated")
    return 0


# --- entry point ----------------------------------------------------------------------------------


PROJECT_HELP = "the project's root (holds Pulumi.yaml); default: found from the working directory, as pulumi finds it"


def _subcommand(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, details: str = ""
) -> argparse.ArgumentParser:
    """A sub-command whose one-line summary shows in `airflow-oidc --help` and heads its own --help."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + "." + (f" {details}" if details else ""),
    )
    # Also accepted after the sub-command (`airflow-oidc validate --project-dir DIR`).
    parser.add_argument("--project-dir", type=Path, metavar="DIR", default=argparse.SUPPRESS, help=PROJECT_HELP)
    return parser


def version() -> str:
    """The installed package's version (pyproject.toml's, as pip recorded it)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("airflow-oidc")
    except PackageNotFoundError:
        return "unknown (not installed: pip install .)"


def main(argv: Sequence[str] | None = None) -> int:
    """The console script `airflow-oidc`; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="airflow-oidc",
        description=f"Tools for the stack config key {CONFIG_KEY}. Every command works on the project around "
        "the working directory (the nearest Pulumi.yaml above it): its stacks/, stacks/defaults/ and policy/.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--project-dir", type=Path, metavar="DIR", default=None, help=PROJECT_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = _subcommand(
        commands,
        "validate",
        "validate stack files offline: the spec, the environment defaults, the fleet",
        "Default: every stack file of the project. A STACK_FILE is a path or a stack name.",
    )
    check.add_argument("files", nargs="*", type=Path, metavar="STACK_FILE")
    check.add_argument(
        "--format",
        choices=("text", "json", "sarif"),
        default="text",
        help="text (default), json, or sarif (SARIF 2.1.0: upload it and each problem annotates its line)",
    )
    schema = _subcommand(
        commands,
        "schema",
        "print the JSON Schema of the spec, or of a whole stack file, for editors",
        "With --stack-file: the schema of Pulumi.<stack>.yaml (the project ships it as schema/stack-file.schema.json).",
    )
    schema.add_argument(
        "--stack-file",
        action="store_true",
        help="the whole Pulumi.<stack>.yaml: the spec under config, the provider settings, secure: values",
    )
    docs = _subcommand(commands, "reference", "print the Markdown reference of every spec key")
    docs.add_argument(
        "--update",
        type=Path,
        metavar="FILE",
        help="rewrite the block between the spec-reference markers in FILE (docs/reference.md)",
    )
    plan_command.add_arguments(
        _subcommand(
            commands,
            "plan",
            "show what `pulumi up` would declare per stack, offline; with --base, what a change does",
            "Runs every stack file through the program under the mock engine (no credentials, no network).",
        )
    )
    new_stack_command.add_arguments(
        _subcommand(
            commands,
            "new-stack",
            "write a team's new stack file, valid as written, and print the next commands",
            "Sees the team's other stacks and shares their IdP groups the way the kind allows.",
        )
    )
    from components import doctor  # its own module: the live checks of a deployed stack

    doctor.add_arguments(
        _subcommand(
            commands,
            "doctor",
            "check a live setup (IdP discovery, Airflow's login redirect, a pasted ID token) against a stack file",
            "Exit status 1 when a check fails.",
        )
    )
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except ProjectNotFoundError as error:
        print(f"airflow-oidc {args.command}: {error}", file=sys.stderr)
        return 2


def project_of(args: argparse.Namespace) -> Project:
    """The project the command works on (`--project-dir`, else `AIRFLOW_OIDC_PROJECT_DIR`, else found)."""
    return find_project(getattr(args, "project_dir", None))


def _run(args: argparse.Namespace) -> int:
    if args.command == "doctor":
        from components import doctor

        return doctor.doctor(args)
    if args.command == "plan":
        return plan_command.run(args)
    if args.command == "new-stack":
        return new_stack_command.run(args)
    if args.command == "validate":
        if not args.files:
            return validate([], project_of(args), args.format)
        project = find_project_or_none(args)
        return validate([project.stack_path(path) if project else path for path in args.files], project, args.format)
    if args.command == "schema":
        if args.stack_file:
            from components.stack_schema import render

            sys.stdout.write(render())
        else:
            print(json.dumps(json_schema(), indent=2))
        return 0
    return reference(args.update)


def find_project_or_none(args: argparse.Namespace) -> Project | None:
    """The project when there is one: stack files given by path need none (stack names do)."""
    try:
        return project_of(args)
    except ProjectNotFoundError:
        if getattr(args, "project_dir", None) is not None:
            raise
        return None


if __name__ == "__main__":
    sys.exit(main())
