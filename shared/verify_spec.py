"""The boot test of a new image version (``verify`` in the request) and what it needs, pure.

``VerifySpec`` is the request's part: whether to boot-test (``bootTest``; absent: the setting
``BOOT_TEST_DEFAULT``), in which target regions (default all), on which VM size and subnet (settings
give a subnet per region or a template; the request can override per region), an optional smoke
script run through Run Command (exit 0 passes) and what happens to a version that failed
(``onFailure``: keep it excluded from latest, or delete it). ``BootTestDefaults`` are the settings,
carried in ``CapturePolicy`` so the orchestrator stays pure. ``boot_tests`` turns both into one
``BootTestInput`` per region; the activities (``activities.boot_tests``) and the stage
(``orchestrators.capture.verify``) speak the models below. Nothing here holds a secret: the test
VM's admin credential is made and dropped inside the activity that creates the VM.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from shared.model_base import WireModel
from shared.request_rules import REGION, IntakeBool, is_intake

SUBNET_ID = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network/"
    r"virtualNetworks/(?P<vnet>[^/]+)/subnets/(?P<subnet>[^/]+)",
    re.IGNORECASE,
)
SMOKE_SCRIPT_MAX = 16_384  # characters; the script travels in the orchestration input
VM_SIZE = re.compile(r"(Standard|Basic)_[A-Za-z0-9_]{1,60}")
# OS provisioning ends OSProvisioningTimedOut after 40 min on Linux (docs/azure-facts.md#boot-tests):
# the pipeline's own bound is longer, so Azure's verdict normally comes first.
DEFAULT_TIMEOUT_SECONDS = 3600.0

BootPhase = Literal["creating", "provisioning", "smoke", "passed", "failed"]


def subnet_problem(value: str) -> str | None:
    if not SUBNET_ID.fullmatch(value.strip()):
        return (
            "expected a subnet id like /subscriptions/<id>/resourceGroups/<rg>/providers/"
            "Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>"
        )
    return None


class VerifySpec(WireModel):
    """``verify`` of the capture request (README: Boot test and promotion)."""

    boot_test: IntakeBool | None = Field(
        default=None,
        description="Boot a test VM from the new version in each chosen region before it becomes latest "
        "(absent: the setting BOOT_TEST_DEFAULT, off unless set).",
    )
    regions: list[str] | None = Field(
        default=None, description="Target regions to boot-test (default: every target region)."
    )
    vm_size: str | None = Field(
        default=None, description="Test VM size (default: BOOT_TEST_VM_SIZE, else the source VM's size)."
    )
    subnet_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Per region, the subnet of the test VM's NIC (overrides BOOT_TEST_SUBNET_IDS and "
        "BOOT_TEST_SUBNET_TEMPLATE). The NIC gets no public IP.",
    )
    smoke_script: str | None = Field(
        default=None,
        description="Run through Run Command on each test VM once its agent is Ready; exit 0 passes "
        "(Windows: Azure reports no exit code, so output on stderr fails). No secrets: it is stored "
        "with the capture.",
    )
    on_failure: Literal["keep", "delete"] = Field(
        default="keep",
        description='"keep": a version that failed its boot test stays, excluded from latest; "delete": '
        "it is deleted.",
    )

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if v is None:
            return v
        out = [r.replace(" ", "").lower() for r in v]
        bad = [r for r in out if not REGION.fullmatch(r)]
        if bad and is_intake(info):
            raise ValueError(f"not Azure region names: {', '.join(bad[:5])}")
        if len(set(out)) != len(out):
            raise ValueError("list each region once")
        return out

    @field_validator("vm_size")
    @classmethod
    def _size(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and is_intake(info) and not VM_SIZE.fullmatch(v):
            raise ValueError("must be an Azure VM size such as Standard_D2s_v5")
        return v

    @field_validator("subnet_ids")
    @classmethod
    def _subnets(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        out = {k.replace(" ", "").lower(): s for k, s in v.items()}
        if is_intake(info):
            for region, subnet in out.items():
                problem = subnet_problem(subnet) or (
                    None if REGION.fullmatch(region) else "the key must be an Azure region name"
                )
                if problem:
                    raise ValueError(f"{region}: {problem}")
        return out

    @field_validator("smoke_script")
    @classmethod
    def _script(cls, v: str | None) -> str | None:
        if v is not None and len(v) > SMOKE_SCRIPT_MAX:
            raise ValueError(f"at most {SMOKE_SCRIPT_MAX} characters ({len(v)} given)")
        return v


def _pairs(raw: str, name: str) -> dict[str, str]:
    """``region=subnetId`` pairs separated by commas, semicolons or spaces."""
    out: dict[str, str] = {}
    for item in re.split(r"[,;\s]+", raw.strip()):
        if not item:
            continue
        region, sep, subnet = item.partition("=")
        problem = subnet_problem(subnet) if sep else "expected region=subnetId"
        if problem:
            raise ValueError(f"setting {name} has {item[:120]!r}: {problem}")
        out[region.strip().lower()] = subnet.strip()
    return out


class BootTestDefaults(WireModel):
    """The boot test's settings (``shared.settings``; documented in local.settings.sample.json)."""

    default_on: bool = False  # BOOT_TEST_DEFAULT
    vm_size: str | None = None  # BOOT_TEST_VM_SIZE
    subnet_ids: dict[str, str] = Field(default_factory=dict)  # BOOT_TEST_SUBNET_IDS
    subnet_template: str | None = None  # BOOT_TEST_SUBNET_TEMPLATE, with {region} (and {subscription})
    resource_group: str | None = None  # BOOT_TEST_RESOURCE_GROUP (default: the subnet's group)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS  # BOOT_TEST_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BootTestDefaults:
        raw_on = (env.get("BOOT_TEST_DEFAULT") or "").strip().lower()
        if raw_on not in ("", "true", "false", "1", "0"):
            raise ValueError(f"setting BOOT_TEST_DEFAULT={raw_on!r} must be true or false")
        timeout = float(env.get("BOOT_TEST_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS)
        if timeout <= 0:
            raise ValueError("setting BOOT_TEST_TIMEOUT_SECONDS must be > 0")
        return cls(
            default_on=raw_on in ("true", "1"),
            vm_size=env.get("BOOT_TEST_VM_SIZE") or None,
            subnet_ids=_pairs(env.get("BOOT_TEST_SUBNET_IDS") or "", "BOOT_TEST_SUBNET_IDS"),
            subnet_template=env.get("BOOT_TEST_SUBNET_TEMPLATE") or None,
            resource_group=env.get("BOOT_TEST_RESOURCE_GROUP") or None,
            timeout_seconds=timeout,
        )


def boot_test_on(spec: VerifySpec | None, defaults: BootTestDefaults) -> bool:
    """Whether the run boot-tests its version: the request's ``bootTest``, else the setting."""
    if spec is not None and spec.boot_test is not None:
        return spec.boot_test
    return defaults.default_on


# --- the activities' models -----------------------------------------------------------------------


class BootTestInput(WireModel):
    """One region's test VM: everything ``start_boot_test`` needs to create it (no credential)."""

    run_id: str
    region: str
    version_id: str
    subscription_id: str
    resource_group: str
    vm_name: str
    computer_name: str
    subnet_id: str
    vm_size: str
    os_type: Literal["Linux", "Windows"]
    os_state: Literal["Generalized", "Specialized"]
    security_type: Literal["Standard", "TrustedLaunch", "ConfidentialVM"] = "Standard"
    data_luns: list[int] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)

    @property
    def vm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.vm_name}"
        )

    @property
    def nic_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Network/networkInterfaces/{self.vm_name}-nic"
        )


class BootTestState(WireModel):
    """Where one region's boot test is (``start_boot_test`` / ``check_boot_test``)."""

    region: str
    vm_id: str
    phase: BootPhase
    operation_url: str | None = None  # the VM create's status URL (no secret in it)
    smoke_operation_url: str | None = None  # the smoke script's Run Command status URL
    code: str | None = None  # Azure's code when it failed (OSProvisioningTimedOut, ...) or ours
    message: str | None = None  # Azure's message, redacted and bounded
    exit_code: int | None = None  # the smoke script's, when Azure reported one
    detail: str | None = None  # what the test waits for, for the status

    @property
    def ended(self) -> bool:
        return self.phase in ("passed", "failed")


class BootTestCheck(WireModel):
    """``check_boot_test``'s input: the test, where it was, and the smoke script (if any)."""

    test: BootTestInput
    state: BootTestState
    smoke_script: str | None = None


class BootTestCleanup(WireModel):
    """What ``delete_boot_test`` removes and ``get_boot_test_leftovers`` looks for."""

    region: str
    vm_id: str
    nic_id: str
    run_id: str


class BootTestLeftovers(WireModel):
    region: str
    left: list[str] = Field(default_factory=list)  # ids of the run's test resources still there


class VersionLatestInput(WireModel):
    """``set_version_latest``: PATCH ``excludeFromLatest`` of a version (promotion)."""

    version_id: str
    exclude_from_latest: bool


# --- the status ---------------------------------------------------------------------------------


class BootTestProgress(WireModel):
    """One region's boot-test verdict in the capture's status."""

    region: str
    state: Literal["pending", "running", "passed", "failed", "canceled"] = "pending"
    vm_id: str | None = None
    detail: str | None = None
    code: str | None = None
    message: str | None = None
    exit_code: int | None = None
    cleaned: bool = False  # the test VM and everything made with it are gone


# --- naming and planning (pure; called by the orchestrator) -------------------------------------


def boot_vm_name(run_id: str, region: str) -> tuple[str, str]:
    """The test VM's name and computer name (<= 15 characters, for Windows) in ``region``."""
    digest = hashlib.sha256(f"{run_id}|{region}".encode()).hexdigest()[:10]
    return f"imgtest-{digest}-{region}"[:64], f"bt{digest}"


def subnet_for(region: str, subscription_id: str, spec: VerifySpec | None, d: BootTestDefaults) -> str | None:
    """The test subnet of ``region``: the request's, else BOOT_TEST_SUBNET_IDS, else the template."""
    chosen = (spec.subnet_ids if spec is not None else {}).get(region) or d.subnet_ids.get(region)
    if chosen:
        return chosen
    if d.subnet_template:
        return d.subnet_template.replace("{region}", region).replace("{subscription}", subscription_id)
    return None


def subnet_group(subnet_id: str) -> tuple[str, str]:
    """(subscription, resource group) of a subnet id."""
    m = SUBNET_ID.fullmatch(subnet_id.strip())
    if m is None:
        raise ValueError(subnet_problem(subnet_id) or subnet_id)
    return m.group("sub"), m.group("rg")


def chosen_regions(spec: VerifySpec | None, targets: list[str]) -> list[str]:
    return list(spec.regions) if spec is not None and spec.regions else list(targets)


def plan_problems(
    spec: VerifySpec | None, d: BootTestDefaults, targets: list[str], subscription_id: str
) -> list[str]:
    """Why the boot test cannot run as asked (preflight, before anything changes)."""
    problems = []
    outside = [r for r in chosen_regions(spec, targets) if r not in targets]
    if outside:
        problems.append(
            f"verify.regions {', '.join(outside)} are not target regions ({', '.join(targets)}): a test VM "
            "can only boot where the version is replicated"
        )
    for region in chosen_regions(spec, targets):
        subnet = subnet_for(region, subscription_id, spec, d)
        if subnet is None:
            problems.append(
                f"no test subnet for {region}: give verify.subnetIds.{region}, or set BOOT_TEST_SUBNET_IDS "
                "or BOOT_TEST_SUBNET_TEMPLATE"
            )
        elif subnet_problem(subnet):
            problems.append(f"the test subnet of {region} {subnet[:200]!r}: {subnet_problem(subnet)}")
    return problems
