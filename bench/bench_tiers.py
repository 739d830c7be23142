"""How long each test tier took: the figures the last `make test` recorded (`artifacts/tiers/last-run.json`).

    python3 bench/bench_tiers.py          # print the last run's figures (run the tiers first if none)
    python3 bench/bench_tiers.py --run    # run every tier now (as `make test` does), then print

Figures only, no thresholds. The e2e tier's own breakdown (each shared service's and each
deployment's start, the slowest tests) is at the end of `artifacts/tiers/e2e.log`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.run_tiers import RECORD  # noqa: E402
from tests.run_tiers import main as run_tiers  # noqa: E402


def print_record(record: dict[str, object]) -> None:
    """The recorded run, one line per tier."""
    load_before, load_after = record["load_before"], record["load_after"]
    assert isinstance(load_before, list) and isinstance(load_after, list)
    print(
        f"test tiers, `make test` of {record['started']} on {record['machine']} ({record['cpus']} CPUs), "
        f"load average {load_before[0]:.1f} before / {load_after[0]:.1f} after; "
        f"{'passed' if record['passed'] else 'FAILED'}"
    )
    tiers = record["tiers"]
    assert isinstance(tiers, list)
    for tier in tiers:
        status = "passed" if tier["status"] == 0 else f"FAILED ({tier['status']})"
        print(
            f"  {tier['tier']:<10} {tier['seconds']:8.1f} s  ({tier['seconds'] / 60:4.1f} min)"
            f"  CPU {tier.get('cpu_seconds', 0.0):7.1f} s  started at +{tier['started_at']:6.1f} s  {status}"
        )
    seconds = float(str(record["seconds"]))
    print(f"  {'wall time':<10} {seconds:8.1f} s  ({seconds / 60:4.1f} min; lanes run side by side)")
    e2e_log = ROOT / "artifacts" / "tiers" / "e2e.log"
    if e2e_log.exists():
        lines = e2e_log.read_text(errors="replace").splitlines()
        start = next((i for i, line in enumerate(lines) if "e2e start times" in line), None)
        if start is not None:
            print("  e2e breakdown:")
            for line in lines[start + 1 :]:
                if line.startswith("=") or not line.strip():
                    break
                print(f"    {line}")


def main() -> int:
    """Print the recorded figures; run the tiers first with --run or when nothing is recorded."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="store_true", help="run every tier now, then print")
    args = parser.parse_args()
    if args.run or not RECORD.exists():
        if not args.run:
            print(f"no run recorded in {RECORD.relative_to(ROOT)}: running every tier now (make test)")
        run_tiers([])
    print_record(json.loads(RECORD.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
