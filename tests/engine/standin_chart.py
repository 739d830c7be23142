"""The engine tier's stand-in chart (tests/engine/chart/README.md): the real 1.19.0 Chart.yaml, values.yaml and
values.schema.json, our own templates, assembled in a temporary folder at test time (never committed as copies).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.chart_source import CHART_FILES, locate_chart

HERE = Path(__file__).resolve().parent / "chart"


def assemble_standin_chart(dest: Path) -> Path:
    """`dest/airflow`: the real chart's data files + the stand-in templates + an empty postgresql dependency."""
    source = locate_chart()
    if source is None:
        raise FileNotFoundError("the Airflow chart's files are missing: `make chart` (tests/chart_source.py)")
    chart = dest / "airflow"
    (chart / "charts").mkdir(parents=True)
    for name in CHART_FILES:
        shutil.copy(source.path / name, chart / name)
    shutil.copytree(HERE / "templates", chart / "templates")
    shutil.copytree(HERE / "postgresql", chart / "charts" / "postgresql")
    return chart
