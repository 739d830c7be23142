"""Shared plumbing: run directories, free ports, managed child processes, bounded waits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
E2E_ROOT = REPO_ROOT / ".e2e"
ARTIFACTS_ROOT = REPO_ROOT / "artifacts" / "e2e"

T = TypeVar("T")

STATE_DEADLINE = 90.0
"""Seconds an e2e case waits for the state it asserts (a page's text, a log line, a cookie gone).

Generous on purpose: a loaded 2-core machine can be many times slower than an idle one, and a
passing case never waits it out (the wait ends as soon as the state is there)."""


class HarnessError(RuntimeError):
    """A harness component failed to start or misbehaved; the message carries the log tail."""


def tail(path: Path | None, lines: int = 40) -> str:
    """The last `lines` lines of a log file ('' when there is none)."""
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def error_with_log(message: str, log_path: Path | None, lines: int = 40) -> HarnessError:
    """A HarnessError whose message ends with the tail of `log_path`."""
    log_tail = tail(log_path, lines)
    where = f" (log: {log_path})" if log_path else ""
    return HarnessError(
        f"{message}{where}\n--- last {lines} log lines ---\n{log_tail}" if log_tail else message + where
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel's pick; a small race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` can be bound on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    log_path: Path | None = None,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.1,
) -> T:
    """Poll `predicate` until it returns something truthy; fail with the log tail on timeout or death."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:
            last_error = exc
        if alive is not None and not alive():
            raise error_with_log(f"{what}: the process exited before it was ready", log_path)
        if time.monotonic() > deadline:
            detail = f" (last probe error: {last_error!r})" if last_error else ""
            raise error_with_log(f"{what}: not ready after {timeout:.0f} s{detail}", log_path)
        time.sleep(interval)


def wait_for_text(
    read: Callable[[], str],
    text: str,
    *,
    what: str,
    log_path: Path | None = None,
    timeout: float = STATE_DEADLINE,
    interval: float = 0.1,
) -> str:
    """Poll `read()` until it contains `text`; return what it read. On timeout an AssertionError names
    `what`, shows the end of what was read and the tail of `log_path` (the component log that explains it)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = read()
        if text in seen:
            return seen
        if time.monotonic() > deadline:
            log_tail = tail(log_path, 60)
            shown = f"\n--- {log_path} (last 60 lines) ---\n{log_tail}" if log_tail else ""
            raise AssertionError(
                f"{what}: {text!r} did not appear within {timeout:.0f} s; the end of what was there:\n"
                f"{seen[-1500:]}{shown}"
            )
        time.sleep(interval)


class RunDir:
    """One directory per test run under `.e2e/` (gitignored); components get subdirectories."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)

    @classmethod
    def create(cls, label: str = "run", root: Path = E2E_ROOT) -> RunDir:
        """A fresh directory `<root>/<timestamp>-<label>-<pid>`."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return cls(root / f"{stamp}-{label}-{os.getpid()}")

    def sub(self, name: str) -> Path:
        """A subdirectory (created) for one component."""
        path = self.path / name
        path.mkdir(parents=True, exist_ok=True)
        return path


class ManagedProcess:
    """A child process in its own process group, logging to a file; stopping kills the whole group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (stdout and stderr appended to the log file)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(self.argv)}\n".encode())
            log.flush()
            # The child keeps its own copy of the descriptor: the file is root's,
            # and a child running as another user still writes through it.
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                process_group=0,  # own group: stop() reaches workers and grandchildren too
            )

    @property
    def pid(self) -> int:
        """The child's pid (also its process group id)."""
        if self.popen is None:
            raise HarnessError(f"{self.name} was not started")
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        """Signal the process group, wait, then SIGKILL the group if anything is left."""
        if self.popen is None:
            return
        pgid = self.popen.pid
        if self.popen.poll() is None:
            _signal_group(pgid, self.stop_signal)
            with suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=self.stop_timeout)
        # Workers may outlive the leader (uvicorn, nginx): sweep the group regardless.
        _signal_group(pgid, signal.SIGKILL)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"{self.name} (pid {pgid}) did not die after SIGKILL") from exc
        self.popen = None


def stop_all(processes: Iterable[ManagedProcess]) -> None:
    """Stop several processes at once (each waits out its own grace period in a thread)."""
    processes = list(processes)
    if not processes:
        return
    with ThreadPoolExecutor(max_workers=len(processes)) as pool:
        for future in [pool.submit(process.stop) for process in processes]:
            future.result()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def run_logged(
    argv: Sequence[str],
    log_path: Path,
    *,
    what: str,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> None:
    """Run a command to completion, appending its output to `log_path`; raise with the tail on failure."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        try:
            result = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                user=user,
                timeout=timeout,
                check=False,
                process_group=0,
            )
        except subprocess.TimeoutExpired as exc:
            raise error_with_log(f"{what}: timed out after {timeout:.0f} s", log_path) from exc
    if result.returncode != 0:
        raise error_with_log(f"{what}: exited with {result.returncode}", log_path)


class Service:
    """Base for harness components: `start()`/`stop()`, and a context manager that stops on exit."""

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_in_parallel(stack: ExitStack, services: Iterable[Service], *, here: Iterable[Service] = ()) -> None:
    """Enter several services at once; each one that started is registered on `stack`.

    `services` start in threads, `here` in the calling thread meanwhile (Playwright's sync API
    must stay on the thread that started it). If any fails, the others still finish starting and
    are stopped by the stack's unwinding; the first failure is raised.
    """
    services = list(services)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def enter(service: Service) -> None:
        service.__enter__()
        with lock:
            stack.push(service.__exit__)

    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        futures = [pool.submit(enter, service) for service in services]
        for service in here:
            try:
                enter(service)
            except BaseException as exc:
                errors.append(exc)
    thread_errors = [error for error in (future.exception() for future in futures) if error is not None]
    if thread_errors or errors:
        raise (thread_errors + errors)[0]
