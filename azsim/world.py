"""The world file: the Azure estate azsim starts from (tenant, subscriptions, VMs, storage, identities, RBAC).

``load_world(path)`` parses and validates a JSON world file and raises ``WorldError`` with a
message that names the file, the JSON path of the offending field and what was expected.
Field names in the file are camelCase (as in ARM); the Python attributes are snake_case.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from azsim.roles import BUILTIN_ROLES, RoleDefinition

# Azure resource names: VMs/disks/snapshots allow letters, digits, '_', '-', '.'; 1..80 chars.
_RESOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"
_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# Storage account names: 3..24 lowercase letters and digits.
_STORAGE_NAME = r"^[a-z0-9]{3,24}$"

DiskSku = Literal[
    "Standard_LRS",
    "Premium_LRS",
    "StandardSSD_LRS",
    "UltraSSD_LRS",
    "Premium_ZRS",
    "StandardSSD_ZRS",
    "PremiumV2_LRS",
]


class WorldError(ValueError):
    """The world file is missing, not JSON, or does not describe a consistent Azure estate."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Subscription(_Model):
    id: Annotated[str, Field(pattern=_GUID)]
    name: str = "azsim"
    # The subscription's directory (GET /subscriptions/{id} answers it); default: the world's tenantId.
    tenant_id: Annotated[str, Field(pattern=_GUID)] | None = None


class ResourceGroup(_Model):
    name: Annotated[str, Field(pattern=r"^[-\w._()]{1,90}$")]
    location: str
    # Defaults to the first subscription of the world.
    subscription: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class OsDisk(_Model):
    name: Annotated[str, Field(pattern=_RESOURCE_NAME)]
    size_gi_b: Annotated[int, Field(alias="sizeGiB", ge=1, le=32767)] = 30
    sku: DiskSku = "Premium_LRS"
    # Real bytes behind the disk (a fixed VHD of this many MiB + footer); kept small on purpose.
    content_mi_b: Annotated[int, Field(alias="contentMiB", ge=1, le=1024)] = 2
    # Test worlds only: the disk's bytes as Azure never exports a managed disk ("misaligned": not a whole
    # MiB of data; "dynamic": a dynamic-VHD footer), for the Marketplace VHD rule checks.
    vhd_format: Literal["fixed", "misaligned", "dynamic"] = Field(default="fixed", alias="vhdFormat")


class DataDisk(OsDisk):
    lun: Annotated[int, Field(ge=0, le=63)]
    size_gi_b: Annotated[int, Field(alias="sizeGiB", ge=1, le=32767)] = 64


class VirtualMachine(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    resource_group: str
    location: str
    os_type: Literal["Linux", "Windows"]
    hyper_v_generation: Literal["V1", "V2"] = "V2"
    security_type: Literal["Standard", "TrustedLaunch", "ConfidentialVM"] = "Standard"
    architecture: Literal["x64", "Arm64"] = "x64"
    vm_size: str = "Standard_D2s_v5"
    power_state: Literal["running", "stopped", "deallocated"] = "running"
    # The guest was already deprovisioned (waagent) / sysprepped, but the platform was not told (generalize).
    guest_deprovisioned: bool = False
    # The platform marked the VM generalized (POST generalize was called); it can no longer start.
    generalized: bool = False
    # The guest's own preparation is broken: sysprep/deprovision completes, but a VM created from an image
    # of it fails OS provisioning (OSProvisioningClientError).
    guest_prepare_fails: bool = False
    os_disk: OsDisk
    data_disks: list[DataDisk] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    os_name: str | None = None
    os_version: str | None = None


class SubnetSpec(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")]
    address_prefix: str


class VirtualNetworkSpec(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$")]
    resource_group: str
    location: str
    address_prefixes: Annotated[list[str], Field(min_length=1)]
    subnets: list[SubnetSpec] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class VhdBlobSpec(_Model):
    """A VHD page blob azsim writes into a world storage account at start (an exported disk, say).

    ``format``: ``fixed`` is what Azure accepts (N MiB of data + a fixed ``conectix`` footer);
    ``dynamic`` has a footer of disk type dynamic; ``misaligned`` holds 4 KiB more than whole MiB.
    """

    container: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")]
    name: Annotated[str, Field(min_length=1, max_length=1024)]
    content_mi_b: Annotated[int, Field(alias="contentMiB", ge=1, le=1024)] = 2
    format: Literal["fixed", "dynamic", "misaligned"] = "fixed"
    blob_type: Literal["PageBlob", "BlockBlob"] = "PageBlob"


class StorageAccount(_Model):
    name: Annotated[str, Field(pattern=_STORAGE_NAME)]
    resource_group: str
    location: str
    blobs: list[VhdBlobSpec] = Field(default_factory=list)
    # The Azurite account that holds this account's blobs, and its shared key (base64).
    azurite_account: Annotated[str, Field(pattern=_STORAGE_NAME)] | None = None
    azurite_key: str | None = None

    @property
    def account_name(self) -> str:
        """The Azurite account name (defaults to the ARM name)."""
        return self.azurite_account or self.name


class ManagedImageDataDiskSpec(_Model):
    lun: Annotated[int, Field(ge=0, le=63)]
    size_gi_b: Annotated[int, Field(alias="sizeGiB", ge=1, le=32767)] = 64


class ManagedImageSpec(_Model):
    """A ``Microsoft.Compute/images`` resource (a legacy managed image; always generalized)."""

    name: Annotated[str, Field(pattern=_RESOURCE_NAME)]
    resource_group: str
    location: str
    os_type: Literal["Linux", "Windows"]
    hyper_v_generation: Literal["V1", "V2"] = "V1"
    os_disk_size_gi_b: Annotated[int, Field(alias="osDiskSizeGiB", ge=1, le=32767)] = 30
    data_disks: list[ManagedImageDataDiskSpec] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class GalleryImageVersionSpec(_Model):
    name: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    target_regions: list[str] = Field(default_factory=list)
    os_disk_size_gi_b: Annotated[int, Field(alias="osDiskSizeGiB", ge=1)] = 30
    data_disk_luns: list[int] = Field(default_factory=list)
    exclude_from_latest: bool = False
    # How the source guest was left: "" (never prepared), "deprovisioned" or "sysprepped"; by default a
    # prepared guest for a Generalized definition and an unprepared one for a Specialized definition.
    guest_state: Literal["", "deprovisioned", "sysprepped"] | None = None
    guest_prepare_fails: bool = False


class GalleryImageSpec(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,78}[A-Za-z0-9])?$")]
    os_type: Literal["Linux", "Windows"]
    os_state: Literal["Generalized", "Specialized"] = "Generalized"
    hyper_v_generation: Literal["V1", "V2"] = "V2"
    architecture: Literal["x64", "Arm64"] = "x64"
    security_type: str | None = None
    publisher: str = "azsim"
    offer: str = "images"
    sku: str | None = None
    versions: list[GalleryImageVersionSpec] = Field(default_factory=list)


class GallerySpec(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9._]{0,78}[A-Za-z0-9])?$")]
    resource_group: str
    location: str
    description: str = ""
    images: list[GalleryImageSpec] = Field(default_factory=list)


class PrincipalSpec(_Model):
    object_id: Annotated[str, Field(pattern=_GUID)]
    display_name: str
    client_id: Annotated[str, Field(pattern=_GUID)]
    kind: Literal["managedIdentity", "servicePrincipal", "user", "group"] = "managedIdentity"
    # The identity the managed-identity endpoint serves when no client_id is asked for.
    default: bool = False
    # Directory replication delay: a role assignment PUT for this principal gets PrincipalNotFound until this
    # many (simulated) seconds after azsim started or was reset.
    visible_after_seconds: Annotated[float, Field(ge=0)] = 0.0


class RoleAssignmentSpec(_Model):
    # objectId, clientId or displayName of a principal.
    principal: str
    role_definition_name: str | None = None
    role_definition_id: str | None = None
    scope: str

    @field_validator("scope")
    @classmethod
    def _scope_shape(cls, value: str) -> str:
        if not re.match(
            r"^/subscriptions/[^/]+(/resourceGroups/[^/]+(/providers/.+)?)?$", value, re.IGNORECASE
        ):
            raise ValueError(
                "expected an ARM scope: /subscriptions/{id}[/resourceGroups/{rg}[/providers/{type}/{name}]]"
            )
        return value


class CustomRoleSpec(_Model):
    name: str
    id: Annotated[str, Field(pattern=_GUID)] | None = None
    description: str = ""
    actions: list[str] = Field(default_factory=list)
    not_actions: list[str] = Field(default_factory=list)
    data_actions: list[str] = Field(default_factory=list)
    not_data_actions: list[str] = Field(default_factory=list)


class _AzureModel(BaseModel):
    """Azure's own JSON (as ``az role definition list`` prints it): read-only fields are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class Permission(_AzureModel):
    actions: list[str] = Field(default_factory=list)
    not_actions: list[str] = Field(default_factory=list)
    data_actions: list[str] = Field(default_factory=list)
    not_data_actions: list[str] = Field(default_factory=list)


class RoleDefinitionProperties(_AzureModel):
    role_name: str
    description: str = ""
    permissions: Annotated[list[Permission], Field(min_length=1)]
    assignable_scopes: list[str] = Field(default_factory=list)


class AzureRoleDefinition(_AzureModel):
    """A custom role in Azure's roleDefinition shape: ``{"name": <guid>, "properties": {"roleName", ...}}``."""

    name: Annotated[str, Field(pattern=_GUID)] | None = None
    properties: RoleDefinitionProperties

    def to_custom(self) -> CustomRoleSpec:
        perms = self.properties.permissions
        return CustomRoleSpec(
            name=self.properties.role_name,
            id=self.name,
            description=self.properties.description,
            actions=[a for p in perms for a in p.actions],
            not_actions=[a for p in perms for a in p.not_actions],
            data_actions=[a for p in perms for a in p.data_actions],
            not_data_actions=[a for p in perms for a in p.not_data_actions],
        )


class World(_Model):
    """A validated world. Everything azsim serves at start (and after ``/_sim/reset``) comes from here."""

    tenant_id: Annotated[str, Field(pattern=_GUID)]
    subscriptions: Annotated[list[Subscription], Field(min_length=1)]
    regions: Annotated[list[str], Field(min_length=1)]
    resource_groups: list[ResourceGroup] = Field(default_factory=list)
    virtual_machines: list[VirtualMachine] = Field(default_factory=list)
    storage_accounts: list[StorageAccount] = Field(default_factory=list)
    virtual_networks: list[VirtualNetworkSpec] = Field(default_factory=list)
    galleries: list[GallerySpec] = Field(default_factory=list)
    managed_images: list[ManagedImageSpec] = Field(default_factory=list)
    principals: list[PrincipalSpec] = Field(default_factory=list)
    role_assignments: list[RoleAssignmentSpec] = Field(default_factory=list)
    custom_roles: list[CustomRoleSpec] = Field(default_factory=list)
    # Custom roles as Azure's roleDefinition JSON (assignable only within their assignableScopes).
    azure_role_definitions: list[AzureRoleDefinition] = Field(default_factory=list, alias="roleDefinitions")
    # Where the file came from (for messages); not part of the file.
    source: str = Field(default="<memory>", exclude=True)

    @property
    def default_subscription(self) -> Subscription:
        return self.subscriptions[0]

    @property
    def default_principal(self) -> PrincipalSpec:
        """The principal the managed-identity endpoint serves by default."""
        for principal in self.principals:
            if principal.default:
                return principal
        raise WorldError(f'{self.source}: $.principals: no principal has "default": true')

    def principal(self, ref: str) -> PrincipalSpec | None:
        """Find a principal by objectId, clientId or displayName (case-insensitive)."""
        for p in self.principals:
            if ref.lower() in (p.object_id.lower(), p.client_id.lower(), p.display_name.lower()):
                return p
        return None

    def resource_group_subscription(self, rg: ResourceGroup) -> str:
        return rg.subscription or self.default_subscription.id

    def role_definitions(self) -> dict[str, RoleDefinition]:
        """Built-in plus custom role definitions, keyed by lower-case name and by id."""
        roles: dict[str, RoleDefinition] = {}
        customs = [
            RoleDefinition(
                name=c.name,
                id=c.id or _stable_guid(f"customrole:{c.name}"),
                actions=tuple(c.actions),
                not_actions=tuple(c.not_actions),
                data_actions=tuple(c.data_actions),
                not_data_actions=tuple(c.not_data_actions),
                description=c.description,
            )
            for c in (*self.custom_roles, *(r.to_custom() for r in self.azure_role_definitions))
        ]
        for role in (*BUILTIN_ROLES, *customs):
            roles[role.name.lower()] = role
            roles[role.id.lower()] = role
        return roles


def _beneath(scope: str, parent: str) -> bool:
    s, p = scope.rstrip("/").lower(), parent.rstrip("/").lower()
    return p == "" or s == p or s.startswith(p + "/")


def _stable_guid(text: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, "azsim:" + text))


def _json_path(loc: tuple[int | str, ...]) -> str:
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def parse_world(data: Any, *, source: str = "<memory>") -> World:
    """Validate an already-parsed world document (see ``load_world``)."""
    if not isinstance(data, dict):
        raise WorldError(f"{source}: $: expected a JSON object with tenantId, subscriptions, regions, ...")
    try:
        world = World.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:10]:
            loc = tuple(p for p in err["loc"] if p != "source")
            detail = err["msg"]
            if err["type"] == "extra_forbidden":
                detail = "unknown field (check spelling; fields are camelCase)"
            problems.append(f"{source}: {_json_path(loc)}: {detail}")
        raise WorldError("invalid world file:\n  " + "\n  ".join(problems)) from None
    _check_consistency(world)
    return world


def load_world(path: str | Path) -> World:
    """Read, parse and validate a world file; raise ``WorldError`` naming file, field and expectation."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorldError(f"{p}: cannot read world file ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorldError(f"{p}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return parse_world(data, source=str(p))


def _check_consistency(world: World) -> None:
    """Cross-references the schema cannot express (names that must exist, be unique, or agree)."""
    src = world.source
    problems: list[str] = []

    def bad(path: str, message: str) -> None:
        problems.append(f"{src}: {path}: {message}")

    regions = {r.lower() for r in world.regions}
    for i, region in enumerate(world.regions):
        if not re.match(r"^[a-z0-9]+$", region):
            bad(f"$.regions[{i}]", f"expected a region name like 'westeurope', got {region!r}")
    sub_ids = {s.id.lower() for s in world.subscriptions}
    if len(sub_ids) != len(world.subscriptions):
        bad("$.subscriptions", "subscription ids must be unique")

    def check_region(path: str, location: str) -> None:
        if location.lower() not in regions:
            bad(path, f"expected one of the world's regions {sorted(regions)}, got {location!r}")

    rgs: dict[str, ResourceGroup] = {}
    for i, rg in enumerate(world.resource_groups):
        check_region(f"$.resourceGroups[{i}].location", rg.location)
        if rg.subscription is not None and rg.subscription.lower() not in sub_ids:
            bad(
                f"$.resourceGroups[{i}].subscription",
                f"expected one of the subscription ids, got {rg.subscription!r}",
            )
        if rg.name.lower() in rgs:
            bad(f"$.resourceGroups[{i}].name", f"duplicate resource group {rg.name!r}")
        rgs[rg.name.lower()] = rg

    def check_rg(path: str, name: str) -> None:
        if name.lower() not in rgs:
            bad(path, f"expected the name of a resource group in $.resourceGroups, got {name!r}")

    disk_names: set[tuple[str, str]] = set()
    vm_names: set[tuple[str, str]] = set()
    for i, vm in enumerate(world.virtual_machines):
        base = f"$.virtualMachines[{i}]"
        check_rg(f"{base}.resourceGroup", vm.resource_group)
        check_region(f"{base}.location", vm.location)
        key = (vm.resource_group.lower(), vm.name.lower())
        if key in vm_names:
            bad(f"{base}.name", f"duplicate VM {vm.name!r} in resource group {vm.resource_group!r}")
        vm_names.add(key)
        if vm.generalized and vm.power_state == "running":
            bad(
                f"{base}.powerState",
                "a generalized VM cannot be running; expected 'stopped' or 'deallocated'",
            )
        if vm.security_type != "Standard" and vm.hyper_v_generation != "V2":
            bad(f"{base}.hyperVGeneration", f"securityType {vm.security_type} requires hyperVGeneration 'V2'")
        if vm.architecture == "Arm64" and vm.hyper_v_generation != "V2":
            bad(f"{base}.hyperVGeneration", "Arm64 VMs require hyperVGeneration 'V2'")
        luns: set[int] = set()
        for j, disk in enumerate([vm.os_disk, *vm.data_disks]):
            path = f"{base}.osDisk" if j == 0 else f"{base}.dataDisks[{j - 1}]"
            dkey = (vm.resource_group.lower(), disk.name.lower())
            if dkey in disk_names:
                bad(
                    f"{path}.name",
                    f"duplicate disk name {disk.name!r} in resource group {vm.resource_group!r}",
                )
            disk_names.add(dkey)
            if isinstance(disk, DataDisk):
                if disk.lun in luns:
                    bad(f"{path}.lun", f"duplicate LUN {disk.lun} on VM {vm.name!r}")
                luns.add(disk.lun)

    names: set[str] = set()
    for i, sa in enumerate(world.storage_accounts):
        check_rg(f"$.storageAccounts[{i}].resourceGroup", sa.resource_group)
        check_region(f"$.storageAccounts[{i}].location", sa.location)
        if sa.name in names:
            bad(f"$.storageAccounts[{i}].name", f"duplicate storage account {sa.name!r} (names are global)")
        names.add(sa.name)
        blob_names = [(b.container, b.name) for b in sa.blobs]
        if len(set(blob_names)) != len(blob_names):
            bad(f"$.storageAccounts[{i}].blobs", "duplicate container/name pair")

    image_names: set[tuple[str, str]] = set()
    for i, mi in enumerate(world.managed_images):
        check_rg(f"$.managedImages[{i}].resourceGroup", mi.resource_group)
        check_region(f"$.managedImages[{i}].location", mi.location)
        if (mi.resource_group.lower(), mi.name.lower()) in image_names:
            bad(f"$.managedImages[{i}].name", f"duplicate managed image {mi.name!r} in {mi.resource_group!r}")
        image_names.add((mi.resource_group.lower(), mi.name.lower()))
        if len({d.lun for d in mi.data_disks}) != len(mi.data_disks):
            bad(f"$.managedImages[{i}].dataDisks", "duplicate LUN")

    _check_networks(world, bad, check_rg, check_region)

    for i, g in enumerate(world.galleries):
        check_rg(f"$.galleries[{i}].resourceGroup", g.resource_group)
        check_region(f"$.galleries[{i}].location", g.location)
        for j, img in enumerate(g.images):
            for k, ver in enumerate(img.versions):
                for m, region in enumerate(ver.target_regions):
                    check_region(f"$.galleries[{i}].images[{j}].versions[{k}].targetRegions[{m}]", region)

    defaults = [p for p in world.principals if p.default]
    if world.principals and len(defaults) != 1:
        bad("$.principals", f'expected exactly one principal with "default": true, found {len(defaults)}')
    seen_oids: set[str] = set()
    for i, p in enumerate(world.principals):
        if p.object_id.lower() in seen_oids:
            bad(f"$.principals[{i}].objectId", f"duplicate objectId {p.object_id}")
        seen_oids.add(p.object_id.lower())

    roles = world.role_definitions()
    assignable: dict[str, list[str]] = {}
    for rd in world.azure_role_definitions:
        for role_ref in (rd.properties.role_name, rd.name or ""):
            if role_ref and rd.properties.assignable_scopes:
                assignable[role_ref.lower()] = rd.properties.assignable_scopes
    for i, ra in enumerate(world.role_assignments):
        base = f"$.roleAssignments[{i}]"
        if world.principal(ra.principal) is None:
            bad(
                f"{base}.principal",
                f"expected the objectId, clientId or displayName of a principal, got {ra.principal!r}",
            )
        ref = ra.role_definition_id or ra.role_definition_name
        if ref is None:
            bad(base, "expected roleDefinitionName or roleDefinitionId")
        elif ref.rsplit("/", 1)[-1].lower() not in roles:
            known = sorted({r.name for r in roles.values()})
            bad(
                f"{base}.roleDefinitionName",
                f"unknown role {ref!r}; expected a built-in or custom role: {known}",
            )
        scopes = assignable.get((ref or "").rsplit("/", 1)[-1].lower())
        if scopes and not any(_beneath(ra.scope, s) for s in scopes):
            bad(f"{base}.scope", f"role {ref!r} is assignable only within {scopes}, not at {ra.scope!r}")
        sub = ra.scope.split("/")[2].lower()
        if sub not in sub_ids:
            bad(f"{base}.scope", f"scope names subscription {sub!r}, which is not in $.subscriptions")
        rg_match = re.match(r"^/subscriptions/[^/]+/resourceGroups/([^/]+)", ra.scope, re.IGNORECASE)
        if rg_match and rg_match.group(1).lower() not in rgs:
            bad(
                f"{base}.scope",
                f"scope names resource group {rg_match.group(1)!r}, which is not in $.resourceGroups",
            )

    if problems:
        raise WorldError("inconsistent world file:\n  " + "\n  ".join(problems))


def _check_networks(
    world: World,
    bad: Callable[[str, str], None],
    check_rg: Callable[[str, str], None],
    check_region: Callable[[str, str], None],
) -> None:
    """Virtual networks: a known group and region, unique names, subnets inside the address space."""
    seen: set[tuple[str, str]] = set()
    for i, vnet in enumerate(world.virtual_networks):
        base = f"$.virtualNetworks[{i}]"
        check_rg(f"{base}.resourceGroup", vnet.resource_group)
        check_region(f"{base}.location", vnet.location)
        key = (vnet.resource_group.lower(), vnet.name.lower())
        if key in seen:
            bad(f"{base}.name", f"duplicate virtual network {vnet.name!r} in {vnet.resource_group!r}")
        seen.add(key)
        spaces = []
        for j, prefix in enumerate(vnet.address_prefixes):
            try:
                spaces.append(ipaddress.ip_network(prefix))
            except ValueError:
                bad(
                    f"{base}.addressPrefixes[{j}]",
                    f"expected a CIDR prefix like '10.0.0.0/16', got {prefix!r}",
                )
        names: set[str] = set()
        for j, subnet in enumerate(vnet.subnets):
            path = f"{base}.subnets[{j}]"
            if subnet.name.lower() in names:
                bad(f"{path}.name", f"duplicate subnet {subnet.name!r}")
            names.add(subnet.name.lower())
            try:
                net = ipaddress.ip_network(subnet.address_prefix)
            except ValueError:
                bad(f"{path}.addressPrefix", f"expected a CIDR prefix, got {subnet.address_prefix!r}")
                continue
            if not any(net.version == s.version and net.subnet_of(s) for s in spaces):  # type: ignore[arg-type]
                bad(f"{path}.addressPrefix", f"{subnet.address_prefix} is outside {vnet.address_prefixes}")
