"""A real Keycloak server (dev mode, loopback) and an Admin REST client that applies what the program declared.

`KeycloakServer` runs `bin/kc.sh start-dev` from a private copy of the cached distribution (hard links, so
it is instant) in its run directory: the embedded database is in memory (`--db=dev-mem`) and the data
directory is the run's own, so no two runs share state. `KeycloakAdmin` talks to the Admin REST API as
the bootstrap admin. `apply_declared` replays the program's captured `pulumi_keycloak` resources through
that API, translating every declared input by an explicit table per type: an input the table does not
know raises, so a new program input can never be silently dropped.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import html
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import requests

from components.idp.keycloak import keycloak_group_path as group_path
from localdev.harness.process import HarnessError, ManagedProcess, Service, error_with_log, free_port, wait_until

KEYCLOAK_VERSION = "26.5.6"
KEYCLOAK_ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:tar.gz"
MIN_JAVA_MAJOR = 17
# Build-time options (they decide Quarkus' augmentation, cached in lib/quarkus); runtime options are per run.
BUILD_OPTIONS = ("--db=dev-mem", "--health-enabled=true")
# C1 only: about 2.5 s off a ~10 s start on 2 cores; a test server never runs long enough to need C2.
JAVA_OPTS_APPEND = "-XX:TieredStopAtLevel=1"
ADMIN_USERNAME = "admin"
MASTER_REALM = "master"
# Pulumi's secret wrapper, as it appears in a raw captured input.
_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"


def keycloak_cache_root() -> Path:
    """Where the distribution is cached: `$AIRFLOW_OIDC_CACHE` or `~/.cache/airflow-oidc`, then keycloak/<version>."""
    base = os.environ.get("AIRFLOW_OIDC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "airflow-oidc"
    )
    return Path(base) / "keycloak" / KEYCLOAK_VERSION


def keycloak_dist(root: Path | None = None) -> Path:
    """The extracted distribution (`keycloak-<version>/`, with bin/kc.sh)."""
    return (root or keycloak_cache_root()) / f"keycloak-{KEYCLOAK_VERSION}"


def keycloak_stamp(root: Path | None = None) -> Path:
    """Written once the distribution is extracted and augmented for BUILD_OPTIONS."""
    return (root or keycloak_cache_root()) / "ready.stamp"


def stamp_text() -> str:
    """What the stamp holds: the version and the build options it was augmented for."""
    return json.dumps({"version": KEYCLOAK_VERSION, "build": list(BUILD_OPTIONS), "java": JAVA_OPTS_APPEND})


@contextmanager
def cache_lock(root: Path | None = None) -> Iterator[None]:
    """An exclusive lock on the cache directory (concurrent installs and warm-ups wait for each other)."""
    root = root or keycloak_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _private_home(dist: Path, home: Path) -> None:
    """A copy of `dist` at `home`: hard links for the read-only files, real copies of lib/quarkus, no data/.

    kc.sh finds its home by resolving its own path, so a symlinked tree would point back at the cache;
    hard links do not. lib/quarkus is rewritten when Keycloak re-augments, so each run has its own.
    """
    if home.exists():
        shutil.rmtree(home)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:  # another filesystem: copy
            shutil.copy2(src, dst)

    shutil.copytree(
        dist, home, copy_function=link, ignore=lambda directory, names: ["data"] if Path(directory) == dist else []
    )
    shutil.rmtree(home / "lib" / "quarkus")
    shutil.copytree(dist / "lib" / "quarkus", home / "lib" / "quarkus")


class KeycloakServer(Service):
    """Keycloak `start-dev` on 127.0.0.1:<free port>, management (health) on another free port.

    The bootstrap admin (`admin`, random password) is created at first start; `admin()` returns an
    Admin REST client logged in as it. `in_place=True` runs the cached distribution itself (only the
    install's warm-up does that, under the cache lock, to persist the augmentation).
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        port: int | None = None,
        management_port: int | None = None,
        dist: Path | None = None,
        start_timeout: float = 180.0,
        in_place: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.log_dir = log_dir
        self.log_path = log_dir / "keycloak.log"
        self.port = port or free_port()
        self.management_port = management_port or free_port()
        self.dist = dist or keycloak_dist()
        self.home = self.dist if in_place else log_dir / "keycloak-home"
        self.start_timeout = start_timeout
        self.in_place = in_place
        self.extra_args = list(extra_args)
        """More `kc.sh start-dev` options (runtime ones; a build option re-runs the ~20 s augmentation)."""
        self.admin_username = ADMIN_USERNAME
        self._admin_password = secrets.token_urlsafe(24)
        self._process: ManagedProcess | None = None
        self._admin: KeycloakAdmin | None = None
        self.start_seconds: float | None = None
        """Seconds from launching kc.sh to /health/ready answering UP (set by start())."""
        self.augmented = False
        """Whether this start had to re-run Quarkus' augmentation (a stale or missing warm-up)."""

    @property
    def url(self) -> str:
        """Base URL (no trailing slash): realms under `<url>/realms/<realm>`, admin API under `<url>/admin`."""
        return f"http://127.0.0.1:{self.port}"

    def issuer(self, realm: str) -> str:
        """The issuer Keycloak advertises for `realm` (dev mode derives it from the request's host)."""
        return f"{self.url}/realms/{realm}"

    def discovery_url(self, realm: str) -> str:
        """`<issuer>/.well-known/openid-configuration`."""
        return self.issuer(realm) + "/.well-known/openid-configuration"

    def start(self) -> None:
        """Prepare the private home, launch kc.sh start-dev, wait for /health/ready, log the admin in."""
        kc_sh = self.dist / "bin" / "kc.sh"
        if not kc_sh.exists():
            raise HarnessError(
                f"Keycloak {KEYCLOAK_VERSION} is not installed at {self.dist}: run `make e2e-deps` "
                "(python -m localdev.harness.install)"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not self.in_place:
            _private_home(self.dist, self.home)
        env = {
            **os.environ,
            "KC_BOOTSTRAP_ADMIN_USERNAME": self.admin_username,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self._admin_password,
            "JAVA_OPTS_APPEND": JAVA_OPTS_APPEND,
        }
        argv = [
            str(self.home / "bin" / "kc.sh"),
            "start-dev",
            *BUILD_OPTIONS,
            "--http-host=127.0.0.1",
            f"--http-port={self.port}",
            f"--http-management-port={self.management_port}",
            *self.extra_args,
        ]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        started = time.monotonic()
        self._process = ManagedProcess("keycloak", argv, self.log_path, env=env, cwd=self.home, stop_timeout=20)
        self._process.start()
        wait_until(
            self._ready,
            timeout=self.start_timeout,
            what="keycloak",
            log_path=self.log_path,
            alive=self._process.alive,
            interval=0.25,
        )
        self.start_seconds = time.monotonic() - started
        with self.log_path.open("rb") as log:
            log.seek(offset)
            self.augmented = b"Quarkus augmentation completed" in log.read()
        self._admin = KeycloakAdmin(self.url, self.admin_username, self._admin_password)
        try:
            self._admin.token()
        except HarnessError as exc:
            raise error_with_log(f"keycloak: the bootstrap admin cannot log in: {exc}", self.log_path) from exc

    def _ready(self) -> bool:
        response = requests.get(f"http://127.0.0.1:{self.management_port}/health/ready", timeout=2)
        return response.status_code == 200 and response.json().get("status") == "UP"

    def admin(self) -> KeycloakAdmin:
        """The Admin REST client (logged in as the bootstrap admin)."""
        if self._admin is None:
            raise HarnessError("keycloak is not running")
        return self._admin

    @contextmanager
    def realm_lease(self, *realms: str) -> Iterator[KeycloakAdmin]:
        """Use `realms` on this (possibly shared) server: none of them may exist yet (another user of the
        server holds it), and each is deleted afterwards, so the next user starts from a clean server."""
        admin = self.admin()
        taken = [realm for realm in realms if admin.realm_exists(realm)]
        if taken:
            raise HarnessError(
                f"keycloak at {self.url}: realm(s) {taken} exist already: another test holds them on the shared server"
            )
        try:
            yield admin
        finally:
            if self._admin is not None:
                for realm in realms:
                    admin.delete_realm(realm)

    def stop(self) -> None:
        """SIGTERM (Keycloak shuts down in well under a second), SIGKILL after 20 s."""
        if self._process is not None:
            self._process.stop()
            self._process = None
        self._admin = None
        # The private home is derived (and the database was in memory): only the log stays.
        shutil.rmtree(self.home / "data" if self.in_place else self.home, ignore_errors=True)


class KeycloakAdmin:
    """Keycloak's Admin REST API as the master realm's admin (admin-cli, password grant).

    The master realm's access tokens live 60 s: a token older than 40 s is replaced before a call.
    Errors carry the method, path, status and Keycloak's error body, never a request body (secrets).
    """

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self._token: str | None = None
        self._token_at = 0.0
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"KeycloakAdmin({self.base_url!r}, {self.username!r})"

    def token(self) -> str:
        """A fresh enough admin access token."""
        if self._token is None or time.monotonic() - self._token_at > 40:
            response = self.session.post(
                f"{self.base_url}/realms/{MASTER_REALM}/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "client_id": "admin-cli",
                    "username": self.username,
                    "password": self._password,
                },
                timeout=self.timeout,
            )
            if response.status_code != 200:
                raise HarnessError(f"keycloak admin token: {response.status_code} {response.text[:300]}")
            self._token = str(response.json()["access_token"])
            self._token_at = time.monotonic()
        return self._token

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        ok: Sequence[int] = (200, 201, 204),
    ) -> requests.Response:
        """`<base>/admin/realms<path>` with the admin token; raise HarnessError unless the status is in `ok`."""
        response = self.session.request(
            method,
            f"{self.base_url}/admin/realms{path}",
            json=json_body,
            params=params,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=self.timeout,
        )
        if response.status_code not in ok:
            raise HarnessError(f"keycloak admin {method} {path}: {response.status_code} {response.text[:500]}")
        return response

    def _created_id(self, response: requests.Response, what: str) -> str:
        location = response.headers.get("Location", "")
        if not location:
            raise HarnessError(f"keycloak admin: creating {what} returned no Location header")
        return location.rstrip("/").rsplit("/", 1)[-1]

    # Realms
    def realm_exists(self, realm: str) -> bool:
        """Whether `realm` exists."""
        return self.request("GET", f"/{realm}", ok=(200, 404)).status_code == 200

    def create_realm(self, realm: str, **fields: Any) -> None:
        """Create `realm` (enabled unless `fields` say otherwise); fields are Admin API RealmRepresentation keys."""
        self.request("POST", "", json_body={"realm": realm, "enabled": True, **fields})

    def get_realm(self, realm: str) -> dict[str, Any]:
        """The RealmRepresentation."""
        return dict(self.request("GET", f"/{realm}").json())

    def update_realm(self, realm: str, fields: Mapping[str, Any]) -> None:
        """PUT a partial RealmRepresentation."""
        self.request("PUT", f"/{realm}", json_body=dict(fields))

    def delete_realm(self, realm: str) -> None:
        """Delete `realm` with everything in it (absent already: nothing to do)."""
        self.request("DELETE", f"/{realm}", ok=(204, 404))

    # Groups (named by path, `/parent/child`; a bare name is the top-level group, as the program reads it)
    def create_group(self, realm: str, name: str, *, parent_id: str | None = None, **fields: Any) -> str:
        """Create a group (top-level, or a child of `parent_id`); returns its id."""
        path = f"/{realm}/groups/{parent_id}/children" if parent_id else f"/{realm}/groups"
        return self._created_id(self.request("POST", path, json_body={"name": name, **fields}), f"group {name}")

    def group_id(self, realm: str, group: str) -> str:
        """The id of the group at path `group` (Keycloak's exact `/group-by-path`)."""
        path = group_path(group)
        escaped = "/".join(quote(segment, safe="") for segment in path[1:].split("/"))
        response = self.request("GET", f"/{realm}/group-by-path/{escaped}", ok=(200, 404))
        if response.status_code == 404:
            raise HarnessError(f"keycloak: no group {path} in realm {realm!r}")
        return str(response.json()["id"])

    def ensure_group(self, realm: str, group: str) -> str:
        """The id of the group at path `group`, created (with any missing parent) when missing."""
        parent_id: str | None = None
        path = ""
        for segment in group_path(group)[1:].split("/"):
            path += "/" + segment
            try:
                parent_id = self.group_id(realm, path)
            except HarnessError:
                parent_id = self.create_group(realm, segment, parent_id=parent_id)
        assert parent_id is not None
        return parent_id

    # Users
    def create_user(
        self,
        realm: str,
        username: str,
        password: str,
        *,
        email: str,
        first_name: str,
        last_name: str,
        email_verified: bool = True,
        groups: Sequence[str] = (),
    ) -> str:
        """Create an enabled user with a non-temporary password, in `groups` (paths); returns its id.

        Email and both names are set, so Keycloak's default user profile asks nothing at first login.
        """
        body = {
            "username": username,
            "email": email,
            "firstName": first_name,
            "lastName": last_name,
            "emailVerified": email_verified,
            "enabled": True,
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
        user_id = self._created_id(self.request("POST", f"/{realm}/users", json_body=body), f"user {username}")
        for group in groups:
            self.add_user_to_group(realm, username, group)
        return user_id

    def user_id(self, realm: str, username: str) -> str:
        """The id of user `username` (exact match)."""
        found = self.request("GET", f"/{realm}/users", params={"username": username, "exact": "true"}).json()
        if not found:
            raise HarnessError(f"keycloak: no user {username!r} in realm {realm!r}")
        return str(found[0]["id"])

    def update_user(self, realm: str, username: str, fields: Mapping[str, Any]) -> None:
        """PUT a partial UserRepresentation (e.g. a new `email`)."""
        current = self.request("GET", f"/{realm}/users/{self.user_id(realm, username)}").json()
        self.request("PUT", f"/{realm}/users/{current['id']}", json_body={**current, **fields})

    def user_groups(self, realm: str, username: str) -> list[str]:
        """The paths of the groups `username` is a direct member of."""
        found = self.request("GET", f"/{realm}/users/{self.user_id(realm, username)}/groups").json()
        return sorted(str(group["path"]) for group in found)

    def add_user_to_group(self, realm: str, username: str, group: str) -> None:
        """Make `username` a member of the group at path `group`."""
        user_id = self.user_id(realm, username)
        self.request("PUT", f"/{realm}/users/{user_id}/groups/{self.group_id(realm, group)}")

    def remove_user_from_group(self, realm: str, username: str, group: str) -> None:
        """End `username`'s membership of the group at path `group`."""
        user_id = self.user_id(realm, username)
        self.request("DELETE", f"/{realm}/users/{user_id}/groups/{self.group_id(realm, group)}")

    def move_user(self, realm: str, username: str, from_group: str, to_group: str) -> None:
        """Move `username` from one group to another (paths)."""
        self.add_user_to_group(realm, username, to_group)
        self.remove_user_from_group(realm, username, from_group)

    def logout_user(self, realm: str, username: str) -> None:
        """End every Keycloak session of `username` (the next login shows the login form again)."""
        self.request("POST", f"/{realm}/users/{self.user_id(realm, username)}/logout")

    # Clients
    def create_client(self, realm: str, representation: Mapping[str, Any]) -> str:
        """Create a client from a ClientRepresentation; returns its internal id."""
        response = self.request("POST", f"/{realm}/clients", json_body=dict(representation))
        return self._created_id(response, f"client {representation.get('clientId')}")

    def client_internal_id(self, realm: str, client_id: str) -> str:
        """The internal id (uuid) of the client whose clientId is `client_id`."""
        found = self.request("GET", f"/{realm}/clients", params={"clientId": client_id}).json()
        if not found:
            raise HarnessError(f"keycloak: no client {client_id!r} in realm {realm!r}")
        return str(found[0]["id"])

    def get_client(self, realm: str, client_id: str) -> dict[str, Any]:
        """The ClientRepresentation of `client_id` (its secret included: keep it out of messages)."""
        return dict(self.request("GET", f"/{realm}/clients/{self.client_internal_id(realm, client_id)}").json())

    def update_client(
        self, realm: str, client_id: str, fields: Mapping[str, Any] = {}, *, attributes: Mapping[str, str] = {}
    ) -> None:
        """Change a client in place: top-level `fields` replaced, `attributes` merged into its attributes.

        For the negative controls, e.g. `update_client(realm, cid, {"redirectUris": [uri[:-1] + "x"]})`,
        `update_client(realm, cid, {"secret": other})`, `attributes={"pkce.code.challenge.method": ""}`.
        """
        current = self.get_client(realm, client_id)
        merged_attributes = {**current.get("attributes", {}), **attributes}
        self.request(
            "PUT", f"/{realm}/clients/{current['id']}", json_body={**current, **fields, "attributes": merged_attributes}
        )

    def client_secret(self, realm: str, client_id: str) -> str:
        """The confidential client's current secret."""
        internal = self.client_internal_id(realm, client_id)
        return str(self.request("GET", f"/{realm}/clients/{internal}/client-secret").json()["value"])

    # Protocol mappers
    def create_protocol_mapper(self, realm: str, client_internal_id: str, representation: Mapping[str, Any]) -> str:
        """Add a protocol mapper to a client; returns its id."""
        path = f"/{realm}/clients/{client_internal_id}/protocol-mappers/models"
        return self._created_id(self.request("POST", path, json_body=dict(representation)), "protocol mapper")

    def protocol_mapper(self, realm: str, client_id: str, name: str) -> dict[str, Any]:
        """The client's protocol mapper called `name`."""
        internal = self.client_internal_id(realm, client_id)
        for mapper in self.request("GET", f"/{realm}/clients/{internal}/protocol-mappers/models").json():
            if mapper.get("name") == name:
                return dict(mapper)
        raise HarnessError(f"keycloak: client {client_id!r} in realm {realm!r} has no protocol mapper {name!r}")

    def update_protocol_mapper_config(self, realm: str, client_id: str, name: str, config: Mapping[str, str]) -> None:
        """Merge `config` into a mapper's config, e.g. `{"full.path": "true"}` (a negative control)."""
        mapper = self.protocol_mapper(realm, client_id, name)
        internal = self.client_internal_id(realm, client_id)
        body = {**mapper, "config": {**mapper.get("config", {}), **config}}
        self.request("PUT", f"/{realm}/clients/{internal}/protocol-mappers/models/{mapper['id']}", json_body=body)


# ---------------------------------------------------------------------------------------------------------------
# Applying what the program declared
# ---------------------------------------------------------------------------------------------------------------

REALM = "keycloak:index/realm:Realm"
GROUP = "keycloak:index/group:Group"
OPENID_CLIENT = "keycloak:openid/client:Client"
GROUP_MAPPER = "keycloak:openid/groupMembershipProtocolMapper:GroupMembershipProtocolMapper"
# Creation order: what a resource refers to exists before it.
APPLY_ORDER = (REALM, GROUP, OPENID_CLIENT, GROUP_MAPPER)


@dataclass(frozen=True)
class DeclaredResource:
    """One captured pulumi_keycloak resource: its Pulumi name, type token and camelCase inputs."""

    name: str
    type: str
    inputs: Mapping[str, Any] = field(repr=False)

    @classmethod
    def of(cls, registration: Any) -> DeclaredResource:
        """From anything with `.name`, `.type`, `.inputs` (tests/mock_engine.py's Registration)."""
        return cls(str(registration.name), str(registration.type), dict(registration.inputs))


@dataclass
class _Draft:
    """The Admin API representation being built for one declared resource, and where it goes."""

    resource: DeclaredResource
    body: dict[str, Any]
    realm: str | None = None
    client_internal_id: str | None = None
    parent_group_id: str | None = None
    parent_group_path: str | None = None
    """A parent group the program looked up (it exists before the stack): resolved by path at creation."""

    def attribute(self, key: str, value: str) -> None:
        self.body.setdefault("attributes", {})[key] = value

    def config(self, key: str, value: str) -> None:
        self.body.setdefault("config", {})[key] = value


Handler = Callable[[_Draft, Any, "_Resolver"], None]


class _Resolver:
    """Turns references between declared resources (mock fake ids) into real Keycloak ids."""

    def __init__(
        self,
        admin: KeycloakAdmin,
        declared_ids: Mapping[str, str],
        resources: Sequence[DeclaredResource],
        existing_ids: Mapping[str, str] | None = None,
    ):
        self.admin = admin
        self.declared_ids = dict(declared_ids)
        self.existing_ids = dict(existing_ids or {})
        """The id the mock engine gave a looked-up group -> its path (it must exist on the server)."""
        self.by_name = {resource.name: resource for resource in resources}
        self.real_ids: dict[str, str] = {}
        """Declared resource name -> real Keycloak id (realm name for a realm, internal id for a client)."""

    def declared(self, value: Any) -> DeclaredResource | None:
        name = self.declared_ids.get(str(value))
        return self.by_name.get(name) if name is not None else None

    def realm(self, draft: _Draft, value: Any) -> str:
        target = self.declared(value)
        if target is not None:
            if target.type != REALM:
                raise _input_error(draft, "realmId", f"refers to {target.type} {target.name!r}, not a realm")
            return str(target.inputs["realm"])
        # Keycloak's provider uses the realm's name as its id: a literal names an existing realm.
        if not self.admin.realm_exists(str(value)):
            raise _input_error(draft, "realmId", f"names no declared realm and no realm on the server: {value!r}")
        return str(value)

    def real_id(self, draft: _Draft, input_name: str, value: Any, expected_type: str) -> str:
        target = self.declared(value)
        if target is None or target.type != expected_type:
            raise _input_error(draft, input_name, f"does not refer to a declared {expected_type}: {value!r}")
        if target.name not in self.real_ids:
            raise _input_error(draft, input_name, f"refers to {target.name!r}, which was not created first")
        return self.real_ids[target.name]


def _input_error(draft: _Draft, input_name: str, reason: str) -> HarnessError:
    return HarnessError(f"{draft.resource.type} {draft.resource.name!r}: input {input_name!r} {reason}")


# Value conversions (protobuf Struct makes every number a float).
def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def _integer_text(value: Any) -> str:
    """900.0 -> "900"; a numeric string passes through (the provider types lifespans as strings)."""
    if isinstance(value, str):
        if not re.fullmatch(r"-?\d+", value.strip()):
            raise ValueError(f"not an integer: {value!r}")
        return value.strip()
    return str(_integer(value))


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"not a boolean: {value!r}")
    return value


def _bool_text(value: Any) -> str:
    return "true" if _bool(value) else "false"


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a string: {value!r}")
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"not a list of strings: {value!r}")
    return list(value)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")


def _duration_seconds(value: Any) -> int:
    """The provider's realm durations ("5m", "1h30m", "300s") as Keycloak's integer seconds."""
    text = _text(value).strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a Go duration: {value!r}")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return int(sum(float(number) * scale[unit] for number, unit in parts))


def _top(key: str, convert: Callable[[Any], Any]) -> Handler:
    def handle(draft: _Draft, value: Any, resolver: _Resolver) -> None:
        draft.body[key] = convert(value)

    return handle


def _attr(key: str, convert: Callable[[Any], str]) -> Handler:
    def handle(draft: _Draft, value: Any, resolver: _Resolver) -> None:
        draft.attribute(key, convert(value))

    return handle


def _mapper_config(key: str, convert: Callable[[Any], str]) -> Handler:
    def handle(draft: _Draft, value: Any, resolver: _Resolver) -> None:
        draft.config(key, convert(value))

    return handle


def _realm_ref(draft: _Draft, value: Any, resolver: _Resolver) -> None:
    draft.realm = resolver.realm(draft, value)


def _provider_only(draft: _Draft, value: Any, resolver: _Resolver) -> None:
    """An input that drives the Pulumi provider's own behaviour and has no Admin API field."""


def _access_type(draft: _Draft, value: Any, resolver: _Resolver) -> None:
    kinds = {"CONFIDENTIAL": (False, False), "PUBLIC": (True, False), "BEARER-ONLY": (False, True)}
    if value not in kinds:
        raise ValueError(f"not one of {sorted(kinds)}: {value!r}")
    draft.body["publicClient"], draft.body["bearerOnly"] = kinds[value]


def _post_logout_uris(draft: _Draft, value: Any, resolver: _Resolver) -> None:
    # The provider's KeycloakSliceHashDelimited: Keycloak stores the list as one "##"-joined attribute.
    draft.attribute("post.logout.redirect.uris", "##".join(_strings(value)))


def _extra_config(draft: _Draft, value: Any, resolver: _Resolver) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"not a map: {value!r}")
    for key, item in value.items():
        draft.attribute(str(key), item if isinstance(item, str) else json.dumps(item))


def _client_ref(draft: _Draft, value: Any, resolver: _Resolver) -> None:
    draft.client_internal_id = resolver.real_id(draft, "clientId", value, OPENID_CLIENT)


def _parent_group(draft: _Draft, value: Any, resolver: _Resolver) -> None:
    existing = resolver.existing_ids.get(str(value))
    if existing is not None:
        draft.parent_group_path = existing
        return
    draft.parent_group_id = resolver.real_id(draft, "parentId", value, GROUP)


def _group_attributes(draft: _Draft, value: Any, resolver: _Resolver) -> None:
    # The provider's map of strings; a "##" in a value separates several values.
    if not isinstance(value, dict):
        raise ValueError(f"not a map: {value!r}")
    draft.body["attributes"] = {str(key): _text(item).split("##") for key, item in value.items()}


BRUTE_FORCE_INPUTS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "permanentLockout": ("permanentLockout", _bool),
    "maxLoginFailures": ("failureFactor", _integer),
    "waitIncrementSeconds": ("waitIncrementSeconds", _integer),
    "quickLoginCheckMilliSeconds": ("quickLoginCheckMilliSeconds", _integer),
    "minimumQuickLoginWaitSeconds": ("minimumQuickLoginWaitSeconds", _integer),
    "maxFailureWaitSeconds": ("maxFailureWaitSeconds", _integer),
    "failureResetTimeSeconds": ("maxDeltaTimeSeconds", _integer),
    "maxTemporaryLockouts": ("maxTemporaryLockouts", _integer),
}


def _security_defenses(draft: _Draft, value: Any, resolver: _Resolver) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"not a map: {value!r}")
    for key, nested in value.items():
        if key != "bruteForceDetection":
            raise _input_error(draft, f"securityDefenses.{key}", "is not in the harness's table (would be dropped)")
        # The provider turns brute-force protection on whenever the block is present.
        draft.body["bruteForceProtected"] = True
        for inner, item in (nested or {}).items():
            if inner not in BRUTE_FORCE_INPUTS:
                raise _input_error(
                    draft,
                    f"securityDefenses.bruteForceDetection.{inner}",
                    "is not in the harness's table (would be silently dropped)",
                )
            target, convert = BRUTE_FORCE_INPUTS[inner]
            draft.body[target] = convert(item)


REALM_INPUTS: dict[str, Handler] = {
    "realm": _top("realm", _text),
    "enabled": _top("enabled", _bool),
    "displayName": _top("displayName", _text),
    "displayNameHtml": _top("displayNameHtml", _text),
    "sslRequired": _top("sslRequired", _text),
    "registrationAllowed": _top("registrationAllowed", _bool),
    "registrationEmailAsUsername": _top("registrationEmailAsUsername", _bool),
    "editUsernameAllowed": _top("editUsernameAllowed", _bool),
    "resetPasswordAllowed": _top("resetPasswordAllowed", _bool),
    "rememberMe": _top("rememberMe", _bool),
    "verifyEmail": _top("verifyEmail", _bool),
    "loginWithEmailAllowed": _top("loginWithEmailAllowed", _bool),
    "duplicateEmailsAllowed": _top("duplicateEmailsAllowed", _bool),
    "loginTheme": _top("loginTheme", _text),
    "accountTheme": _top("accountTheme", _text),
    "adminTheme": _top("adminTheme", _text),
    "emailTheme": _top("emailTheme", _text),
    "passwordPolicy": _top("passwordPolicy", _text),
    "revokeRefreshToken": _top("revokeRefreshToken", _bool),
    "refreshTokenMaxReuse": _top("refreshTokenMaxReuse", _integer),
    "userManagedAccess": _top("userManagedAccess", _bool),
    "organizationsEnabled": _top("organizationsEnabled", _bool),
    "accessTokenLifespan": _top("accessTokenLifespan", _duration_seconds),
    "accessCodeLifespan": _top("accessCodeLifespan", _duration_seconds),
    "accessCodeLifespanLogin": _top("accessCodeLifespanLogin", _duration_seconds),
    "ssoSessionIdleTimeout": _top("ssoSessionIdleTimeout", _duration_seconds),
    "ssoSessionMaxLifespan": _top("ssoSessionMaxLifespan", _duration_seconds),
    "clientSessionIdleTimeout": _top("clientSessionIdleTimeout", _duration_seconds),
    "clientSessionMaxLifespan": _top("clientSessionMaxLifespan", _duration_seconds),
    "securityDefenses": _security_defenses,
    "attributes": _top("attributes", lambda value: {str(k): str(v) for k, v in dict(value).items()}),
    "terraformDeletionProtection": _provider_only,
}

GROUP_INPUTS: dict[str, Handler] = {
    "name": _top("name", _text),
    "realmId": _realm_ref,
    "parentId": _parent_group,
    "description": _top("description", _text),
    "attributes": _group_attributes,
}

CLIENT_INPUTS: dict[str, Handler] = {
    "clientId": _top("clientId", _text),
    "realmId": _realm_ref,
    "name": _top("name", _text),
    "description": _top("description", _text),
    "enabled": _top("enabled", _bool),
    "accessType": _access_type,
    "clientSecret": _top("secret", _text),
    "clientAuthenticatorType": _top("clientAuthenticatorType", _text),
    "standardFlowEnabled": _top("standardFlowEnabled", _bool),
    "implicitFlowEnabled": _top("implicitFlowEnabled", _bool),
    "directAccessGrantsEnabled": _top("directAccessGrantsEnabled", _bool),
    "serviceAccountsEnabled": _top("serviceAccountsEnabled", _bool),
    "frontchannelLogoutEnabled": _top("frontchannelLogout", _bool),
    "validRedirectUris": _top("redirectUris", _strings),
    "validPostLogoutRedirectUris": _post_logout_uris,
    "webOrigins": _top("webOrigins", _strings),
    "rootUrl": _top("rootUrl", _text),
    "adminUrl": _top("adminUrl", _text),
    "baseUrl": _top("baseUrl", _text),
    "fullScopeAllowed": _top("fullScopeAllowed", _bool),
    "consentRequired": _top("consentRequired", _bool),
    "alwaysDisplayInConsole": _top("alwaysDisplayInConsole", _bool),
    "pkceCodeChallengeMethod": _attr("pkce.code.challenge.method", _text),
    "accessTokenLifespan": _attr("access.token.lifespan", _integer_text),
    "clientSessionIdleTimeout": _attr("client.session.idle.timeout", _integer_text),
    "clientSessionMaxLifespan": _attr("client.session.max.lifespan", _integer_text),
    "clientOfflineSessionIdleTimeout": _attr("client.offline.session.idle.timeout", _integer_text),
    "clientOfflineSessionMaxLifespan": _attr("client.offline.session.max.lifespan", _integer_text),
    "loginTheme": _attr("login_theme", _text),
    "useRefreshTokens": _attr("use.refresh.tokens", _bool_text),
    "useRefreshTokensClientCredentials": _attr("client_credentials.use_refresh_token", _bool_text),
    "excludeSessionStateFromAuthResponse": _attr("exclude.session.state.from.auth.response", _bool_text),
    "excludeIssuerFromAuthResponse": _attr("exclude.issuer.from.auth.response", _bool_text),
    "frontchannelLogoutUrl": _attr("frontchannel.logout.url", _text),
    "backchannelLogoutUrl": _attr("backchannel.logout.url", _text),
    "backchannelLogoutSessionRequired": _attr("backchannel.logout.session.required", _bool_text),
    "backchannelLogoutRevokeOfflineSessions": _attr("backchannel.logout.revoke.offline.tokens", _bool_text),
    "displayOnConsentScreen": _attr("display.on.consent.screen", _bool_text),
    "consentScreenText": _attr("consent.screen.text", _text),
    "oauth2DeviceAuthorizationGrantEnabled": _attr("oauth2.device.authorization.grant.enabled", _bool_text),
    "standardTokenExchangeEnabled": _attr("standard.token.exchange.enabled", _bool_text),
    "extraConfig": _extra_config,
    # Rotation keepers and import mode steer the Pulumi provider; Keycloak never sees them.
    "clientSecretRegenerateWhenChanged": _provider_only,
    "import": _provider_only,
}

GROUP_MAPPER_INPUTS: dict[str, Handler] = {
    "name": _top("name", _text),
    "realmId": _realm_ref,
    "clientId": _client_ref,
    "claimName": _mapper_config("claim.name", _text),
    "fullPath": _mapper_config("full.path", _bool_text),
    "addToIdToken": _mapper_config("id.token.claim", _bool_text),
    "addToAccessToken": _mapper_config("access.token.claim", _bool_text),
    "addToUserinfo": _mapper_config("userinfo.token.claim", _bool_text),
    "addToTokenIntrospection": _mapper_config("introspection.token.claim", _bool_text),
}


def _realm_baseline() -> dict[str, Any]:
    return {"enabled": True}


def _group_baseline() -> dict[str, Any]:
    return {}


def _client_baseline() -> dict[str, Any]:
    """What the Pulumi (Terraform) provider sends for inputs the program left out.

    The provider posts its whole struct: unset booleans go as false (Keycloak's own default for
    `standardFlowEnabled` would be true), the schema defaults below as stated in its resource schema.
    """
    return {
        "protocol": "openid-connect",
        "enabled": True,
        "clientAuthenticatorType": "client-secret",
        "publicClient": False,
        "bearerOnly": False,
        "standardFlowEnabled": False,
        "implicitFlowEnabled": False,
        "directAccessGrantsEnabled": False,
        "serviceAccountsEnabled": False,
        "frontchannelLogout": False,
        "fullScopeAllowed": True,
        "consentRequired": False,
        "alwaysDisplayInConsole": False,
        "redirectUris": [],
        "webOrigins": [],
        "attributes": {
            "pkce.code.challenge.method": "",
            "use.refresh.tokens": "true",
            "backchannel.logout.session.required": "true",
            "client_credentials.use_refresh_token": "false",
            "oauth2.device.authorization.grant.enabled": "false",
            "exclude.session.state.from.auth.response": "false",
            "exclude.issuer.from.auth.response": "false",
        },
    }


def _group_mapper_baseline() -> dict[str, Any]:
    """The provider's schema defaults: full_path, id token, access token and userinfo on; introspection off."""
    return {
        "protocol": "openid-connect",
        "protocolMapper": "oidc-group-membership-mapper",
        "config": {
            "full.path": "true",
            "id.token.claim": "true",
            "access.token.claim": "true",
            "userinfo.token.claim": "true",
            "introspection.token.claim": "false",
        },
    }


TRANSLATIONS: dict[str, tuple[Mapping[str, Handler], Callable[[], dict[str, Any]]]] = {
    REALM: (REALM_INPUTS, _realm_baseline),
    GROUP: (GROUP_INPUTS, _group_baseline),
    OPENID_CLIENT: (CLIENT_INPUTS, _client_baseline),
    GROUP_MAPPER: (GROUP_MAPPER_INPUTS, _group_mapper_baseline),
}


def _unwrap_secret(value: Any) -> Any:
    if isinstance(value, dict):
        if _SECRET_SIG_KEY in value:
            return _unwrap_secret(value.get("value"))
        return {key: _unwrap_secret(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrap_secret(item) for item in value]
    return value


def check_known(resource: DeclaredResource) -> None:
    """Raise unless the resource's type and every one of its inputs are in the translation tables."""
    if resource.type not in TRANSLATIONS:
        raise HarnessError(
            f"{resource.type} {resource.name!r}: the Keycloak harness has no translation for this resource type "
            f"(known: {', '.join(APPLY_ORDER)})"
        )
    table = TRANSLATIONS[resource.type][0]
    unknown = sorted(set(resource.inputs) - set(table))
    if unknown:
        raise HarnessError(
            f"{resource.type} {resource.name!r}: input(s) {', '.join(repr(name) for name in unknown)} not in the "
            "harness's translation table (they would be silently dropped): add them to localdev/harness/keycloak.py"
        )


def translate(resource: DeclaredResource, resolver: _Resolver) -> _Draft:
    """The Admin API representation of one declared resource, every input through its table."""
    check_known(resource)
    table, baseline = TRANSLATIONS[resource.type]
    draft = _Draft(resource, baseline())
    for input_name, value in resource.inputs.items():
        handler = table[input_name]
        try:
            handler(draft, _unwrap_secret(value), resolver)
        except ValueError as exc:
            # The reason names the type only: a secret input's value must not reach the message.
            reason = str(exc).split(":", 1)[0]
            raise _input_error(draft, input_name, f"cannot be translated ({reason})") from None
    return draft


@dataclass
class AppliedResources:
    """What `apply_declared` created, by declared resource name."""

    realms: dict[str, str] = field(default_factory=dict)
    """Realm resource name -> realm name."""
    groups: dict[str, str] = field(default_factory=dict)
    """Group resource name -> group id."""
    clients: dict[str, str] = field(default_factory=dict)
    """openid.Client resource name -> the client's internal id."""
    mappers: dict[str, str] = field(default_factory=dict)
    """Protocol mapper resource name -> mapper id."""
    representations: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    """Resource name -> the Admin API body sent (secrets included: never print)."""


def apply_declared(
    admin: KeycloakAdmin,
    resources: Sequence[DeclaredResource | Any],
    declared_ids: Mapping[str, str],
    existing_ids: Mapping[str, str] | None = None,
) -> AppliedResources:
    """Create every declared resource on the server, in dependency order, and return the real ids.

    `resources`: DeclaredResource (or mock-engine Registration) objects; `declared_ids`: the id the
    mock engine gave each resource -> that resource's name (`{fake(r.name, "id"): r.name}`), so a
    reference such as the mapper's `clientId` resolves to the real id created here; `existing_ids`: the
    id the mocks gave each group the program looked up -> its path (a subgroup's existing parent), which
    must exist on the server. Every resource
    must be of a known type and every input in its type's table, else HarnessError (nothing is dropped).
    """
    declared = [item if isinstance(item, DeclaredResource) else DeclaredResource.of(item) for item in resources]
    for resource in declared:  # an unknown type or input is refused before anything is created
        check_known(resource)
    resolver = _Resolver(admin, declared_ids, declared, existing_ids)
    applied = AppliedResources()
    for type_ in APPLY_ORDER:
        for resource in [item for item in declared if item.type == type_]:
            draft = translate(resource, resolver)
            applied.representations[resource.name] = draft.body
            real_id = _create(admin, draft)
            resolver.real_ids[resource.name] = real_id
            {
                REALM: applied.realms,
                GROUP: applied.groups,
                OPENID_CLIENT: applied.clients,
                GROUP_MAPPER: applied.mappers,
            }[type_][resource.name] = real_id
    return applied


def capture_declared(run: Any) -> dict[str, Any]:
    """Pulumi venv only: a mock-engine Run's `keycloak:` resources, JSON-able, with the ids the mocks gave them.

    Returns `{"resources": [{"name", "type", "inputs"}], "ids": {mock id: resource name}, "existing":
    {mock id: group path}}` (secrets in the clear: write it 0600). The ids come from the mock engine's
    own `new_resource` (each IdP kind decides its id shape: GUIDs, a realm's name), so references
    resolve exactly as the program wired them; `existing` names the groups the program looked up.
    """
    from pulumi.runtime.mocks import MockResourceArgs

    from components.idp.keycloak import GET_GROUP, looked_up_group_id
    from components.mock_engine import ProgramMocks

    mocks = ProgramMocks()
    resources = [resource for resource in run.resources if str(resource.type).startswith("keycloak:")]
    ids: dict[str, str] = {}
    for resource in resources:
        resource_id, _ = mocks.new_resource(
            MockResourceArgs(resource.type, resource.name, resource.inputs, custom=True)
        )
        ids[str(resource_id)] = resource.name
    existing = {
        looked_up_group_id(str(args["realmId"]), str(args["groupPath"])): str(args["groupPath"])
        for token, args in run.invokes
        if token == GET_GROUP
    }
    return {
        "resources": [{"name": r.name, "type": r.type, "inputs": r.inputs} for r in resources],
        "ids": ids,
        "existing": existing,
    }


def declared_from_capture(data: Mapping[str, Any]) -> tuple[list[DeclaredResource], dict[str, str]]:
    """`capture_declared`'s JSON back as (resources, declared ids) for `apply_declared`."""
    resources = [DeclaredResource(str(r["name"]), str(r["type"]), dict(r["inputs"])) for r in data["resources"]]
    return resources, {str(key): str(value) for key, value in data["ids"].items()}


def _create(admin: KeycloakAdmin, draft: _Draft) -> str:
    resource = draft.resource
    if resource.type == REALM:
        realm = str(draft.body.get("realm", ""))
        if not realm:
            raise _input_error(draft, "realm", "is missing")
        if admin.realm_exists(realm):
            raise HarnessError(f"{resource.type} {resource.name!r}: realm {realm!r} already exists on the server")
        admin.request("POST", "", json_body=draft.body)
        return realm
    if draft.realm is None:
        raise _input_error(draft, "realmId", "is missing")
    if resource.type == GROUP:
        fields = {key: value for key, value in draft.body.items() if key != "name"}
        parent_id = draft.parent_group_id
        if draft.parent_group_path is not None:
            parent_id = admin.group_id(draft.realm, draft.parent_group_path)
        return admin.create_group(draft.realm, str(draft.body["name"]), parent_id=parent_id, **fields)
    if resource.type == OPENID_CLIENT:
        return admin.create_client(draft.realm, draft.body)
    if draft.client_internal_id is None:
        raise _input_error(draft, "clientId", "is missing (client scopes are not supported by the harness)")
    return admin.create_protocol_mapper(draft.realm, draft.client_internal_id, draft.body)


# ---------------------------------------------------------------------------------------------------------------
# Plain-HTTP browser-less login (for harness self-tests and quick probes)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pkce:
    """A PKCE verifier and its S256 challenge."""

    verifier: str = field(repr=False)
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def authorization_url(
    issuer: str, client_id: str, redirect_uri: str, *, pkce: Pkce | None, scope: str = "openid email profile"
) -> str:
    """`<issuer>/protocol/openid-connect/auth?...` for the code flow (with an S256 challenge when `pkce`)."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
    }
    if pkce is not None:
        params.update(code_challenge=pkce.challenge, code_challenge_method="S256")
    return f"{issuer}/protocol/openid-connect/auth?{urlencode(params)}"


_LOGIN_FORM = re.compile(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', re.DOTALL)


def login_form_action(page: str) -> str | None:
    """The login form's action URL on Keycloak's login page (None when the page has no login form)."""
    match = _LOGIN_FORM.search(page)
    return html.unescape(match.group(1)) if match else None


def password_login(
    issuer: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    username: str,
    password: str,
    *,
    timeout: float = 15.0,
) -> dict[str, Any]:
    """Sign in through Keycloak's login form with requests and exchange the code; returns the token response.

    The redirect back to `redirect_uri` is read, never followed (nothing needs to listen there).
    """
    session = requests.Session()
    pkce = Pkce.new()
    page = session.get(authorization_url(issuer, client_id, redirect_uri, pkce=pkce), timeout=timeout)
    action = login_form_action(page.text)
    if page.status_code != 200 or action is None:
        raise HarnessError(f"keycloak: no login form at the authorization endpoint ({page.status_code})")
    # Keycloak marks its login-session cookies Secure even over http; a browser sends them to a loopback
    # origin (a secure context), requests does not: treat them as the browser would.
    for cookie in session.cookies:
        cookie.secure = False
    answer = session.post(
        action, data={"username": username, "password": password}, allow_redirects=False, timeout=timeout
    )
    location = answer.headers.get("Location", "")
    if answer.status_code not in (302, 303) or not location.startswith(redirect_uri):
        raise HarnessError(f"keycloak: login of {username!r} did not redirect back ({answer.status_code})")
    code = parse_qs(urlsplit(location).query).get("code", [""])[0]
    token = requests.post(
        f"{issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": pkce.verifier,
        },
        auth=(client_id, client_secret),
        timeout=timeout,
    )
    if token.status_code != 200:
        raise HarnessError(f"keycloak: code exchange for {username!r}: {token.status_code} {token.text[:300]}")
    return dict(token.json())


def jwt_claims(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified (the tests check what Keycloak put in, not the signature)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
