"""Which Azure actions a capture plan needs at which scope, and ARM's rules for matching them.

The list of every action the app performs is ``shared/app-actions.json`` (the Bicep builds the app's
custom roles from the same file): ``features`` say, per capture mode and per feature, which actions and
data actions each scope kind needs; ``roles`` are the custom roles, each assigned at one scope kind.
``requirements`` turns a plan (its features) and the plan's scopes into the input of the
``check_permissions`` activity; ``missing`` applies ARM's matching to what
``{scope}/providers/Microsoft.Authorization/permissions`` returned. Pure: no Azure SDK, no clock.

ARM's matching (Microsoft Learn, "Understand Azure role definitions"): names compare case-insensitively,
``*`` matches any run of characters, a role's ``notActions`` remove actions from that role's ``actions``
only (another role may still grant them), and data actions are matched against ``dataActions`` /
``notDataActions`` only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from shared.errors import ErrorInfo
from shared.model_base import WireModel

if TYPE_CHECKING:
    from shared.requests import CaptureRequest

ACTIONS_FILE = Path(__file__).resolve().parent / "app-actions.json"

# Scope kinds of app-actions.json this module places (the clone's build group comes with clone mode).
SOURCE_GROUPS, GALLERIES, EXPORT_ACCOUNTS = "sourceGroups", "galleries", "exportAccounts"
BUILD_GROUP = (
    "buildGroup"  # captureMode "clone" builds its copy here; the boot tests' VMs and NICs go here too
)

# A built-in role that grants the action too, for operators who prefer built-in roles (first prefix that
# matches). Each suggestion grants every action of the app under its prefix (a test checks the built-in
# roles' published action lists).
_BUILTIN_SUGGESTIONS = (
    ("Microsoft.Compute/virtualMachines/", "Virtual Machine Contributor"),
    ("Microsoft.Compute/disks/", "Virtual Machine Contributor"),
    ("Microsoft.Compute/snapshots/", "Disk Snapshot Contributor"),
    ("Microsoft.Compute/galleries/", "Compute Gallery Artifacts Publisher"),
    ("Microsoft.Storage/storageAccounts/blobServices/", "Storage Blob Data Contributor"),
    ("Microsoft.Authorization/roleAssignments/", "Role Based Access Control Administrator"),
    ("Microsoft.Compute/images/read", "Reader"),  # Reader on the managed image, as the migration guide says
    ("Microsoft.Compute/images/", "Contributor"),  # a migration deleting its source images
    (
        "Microsoft.Storage/storageAccounts/listKeys/",
        "Storage Account Contributor",
    ),  # the VHD-source docs' role
)
# VM actions are authorised on the VM itself: checking them there also sees a role assigned on the VM.
_ON_THE_VM = "microsoft.compute/virtualmachines/"


class RequiredAction(WireModel):
    action: str
    data_action: bool = False
    role: str | None = None  # the app's custom role (app-actions.json) that grants it
    builtin_role: str | None = None  # a built-in role that grants it too

    def grant_text(self) -> str:
        """``action (role "X", or built-in "Y")``, as an error message names it."""
        kind = "data action " if self.data_action else ""
        roles = [f'role "{self.role}"'] if self.role else []
        roles += [f'built-in "{self.builtin_role}"'] if self.builtin_role else []
        return f"{kind}{self.action}" + (f" ({', or '.join(roles)})" if roles else "")


class ScopeRequirement(WireModel):
    scope: str  # an ARM resource id: subscription, resource group or resource
    kind: str  # the scope kind of app-actions.json ("sourceGroups", "galleries", ...)
    required: list[RequiredAction]


class CapturePlanNeeds(WireModel):
    """What decides a capture's permissions, as the orchestrator knows it after reading the VM and gallery.

    The activity turns it into scope requirements (it reads app-actions.json; an orchestrator may not)."""

    source_vm_id: str
    gallery_group_id: str  # /subscriptions/{s}/resourceGroups/{g} of the gallery
    capture_mode: str = "inPlace"
    export: bool = False
    prepare_running_vm: bool = False
    stopped_consistency: bool = False  # a specialized capture of a running VM, deallocated and started again
    create_if_missing: bool = False
    export_account_id: str | None = None
    retention: bool = False  # retention.keepLatest: list and delete old versions
    share: bool = False  # share.principals: role assignments on the gallery
    marketplace: str | None = None  # marketplace.route ("gallery" | "vhd"): feature marketplace.<route>
    build_group_id: str | None = None  # captureMode "clone": /subscriptions/{s}/resourceGroups/{g}
    boot_test_group_id: str | None = None  # the test VMs' resource group, when verify.bootTest is on
    # "vm", or a source of shared.sources: then source_vm_id is the source's scope (the managed image, the
    # OS snapshot, the VHDs' storage account) and only the source's and the gallery's actions are needed.
    source_kind: str = "vm"


class PermissionsCheckInput(WireModel):
    scopes: list[ScopeRequirement] = Field(default_factory=list)
    plan: CapturePlanNeeds | None = None  # its requirements are added to ``scopes``


class MissingAtScope(WireModel):
    scope: str
    kind: str
    missing: list[RequiredAction]


class PermissionsCheckResult(WireModel):
    # Only the scopes where something is missing, in the input's order; empty: the identity has it all.
    missing: list[MissingAtScope] = Field(default_factory=list)


# --- what a plan needs ------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        # The deployed package must carry the file (.funcignore decides what is deployed).
        raise RuntimeError(
            f"the list of the app's Azure actions is missing: {path} ({exc.strerror})"
        ) from None


def load_app_actions(path: Path | None = None) -> dict[str, Any]:
    """The parsed ``shared/app-actions.json`` (read once per process)."""
    return _load(path or ACTIONS_FILE)


def capture_features(
    mode: str = "inPlace",
    *,
    export: bool = False,
    prepare_running_vm: bool = False,
    stopped_consistency: bool = False,
    create_if_missing: bool = False,
    retention: bool = False,
    share: bool = False,
    marketplace: str | None = None,
    boot_test: bool = False,
) -> tuple[str, ...]:
    """The features of app-actions.json a capture request uses.

    ``cancel`` is always in: compensation after a failure deletes the half-made version as a cancel does.
    """
    features = [f"capture.{mode}"]
    if prepare_running_vm:
        features.append("prepareRunningVm")
    if stopped_consistency:
        features.append("stoppedConsistency")
    if create_if_missing:
        features.append("createIfMissing")
    if mode == "clone":  # its compensation may delete the copies and the NIC on their own
        features.append("cloneCleanup")
    if export:
        features.append("export")
        if mode == "clone":  # the exported snapshots are the clone's, in the build group
            features.append("cloneExport")
    features += ["bootTest"] if boot_test else []
    features += ["retention"] if retention else []
    features += ["share"] if share else []
    features += [f"marketplace.{marketplace}"] if marketplace else []
    features.append("cancel")
    return tuple(features)


JANITOR_FEATURES = ("janitor",)


def group_of(resource_id: str) -> str:
    """``/subscriptions/{s}/resourceGroups/{g}`` of a resource id (the id itself if it is a group)."""
    parts = resource_id.strip("/").split("/")
    if len(parts) < 4 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        raise ValueError(f"not a resource id inside a resource group: {resource_id!r}")
    return "/" + "/".join(parts[:4])


def capture_scopes(
    source_vm_id: str, gallery_group_id: str, export_account_id: str | None = None
) -> dict[str, str]:
    """Where a capture's scope kinds are, for ``requirements``.

    ``sourceVm`` refines ``sourceGroups`` for VM actions. The export account is the storage account's ARM
    id; without it the export's actions are not checked here (preflight's export probe still is).
    """
    scopes = {"sourceVm": source_vm_id, SOURCE_GROUPS: group_of(source_vm_id), GALLERIES: gallery_group_id}
    if export_account_id:
        scopes[EXPORT_ACCOUNTS] = export_account_id
    return scopes


def capture_requirements(
    request: CaptureRequest, *, vm_running: bool, creates: bool, export_account_id: str | None = None
) -> list[ScopeRequirement]:
    """What a capture request needs where: ``vm_running`` (the guest is prepared and the VM deallocated),
    ``creates`` (the gallery or the definition does not exist yet and is to be created)."""
    vm_sub = group_of(request.vm_id).split("/")[2]
    gallery_sub = request.gallery.subscription_id or vm_sub
    return plan_requirements(
        CapturePlanNeeds(
            source_vm_id=request.vm_id,
            gallery_group_id=f"/subscriptions/{gallery_sub}/resourceGroups/{request.gallery.resource_group}",
            capture_mode=request.capture_mode,
            export=request.vhd_export is not None,
            prepare_running_vm=vm_running,
            create_if_missing=creates,
            export_account_id=export_account_id,
            retention=request.retention is not None and request.retention.keep_latest is not None,
            share=request.share is not None,
            marketplace=request.marketplace.route if request.marketplace else None,
        )
    )


def plan_requirements(plan: CapturePlanNeeds) -> list[ScopeRequirement]:
    """The scope requirements of a capture plan (what ``capture_requirements`` says for a request)."""
    if plan.source_kind != "vm":
        return requirements(
            source_features(plan.source_kind, create_if_missing=plan.create_if_missing),
            source_scopes(plan.source_kind, plan.source_vm_id, plan.gallery_group_id),
        )
    features = capture_features(
        plan.capture_mode,
        export=plan.export,
        prepare_running_vm=plan.prepare_running_vm,
        stopped_consistency=plan.stopped_consistency,
        create_if_missing=plan.create_if_missing,
        boot_test=plan.boot_test_group_id is not None,
        retention=plan.retention,
        share=plan.share,
        marketplace=plan.marketplace,
    )
    scopes = capture_scopes(plan.source_vm_id, plan.gallery_group_id, plan.export_account_id)
    # One build-group scope: the clone's group, else the boot tests' (by default the same group).
    build_group = plan.build_group_id or plan.boot_test_group_id
    if build_group:
        scopes[BUILD_GROUP] = build_group
    return requirements(features, scopes)


def roles_granting(
    action: str,
    kind: str,
    *,
    data_action: bool = False,
    doc: Mapping[str, Any],
    wanted: Iterable[str] = (),
) -> tuple[str | None, str | None]:
    """The app's custom role of scope ``kind`` that lists ``action``, and a built-in role that grants it.

    Several roles may share a scope kind (the build group: the clone's and the boot tests'): the one
    named is the smallest that holds all of ``wanted`` (the feature's actions there), else the first.
    """
    key = "dataActions" if data_action else "actions"
    held = [
        (str(r["name"]), {a.lower() for a in r.get(key, [])})
        for r in doc.get("roles", [])
        if r.get("scope") == kind
    ]
    listing = [(name, acts) for name, acts in held if action.lower() in acts]
    whole = [(len(acts), name) for name, acts in listing if {w.lower() for w in wanted} <= acts]
    custom = min(whole)[1] if whole else (listing[0][0] if listing else None)
    builtin = next(
        (b for prefix, b in _BUILTIN_SUGGESTIONS if action.lower().startswith(prefix.lower())), None
    )
    return custom, builtin


def requirements(
    features: Iterable[str], scopes: Mapping[str, str], doc: Mapping[str, Any] | None = None
) -> list[ScopeRequirement]:
    """The actions ``features`` need, per scope (a scope kind without a scope in ``scopes`` is skipped)."""
    doc = load_app_actions() if doc is None else doc
    catalog, features = doc["features"], tuple(features)
    unknown = [f for f in features if f not in catalog]
    if unknown:
        raise ValueError(f"features not in app-actions.json: {unknown}")
    wanted: dict[tuple[str, str], dict[tuple[str, bool], RequiredAction]] = {}
    for feature in features:
        for data_action, key in ((False, "actions"), (True, "dataActions")):
            for kind, actions in catalog[feature].get(key, {}).items():
                if kind not in scopes:
                    continue
                for action in actions:
                    scope = _scope_for(action, kind, scopes, data_action=data_action)
                    found = wanted.setdefault((scope, kind), {})
                    role, builtin = roles_granting(
                        action, kind, data_action=data_action, doc=doc, wanted=actions
                    )
                    found.setdefault(
                        (action.lower(), data_action),
                        RequiredAction(
                            action=action, data_action=data_action, role=role, builtin_role=builtin
                        ),
                    )
    return [
        ScopeRequirement(scope=scope, kind=kind, required=list(found.values()))
        for (scope, kind), found in wanted.items()
    ]


def _scope_for(action: str, kind: str, scopes: Mapping[str, str], *, data_action: bool) -> str:
    if (
        kind == SOURCE_GROUPS
        and not data_action
        and action.lower().startswith(_ON_THE_VM)
        and "sourceVm" in scopes
    ):
        return scopes["sourceVm"]
    return scopes[kind]


# --- ARM's matching ---------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in text.split("*")) + "$", re.IGNORECASE)


def matches(pattern: str, action: str) -> bool:
    """ARM's action pattern: case-insensitive, ``*`` matches any run of characters (``/`` included)."""
    return _pattern(pattern).match(action) is not None


def granted(entries: Sequence[Mapping[str, Any]], action: str, *, data_action: bool = False) -> bool:
    """Does one permission entry (one role assignment) grant ``action``, its own not-list aside?"""
    allow, deny = ("dataActions", "notDataActions") if data_action else ("actions", "notActions")
    return any(
        any(matches(p, action) for p in entry.get(allow) or [])
        and not any(matches(p, action) for p in entry.get(deny) or [])
        for entry in entries
    )


def missing(requirement: ScopeRequirement, entries: Sequence[Mapping[str, Any]]) -> MissingAtScope | None:
    """What of ``requirement`` the permission entries at its scope do not grant (None: nothing)."""
    lacking = [r for r in requirement.required if not granted(entries, r.action, data_action=r.data_action)]
    if not lacking:
        return None
    return MissingAtScope(scope=requirement.scope, kind=requirement.kind, missing=lacking)


# --- the advice ---------------------------------------------------------------------------------


def missing_permissions_error(missing: Sequence[MissingAtScope], *, resource: str | None = None) -> ErrorInfo:
    """The identity lacks actions the plan needs: one error naming every one, its scope and its role.

    A named constructor of the error catalog (``shared.errors.ErrorInfo``), kept here beside the types
    it reads.
    """
    parts = "; ".join(f"on {m.scope}: " + ", ".join(a.grant_text() for a in m.missing) for m in missing)
    count = sum(len(m.missing) for m in missing)
    return ErrorInfo.terminal(
        "preflight",
        "MissingPermissions",
        f"The Function App's identity lacks {count} permission(s) this run needs: {parts}",
        resource=resource,
        advice="Nothing was changed. Assign the named roles to the Function App's identity at those scopes "
        "(shared/app-actions.json lists every action per feature), allow a few minutes for the assignment "
        "to take effect, and send the request again.",
    )


# --- sources that are not VMs (shared.sources) ------------------------------------------------------

VHD_SOURCE_ACCOUNTS = "vhdSourceAccounts"


def source_features(kind: str, *, create_if_missing: bool = False) -> tuple[str, ...]:
    """The features of app-actions.json a capture from a managed image, snapshots or VHDs uses."""
    return (f"source.{kind}", *(("createIfMissing",) if create_if_missing else ()), "cancel")


def source_scopes(kind: str, scope_id: str, gallery_group_id: str) -> dict[str, str]:
    """Where the source's scope kinds are: the VHDs' storage account, or the group of the image or
    snapshot (``scope_id``)."""
    if kind == "vhds":
        return {VHD_SOURCE_ACCOUNTS: scope_id, GALLERIES: gallery_group_id}
    return {SOURCE_GROUPS: group_of(scope_id), GALLERIES: gallery_group_id}
