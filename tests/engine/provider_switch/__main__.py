"""The Keycloak kind's resources as the program declares them, under the default provider or, with
PROVIDER_SWITCH=explicit, under the program's explicit provider (components/idp/base.py `explicit_provider`):
same component, same names, so the URNs are the same and only the provider reference changes."""

import os

import pulumi
import pulumi_keycloak as keycloak

config = pulumi.Config("keycloak")
providers = None
if os.environ.get("PROVIDER_SWITCH") == "explicit":
    # As the program builds it: named `airflow-oidc-idp`, top level, the stack's keycloak:* config passed on.
    providers = [
        keycloak.Provider(
            "airflow-oidc-idp",
            url=config.require("url"),
            realm=config.get("realm"),
            client_timeout=config.get_int("clientTimeout") or 120,
        )
    ]


class KeycloakClient(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions) -> None:
        super().__init__("airflow-oidc:idp:KeycloakClient", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        realm = keycloak.Realm(f"{name}-realm", realm="provider-switch", enabled=True, opts=child)
        keycloak.Group(f"{name}-group-admins", realm_id=realm.id, name="airflow-admins", opts=child)
        client = keycloak.openid.Client(
            f"{name}-client",
            realm_id=realm.id,
            client_id="airflow-provider-switch",
            access_type="CONFIDENTIAL",
            standard_flow_enabled=True,
            valid_redirect_uris=["https://localhost:8443/auth/oauth-authorized/keycloak"],
            opts=child,
        )
        keycloak.openid.GroupMembershipProtocolMapper(
            f"{name}-groups-mapper",
            realm_id=realm.id,
            client_id=client.id,
            name="airflow-groups",
            claim_name="groups",
            full_path=False,
            opts=child,
        )
        self.register_outputs({})


component = pulumi.ComponentResource("airflow-oidc:index:AirflowOidc", "airflow-oidc")
KeycloakClient("airflow-oidc-keycloak", pulumi.ResourceOptions(parent=component, providers=providers))
component.register_outputs({})
