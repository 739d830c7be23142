"""The guardrails (policy/): every rule passes on every example stack's mock run and fails, with its
message, on a variant that breaks it; the pulumi_policy adapters are wired to the rules."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policy import pack, rules
from policy.rules import Declared
from tests.conftest import ROOT, STACK_FILES, stack_name
from tests.import_reader import statements
from tests.mock_engine import SECRET_SIG, SECRET_SIG_KEY, Run, run_program, stack_config

PACK_CONFIG: dict[str, dict[str, Any]] = json.loads((ROOT / "policy" / "config.json").read_text())
ALL_POLICIES = [*rules.RESOURCE_RULES, *rules.STACK_RULES, *rules.ENVIRONMENT_RULES]
DEFAULTS = ROOT / "stacks" / "defaults"
RULES_ENTRY = ROOT / "policy" / "rules" / "__init__.py"
"""What `airflow-oidc plan` loads by path (`--rules`): the rules package's entry."""


def declared(run: Run) -> list[Declared]:
    return [Declared.of(resource) for resource in run.resources]


def verdict(
    resources: list[Declared],
    config: dict[str, dict[str, Any]] | None = None,
    stack: str = "",
    defaults: Path = DEFAULTS,
) -> dict:
    """Every rule, judged as `plan` and the pack judge: the pack config, the project's environment defaults."""
    return rules.check_all(resources, PACK_CONFIG if config is None else config, stack or None, defaults_dir=defaults)


def failing(
    resources: list[Declared], config: dict[str, dict[str, Any]] | None = None, defaults: Path = DEFAULTS
) -> dict[str, list[str]]:
    return {name: messages for name, messages in verdict(resources, config, defaults=defaults).items() if messages}


def spec_variant(stack: str, change: Callable[[dict[str, Any]], None]) -> list[Declared]:
    """The real program for a stack file whose spec `change` edited (as a stack-file edit would)."""
    config, secret_keys = stack_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    spec = json.loads(config["airflow-oidc:spec"])
    change(spec)
    return declared(run_program(stack, {**config, "airflow-oidc:spec": json.dumps(spec)}, secret_keys))


def edited(resources: list[Declared], type_: str, change: Callable[[dict[str, Any]], None]) -> list[Declared]:
    """The same declarations with one resource's inputs edited (deep copy; the session's runs stay intact)."""
    [target] = [r for r in resources if r.type == type_]
    inputs = copy.deepcopy(dict(target.inputs))
    change(inputs)
    return [replace(r, inputs=inputs) if r is target else r for r in resources]


def unprotected(resources: list[Declared], name: str) -> list[Declared]:
    assert any(r.name == name for r in resources), name
    return [replace(r, protect=False) if r.name == name else r for r in resources]


# ---------------------------------------------------------------------------------------------- every stack passes


@pytest.mark.parametrize("path", STACK_FILES, ids=stack_name)
@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_every_rule_passes_on_every_example_stack(runs: dict[str, Run], path: Path, policy: str) -> None:
    run = runs[stack_name(path)]
    assert verdict(declared(run), stack=run.stack)[policy] == []


def test_the_example_stacks_exercise_the_rules(runs: dict[str, Run]) -> None:
    """The pass above means something: each stack declares what the rules read."""
    types = {r.type for run in runs.values() for r in run.resources}
    assert {rules.HELM_RELEASE, rules.K8S_SECRET, rules.RANDOM_BYTES, rules.OKTA_APP, rules.OKTA_POLICY_RULE} <= types
    assert {rules.ENTRA_APP, rules.ENTRA_SERVICE_PRINCIPAL, rules.KEYCLOAK_CLIENT, rules.CONFIG_MAP} <= types
    for run in runs.values():
        release = run.one(rules.HELM_RELEASE).inputs
        mapping = rules.role_mapping(release["values"]["apiServer"]["apiServerConfig"])
        assert mapping is not None and "Admin" in mapping.roles.values()
    assert rules.environment_of(declared(runs["prod"])) == "prod"


# ---------------------------------------------------------------------------------------------- each rule fails


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda app: app.update(redirectUris=["http://airflow.example.com/cb"]), "uses http"),
        (lambda app: app.update(redirectUris=["https://*.example.com/auth/oauth-authorized/okta"]), "wildcard"),
        (lambda app: app.update(postLogoutRedirectUris=["ftp://airflow.example.com/"]), "not an absolute https"),
        (lambda app: app.update(wildcardRedirect="SUBDOMAIN"), "wildcardRedirect is `SUBDOMAIN`"),
    ],
    ids=["http", "wildcard", "scheme", "okta-wildcard-mode"],
)
def test_redirect_uris_fail_on_http_or_wildcard(runs: dict[str, Run], change: Callable, expected: str) -> None:
    found = failing(edited(declared(runs["prod"]), rules.OKTA_APP, change))
    assert list(found) == ["redirect-uris-https"]
    assert expected in found["redirect-uris-https"][0]
    assert found["redirect-uris-https"][0].startswith("airflow-oidc-okta-app: ")


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("https://airflow.example.com/auth/oauth-authorized/okta", None),
        ("http://localhost:8080/auth/oauth-authorized/keycloak", None),
        ("http://127.0.0.1:8443/cb", None),
        ("http://[::1]:8443/cb", None),
        ("http://localhost.evil.example/cb", "uses http"),
        ("https://airflow.example.com/*", "wildcard"),
        ("/auth/oauth-authorized/okta", "not an absolute https"),
    ],
)
def test_uri_problem(uri: str, problem: str | None) -> None:
    found = rules.uri_problem(uri)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_redirect_rules_read_entra_and_keycloak_inputs() -> None:
    entra = Declared(
        rules.ENTRA_APP,
        "app",
        {"web": {"redirectUris": ["https://a.example.com/cb"], "logoutUrl": "http://a.example.com/logout"}},
    )
    keycloak = Declared(
        rules.KEYCLOAK_CLIENT,
        "client",
        {"validRedirectUris": ["https://a.example.com/*"], "accessType": "CONFIDENTIAL"},
    )
    assert rules.redirect_uris_https(entra) == ["app: web.logoutUrl `http://a.example.com/logout` " + _http()]
    assert "validRedirectUris `https://a.example.com/*` contains a wildcard" in rules.redirect_uris_https(keycloak)[0]
    assert rules.redirect_uris_https(Declared("aws:s3/bucket:Bucket", "b", {"redirectUris": ["http://x"]})) == []


def _http() -> str:
    return "uses http: only https is allowed (http only for localhost / 127.0.0.1)"


def test_no_implicit_grant_fails_on_each_kind(runs: dict[str, Run]) -> None:
    found = failing(edited(declared(runs["dev"]), rules.OKTA_APP, lambda app: app["grantTypes"].append("implicit")))
    assert found == {"no-implicit-grant": ["airflow-oidc-okta-app: grantTypes contains `implicit`: use " + _code()]}
    token = edited(declared(runs["dev"]), rules.OKTA_APP, lambda app: app.update(responseTypes=["code", "id_token"]))
    assert "responseTypes ['id_token']" in failing(token)["no-implicit-grant"][0]
    entra = Declared(rules.ENTRA_APP, "app", {"web": {"implicitGrant": {"idTokenIssuanceEnabled": True}}})
    assert rules.no_implicit_grant(entra) == [
        "app: web.implicitGrant.idTokenIssuanceEnabled is true: turn the implicit grant off"
    ]
    off = Declared(rules.ENTRA_APP, "app", {"web": {"implicitGrant": {"idTokenIssuanceEnabled": False}}})
    assert rules.no_implicit_grant(off) == []
    service = Declared(
        rules.OKTA_APP, "sa", {"type": "service", "grantTypes": ["client_credentials"], "responseTypes": ["token"]}
    )
    assert rules.no_implicit_grant(service) == [], "a service app's `token` response is not the implicit flow"
    keycloak = Declared(rules.KEYCLOAK_CLIENT, "client", {"implicitFlowEnabled": True})
    assert rules.no_implicit_grant(keycloak) == ["client: implicitFlowEnabled is true: turn the implicit flow off"]


def _code() -> str:
    return "authorization_code only"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = inputs
        for key in parents:
            target = target[key]
        target[last] = value

    return change


@pytest.mark.parametrize(
    ("stack", "type_", "change", "policy", "expected"),
    [
        (
            "risk-prod",
            rules.ENTRA_APP,
            _set("web.redirectUris", ["http://airflow.risk.example.com/cb"]),
            "redirect-uris-https",
            "web.redirectUris `http://airflow.risk.example.com/cb` uses http",
        ),
        (
            "risk-prod",
            rules.ENTRA_APP,
            _set("web.implicitGrant.accessTokenIssuanceEnabled", True),
            "no-implicit-grant",
            "web.implicitGrant.accessTokenIssuanceEnabled is true",
        ),
        (
            "search-prod",
            rules.KEYCLOAK_CLIENT,
            _set("validRedirectUris", ["https://airflow.search.corp-example.net/*"]),
            "redirect-uris-https",
            "contains a wildcard",
        ),
        (
            "search-prod",
            rules.KEYCLOAK_CLIENT,
            _set("implicitFlowEnabled", True),
            "no-implicit-grant",
            "implicitFlowEnabled is true",
        ),
        (
            "search-prod",
            rules.KEYCLOAK_CLIENT,
            _set("accessTokenLifespan", "7200"),
            "lifetimes-within-bounds",
            "accessTokenLifespan is 120 min, above the access-token bound 60 min",
        ),
    ],
    ids=["entra-http", "entra-implicit", "keycloak-wildcard", "keycloak-implicit", "keycloak-lifespan"],
)
def test_entra_and_keycloak_variants_fail(
    runs: dict[str, Run], stack: str, type_: str, change: Callable, policy: str, expected: str
) -> None:
    found = failing(edited(declared(runs[stack]), type_, change))
    assert list(found) == [policy]
    assert len(found[policy]) == 1 and expected in found[policy][0]


@pytest.mark.parametrize(
    ("stack", "type_"),
    [
        ("risk-prod", rules.ENTRA_APP),
        ("risk-prod", rules.ENTRA_SERVICE_PRINCIPAL),
        ("search-prod", rules.KEYCLOAK_CLIENT),
    ],
)
def test_unprotected_entra_or_keycloak_apps_fail_in_prod(runs: dict[str, Run], stack: str, type_: str) -> None:
    [app] = [r for r in declared(runs[stack]) if r.type == type_]
    [message] = failing(unprotected(declared(runs[stack]), app.name))["protected-in-prod"]
    assert message == f"{app.name}: an IdP application in `prod` must be protected (replacing it logs everyone out)"


def tighter_defaults(tmp_path: Path, environment: str, **allowlist: list[str]) -> Path:
    """A defaults directory whose `<environment>.yaml` names only these Admin principals."""
    directory = tmp_path / "defaults"
    directory.mkdir(exist_ok=True)
    (directory / f"{environment}.yaml").write_text(json.dumps(allowlist))
    return directory


def test_admin_for_a_group_the_environment_does_not_allow_fails(tmp_path: Path) -> None:
    """The pack reads the Admin allowlist from the stack's environment's defaults file (no second copy)."""
    resources = spec_variant(
        "dev", lambda spec: spec["access"].append({"group": "contractors-airflow-admins", "role": "Admin"})
    )
    assert failing(resources) == {}  # stacks/defaults/dev.yaml names no allowlist: anyone
    tight = tighter_defaults(tmp_path, "dev", allowedAdminGroups=["payments-airflow-admins"])
    found = failing(resources, defaults=tight)
    assert list(found) == ["admin-only-allowed-groups"]
    [message] = found["admin-only-allowed-groups"]
    assert message == (
        "airflow-oidc-airflow-auth-manager: grants Admin to `contractors-airflow-admins` (access[3].group), which "
        f"{tight / 'dev.yaml'} does not allow (allowedAdminGroups: payments-airflow-admins)"
    )


def test_a_google_prod_stack_with_a_team_admin_group_passes() -> None:
    """`*-airflow-admins@*` in stacks/defaults/prod.yaml: a Workspace team group may be Admin (the pack used to
    keep another list that refused it on every change, a replica count included)."""
    resources = spec_variant(
        "growth-prod",
        lambda spec: (
            spec["access"][0].update(group="growth-airflow-admins@corp-example.net"),
            spec["airflow"].update(apiServerReplicas=3),
        ),
    )
    assert failing(resources) == {}


def test_admin_escalation_in_the_rendered_config_alone_fails(runs: dict[str, Run]) -> None:
    """A change only in code (the rendered mapping), the model left as it was: the model no longer tells the truth."""

    def escalate(inputs: dict[str, Any]) -> None:
        text = inputs["values"]["apiServer"]["apiServerConfig"]
        inputs["values"]["apiServer"]["apiServerConfig"] = text.replace(
            '"payments-engineers": "User"', '"payments-engineers": "Admin"'
        )

    [message] = failing(edited(declared(runs["dev"]), rules.HELM_RELEASE, escalate))["admin-only-allowed-groups"]
    assert message == (
        "airflow-oidc-airflow-release: values.apiServer.apiServerConfig gives the claim value `payments-engineers` "
        "Admin, but the access model says `payments-engineers` gets User through it"
    )


def lie(resources: list[Declared], change: Callable[[dict[str, Any]], None]) -> list[Declared]:
    """The same declarations with the declared access model edited (what a lying model would say)."""

    def edit(inputs: dict[str, Any]) -> None:
        model = json.loads(inputs["data"][rules.ACCESS_MODEL_FILE])
        change(model)
        inputs["data"][rules.ACCESS_MODEL_FILE] = json.dumps(model)

    return edited(resources, rules.CONFIG_MAP, edit)


def test_a_model_that_hides_an_admin_is_caught(runs: dict[str, Run], tmp_path: Path) -> None:
    tight = tighter_defaults(tmp_path, "dev", allowedAdminGroups=["nobody"])
    hidden = lie(declared(runs["dev"]), lambda model: model.update(groups=model["groups"][1:]))
    found = failing(hidden, defaults=tight)["admin-only-allowed-groups"]
    assert found == [
        "airflow-oidc-airflow-release: values.apiServer.apiServerConfig grants Admin to `payments-airflow-admins`, "
        "which the access model does not name"
    ]


def test_an_entra_model_that_lowers_a_group_is_caught_by_its_assignment(runs: dict[str, Run]) -> None:
    """Entra grants through app-role assignments: the model's claim value for a group must be the app role its
    assignment gives (the rendered mapping alone cannot tell the groups apart)."""

    def lower(model: dict[str, Any]) -> None:
        model["groups"][0].update(role="User", claimValue="Airflow.User")
        model["groups"][2].update(role="Admin", claimValue="Airflow.Admin")

    found = failing(lie(declared(runs["risk-prod"]), lower))["admin-only-allowed-groups"]
    assert (
        "airflow-oidc-azuread-assignment-risk_airflow_admins: assigns the app role Airflow.Admin to "
        "`risk-airflow-admins`, the access model says Airflow.User"
    ) in found
    assert any("grants Admin to `risk-engineers` (access[2].group)" in message for message in found), found


def test_a_service_account_with_admin_needs_its_own_allowance(tmp_path: Path) -> None:
    resources = spec_variant("local-oidc", lambda spec: spec["serviceAccounts"][0].update(role="Admin"))
    assert failing(resources) == {}  # local has no defaults file: anyone
    tight = tighter_defaults(tmp_path, "local", allowedAdminGroups=["airflow-admins"])
    [message] = failing(resources, defaults=tight)["admin-only-allowed-groups"]
    assert message == (  # a file that limits Admin groups allows no service account unless it names it
        "airflow-oidc-airflow-auth-manager: grants Admin to the service account `ci-deploy`, which "
        f"{tight / 'local.yaml'} does not allow (allowedAdminServiceAccounts: none)"
    )
    allowed = tighter_defaults(
        tmp_path, "local", allowedAdminGroups=["airflow-admins"], allowedAdminServiceAccounts=["ci-*"]
    )
    assert failing(resources, defaults=allowed) == {}


def test_a_service_account_the_model_does_not_name_is_caught(runs: dict[str, Run]) -> None:
    hidden = lie(declared(runs["local-oidc"]), lambda model: model["serviceAccounts"][0].update(role="Viewer"))
    [message] = failing(hidden)["admin-only-allowed-groups"]
    assert message == (
        "airflow-oidc-airflow-auth-manager: data.airflow_oidc_auth.json accepts the service account `ci-deploy` "
        "as Op, which the access model does not say"
    )


def test_without_a_declared_model_the_rendered_claim_values_are_judged(tmp_path: Path) -> None:
    """A program that declares no model (an older revision): its rendered mapping's claim values."""
    release = Declared(
        rules.HELM_RELEASE,
        "rel",
        {
            "values": {
                "apiServer": {"apiServerConfig": 'ROLE_BY_CLAIM_VALUE = {"a-airflow-admins": "Admin", "x": "Admin"}'}
            }
        },
    )
    defaults = tighter_defaults(tmp_path, "prod", allowedAdminGroups=["*-airflow-admins"])
    [violation] = rules.admin_only_allowed_groups([release], rules.admin_allowlist(defaults, "prod"))
    assert "grants Admin to `x`, which" in violation.message
    assert "(allowedAdminGroups: *-airflow-admins)" in violation.message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, {}),
        ("defaults: {}\n", {"source": "FILE"}),
        (
            "allowedAdminGroups: ['*-airflow-admins']\nallowedAdminServiceAccounts: [release]\n",
            {"source": "FILE", "allowedAdminGroups": ["*-airflow-admins"], "allowedAdminServiceAccounts": ["release"]},
        ),
        (
            "allowedAdminGroups: admins\n",
            {
                "source": "FILE",
                "problem": "FILE: allowedAdminGroups is not a list of names",
                "allowedAdminGroups": [],
                "allowedAdminServiceAccounts": [],
            },
        ),
    ],
    ids=["no-file", "no-list", "both-lists", "malformed"],
)
def test_the_allowlist_is_read_from_the_defaults_file(tmp_path: Path, content: str | None, expected: dict) -> None:
    if content is not None:
        (tmp_path / "prod.yaml").write_text(content)
    found = rules.admin_allowlist(tmp_path, "prod")
    assert json.loads(json.dumps(found).replace(str(tmp_path / "prod.yaml"), "FILE")) == expected


def test_the_pack_and_validate_read_the_same_allowlists() -> None:
    """One list: what components/env_defaults.py enforces is what the pack judges with, per environment."""
    from components.env_defaults import load_env_defaults

    for path in sorted(DEFAULTS.glob("*.yaml")):
        env_defaults = load_env_defaults(DEFAULTS.parent, path.stem)
        assert env_defaults is not None
        allowlist = rules.admin_allowlist(DEFAULTS, path.stem)
        assert allowlist.get("allowedAdminGroups") == (
            None if env_defaults.allowed_admin_groups is None else list(env_defaults.allowed_admin_groups)
        )
        assert allowlist.get("allowedAdminServiceAccounts") == (
            None
            if env_defaults.allowed_admin_service_accounts is None
            else list(env_defaults.allowed_admin_service_accounts)
        )
    assert "admin-only-allowed-groups" not in PACK_CONFIG, "no second copy of the allowlist"


@pytest.mark.parametrize(
    ("text", "roles", "default"),
    [
        ('ROLE_BY_CLAIM_VALUE = {"Airflow.Admin": "Admin"}\nDEFAULT_ROLE = None\n', {"Airflow.Admin": "Admin"}, None),
        ('ROLE_BY_GROUP = {\n    "ops": "Op",\n}\nDEFAULT_ROLE = "Admin"\n', {"ops": "Op"}, "Admin"),
        ('{{ not python }}\nROLE_BY_GROUP = {"a": "Admin"}\n', {"a": "Admin"}, None),
    ],
    ids=["claim-value", "group-multiline", "templated-fragment"],
)
def test_role_mapping_is_read_with_ast(text: str, roles: dict[str, str], default: str | None) -> None:
    assert rules.role_mapping(text) == rules.RoleMapping(roles=roles, default_role=default)


def test_default_role_admin_and_unreadable_mappings_fail() -> None:
    def release(text: str) -> Declared:
        return Declared(rules.HELM_RELEASE, "rel", {"values": {"apiServer": {"apiServerConfig": text}}})

    config = {"allowedAdminGroups": ["admins"]}
    default_admin = release('ROLE_BY_CLAIM_VALUE = {"admins": "Admin"}\nDEFAULT_ROLE = "Admin"\n')
    assert [str(v) for v in rules.admin_only_allowed_groups([default_admin], config)] == [
        "rel: values.apiServer.apiServerConfig makes Admin the default role (users in no access group): "
        "Admin only through an allowed group"
    ]
    computed = release("ROLE_BY_CLAIM_VALUE = load_roles()\n")
    assert "the role mapping cannot be read" in str(rules.admin_only_allowed_groups([computed], config)[0])
    assert rules.admin_only_allowed_groups([release("AUTH_TYPE = AUTH_OAUTH\n")], config) == []


def test_access_token_lifetime_above_the_bound_fails() -> None:
    resources = spec_variant("prod", lambda spec: spec["tokens"].update(accessTokenMinutes=120))
    assert failing(resources) == {
        "lifetimes-within-bounds": [
            "airflow-oidc-okta-policy-rule: accessTokenLifetimeMinutes is 120 min, above the access-token bound 60 min"
        ]
    }


def test_session_lifetime_above_the_bound_fails() -> None:
    resources = spec_variant("dev", lambda spec: spec.setdefault("tokens", {}).update(sessionMinutes=2880))
    messages = failing(resources)["lifetimes-within-bounds"]
    assert (
        "airflow-oidc-airflow-release: values.config.fab.session_max_lifetime_minutes is 2880 min, "
        "above the session bound 1440 min"
    ) in messages
    assert any("jwt_expiration_time is 2880 min" in message for message in messages)


def test_lifetime_bounds_come_from_the_pack_config(runs: dict[str, Run]) -> None:
    tighter = {"lifetimes-within-bounds": {"maxSessionMinutes": 600, "maxAccessTokenMinutes": 10}}
    messages = failing(declared(runs["prod"]), tighter)["lifetimes-within-bounds"]
    assert (
        "airflow-oidc-okta-policy-rule: accessTokenLifetimeMinutes is 15 min, above the access-token bound 10 min"
    ) in messages
    assert all("above the access-token bound 10 min" in message for message in messages), messages
    messages = failing(declared(runs["dev"]), tighter)["lifetimes-within-bounds"]
    assert "airflow-oidc-airflow-release: values.config.fab.session_max_lifetime_minutes is 720 min" in messages[0]


def test_idle_longer_than_the_session_fails(runs: dict[str, Run]) -> None:
    def longer_idle(inputs: dict[str, Any]) -> None:
        inputs["values"]["config"]["fab"]["session_lifetime_minutes"] = 600.0

    messages = failing(edited(declared(runs["prod"]), rules.HELM_RELEASE, longer_idle))["lifetimes-within-bounds"]
    assert messages == [
        "airflow-oidc-airflow-release: values.config.fab.session_lifetime_minutes (idle, 600 min) is longer than "
        "session_max_lifetime_minutes (480 min)"
    ]


def test_keycloak_lifetimes_are_seconds_as_strings_or_numbers() -> None:
    client = Declared(
        rules.KEYCLOAK_CLIENT,
        "client",
        {"accessTokenLifespan": "7200", "clientSessionIdleTimeout": 3600.0, "clientSessionMaxLifespan": "1800"},
    )
    assert rules.lifetimes_within_bounds(client) == [
        "client: accessTokenLifespan is 120 min, above the access-token bound 60 min",
        "client: clientSessionIdleTimeout is longer than clientSessionMaxLifespan",
    ]
    assert rules.lifetimes_within_bounds(replace(client, inputs={"accessTokenLifespan": "300"})) == []
    assert (
        "is not a number of seconds"
        in rules.lifetimes_within_bounds(replace(client, inputs={"accessTokenLifespan": "5m"}))[0]
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.update(version="^1.19.0"), "chart version `^1.19.0` is not pinned"),
        (lambda r: r.update(version=None), "chart version `None` is not pinned"),
        (lambda r: r["values"]["images"]["airflow"].update(tag="latest"), "tag `latest` is not pinned"),
        (lambda r: r["values"]["images"]["airflow"].update(tag="3.3"), "tag `3.3` is not pinned"),
        (lambda r: r["values"]["images"]["airflow"].update(digest="sha256:abc"), "is not a sha256 digest"),
    ],
    ids=["range", "unset", "latest", "floating-minor", "bad-digest"],
)
def test_unpinned_chart_or_image_fails(runs: dict[str, Run], change: Callable, expected: str) -> None:
    found = failing(edited(declared(runs["prod"]), rules.HELM_RELEASE, change))
    assert list(found) == ["chart-and-image-pinned"]
    assert expected in found["chart-and-image-pinned"][0]


def test_another_charts_release_is_judged_by_its_version_only() -> None:
    operator = Declared(rules.HELM_RELEASE, "eso", {"chart": "external-secrets", "version": "0.10.4", "values": {}})
    assert rules.chart_and_image_pinned(operator) == []
    floating = replace(operator, inputs={**operator.inputs, "version": ">=0.10"})
    assert rules.chart_and_image_pinned(floating) == [
        "eso: chart version `>=0.10` is not pinned: give an exact version such as 1.19.0"
    ]
    airflow = Declared(rules.HELM_RELEASE, "af", {"chart": "airflow", "version": "1.19.0", "values": {}})
    assert "values.images.airflow.tag `None` is not pinned" in rules.chart_and_image_pinned(airflow)[0]


def test_a_digest_pins_the_image_without_a_tag(runs: dict[str, Run]) -> None:
    def digest_only(inputs: dict[str, Any]) -> None:
        inputs["values"]["images"]["airflow"] = {"repository": "apache/airflow", "digest": "sha256:" + "a" * 64}

    assert failing(edited(declared(runs["prod"]), rules.HELM_RELEASE, digest_only)) == {}


def _configmap(data: dict[str, str]) -> Declared:
    return Declared(rules.CONFIG_MAP, "extra-config", {"metadata": {"name": "extra"}, "data": data})


@pytest.mark.parametrize("key", ["client-secret", "dbPassword", "api_token", "tls.key", "SIGNING_KEY"])
def test_a_configmap_key_that_names_a_secret_fails(runs: dict[str, Run], key: str) -> None:
    resources = [*declared(runs["local"]), _configmap({key: "x"})]
    assert failing(resources) == {
        "no-secret-in-configmap": [f"extra-config: data.{key} names a secret: put it in a Secret, not a ConfigMap"]
    }


def test_a_configmap_carrying_a_declared_secret_value_fails(runs: dict[str, Run]) -> None:
    resources = declared(runs["local"])
    [jwt] = [
        r for r in resources if r.type == rules.K8S_SECRET and r.inputs["metadata"]["name"] == "airflow-jwt-secret"
    ]
    value = jwt.inputs["stringData"]["jwt-secret"]
    found = failing([*resources, _configmap({"airflow.cfg": f"[api_auth]\njwt_secret = {value}\n"})])
    assert found == {
        "no-secret-in-configmap": [
            "extra-config: data.airflow.cfg carries the value of airflow-oidc-airflow-secret-jwt-secret "
            "stringData.jwt-secret: a ConfigMap is readable by anyone who can read the namespace"
        ]
    }
    assert value not in json.dumps(found), "the message must not repeat the secret"
    assert failing([*resources, _configmap({"webserver_config.py": "AUTH_TYPE = 4", "monkey": "x"})]) == {}


def test_a_public_identifier_kept_in_a_secret_may_appear_in_a_configmap() -> None:
    secret = Declared(
        rules.K8S_SECRET, "sa", {"stringData": {"client-id": "0oa1234567890", "client-secret": "s3cr3t-s3cr3t"}}
    )
    settings = _configmap({"settings.json": '{"clientId": "0oa1234567890"}'})
    assert rules.no_secret_in_configmap([secret, settings]) == []
    leaked = _configmap({"settings.json": '{"clientSecret": "s3cr3t-s3cr3t"}'})
    assert [str(v) for v in rules.no_secret_in_configmap([secret, leaked])] == [
        "extra-config: data.settings.json carries the value of sa stringData.client-secret: "
        "a ConfigMap is readable by anyone who can read the namespace"
    ]


def test_a_secret_in_plain_helm_values_fails() -> None:
    def extra_values(spec: dict[str, Any]) -> None:
        spec["airflow"]["values"] = {
            "scheduler": {"env": [{"name": "DB_PASSWORD", "value": "hunter2hunter2"}, {"name": "TZ", "value": "UTC"}]},
            "config": {"core": {"fernet_key": "not-in-airflow-cfg"}},
        }

    found = failing(spec_variant("prod", extra_values))
    assert found == {
        "no-secret-in-helm-values": [
            "airflow-oidc-airflow-release: values.scheduler.env[0] `DB_PASSWORD` has a plain `value`: "
            "use valueFrom.secretKeyRef",
            "airflow-oidc-airflow-release: values.config.core.fernet_key holds a secret in airflow.cfg: "
            "set it from a Secret",
        ]
    }
    assert "hunter2" not in json.dumps(found)


@pytest.mark.parametrize(
    "path", [("fernetKey",), ("apiSecretKey",), ("jwtSecret",), ("webserverSecretKey",), ("data", "metadataConnection")]
)
def test_the_charts_secret_values_fail(runs: dict[str, Run], path: tuple[str, ...]) -> None:
    def put(inputs: dict[str, Any]) -> None:
        target = inputs["values"]
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = (
            {"user": "airflow", "pass": "s3cret-s3cret"} if path[-1] == "metadataConnection" else "x" * 32
        )

    found = failing(edited(declared(runs["dev"]), rules.HELM_RELEASE, put))
    [message] = found["no-secret-in-helm-values"]
    assert "holds a secret in the Helm values" in message and (".".join(path)) in message


def test_a_declared_secret_value_in_the_helm_values_fails(runs: dict[str, Run]) -> None:
    """apiServerConfig becomes a ConfigMap: a Secret's value must not be rendered into it."""
    resources = declared(runs["dev"])
    [client] = [r for r in resources if r.type == rules.K8S_SECRET and r.name.endswith("oidc-client-secret")]
    value = client.inputs["stringData"]["client-secret"]

    def inline(inputs: dict[str, Any]) -> None:
        inputs["values"]["apiServer"]["apiServerConfig"] += f'\nCLIENT_SECRET = "{value}"\n'

    [message] = failing(edited(resources, rules.HELM_RELEASE, inline))["no-secret-in-helm-values"]
    assert message == (
        "airflow-oidc-airflow-release: values.apiServer.apiServerConfig carries the value of "
        "airflow-oidc-airflow-secret-oidc-client-secret stringData.client-secret"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("airflow-oidc-okta-app", "an IdP application in `prod` must be protected (replacing it logs everyone out)"),
        ("airflow-oidc-airflow-fernet-key", "the Fernet key must be protected (replacing it loses data)"),
        ("airflow-oidc-airflow-secret-fernet-key", "the Fernet key must be protected (replacing it loses data)"),
    ],
    ids=["okta-app", "fernet-random-bytes", "fernet-secret"],
)
def test_unprotected_idp_app_or_fernet_key_fails_in_prod(runs: dict[str, Run], name: str, expected: str) -> None:
    assert failing(unprotected(declared(runs["prod"]), name)) == {"protected-in-prod": [f"{name}: {expected}"]}


def test_the_fernet_key_is_protected_where_its_data_outlives_the_release_idp_apps_only_in_prod(
    runs: dict[str, Run],
) -> None:
    dev = unprotected(declared(runs["dev"]), "airflow-oidc-okta-app")
    assert failing(dev) == {}, "dev may leave its IdP app unprotected"
    # The bundled Postgres dies with the release: the program leaves the key unprotected, and so may a stack.
    local = unprotected(declared(runs["local"]), "airflow-oidc-airflow-fernet-key")
    assert failing(local) == {}

    def external_database(inputs: dict[str, Any]) -> None:
        inputs["values"]["data"] = {"metadataSecretName": "airflow-metadata-db"}

    assert failing(edited(local, rules.HELM_RELEASE, external_database))["protected-in-prod"] == [
        f"{name}: the Fernet key must be protected (replacing it loses data)"
        for name in ("airflow-oidc-airflow-fernet-key", "airflow-oidc-airflow-secret-fernet-key")
    ]
    staging = {"protected-in-prod": {"protectedEnvironments": ["dev"]}}
    assert (
        "airflow-oidc-okta-app: an IdP application in `dev` must be protected (replacing it logs everyone out)"
        in failing(dev, staging)["protected-in-prod"]
    )


def test_the_policy_and_the_program_apply_one_protection_rule(runs: dict[str, Run]) -> None:
    """What the program protects passes the policy on every stack, and unprotecting any of it fails."""
    for stack, run in runs.items():
        resources = declared(run)
        assert failing(resources) == {}, stack
        for resource in resources:
            if resource.protect and resource.type in (*rules.IDP_APPS, rules.RANDOM_BYTES, rules.K8S_SECRET):
                assert "protected-in-prod" in failing(unprotected(resources, resource.name)), (stack, resource.name)


@pytest.mark.parametrize(
    ("labels", "stack", "environment"),
    [
        ({rules.STACK_NAME_LABEL: "payments-prod"}, None, "prod"),
        ({rules.STACK_NAME_LABEL: "payments-prod", rules.ENVIRONMENT_LABEL: "staging"}, None, "staging"),
        ({}, "team-a-dev", "dev"),
        ({}, None, None),
    ],
)
def test_environment_of(labels: dict[str, str], stack: str | None, environment: str | None) -> None:
    release = Declared(rules.HELM_RELEASE, "rel", {"values": {"labels": labels}})
    assert rules.environment_of([release], stack) == environment


def test_unknown_types_pass_every_rule() -> None:
    odd = Declared("aws:s3/bucket:Bucket", "b", {"redirectUris": ["http://x/*"], "grantTypes": ["implicit"]})
    assert failing([odd]) == {}


# ---------------------------------------------------------------------------------------------- the pack's adapters


def _options(protect: bool) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _as_analyzer_props(inputs: dict[str, Any]) -> Any:
    """What the analyzer hands a policy: deserialised wire properties behind the unknown-checking proxy."""
    return unknown_checking_proxy(deserialize_properties(json.loads(json.dumps(inputs))))


def _policy(name: str) -> Any:
    [found] = [policy for policy in pack.policies() if policy.name == name]
    return found


def _resource_args(resource: Declared, config: dict[str, Any] | None = None) -> ResourceValidationArgs:
    urn = f"urn:pulumi:prod::airflow-oidc::{resource.type}::{resource.name}"
    props = _as_analyzer_props(dict(resource.inputs))
    return ResourceValidationArgs(resource.type, props, urn, resource.name, _options(resource.protect), None, config)


def test_the_pack_has_one_policy_per_rule() -> None:
    policies = pack.policies()
    assert [p.name for p in policies] == ALL_POLICIES
    assert {p.name for p in policies if isinstance(p, ResourceValidationPolicy)} == set(rules.RESOURCE_RULES)
    assert {p.name for p in policies if isinstance(p, StackValidationPolicy)} == {
        *rules.STACK_RULES,
        *rules.ENVIRONMENT_RULES,
    }


def rule_functions() -> dict[str, Callable[..., Any]]:
    """Every rule the package defines, found in its modules: a public function over one resource or all of
    them (`resource: Declared` / `resources: Sequence[Declared]`), then `config`, returning its findings."""
    found: dict[str, Callable[..., Any]] = {}
    for module_info in pkgutil.iter_modules(rules.__path__):
        module = importlib.import_module(f"{rules.__name__}.{module_info.name}")
        for name, function in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(function) or function.__module__ != module.__name__:
                continue
            parameters = list(inspect.signature(function).parameters.values())
            if (
                len(parameters) >= 2
                and parameters[0].annotation in ("Declared", "Sequence[Declared]")
                and parameters[1].name == "config"
                and inspect.signature(function).return_annotation in ("list[str]", "list[Violation]")
            ):
                found[f"{module_info.name}.{name}"] = function
    return found


def test_every_rule_is_registered_exactly_once_in_the_pack() -> None:
    """A rule written in any module of policy/rules/ is in the registry under one policy name, and the pack
    builds one policy per name: none forgotten, none twice."""
    defined = rule_functions()
    assert len(defined) == len(ALL_POLICIES) == len(set(ALL_POLICIES)) == 8, sorted(defined)
    registry: dict[str, Callable[..., Any]] = {
        **rules.RESOURCE_RULES,
        **rules.STACK_RULES,
        **{name: getattr(rules, name.replace("-", "_")) for name in rules.ENVIRONMENT_RULES},
    }
    assert list(registry) == ALL_POLICIES
    for where, function in defined.items():
        names = [name for name, registered in registry.items() if registered is function]
        assert names == [function.__name__.replace("_", "-")], f"{where} is registered as {names}"
    built = [policy.name for policy in pack.policies()]
    assert sorted(built) == sorted(set(built)) == sorted(registry)
    assert set(rules.check_all([], PACK_CONFIG, defaults_dir=DEFAULTS)) == set(registry)


def test_the_rules_package_imports_downwards_only() -> None:
    """policy/rules/ modules import each other relatively, never by the package's absolute name (the plan
    worker loads them by path), and `declared` imports none of them. That no module imports back up a
    floor (components/ never imports the pack) and no circle: tests/test_import_graph.py."""
    package = ROOT / "policy" / "rules"
    imports: dict[str, set[str]] = {}
    for path in sorted(package.glob("*.py")):
        found = imports.setdefault(path.stem, set())
        for statement in statements(path):
            if statement.level == 1 and statement.module:
                found.add(statement.module)
            elif not statement.level:
                assert not any(name.split(".")[0] in ("policy", "rules") for name in statement.names), path.name
    assert imports["declared"] == set()
    assert imports, "policy/rules/ holds no module"


def test_the_plan_worker_finds_the_project_defaults_from_the_rules_file() -> None:
    """`plan` loads the rules by path and passes the rules file's grandparent (`policy/` for the package's
    `__init__.py`): the project, hence its Admin allowlists, is the nearest Pulumi.yaml above."""
    loaded = importlib.util.spec_from_file_location("rules_by_path", RULES_ENTRY)
    assert loaded is not None and loaded.submodule_search_locations == [str(RULES_ENTRY.parent)]
    assert rules.project_defaults_dir(RULES_ENTRY.resolve().parent.parent) == DEFAULTS
    assert rules.project_defaults_dir(ROOT) == DEFAULTS


def test_the_shipped_pack_config_matches_the_policies_schemas() -> None:
    schemas = {p.name: p.config_schema for p in pack.policies() if p.config_schema}
    assert set(PACK_CONFIG) <= set(schemas)
    for name, config in PACK_CONFIG.items():
        jsonschema.validate(config, {"type": "object", "properties": schemas[name].properties})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"maxSessionMinutes": "long"},
            {"type": "object", "properties": schemas["lifetimes-within-bounds"].properties},
        )


def test_a_resource_policy_reports_through_the_adapter(runs: dict[str, Run]) -> None:
    [app] = [r for r in declared(runs["dev"]) if r.type == rules.OKTA_APP]
    reported: list[tuple[str, str | None]] = []
    policy = _policy("redirect-uris-https")
    broken = replace(app, inputs={**app.inputs, "redirectUris": ["http://a.example.com/cb"]})
    policy.validate(_resource_args(broken), lambda m, urn=None: reported.append((m, urn)))
    assert [m for m, _ in reported] == ["airflow-oidc-okta-app: redirectUris `http://a.example.com/cb` " + _http()]
    reported.clear()
    policy.validate(_resource_args(app), lambda m, urn=None: reported.append((m, None)))
    assert reported == []


def test_the_admin_policy_reads_the_defaults_of_the_stacks_environment(runs: dict[str, Run], monkeypatch: Any) -> None:
    """Through the adapter, as the CLI runs it: the environment from PULUMI_CONFIG, its file under stacks/defaults."""
    # Deployed as dev (no allowlist there, so the program itself accepts it), judged as a prod stack.
    resources = spec_variant(
        "growth-prod",
        lambda spec: (spec["access"][1].update(role="Admin"), spec.update(environment="dev"), spec.pop("clientSecret")),
    )
    policy_resources = [
        PolicyResource(
            r.type, _as_analyzer_props(dict(r.inputs)), r.urn, r.name, _options(r.protect), None, None, [], {}
        )
        for r in resources
    ]

    def reported_for(environment: str) -> list[str]:
        monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"airflow-oidc:spec": json.dumps({"environment": environment})}))
        found: list[str] = []
        _policy("admin-only-allowed-groups").validate(
            StackValidationArgs(policy_resources, None), lambda m, urn=None: found.append(m)
        )
        return found

    [message] = reported_for("prod")
    assert "grants Admin to `growth-oncall@corp-example.net`" in message and "stacks/defaults/prod.yaml" in message
    assert reported_for("dev") == []  # dev.yaml names no allowlist


def test_unknown_values_during_preview_do_not_abort_a_policy(runs: dict[str, Run]) -> None:
    [app] = [r for r in declared(runs["prod"]) if r.type == rules.OKTA_APP]
    inputs = {**app.inputs, "clientBasicSecret": UNKNOWN_STRING_VALUE, "redirectUris": ["http://a.example.com/cb"]}
    reported: list[str] = []
    args = _resource_args(replace(app, inputs=inputs))
    with pytest.raises(UnknownValueError) as raised:
        args.props["clientBasicSecret"]  # noqa: B018 - what the proxy does on its own
    assert raised.value.message == "string value at .clientBasicSecret can't be known during preview"
    _policy("redirect-uris-https").validate(args, lambda m, urn=None: reported.append(m))
    assert reported == ["airflow-oidc-okta-app: redirectUris `http://a.example.com/cb` " + _http()]
    assert pack.declared(args).inputs["clientBasicSecret"] is rules.UNKNOWN


def test_a_secret_whose_data_is_unknown_during_preview_passes_the_stack_rules(runs: dict[str, Run]) -> None:
    """A rotation's preview: the new client secret is not known yet, so the engine hands the Secret's whole
    `stringData` over as unknown (found by `pulumi preview --policy-pack` in the engine tier)."""
    resources = declared(runs["dev"])
    rotating = [
        replace(r, inputs={**r.inputs, "stringData": rules.UNKNOWN}) if r.type == rules.K8S_SECRET else r
        for r in resources
    ]
    assert failing(rotating) == {}


def test_secret_wrapped_props_are_unwrapped_for_the_rules(runs: dict[str, Run]) -> None:
    wrapped = {"stringData": {SECRET_SIG_KEY: SECRET_SIG, "value": {"k": "v" * 16}}, "metadata": {"name": "s"}}
    args = ResourceValidationArgs(rules.K8S_SECRET, _as_analyzer_props(wrapped), "urn", "s", _options(False), None)
    assert pack.declared(args).inputs["stringData"] == {"k": "v" * 16}


def test_a_stack_policy_reports_against_the_resources_urn(runs: dict[str, Run], monkeypatch: Any) -> None:
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    resources = unprotected(declared(runs["prod"]), "airflow-oidc-okta-app")
    policy_resources = [
        PolicyResource(
            r.type, _as_analyzer_props(dict(r.inputs)), r.urn, r.name, _options(r.protect), None, None, [], {}
        )
        for r in resources
    ]
    reported: list[tuple[str, str | None]] = []
    _policy("protected-in-prod").validate(
        StackValidationArgs(policy_resources, None), lambda m, urn=None: reported.append((m, urn))
    )
    [app] = [r for r in resources if r.type == rules.OKTA_APP]
    assert reported == [
        (
            "airflow-oidc-okta-app: an IdP application in `prod` must be protected (replacing it logs everyone out)",
            app.urn,
        )
    ]
    assert app.urn.endswith("::airflow-oidc-okta-app")


def test_the_stack_environment_comes_from_the_stack_config_first(monkeypatch: Any) -> None:
    release = Declared(rules.HELM_RELEASE, "rel", {"values": {"labels": {rules.STACK_NAME_LABEL: "team-dev"}}})
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"airflow-oidc:spec": json.dumps({"environment": "prod"})}))
    assert pack.stack_environment([release]) == "prod"
    monkeypatch.setenv("PULUMI_CONFIG", "{}")
    assert pack.stack_environment([release]) == "dev"


def test_the_entry_point_builds_a_mandatory_pack_from_inside_the_pack_directory(tmp_path: Path) -> None:
    """Run policy/__main__.py as the CLI does (from policy/, repo not importable), with PolicyPack recorded."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json, runpy, sys\n"
        "import pulumi_policy\n"
        "seen = {}\n"
        "class FakePack:\n"
        "    def __init__(self, name, policies, enforcement_level=None, **kwargs):\n"
        "        seen.update(name=name, level=enforcement_level.value, policies=[p.name for p in policies])\n"
        "pulumi_policy.PolicyPack = FakePack\n"
        "sys.path = [p for p in sys.path if p not in ('', sys.argv[1])]\n"
        "runpy.run_path('.', run_name='__main__')\n"
        "print(json.dumps(seen))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(probe), str(ROOT)],
        cwd=ROOT / "policy",
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"name": "airflow-oidc", "level": EnforcementLevel.MANDATORY.value, "policies": ALL_POLICIES}


# ---------------------------------------------------------------------------------------------- the analyzer


def analyzer() -> Any:
    """The pack's gRPC servicer (what `pulumi preview --policy-pack` talks to), without starting a server.

    `_PolicyAnalyzerServicer` is pulumi_policy's private class behind PolicyPack; driving it with the
    engine's own request messages proves the wiring end to end: wire properties with secret
    signatures, unknown values, per-policy config from `--policy-pack-config`, enforcement levels.
    """
    from google.protobuf import json_format, struct_pb2
    from pulumi.runtime import proto
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    servicer = _PolicyAnalyzerServicer("airflow-oidc", "0.1.0", pack.policies(), EnforcementLevel.MANDATORY)
    configs = {}
    for name, properties in PACK_CONFIG.items():
        struct = struct_pb2.Struct()
        json_format.ParseDict(properties, struct)
        configs[name] = proto.PolicyConfig(enforcementLevel=proto.MANDATORY, properties=struct)
    servicer.Configure(proto.ConfigureAnalyzerRequest(policyConfig=configs), None)
    return servicer


def _wire(resource: Any, props: dict[str, Any] | None = None, protect: bool | None = None) -> dict[str, Any]:
    from google.protobuf import json_format, struct_pb2
    from pulumi.runtime import proto

    struct = struct_pb2.Struct()
    json_format.ParseDict(resource.raw_inputs if props is None else props, struct)
    options = proto.AnalyzerResourceOptions(protect=resource.protect if protect is None else protect)
    return {"type": resource.type, "properties": struct, "urn": resource.urn, "name": resource.name, "options": options}


def test_the_analyzer_passes_the_prod_stack_and_reports_a_broken_resource_as_mandatory(runs: dict[str, Run]) -> None:
    from pulumi.runtime import proto

    servicer, run = analyzer(), runs["prod"]
    clean = [servicer.Analyze(proto.AnalyzeRequest(**_wire(r)), None).diagnostics for r in run.resources if r.custom]
    assert [d for found in clean for d in found] == []
    stack = servicer.AnalyzeStack(
        proto.AnalyzeStackRequest(resources=[proto.AnalyzerResource(**_wire(r)) for r in run.resources]), None
    )
    assert list(stack.diagnostics) == []

    app = run.named("airflow-oidc-okta-app")
    broken = {
        **app.raw_inputs,
        "redirectUris": ["http://airflow.payments.example.com/cb"],
        "clientBasicSecret": UNKNOWN_STRING_VALUE,
    }
    [diagnostic] = servicer.Analyze(proto.AnalyzeRequest(**_wire(app, broken)), None).diagnostics
    assert diagnostic.policyName == "redirect-uris-https" and diagnostic.enforcementLevel == proto.MANDATORY
    assert diagnostic.message.endswith(
        "airflow-oidc-okta-app: redirectUris `http://airflow.payments.example.com/cb` " + _http()
    )

    unprotected_app = [
        proto.AnalyzerResource(**_wire(r, protect=False if r.name == app.name else None)) for r in run.resources
    ]
    [diagnostic] = servicer.AnalyzeStack(proto.AnalyzeStackRequest(resources=unprotected_app), None).diagnostics
    assert diagnostic.policyName == "protected-in-prod" and diagnostic.urn == app.urn
    assert "an IdP application in `prod` must be protected" in diagnostic.message


def test_the_analyzer_describes_every_policy_and_its_config_schema() -> None:
    from google.protobuf import json_format

    info = analyzer().GetAnalyzerInfo(None, None)
    assert info.name == "airflow-oidc"
    policies = {policy.name: policy for policy in info.policies}
    assert list(policies) == ALL_POLICIES
    # No pack configuration for Admin: the environments' defaults files are the one allowlist.
    assert not json_format.MessageToDict(policies["admin-only-allowed-groups"].configSchema.properties)
    bounds = json_format.MessageToDict(policies["lifetimes-within-bounds"].configSchema.properties)
    assert bounds["maxAccessTokenMinutes"]["default"] == 60 and bounds["maxSessionMinutes"]["default"] == 1440


def test_the_rules_load_beside_an_older_revisions_components(tmp_path: Path) -> None:
    """`plan --base` puts the base's own `components` first on sys.path and loads the change's rules by path: a
    base from before components/protection.py must not stop the plan."""
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "__init__.py").write_text("")
    probe = (
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        # As the plan worker does: only the side's own files, never the editable install's.
        "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
        "import components; assert not hasattr(components, 'protection'), components.__file__\n"
        f"spec = importlib.util.spec_from_file_location('rules_probe', {str(RULES_ENTRY)!r})\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['rules_probe'] = module\n"
        "spec.loader.exec_module(module)\n"
        "print(module.identity_protected('prod'), module.DEFAULT_PROTECTED_ENVIRONMENTS)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True ('prod',)"
