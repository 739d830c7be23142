"""Benchmarks: how long the pure derivations and a whole program run take, and peak memory.

Prints figures; asserts nothing (targets live here, never in timed tests).

    make bench
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.airflow_values import helm_values, render_webserver_config  # noqa: E402
from components.contract import client_contract  # noqa: E402
from components.stack_config import provider_from_stack_file, spec_from_stack_file  # noqa: E402
from tests.mock_engine import run_stack_file  # noqa: E402

STACKS = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))


def measure(label: str, repeat: int, work: Callable[[], object]) -> None:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    print(
        f"{label:<48} median {statistics.median(samples) * 1000:8.2f} ms"
        f"   min {min(samples) * 1000:8.2f} ms   n={repeat}"
    )


def main() -> None:
    for path in STACKS:
        stack = path.name.split(".")[1]
        measure(f"validate spec ({stack})", 200, lambda path=path: spec_from_stack_file(path))
        spec = spec_from_stack_file(path)
        contract = client_contract(spec, stack=stack, provider=provider_from_stack_file(path, spec))
        measure(f"render webserver_config.py ({stack})", 200, lambda c=contract: render_webserver_config(c))
        measure(
            f"helm values ({stack})",
            200,
            lambda s=spec, c=contract: helm_values(s, c, client_id="cid", version="v"),
        )
        measure(f"whole program under mocks ({stack})", 10, lambda path=path: run_stack_file(path))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'peak RSS of this process':<48} {peak:8.1f} MiB")


if __name__ == "__main__":
    main()
