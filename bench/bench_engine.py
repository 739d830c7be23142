"""Benchmark of the real engine: what `make engine` took when it built each piece (recorded in the cache's
stamps), and the engine tier's warm run (`tests/engine/`, the engine already built). Prints figures; asserts
nothing. Without a built engine it says so in one line.

    make bench
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.engine import built_engine, engine_dir, pieces  # noqa: E402

AIRFLOW_PYTHON = ROOT / ".venv-airflow" / "bin" / "python"


def main() -> int:
    if built_engine() is None:
        print("engine: not built (`make engine`): no engine figures")
        return 0
    total = 0.0
    print(f"make engine, as recorded when each piece was built ({engine_dir()}):")
    for piece in pieces():
        seconds = float(json.loads(piece.stamp().read_text())["seconds"])
        total += seconds
        print(f"  {piece.name:70} {seconds / 60:5.1f} min")
    print(f"  {'total':70} {total / 60:5.1f} min")
    started = time.monotonic()
    result = subprocess.run(
        [str(AIRFLOW_PYTHON), "-m", "pytest", "tests/engine", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"engine tier, warm (make test-engine): {seconds:.0f} s — {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
