"""The plan of a non-VM source (orchestrators/capture/sources.py, plan.py): chosen by source kind, its
stages, and the pure rules its preflight applies (no Durable context needed)."""

from __future__ import annotations

from orchestrators.capture.plan import CAPTURE, FROM_SOURCE, SPECIALIZED, plan_for, reported_stages
from orchestrators.capture.sources import location_problems, source_label, source_os_state, source_vm_facts
from shared.requests import CaptureRequest, validate_request
from shared.sources import SourceDisk, SourceFacts
from tests.triggers.intake_support import SUB, valid_request

IMAGE = f"/subscriptions/{SUB}/resourceGroups/rg-legacy-images/providers/Microsoft.Compute/images/img"


def _request(source: dict[str, object], **over: object) -> CaptureRequest:
    body = valid_request(source=source, **over)
    for field in ("sourceVmId", "captureMode", "prepare"):
        body.pop(field, None)
    request, errors = validate_request(body)
    assert request is not None, errors
    return request


def test_the_plan_is_chosen_by_source_kind() -> None:
    vm, errors = validate_request(valid_request())
    assert vm is not None and plan_for(vm) is CAPTURE, errors
    spec, _ = validate_request(valid_request(captureMode="specialized", prepare=None))
    assert spec is not None and plan_for(spec) is SPECIALIZED
    image = _request({"managedImageId": IMAGE})
    assert plan_for(image) is FROM_SOURCE
    assert [str(s) for s in reported_stages(FROM_SOURCE)] == ["preflight", "publish", "export", "cleanup"]


def _image(**over: object) -> SourceFacts:
    facts: dict[str, object] = {
        "kind": "managedImage",
        "id": IMAGE,
        "name": "img",
        "location": "westeurope",
        "os_type": "Windows",
        "hyper_v_generation": "V1",
        "os_state": "Generalized",
        "disks": [
            SourceDisk(key="os", name="img", id=IMAGE, size_gb=127),
            SourceDisk(key="lun3", lun=3, name="img LUN 3", id=IMAGE, size_gb=64),
        ],
    }
    facts.update(over)
    return SourceFacts.model_validate(facts)


def test_a_managed_image_as_the_gallery_activities_see_it() -> None:
    facts = source_vm_facts(_image(), "West Europe")
    assert (facts.name, facts.location, facts.os_type, facts.hyper_v_generation) == (
        "managed image img",
        "westeurope",
        "Windows",
        "V1",
    )
    assert facts.generalized and facts.security_type == "Standard"
    assert [(d.key, d.lun, d.size_gb) for d in facts.data_disks] == [("lun3", 3, 64)]
    image = _request({"managedImageId": IMAGE})
    assert source_os_state(image, _image()) == "Generalized"
    vhds = _request(
        {"snapshots": {"os": IMAGE.replace("images/img", "snapshots/s")}, "osState": "Specialized"}
    )
    assert source_os_state(vhds) == "Specialized"


def test_a_source_in_another_region_than_the_gallery_is_refused_with_advice() -> None:
    assert location_problems(_image(), "galContoso", "westeurope") == []
    assert location_problems(_image(location=None), "galContoso", "eastus") == []  # a VHD: not known
    (problem,) = location_problems(_image(location="eastus"), "galContoso", "West Europe")
    assert problem.startswith(
        f"{source_label(_image())} is in eastus but gallery galContoso is in westeurope"
    )
    assert "Use a gallery in eastus" in problem
