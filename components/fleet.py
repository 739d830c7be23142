"""The fleet check of `airflow-oidc validate`: what no two stacks may share.

A fleet is every stack file of a stack config directory (`stacks/`). Two stacks clash when they take
the same hostname, the same Kubernetes context + namespace + Helm release, or the same name at the
same IdP (the kind's `fleet_names`: an Okta app label, an Okta custom-server policy name, a client id
at an issuer, ...). Stacks served on loopback (`localhost`, `127.0.0.1`) are demos that run on a
developer's machine, one at a time: they are not part of the fleet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from components.spec import Spec, split_hostname
from components.stack_config import load_stack_file, provider_from_stack_file, spec_from_stack_file

KUBE_CONTEXT_KEY = "kubernetes:context"


@dataclass(frozen=True)
class FleetMember:
    """One valid stack file and what it takes."""

    file: str
    """The file as errors name it."""
    stack: str
    spec: Spec
    kube_context: str | None
    provider: dict[str, str]

    def taken(self) -> list[tuple[str, str]]:
        """(what, name) pairs this stack takes, that no other stack may take too."""
        context = self.kube_context or "(the default kube context)"
        taken = [
            ("hostname", self.spec.host + (f":{port}" if (port := split_hostname(self.spec.hostname)[2]) else "")),
            (
                "kube context + namespace + release",
                f"{context} / {self.spec.airflow.namespace} / {self.spec.airflow.releaseName}",
            ),
        ]
        names = self.spec.idp.fleet_names(self.spec, stack=self.stack, provider=self.provider)
        taken.extend(names.items())
        return taken


def shown_name(path: Path) -> str:
    return f"stacks/{path.name}" if path.parent.name == "stacks" else str(path)


def stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


def fleet_member(path: Path) -> FleetMember | None:
    """The stack file as a fleet member; None when it is invalid (validate reports that itself) or on loopback."""
    try:
        spec = spec_from_stack_file(path)
        config = load_stack_file(path)
    except Exception:  # noqa: BLE001 - an invalid file is reported by the per-file check
        return None
    if spec.is_loopback:
        return None
    context = config.get(KUBE_CONTEXT_KEY)
    return FleetMember(
        file=shown_name(path),
        stack=stack_name(path),
        spec=spec,
        kube_context=context if isinstance(context, str) else None,
        provider=provider_from_stack_file(path, spec),
    )


def fleet_of(paths: Iterable[Path]) -> list[Path]:
    """The given stack files and every other stack file of their directories, in order, once each."""
    files: dict[Path, None] = {}
    for path in paths:
        files[path] = None
        for sibling in sorted(path.parent.glob("Pulumi.*.yaml")):
            files.setdefault(sibling, None)
    return list(files)


@dataclass(frozen=True)
class Clash:
    """Two stack files taking one name."""

    file: str
    """The file the clash is reported about (the one being validated, or written)."""
    what: str
    """What is taken (`hostname`, `kube context + namespace + release`, a kind's IdP name)."""
    name: str
    other: str
    """The file that takes it too."""

    def __str__(self) -> str:
        # A kind's `what` may name the thing itself (one key per group): then it is not repeated.
        taken = (
            self.what
            if repr(self.name) in self.what or self.name in self.what.split()
            else f"{self.what} {self.name!r}"
        )
        return f"{self.file}: {taken} is also taken by {self.other}"


def fleet_clashes(paths: Sequence[Path], only: Sequence[Path] | None = None) -> list[str]:
    """One line per clash, naming both files: `<file>: <what> <name> is also taken by <other file>`.

    `only`: report only clashes involving one of these files (the ones being validated).
    """
    return [str(clash) for clash in fleet_clash_list(paths, only)]


def fleet_clash_list(paths: Sequence[Path], only: Sequence[Path] | None = None) -> list[Clash]:
    """The clashes of `fleet_clashes`, as records."""
    wanted = {path.resolve() for path in only} if only is not None else None
    first: dict[tuple[str, str], tuple[FleetMember, Path]] = {}
    clashes: list[Clash] = []
    for path in paths:
        member = fleet_member(path)
        if member is None:
            continue
        for what, name in member.taken():
            key = (what, name.lower() if what == "hostname" else name)
            if key not in first:
                first[key] = (member, path)
                continue
            other, other_path = first[key]
            subject, taken_by = member, other
            if wanted is not None:
                if not {path.resolve(), other_path.resolve()} & wanted:
                    continue
                if path.resolve() not in wanted:  # say it about the file being validated
                    subject, taken_by = other, member
            clashes.append(Clash(subject.file, what, name, taken_by.file))
    return clashes
