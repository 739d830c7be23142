"""`airflow-oidc validate --format json|sarif`: what validate found, for machines.

SARIF 2.1.0 is what GitHub code scanning (and most CI annotation tools) read: uploaded from a workflow,
each problem shows as an annotation on its line of the stack file in the pull request. Every finding
comes from what `validate` prints for people (one `file[:line]: problem` line each), so the formats
cannot disagree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from components.fleet import Clash
from components.key_hints import key_path_parts, spec_line_finder

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
RULES: Mapping[str, str] = {
    "spec": "The stack file's airflow-oidc:spec is refused (the program would refuse it the same way).",
    "fleet": "Two stack files take one name: a hostname, a kube context + namespace + release, or a name at the IdP.",
    "file": "The stack file cannot be read as a stack file (missing, not UTF-8, not YAML, `config:` not a mapping).",
}


@dataclass(frozen=True)
class Checked:
    """One stack file's verdict."""

    path: Path
    file: str
    """As `validate` names it (`stacks/Pulumi.dev.yaml`)."""
    ok: bool
    text: str
    """The `ok` line, or the problem lines."""


@dataclass(frozen=True)
class Finding:
    """One problem, located."""

    file: str
    line: int | None
    key: str | None
    """The spec key path (`airflow-oidc:spec.access[2].role`), when the problem is about one."""
    message: str
    rule: str


def findings_of(checked: Checked) -> list[Finding]:
    """The problems in a file's report, one per line: `<file>[:<line>]: <problem>`."""
    if checked.ok:
        return []
    found = []
    for text in checked.text.splitlines():
        rest = text.removeprefix(checked.file) if text.startswith(checked.file) else f": {text}"
        match = re.match(r"(?::(\d+))?: (.*)", rest, re.DOTALL)
        line, problem = (int(match.group(1)) if match.group(1) else None, match.group(2)) if match else (None, text)
        parts = key_path_parts(problem)
        key = problem.split(": ", 1)[0] if parts is not None else None
        rule = "spec" if key is not None else "file"
        if line is None and (position := re.search(r"\(line (\d+), column \d+\)", problem)):
            line = int(position.group(1))  # not valid YAML: the parser's position
        found.append(Finding(checked.file, line, key, problem, rule))
    return found


def clash_findings(clashes: Sequence[Clash], paths: Mapping[str, Path]) -> list[Finding]:
    """A fleet clash, on the line of the key that takes the name (hostname, namespace, the idp)."""
    found = []
    for clash in clashes:
        parts: list[str | int] = (
            ["hostname"]
            if clash.what == "hostname"
            else ["airflow", "namespace"]
            if clash.what.startswith("kube context")
            else ["idp"]
        )
        path = paths.get(clash.file)
        line = None
        if path is not None:
            try:
                line = spec_line_finder(path.read_text())(parts)
            except (OSError, UnicodeDecodeError):
                line = None
        text = str(clash).removeprefix(f"{clash.file}: ")
        found.append(Finding(clash.file, line, None, text, "fleet"))
    return found


def render_json(checked: Sequence[Checked], findings: Sequence[Finding]) -> str:
    document = {
        "ok": not findings,
        "files": [{"file": item.file, "ok": item.ok} for item in checked],
        "problems": [asdict(finding) for finding in findings],
    }
    return json.dumps(document, indent=2)


def render_sarif(findings: Sequence[Finding], uri: Callable[[str], str], version: str) -> str:
    """A SARIF 2.1.0 log: one run of `airflow-oidc validate`, one result per problem, located by file and line."""
    results: list[dict[str, Any]] = []
    for finding in findings:
        location: dict[str, Any] = {"artifactLocation": {"uri": uri(finding.file)}}
        if finding.line is not None:
            location["region"] = {"startLine": finding.line}
        result: dict[str, Any] = {
            "ruleId": finding.rule,
            "ruleIndex": list(RULES).index(finding.rule),
            "level": "error",
            "message": {"text": finding.message},
            "locations": [{"physicalLocation": location}],
        }
        if finding.key is not None:
            result["properties"] = {"key": finding.key}
        results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "airflow-oidc",
                        "version": version,
                        "rules": [
                            {"id": rule, "shortDescription": {"text": text}, "defaultConfiguration": {"level": "error"}}
                            for rule, text in RULES.items()
                        ],
                    }
                },
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(log, indent=2)
