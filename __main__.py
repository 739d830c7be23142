"""airflow-oidc: single sign-on for Apache Airflow 3, the IdP side and the Airflow side from one spec."""

import os

import pulumi

from components.airflow_oidc import AirflowOidc
from components.contract import okta_org_url
from components.stack_config import read_program_spec

spec = read_program_spec()
okta = pulumi.Config("okta")
sso = AirflowOidc(
    "airflow-oidc",
    spec=spec,
    stack=pulumi.get_stack(),
    okta_org=okta_org_url(
        okta.get("orgName") or os.environ.get("OKTA_ORG_NAME"),
        okta.get("baseUrl") or os.environ.get("OKTA_BASE_URL"),
    ),
)

pulumi.export("url", sso.url)
pulumi.export("clientId", sso.client_id)
pulumi.export("issuer", sso.issuer)
pulumi.export("redirectUris", sso.redirect_uris)
pulumi.export("postLogoutRedirectUris", sso.post_logout_redirect_uris)
pulumi.export("access", sso.access)
pulumi.export("configVersion", sso.config_version)
pulumi.export("clientSecret", sso.client_secret)  # a Pulumi secret: `pulumi stack output --show-secrets`
if sso.registration is not None:
    pulumi.export("registration", sso.registration)
