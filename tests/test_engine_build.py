"""`make engine` (tools/engine.py) without building anything: what it needs, what it skips, which versions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools import engine as build


def run_build(tmp_path: Path, *args: str, src: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_OIDC_ENGINE_DIR": str(tmp_path / "engine"),
        "AIRFLOW_OIDC_ENGINE_SRC": str(src or tmp_path / "no-shared-engine-src"),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "engine.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_without_the_shared_sources_it_names_what_is_missing_and_fails(tmp_path: Path) -> None:
    result = run_build(tmp_path)
    assert result.returncode == 2
    missing = tmp_path / "no-shared-engine-src"
    for path in (
        "pulumi-language-python/main.go",
        "pulumi-random/provider/go.mod",
        "pulumi-keycloak/provider/go.mod",
        "pulumi-keycloak/upstream/go.mod",
    ):
        assert str(missing / path) in result.stderr
    assert "SOURCE.md" in result.stderr
    assert not (tmp_path / "engine").exists() or not any((tmp_path / "engine").iterdir())


def test_a_built_engine_is_not_built_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_OIDC_ENGINE_DIR", str(tmp_path / "engine"))
    for piece in build.pieces():
        for output in piece.outputs:
            (piece.path() / output).parent.mkdir(parents=True, exist_ok=True)
            (piece.path() / output).write_text("built")
        piece.stamp().write_text(json.dumps({"piece": piece.name, "seconds": 60.0}))
    result = run_build(tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"engine: nothing to do, everything is built in {tmp_path / 'engine'}"
    status = run_build(tmp_path, "status")
    assert status.returncode == 0 and status.stdout.count("built ") == len(build.pieces())
    engine = build.built_engine()
    assert engine is not None and engine.pulumi.read_text() == "built"


def test_a_missing_output_makes_its_piece_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_OIDC_ENGINE_DIR", str(tmp_path / "engine"))
    assert build.built_engine() is None
    assert run_build(tmp_path, "status").returncode == 1


def test_the_plugins_are_the_versions_the_python_sdks_pin() -> None:
    lock = (ROOT / "requirements" / "pulumi.lock").read_text()
    versions = build.plugin_versions()
    assert set(versions) == {"random", "keycloak", "kubernetes"}
    for plugin, version in versions.items():
        assert f"pulumi_{plugin}=={version}" in lock
