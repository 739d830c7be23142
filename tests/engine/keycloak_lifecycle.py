"""The life of a Keycloak stack under the real engine, as test functions a stack's module binds to its stack.

Each module runs one stack from `pulumi stack init` to `pulumi destroy`; the tests run in file order and each
states one joint: preview, up, a second up with no changes, refresh without drift, Keycloak equal to the
contract, every test user's role after a browser sign-in through what `up` created, a rotation one period later,
the policy pack, and destroy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from localdev.harness.process import RunDir
from tests.engine.conftest import Keycloak
from tests.engine.keycloak_checks import keycloak_differences
from tests.engine.kube import KubeApi
from tests.engine.scenario import EngineStack, client_ids, group_paths, namespace_objects, preview_json_ops
from tests.engine.sso import ClusterAirflow, RealmUser, make_realm_users, sign_in_everyone
from tests.engine.workspace import PulumiWorkspace


def deployed(name: str, ws: PulumiWorkspace, keycloak: Keycloak, before_up: Any = None) -> Iterator[EngineStack]:
    """A module fixture's body: init, point at this machine, preview, up; whatever is left destroyed at the end."""
    stack = EngineStack(name, ws, keycloak.url)
    stack.init()
    if before_up is not None:
        before_up(stack)
    try:
        stack.pulumi("preview")
        stack.up()
        yield stack
    finally:
        stack.teardown()


def airflow_for(stack: EngineStack, kube: KubeApi, run_dir: RunDir) -> Iterator[ClusterAirflow]:
    spec = stack.spec
    database = spec.airflow.database
    with ClusterAirflow(
        run_dir.sub(f"airflow-{stack.name}"),
        kube,
        namespace=spec.airflow.namespace,
        release=spec.airflow.releaseName,
        public_url=stack.public_url,
        redirect_uri=stack.contract.redirect_uris[0],
        database_secret=database.secretName if database else None,
    ) as airflow:
        yield airflow


def realm_users(stack: EngineStack, keycloak: Keycloak) -> list[RealmUser]:
    return make_realm_users(keycloak.admin, stack.spec.idp.realm, stack.file)  # type: ignore[union-attr]


# --- the checks, in order -------------------------------------------------------------------------------------


def check_preview_and_up(stack: EngineStack) -> None:
    assert stack.results["preview"].returncode == 0
    up = stack.results["up --yes --skip-preview"]
    assert up.returncode == 0 and "created" in up.stdout, up.stdout[-2000:]


def check_second_up_changes_nothing(stack: EngineStack) -> None:
    result = stack.pulumi("up", "--yes", "--expect-no-changes", check=False)
    assert result.returncode == 0, result.output[-3000:]


def check_refresh_finds_no_drift(stack: EngineStack) -> None:
    result = stack.pulumi("refresh", "--yes", "--expect-no-changes", check=False)
    assert result.returncode == 0, result.output[-3000:]


def check_keycloak_equals_the_contract(stack: EngineStack, keycloak: Keycloak) -> None:
    problems = keycloak_differences(keycloak.admin, stack)
    assert problems == [], problems


def check_every_user_gets_exactly_its_role(
    stack: EngineStack, keycloak: Keycloak, airflow: ClusterAirflow, users: list[RealmUser]
) -> None:
    # The client id and secret the api-servers use came from the Kubernetes Secret `pulumi up` wrote; Keycloak
    # holds the same secret (else no sign-in would succeed).
    secret = airflow.declared.env["AIRFLOW_OIDC_CLIENT_SECRET"]
    realm = stack.spec.idp.realm  # type: ignore[union-attr]
    assert keycloak.admin.client_secret(realm, stack.keycloak_client_id) == secret
    seen = sign_in_everyone(airflow, keycloak.admin, realm, users)
    for account, (roles, expected, signed_in, has_row) in seen.items():
        assert roles == expected, f"{account}: {sorted(roles)} != {sorted(expected)}\n{airflow.log_tail()}"
        assert signed_in == bool(expected), account
        assert has_row == bool(expected), f"{account}: a refused user must have no user row"


def check_rotation(
    stack: EngineStack, keycloak: Keycloak, kube: KubeApi, airflow: ClusterAirflow, users: list[RealmUser]
) -> None:
    """One period later `pulumi up` replaces exactly the secret; Keycloak and the Kubernetes Secret follow, and the
    next sign-in works with the new one."""
    spec, realm = stack.spec, stack.spec.idp.realm  # type: ignore[union-attr]
    client_id = stack.keycloak_client_id
    before = keycloak.admin.client_secret(realm, client_id)
    later = {"AIRFLOW_OIDC_TODAY": stack.next_rotation_day()}
    ops = preview_json_ops(stack.pulumi("preview", "--json", env=later))
    by_name = {urn.rsplit("::", 1)[-1]: op for urn, op in ops.items()}
    # Exactly the secret and what carries it: its value (replaced), the Kubernetes Secret holding it (Pulumi's
    # Kubernetes provider replaces a Secret whose data changes), the client at Keycloak (updated in place: same
    # client id), the api-server's config-version annotation in the release (updated: the pods roll).
    assert by_name == {
        "airflow-oidc-keycloak-client-secret": "replace",
        "airflow-oidc-airflow-secret-oidc-client-secret": "replace",
        "airflow-oidc-keycloak-client": "update",
        "airflow-oidc-airflow-release": "update",
    }, ops
    stack.up(env=later)
    after = keycloak.admin.client_secret(realm, client_id)
    in_cluster = kube.secret_data(spec.airflow.namespace, f"{spec.airflow.releaseName}-oidc-client")["client-secret"]
    assert after != before and in_cluster == after
    airflow.restart_from_cluster()
    assert airflow.declared.env["AIRFLOW_OIDC_CLIENT_SECRET"] == after
    admin = next(user for user in users if "Admin" in user.expected_roles)
    result = airflow.login(admin)
    assert result.token, f"{result.final_url}\n{airflow.log_tail()}"


def check_policy_pack_passes(stack: EngineStack) -> None:
    result = stack.policy_preview()
    assert result.returncode == 0, result.output[-3000:]
    assert "Policy Violations" not in result.output


def check_destroy_leaves_nothing(stack: EngineStack, keycloak: Keycloak, kube: KubeApi) -> None:
    spec = stack.spec
    realm = spec.idp.realm  # type: ignore[union-attr]
    result = stack.pulumi("destroy", "--yes", check=False)
    assert result.returncode == 0, result.output[-3000:]
    assert stack.ws.resources(stack.name) == []
    if spec.idp.createRealm:  # type: ignore[union-attr]
        assert not keycloak.admin.realm_exists(realm)
    else:
        assert stack.keycloak_client_id not in client_ids(keycloak.admin, realm)
        assert not group_paths(keycloak.admin, realm) & set(stack.contract.claim_values)
    assert namespace_objects(kube, spec.airflow.namespace) == {}
