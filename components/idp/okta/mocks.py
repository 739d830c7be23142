"""Okta under the mock engine (`plan`, tests): the mocked org's groups (`OktaIdp.mock_call` answers from them)."""

from __future__ import annotations

import hashlib
from typing import Any

GET_GROUP = "okta:group/getGroup:getGroup"
GET_GROUPS = "okta:index/getGroups:getGroups"
GROUP_TYPE = "okta:group/group:Group"

MOCK_GROUP_COUNT: dict[str, int] = {}
"""For the mock engine (tests): how many OKTA_GROUPs the mocked org holds named exactly so (default 1).
2 makes a lookup ambiguous, 0 missing (only the starts-with neighbour `<name>-secondary` is left, the
match the provider's own lookup would take)."""
MOCK_GROUP_NAMES: dict[str, str] = {}
"""For the mock engine (tests): the name of the group with this id (a group given by id). Ids not
listed get a stand-in name; ids listed with None are missing."""


def mock_group_id(key: str) -> str:
    """A deterministic Okta-shaped group id (`00g` + 17 letters and digits) for the mock engine."""
    return "00g" + hashlib.sha256(key.encode()).hexdigest()[:17]


def mock_groups(query: str, type_: Any) -> list[dict[str, Any]]:
    """What the mocked org's `GET /api/v1/groups?q=<query>` returns: `MOCK_GROUP_COUNT` OKTA_GROUPs
    named exactly `query`, a starts-with neighbour `<query>-secondary`, and (unless the type filter
    excludes it) an APP_GROUP of the same name imported from another directory."""
    groups = [
        {"id": mock_group_id(f"OKTA_GROUP:{query}#{index}"), "name": query, "type": "OKTA_GROUP"}
        for index in range(MOCK_GROUP_COUNT.get(query, 1))
    ]
    groups.append(
        {"id": mock_group_id(f"OKTA_GROUP:{query}-secondary"), "name": f"{query}-secondary", "type": "OKTA_GROUP"}
    )
    groups.append({"id": mock_group_id(f"APP_GROUP:{query}"), "name": query, "type": "APP_GROUP"})
    common = {"description": "", "source": "", "customProfileAttributes": "{}"}
    return [{**common, **group} for group in groups if type_ in (None, "", group["type"])]
