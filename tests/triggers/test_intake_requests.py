"""Intake rules of the capture request (shared/requests.py, shared/request_rules.py), the bounded decoder and bounded notices."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.bounded_json import MAX_BODY_BYTES, MAX_JSON_DEPTH, decode_json, json_depth
from shared.contracts import CaptureInput
from shared.field_errors import MAX_FIELD_ERRORS
from shared.ids import is_capture_id, resource_group_problem
from shared.notices import NOTICE_MAX_BYTES, CaptureNotice
from shared.request_rules import IDENTIFIER_MAX, MAX_TARGET_REGIONS, parse_version
from shared.requests import CaptureRequest, validate_request
from shared.status import ErrorView, RegionProgress
from tests.triggers.intake_support import SUB, VM_ID, valid_request


def errors_of(body: Any, **kw: Any) -> dict[str, str]:
    request, errors = validate_request(body, **kw)
    assert request is None, "expected the request to be refused"
    assert errors and all(e.field and e.message for e in errors)
    return {e.field: e.message for e in errors}


def test_the_valid_request_is_accepted_and_records_its_capture_mode() -> None:
    request, errors = validate_request(valid_request())
    assert errors == [] and request is not None
    assert request.to_wire()["captureMode"] == "inPlace"
    # Required on HTTP and queue alike: "inPlace" destroys the VM as a VM, so it is never assumed.
    no_mode = valid_request()
    del no_mode["captureMode"]
    found = errors_of(no_mode)
    assert set(found) == {"captureMode"}
    assert "never assumed" in found["captureMode"]
    assert "never be started again" in found["captureMode"] and "deprovision" in found["captureMode"]
    assert "captureMode" in errors_of(valid_request(captureMode="copy"))
    clone, _ = validate_request(valid_request(captureMode="clone", consistency="stopped"))
    assert clone is not None and (clone.capture_mode, clone.effective_consistency) == ("clone", "stopped")
    no_prepare = valid_request(captureMode="clone")
    del no_prepare["prepare"]
    assert 'required with captureMode "clone"' in errors_of(no_prepare)["prepare"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("gallery", "name"), "galContoso\n"),
        (("imageDefinition", "name"), "web-ubuntu\n"),
        (("gallery", "resourceGroup"), ".."),
        (("gallery", "resourceGroup"), "a/b"),
        (("gallery", "resourceGroup"), ""),
        (("gallery", "resourceGroup"), "rg-images."),
        (("gallery", "resourceGroup"), "r" * 91),
        (("gallery", "subscriptionId"), "not-a-guid"),
        (("gallery", "subscriptionId"), SUB + "\n"),
        (("imageDefinition", "publisher"), "p" * 5000),
        (("imageDefinition", "offer"), "web offer"),
        (("imageDefinition", "sku"), "sku\n"),
        (("imageDefinition", "description"), "d" * 5000),
        (("version",), "\u0661.\u0660.\u0660"),  # Arabic-Indic digits
        (("version",), "\uff11.\uff10.\uff10"),  # fullwidth digits
        (("version",), "1.0.0\n"),
        (("version",), "1.0.2147483648"),
        (("deleteSnapshots",), "0"),
        (("deleteSnapshots",), 0),
        (("excludeFromLatest",), "false"),
        (("gallery", "createIfMissing"), "true"),
        (("imageDefinition", "createIfMissing"), 1),
        (("targetRegions", 0, "replicaCount"), True),
        (("targetRegions", 0, "replicaCount"), "2"),
        (("targetRegions", 0, "replicaCount"), 2.0),
        (("targetRegions", 0, "name"), "westeurope\n"),
        (("endOfLifeDate",), "2020-01-01"),
        (("endOfLifeDate",), 1_900_000_000),
        (("sourceVmId",), VM_ID.replace(SUB, "sub-1")),
        (("sourceVmId",), VM_ID.replace("rg-build", "rg..")),
        (("sourceVmId",), VM_ID.replace("vm-web", "vm web")),
        (("sourceVmId",), VM_ID.replace("vm-web", "vm-web-")),
        (("sourceVmId",), VM_ID + "/extensions/x"),
    ],
)
def test_each_bad_value_is_refused_naming_its_field(path: tuple[str | int, ...], value: Any) -> None:
    body = valid_request()
    target: Any = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    field = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))
    assert field in errors_of(body)


def test_today_is_not_in_the_future_but_tomorrow_is() -> None:
    today = datetime.now(UTC).date()
    assert "endOfLifeDate" in errors_of(valid_request(endOfLifeDate=today.isoformat()))
    ok, errors = validate_request(valid_request(endOfLifeDate=(today + timedelta(days=2)).isoformat()))
    assert ok is not None and errors == []


def test_accepted_edge_values() -> None:
    for over in (
        {"gallery": {"resourceGroup": "Rg_(images).1-\u0661\u00e9", "name": "g.a_l", "subscriptionId": SUB}},
        {"imageDefinition": {"name": "a", "publisher": "p" * IDENTIFIER_MAX, "offer": "o.f-f_", "sku": "S"}},
        {"version": "0.0.2147483647"},
        {"targetRegions": [{"name": f"region{i}"} for i in range(MAX_TARGET_REGIONS)]},
    ):
        request, errors = validate_request(valid_request(**over))
        assert errors == [] and request is not None, (over, errors)


def test_too_many_regions_is_one_short_error() -> None:
    found = errors_of(valid_request(targetRegions=[{"name": f"r{i}x"} for i in range(5000)]))
    assert list(found) == ["targetRegions"] and str(MAX_TARGET_REGIONS) in found["targetRegions"]
    assert len(json.dumps(found)) < 1000


def test_error_lists_are_bounded_and_say_how_many_more() -> None:
    body = valid_request(**{f"unknown{i}": i for i in range(500)})
    request, errors = validate_request(body)
    assert request is None and len(errors) == MAX_FIELD_ERRORS + 1
    assert errors[-1].message == f"… ({500 - MAX_FIELD_ERRORS} more errors not shown)"
    assert all(e.message == "unknown field" for e in errors[:-1])
    long_key = {"x" * 100_000: 1}
    _, errors = validate_request(valid_request(**long_key))
    assert all(len(e.field) <= 300 and len(e.message) <= 1000 for e in errors)


def test_replay_stays_lenient_for_inputs_stored_by_the_previous_version() -> None:
    """Orchestration input is parsed without the intake context: what older versions stored still parses."""
    stored = valid_request(
        version="\uff11.0.0",
        deleteSnapshots="0",
        endOfLifeDate="2020-01-01",
        gallery={"resourceGroup": "..", "name": "gal\n", "subscriptionId": "x"},
        imageDefinition={"name": "d", "publisher": "p" * 5000, "offer": "o", "sku": "s"},
        targetRegions=[{"name": "westeurope", "replicaCount": "2"}],
    )
    del stored["captureMode"]
    request = CaptureRequest.from_wire(stored)
    assert request.capture_mode == "inPlace" and request.delete_snapshots is False
    assert request.target_regions[0].replica_count == 2
    inp = CaptureInput.from_wire({"captureId": "capture-vm-web-1", "request": stored})
    assert inp.request.gallery.resource_group == ".."


def test_parse_version_is_ascii_only() -> None:
    assert parse_version("1.2.3") == (1, 2, 3)
    for bad in ("1.2.3\n", "\u0661.2.3", "1.2", "1.2.3.4", " 1.2.3"):
        with pytest.raises(ValueError):
            parse_version(bad)


def test_resource_group_and_capture_id_rules() -> None:
    assert resource_group_problem("rg-images") is None and resource_group_problem("(x)") is None
    for bad in ("", ".", "..", "a/b", "a b", "rg.", "r" * 91, "rg\n", "rg\u00b2"):
        assert resource_group_problem(bad), bad
    assert is_capture_id("capture-vm-web-fc16b17e58")
    for bad in (
        "?x",
        "#x",
        "capture-vm?x",
        "capture-vm#x",
        "capture-vm\n",
        "capture-VM",
        "capture-x:version",
    ):
        assert not is_capture_id(bad), bad


# --- bounded decoding ---------------------------------------------------------------------------


def test_depth_is_measured_without_recursion_and_ignores_strings() -> None:
    assert json_depth('{"a": [1, {"b": "[[[[{{{"}]}') == 3
    assert json_depth('["\\"[[[", ["x"]]') == 2
    deep = "[" * 100_000 + "]" * 100_000
    assert json_depth(deep) == MAX_JSON_DEPTH + 1
    value, problem = decode_json(deep.encode())
    assert value is None and problem is not None and problem.reason == "TooDeep"
    assert str(MAX_JSON_DEPTH) in problem.message and problem.status == 400
    nested = ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH).encode()
    assert decode_json(nested)[1] is None


def test_size_text_and_json_problems_are_named() -> None:
    big = b'{"a": "' + b"x" * MAX_BODY_BYTES + b'"}'
    _, problem = decode_json(big)
    assert problem is not None and problem.reason == "TooLarge" and problem.status == 413
    assert str(MAX_BODY_BYTES) in problem.message
    _, problem = decode_json(b"\xff\xfe{")
    assert problem is not None and problem.reason == "NotText"
    _, problem = decode_json(b"{nope")
    assert problem is not None and problem.reason == "NotJson"
    _, problem = decode_json(b"1" * 5000)  # more digits than Python converts
    assert problem is not None and problem.reason == "NotJson"


# --- notices always fit a queue message ---------------------------------------------------------


def test_a_notice_naming_5000_regions_fits_a_queue_message() -> None:
    message = "regions not in the subscription: " + ", ".join(f"region{i}" for i in range(5000)) * 30
    notice = CaptureNotice(
        notice_id="n",
        capture_id="capture-vm-web-1",
        source_vm_id=VM_ID,
        outcome="failed",
        regions=[RegionProgress(region=f"region{i}", details="d" * 400) for i in range(5000)],
        cleaned=[f"read access on snapshot {i} revoked" for i in range(3000)],
        snapshots_kept=["/subscriptions/x/snapshots/" + "s" * 5000] * 50,
        error=ErrorView(step="preflight", code="PreflightFailed", message=message, advice="a" * 100_000),
    )
    text = json.dumps(notice.to_wire(), separators=(",", ":"))
    assert len(text) <= NOTICE_MAX_BYTES and len(base64.b64encode(text.encode())) <= 64 * 1024
    assert notice.regions[-1].region.startswith("… (") and notice.regions[-1].region.endswith(" more)")
    shown = len(notice.regions) - 1
    assert notice.regions[-1].region == f"… ({5000 - shown} more)"
    assert notice.cleaned[-1] == f"… ({3000 - (len(notice.cleaned) - 1)} more)"
    assert notice.error is not None and notice.error.message.endswith("…")
    assert notice.error.message.startswith("regions not in the subscription: region0, region1")
    # Idempotent: the activity re-reads the notice from its input and gets the same one.
    assert CaptureNotice.from_wire(notice.to_wire()) == notice


def test_a_small_notice_is_unchanged() -> None:
    notice = CaptureNotice(
        notice_id="n",
        capture_id="c",
        source_vm_id=VM_ID,
        outcome="completed",
        regions=[RegionProgress(region="westeurope", state="Completed", progress=100)],
        cleaned=["x"] * 3,
    )
    assert notice.cleaned == ["x"] * 3 and len(notice.regions) == 1
