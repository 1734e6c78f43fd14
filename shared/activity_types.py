"""Every activity of the capture declared once: its Durable name, its input type and its result type.

``activities`` registers its functions through these declarations (``activities._common.implements``),
and orchestrators call them through the same ones (``orchestrators.calls.Calls``), so a name or a
contract can only change in one place. Nothing here runs an activity or touches Azure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.clones import (
    CloneDiskInput,
    CloneDiskResult,
    CloneLeft,
    CloneNicInput,
    CloneNicResult,
    CloneRef,
    CloneTarget,
    CloneTargetInput,
    CloneVmInput,
    CloneVmState,
)
from shared.contracts import (
    BlobRef,
    CopyStatus,
    DefinitionInput,
    DefinitionResult,
    Done,
    ExportCheckInput,
    ExportCheckResult,
    ExportStartInput,
    GalleryCheckInput,
    GalleryCheckResult,
    GuestPrepareInput,
    GuestPrepareResult,
    PowerState,
    RegionsInput,
    RegionsResult,
    SnapshotInput,
    SnapshotRef,
    SnapshotResult,
    VersionInput,
    VersionRef,
    VersionStatus,
    VmFacts,
    VmRef,
)
from shared.marketplace_spec import (
    MarketplaceCheckInput,
    MarketplaceCheckResult,
    VhdRulesInput,
    VhdRulesResult,
)
from shared.migration_status import ImageScope, ManagedImageDeletion, ManagedImageList, ManagedImageRef
from shared.model_base import WireModel
from shared.notices import NoticeInput, NoticeResult
from shared.permissions import PermissionsCheckInput, PermissionsCheckResult
from shared.release_spec import (
    DefinitionVersions,
    DefinitionVersionsInput,
    RoleAssignmentInput,
    RoleAssignmentResult,
)
from shared.sources import ImageSource, SourceFacts
from shared.trace_ids import RunTrace, TraceWritten
from shared.verify_spec import (
    BootTestCheck,
    BootTestCleanup,
    BootTestInput,
    BootTestLeftovers,
    BootTestState,
    VersionLatestInput,
)

In = TypeVar("In", bound=WireModel)
Out = TypeVar("Out", bound=WireModel)


@dataclass(frozen=True)
class Activity(Generic[In, Out]):
    """One activity: called as ``name`` with ``input.to_wire()``, answering ``result.to_wire()``."""

    name: str
    input: type[In]
    result: type[Out]

    def bind(self, inp: In) -> Call[In, Out]:
        """This activity with its input, ready to run alone or beside others (``Calls.gather``)."""
        return Call(self, inp)

    def decode(self, raw: Any) -> Out:
        return self.result.from_wire(raw)


@dataclass(frozen=True, eq=False)
class Call(Generic[In, Out]):
    """An activity and the input it is called with (compared by identity: each call is its own)."""

    activity: Activity[In, Out]
    inp: In

    @property
    def name(self) -> str:
        return self.activity.name

    def payload(self) -> dict[str, Any]:
        return self.inp.to_wire()


# The source VM.
GET_VM_FACTS = Activity("get_vm_facts", VmRef, VmFacts)
GET_POWER_STATE = Activity("get_power_state", VmRef, PowerState)
START_DEALLOCATE = Activity("start_deallocate", VmRef, PowerState)
START_VM = Activity("start_vm", VmRef, PowerState)
GENERALIZE_VM = Activity("generalize_vm", VmRef, PowerState)
START_GUEST_PREPARE = Activity("start_guest_prepare", GuestPrepareInput, GuestPrepareResult)
# Preflight (read-only).
CHECK_GALLERY = Activity("check_gallery", GalleryCheckInput, GalleryCheckResult)
CHECK_EXPORT_TARGET = Activity("check_export_target", ExportCheckInput, ExportCheckResult)
LIST_REGIONS = Activity("list_regions", RegionsInput, RegionsResult)
CHECK_PERMISSIONS = Activity("check_permissions", PermissionsCheckInput, PermissionsCheckResult)
# A source that is not a VM: a managed image, snapshots or VHD blobs (activities.sources; read-only).
READ_SOURCE = Activity("read_source", ImageSource, SourceFacts)
# Snapshots.
START_SNAPSHOT = Activity("start_snapshot", SnapshotInput, SnapshotResult)
GET_SNAPSHOT = Activity("get_snapshot", SnapshotRef, SnapshotResult)
REVOKE_SNAPSHOT_ACCESS = Activity("revoke_snapshot_access", SnapshotRef, Done)
DELETE_SNAPSHOT = Activity("delete_snapshot", SnapshotRef, Done)
GET_SNAPSHOT_DELETION = Activity("get_snapshot_deletion", SnapshotRef, Done)
# The gallery.
ENSURE_DEFINITION = Activity("ensure_definition", DefinitionInput, DefinitionResult)
START_IMAGE_VERSION = Activity("start_image_version", VersionInput, VersionStatus)
GET_VERSION_STATUS = Activity("get_version_status", VersionRef, VersionStatus)
DELETE_IMAGE_VERSION = Activity("delete_image_version", VersionRef, Done)
# VHD export.
START_EXPORT = Activity("start_export", ExportStartInput, CopyStatus)
GET_COPY_STATUS = Activity("get_copy_status", BlobRef, CopyStatus)
ABORT_COPY = Activity("abort_copy", BlobRef, CopyStatus)
# Release: retention (activities.retention) and role assignments (activities.sharing).
LIST_DEFINITION_VERSIONS = Activity("list_definition_versions", DefinitionVersionsInput, DefinitionVersions)
ASSIGN_ROLE = Activity("assign_role", RoleAssignmentInput, RoleAssignmentResult)
# The Marketplace hand-off (activities.marketplace): the gallery subscription's tenant, the VHD rules.
CHECK_MARKETPLACE = Activity("check_marketplace", MarketplaceCheckInput, MarketplaceCheckResult)
CHECK_MARKETPLACE_VHDS = Activity("check_marketplace_vhds", VhdRulesInput, VhdRulesResult)
# The clone of captureMode "clone" (activities.clones).
CHECK_CLONE_TARGET = Activity("check_clone_target", CloneTargetInput, CloneTarget)
ENSURE_CLONE_DISK = Activity("ensure_clone_disk", CloneDiskInput, CloneDiskResult)
ENSURE_CLONE_NIC = Activity("ensure_clone_nic", CloneNicInput, CloneNicResult)
CREATE_CLONE_VM = Activity("create_clone_vm", CloneVmInput, CloneVmState)
GET_CLONE_VM = Activity("get_clone_vm", VmRef, CloneVmState)
DELETE_CLONE = Activity("delete_clone", CloneRef, CloneLeft)
# The boot test per region and the promotion (activities.boot_tests).
START_BOOT_TEST = Activity("start_boot_test", BootTestInput, BootTestState)
CHECK_BOOT_TEST = Activity("check_boot_test", BootTestCheck, BootTestState)
DELETE_BOOT_TEST = Activity("delete_boot_test", BootTestCleanup, BootTestLeftovers)
GET_BOOT_TEST_LEFTOVERS = Activity("get_boot_test_leftovers", BootTestCleanup, BootTestLeftovers)
SET_VERSION_LATEST = Activity("set_version_latest", VersionLatestInput, Done)
# The run's root and stage spans, written once it ended (shared.telemetry; not an Azure call).
RECORD_TRACE = Activity("record_trace", RunTrace, TraceWritten)
# The completion notice (activities.notices, its own blueprint).
PUBLISH_NOTICE = Activity("publish_notice", NoticeInput, NoticeResult)

# Migration of managed images (activities.migrations).
LIST_MANAGED_IMAGES = Activity("list_managed_images", ImageScope, ManagedImageList)
DELETE_MANAGED_IMAGE = Activity("delete_managed_image", ManagedImageRef, ManagedImageDeletion)

# What ``activities.bp`` registers (publish_notice is on ``activities.notices.bp``).
AZURE_ACTIVITIES: tuple[Activity[Any, Any], ...] = (
    GET_VM_FACTS,
    GET_POWER_STATE,
    START_DEALLOCATE,
    START_VM,
    GENERALIZE_VM,
    START_GUEST_PREPARE,
    CHECK_GALLERY,
    CHECK_EXPORT_TARGET,
    LIST_REGIONS,
    CHECK_PERMISSIONS,
    READ_SOURCE,
    START_SNAPSHOT,
    GET_SNAPSHOT,
    REVOKE_SNAPSHOT_ACCESS,
    DELETE_SNAPSHOT,
    GET_SNAPSHOT_DELETION,
    ENSURE_DEFINITION,
    START_IMAGE_VERSION,
    GET_VERSION_STATUS,
    DELETE_IMAGE_VERSION,
    START_EXPORT,
    GET_COPY_STATUS,
    ABORT_COPY,
    START_BOOT_TEST,
    CHECK_BOOT_TEST,
    DELETE_BOOT_TEST,
    GET_BOOT_TEST_LEFTOVERS,
    SET_VERSION_LATEST,
    RECORD_TRACE,
    LIST_DEFINITION_VERSIONS,
    ASSIGN_ROLE,
    CHECK_MARKETPLACE,
    CHECK_MARKETPLACE_VHDS,
    CHECK_CLONE_TARGET,
    ENSURE_CLONE_DISK,
    ENSURE_CLONE_NIC,
    CREATE_CLONE_VM,
    GET_CLONE_VM,
    DELETE_CLONE,
    LIST_MANAGED_IMAGES,
    DELETE_MANAGED_IMAGE,
)
