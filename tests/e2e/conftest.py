"""Shared e2e fixtures. Run with the Airflow venv: `.venv-airflow/bin/pytest tests/e2e`.

What a test run shares (localdev/services.py; README "Shared services"):

- `e2e_services` (session): one PostgreSQL, one Keycloak, one Chromium, each started on first use.
- `deployments` (session): one LocalDeployment per stack file, at most one running at a time.
- `stack_deployment("local-oidc", ...)`: a module's `deployment` fixture taken from that pool.

Tests are ordered so each stack is deployed once (every test of a stack, from every module, runs in
one stretch) and the api-server restarts come last in that stretch (`restarts_airflow("<state>")`,
grouped by state), so the declared environment is rarely restored. A restarting case parametrized over
several stacks of one IdP kind runs on the first of them only (`restarts_once_per_kind`).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from localdev.deployment import LocalDeployment
    from localdev.pool import DeploymentPool
    from localdev.services import SharedServices

RESTARTS_AIRFLOW = "restarts_airflow"
# States that restart api-server 0 only run first (one single-server restart each, in this order); any
# other state (e.g. an environment for every api-server) after them, in order of first appearance.
RESTART_STATE_ORDER = ("per-process-keys", "proxy-handling-off")
RELEASED_PORTS = "released_ports"


SHARDS = ("fixed-ports", "port-443")
"""`--e2e-shard`: two pytest processes may run at once, each with one shard (`make test` does): `port-443`
takes the stacks served on 443 with no fixed loopback port of their own (one at a time, as ever);
`fixed-ports` takes the rest (the stacks on 8443 / 9400 / 8180, the demo, the tests of no stack). The
shards share no port: the `port-443` shard's Keycloak listens on a free port."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--e2e-shard`: run one of SHARDS only."""
    parser.addoption(
        "--e2e-shard",
        choices=SHARDS,
        default=None,
        help="run only the e2e tests of one port shard (two shards can run at once): " + ", ".join(SHARDS),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the e2e tier's own marker."""
    config.addinivalue_line(
        "markers",
        f"{RESTARTS_AIRFLOW}(state): restarts api-servers with overrides (the tests of one state run together, "
        "after the stack's other tests; the declared environment is restored only when a later test needs it)",
    )


@pytest.fixture(scope="session")
def e2e_prerequisites() -> None:
    """Install what is missing (apt packages, npm ci); skip LOUDLY only when that is impossible."""
    from localdev.harness.install import PrerequisiteError, ensure_prerequisites

    try:
        ensure_prerequisites(lambda line: print(f"[e2e install] {line}"))
    except PrerequisiteError as exc:
        pytest.skip(f"!!! E2E PREREQUISITE CANNOT BE INSTALLED — end-to-end tests NOT RUN: {exc}")


def pytest_sessionfinish() -> None:
    """Stop the run's deployment, then the shared services."""
    from tests.e2e.run_state import RunState

    RunState.close()


@pytest.fixture(scope="session")
def e2e_services(e2e_prerequisites: None) -> SharedServices:
    """The run's PostgreSQL, Keycloak and Chromium (localdev/services.py), each started on first use."""
    from tests.e2e.run_state import RunState

    return RunState.shared()[0]


@pytest.fixture(scope="session")
def deployments(e2e_prerequisites: None) -> DeploymentPool:
    """One LocalDeployment per stack file for the whole run (at most one running at a time)."""
    from tests.e2e.run_state import RunState

    return RunState.shared()[1]


@pytest.fixture
def released_ports(deployments: DeploymentPool, e2e_services: SharedServices) -> None:
    """For a test that starts its own stack on the fixed ports (`make demo`): nothing of the run's
    listens there. Such tests run first, before anything shared started, so this rarely stops anything."""
    from localdev.ports import KEYCLOAK_PORT

    deployments.release()
    e2e_services.release_ports(KEYCLOAK_PORT)


def stack_path(stack: str | Path) -> Path:
    """A stack name in stacks/ (`local-oidc`) or a stack file's path."""
    from localdev.deployment import stack_file

    return stack if isinstance(stack, Path) else stack_file(stack)


def stack_deployment(*stacks: str | Path, setup: Callable[[LocalDeployment], None] | None = None) -> Any:
    """A module's `deployment` fixture: each of `stacks` in turn (a parameter, shown in test ids), taken
    from the run's pool, so every module asking for a stack shares its one deployment.

        deployment = stack_deployment("local", "search-prod")

    `setup` runs once per module on the shared deployment (keep it idempotent: other modules use it too).
    """
    params = [pytest.param(stack_path(stack), id=stack_path(stack).stem.removeprefix("Pulumi.")) for stack in stacks]

    @pytest.fixture(scope="module", params=params, name="deployment")
    def deployment(request: pytest.FixtureRequest, deployments: DeploymentPool) -> LocalDeployment:
        running = deployments.get(request.param)
        if setup is not None:
            setup(running)
        return running

    return deployment


def deployed(stack_file: Path) -> Iterator[LocalDeployment]:
    """A module fixture's body (kept for modules not yet on `stack_deployment`): the stack's deployment
    from the run's pool (stopped when another stack is needed, or at the end of the run)."""
    from tests.e2e.run_state import RunState

    yield RunState.shared()[1].get(stack_file)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test of no stack runs with no deployment up: the last stack's is stopped (its ports, realm and
    memory freed). The order puts each stack's tests together, so this never stops a stack still needed."""
    from tests.e2e.run_state import RunState

    pool = RunState.pool
    if pool is not None and _stack_of(item) is None and "deployment" not in getattr(item, "fixturenames", ()):
        pool.release()


def _stack_of(item: pytest.Item) -> Path | None:
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get("deployment") if callspec is not None else None
    return value if isinstance(value, Path) else None


def _restart_state(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker(RESTARTS_AIRFLOW)
    if marker is None:
        return None
    return str(marker.args[0]) if marker.args else item.nodeid


def shard_of(item: pytest.Item) -> str:
    """The port shard of a test (SHARDS): `port-443` for a test of a stack whose hostname names no port and
    whose IdP side names no loopback port; `fixed-ports` for everything else."""
    stack = _stack_of(item)
    if stack is None or not stack.exists():
        return "fixed-ports"
    text = stack.read_text()
    hostname = str(_spec(stack).get("hostname") or ":")
    return "fixed-ports" if ":" in hostname or "127.0.0.1:" in text or "localhost:" in text else "port-443"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the chosen shard's tests (`--e2e-shard`), then order the run: tests that need the fixed ports
    to themselves first; then one stretch per stack (every module's tests of that stack), its
    api-server-restarting tests last, grouped by state. Tests of no stack stay in stretches of their own
    module. Stable otherwise."""
    from tests.e2e.run_state import RunState

    repeated = restarts_once_per_kind(items)
    if repeated:
        config.hook.pytest_deselected(items=repeated)
        left_out = {id(item) for item in repeated}
        items[:] = [item for item in items if id(item) not in left_out]
    shard = config.getoption("--e2e-shard", default=None)
    if shard is not None:
        deselected = [item for item in items if shard_of(item) != shard]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if shard_of(item) == shard]
        # The other shard may be using the fixed Keycloak port: this one takes a free port.
        RunState.keycloak_port = None if shard == "port-443" else RunState.keycloak_port
    groups: dict[object, int] = {}
    states: dict[str, int] = {state: index for index, state in enumerate(RESTART_STATE_ORDER)}

    def key(indexed: tuple[int, pytest.Item]) -> tuple[int, int, int, int]:
        index, item = indexed
        first = 0 if RELEASED_PORTS in getattr(item, "fixturenames", ()) else 1
        group = groups.setdefault(_stack_of(item) or item.module, len(groups))
        state = _restart_state(item)
        return (first, group, -1 if state is None else states.setdefault(state, len(states)), index)

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]
    RunState.needs_keycloak = _needs_keycloak(items)


def restarts_once_per_kind(items: list[pytest.Item]) -> list[pytest.Item]:
    """The api-server-restarting cases (`restarts_airflow`) to leave out: those of a test parametrized over
    several stacks of one IdP kind (Okta's dev and prod, Keycloak's local and search-prod), on every stack
    but the first. What they restart (the secret keys, proxy handling, a rotated secret's roll) is the
    kind-agnostic Airflow side and the kind's secret, so one stack per kind proves it, and each costs
    api-server restarts. Computed before the shard split, so both shards leave out the same ones; a run
    narrowed by `-k` to one stack keeps that stack's."""
    first: dict[tuple[str, str], Path] = {}
    repeated = []
    for item in items:
        stack = _stack_of(item)
        if stack is None or _restart_state(item) is None or not stack.exists():
            continue
        test = (item.nodeid.split("[", 1)[0], _idp_kind(stack))
        if first.setdefault(test, stack) != stack:
            repeated.append(item)
    return repeated


def _idp_kind(stack: Path) -> str:
    return str((_spec(stack).get("idp") or {}).get("kind"))


@functools.cache
def _spec(stack: Path) -> dict[str, Any]:
    """The stack file's `airflow-oidc:spec` as written (read once per run: every test of the stack asks)."""
    return dict(((yaml.safe_load(stack.read_text()) or {}).get("config") or {}).get("airflow-oidc:spec") or {})


def _needs_keycloak(items: list[pytest.Item]) -> bool:
    """Whether a test of a Keycloak stack runs, or one that uses the shared services itself (the Keycloak
    modules; not the tests that want the fixed ports to themselves)."""
    stacks = {stack for item in items if (stack := _stack_of(item)) is not None}
    keycloak = re.compile(r"^\s+kind:\s*keycloak\s*$", re.MULTILINE)
    if any(stack.exists() and keycloak.search(stack.read_text()) for stack in stacks):
        return True
    return any(
        "e2e_services" in (fixtures := getattr(item, "fixturenames", ())) and RELEASED_PORTS not in fixtures
        for item in items
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Where the run's time went: the shared services' and each deployment's start times."""
    from tests.e2e.run_state import RunState

    services, pool = RunState.services, RunState.pool
    if services is None and pool is None:
        return
    terminalreporter.section("e2e start times (seconds)")
    if services is not None:
        shared = ", ".join(f"{what} {seconds:.1f}" for what, seconds in services.timings.items())
        terminalreporter.write_line(f"shared: {shared or 'nothing started'}; run dir {services.run.path}")
    for stack, timings in pool.history if pool is not None else []:
        terminalreporter.write_line(f"{stack}: " + ", ".join(f"{key} {value:.1f}" for key, value in timings.items()))
    terminalreporter.write_line(f"at {time.strftime('%H:%M:%S')}")
