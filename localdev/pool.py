"""The pool that keeps one deployment per stack for a whole e2e test run (moved out of `services.py`, which
the deployment imports: the pool imports both).

`DeploymentPool.get(stack_file)` returns that stack's running `LocalDeployment`, stopping another
stack's first (stacks share fixed ports such as 8443); the tests are ordered by stack
(tests/e2e/conftest.py), so each stack is deployed once per run.
"""

from __future__ import annotations

from pathlib import Path

from localdev.deployment import LocalDeployment
from localdev.services import SharedServices


class DeploymentPool:
    """One LocalDeployment per stack file for the whole run, at most one running at a time."""

    def __init__(self, services: SharedServices, *, prestart_keycloak: bool = False) -> None:
        self.services = services
        self.prestart_keycloak = prestart_keycloak
        """The run needs Keycloak: the first deployment starts it in the background (`prestart_keycloak()`)."""
        self.current: LocalDeployment | None = None
        self.history: list[tuple[str, dict[str, float]]] = []
        """(stack file name, timings) of every deployment started, for the end-of-run summary."""
        self._failed: dict[Path, BaseException] = {}

    def get(self, stack_file: Path) -> LocalDeployment:
        """The running deployment of `stack_file`; another stack's is stopped first."""
        if self.current is not None and self.current.stack_file == stack_file:
            return self.current
        if stack_file in self._failed:
            # Once per run: every later module of this stack fails at once with the same cause.
            raise self._failed[stack_file]
        self.release()
        if self.prestart_keycloak:
            self.services.prestart_keycloak()
        deployment = LocalDeployment(stack_file, services=self.services)
        self.history.append((stack_file.name, deployment.timings))
        try:
            deployment.__enter__()
        except Exception as exc:
            self._failed[stack_file] = exc
            raise
        self.current = deployment
        return deployment

    def release(self) -> None:
        """Stop the running deployment, if any."""
        current, self.current = self.current, None
        if current is not None:
            current.__exit__(None, None, None)

    def close(self) -> None:
        """Stop the running deployment."""
        self.release()
