"""What the doctor checks (`DoctorTarget`) and what its check groups share while they run (`DoctorState`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.contract import ClientContract
from components.doctor.http_client import Http, Response
from components.doctor.id_token import Jwt
from components.doctor.report import CANNOT, FAIL, Check
from components.spec import Spec


@dataclass
class DoctorTarget:
    """What the doctor checks: the stack's contract, and where to reach the live parts."""

    source: str
    """The stack file as errors name it."""
    spec: Spec
    contract: ClientContract
    issuer_url: str
    """Where to reach the issuer (default: the declared issuer); comparisons use the declared one."""
    airflow_url: str | None
    client_id: str | None = None
    id_token: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    """Only sent to the IdP's token endpoint, never printed (the api-server's env var, or a file)."""
    provider_sources: Mapping[str, str] = field(default_factory=dict)
    """Provider setting -> where its value came from: the key itself (the stack file) or its env var."""


def issuer_keys(spec: Spec, provider_sources: Mapping[str, str] | None = None) -> str:
    """The keys that decide the issuer, for fix messages (any kind): each `idp` key the stack sets, or,
    for one it leaves unset, the provider setting (or environment variable) its value came from."""
    model = type(spec.idp)
    fields = model.model_fields
    if "issuer" in fields:
        return "`idp.issuer`"
    names = [
        name
        for name in fields
        if re.search(r"url|issuer|realm|tenant|domain|server|org", name, re.IGNORECASE)
        and not name.startswith("create")
    ]
    keys: list[str] = []
    for name in names:
        sources = provider_sources or {}
        given = [sources[key] for key in model.DEFAULTS_FROM_PROVIDER.get(name, ()) if key in sources]
        if getattr(spec.idp, name, None) is None and given:
            keys.extend(f"`{source}`" for source in given)
        else:
            keys.append(f"`idp.{name}`")
    return ", ".join(keys) or f"the `idp` keys of kind {spec.idp.kind}"


def spec_key(spec: Spec, name: str, otherwise: str) -> str:
    """The spec key `idp.<name>` when the kind has it, else `otherwise` (a fix message names it)."""
    return f"`idp.{name}`" if name in type(spec.idp).model_fields else otherwise


class DoctorState:
    """What the check groups share: the target, what the IdP and Airflow answered so far, the report."""

    def __init__(self, target: DoctorTarget, http: Http) -> None:
        self.target = target
        self.contract = target.contract
        self.spec = target.spec
        self.http = http
        self.checks: list[Check] = []
        self.discovery: dict[str, Any] | None = None
        self.idp_responses: list[Response] = []
        """Every answer of the IdP, for its clock (some servers send Date on some routes only)."""
        self.jwks: dict[str, Any] | None = None
        self.airflow_login: Response | None = None
        self.airflow_start: Response | None = None
        self.airflow_problem: str | None = None
        self.client_id: str | None = target.client_id
        self.token: Jwt | None = None

    def issuer_keys(self) -> str:
        """The keys that decide this stack's issuer, named where their values came from."""
        return issuer_keys(self.spec, self.target.provider_sources)

    def add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, detail, fix if status == FAIL else ""))

    def _needs_discovery(self, name: str) -> bool:
        if self.discovery is None:
            self.add(name, CANNOT, "no discovery document")
            return False
        return True
