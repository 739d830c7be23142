"""The e2e test run's state: its shared services and deployment pool (localdev/services.py, localdev/pool.py).

It lives here, in a module imported once by its package name and light to import (the unit tier
imports the conftest's ordering hook): a conftest.py can be imported twice (by pytest, and by a test
module that imports a helper from it), and two copies must not start two of everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from localdev.ports import KEYCLOAK_PORT

if TYPE_CHECKING:
    from localdev.pool import DeploymentPool
    from localdev.services import SharedServices


class RunState:
    """The test run's services and pool (class attributes: one per process)."""

    services: SharedServices | None = None
    pool: DeploymentPool | None = None
    needs_keycloak = False
    """Set at collection: a test of a Keycloak stack, or of the shared Keycloak itself, will run."""
    keycloak_port: int | None = KEYCLOAK_PORT
    """The shared Keycloak's preferred port; None: a free one (the `port-443`
    shard, which may run beside the shard that serves the `local` stack's Keycloak on 8180)."""

    @classmethod
    def shared(cls) -> tuple[SharedServices, DeploymentPool]:
        """The run's services and pool, created on first use (closed by `close()` at the end of the run)."""
        if cls.services is None or cls.pool is None:
            from localdev.harness.process import RunDir
            from localdev.pool import DeploymentPool
            from localdev.services import SharedServices

            cls.services = SharedServices(RunDir.create("shared"), keycloak_port=cls.keycloak_port)
            cls.pool = DeploymentPool(cls.services, prestart_keycloak=cls.needs_keycloak)
        return cls.services, cls.pool

    @classmethod
    def close(cls) -> None:
        """Stop the run's deployment, then the shared services (their timings stay readable)."""
        try:
            if cls.pool is not None:
                cls.pool.close()
        finally:
            if cls.services is not None:
                cls.services.close()
