"""`make demo`: stacks/Pulumi.local.yaml deployed on this machine, exactly as the program declares it.

    .venv-airflow/bin/python -m localdev.demo           # up until Ctrl-C (or SIGTERM)
    .venv-airflow/bin/python -m localdev.demo --check   # up, one real browser login as admin, down; exit 0/1

Fixed ports, both from the stack file: a real Keycloak on http://127.0.0.1:8180 (the stack's
`idp.url`; realm, groups, client and mapper as the program declares them) and the TLS ingress on
https://localhost:8443 (its hostname). Airflow runs its api-servers, scheduler, triggerer and
dag-processor with one DAG (localdev/demo_dags/hello_sso.py). Installs what is missing first (apt
packages, npm ci, Keycloak via Maven). Sign in on Keycloak's page with a username and password below.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import requests

from localdev.deployment import LocalDeployment, stack_file
from localdev.harness.install import PrerequisiteError, ensure_prerequisites
from localdev.harness.process import HarnessError, port_is_free, wait_until
from localdev.keycloak_idp import KeycloakIdp

LOCAL_STACK = stack_file("local")
PROVIDER_PORT = 8180  # the local stack's Keycloak, http://127.0.0.1:8180
HTTPS_PORT = 8443  # the local stack's hostname, localhost:8443
SHOWN_KINDS = ("mapped", "unmapped", "default-role", "mapped+default")
DAGS_FOLDER = Path(__file__).resolve().parent / "demo_dags"
DEMO_DAG = "hello_sso"


def say(line: str = "") -> None:
    """Print at once (make and CI buffer otherwise)."""
    print(line, flush=True)


def summary(deployment: LocalDeployment) -> list[str]:
    """What a person needs to sign in: URLs, users (and passwords) and roles, the registration."""
    lines = [
        f"Airflow for {deployment.stack_file.relative_to(deployment.stack_file.parents[1])} is up.",
        "",
        f"  Airflow                  {deployment.base_url}   (self-signed certificate: accept it)",
    ]
    if isinstance(deployment.provider, KeycloakIdp):
        lines += [
            f"  Keycloak                 {deployment.provider.url}   (realm {deployment.provider.realm})",
            f"  issuer                   {deployment.provider.issuer}",
        ]
    else:
        lines.append(f"  OpenID provider (issuer) {deployment.provider.issuer}")
    lines += [
        f"  client registered        {deployment.client.client_id}",
        f"  redirect URI registered  {deployment.redirect_uri}",
        "",
    ]
    if deployment.is_keycloak:
        lines += [
            f'  Click "Sign In with {deployment.provider_name}", then log in on Keycloak\'s page with a',
            "  username and password below (test users of this throwaway realm):",
            "",
            f"  {'username':<12} {'password':<18} {'Keycloak groups':<24} Airflow role",
        ]
        for user in deployment.users_of(*SHOWN_KINDS):
            role = ", ".join(sorted(user.expected_roles)) or "(refused: no mapped group)"
            groups = ", ".join(user.groups) or "(none)"
            lines.append(f"  {user.account_id:<12} {user.password:<18} {groups:<24} {role}")
    else:
        lines += [
            f'  Click "Sign In with {deployment.provider_name}", then log in at the provider with an',
            "  account id below as the login and any password:",
            "",
            f"  {'login':<20} {'IdP groups':<42} Airflow role",
        ]
        for user in deployment.users_of(*SHOWN_KINDS):
            role = ", ".join(sorted(user.expected_roles)) or "(refused: no mapped group)"
            lines.append(f"  {user.account_id:<20} {', '.join(user.group_names or user.groups):<42} {role}")
    if deployment.dags_folder is not None:
        lines += [
            "",
            f"  DAG {DEMO_DAG!r}: trigger it (User role and up); the run shows who triggered it.",
            "  Scheduler, triggerer and dag-processor run beside the api-servers.",
        ]
    lines += ["", f"  logs: {deployment.run.path}"]
    return lines


def trigger_demo_dag(deployment: LocalDeployment, token: str) -> dict[str, object]:
    """Trigger the demo DAG as the holder of `token` (first api-server, direct); the finished run."""
    api = f"{deployment.airflow.base_url(0)}/api/v2/dags/{DEMO_DAG}"
    headers = {"Authorization": f"Bearer {token}"}
    wait_until(
        lambda: requests.get(api, headers=headers, timeout=5).status_code == 200,
        timeout=90,
        what=f"DAG {DEMO_DAG} parsed by the dag-processor",
    )
    created = requests.post(f"{api}/dagRuns", json={"logical_date": None}, headers=headers, timeout=10)
    if created.status_code != 200:
        raise HarnessError(f"triggering {DEMO_DAG}: {created.status_code} {created.text[:300]}")
    run_id = created.json()["dag_run_id"]

    def finished() -> dict[str, object] | None:
        run = requests.get(f"{api}/dagRuns/{run_id}", headers=headers, timeout=5).json()
        return run if run.get("state") in ("success", "failed") else None

    return wait_until(finished, timeout=120, what=f"run {run_id} of {DEMO_DAG}", interval=1)


def check(deployment: LocalDeployment) -> bool:
    """One real browser sign-in as the admin user; True when it holds exactly its roles."""
    admin = deployment.admin
    result = deployment.login(admin, label="demo-check", settle=True)
    roles = deployment.roles(admin.username) if result.has_token else None
    ok = result.has_token and roles == set(admin.expected_roles)
    say(f"demo check: {admin.account_id} signed in: {result.has_token}, ended at {result.final_url}")
    expected = sorted(admin.expected_roles)
    say(f"demo check: Airflow user {admin.username} has roles {sorted(roles or [])}, expected {expected}")
    if ok and deployment.dags_folder is not None and result.token:
        started = time.monotonic()
        run = trigger_demo_dag(deployment, result.token)
        # Airflow names the triggering user by its username, or as "<readable name> (<username>)".
        by = str(run.get("triggering_user_name"))
        attributed = by == admin.username or by.endswith(f" ({admin.username})")
        say(
            f"demo check: {DEMO_DAG} run {run.get('dag_run_id')} {run.get('state')} in "
            f"{time.monotonic() - started:.1f} s, triggered by {run.get('triggering_user_name')}"
        )
        ok = run.get("state") == "success" and attributed
    if result.screenshot:
        say(f"demo check: screenshot {result.screenshot}")
    say(f"demo check: {'OK' if ok else 'FAILED'}")
    if not ok:
        say(f"demo check: steps {result.steps}; page {result.page_text[:300]!r}")
    return ok


def _timings(deployment: LocalDeployment) -> str:
    return ", ".join(f"{key} {value:.0f} s" for key, value in deployment.timings.items())


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so the deployment's context manager stops what it started.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Bring the local stack up; `--check`: one login, then down. Exit code 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m localdev.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="one browser login as admin, then stop; exit 0/1")
    args = parser.parse_args(argv)

    taken = [port for port in (PROVIDER_PORT, HTTPS_PORT) if not port_is_free(port)]
    if taken:
        say(
            f"demo: {'ports' if len(taken) > 1 else 'port'} {' and '.join(map(str, taken))} on 127.0.0.1 "
            f"{'are' if len(taken) > 1 else 'is'} already in use; the demo needs "
            f"{PROVIDER_PORT} (Keycloak) and {HTTPS_PORT} (https://localhost:{HTTPS_PORT}). "
            "Is another `make demo` running? Stop it, or whatever holds the port, and run again."
        )
        return 2
    try:
        ensure_prerequisites(lambda line: say(f"[install] {line}"))
    except PrerequisiteError as exc:
        say(f"demo: prerequisites cannot be installed: {exc}")
        return 1

    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C even when started with SIGINT ignored (a background job of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    say(f"demo: running the program for {LOCAL_STACK.name} under the mock engine and starting what it declares ...")
    try:
        started = time.monotonic()
        with LocalDeployment(LOCAL_STACK, label="demo", browser=args.check, dags_folder=DAGS_FOLDER) as deployment:
            say(f"demo: up in {time.monotonic() - started:.0f} s ({_timings(deployment)})")
            if (deployment.provider.port, deployment.https_port) != (PROVIDER_PORT, HTTPS_PORT):
                raise HarnessError(
                    f"{LOCAL_STACK.name} now declares ports {deployment.provider.port} / {deployment.https_port}: "
                    "update PROVIDER_PORT / HTTPS_PORT in localdev/demo.py and the README"
                )
            for line in summary(deployment):
                say(line)
            say()
            if args.check:
                return 0 if check(deployment) else 1
            say("Up. Ctrl-C stops everything.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except HarnessError as exc:
        say(f"demo: FAILED: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        say("demo: stopped everything it started.")


if __name__ == "__main__":
    sys.exit(main())
