"""The specialized capture's pure parts: intake of the mode fields, the tags, the plan, preflight rules."""

from __future__ import annotations

from typing import Any

from activities import compat
from orchestrators.capture.plan import CAPTURE, SPECIALIZED, plan_for, reported_stages
from orchestrators.capture.rules import mode_problems, shown_consistency
from shared.contracts import DefinitionFacts, DiskFacts, VmFacts
from shared.requests import CaptureRequest, ImageDefinitionSpec, validate_request
from shared.status import STAGES, Stage
from shared.vm_tags import request_from_tags
from tests.triggers.intake_support import VM_ID, valid_request


def _specialized(**overrides: Any) -> dict[str, Any]:
    body = valid_request(captureMode="specialized")
    del body["prepare"]
    return {**body, **overrides}


def _request(**overrides: Any) -> CaptureRequest:
    request, errors = validate_request(_specialized(**overrides))
    assert request is not None, errors
    return request


def _facts(power: str = "running", generalized: bool = False) -> VmFacts:
    disk = DiskFacts(key="os", name="vm-web_OsDisk", id="/x/disks/vm-web_OsDisk", size_gb=30)
    return VmFacts(
        id=VM_ID,
        name="vm-web",
        resource_group="rg",
        subscription_id="s",
        location="westeurope",
        os_type="Linux",
        hyper_v_generation="V2",
        security_type="Standard",
        architecture="x64",
        power_state=power,
        generalized=generalized,
        os_disk=disk,
    )


def test_specialized_needs_no_prepare_and_defaults_to_crash_consistency() -> None:
    request = _request()
    assert (request.capture_mode, request.prepare, request.consistency) == ("specialized", None, None)
    assert request.effective_consistency == "crash"
    assert _request(consistency="stopped").effective_consistency == "stopped"
    # Accepted on queue messages too (the mode is named).
    assert validate_request(_specialized(), require_capture_mode=True)[0] is not None


def test_mode_fields_are_refused_with_the_available_modes() -> None:
    _, errors = validate_request(valid_request(captureMode="clone"))
    by_field = {e.field: e.message for e in errors}
    assert "not available in this version" in by_field["captureMode"]
    assert '"inPlace"' in by_field["captureMode"] and '"specialized"' in by_field["captureMode"]
    _, errors = validate_request(valid_request(captureMode=["inPlace"]))  # unhashable: a field error
    assert [e.field for e in errors] == ["captureMode"]
    _, errors = validate_request(valid_request(consistency="stopped"))
    assert [e.field for e in errors] == ["consistency"]
    _, errors = validate_request(_specialized(prepare="deprovision"))
    assert [e.field for e in errors] == ["prepare"]
    no_prepare = valid_request()
    no_prepare["prepare"] = None
    _, errors = validate_request(no_prepare)
    assert [e.field for e in errors] == ["prepare"]


def test_a_stored_request_without_the_new_fields_replays_as_in_place() -> None:
    stored = CaptureRequest.from_wire({k: v for k, v in valid_request().items() if k != "captureMode"})
    assert plan_for(stored) is CAPTURE and stored.effective_consistency == "stopped"


def test_the_specialized_tag_asks_for_stopped_snapshots() -> None:
    tags = {
        "image-pipeline:mode": "Specialized",
        "image-pipeline:gallery": "rg-images/galContoso",
        "image-pipeline:definition": "golden-def",
        "image-pipeline:identifier": "contoso/golden/ubuntu",
    }
    parse = request_from_tags(VM_ID, tags)
    assert parse.request is not None, parse.errors
    assert (parse.request.capture_mode, parse.request.consistency) == ("specialized", "stopped")
    clone = request_from_tags(VM_ID, {**tags, "image-pipeline:mode": "clone"})
    assert clone.request is None and "specialized" in clone.describe_errors()


def test_the_specialized_plan_never_generalizes_and_reports_its_own_stages() -> None:
    names = [s.name for s in SPECIALIZED.stages]
    assert Stage.PREPARE not in names and Stage.GENERALIZE not in names
    assert reported_stages(SPECIALIZED) == (
        Stage.PREFLIGHT,
        Stage.DEALLOCATE,
        Stage.SNAPSHOT,
        Stage.RESTART,
        Stage.PUBLISH,
        Stage.EXPORT,
        Stage.VERIFY,
        Stage.PROMOTE,
        Stage.CLEANUP,
    )
    assert reported_stages(CAPTURE) == STAGES
    deallocate = SPECIALIZED.stage(Stage.DEALLOCATE)
    assert deallocate.on_cancel is not None and deallocate.on_failure is not None
    assert not SPECIALIZED.stage(Stage.RESTART).safe_point
    assert plan_for(_request()) is SPECIALIZED


def test_consistency_shown_follows_the_vm_and_the_request() -> None:
    assert shown_consistency(_request(), _facts("running")) == "crash-consistent"
    assert shown_consistency(_request(), _facts("deallocated")) == "stopped"
    assert shown_consistency(_request(consistency="stopped"), _facts("running")) == "stopped"


def test_a_generalized_vm_cannot_be_captured_specialized() -> None:
    (problem,) = mode_problems(_request(), _facts(generalized=True))
    assert "is generalized" in problem and '"inPlace"' in problem
    assert mode_problems(_request(), _facts()) == []


def _definition(os_state: str) -> DefinitionFacts:
    return DefinitionFacts(
        id="d",
        location="westeurope",
        os_type="Linux",
        os_state=os_state,
        hyper_v_generation="V2",
        architecture="x64",
    )


def test_definition_os_state_must_match_the_mode_both_ways() -> None:
    vm = _facts()
    (wrong,) = compat.problems("d", _definition("Generalized"), vm, "Specialized")
    assert "holds Generalized images but the capture makes a specialized image" in wrong
    assert "osState Specialized" in wrong and 'captureMode "inPlace"' in wrong
    (other,) = compat.problems("d", _definition("Specialized"), vm, "Generalized")
    assert "osState Generalized" in other and 'captureMode "specialized"' in other
    assert compat.problems("d", _definition("Specialized"), vm, "Specialized") == []
    spec = ImageDefinitionSpec(name="d", publisher="p", offer="o", sku="s")
    body = compat.definition_body(spec, vm, "westeurope", {}, "Specialized")
    assert body["properties"]["osState"] == "Specialized"
