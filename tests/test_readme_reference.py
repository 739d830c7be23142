"""docs/reference.md carries the spec reference exactly as the models render it, so the docs cannot drift."""

from __future__ import annotations

from pathlib import Path

from components.cli import REFERENCE_BEGIN, REFERENCE_END, REGENERATE, render_reference

README = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
HOW = (
    f"from the project root run `.venv/bin/airflow-oidc {REGENERATE}`"
    f" (or `.venv/bin/python -m components.cli {REGENERATE}`)"
)


def test_readme_has_the_current_spec_reference() -> None:
    markers = f"{REFERENCE_BEGIN} ... {REFERENCE_END}"
    assert README.is_file(), f"docs/reference.md is missing: create it with the markers {markers}, then {HOW}"
    text = README.read_text()
    head, begin, rest = text.partition(REFERENCE_BEGIN)
    block, end, _ = rest.partition(REFERENCE_END)
    assert begin and end and REFERENCE_END not in head, (
        f"docs/reference.md needs the markers {markers}, in order; then {HOW}"
    )
    assert text.count(REFERENCE_BEGIN) == text.count(REFERENCE_END) == 1, (
        f"docs/reference.md has the markers twice; {HOW}"
    )
    assert block.strip() == render_reference().strip(), (
        f"docs/reference.md's spec reference differs from the models in components/spec.py: {HOW}"
    )
