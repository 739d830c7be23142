"""Stack files as the commands report on them: the name errors give a file, its check, its notes.

Below every sub-command (`validate`, `doctor`, `new-stack`): they all name and check a stack file the
same way, so an `ok` line and an error about one file agree.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from components.env_defaults import repeated_notes
from components.spec import SpecError
from components.stack_config import inputs_from_stack_file, resolved_from_stack_file


def shown_name(path: Path) -> str:
    """The file as `spec_from_stack_file` names it in errors, so ok lines and errors agree."""
    return f"stacks/{path.name}" if path.parent.name == "stacks" else str(path)


def stack_name(path: Path) -> str:
    """`Pulumi.<stack>.yaml` -> `<stack>`."""
    name = path.name
    return name.removeprefix("Pulumi.").removesuffix(".yaml") if name.startswith("Pulumi.") else path.stem


def stack_notes(path: Path) -> list[str]:
    """Notes on a valid stack file: values it repeats from its environment's defaults (pinned there)."""
    return [f"note: {shown_name(path)}: {note}" for note in repeated_notes(resolved_from_stack_file(path))]


def check_stack_file(path: Path, *, check_settings: bool = True) -> tuple[bool, str]:
    """(True, the `ok` line) for a valid stack file, else (False, what is wrong with it: no traceback).
    `check_settings` false leaves out the provider settings (a new stack before `pulumi config set`)."""
    name = shown_name(path)
    try:
        # Every check the program runs before declaring anything: the spec, provider settings, the allowlist.
        resolved, provider = inputs_from_stack_file(path, check_settings=check_settings)
        spec = resolved.spec
    except SpecError as error:
        return False, str(error)  # already one `file: key path: problem` line per problem
    except OSError as error:
        return False, f"{name}: cannot read the file: {error.strerror or error}"
    except UnicodeDecodeError:
        return False, f"{name}: cannot read the file: not UTF-8 text"
    except yaml.YAMLError as error:
        return False, f"{name}: not valid YAML: {_yaml_problem(error)}"
    except ValueError as error:  # load_stack_file: `config:` is not a mapping
        return False, str(error)
    groups = len(spec.access)
    notes = spec.idp.setup_notes(spec, provider)
    return True, "\n".join(
        [
            f"ok  {name} ({spec.idp.kind}, {groups} group{'' if groups == 1 else 's'})",
            *(f"    note: {n}" for n in notes),
        ]
    )


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line with the position, 1-based as editors count."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split())
