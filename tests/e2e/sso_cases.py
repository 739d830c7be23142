"""The end-to-end cases every stack runs, against a module-scoped `deployment` fixture (a LocalDeployment).

Subclass `SsoLoginCases` in a test module that defines `deployment` (`stack_deployment(...)`,
tests/e2e/conftest.py). The Airflow-restarting negative controls run after every other test of the
stack (marker `restarts_airflow`), each restarting only the api-server it needs changed, on one stack
per IdP kind (`restarts_once_per_kind`); the declared environment is restored lazily, only before a
test that needs it.

Every assertion on something that arrives asynchronously waits for it: page text through
`login(..., expect_text=...)`, log lines through `expect_airflow_log` / `expect_provider_log`.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from localdev.deployment import LocalDeployment, one_character_off
from localdev.harness.browser import LoginResult
from localdev.harness.provider import Shims

# FAB's flash messages: an exception while authorizing (Authlib refused the response), and a
# security manager that returned no user (airflow-oidc refused the claims).
DENIED = "The request to sign in was denied"
INVALID_LOGIN = "Invalid login. Please try again."
# The log line FAB writes for the first kind, and the one the security manager writes for the second.
AUTHLIB_REFUSED = "Error authorizing OAuth access token: "
NOT_MAPPED = "no group of theirs is mapped to an Airflow role"


def describe(result: LoginResult) -> str:
    """Where a sign-in ended, for assertion messages."""
    return f"ended at {result.final_url}: {result.page_text[:300]!r}; steps {result.steps}"


def skip_without_shims(deployment: LocalDeployment) -> None:
    """Cases that forge the provider's responses need the stand-in provider's shims."""
    if deployment.is_keycloak:
        pytest.skip(
            "needs the stand-in provider's response shims; Keycloak is the real server "
            "(its own negative controls: tests/e2e/test_login_keycloak.py)"
        )


def assert_refused_in_airflow(deployment: LocalDeployment, result: LoginResult, username: str) -> None:
    """Back on Airflow's login page, no session token, and no user row."""
    assert not result.has_token, describe(result)
    assert result.landed_on_login_page, describe(result)
    assert not deployment.has_user_row(username), f"a refused sign-in created the user row {username}"


def assert_refused_at_provider(deployment: LocalDeployment, result: LoginResult, username: str, error: str) -> None:
    """The browser stopped at the provider's error page showing `error` (sign in with `expect_text=error`),
    it never came back to Airflow."""
    assert not result.has_token, describe(result)
    assert urlsplit(result.final_url).netloc == urlsplit(deployment.provider.issuer).netloc, describe(result)
    assert error in result.page_text, describe(result)
    assert not deployment.has_user_row(username), f"a refused sign-in created the user row {username}"


class SsoLoginCases:
    """Real browser sign-ins against a stack deployed from what the program declares."""

    @pytest.fixture(autouse=True)
    def _declared_api_servers(self, request: pytest.FixtureRequest, deployment: LocalDeployment) -> Iterator[None]:
        """Every test but the restarting controls runs on the api-servers exactly as declared."""
        if request.node.get_closest_marker("restarts_airflow") is None:
            deployment.use_airflow()
        yield
        deployment.provider.set_shims(Shims())

    # --- who gets which role -------------------------------------------------------------------

    def test_each_mapped_user_holds_exactly_the_roles_access_gives(self, deployment: LocalDeployment) -> None:
        """Each `access` group's member signs in and holds exactly that role (through Airflow's API)."""
        held = {}
        for index, user in enumerate(deployment.users_of("mapped")):
            # The first sign-in waits for the UI: its screenshot shows a successful login.
            result = deployment.login(user, label=f"success-{user.account_id}", settle=index == 0)
            assert result.has_token, f"{user.account_id}: {describe(result)}"
            assert result.final_url.startswith(deployment.base_url + "/"), describe(result)
            assert not result.landed_on_login_page, describe(result)
            if index == 0:
                assert result.screenshot is not None and result.screenshot.stat().st_size > 5_000
            held[user.account_id] = deployment.roles(user.username)
        assert held == {user.account_id: set(user.expected_roles) for user in deployment.users_of("mapped")}

    def test_unmapped_user_is_refused_without_a_user_row(self, deployment: LocalDeployment) -> None:
        """A user in no `access` group is refused (Okta: at the IdP, as unassigned) and gets no row."""
        (user,) = deployment.users_of("unmapped")
        provider_mark, airflow_marks = deployment.provider_log_mark(), deployment.airflow_log_marks()
        flashed = DENIED if user.refused_at_idp else INVALID_LOGIN
        result = deployment.login(user, label="refused-outsider", settle=True, expect_text=flashed)

        assert_refused_in_airflow(deployment, result, user.username)
        assert deployment.roles(user.username) is None
        assert result.screenshot is not None and result.screenshot.stat().st_size > 5_000
        if user.refused_at_idp:
            deployment.expect_provider_log(provider_mark, "not assigned to the client application")
            deployment.expect_airflow_log(airflow_marks, "access_denied")
        else:
            deployment.expect_airflow_log(airflow_marks, NOT_MAPPED)

    def test_default_role_user_gets_exactly_the_default_role(self, deployment: LocalDeployment) -> None:
        """A member of a signIn.extraGroups group (in no `access` group) holds exactly defaultRole."""
        users = deployment.users_of("default-role")
        if not users:
            pytest.skip(f"{deployment.stack_file.name} declares no default-role audience")
        for user in users:
            result = deployment.login(user)
            assert result.has_token, f"{user.account_id}: {describe(result)}"
            assert deployment.roles(user.username) == set(user.expected_roles) == {deployment.intent.default_role}

    def test_mapped_user_in_the_default_group_gets_no_default_role_on_top(self, deployment: LocalDeployment) -> None:
        """A mapped user who is also in the default-role group holds the mapped role only."""
        users = deployment.users_of("mapped+default")
        if not users:
            pytest.skip(f"{deployment.stack_file.name} declares no default-role audience")
        for user in users:
            result = deployment.login(user)
            assert result.has_token, f"{user.account_id}: {describe(result)}"
            roles = deployment.roles(user.username)
            assert roles == set(user.expected_roles), roles
            assert deployment.intent.default_role not in (roles or set())

    def test_user_moved_to_another_group_swaps_roles_at_next_login(self, deployment: LocalDeployment) -> None:
        """Moving a user between groups at the IdP gives the new role and removes the old one."""
        (user,) = deployment.users_of("mover")
        (old_group,) = user.groups
        new_group, new_role = next((g, r) for g, r in deployment.intent.access if r not in user.expected_roles)

        first = deployment.login(user, label="mover-before")
        assert first.has_token, describe(first)
        assert deployment.roles(user.username) == set(user.expected_roles)

        deployment.provider.set_user_groups(user.account_id, [deployment.membership(new_group)])
        try:
            second = deployment.login(user, label="mover-after")
            assert second.has_token, describe(second)
            assert deployment.roles(user.username) == {new_role}
        finally:
            deployment.provider.set_user_groups(user.account_id, [old_group])

    # --- sessions across api-servers, logout ------------------------------------------------------

    def test_login_split_across_two_api_servers_succeeds_with_the_pinned_keys(
        self, deployment: LocalDeployment
    ) -> None:
        """The sign-in starts on api-server 0 and finishes on 1; the JWT works on both."""
        user = deployment.admin
        before = len(deployment.nginx.requests())
        result = deployment.login(user, label="split")
        assert result.has_token, describe(result)

        upstream_of = {r.target.split("?")[0]: r for r in deployment.nginx.requests()[before:]}
        start = upstream_of[f"/auth/login/{deployment.provider_name}"]
        callback = upstream_of[f"/auth/oauth-authorized/{deployment.provider_name}"]
        assert (start.upstream, callback.upstream) == tuple(deployment.airflow.upstreams[:2])
        assert callback.status == 302
        for server in range(deployment.airflow.count):
            response = deployment.airflow.fab_user(result.token or "", user.username, server=server)
            assert response.status_code == 200, (server, response.status_code, response.text[:300])

    def test_logout_ends_the_airflow_session(self, deployment: LocalDeployment) -> None:
        """After the UI's logout, the old cookies no longer authenticate an API call, on any api-server."""
        user = deployment.admin
        result = deployment.login(user, label="logout", keep_context=True)
        assert result.has_token and result.context is not None, describe(result)
        old_cookies = {cookie["name"]: cookie["value"] for cookie in result.context.cookies()}

        def dags_with_old_cookies(server: int) -> int:
            url = f"{deployment.airflow.base_url(server)}/api/v2/dags?limit=1"
            return requests.get(url, cookies=old_cookies, allow_redirects=False, timeout=10).status_code

        try:
            servers = range(deployment.airflow.count)
            assert [dags_with_old_cookies(s) for s in servers] == [200 for _ in servers]
            assert deployment.browser.logout(deployment.base_url, result.context), "the _token cookie survived"
        finally:
            result.context.close()
        refused = [dags_with_old_cookies(s) for s in servers]
        assert all(status in (401, 403) for status in refused), refused

    # --- negative controls: each must make a mapped user's sign-in fail -------------------------

    @pytest.mark.parametrize(
        ("control", "expected_log"),
        [
            pytest.param("unpublished-key", AUTHLIB_REFUSED + "bad_signature", id="unpublished-key"),
            # Authlib checks the audience only through `azp`, required when aud is not this client.
            pytest.param("wrong-aud", AUTHLIB_REFUSED + "missing_claim", id="wrong-aud"),
            # With azp naming this client Authlib accepts it: the security manager checks aud itself.
            pytest.param("wrong-aud-azp", "refused an ID token issued to another audience", id="wrong-aud-azp"),
            # Keycloak's full_path group mapper emits "/group": no `access` group matches.
            pytest.param("full-path-groups", NOT_MAPPED, id="full-path-groups"),
        ],
    )
    def test_tampered_id_token_is_refused(self, deployment: LocalDeployment, control: str, expected_log: str) -> None:
        """A mapped user's sign-in fails when the ID token is forged or names other groups or clients."""
        skip_without_shims(deployment)
        user = deployment.users[f"nc-{control}"]
        shims = {
            "unpublished-key": Shims(signWithUnpublishedKey=True),
            "wrong-aud": Shims(wrongAudience=True),
            "wrong-aud-azp": Shims(wrongAudience=True, idTokenClaims={"azp": deployment.client.client_id}),
            "full-path-groups": Shims(
                idTokenClaims={
                    deployment.idp_groups.claim: ["/" + g for g in deployment.idp_groups.emitted(user.groups)]
                }
            ),
        }[control]
        marks = deployment.airflow_log_marks()
        deployment.provider.set_shims(shims)
        result = deployment.login(user, label=f"control-{control}")

        assert_refused_in_airflow(deployment, result, user.username)
        deployment.expect_airflow_log(marks, expected_log)

    def test_tampered_state_is_refused(self, deployment: LocalDeployment) -> None:
        """A callback whose `state` was changed on the way back is refused (CSRF protection).

        Changed in the provider's redirect (a shim): Playwright does not route redirected requests.
        """
        skip_without_shims(deployment)
        user = deployment.users["nc-tampered-state"]
        provider_mark, airflow_marks = deployment.provider_log_mark(), deployment.airflow_log_marks()
        deployment.provider.set_shims(Shims(tamperState=True))
        result = deployment.login(user, label="control-tampered-state")

        deployment.expect_provider_log(provider_mark, "shim: tampered the state")
        assert_refused_in_airflow(deployment, result, user.username)
        deployment.expect_airflow_log(airflow_marks, AUTHLIB_REFUSED + "mismatching_state")

    def test_redirect_uri_one_character_off_is_refused_at_the_provider(self, deployment: LocalDeployment) -> None:
        """A client registered with a redirect URI one character off: the provider refuses Airflow's."""
        user = deployment.users["nc-redirect-uri"]
        refused = deployment.redirect_uri_refused
        with deployment.provider_registered_with(redirect_uris=[one_character_off(deployment.redirect_uri)]):
            result = deployment.login(user, label="control-redirect-uri", settle=True, expect_text=refused)
        assert_refused_at_provider(deployment, result, user.username, refused)

    @pytest.mark.restarts_airflow("per-process-keys")
    def test_per_process_keys_break_the_split_login(self, deployment: LocalDeployment) -> None:
        """Api-servers not sharing their secret_key / jwt_secret (the one where the sign-in starts has its
        own): the split sign-in fails."""
        user = deployment.users["nc-per-process-keys"]
        deployment.use_airflow(per_process_env=deployment.per_process_keys())
        marks = deployment.airflow_log_marks()
        result = deployment.login(user, label="control-per-process-keys")

        assert_refused_in_airflow(deployment, result, user.username)
        deployment.expect_airflow_log(marks, AUTHLIB_REFUSED + "mismatching_state")

    @pytest.mark.restarts_airflow("proxy-handling-off")
    def test_proxy_handling_off_sends_a_redirect_uri_the_provider_refuses(self, deployment: LocalDeployment) -> None:
        """Without proxy handling Airflow builds an http:// callback URL, which is not registered.

        Both layers are off (`PROXY_HANDLING_OFF`) on the api-server where the sign-in starts: FAB's
        ProxyFix and uvicorn's trust in the ingress (FORWARDED_ALLOW_IPS back to its default, 127.0.0.1;
        nginx connects from 127.0.0.2). Either one alone still produces the https URL.
        """
        user = deployment.users["nc-proxy-off"]
        deployment.use_airflow(per_process_env=deployment.proxy_handling_off())
        refused = deployment.redirect_uri_refused
        result = deployment.login(user, label="control-proxy-off", settle=True, expect_text=refused)

        assert_refused_at_provider(deployment, result, user.username, refused)
        sent = dict(parse_qsl(urlsplit(result.final_url).query)).get("redirect_uri", "")
        assert sent == deployment.redirect_uri.replace("https://", "http://", 1), sent
