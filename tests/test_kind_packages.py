"""A kind is one package (`components/idp/<kind>/`): its pure model, registered in `KINDS`, and its Pulumi side,
which answers the resources hooks and is loaded only when the program declares something."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from components.idp import KINDS, kind_name, kind_resources
from components.idp.base.resources import KindResources
from tests.conftest import ROOT


@pytest.mark.parametrize("model", KINDS, ids=kind_name)
def test_each_kind_is_a_package_of_model_and_resources(model: type) -> None:
    kind = kind_name(model)
    assert model.__module__ == f"components.idp.{kind}.model"
    resources = kind_resources(model.model_construct(kind=kind))
    assert resources.__name__ == f"components.idp.{kind}.resources"
    for hook in ("lookup", "provision", "provision_service_accounts"):
        wanted = inspect.signature(getattr(KindResources, hook))
        found = inspect.signature(getattr(resources, hook))
        assert list(found.parameters) == list(wanted.parameters)[1:], f"{kind}: {hook}{found}"


PROBE = """
import sys
import components.spec, components.contract, components.env_defaults
ours = [m for m in sys.modules if m.startswith("components.") and m.endswith(".resources")]
loaded = sorted(ours + [m for m in sys.modules if m.split(".")[0] == "pulumi"])
print(loaded)
sys.exit(1 if loaded else 0)
"""


def test_the_spec_loads_the_kinds_models_only() -> None:
    """A fresh interpreter: the spec, its contract and its defaults load no kind's resources and no Pulumi."""
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
