"""The mock engine lives in the product (`components/mock_engine.py`, used by `airflow-oidc plan`).

Re-exported here so tests keep importing `tests.mock_engine`.
"""

from components.mock_engine import *  # noqa: F403
from components.mock_engine import (  # noqa: F401 - names tests import
    MAIN,
    ROOT,
    SECRET_SIG,
    SECRET_SIG_KEY,
    ProgramMocks,
    RecordingMonitor,
    Registration,
    Run,
    fake,
    fake_secret,
    is_secret,
    plain_occurrences,
    run_program,
    run_stack_file,
    stack_config,
    unwrap_secrets,
)
