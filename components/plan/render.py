"""The plan as a report: text (like `terraform plan`), markdown (a pull-request comment) or JSON.

Each stack reads as rows (label, value) of what it declares; with `--base`, a changed stack shows only
the rows that differ (list rows as items added and removed), then its other changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from components.plan.diff import STACK_REMOVED, Change, Plan, number_text, value_text
from components.plan.facts import Facts


def access_rows(facts: Facts) -> list[tuple[str, str]]:
    """Who may sign in and as what: from the access model, else from the rendered role mapping."""
    rows: list[tuple[str, str]] = []
    model = facts.access_model
    if model is None:
        rows += [(f"role of `{value}`", role) for value, role in facts.roles.items()]
        audience = "access groups"
        if facts.default_role_everyone:
            audience += " + everyone at the IdP"
        elif facts.default_role_claim_values:
            audience += " + " + ", ".join(f"`{value}`" for value in facts.default_role_claim_values)
        rows += [("default role", value_text(facts.default_role)), ("who may sign in", audience)]
        rows += [(f"service account `{account}`", role) for account, role in facts.service_accounts.items()]
        return rows
    for grant in model.groups:
        matched = "" if grant.claim_value == grant.principal else f" (claim value `{grant.claim_value}`)"
        rows.append((f"role of `{grant.principal}`", f"{grant.role}{matched}"))
    audience = "access groups"
    if model.everyone:
        audience += " + everyone at the IdP"
    if model.extra_groups:
        audience += " + " + ", ".join(f"`{grant.principal}`" for grant in model.extra_groups)
    rows += [("default role", value_text(model.default_role)), ("who may sign in", audience)]
    for account in model.service_accounts:
        rows.append((f"service account `{account.name}`", f"{account.role}, trusting {account.subject}"))
    return rows


RowValue = str | list[str]
"""A row's value: one text, or a list of items (compared item by item)."""


def fact_rows(facts: Facts) -> list[tuple[str, RowValue]]:
    """(label, value) rows describing one stack's declaration; lists stay lists (diffed as items)."""
    rows: list[tuple[str, RowValue]] = [
        ("IdP kind", value_text(facts.kind)),
        ("client id", value_text(facts.client_id)),
        ("issuer", value_text(facts.issuer)),
        ("redirect and post-logout URIs", list(facts.redirect_uris)),
    ]
    rows += access_rows(facts)
    for label, minutes in facts.lifetimes.items():
        rows.append((label, number_text(minutes)))
    for key, entry in facts.resolved.items():
        if entry["value"] is not None:
            origin = "" if entry["from"] == "stack file" else f" (from {entry['from']})"
            rows.append((f"spec `{key}`", f"{value_text(entry['value'])}{origin}"))
    rows += [
        ("secrets held by", list(facts.secret_holders)),
        ("image", value_text(facts.image)),
        ("chart", value_text(facts.chart)),
        ("hostname", value_text(facts.hostname)),
        ("namespace / release", f"{value_text(facts.namespace)} / {value_text(facts.release)}"),
        ("api-server replicas", value_text(facts.replicas)),
        ("protected", [f"`{name}`" for name in facts.protected]),
    ]
    return rows


@dataclass(frozen=True)
class RowChange:
    """One row that differs between the base and this change (None: the row is absent on that side)."""

    label: str
    before: RowValue | None
    after: RowValue | None

    @property
    def removed(self) -> list[str]:
        """For a list row: the items only the base has."""
        after = self.after if isinstance(self.after, list) else []
        return [item for item in self.before or [] if item not in after] if isinstance(self.before, list) else []

    @property
    def added(self) -> list[str]:
        """For a list row: the items only this change has."""
        before = self.before if isinstance(self.before, list) else []
        return [item for item in self.after or [] if item not in before] if isinstance(self.after, list) else []

    @property
    def is_list(self) -> bool:
        return isinstance(self.before, list) or isinstance(self.after, list)


def row_changes(before: Facts, after: Facts) -> list[RowChange]:
    """The rows whose value differs, in the order this change lists them (rows gone last)."""
    old, new = dict(fact_rows(before)), dict(fact_rows(after))
    changed = [RowChange(label, old.get(label), value) for label, value in new.items() if old.get(label) != value]
    return changed + [RowChange(label, value, None) for label, value in old.items() if label not in new]


def _summary(plan: Plan) -> str:
    risky = [change for change in plan.changes if change.risky]
    stacks = len(plan.head) + len({c.stack for c in plan.changes if c.kind == STACK_REMOVED})
    against = f" against `{plan.base}`" if plan.base else ""
    if plan.errors:
        return f"airflow-oidc plan: {len(plan.errors)} error(s){against}"
    if risky:
        touched = len({change.stack for change in risky})
        return f"airflow-oidc plan: {len(risky)} risky change(s) in {touched} of {stacks} stack(s){against}"
    others = len(plan.changes)
    return f"airflow-oidc plan: no risky change in {stacks} stack(s){against}" + (
        f" ({others} other change(s))" if others else ""
    )


MARKDOWN_LIMIT = 60_000
"""GitHub refuses comments over 65536 characters: beyond this the per-stack details are left out."""
KNOWN_AFTER = "(known after apply)"


@dataclass(frozen=True)
class StackView:
    """One stack as the report shows it: changed (the rows that differ), new, removed, unchanged, or
    (without `--base`) declared."""

    stack: str
    file: str
    state: str
    """`changed`, `added`, `removed`, `unchanged` or `declared`."""
    facts: Facts | None
    rows: list[RowChange]
    changes: list[Change]


def stack_views(plan: Plan) -> list[StackView]:
    """Every stack, those that change first (risky before the others), then the unchanged ones."""
    views: list[StackView] = []
    for file, facts in plan.head.items():
        changes = [change for change in plan.changes if change.stack == facts.stack]
        before = plan.base_facts.get(file)
        if plan.base is None:
            views.append(StackView(facts.stack, file, "declared", facts, [], changes))
        elif before is None:
            views.append(StackView(facts.stack, file, "added", facts, [], changes))
        else:
            rows = row_changes(before, facts)
            state = "changed" if rows or changes else "unchanged"
            views.append(StackView(facts.stack, file, state, facts, rows, changes))
    for file, facts in plan.base_facts.items():
        if file not in plan.head:
            changes = [change for change in plan.changes if change.stack == facts.stack]
            views.append(StackView(facts.stack, file, "removed", None, [], changes))
    order = {"changed": 0, "added": 0, "removed": 0, "declared": 1, "unchanged": 2}
    return sorted(views, key=lambda view: (order[view.state], not any(c.risky for c in view.changes), view.stack))


def _known_after(text: str) -> str:
    """The access model's `known after apply` reads as the engine's `(known after apply)`."""
    return re.sub(r"(?<!\()known after apply(?!\))", KNOWN_AFTER, text)


def _plain(value: RowValue | None) -> str:
    """A value as plain text (no markdown)."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(_plain(item) for item in value) or "none"
    return _known_after(value).replace("`", "")


def _md(value: RowValue | None) -> str:
    """A value in a markdown table cell."""
    if value is None:
        return "—"
    if isinstance(value, list):
        return "<br>".join(_md(item) for item in value) or "none"
    return _cell(_known_after(value))


def render_markdown(plan: Plan, details: bool = True) -> str:
    """For a pull-request comment: one summary line, the risky changes, then each stack that changes with
    only what changes (lists as added and removed items), then one line per unchanged stack."""
    lines = [f"**{_summary(plan)}**", ""]
    for error in plan.errors:
        lines.append(f"- ❌ {error}")
    risky = [change for change in plan.changes if change.risky]
    if risky:
        lines += ["### Risky changes", ""]
        lines += [f"- **{change.kind}** · `{change.stack}`: {change.message}" for change in risky]
        lines.append("")
    views = stack_views(plan)
    for view in views:
        if view.state == "unchanged":
            continue
        if view.state == "removed":
            lines += [f"### `{view.stack}` ({view.file}): removed", ""]
        else:
            heading = {"added": ": new stack", "changed": ""}.get(view.state, "")
            lines += [f"### `{view.stack}` ({view.file}){heading}", ""]
        if view.state == "changed" and view.rows:
            lines += ["| | base | this change |", "| --- | --- | --- |"]
            for row in view.rows:
                if row.is_list and row.before is not None and row.after is not None:
                    removed = "<br>".join(f"− {_md(item)}" for item in row.removed)
                    added = "<br>".join(f"+ {_md(item)}" for item in row.added)
                    lines.append(f"| {_cell(row.label)} | {removed} | {added} |")
                else:
                    lines.append(f"| {_cell(row.label)} | {_md(row.before)} | {_md(row.after)} |")
        elif view.state == "changed":
            lines.append("What this stack declares for sign-in does not change.")
        facts = view.facts
        if facts is not None and view.state in ("added", "declared"):  # a changed stack: only what changes
            lines += ["| | declared |", "| --- | --- |"]
            lines += [f"| {_cell(label)} | {_md(value)} |" for label, value in fact_rows(facts)]
        others = [change for change in view.changes if not change.risky]
        if others:
            lines += ["", "Other changes: " + "; ".join(change.message for change in others)]
        if details and facts is not None and view.state in ("added", "declared"):
            lines += ["", "<details><summary>Resources</summary>", ""]
            lines += [
                f"- `{r['name']}` {r['type']}" + (" (protected)" if r["protect"] else "") for r in facts.resources
            ]
            lines += ["", "</details>"]
        lines.append("")
    unchanged = [view for view in views if view.state == "unchanged"]
    if unchanged:
        lines += [f"- `{view.stack}` ({view.file}): unchanged" for view in unchanged]
    text = "\n".join(lines).rstrip() + "\n"
    if details and len(text) > MARKDOWN_LIMIT:
        note = "\n_Details left out to fit a comment: `airflow-oidc plan --format text` prints them._\n"
        return render_markdown(plan, details=False) + note
    return text


def _cell(value: str) -> str:
    return value.replace("|", "\\|")


def render_text(plan: Plan) -> str:
    """Like `terraform plan`: the risky changes, then `~` each changed stack with only what changes (list
    items `+` added, `-` removed), `+` each new stack in full, `-` each removed one, then `=` one line per
    unchanged stack. Without `--base`, every stack with what it declares. Plain text, no markdown."""
    lines = [_summary(plan).replace("`", "")]
    lines += [f"error: {error}" for error in plan.errors]
    risky = [change for change in plan.changes if change.risky]
    if risky:
        lines += ["", "Risky changes:"]
        lines += [f"  {change.stack}: {change.kind}: {change.message.replace('`', '')}" for change in risky]
    for view in stack_views(plan):
        others = [f"    {change.message.replace('`', '')}" for change in view.changes if not change.risky]
        if view.state == "unchanged":
            if not lines[-1].startswith("= "):
                lines.append("")
            lines.append(f"= {view.stack} ({view.file}): unchanged")
            continue
        lines.append("")
        if view.state == "removed":
            lines.append(f"- {view.stack} ({view.file}): removed")
            continue
        facts = view.facts
        assert facts is not None
        if view.state == "changed":
            lines.append(f"~ {view.stack} ({view.file})")
            for row in view.rows:
                label = row.label.replace("`", "")
                if row.is_list and row.before is not None and row.after is not None:
                    lines.append(f"    {label}:")
                    lines += [f"      - {_plain(item)}" for item in row.removed]
                    lines += [f"      + {_plain(item)}" for item in row.added]
                elif row.before is None:
                    lines.append(f"    + {label}: {_plain(row.after)}")
                elif row.after is None:
                    lines.append(f"    - {label}: {_plain(row.before)}")
                else:
                    lines.append(f"    {label}: {_plain(row.before)} → {_plain(row.after)}")
            if others:
                lines += ["    other changes:", *("  " + other for other in others)]
            continue
        marker = "+" if view.state == "added" else "=="
        lines.append(f"{marker} {view.stack} ({view.file})" + (": new stack" if view.state == "added" else ""))
        lines += [f"    {label.replace('`', '')}: {_plain(value)}" for label, value in fact_rows(facts)]
        if view.state == "declared":
            lines.append("    resources:")
            lines += [
                f"      {r['name']}  {r['type']}" + ("  [protected]" if r["protect"] else "") for r in facts.resources
            ]
    return "\n".join(lines) + "\n"


def render_json(plan: Plan) -> str:
    def stack(facts: Facts) -> dict[str, Any]:
        data = asdict(facts)
        data["resources"] = [
            {"type": r["type"], "name": r["name"], "parent": r["parent"], "protect": r["protect"]}
            for r in facts.resources
        ]
        return data

    document = {
        "summary": _summary(plan),
        "status": plan.status,
        "base": plan.base,
        "errors": plan.errors,
        "changes": [{**asdict(change), "risky": change.risky} for change in plan.changes],
        "stacks": {file: stack(facts) for file, facts in plan.head.items()},
        "baseStacks": {file: stack(facts) for file, facts in plan.base_facts.items()},
        "seconds": round(plan.seconds, 3),
    }
    return json.dumps(document, indent=2) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}
