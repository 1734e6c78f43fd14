"""Where an image comes from: the ``source`` of a capture request, one of four forms.

- ``{"vmId": …}``: a VM (the same as the older top-level ``sourceVmId``, still accepted). The only form
  with a capture mode, a guest step (``prepare``) and a snapshot consistency;
- ``{"managedImageId": …}``: a ``Microsoft.Compute/images`` resource. The definition follows the image
  (osType, osState Generalized, hyperVGeneration, data disks with their LUNs) and the version's source is the image;
- ``{"snapshots": {"os": id, "data": [{"lun", "id"}]}}``: existing ``Microsoft.Compute/snapshots``;
- ``{"vhds": {"storageAccountId", "os": {"uri"}, "data": [{"lun", "uri"}]}, "osType", "hyperVGeneration"}``:
  fixed-format VHD page blobs in one storage account. A VHD carries no OS type or generation, so the
  request must; ``osState`` (snapshots and VHDs) says what the disks hold when the definition is created.

Intake (``shared.source_intake.source_errors``, called by ``validate_request``) reports every problem at once:
more than one form, a VM-only field (``captureMode``, ``prepare``, ``consistency``) with another form, a
VHD URI outside the named account's blob endpoint of this cloud (the app sends its storage token there
to read the VHD footer: ``shared.endpoints``). A request read back from orchestration input is lenient.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from shared.ids import ResourceId, capture_instance_id, vm_name_problem
from shared.model_base import WireModel
from shared.request_rules import IntakeInt, is_intake

SourceKind = Literal["vm", "managedImage", "snapshots", "vhds"]
OsType = Literal["Linux", "Windows"]
HyperVGeneration = Literal["V1", "V2"]
OsState = Literal["Generalized", "Specialized"]

# The request fields (camelCase, as sent) that apply only to a VM source.
VM_ONLY_FIELDS = ("captureMode", "prepare", "consistency")
# The fields inside ``source`` that say which form it is, and the wire name of each kind.
FORM_FIELDS: dict[str, SourceKind] = {
    "vmId": "vm",
    "managedImageId": "managedImage",
    "snapshots": "snapshots",
    "vhds": "vhds",
}
# Fields of ``source`` that go with some forms only.
_FORM_OPTIONS: dict[str, tuple[SourceKind, ...]] = {
    "osType": ("vhds", "snapshots"),
    "hyperVGeneration": ("vhds", "snapshots"),
    "osState": ("vhds", "snapshots"),
}
VHD_NEEDS_OS = "a VHD carries no OS type or generation: send source.osType and source.hyperVGeneration"
MAX_LUN = 63


def _checked_id(value: str, namespace: str, type_: str, info: ValidationInfo) -> str:
    rid = ResourceId.parse(value)
    if rid.namespace.lower() != namespace.lower() or rid.type.lower() != type_.lower():
        raise ValueError(f"must be the id of a {namespace}/{type_} resource")
    if is_intake(info):
        problems = rid.problems()
        if problems:
            raise ValueError("; ".join(problems))
    return str(rid)


def _unique_luns(luns: list[int]) -> None:
    seen: set[int] = set()
    for lun in luns:
        if lun in seen:
            raise ValueError(f"LUN {lun} is listed twice; each data disk has its own LUN")
        seen.add(lun)


class SnapshotDisk(WireModel):
    lun: IntakeInt = Field(ge=0, le=MAX_LUN)
    id: str

    @field_validator("id")
    @classmethod
    def _id(cls, v: str, info: ValidationInfo) -> str:
        return _checked_id(v, "Microsoft.Compute", "snapshots", info)


class SnapshotSet(WireModel):
    os: str
    data: list[SnapshotDisk] = Field(default_factory=list)

    @field_validator("os")
    @classmethod
    def _os(cls, v: str, info: ValidationInfo) -> str:
        return _checked_id(v, "Microsoft.Compute", "snapshots", info)

    @field_validator("data")
    @classmethod
    def _luns(cls, v: list[SnapshotDisk]) -> list[SnapshotDisk]:
        _unique_luns([d.lun for d in v])
        return v


class VhdBlob(WireModel):
    uri: str


class VhdDataBlob(WireModel):
    lun: IntakeInt = Field(ge=0, le=MAX_LUN)
    uri: str


class VhdSet(WireModel):
    storage_account_id: str
    os: VhdBlob
    data: list[VhdDataBlob] = Field(default_factory=list)

    @field_validator("storage_account_id")
    @classmethod
    def _account(cls, v: str, info: ValidationInfo) -> str:
        out = _checked_id(v, "Microsoft.Storage", "storageAccounts", info)
        name = ResourceId.parse(out).name
        if is_intake(info) and not re.fullmatch(r"[a-z0-9]{3,24}", name):
            raise ValueError("storage account names are 3-24 lowercase letters and digits")
        return out

    @field_validator("data")
    @classmethod
    def _luns(cls, v: list[VhdDataBlob]) -> list[VhdDataBlob]:
        _unique_luns([d.lun for d in v])
        return v

    @property
    def account_name(self) -> str:
        return ResourceId.parse(self.storage_account_id).name

    def blobs(self) -> list[tuple[int | None, str]]:
        """(LUN or None for the OS disk, URI) of every blob, the OS disk first."""
        return [(None, self.os.uri)] + [(d.lun, d.uri) for d in self.data]


class ImageSource(WireModel):
    """One of the four source forms (exactly one of vmId, managedImageId, snapshots, vhds)."""

    vm_id: str | None = None
    managed_image_id: str | None = None
    snapshots: SnapshotSet | None = None
    vhds: VhdSet | None = None
    # VHDs (required) and snapshots (when the snapshot does not say): what the OS disk is.
    os_type: OsType | None = None
    hyper_v_generation: HyperVGeneration | None = None
    # VHDs and snapshots: the definition's osState when the pipeline creates it (an existing one decides).
    os_state: OsState | None = None

    @field_validator("vm_id")
    @classmethod
    def _vm(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        out = _checked_id(v, "Microsoft.Compute", "virtualMachines", info)
        name = ResourceId.parse(out).name
        problem = vm_name_problem(name) if is_intake(info) else None
        if problem:
            raise ValueError(f"VM name {name[:80]!r}: {problem}")
        return out

    @field_validator("managed_image_id")
    @classmethod
    def _image(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else _checked_id(v, "Microsoft.Compute", "images", info)

    @model_validator(mode="after")
    def _one_form(self, info: ValidationInfo) -> ImageSource:
        if is_intake(info):
            return self  # source_errors reports these, with the field of each, beside the others
        given = [f for f in FORM_FIELDS if getattr(self, _snake(f)) is not None]
        if len(given) != 1:
            raise ValueError(form_count_problem(given))
        if self.vhds is not None and (self.os_type is None or self.hyper_v_generation is None):
            raise ValueError(VHD_NEEDS_OS)
        return self

    @property
    def kind(self) -> SourceKind:
        for wire, kind in FORM_FIELDS.items():
            if getattr(self, _snake(wire)) is not None:
                return kind
        raise ValueError("the source names no form")  # _one_form makes this unreachable

    @property
    def id(self) -> str:
        """The id that names the source: the VM, the managed image, the OS snapshot, the OS VHD's URI."""
        if self.vm_id is not None:
            return self.vm_id
        if self.managed_image_id is not None:
            return self.managed_image_id
        if self.snapshots is not None:
            return self.snapshots.os
        assert self.vhds is not None
        return self.vhds.os.uri

    @property
    def subscription_id(self) -> str:
        """The subscription the source is in (the default for the gallery's)."""
        if self.vhds is not None:
            return ResourceId.parse(self.vhds.storage_account_id).subscription_id
        return ResourceId.parse(self.id).subscription_id


def _snake(wire: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), wire)


def form_count_problem(given: list[str]) -> str:
    forms = ", ".join(FORM_FIELDS)
    if not given:
        return f"name the source: exactly one of {forms}"
    return f"exactly one of {forms}: this source names {' and '.join(given)}"


def form_options() -> dict[str, tuple[SourceKind, ...]]:
    """The ``source`` fields that go with some forms only, and those forms."""
    return dict(_FORM_OPTIONS)


def source_capture_id(source: ImageSource) -> str:
    """The capture (orchestration instance) id of a source: one running capture per source.

    A VM's is ``shared.ids.capture_instance_id`` (unchanged); a managed image's and a snapshot set's are
    made the same way from the image / OS snapshot id; a VHD set's from its OS blob's name and URI.
    """
    if source.vhds is None:
        return capture_instance_id(source.id)
    uri = source.vhds.os.uri
    digest = hashlib.sha256(uri.lower().encode()).hexdigest()[:10]
    leaf = uri.rstrip("/").rsplit("/", 1)[-1]
    leaf = leaf[:-4] if leaf.lower().endswith(".vhd") else leaf
    slug = re.sub(r"[^a-z0-9-]+", "-", leaf.lower()).strip("-")[:40].strip("-") or "vhd"
    return f"capture-{slug}-{digest}"


class SourceFields(WireModel):
    """The source fields of a capture request (the base of ``shared.requests.CaptureRequest``).

    ``source`` is always set once validated (from ``sourceVmId`` when only that was sent); ``source_vm_id``
    is set for a VM source (from ``source.vmId`` when only that was sent) and None for any other.
    """

    # The older spelling of source.vmId, still accepted.
    source_vm_id: str | None = Field(
        default=None, description="The VM to capture: the older spelling of source.vmId (still accepted)."
    )
    source: ImageSource | None = Field(
        default=None,
        description="Where the image comes from: exactly one of vmId, managedImageId, snapshots, vhds. "
        "captureMode, prepare, consistency and vhdExport go with vmId only.",
    )

    @field_validator("source_vm_id")
    @classmethod
    def _vm_id(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        rid = ResourceId.parse(v)
        if rid.namespace.lower() != "microsoft.compute" or rid.type.lower() != "virtualmachines":
            raise ValueError("must be the id of a Microsoft.Compute/virtualMachines resource")
        if is_intake(info):
            problems = rid.problems()
            name = vm_name_problem(rid.name)
            if name:
                problems.append(f"VM name {rid.name[:80]!r}: {name}")
            if problems:
                raise ValueError("; ".join(problems))
        return str(rid)

    @model_validator(mode="after")
    def _one_source(self, info: ValidationInfo) -> SourceFields:
        # At intake source_errors reports a missing or doubled source, with its field.
        if self.source is None and self.source_vm_id is not None:
            self.source = ImageSource(vm_id=self.source_vm_id)
        elif self.source is not None and self.source.vm_id is not None and self.source_vm_id is None:
            self.source_vm_id = self.source.vm_id
        elif not is_intake(info) and (self.source is None or self.source.vm_id != self.source_vm_id):
            raise ValueError("give the source once: source (one form) or sourceVmId")
        return self

    @property
    def image_source(self) -> ImageSource:
        if self.source is None:
            raise ValueError("the request names no source")  # _one_source makes this unreachable
        return self.source

    @property
    def source_kind(self) -> SourceKind:
        return self.image_source.kind

    @property
    def source_id(self) -> str:
        """The id naming the source (VM, managed image, OS snapshot, OS VHD URI)."""
        return self.image_source.id

    @property
    def vm_id(self) -> str:
        """The source VM's id; ValueError for any other source (VM-only code paths)."""
        if self.source_vm_id is None:
            raise ValueError(f"the source is {self.source_kind}, not a VM")
        return self.source_vm_id

    @property
    def vm(self) -> ResourceId:
        return ResourceId.parse(self.vm_id)

    @property
    def capture_id(self) -> str:
        """The capture (orchestration instance) id of this request's source."""
        return source_capture_id(self.image_source)


# --- what the activities of a source say (activities.sources) -----------------------------------


class SourceDisk(WireModel):
    """One disk of a source: the OS disk (``lun`` None) or a data disk."""

    key: str  # "os" or "lun<N>" (shared.ids.disk_key)
    lun: int | None = None
    name: str  # the image's, snapshot's or blob's name, for messages
    id: str  # the managed image id, the snapshot id, or the blob URI (never with a query)
    size_gb: int = 0  # whole GiB, rounded up
    size_bytes: int | None = None  # VHDs: the blob's length, footer included


class SourceFacts(WireModel):
    """What ``read_source`` found: the source's traits (for the definition) and every problem with it."""

    kind: SourceKind
    id: str
    name: str
    exists: bool = True
    location: str | None = None  # None: not known (a VHD's storage account region is not read)
    os_type: OsType | None = None
    hyper_v_generation: HyperVGeneration | None = None
    os_state: OsState | None = None  # managed images: Generalized; snapshots and VHDs: the request's
    disks: list[SourceDisk] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)  # each an actionable sentence naming the resource


class VersionSource(WireModel):
    """What an image version is made of when it is not snapshots (``VersionInput.source``)."""

    managed_image_id: str | None = None
    storage_account_id: str | None = None  # VHD blobs: their account (with ``vhds``)
    vhds: list[SourceDisk] = Field(default_factory=list)  # the OS blob (lun None) and the data blobs


def source_subscription(raw: object) -> str | None:
    """The subscription of a stored request's ``source`` (as JSON), or None if it names none."""
    try:
        return ImageSource.from_wire(raw).subscription_id
    except ValueError:
        return None
