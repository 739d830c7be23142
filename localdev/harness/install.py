"""Install what the local deployment needs (`make demo`, the e2e tier), idempotently: Debian packages,
the stand-in provider's npm packages, Keycloak.

Run as `python -m localdev.harness.install` (prints what it did), or call `ensure_prerequisites()`.
Never runs `playwright install`: Playwright drives Debian's /usr/bin/chromium.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "provider"
APT_PACKAGES = ("chromium", "nginx-light", "postgresql", "openssl")
# A file npm ci leaves in node_modules naming the lock it installed, so a rerun can skip it.
NPM_STAMP = PROVIDER_DIR / "node_modules" / ".e2e-package-lock.sha256"
MIN_NODE_MAJOR = 20


class PrerequisiteError(RuntimeError):
    """A prerequisite is missing and could not be installed."""


def missing_apt_packages(packages: Sequence[str] = APT_PACKAGES) -> list[str]:
    """The packages dpkg does not report as installed."""
    missing = []
    for package in packages:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def ensure_apt_packages(report: Callable[[str], None], packages: Sequence[str] = APT_PACKAGES) -> None:
    """`apt-get update` once, then install the missing packages (only if some are missing)."""
    if shutil.which("dpkg-query") is None:
        raise PrerequisiteError("not a Debian system (no dpkg-query): install chromium, nginx, postgresql, openssl")
    missing = missing_apt_packages(packages)
    if not missing:
        report(f"apt: {', '.join(packages)} already installed")
        return
    if os.geteuid() != 0:
        raise PrerequisiteError(f"apt packages missing and not root: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    report("apt: apt-get update")
    _run(["apt-get", "update"], env=env, what="apt-get update")
    report(f"apt: installing {' '.join(missing)}")
    _run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env, what="apt-get install")
    still = missing_apt_packages(packages)
    if still:
        raise PrerequisiteError(f"apt-get install finished but these are still missing: {' '.join(still)}")


def node_major() -> int | None:
    """Major version of `node` on PATH (None when absent)."""
    node = shutil.which("node")
    if node is None:
        return None
    result = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    version = result.stdout.strip().lstrip("v")
    return int(version.split(".")[0]) if version[:1].isdigit() else None


def ensure_npm_packages(report: Callable[[str], None]) -> None:
    """`npm ci` in localdev/provider unless node_modules already matches package-lock.json."""
    major = node_major()
    if major is None or shutil.which("npm") is None:
        raise PrerequisiteError("Node.js and npm are not on PATH: oidc-provider needs Node.js 20 or newer")
    if major < MIN_NODE_MAJOR:
        raise PrerequisiteError(f"Node.js {major} is too old: oidc-provider 9 needs Node.js {MIN_NODE_MAJOR}+")
    lock_hash = hashlib.sha256((PROVIDER_DIR / "package-lock.json").read_bytes()).hexdigest()
    if NPM_STAMP.exists() and NPM_STAMP.read_text().strip() == lock_hash:
        report("npm: localdev/provider/node_modules matches package-lock.json")
        return
    report("npm: npm ci in localdev/provider")
    _run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PROVIDER_DIR, what="npm ci")
    NPM_STAMP.write_text(lock_hash + "\n")


def java_major() -> int | None:
    """Major version of `java` on PATH (None when absent)."""
    java = shutil.which("java")
    if java is None:
        return None
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8" is Java 8


def ensure_keycloak(report: Callable[[str], None]) -> None:
    """Keycloak's server distribution, fetched with Maven, extracted and augmented once in the user's cache.

    `mvn dependency:copy` fetches org.keycloak:keycloak-quarkus-dist (tar.gz, pinned) from Maven
    Central; the archive is extracted beside it and started once in dev mode, so Quarkus' build step
    (about 25 s here) is cached in lib/quarkus and each test run's copy starts without it.
    """
    from localdev.harness import keycloak

    major = java_major()
    if major is None:
        raise PrerequisiteError(f"java is not on PATH: Keycloak {keycloak.KEYCLOAK_VERSION} needs OpenJDK 17+")
    if major < keycloak.MIN_JAVA_MAJOR:
        raise PrerequisiteError(f"Java {major} is too old: Keycloak needs OpenJDK {keycloak.MIN_JAVA_MAJOR}+")
    root = keycloak.keycloak_cache_root()
    stamp = keycloak.keycloak_stamp(root)
    if stamp.exists() and stamp.read_text() == keycloak.stamp_text():
        report(f"keycloak: {keycloak.keycloak_dist(root)} ready")
        return
    if shutil.which("mvn") is None:
        raise PrerequisiteError("mvn is not on PATH: Keycloak is fetched with Maven (apt-get install maven)")
    with keycloak.cache_lock(root):
        if stamp.exists() and stamp.read_text() == keycloak.stamp_text():
            report(f"keycloak: {keycloak.keycloak_dist(root)} ready (another process installed it)")
            return
        archive = root / f"keycloak-quarkus-dist-{keycloak.KEYCLOAK_VERSION}.tar.gz"
        if not archive.exists():
            report(f"keycloak: mvn dependency:copy {keycloak.KEYCLOAK_ARTIFACT}")
            started = time.monotonic()
            _run(
                [
                    "mvn",
                    "-q",
                    "-B",
                    "dependency:copy",
                    f"-Dartifact={keycloak.KEYCLOAK_ARTIFACT}",
                    f"-DoutputDirectory={root}",
                ],
                what="mvn dependency:copy (Keycloak)",
            )
            if not archive.exists():
                raise PrerequisiteError(f"mvn dependency:copy finished but {archive} is missing")
            report(f"keycloak: fetched in {time.monotonic() - started:.1f} s")
        dist = keycloak.keycloak_dist(root)
        if dist.exists():
            shutil.rmtree(dist)
        with tempfile.TemporaryDirectory(dir=root, prefix=".extract-") as scratch:
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="tar")
            extracted = Path(scratch) / dist.name
            if not (extracted / "bin" / "kc.sh").exists():
                raise PrerequisiteError(f"{archive} holds no {dist.name}/bin/kc.sh")
            extracted.rename(dist)
        report(f"keycloak: extracted to {dist}; warming up (Quarkus build step, once)")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="airflow-oidc-keycloak-warmup-") as logs:
            server = keycloak.KeycloakServer(Path(logs), dist=dist, in_place=True)
            try:
                with server:
                    pass
            except keycloak.HarnessError as exc:
                raise PrerequisiteError(f"Keycloak's warm-up start failed: {exc}") from exc
        report(f"keycloak: warm-up start took {time.monotonic() - started:.1f} s")
        stamp.write_text(keycloak.stamp_text())


def ensure_prerequisites(report: Callable[[str], None] = print) -> None:
    """Everything the e2e tier needs besides .venv-airflow (built from requirements/airflow.lock)."""
    ensure_apt_packages(report)
    ensure_npm_packages(report)
    ensure_keycloak(report)


def _run(argv: Sequence[str], *, what: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    result = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        raise PrerequisiteError(f"{what} failed ({result.returncode}):\n" + "\n".join(output[-30:]))


def main() -> int:
    """CLI entry point."""
    try:
        ensure_prerequisites(lambda line: print(f"[e2e install] {line}", flush=True))
    except PrerequisiteError as exc:
        print(f"[e2e install] FAILED: {exc}", file=sys.stderr)
        return 1
    print("[e2e install] done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
