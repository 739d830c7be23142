"""A real Keycloak as a LocalDeployment's IdP: the realm the stack expects, what the program declared, the users.

`KeycloakIdp` uses the test run's shared Keycloak (`localdev/services.py`; the stack's realm only,
deleted again at stop) or starts `localdev/harness/keycloak.py`'s server on the stack's own loopback URL
(or a free port), creates what the stack expects to exist already (the realm unless it declares one, the
groups it looks up), applies the captured pulumi_keycloak resources through the Admin REST API
(`apply_declared`: every declared input translated or refused), then the test users with passwords
and group memberships. It answers the calls the shared cases make of the deployment's provider
(issuer, log, `set_user_groups`), and changes the client or mapper in place for negative controls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.idp.keycloak import keycloak_group_path
from localdev.harness.keycloak import AppliedResources, KeycloakServer, apply_declared, declared_from_capture
from localdev.harness.process import HarnessError, Service
from localdev.harness.provider import Shims

# OidcClient field -> Keycloak ClientRepresentation field, for `registered_with`.
CLIENT_FIELDS = {"redirect_uris": "redirectUris", "client_secret": "secret"}


@dataclass(frozen=True)
class RealmUser:
    """A user to create in the realm."""

    username: str
    password: str
    email: str
    first_name: str
    last_name: str
    groups: tuple[str, ...]
    """Group paths (`/data/airflow-admins`)."""


class KeycloakIdp(Service):
    """Keycloak with the realm, the declared client, mapper and groups, and the test users."""

    def __init__(
        self,
        log_dir: Path,
        idp: Mapping[str, Any],
        users: Sequence[RealmUser],
        *,
        server: KeycloakServer,
        start_server: Callable[[], object] | None = None,
    ) -> None:
        """`start_server`: the server is shared (localdev/services.py): this starts it if it is not running
        yet, and only the realm is this deployment's (leased, deleted at stop). None: the server is ours."""
        self.idp = dict(idp)
        self.realm = str(idp["realm"])
        self.client_id = str(idp["client_id"])
        self.realm_users = list(users)
        self.server = server
        self.start_server = start_server
        self.log_dir = log_dir
        self._lease: ExitStack | None = None
        self.user_ids: dict[str, str] = {}
        """username -> Keycloak user id (the ID token's `sub`)."""
        self.applied: AppliedResources | None = None

    # --- what the deployment and the shared cases read ---------------------------------------------

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        """The server's base URL (admin console at `<url>/admin/`)."""
        return self.server.url

    @property
    def issuer(self) -> str:
        return self.server.issuer(self.realm)

    @property
    def discovery_url(self) -> str:
        return self.server.discovery_url(self.realm)

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start Keycloak (unless shared), create what the stack expects to exist, apply what it declares,
        add the users."""
        if self.start_server is None:
            self.server.start()
            admin = self.server.admin()
        else:
            self.start_server()
            self._lease = ExitStack()
            admin = self._lease.enter_context(self.server.realm_lease(self.realm))
        if not self.idp["realm_declared"]:
            # The stack references an existing realm (createRealm: false): the company's realm.
            admin.create_realm(self.realm, enabled=True)
        for group in self.idp["existing_groups"]:
            admin.ensure_group(self.realm, group)  # by path, parents too: the company's groups
        resources, declared_ids = declared_from_capture(self.idp["declared"])
        self.applied = apply_declared(admin, resources, declared_ids, self.idp["declared"].get("existing"))
        for user in self.realm_users:
            self.user_ids[user.username] = admin.create_user(
                self.realm,
                user.username,
                user.password,
                email=user.email,
                first_name=user.first_name,
                last_name=user.last_name,
                groups=user.groups,
            )

    def stop(self) -> None:
        """Delete the realm (a shared server), or stop the server."""
        if self.start_server is None:
            self.server.stop()
        elif self._lease is not None:
            self._lease.close()
        self._lease = None

    # --- what tests change -------------------------------------------------------------------------

    def set_shims(self, shims: Shims) -> None:
        """Keycloak is the real server: only 'no shims' is possible."""
        if shims != Shims():
            raise HarnessError("Keycloak is a real server: response shims exist only for the stand-in provider")

    def set_user_groups(self, username: str, groups: Sequence[str]) -> None:
        """Make `groups` (paths; a bare name is a top-level group) exactly the user's memberships."""
        admin = self.server.admin()
        groups = [keycloak_group_path(group) for group in groups]
        current = admin.user_groups(self.realm, username)
        for group in groups:
            if group not in current:
                admin.add_user_to_group(self.realm, username, group)
        for group in current:
            if group not in groups:
                admin.remove_user_from_group(self.realm, username, group)

    @contextmanager
    def registered_with(self, **changes: Any) -> Iterator[None]:
        """The client changed in place (`redirect_uris=[...]`, `client_secret=...`), restored afterwards."""
        unknown = set(changes) - set(CLIENT_FIELDS)
        if unknown:
            raise HarnessError(f"no Keycloak client field for {sorted(unknown)}")
        admin = self.server.admin()
        fields = {CLIENT_FIELDS[key]: value for key, value in changes.items()}
        original = admin.get_client(self.realm, self.client_id)
        admin.update_client(self.realm, self.client_id, fields)
        try:
            yield
        finally:
            admin.update_client(self.realm, self.client_id, {key: original[key] for key in fields})

    @contextmanager
    def mapper_config(self, config: Mapping[str, str]) -> Iterator[None]:
        """The declared groups mapper's config changed (e.g. `{"full.path": "true"}`), restored afterwards."""
        admin = self.server.admin()
        name = str(self.idp["mapper_name"])
        original = admin.protocol_mapper(self.realm, self.client_id, name)["config"]
        admin.update_protocol_mapper_config(self.realm, self.client_id, name, config)
        try:
            yield
        finally:
            admin.update_protocol_mapper_config(self.realm, self.client_id, name, {k: original[k] for k in config})

    @contextmanager
    def client_attributes(self, attributes: Mapping[str, str]) -> Iterator[None]:
        """Client attributes changed (e.g. PKCE's `pkce.code.challenge.method`), restored afterwards."""
        admin = self.server.admin()
        original = admin.get_client(self.realm, self.client_id).get("attributes", {})
        admin.update_client(self.realm, self.client_id, attributes=attributes)
        try:
            yield
        finally:
            admin.update_client(self.realm, self.client_id, attributes={k: original.get(k, "") for k in attributes})
