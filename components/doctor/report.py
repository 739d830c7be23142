"""The doctor's report: one `Check` per line, `pass`, `fail` or `cannot check`, as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

PASS = "pass"
FAIL = "fail"
CANNOT = "cannot check"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: str
    """`pass`, `fail` or `cannot check`."""
    detail: str
    fix: str = ""
    """For a fail: what to change, naming the spec key."""

    def line(self) -> str:
        """The check as one line of text."""
        text = f"{self.status.upper():<13}{self.name}: {self.detail}"
        return text + (f" | fix: {self.fix}" if self.fix else "")


def render(checks: Sequence[Check], source: str, form: str) -> str:
    """The report as text (one line per check, then a summary) or JSON (for CI)."""
    failed = sum(check.status == FAIL for check in checks)
    if form == "json":
        return json.dumps(
            {"stack": source, "ok": failed == 0, "failed": failed, "checks": [asdict(c) for c in checks]}, indent=2
        )
    unchecked = sum(check.status == CANNOT for check in checks)
    lines = [check.line() for check in checks]
    lines.append(f"{source}: {len(checks) - failed - unchecked} passed, {failed} failed, {unchecked} not checked")
    return "\n".join(lines)
