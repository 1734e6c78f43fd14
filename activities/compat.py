"""Pure rules: is an image definition fit to hold this VM's image (generalized or specialized), what to create.

No I/O here, so preflight's judgement and the properties of a definition the capture creates come
from one place and are unit-tested without a cloud.
"""

from __future__ import annotations

from typing import Any

from shared.contracts import DefinitionFacts, VmFacts
from shared.requests import ImageDefinitionSpec

# Which values of a definition's SecurityType feature accept an image of a VM of each security type.
# None = the definition has no SecurityType feature (a Standard-only definition).
SECURITY_ACCEPTS: dict[str, set[str | None]] = {
    "Standard": {None, "Standard", "TrustedLaunchSupported", "TrustedLaunchAndConfidentialVmSupported"},
    "TrustedLaunch": {"TrustedLaunch", "TrustedLaunchSupported", "TrustedLaunchAndConfidentialVmSupported"},
    "ConfidentialVM": {
        "ConfidentialVM",
        "ConfidentialVMSupported",
        "TrustedLaunchAndConfidentialVmSupported",
    },
}
# What the capture creates for each VM security type (Supported keeps Standard VMs deployable too).
SECURITY_FEATURE_FOR: dict[str, str | None] = {
    "Standard": None,
    "TrustedLaunch": "TrustedLaunchSupported",
    "ConfidentialVM": "ConfidentialVMSupported",
}
_SECURITY_LABEL = {
    "Standard": "standard security",
    "TrustedLaunch": "Trusted Launch",
    "ConfidentialVM": "Confidential VM",
}


def definition_facts(definition: dict[str, Any]) -> DefinitionFacts:
    """Read the facts that matter for compatibility from a gallery image's REST JSON (Azure's defaults applied)."""
    p = definition.get("properties") or {}
    security = None
    for feature in p.get("features") or []:
        if str(feature.get("name", "")).lower() == "securitytype":
            security = str(feature.get("value"))
    return DefinitionFacts(
        id=str(definition.get("id") or ""),
        location=str(definition.get("location") or ""),
        os_type=str(p.get("osType") or ""),
        os_state=str(p.get("osState") or ""),
        hyper_v_generation=str(p.get("hyperVGeneration") or "V1"),  # Azure's default when absent
        security_type=security,
        architecture=str(p.get("architecture") or "x64"),  # Azure's default when absent
    )


# What to do about a definition of the other OS state, for each state the capture makes.
_OTHER_MODE = {
    "Generalized": 'or send captureMode "specialized" to capture the VM as it is (not generalized)',
    "Specialized": 'or send captureMode "inPlace" to generalize the VM (it can never start again)',
}


def problems(name: str, d: DefinitionFacts, vm: VmFacts, os_state: str = "Generalized") -> list[str]:
    """Every way the definition ``name`` cannot hold an ``os_state`` image of ``vm``, each as advice."""
    fix = "or let the capture create one"
    out: list[str] = []
    if d.os_type.lower() != vm.os_type.lower():
        out.append(
            f"the image definition {name} is for {d.os_type} but {vm.name} runs {vm.os_type}: "
            f"use a {vm.os_type} definition {fix}"
        )
    if d.os_state.lower() != os_state.lower():
        out.append(
            f"the image definition {name} holds {d.os_state or 'unknown-state'} images but the capture makes a "
            f"{os_state.lower()} image of {vm.name}: use a definition with osState {os_state} (a new "
            f"definition name lets the capture create one), {_OTHER_MODE.get(os_state, fix)}"
        )
    if d.hyper_v_generation.upper() != vm.hyper_v_generation:
        out.append(
            f"the image definition {name} is Hyper-V {d.hyper_v_generation.upper()} but {vm.name} is "
            f"{vm.hyper_v_generation}: use a {vm.hyper_v_generation} definition {fix}"
        )
    accepted = SECURITY_ACCEPTS[vm.security_type]
    if d.security_type not in accepted:
        wanted = SECURITY_FEATURE_FOR[vm.security_type]
        has = f"SecurityType {d.security_type}" if d.security_type else "no SecurityType feature"
        want = f"SecurityType {wanted}" if wanted else "no SecurityType feature (or TrustedLaunchSupported)"
        out.append(
            f"the image definition {name} has {has} but {vm.name} uses {_SECURITY_LABEL[vm.security_type]}: "
            f"use a definition with {want} {fix}"
        )
    if d.architecture.lower() != vm.architecture.lower():
        out.append(
            f"the image definition {name} is for {d.architecture} but {vm.name} is {vm.architecture}: "
            f"use an {vm.architecture} definition {fix}"
        )
    return out


def definition_body(
    spec: ImageDefinitionSpec, vm: VmFacts, location: str, tags: dict[str, str], os_state: str = "Generalized"
) -> dict[str, Any]:
    """The REST body of a new image definition derived from the VM (``os_state``: the capture mode's)."""
    properties: dict[str, Any] = {
        "osType": vm.os_type,
        "osState": os_state,
        "hyperVGeneration": vm.hyper_v_generation,
        "architecture": vm.architecture,
        "identifier": {"publisher": spec.publisher, "offer": spec.offer, "sku": spec.sku},
    }
    feature = SECURITY_FEATURE_FOR[vm.security_type]
    if feature:
        properties["features"] = [{"name": "SecurityType", "value": feature}]
    if spec.description:
        properties["description"] = spec.description
    return {"location": location, "tags": dict(tags), "properties": properties}
