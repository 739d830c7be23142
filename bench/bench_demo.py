"""Benchmark of `make demo` (`python -m localdev.demo`) on a fresh checkout: cold (no virtualenvs, no
node_modules) and warm (again).

A copy of the checkout's files (what git tracks or would track: no .venv, .venv-airflow, node_modules)
is made in a temporary directory; `make demo DEMO_ARGS=--check` runs there twice: cold, building the
virtualenvs and the e2e prerequisites from the package caches, then warm. `--check` (what
tests/e2e/test_demo.py runs) signs in once through a real browser, then stops everything. Prints the
figures; asserts nothing (the demo's own exit status is reported).

The demo binds fixed ports (8443, 8180, 9400): on a shared machine the runs take the e2e lock
(`AIRFLOW_OIDC_E2E_LOCK`, default /tmp/airflow-oidc-e2e.lock) the e2e tier is run under.

    make bench                      # every benchmark
    .venv/bin/python bench/bench_demo.py
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = Path(os.environ.get("AIRFLOW_OIDC_E2E_LOCK", "/tmp/airflow-oidc-e2e.lock"))


def checkout_files(root: Path) -> list[str]:
    """The files a fresh clone of this checkout would have (tracked, plus new files not ignored)."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in listed.stdout.split("\0") if name and (root / name).is_file()]


def fresh_copy(into: Path) -> Path:
    copy = into / "airflow-oidc"
    for name in checkout_files(ROOT):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    return copy


@contextmanager
def e2e_lock() -> Iterator[float]:
    """Hold the e2e lock; yields how long it took to get it (seconds)."""
    asked = time.perf_counter()
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - asked
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_demo(copy: Path, log: Path) -> tuple[float, int]:
    """`make demo DEMO_ARGS=--check` in the copy: (seconds, exit status)."""
    environment = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    started = time.perf_counter()
    with log.open("w") as output:
        done = subprocess.run(
            ["make", "-C", str(copy), "demo", "DEMO_ARGS=--check"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            check=False,
        )
    return time.perf_counter() - started, done.returncode


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="airflow-oidc-bench-demo-") as scratch:
        copy = fresh_copy(Path(scratch))
        for label in ("cold", "warm"):
            log = Path(scratch) / f"demo-{label}.log"
            with e2e_lock() as waited:
                seconds, status = make_demo(copy, log)
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            print(
                f"make demo ({label}{': virtualenvs and node_modules absent' if label == 'cold' else ''}): "
                f"{seconds:.1f} s, exit status {status}"
                + (f" (waited {waited:.0f} s for the e2e lock)" if waited >= 1 else "")
                + ("" if status == 0 else f"; last line: {tail[0]}")
            )
        return 0


if __name__ == "__main__":
    sys.exit(main())
