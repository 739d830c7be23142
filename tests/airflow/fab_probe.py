"""Load a stack's rendered webserver_config.py into real Airflow + FAB and report what they do.

Airflow's configuration and auth manager are process-wide, so each stack runs in a process of its own under
.venv-airflow's Python: `python fab_probe.py --serve FD`. Starting Airflow's API app costs seconds of CPU (its
routes and FAB's roles), so a process serves every request for its stack, its Airflow home and its environment
(`ProbePool`, one per test session) instead of one process per request.

Protocol: the first line on stdin is the setup `{"stack_file", "stack", "provider", "home", "client_id"}`; each
later line is a request `{"steps": [...]}`, answered by one JSON line on file descriptor FD (Airflow logs to
stdout and stderr, which go to the process's log file). Steps: `{"op": "callback", "headers": {...}}` (where
/auth/login/<provider> redirects the browser) and `{"op": "login", "claims": {...}, "userinfo": {...}|null}` (the
ID token's verified claims as Authlib hands them to the security manager, and what the userinfo endpoint would
answer). The answer: `{"provider", "config_file", "results": [one per step]}`, or `{"error": traceback}`.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from components.airflow_values import render_webserver_config  # noqa: E402
from components.contract import client_contract  # noqa: E402
from components.stack_config import spec_from_stack_file  # noqa: E402

REQUEST_TIMEOUT = 300.0
"""Seconds one request (Airflow's start included) may take before the probe is declared stuck."""
LOG_TAIL = 4000


class ProbeError(AssertionError):
    """A probe process failed or stopped answering; the message ends with its log's tail."""


class Probe:
    """One probe process: a stack's webserver_config.py loaded in Airflow + FAB, answering requests."""

    def __init__(self, setup: dict[str, Any], env: dict[str, str]) -> None:
        self.log = Path(setup["home"]) / f"probe-{setup['stack']}-{os.getpid()}-{id(self)}.log"
        self._log_file = self.log.open("wb")
        answers, self._answer_end = os.pipe()
        self._answers = os.fdopen(answers, "r")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__)), "--serve", str(self._answer_end)],
            stdin=subprocess.PIPE,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**env, "PYTHONUNBUFFERED": "1"},
            pass_fds=(self._answer_end,),
            text=True,
        )
        os.close(self._answer_end)
        assert self.process.stdin is not None
        self._requests: IO[str] = self.process.stdin
        self._send(setup)

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._requests.write(json.dumps(message) + "\n")
            self._requests.flush()
        except BrokenPipeError:
            raise ProbeError(f"the probe process exited ({self.process.poll()}):\n{self.log_tail()}") from None

    def log_tail(self) -> str:
        return self.log.read_bytes().decode(errors="replace")[-LOG_TAIL:]

    def request(self, steps: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
        """The answer to `steps`, and what the process logged while answering."""
        since = self.log.stat().st_size
        self._send({"steps": steps})
        ready, _, _ = select.select([self._answers], [], [], REQUEST_TIMEOUT)
        line = self._answers.readline() if ready else ""
        logged = self.log.read_bytes()[since:].decode(errors="replace")
        if not line:
            state = "exited " + str(self.process.poll()) if ready else f"gave no answer in {REQUEST_TIMEOUT:.0f} s"
            raise ProbeError(f"the probe process {state}:\n{logged[-LOG_TAIL:] or self.log_tail()}")
        answer = json.loads(line)
        if "error" in answer:
            raise ProbeError(f"{answer['error']}\n--- probe log:\n{logged[-LOG_TAIL:]}")
        return answer, logged

    def close(self) -> None:
        self._requests.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._answers.close()
        self._log_file.close()


class ProbePool:
    """One probe process per (setup, environment), started at its first request and kept for the session."""

    def __init__(self) -> None:
        self._probes: dict[str, Probe] = {}

    def request(
        self, setup: dict[str, Any], env: dict[str, str], steps: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], str]:
        # pytest names the running test in the environment: not a reason for another process.
        env = {name: value for name, value in env.items() if name != "PYTEST_CURRENT_TEST"}
        key = json.dumps([setup, env], sort_keys=True)
        if key not in self._probes:
            self._probes[key] = Probe(setup, env)
        return self._probes[key].request(steps)

    def close(self) -> None:
        for probe in self._probes.values():
            probe.close()
        self._probes.clear()


POOL = ProbePool()
"""The test session's probes (tests/airflow/conftest.py closes them)."""


def serve(answer_fd: int) -> None:
    """Load the stack named by stdin's first line, then answer each later line (see the module's docstring)."""
    answers = os.fdopen(answer_fd, "w")
    setup = json.loads(sys.stdin.readline())
    spec = spec_from_stack_file(Path(setup["stack_file"]))
    contract = client_contract(spec, stack=setup["stack"], provider=setup.get("provider") or {})
    home = Path(setup["home"])
    config_file = home / f"webserver_config_{setup['stack']}.py"
    config_file.write_text(render_webserver_config(contract))
    os.environ.update(
        {
            "AIRFLOW__FAB__CONFIG_FILE": str(config_file),
            "AIRFLOW__API__BASE_URL": spec.public_url,
            "AIRFLOW__FAB__ENABLE_PROXY_FIX": "True",
            "AIRFLOW_OIDC_CLIENT_ID": setup["client_id"],
            "AIRFLOW_OIDC_CLIENT_SECRET": "probe-secret",
        }
    )
    import airflow.providers.fab.auth_manager.fab_auth_manager as fab_auth_manager
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from fastapi.testclient import TestClient

    # Keep a handle on the Flask app the FAB auth manager builds (for an application context).
    flask_apps: list[Any] = []
    build_flask_app = fab_auth_manager.create_app

    def capture(*args: Any, **kwargs: Any) -> Any:
        flask_apps.append(build_flask_app(*args, **kwargs))
        return flask_apps[-1]

    fab_auth_manager.create_app = capture  # type: ignore[assignment]
    app = create_app()
    client = TestClient(app, base_url="http://127.0.0.1:8080")
    manager: Any = get_auth_manager()
    sm = manager.security_manager
    remote = sm.oauth_remotes[contract.provider]
    # The discovery document of the real issuer is out of reach here; the e2e tier fetches a real one.
    remote.server_metadata.update(
        {
            "_loaded_at": time.time(),
            "issuer": contract.issuer,
            "authorization_endpoint": contract.issuer + "/authorize",
            "token_endpoint": contract.issuer + "/token",
            "userinfo_endpoint": contract.issuer + "/userinfo",
            "jwks_uri": contract.issuer + "/keys",
        }
    )
    for line in sys.stdin:
        try:
            results = [
                step_result(client, flask_apps[-1], sm, remote, contract.provider, step)
                for step in json.loads(line)["steps"]
            ]
            answer: dict[str, Any] = {
                "provider": contract.provider,
                "config_file": str(config_file),
                "results": results,
            }
        except Exception:  # noqa: BLE001 - the test that asked reads the traceback
            answer = {"error": traceback.format_exc()}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    # stdin closed: the session is over. Airflow's non-daemon threads and exit hooks have nothing to keep.
    answers.close()
    sys.stdout.flush()
    os._exit(0)


def step_result(client: Any, flask_app: Any, sm: Any, remote: Any, provider: str, step: dict[str, Any]) -> Any:
    if step["op"] == "callback":
        response = client.get(f"/auth/login/{provider}", headers=step["headers"], follow_redirects=False)
        location = response.headers.get("location", "")
        query = parse_qs(urlparse(location).query)
        return {
            "status": response.status_code,
            "redirect_uri": query.get("redirect_uri", [None])[0],
            "scope": query.get("scope", [None])[0],
            "code_challenge_method": query.get("code_challenge_method", [None])[0],
            "authorize": location.split("?")[0],
        }
    if step["op"] == "login":
        return login(flask_app, sm, remote, provider, step)
    raise ValueError(step["op"])


def login(flask_app: Any, sm: Any, remote: Any, provider: str, step: dict[str, Any]) -> dict[str, Any]:
    calls: list[str] = []

    def userinfo(**kwargs: Any) -> dict[str, Any]:
        calls.append("userinfo")
        if step.get("userinfo") is None:
            raise AssertionError("the userinfo endpoint was not expected to be called")
        return dict(step["userinfo"])

    remote.userinfo = userinfo
    with flask_app.test_request_context("/auth/oauth-authorized/" + provider):
        info = sm.get_oauth_user_info(provider, {"access_token": "at", "userinfo": step["claims"]})
        user = sm.auth_user_oauth(info) if info else None
        username = info.get("username") if info else None
        stored = sm.find_user(username=username) if username else None
        return {
            "info": info,
            "logged_in": user is not None,
            "userinfo_calls": calls,
            "user": None
            if stored is None
            else {
                "username": stored.username,
                "email": stored.email,
                "first_name": stored.first_name,
                "last_name": stored.last_name,
                "roles": sorted(role.name for role in stored.roles),
            },
            "user_count": len(sm.get_all_users()),
        }


if __name__ == "__main__":
    if sys.argv[1:2] != ["--serve"] or len(sys.argv) != 3:
        sys.exit("usage: fab_probe.py --serve FD  (tests/airflow starts it through ProbePool)")
    serve(int(sys.argv[2]))
