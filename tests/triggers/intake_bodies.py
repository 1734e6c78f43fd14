"""Bodies for the intake tests: deeply nested JSON, and hypothesis strategies of arbitrary JSON values
and of the valid request with some fields replaced (used in process and through the stack)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.triggers.intake_support import valid_request


def deep(levels: int) -> bytes:
    return ("[" * levels + "]" * levels).encode()


def deep_request(levels: int) -> bytes:
    return json.dumps(valid_request(tags={"a": "b"})).replace('"b"', "[" * levels + "]" * levels).encode()


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["", "..", "a/b", "x\n", "1.0.0\n", "\u0661.\u0660.\u0660", "auto", "0", "true", "inPlace", "none"]
    )
)
json_values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=12,
)
FIELDS = [
    ("sourceVmId",),
    ("gallery",),
    ("gallery", "resourceGroup"),
    ("gallery", "name"),
    ("gallery", "subscriptionId"),
    ("gallery", "createIfMissing"),
    ("imageDefinition", "name"),
    ("imageDefinition", "publisher"),
    ("imageDefinition", "createIfMissing"),
    ("version",),
    ("targetRegions",),
    ("targetRegions", 0, "name"),
    ("targetRegions", 0, "replicaCount"),
    ("endOfLifeDate",),
    ("excludeFromLatest",),
    ("prepare",),
    ("captureMode",),
    ("deleteSnapshots",),
    ("tags",),
    ("notify",),
    ("vhdExport",),
]


@st.composite
def mutated_requests(draw: st.DrawFn) -> dict[str, Any]:
    """The valid request with one to three fields replaced by arbitrary JSON (or removed)."""
    body = valid_request()
    for path in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3)):
        target: Any = body
        for part in path[:-1]:
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()) and path[-1] in target:
            del target[path[-1]]
        else:
            target[path[-1]] = draw(json_values)
    return body
