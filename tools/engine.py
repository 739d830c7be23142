"""`make engine`: build the real Pulumi engine for the engine tier, cached by version, never in git.

What it builds, each in a folder of its own named by version under ``~/.cache/airflow-oidc/engine/``
(``AIRFLOW_OIDC_ENGINE_DIR`` moves it):

- the Pulumi CLI and the Python language host (with the ``pulumi-language-python-exec`` script beside them);
- the random, keycloak and kubernetes resource providers, then installed as plugins under the versions the
  Python SDKs in ``requirements/pulumi.lock`` pin, with ``pulumi plugin install ... --file``: nothing downloaded;
- a Kubernetes API for tests: kube-apiserver with an embedded etcd and kube-controller-manager (``tools/kube``).

Sources: the Go module proxy, with the ordinary ``go`` command; and for the three modules the proxy refuses
(``pulumi-language-python``'s main, ``pulumi-random``, ``pulumi-keycloak``), ``../shared/engine-src/`` as it is
(``AIRFLOW_OIDC_ENGINE_SRC`` moves it). Those folders are read-only upstream sources: they are copied into a build
folder in the cache, where the files upstream generates at release time (``schema-embed.json``) are written.

Each piece is built once; a second run finds every piece's stamp and does nothing. Times are printed per piece
and recorded in the stamp (``bench/`` reads them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PULUMI_VERSION = "3.274.0"
# The one pulumi-kubernetes provider module version the Go module proxy serves (tag v4.25.0).
KUBERNETES_PROVIDER_MODULE = "github.com/pulumi/pulumi-kubernetes/provider/v4"
KUBERNETES_PROVIDER_MODULE_VERSION = "v4.0.0-20260115033456-f47bc2d6f199"
KUBERNETES_SDK_REPLACE = "github.com/pulumi/pulumi-kubernetes/sdk/v4 v4.24.0"
KUBERNETES_VERSION = "1.34.2"
ETCD_VERSION = "3.6.4"
# pkg/v3 has this replace in its own go.mod; a module requiring pkg/v3 needs it too.
CLIPBOARD_REPLACE = "github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"

# The provider plugins the program's Python SDKs need, by SDK package in requirements/pulumi.lock.
PROVIDER_SDKS = {"random": "pulumi_random", "keycloak": "pulumi_keycloak", "kubernetes": "pulumi_kubernetes"}


def engine_dir() -> Path:
    """Where the engine is cached."""
    return Path(os.environ.get("AIRFLOW_OIDC_ENGINE_DIR") or Path.home() / ".cache/airflow-oidc/engine")


def engine_src() -> Path:
    """The upstream sources the Go module proxy refuses (see ../shared/engine-src/SOURCE.md)."""
    return Path(os.environ.get("AIRFLOW_OIDC_ENGINE_SRC") or ROOT.parent / "shared/engine-src")


def go_binary() -> str | None:
    """The Go toolchain: $GO, /usr/local/go/bin/go, else `go` on PATH."""
    for candidate in (os.environ.get("GO"), "/usr/local/go/bin/go", shutil.which("go")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def plugin_versions(lock: Path = ROOT / "requirements/pulumi.lock") -> dict[str, str]:
    """The provider plugin versions the Python SDKs pin: {"random": "4.21.4", ...}."""
    pins = dict(
        line.split("==", 1) for line in lock.read_text().splitlines() if "==" in line and not line.startswith("#")
    )
    pins = {name.strip().lower().replace("-", "_"): version.strip() for name, version in pins.items()}
    return {plugin: pins[sdk] for plugin, sdk in PROVIDER_SDKS.items()}


@dataclass(frozen=True)
class Engine:
    """Paths of a built engine, as the engine tier uses them."""

    bin_dir: Path  # pulumi, pulumi-language-python, pulumi-language-python-exec
    plugins_dir: Path  # PULUMI_HOME/plugins with the three providers installed
    kube_apiserver: Path
    kube_controller_manager: Path

    @property
    def pulumi(self) -> Path:
        return self.bin_dir / "pulumi"


@dataclass(frozen=True)
class Piece:
    """One cached build: a folder named by version, the files it must hold, and how to build them."""

    name: str
    folder: str
    outputs: tuple[str, ...]
    build: Callable[[Path], None]
    requires_src: tuple[str, ...] = ()

    def path(self) -> Path:
        return engine_dir() / self.folder

    def stamp(self) -> Path:
        return self.path() / "built.json"

    def is_built(self) -> bool:
        return self.stamp().is_file() and all((self.path() / out).exists() for out in self.outputs)


class BuildError(RuntimeError):
    pass


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN="local",  # never download another toolchain
        CGO_ENABLED="0",
        GOFLAGS="-buildvcs=false -trimpath",
    )
    return env


def _run(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> str:
    """Run one build command, its output appended to the piece's log; on failure, show the log's tail."""
    with log.open("a") as out:
        out.write(f"$ (cd {cwd} && {' '.join(cmd)})\n")
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=env or _go_env(), stdout=subprocess.PIPE, stderr=out, text=True)
        out.write(proc.stdout)
    if proc.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise BuildError(f"{' '.join(cmd[:3])} failed (exit {proc.returncode}); full log: {log}\n{tail}")
    return proc.stdout


def _go(*args: str, cwd: Path, log: Path) -> str:
    go = go_binary()
    assert go is not None
    return _run([go, *args], cwd, log)


def _fresh(folder: Path) -> Path:
    """An empty build folder (a half-finished earlier attempt is discarded; Go's caches keep its progress)."""
    if folder.exists():
        subprocess.run(["chmod", "-R", "u+w", str(folder)], check=False)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _copy_source(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, symlinks=True)
    subprocess.run(["chmod", "-R", "u+w", str(dest)], check=True)


def _write_schema_embed(cmd_dir: Path, version: str) -> None:
    """Upstream's release build writes schema-embed.json (gitignored): schema.json with the package version."""
    schema = json.loads((cmd_dir / "schema.json").read_text())
    schema["version"] = version
    (cmd_dir / "schema-embed.json").write_text(json.dumps(schema))


def _gomodcache() -> Path:
    go = go_binary()
    assert go is not None
    return Path(subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip())


# --- the pieces -------------------------------------------------------------------------------------------------


def build_pulumi(out: Path) -> None:
    """The CLI from the module proxy and the language host from engine-src, in one module of our own."""
    src, bin_dir, log = _fresh(out / "src"), out / "bin", out / "build.log"
    bin_dir.mkdir(exist_ok=True)
    (src / "go.mod").write_text(
        "module airflow-oidc.invalid/engine/pulumi\n\n"
        "go 1.25\n\n"
        f"require (\n\tgithub.com/pulumi/pulumi/pkg/v3 v{PULUMI_VERSION}\n"
        f"\tgithub.com/pulumi/pulumi/sdk/v3 v{PULUMI_VERSION}\n)\n\n"
        f"replace {CLIPBOARD_REPLACE}\n\n"
        "tool github.com/pulumi/pulumi/pkg/v3/cmd/pulumi\n"
    )
    (src / "pulumi-language-python").mkdir()
    shutil.copy(engine_src() / "pulumi-language-python/main.go", src / "pulumi-language-python/main.go")
    _go("mod", "tidy", cwd=src, log=log)
    ldflags = f"-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v{PULUMI_VERSION}"
    _go("build", "-ldflags", ldflags, "-o", str(bin_dir / "pulumi"), "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
        cwd=src, log=log)  # fmt: skip
    _go("build", "-ldflags", ldflags, "-o", str(bin_dir / "pulumi-language-python"), "./pulumi-language-python",
        cwd=src, log=log)  # fmt: skip
    exec_script = (
        _gomodcache() / f"github.com/pulumi/pulumi/sdk/v3@v{PULUMI_VERSION}/python/cmd/pulumi-language-python-exec"
    )
    shutil.copy(exec_script, bin_dir / "pulumi-language-python-exec")
    (bin_dir / "pulumi-language-python-exec").chmod(0o755)


def _bridged_provider(name: str, module: str, src_folder: str, version: str) -> Callable[[Path], None]:
    """A Terraform-bridged provider from engine-src: copy, write schema-embed.json, build."""

    def build(out: Path) -> None:
        work, log = _fresh(out / "src"), out / "build.log"
        _copy_source(engine_src() / src_folder, work / src_folder)
        provider = work / src_folder / "provider"
        _write_schema_embed(provider / f"cmd/pulumi-resource-{name}", version)
        ldflags = f"-s -w -X {module}/pkg/version.Version={version}"
        binary = out / f"pulumi-resource-{name}"
        _go("build", "-ldflags", ldflags, "-o", str(binary), f"./cmd/pulumi-resource-{name}", cwd=provider, log=log)

    return build


def build_kubernetes_provider(version: str) -> Callable[[Path], None]:
    """pulumi-kubernetes from the module proxy: its zip lacks two gitignored embeds and points its sdk at ../sdk."""

    def build(out: Path) -> None:
        work, log = _fresh(out / "src"), out / "build.log"
        info = json.loads(
            _go(
                "mod",
                "download",
                "-json",
                f"{KUBERNETES_PROVIDER_MODULE}@{KUBERNETES_PROVIDER_MODULE_VERSION}",
                cwd=work,
                log=log,
            )  # fmt: skip
        )
        provider = work / "provider"
        _copy_source(Path(info["Dir"]), provider)
        cmd_dir = provider / "cmd/pulumi-resource-kubernetes"
        _write_schema_embed(cmd_dir, version)
        if not (cmd_dir / "terraform-mapping-embed.json").exists():
            (cmd_dir / "terraform-mapping-embed.json").write_text("{}")
        gomod = provider / "go.mod"
        text, count = re.subn(
            r"(github\.com/pulumi/pulumi-kubernetes/sdk/v4\s*=>\s*)\.\./sdk", rf"\g<1>{KUBERNETES_SDK_REPLACE}",
            gomod.read_text(),
        )  # fmt: skip
        if count != 1:
            raise BuildError(f"{gomod}: expected one `pulumi-kubernetes/sdk/v4 => ../sdk` replace, found {count}")
        gomod.write_text(text)
        _go("list", "-mod=mod", "-deps", "./cmd/pulumi-resource-kubernetes", cwd=provider, log=log)
        ldflags = f"-s -w -X {KUBERNETES_PROVIDER_MODULE}/pkg/version.Version={version}"
        binary = out / "pulumi-resource-kubernetes"
        _go("build", "-ldflags", ldflags, "-o", str(binary), "./cmd/pulumi-resource-kubernetes", cwd=provider, log=log)

    return build


def build_kube(out: Path) -> None:
    """kube-apiserver (etcd embedded) and kube-controller-manager: tools/kube's two mains in one module."""
    src, bin_dir, log = _fresh(out / "src"), out / "bin", out / "build.log"
    bin_dir.mkdir(exist_ok=True)
    info = json.loads(_go("mod", "download", "-json", f"k8s.io/kubernetes@v{KUBERNETES_VERSION}", cwd=src, log=log))
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", Path(info["GoMod"]).read_text(), re.M)
    if not staging:
        raise BuildError(f"no ./staging replaces in k8s.io/kubernetes@v{KUBERNETES_VERSION}'s go.mod")
    staging_version = "v0." + KUBERNETES_VERSION.split(".", 1)[1]
    replaces = "".join(f"\t{mod} => {mod} {staging_version}\n" for mod in staging)
    (src / "go.mod").write_text(
        "module airflow-oidc.invalid/tools/kube\n\n"
        "go 1.24\n\n"
        "godebug default=go1.24\n\n"
        f"require (\n\tk8s.io/kubernetes v{KUBERNETES_VERSION}\n\tgo.etcd.io/etcd/server/v3 v{ETCD_VERSION}\n)\n\n"
        f"replace (\n{replaces})\n"
    )
    for main in ("apiserver", "controllermanager"):
        shutil.copytree(ROOT / "tools/kube" / main, src / main)
    _go("mod", "tidy", cwd=src, log=log)
    version = f"v{KUBERNETES_VERSION}"
    ldflags = (
        f"-s -w -X k8s.io/component-base/version.gitVersion={version}"
        f" -X k8s.io/client-go/pkg/version.gitVersion={version}"
    )
    _go("build", "-ldflags", ldflags, "-o", str(bin_dir / "kube-apiserver"), "./apiserver", cwd=src, log=log)
    _go("build", "-ldflags", ldflags, "-o", str(bin_dir / "kube-controller-manager"), "./controllermanager",
        cwd=src, log=log)  # fmt: skip


def install_plugins(versions: dict[str, str]) -> Callable[[Path], None]:
    """`pulumi plugin install resource NAME VERSION --file BINARY` into a PULUMI_HOME of the cache."""

    def build(out: Path) -> None:
        home = _fresh(out / "home")
        env = dict(os.environ, PULUMI_HOME=str(home), PULUMI_SKIP_UPDATE_CHECK="true")
        pulumi = engine_dir() / f"pulumi-{PULUMI_VERSION}/bin/pulumi"
        for name, version in versions.items():
            binary = engine_dir() / f"{name}-{version}/pulumi-resource-{name}"
            _run([str(pulumi), "plugin", "install", "resource", name, version, "--file", str(binary)], out,
                 out / "build.log", env)  # fmt: skip

    return build


def pieces() -> list[Piece]:
    versions = plugin_versions()
    plugin_outputs = tuple(f"home/plugins/resource-{n}-v{v}/pulumi-resource-{n}" for n, v in versions.items())
    return [
        Piece(
            "Pulumi CLI + Python language host",
            f"pulumi-{PULUMI_VERSION}",
            ("bin/pulumi", "bin/pulumi-language-python", "bin/pulumi-language-python-exec"),
            build_pulumi,
            ("pulumi-language-python/main.go",),
        ),  # fmt: skip
        Piece(
            "random provider",
            f"random-{versions['random']}",
            ("pulumi-resource-random",),
            _bridged_provider(
                "random", "github.com/pulumi/pulumi-random/provider/v4", "pulumi-random", versions["random"]
            ),
            ("pulumi-random/provider/go.mod",),
        ),  # fmt: skip
        Piece(
            "keycloak provider",
            f"keycloak-{versions['keycloak']}",
            ("pulumi-resource-keycloak",),
            _bridged_provider(
                "keycloak", "github.com/pulumi/pulumi-keycloak/provider/v6", "pulumi-keycloak", versions["keycloak"]
            ),
            ("pulumi-keycloak/provider/go.mod", "pulumi-keycloak/upstream/go.mod"),
        ),  # fmt: skip
        Piece(
            "kubernetes provider",
            f"kubernetes-{versions['kubernetes']}",
            ("pulumi-resource-kubernetes",),
            build_kubernetes_provider(versions["kubernetes"]),
        ),  # fmt: skip
        Piece(
            f"kube-apiserver (embedded etcd {ETCD_VERSION}) + kube-controller-manager",
            f"kube-{KUBERNETES_VERSION}",
            ("bin/kube-apiserver", "bin/kube-controller-manager"),
            build_kube,
        ),  # fmt: skip
        Piece(
            "plugins installed",
            "plugins-" + "-".join(f"{n}{v}" for n, v in versions.items()),
            plugin_outputs,
            install_plugins(versions),
        ),  # fmt: skip
    ]


def built_engine() -> Engine | None:
    """The cached engine when every piece is built, else None (the engine tier skips)."""
    all_pieces = pieces()
    if not all(piece.is_built() for piece in all_pieces):
        return None
    by_folder = {piece.folder.split("-", 1)[0]: piece.path() for piece in all_pieces}
    return Engine(
        bin_dir=by_folder["pulumi"] / "bin",
        plugins_dir=by_folder["plugins"] / "home/plugins",
        kube_apiserver=by_folder["kube"] / "bin/kube-apiserver",
        kube_controller_manager=by_folder["kube"] / "bin/kube-controller-manager",
    )


def missing_prerequisites(todo: list[Piece]) -> list[str]:
    missing = []
    if go_binary() is None:
        missing.append("Go toolchain (/usr/local/go/bin/go, or set GO=...)")
    src = engine_src()
    for piece in todo:
        missing += [f"{src / rel} (for the {piece.name})" for rel in piece.requires_src if not (src / rel).is_file()]
    return missing


def build(out=sys.stdout) -> int:
    """Build what is missing; print what was built and how long each piece took."""
    all_pieces = pieces()
    todo = [piece for piece in all_pieces if not piece.is_built()]
    if not todo:
        print(f"engine: nothing to do, everything is built in {engine_dir()}", file=out)
        return 0
    missing = missing_prerequisites(todo)
    if missing:
        print("engine: cannot build, missing:", *(f"  - {m}" for m in missing), sep="\n", file=sys.stderr)
        print("  (see ../shared/engine-src/SOURCE.md; AIRFLOW_OIDC_ENGINE_SRC points elsewhere)", file=sys.stderr)
        return 2
    print(f"engine: building {len(todo)} of {len(all_pieces)} pieces into {engine_dir()}", file=out)
    total = 0.0
    for piece in todo:
        print(f"engine: {piece.name} -> {piece.path()} ...", file=out, flush=True)
        started = time.monotonic()
        piece.path().mkdir(parents=True, exist_ok=True)
        piece.stamp().unlink(missing_ok=True)
        try:
            piece.build(piece.path())
        except BuildError as err:
            print(f"engine: {piece.name} FAILED: {err}", file=sys.stderr)
            return 1
        seconds = time.monotonic() - started
        total += seconds
        piece.stamp().write_text(json.dumps({"piece": piece.name, "seconds": round(seconds, 1)}) + "\n")
        print(f"engine: {piece.name} built in {seconds / 60:.1f} min", file=out, flush=True)
    print(f"engine: built {len(todo)} pieces in {total / 60:.1f} min", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="build", choices=["build", "status", "path"])
    args = parser.parse_args(argv)
    if args.command == "status":
        for piece in pieces():
            state = json.loads(piece.stamp().read_text()) if piece.is_built() else None
            print(f"{'built' if state else 'missing':8} {piece.name} ({piece.path()})"
                  + (f", {state['seconds'] / 60:.1f} min" if state else ""))  # fmt: skip
        return 0 if built_engine() else 1
    if args.command == "path":
        engine = built_engine()
        print(engine.bin_dir if engine else "")
        return 0 if engine else 1
    return build()


if __name__ == "__main__":
    sys.exit(main())
