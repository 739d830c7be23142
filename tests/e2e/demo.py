"""`make demo`: stacks/Pulumi.local.yaml deployed on this machine, exactly as the program declares it.

    .venv-airflow/bin/python -m tests.e2e.demo           # up until Ctrl-C (or SIGTERM)
    .venv-airflow/bin/python -m tests.e2e.demo --check   # up, one real browser login as admin, down; exit 0/1

Fixed ports, both from the stack file: the OpenID provider on http://127.0.0.1:9400 (the stack's
issuer) and the TLS ingress on https://localhost:8443 (its hostname). Installs what is missing
first (apt packages, npm ci). Sign in at the provider with an account id below and any password.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from tests.e2e.deployment import LocalDeployment, stack_file
from tests.e2e.harness.install import PrerequisiteError, ensure_prerequisites
from tests.e2e.harness.process import HarnessError, port_is_free

LOCAL_STACK = stack_file("local")
PROVIDER_PORT = 9400  # the local stack's issuer, http://127.0.0.1:9400
HTTPS_PORT = 8443  # the local stack's hostname, localhost:8443
SHOWN_KINDS = ("mapped", "unmapped", "default-role", "mapped+default")


def say(line: str = "") -> None:
    """Print at once (make and CI buffer otherwise)."""
    print(line, flush=True)


def summary(deployment: LocalDeployment) -> list[str]:
    """What a person needs to sign in: URL, users and roles, the registration."""
    lines = [
        f"Airflow for {deployment.stack_file.relative_to(deployment.stack_file.parents[1])} is up.",
        "",
        f"  URL                      {deployment.base_url}   (self-signed certificate: accept it)",
        f"  OpenID provider (issuer) {deployment.provider.issuer}",
        f"  client registered        {deployment.client.client_id}",
        f"  redirect URI registered  {deployment.redirect_uri}",
        "",
        f'  Click "Sign In with {deployment.provider_name}", then log in at the provider with an',
        "  account id below as the login and any password:",
        "",
        f"  {'login':<20} {'IdP groups':<42} Airflow role",
    ]
    for user in deployment.users_of(*SHOWN_KINDS):
        role = ", ".join(sorted(user.expected_roles)) or "(refused: no mapped group)"
        lines.append(f"  {user.account_id:<20} {', '.join(user.groups):<42} {role}")
    lines += ["", f"  logs: {deployment.run.path}"]
    return lines


def check(deployment: LocalDeployment) -> bool:
    """One real browser sign-in as the admin user; True when it holds exactly its roles."""
    admin = deployment.admin
    result = deployment.login(admin, label="demo-check", settle=True)
    roles = deployment.roles(admin.username) if result.has_token else None
    ok = result.has_token and roles == set(admin.expected_roles)
    say(f"demo check: {admin.account_id} signed in: {result.has_token}, ended at {result.final_url}")
    expected = sorted(admin.expected_roles)
    say(f"demo check: Airflow user {admin.username} has roles {sorted(roles or [])}, expected {expected}")
    if result.screenshot:
        say(f"demo check: screenshot {result.screenshot}")
    say(f"demo check: {'OK' if ok else 'FAILED'}")
    if not ok:
        say(f"demo check: steps {result.steps}; page {result.page_text[:300]!r}")
    return ok


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so the deployment's context manager stops what it started.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Bring the local stack up; `--check`: one login, then down. Exit code 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="one browser login as admin, then stop; exit 0/1")
    args = parser.parse_args(argv)

    taken = [port for port in (PROVIDER_PORT, HTTPS_PORT) if not port_is_free(port)]
    if taken:
        say(
            f"demo: {'ports' if len(taken) > 1 else 'port'} {' and '.join(map(str, taken))} on 127.0.0.1 "
            f"{'are' if len(taken) > 1 else 'is'} already in use; the demo needs "
            f"{PROVIDER_PORT} (OpenID provider) and {HTTPS_PORT} (https://localhost:{HTTPS_PORT}). "
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
        with LocalDeployment(LOCAL_STACK, label="demo", browser=args.check) as deployment:
            if (deployment.provider.port, deployment.https_port) != (PROVIDER_PORT, HTTPS_PORT):
                raise HarnessError(
                    f"{LOCAL_STACK.name} now declares ports {deployment.provider.port} / {deployment.https_port}: "
                    "update PROVIDER_PORT / HTTPS_PORT in tests/e2e/demo.py and the README"
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
