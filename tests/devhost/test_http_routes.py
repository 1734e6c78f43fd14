"""Route templates of HTTP triggers: parameters, constraints, optional and catch-all segments, precedence."""

from __future__ import annotations

import pytest

from devhost.http.routes import RouteError, RouteTemplate


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("orchestrators/{name}", "orchestrators/capture", {"name": "capture"}),
        ("orchestrators/{name}", "Orchestrators/capture", {"name": "capture"}),  # literals ignore case
        ("orchestrators/{name}", "orchestrators", None),
        ("orchestrators/{name}", "orchestrators/a/b", None),
        ("items/{id:int}", "items/-12", {"id": "-12"}),
        ("items/{id:int}", "items/99999999999", None),  # beyond Int32
        ("items/{id:long}", "items/99999999999", {"id": "99999999999"}),
        ("items/{id:int:min(10)}", "items/5", None),
        (
            "items/{id:guid}",
            "items/0f8fad5b-d9cb-469f-a165-70867728950e",
            {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"},
        ),
        ("items/{id:guid}", "items/nope", None),
        ("items/{flag:bool}", "items/True", {"flag": "True"}),
        ("items/{code:regex(^[a-z]{{2}}$)}", "items/ab", {"code": "ab"}),
        ("items/{code:alpha:length(2)}", "items/abc", None),
        ("vm/{name}/{op?}", "vm/a", {"name": "a"}),
        ("vm/{name}/{op?}", "vm/a/start", {"name": "a", "op": "start"}),
        ("files/{*path}", "files/a/b%20c/d", {"path": "a/b c/d"}),
        ("files/{*path}", "files", {}),
        ("", "", {}),
    ],
)
def test_match(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.parse(template).match(path) == expected


def test_precedence_prefers_literals_then_constraints() -> None:
    routes = [
        RouteTemplate.parse(t)
        for t in ("items/{id}", "items/{id?}", "items/{id:int}", "items/special", "items/{*rest}")
    ]
    ordered = [r.template for r in sorted(routes, key=lambda r: r.precedence)]
    assert ordered == ["items/special", "items/{id:int}", "items/{id}", "items/{id?}", "items/{*rest}"]


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("a/{x:nosuch}", "unknown constraint 'nosuch'"),
        ("a/{x?}/b", "only trailing parameters can be optional"),
        ("a/{*x}/b", "catch-all parameter must be the last segment"),
        ("a/pre{x}", "must be a literal or a whole"),
        ("a/{x}/{X}", "used twice"),
        ("a//b", "empty segment"),
    ],
)
def test_bad_templates_are_explained(template: str, needle: str) -> None:
    with pytest.raises(RouteError, match="route '") as err:
        RouteTemplate.parse(template)
    assert needle in str(err.value)
