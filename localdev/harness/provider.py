"""A real OpenID provider (npm oidc-provider, localdev/provider/server.js) with negative-control shims."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from localdev.harness.process import HarnessError, ManagedProcess, Service, error_with_log, wait_until

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "provider"
READY_LINE = re.compile(r"^OIDC-PROVIDER-READY (\{.*\})$", re.MULTILINE)
# The Okta groups claim the program declares: getFilteredGroups({"00g…",…}, "group.name", N).
OKTA_FILTERED_GROUPS = re.compile(
    r'getFilteredGroups\(\{((?:"[A-Za-z0-9]+",)*"[A-Za-z0-9]+")\}, "group\.name", (\d+)\)'
)

DEFAULT_CLAIMS: dict[str, list[str]] = {
    "openid": ["sub"],
    "email": ["email", "email_verified"],
    "profile": ["name", "given_name", "family_name", "preferred_username"],
    "groups": ["groups"],
}


@dataclass
class Shims:
    """Negative controls applied by server.js on top of the real provider's responses.

    signWithUnpublishedKey: the ID token is re-signed with a key the JWKS never had (True or
        "sameKid": under the published kid, so verification fails on the signature; "otherKid":
        under an unknown kid). Works on api-servers that already cached the genuine JWKS.
    publishWrongJwks: the JWKS endpoint publishes another key instead of the signing key; only
        effective on api-servers that have not fetched (and cached) the JWKS yet.
    wrongAudience: the ID token's `aud` is changed (True: `not-<client_id>`; a str: that value), re-signed.
    wrongIssuer: the ID token's `iss` is changed (True: `<issuer>-evil`; a str: that value), re-signed.
    expiredIdToken: the ID token expired an hour ago, re-signed.
    wrongNonce: the ID token's `nonce` is replaced, re-signed.
    unsignedIdToken: the ID token is re-issued with `alg: none` and no signature.
    idTokenClaims: claims merged into the ID token, re-signed with the real key (the RP must accept).
    discoveryIssuer: the discovery document's `issuer` is replaced.
    discoveryFields: fields of the discovery document replaced (None removes one), e.g. `jwks_uri`.
    dateOffsetSeconds: the provider's `Date` header runs this many seconds ahead (a skewed clock).
    tamperState: the redirect back to the client carries a `state` with its last character changed.
    """

    # camelCase: the field names are the JSON keys server.js reads.
    signWithUnpublishedKey: bool | str = False
    publishWrongJwks: bool = False
    wrongAudience: bool | str = False
    wrongIssuer: bool | str = False
    expiredIdToken: bool = False
    wrongNonce: bool = False
    unsignedIdToken: bool = False
    idTokenClaims: dict[str, Any] | None = None
    discoveryIssuer: str | None = None
    discoveryFields: dict[str, Any] | None = None
    dateOffsetSeconds: int = 0
    tamperState: bool = False

    def to_json(self) -> dict[str, Any]:
        """Only the shims that are on."""
        return {key: value for key, value in self.__dict__.items() if value}


@dataclass(frozen=True)
class IdpGroups:
    """How the IdP turns group membership into the groups claim (server.js `idpGroups`).

    With it, each user's `groups` is their raw membership at the IdP; the claim `claim` carries
    the groups matching `filter` in full (a regex such as Okta's `^(a|b)$`; None: all of them). With
    `assigned_groups`, a user in none of them is refused at the provider (Okta's app assignment).
    With `claim_values` (group -> values), the claim carries the values of the user's groups instead
    of their names (Entra: the app roles assigned to each group), and is left out when empty; `limit`
    caps how many of the user's groups count. Okta: raw groups are group ids, and `okta_claim`
    evaluates the declared getFilteredGroups claim.
    """

    claim: str
    filter: str | None = None
    assigned_groups: Sequence[str] | None = None
    claim_values: Mapping[str, Sequence[str]] | None = None
    limit: int | None = None

    @classmethod
    def okta_claim(
        cls, claim: str, expression: str, directory: Mapping[str, str], assigned_groups: Sequence[str]
    ) -> IdpGroups:
        """Okta's groups claim as declared: `getFilteredGroups({ids}, "group.name", N)` emits the names
        (from `directory`, group id -> name) of the user's groups among exactly these ids, at most N."""
        match = OKTA_FILTERED_GROUPS.fullmatch(expression)
        if match is None:
            raise HarnessError(f"the Okta groups claim is not getFilteredGroups by id and name: {expression!r}")
        ids = re.findall(r'"([A-Za-z0-9]+)"', match.group(1))
        unknown = [group_id for group_id in ids if group_id not in directory]
        if unknown:
            raise HarnessError(f"the Okta groups claim selects ids the org does not hold: {unknown}")
        limit = int(match.group(2))
        if not 1 <= limit <= 100:
            raise HarnessError(f"getFilteredGroups' limit must be 1 to 100 (Okta refuses the claim): {limit}")
        return cls(
            claim=claim,
            assigned_groups=list(assigned_groups),
            claim_values={group_id: [directory[group_id]] for group_id in ids},
            limit=limit,
        )

    def to_json(self) -> dict[str, Any]:
        """The `idpGroups` config server.js reads."""
        assigned = None if self.assigned_groups is None else list(self.assigned_groups)
        values = None if self.claim_values is None else {g: list(v) for g, v in self.claim_values.items()}
        return {
            "claim": self.claim,
            "filter": self.filter,
            "assignedGroups": assigned,
            "claimValues": values,
            "limit": self.limit,
        }

    def visible_groups(self, raw_groups: Sequence[str]) -> list[str]:
        """The memberships that reach the token (through the filter, or through a claim value)."""
        if self.claim_values is not None:
            return self._selected(raw_groups)
        return self.emitted(raw_groups)

    def _selected(self, raw_groups: Sequence[str]) -> list[str]:
        assert self.claim_values is not None
        return [group for group in raw_groups if self.claim_values.get(group)][: self.limit]

    def emitted(self, raw_groups: Sequence[str]) -> list[str]:
        """The claim's value for a user with these memberships (what server.js emits)."""
        if self.claim_values is not None:
            values = [value for group in self._selected(raw_groups) for value in self.claim_values[group]]
            return sorted(set(values))
        if self.filter is None:
            return list(raw_groups)
        pattern = re.compile(self.filter)
        return [group for group in raw_groups if pattern.fullmatch(group)]

    def admits(self, raw_groups: Sequence[str]) -> bool:
        """Whether the provider lets a user with these memberships sign in at all."""
        return self.assigned_groups is None or bool(set(raw_groups) & set(self.assigned_groups))


@dataclass
class OidcClient:
    """The single client registered at the provider."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: Sequence[str]
    post_logout_redirect_uris: Sequence[str] = field(default_factory=list)
    # Authlib's default (FAB's OAuth client); "client_secret_post" when client_kwargs ask for it.
    token_endpoint_auth_method: str = "client_secret_basic"

    def to_json(self) -> dict[str, Any]:
        """The client metadata server.js registers."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }


@dataclass(frozen=True)
class MachineClient:
    """A client-credentials client (a service account): no redirect URIs, no user."""

    client_id: str
    client_secret: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """The client metadata server.js registers (grant client_credentials only)."""
        return {"client_id": self.client_id, "client_secret": self.client_secret}


class OidcProvider(Service):
    """oidc-provider on 127.0.0.1:<port> (default: a free one), issuer `http://127.0.0.1:<port><issuer_path>`.

    Users log in through the provider's dev interactions (login = account id, any password);
    consent is granted automatically unless `auto_consent=False`. Users' claims and the shims can
    be changed while it runs (a loopback admin listener on another port).
    """

    def __init__(
        self,
        log_dir: Path,
        client: OidcClient,
        users: Mapping[str, Mapping[str, Any]],
        *,
        issuer_path: str = "",
        claims: Mapping[str, Sequence[str]] | None = None,
        claims_in_id_token: bool = True,
        shims: Shims | None = None,
        auto_consent: bool = True,
        node: str = "node",
        port: int = 0,
        idp_groups: IdpGroups | None = None,
        machine_clients: Sequence[MachineClient] = (),
        resource_servers: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if issuer_path and not issuer_path.startswith("/"):
            raise ValueError(f"issuer_path must start with '/': {issuer_path!r}")
        self.log_dir = log_dir
        self.log_path = log_dir / "oidc-provider.log"
        self.config_path = log_dir / "oidc-provider.json"
        self.client = client
        self.users = {account: dict(user_claims) for account, user_claims in users.items()}
        self.issuer_path = issuer_path.rstrip("/")
        self.claims = {scope: list(names) for scope, names in (claims or DEFAULT_CLAIMS).items()}
        self.claims_in_id_token = claims_in_id_token
        self.shims = shims or Shims()
        self.auto_consent = auto_consent
        self.node = node
        self.requested_port = port
        self.idp_groups = idp_groups
        self.machine_clients = list(machine_clients)
        self.resource_servers = {uri: dict(server) for uri, server in (resource_servers or {}).items()}
        self.token_profile: str | None = None
        """`okta`: machine clients' access tokens also carry Okta's `cid` and `scp` claims."""
        self.default_machine_resource: str | None = None
        """The resource (`aud`) of a client-credentials request naming none (Okta: the server's audience)."""
        # Kept across restarts: relying parties cache the JWKS by kid.
        self.key_path = log_dir / "signing-key.json"
        self._log_offset = 0
        self._process: ManagedProcess | None = None
        self._ready: dict[str, Any] | None = None

    @property
    def issuer(self) -> str:
        """The issuer URL (no trailing slash)."""
        return str(self._ready_info()["issuer"])

    @property
    def discovery_url(self) -> str:
        """`<issuer>/.well-known/openid-configuration`."""
        return self.issuer + "/.well-known/openid-configuration"

    @property
    def port(self) -> int:
        """The provider's port."""
        return int(self._ready_info()["port"])

    @property
    def admin_url(self) -> str:
        """Base URL of the admin listener."""
        return f"http://127.0.0.1:{self._ready_info()['adminPort']}"

    def start(self) -> None:
        """Write the config, start node, wait for the ready line and the discovery document."""
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise HarnessError(
                f"{PROVIDER_DIR}/node_modules is missing: run `python -m localdev.harness.install` (npm ci)"
            )
        if shutil.which(self.node) is None:
            raise HarnessError(f"{self.node!r} not found on PATH (Node.js 20+ is needed for oidc-provider)")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The config holds the client secret: readable by this user only.
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(
                {
                    "host": "127.0.0.1",
                    "port": self.requested_port,
                    "adminPort": 0,
                    "issuerPath": self.issuer_path,
                    "client": self.client.to_json(),
                    "claims": self.claims,
                    # oidc-provider's name for "scope claims only at userinfo" (true) vs. in the ID token too.
                    "conformIdTokenClaims": not self.claims_in_id_token,
                    "users": self.users,
                    "shims": self.shims.to_json(),
                    "autoConsent": self.auto_consent,
                    "idpGroups": self.idp_groups.to_json() if self.idp_groups else None,
                    "keyFile": str(self.key_path),
                    "machineClients": [machine.to_json() for machine in self.machine_clients],
                    "resourceServers": self.resource_servers,
                    "accessTokenProfile": self.token_profile,
                    "defaultMachineResource": self.default_machine_resource,
                },
                handle,
                indent=2,
            )
        # A restart appends to the same log: look for the ready line after this point only.
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._ready = None
        self._process = ManagedProcess(
            "oidc-provider",
            [self.node, str(PROVIDER_DIR / "server.js"), str(self.config_path)],
            self.log_path,
            cwd=PROVIDER_DIR,
            stop_timeout=5,
        )
        self._process.start()
        self._ready = wait_until(
            self._read_ready_line, timeout=30, what="oidc-provider", log_path=self.log_path, alive=self._process.alive
        )
        response = requests.get(self.discovery_url, timeout=5)
        if response.status_code != 200:
            raise error_with_log(f"oidc-provider discovery answered {response.status_code}", self.log_path)
        advertised = response.json().get("issuer")
        if advertised != self.issuer and not self.shims.discoveryIssuer:
            raise error_with_log(
                f"oidc-provider discovery names issuer {advertised!r}, not {self.issuer!r}", self.log_path
            )

    def stop(self) -> None:
        """Stop node."""
        if self._process is not None:
            self._process.stop()
            self._process = None

    def restart(self, client: OidcClient | None = None) -> None:
        """Stop and start again (same port, signing key, users and shims), optionally with another client."""
        self.stop()
        if client is not None:
            self.client = client
        self.start()

    def set_user_claims(self, account_id: str, claims: Mapping[str, Any]) -> None:
        """Replace one user's claims (or add the user); the next token/userinfo response uses them."""
        self._admin("PUT", f"/users/{account_id}", dict(claims))
        self.users[account_id] = dict(claims)

    def set_user_groups(self, account_id: str, groups: Sequence[str]) -> None:
        """Change one user's group memberships (with `idp_groups`: raw groups, filtered at emission)."""
        self.set_user_claims(account_id, {**self.users[account_id], "groups": list(groups)})

    def set_users(self, users: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace all users."""
        self.users = {account: dict(user_claims) for account, user_claims in users.items()}
        self._admin("POST", "/users", self.users)

    def client_credentials_token(self, client: MachineClient, resource: str | None, scope: str | None = None) -> str:
        """An access token by the client-credentials grant (RFC 8707 `resource`, or the provider's
        default one, as Okta's), as a CI job gets one."""
        fields = {"grant_type": "client_credentials", "resource": resource, "scope": scope}
        response = requests.post(
            self.issuer + "/token",
            data={key: value for key, value in fields.items() if value},
            auth=(client.client_id, client.client_secret),
            timeout=10,
        )
        if response.status_code != 200:
            raise error_with_log(
                f"client credentials for {client.client_id}: {response.status_code} {response.text}", self.log_path
            )
        return str(response.json()["access_token"])

    def set_shims(self, shims: Shims) -> None:
        """Replace the shims at runtime.

        Authlib caches the JWKS per api-server process: switching `signWithUnpublishedKey` on after a
        successful login has no effect there until the kid changes. Start a provider with it instead.
        """
        self.shims = shims
        self._admin("POST", "/shims", shims.to_json())

    def _admin(self, method: str, path: str, body: Any) -> Any:
        response = requests.request(method, self.admin_url + path, json=body, timeout=5)
        if response.status_code != 200:
            raise error_with_log(
                f"oidc-provider admin {method} {path}: {response.status_code} {response.text}", self.log_path
            )
        return response.json()

    def _read_ready_line(self) -> dict[str, Any] | None:
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            text = log.read().decode(errors="replace")
        match = READY_LINE.search(text)
        return json.loads(match.group(1)) if match else None

    def _ready_info(self) -> dict[str, Any]:
        if self._ready is None:
            raise HarnessError("oidc-provider is not running")
        return self._ready
