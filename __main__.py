"""airflow-oidc: single sign-on for Apache Airflow 3, the IdP side and the Airflow side from one spec."""

import pulumi

from components.airflow_oidc import AirflowOidc
from components.stack_config import read_program_inputs

inputs = read_program_inputs()  # a bad spec stops here: file and key path named, nothing created
sso = AirflowOidc("airflow-oidc", spec=inputs.spec, stack=inputs.stack, provider=inputs.provider)

pulumi.export("url", sso.url)
pulumi.export("clientId", sso.client_id)
pulumi.export("issuer", sso.issuer)
pulumi.export("redirectUris", sso.redirect_uris)
pulumi.export("postLogoutRedirectUris", sso.post_logout_redirect_uris)
pulumi.export("access", sso.access)
pulumi.export("accessModel", sso.access_model)  # who may sign in, as what: `plan` diffs it, policies read it
pulumi.export("configVersion", sso.config_version)
if inputs.spec.clientSecret.store == "kubernetes":  # a cloud store keeps it out of the outputs too
    pulumi.export("clientSecret", sso.client_secret)  # a Pulumi secret: `pulumi stack output --show-secrets`
for key, value in sso.idp_outputs.items():  # the kind's own: `registration` (what to register by hand), ...
    pulumi.export(key, value)
