"""`make test`'s tier runner (tests/run_tiers.py): lanes side by side, a failed tier fails the run and shows its log."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_tiers import main  # noqa: E402

# A stand-in for `make <target>`: `test-unit` and `test-airflow` (two lanes) each announce that they started
# and wait for the other (so they pass only when run side by side); `test-airflow` then fails.
FAKE_MAKE = """#!/bin/sh
target="$2"
dir="$(dirname "$0")"
touch "$dir/started-$target"
case "$target" in
  test-unit) other=test-airflow ;;
  test-airflow) other=test-unit ;;
  *) echo "ran $target"; exit 0 ;;
esac
i=0
while [ ! -e "$dir/started-$other" ]; do
  i=$((i + 1))
  if [ "$i" -gt 600 ]; then echo "$target: $other never started beside me"; exit 4; fi
  sleep 0.1
done
if [ "$target" = test-airflow ]; then echo "boom: the airflow tier broke"; exit 3; fi
echo "unit tier fine"
"""


@pytest.fixture
def fake_make(tmp_path: Path) -> Path:
    script = tmp_path / "make"
    script.write_text(FAKE_MAKE)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_lanes_run_side_by_side_and_a_failed_tier_fails_the_run_with_its_log(
    fake_make: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiers"
    status = main(["unit", "airflow", "lint", "--make", str(fake_make), "--out", str(out)])
    printed = capsys.readouterr().out

    assert status == 1
    assert "unit tier fine" in (out / "unit.log").read_text()
    assert "boom: the airflow tier broke" in (out / "airflow.log").read_text()
    # The failed tier's log is printed, the passing ones' are not.
    failure = printed.split("airflow FAILED (exit 3)", 1)
    assert len(failure) == 2 and "boom: the airflow tier broke" in failure[1], printed
    assert "unit tier fine" not in printed and "ran lint" not in printed
    assert "FAILED: airflow" in printed
    record = json.loads((out / "last-run.json").read_text())
    assert record["passed"] is False
    assert {tier["tier"]: tier["status"] for tier in record["tiers"]} == {"lint": 0, "unit": 0, "airflow": 3}


def test_every_tier_passing_exits_zero(fake_make: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiers"
    assert main(["lint", "validate", "--make", str(fake_make), "--out", str(out)]) == 0
    assert "every tier passed" in capsys.readouterr().out
    assert json.loads((out / "last-run.json").read_text())["passed"] is True


def test_an_unknown_tier_is_refused_before_anything_runs(fake_make: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["unit", "units", "--make", str(fake_make), "--out", str(tmp_path / "tiers")])
    assert raised.value.code == 2
    assert not list(tmp_path.glob("started-*")) and not (tmp_path / "tiers").exists()
