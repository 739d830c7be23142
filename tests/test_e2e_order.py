"""The e2e tier's run order (tests/e2e/conftest.py): each stack in one stretch, restarts last, grouped by state."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.e2e.conftest import pytest_collection_modifyitems

LOCAL, LOCAL_OIDC = Path("stacks/Pulumi.local.yaml"), Path("stacks/Pulumi.local-oidc.yaml")


@dataclass
class Item:
    """What the hook reads of a pytest item."""

    name: str
    module: str
    stack: Path | None = None
    restart_state: str | None = None
    fixturenames: list[str] = field(default_factory=list)

    @property
    def callspec(self) -> Any:
        return SimpleNamespace(params={"deployment": self.stack}) if self.stack else None

    def get_closest_marker(self, name: str) -> Any:
        if name == "restarts_airflow" and self.restart_state is not None:
            return SimpleNamespace(args=(self.restart_state,))
        return None


def ordered(items: list[Item]) -> list[str]:
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    return [item.name for item in items]


def test_each_stack_runs_in_one_stretch_with_its_restarts_last_grouped_by_state() -> None:
    items = [
        Item("demo", "test_demo", fixturenames=["released_ports"]),
        Item("doctor-declared", "test_doctor", LOCAL_OIDC),
        Item("doctor-proxy-off", "test_doctor", LOCAL_OIDC, "proxy-handling-off"),
        Item("doctor-no-end-session", "test_doctor", LOCAL_OIDC, "no-end-session-endpoint"),
        Item("doctor-logout", "test_doctor", LOCAL_OIDC),
        Item("kc-doctor", "test_doctor_keycloak", LOCAL),
        Item("kc-server", "test_keycloak_server"),
        Item("kc-login", "test_login_keycloak", LOCAL),
        Item("kc-keys", "test_login_keycloak", LOCAL, "per-process-keys"),
        Item("kc-proxy-off", "test_login_keycloak", LOCAL, "proxy-handling-off"),
        Item("oidc-login", "test_login_oidc", LOCAL_OIDC),
        Item("oidc-keys", "test_login_oidc", LOCAL_OIDC, "per-process-keys"),
        Item("oidc-proxy-off", "test_login_oidc", LOCAL_OIDC, "proxy-handling-off"),
        Item("oidc-after-restarts", "test_login_oidc", LOCAL_OIDC),
    ]
    assert ordered(items) == [
        "demo",
        # local-oidc: every declared test of every module, then the restarts, single-server states first
        "doctor-declared",
        "doctor-logout",
        "oidc-login",
        "oidc-after-restarts",
        "oidc-keys",
        "doctor-proxy-off",
        "oidc-proxy-off",
        "doctor-no-end-session",
        # local
        "kc-doctor",
        "kc-login",
        "kc-keys",
        "kc-proxy-off",
        # a module of no stack keeps its own stretch
        "kc-server",
    ]


def test_tests_of_no_stack_stay_in_their_modules_stretch() -> None:
    items = [Item("b", "test_b"), Item("a", "test_a"), Item("b2", "test_b")]
    assert ordered(items) == ["b", "b2", "a"]
