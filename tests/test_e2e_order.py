"""The e2e tier's run order and port shards (tests/e2e/conftest.py): each stack in one stretch, restarts last,
grouped by state; `--e2e-shard` splits the tests into two sets that share no port."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.e2e.conftest import pytest_collection_modifyitems, shard_of
from tests.e2e.run_state import RunState

STACKS = Path(__file__).resolve().parent.parent / "stacks"
LOCAL, LOCAL_OIDC = STACKS / "Pulumi.local.yaml", STACKS / "Pulumi.local-oidc.yaml"


@dataclass
class Item:
    """What the hook reads of a pytest item."""

    name: str
    module: str
    stack: Path | None = None
    restart_state: str | None = None
    fixturenames: list[str] = field(default_factory=list)
    test: str = ""
    """The test function (the node id before the stack parameter); the name when not given."""

    @property
    def nodeid(self) -> str:
        stack = f"[{self.stack.stem}]" if self.stack else ""
        return f"tests/e2e/{self.module}.py::{self.test or self.name}{stack}"

    @property
    def callspec(self) -> Any:
        return SimpleNamespace(params={"deployment": self.stack}) if self.stack else None

    def get_closest_marker(self, name: str) -> Any:
        if name == "restarts_airflow" and self.restart_state is not None:
            return SimpleNamespace(args=(self.restart_state,))
        return None


@dataclass
class Config:
    """What the hook reads of pytest's config: `--e2e-shard`, and the deselection hook."""

    shard: str | None = None
    deselected: list[str] = field(default_factory=list)

    def getoption(self, name: str, default: Any = None) -> Any:
        assert name == "--e2e-shard"
        return self.shard

    @property
    def hook(self) -> Any:
        return SimpleNamespace(pytest_deselected=lambda items: self.deselected.extend(i.name for i in items))


def ordered(items: list[Item], config: Config | None = None) -> list[str]:
    pytest_collection_modifyitems(config=config or Config(), items=items)  # type: ignore[arg-type]
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


def test_the_two_shards_split_the_tests_by_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """`port-443` takes the stacks on 443 with no loopback port of their own; `fixed-ports` all the rest."""
    monkeypatch.setattr(RunState, "keycloak_port", RunState.keycloak_port)  # the port-443 shard clears it
    on_443 = ["dev", "prod", "risk-prod", "growth-prod", "search-prod"]
    assert {name: shard_of(Item(name, "m", STACKS / f"Pulumi.{name}.yaml")) for name in on_443} == dict.fromkeys(
        on_443, "port-443"
    )
    for item in [Item("a", "m", LOCAL), Item("b", "m", LOCAL_OIDC), Item("c", "test_keycloak_server")]:
        assert shard_of(item) == "fixed-ports", item.name

    def items() -> list[Item]:
        return [
            Item("demo", "test_demo", fixturenames=["released_ports"]),
            Item("oidc", "test_login_oidc", LOCAL_OIDC),
            Item("okta-dev", "test_login_okta", STACKS / "Pulumi.dev.yaml"),
            Item("kc-server", "test_keycloak_server"),
        ]

    fixed, other = Config("fixed-ports"), Config("port-443")
    assert ordered(items(), fixed) == ["demo", "oidc", "kc-server"] and fixed.deselected == ["okta-dev"]
    assert ordered(items(), other) == ["okta-dev"] and sorted(other.deselected) == ["demo", "kc-server", "oidc"]
    assert RunState.keycloak_port is None  # this shard's Keycloak takes a free port: 8180 is the other's


def test_a_restarting_case_runs_on_one_stack_per_kind() -> None:
    """Okta's dev and prod, Keycloak's local and search-prod: the rotation and the restarting controls run on
    the first stack of each kind only, in both shards alike; the other cases on every stack; a kind with one
    stack keeps its own."""
    dev, prod, search = (STACKS / f"Pulumi.{name}.yaml" for name in ("dev", "prod", "search-prod"))

    def items() -> list[Item]:
        return [
            Item("kc-login-local", "test_login_keycloak", LOCAL, test="test_login"),
            Item("kc-login-search", "test_login_keycloak", search, test="test_login"),
            Item("kc-rotation-local", "test_login_keycloak", LOCAL, "rotated", test="test_rotation"),
            Item("kc-rotation-search", "test_login_keycloak", search, "rotated", test="test_rotation"),
            Item("kc-keys-local", "test_login_keycloak", LOCAL, "per-process-keys", test="test_keys"),
            Item("kc-keys-search", "test_login_keycloak", search, "per-process-keys", test="test_keys"),
            Item("okta-keys-dev", "test_login_okta", dev, "per-process-keys", test="test_keys"),
            Item("okta-keys-prod", "test_login_okta", prod, "per-process-keys", test="test_keys"),
            Item("okta-login-prod", "test_login_okta", prod, test="test_login"),
            Item("oidc-keys", "test_login_oidc", LOCAL_OIDC, "per-process-keys", test="test_keys"),
        ]

    whole, fixed, other = Config(), Config("fixed-ports"), Config("port-443")
    assert ordered(items(), whole) == [
        "kc-login-local",
        "kc-keys-local",
        "kc-rotation-local",
        "kc-login-search",
        "okta-keys-dev",
        "okta-login-prod",
        "oidc-keys",
    ]
    assert sorted(whole.deselected) == ["kc-keys-search", "kc-rotation-search", "okta-keys-prod"]
    assert ordered(items(), fixed) == ["kc-login-local", "kc-keys-local", "kc-rotation-local", "oidc-keys"]
    assert ordered(items(), other) == ["kc-login-search", "okta-keys-dev", "okta-login-prod"]
    assert {*fixed.deselected, *other.deselected} >= set(whole.deselected)
    # Narrowed to one stack (as `-k search-prod` leaves it), that stack keeps its restarting cases.
    narrowed = [item for item in items() if item.stack == search]
    assert ordered(narrowed) == ["kc-login-search", "kc-keys-search", "kc-rotation-search"]
