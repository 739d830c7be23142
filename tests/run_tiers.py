"""Run the test tiers side by side (`make test`), each into its own log; fail when any tier fails.

    python3 tests/run_tiers.py                 # every tier (make test)
    python3 tests/run_tiers.py unit e2e        # some of them

Lanes run in parallel, the tiers of one lane one after another: the end-to-end tier (the longest)
has a lane of its own, the others share the rest of the machine (`LANES`). Each tier's output goes to
`artifacts/tiers/<tier>.log` (`--out`); a line per tier says when it finished, how long it took and whether it
passed; at the end every failed tier's log is printed (its last lines) and the exit status is 1.
The timings are recorded in `artifacts/tiers/last-run.json` (`make bench` prints them).

Standard library only: it runs before and beside the virtualenvs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIERS_DIR = ROOT / "artifacts" / "tiers"
RECORD = TIERS_DIR / "last-run.json"
SHOWN_LINES = 300

# tier -> the make target that runs it (each also runnable alone).
TIERS = {
    "lint": "lint",
    "validate": "validate",
    "unit": "test-unit",
    "airflow": "test-airflow",
    # The e2e tier in its two port shards (tests/e2e/conftest.py SHARDS): they share no port.
    "e2e-fixed-ports": "test-e2e E2E_SHARD=fixed-ports",
    "e2e-port-443": "test-e2e E2E_SHARD=port-443",
    "engine": "test-engine-if-built",
}
# Tiers of one lane run in sequence; lanes run side by side. Each e2e shard (the longest) has a lane of its
# own; the engine tier (free ports) runs beside them.
LANES = (("e2e-fixed-ports",), ("e2e-port-443",), ("engine",), ("lint", "validate", "unit"), ("airflow",))


@dataclass
class TierResult:
    """How one tier ended."""

    tier: str
    command: str
    log: str
    seconds: float = 0.0
    status: int | None = None
    started_at: float = 0.0
    cpu_seconds: float = 0.0
    """User + system CPU of the tier's processes that were waited for (a process killed as a group and
    reaped by init is not counted)."""

    @property
    def passed(self) -> bool:
        """Exit status 0."""
        return self.status == 0


@dataclass
class RunRecord:
    """What `last-run.json` holds."""

    started: str
    seconds: float
    passed: bool
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    cpus: int | None
    machine: str
    tiers: list[TierResult] = field(default_factory=list)


def say(line: str) -> None:
    """Print at once (make buffers otherwise)."""
    print(f"[tiers {time.strftime('%H:%M:%S')}] {line}", flush=True)


def run_tier(tier: str, make: str, start: float, out_dir: Path) -> TierResult:
    """`make <target>` with its output in the tier's log."""
    log = out_dir / f"{tier}.log"
    command = f"{make} --no-print-directory {TIERS[tier]}"
    result = TierResult(tier, command, str(log), started_at=time.monotonic() - start)
    began = time.monotonic()
    with log.open("wb") as out:
        out.write(f"$ {command}\n".encode())
        out.flush()
        child = subprocess.Popen(
            command.split(), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        # wait4: this tier's CPU time (its processes that were waited for), not the other lanes'.
        _, wait_status, usage = os.wait4(child.pid, 0)
        child.returncode = result.status = os.waitstatus_to_exitcode(wait_status)
    result.seconds = time.monotonic() - began
    result.cpu_seconds = usage.ru_utime + usage.ru_stime
    say(
        f"{tier:<9} {'passed' if result.passed else 'FAILED'} in {result.seconds:6.1f} s "
        f"(CPU {result.cpu_seconds:6.1f} s)   ({result.log})"
    )
    return result


def run_lane(
    tiers: list[str], make: str, start: float, out_dir: Path, results: list[TierResult], lock: threading.Lock
) -> None:
    """The lane's tiers one after another (a failed tier does not stop the next: every tier reports)."""
    for tier in tiers:
        result = run_tier(tier, make, start, out_dir)
        with lock:
            results.append(result)


def show_failure(result: TierResult) -> None:
    """The failed tier's log: its last SHOWN_LINES lines."""
    lines = Path(result.log).read_text(errors="replace").splitlines()
    shown = lines[-SHOWN_LINES:]
    print(f"\n{'=' * 30} {result.tier} FAILED (exit {result.status}): {result.log} {'=' * 30}")
    if len(lines) > len(shown):
        print(f"... ({len(lines) - len(shown)} earlier lines in the log)")
    print("\n".join(shown))


def main(argv: list[str] | None = None) -> int:
    """Run the chosen tiers in their lanes; 0 when every one passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tiers", nargs="*", help=f"some of {', '.join(TIERS)} (default: every tier)")
    parser.add_argument("--make", default=os.environ.get("MAKE", "make"), help="the make to run targets with")
    parser.add_argument("--out", type=Path, default=TIERS_DIR, help="where the logs and the record go")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.tiers) - set(TIERS))
    if unknown:
        parser.error(f"unknown tier(s) {', '.join(unknown)}; the tiers are {', '.join(TIERS)}")
    chosen = args.tiers or list(TIERS)
    lanes = [[tier for tier in lane if tier in chosen] for lane in LANES]
    lanes = [lane for lane in lanes if lane]

    out_dir: Path = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    start = time.monotonic()
    say(f"running {', '.join(' then '.join(lane) for lane in lanes)} side by side (load {load_before[0]:.1f})")
    results: list[TierResult] = []
    lock = threading.Lock()
    threads = [
        threading.Thread(target=run_lane, args=(lane, args.make, start, out_dir, results, lock)) for lane in lanes
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - start
    results.sort(key=lambda result: list(TIERS).index(result.tier))
    passed = all(result.passed for result in results)

    record = RunRecord(
        started=started,
        seconds=seconds,
        passed=passed,
        load_before=load_before,
        load_after=os.getloadavg(),
        cpus=os.cpu_count(),
        machine=f"{platform.node()} {platform.machine()}",
        tiers=results,
    )
    (out_dir / RECORD.name).write_text(json.dumps(asdict(record), indent=2) + "\n")
    for result in results:
        if not result.passed:
            show_failure(result)
    print()
    say(
        "every tier passed"
        if passed
        else f"FAILED: {', '.join(result.tier for result in results if not result.passed)}"
    )
    say(
        f"wall time {seconds / 60:.1f} min; "
        + ", ".join(f"{result.tier} {result.seconds / 60:.1f} min" for result in results)
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
