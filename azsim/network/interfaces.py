"""Microsoft.Network: virtual networks and subnets from the world file (read-only), network
interfaces (PUT/GET/DELETE) on those subnets, and the attach/detach the VM backend asks for.

Every VM of the world gets a NIC named ``{vm}-nic`` attached to it, as Azure VMs always have one;
it sits on the first subnet of a world network in the VM's resource group and region, if any.
NIC PUT and DELETE complete at once (Azure answers them with an async operation; docs/azsim-arm.md).
"""

from __future__ import annotations

import re
from typing import Any

from azsim.compute.models import NicRef, new_guid, rid
from azsim.compute.regions import normalize
from azsim.compute.state import ComputeState, canonical_id
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import ArmError, invalid_parameter, resource_not_found
from azsim.network.models import IpConfiguration, NetworkInterface, Subnet, VirtualNetwork

SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"
_SUBNET_ID = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Network/virtualNetworks/([^/]+)"
    r"/subnets/([^/]+)$",
    re.IGNORECASE,
)


def nic_in_use(nic_id: str, vm_id: str) -> ArmError:
    return ArmError(400, "NicInUse", f"Network Interface {nic_id} is used by existing VM {vm_id}.")


def _mac(seq: int) -> str:
    return "00-0D-3A-" + "-".join(f"{(seq >> s) & 0xFF:02X}" for s in (16, 8, 0))


class NetworkResources(ComputeState):
    """Virtual networks, subnets and network interfaces."""

    vnets: dict[str, VirtualNetwork]
    nics: dict[str, NetworkInterface]

    def _load_world(self) -> None:
        super()._load_world()
        self.vnets = {}
        self.nics = {}
        self._mac_seq = 0
        for spec in self.world.virtual_networks:
            group = self.require_rg(self._sub_of_rg(spec.resource_group), spec.resource_group)
            vnet = VirtualNetwork(
                group.subscription,
                group.name,
                spec.name,
                normalize(spec.location),
                list(spec.address_prefixes),
                tags=dict(spec.tags),
            )
            for s in spec.subnets:
                vnet.subnets[s.name.lower()] = Subnet(vnet, s.name, s.address_prefix)
            self.vnets[vnet.id.lower()] = vnet
        for vm in self.vms.values():
            subnet = next(
                (
                    s
                    for v in self.vnets.values()
                    if v.resource_group.lower() == vm.resource_group.lower() and v.location == vm.location
                    for s in v.subnets.values()
                ),
                None,
            )
            nic = NetworkInterface(vm.subscription, vm.resource_group, f"{vm.name}-nic", vm.location, [])
            nic.ip_configurations = [self._ip_config(nic, "ipconfig1", subnet, True)]
            self.nics[nic.id.lower()] = nic
            self.attach_nic(nic, vm.id, primary=True)
            vm.nics = [NicRef(nic.id, True)]

    def _ip_config(
        self, nic: NetworkInterface, name: str, subnet: Subnet | None, primary: bool
    ) -> IpConfiguration:
        address = subnet.allocate(nic.ip_config_id(name)) if subnet is not None else ""
        return IpConfiguration(name, subnet, address, primary)

    # ------------------------------------------------------------------ virtual networks, subnets

    def get_vnet(self, sub: str, rg: str, name: str) -> VirtualNetwork:
        vnet: VirtualNetwork = self._get(
            self.vnets,
            sub,
            rg,
            "Microsoft.Network/virtualNetworks",
            f"Microsoft.Network/virtualNetworks/{name}",
            name,
        )
        return vnet

    def list_vnets(self, sub: str, rg: str | None) -> list[VirtualNetwork]:
        if rg is not None:
            self.require_rg(sub, rg)
        return [
            v
            for v in self.vnets.values()
            if v.subscription.lower() == sub.lower()
            and (rg is None or v.resource_group.lower() == rg.lower())
        ]

    def get_subnet(self, sub: str, rg: str, vnet_name: str, name: str) -> Subnet:
        vnet = self.get_vnet(sub, rg, vnet_name)
        subnet = vnet.subnets.get(name.lower())
        if subnet is None:
            raise resource_not_found(f"Microsoft.Network/virtualNetworks/{vnet.name}/subnets", name, rg)
        return subnet

    def _subnet_by_id(self, subnet_id: str) -> Subnet | None:
        m = _SUBNET_ID.match(canonical_id(subnet_id))
        if not m:
            return None
        sub, rg, vnet_name, name = m.groups()
        vnet = self.vnets.get(rid(sub, rg, f"Microsoft.Network/virtualNetworks/{vnet_name}").lower())
        return vnet.subnets.get(name.lower()) if vnet is not None else None

    # ------------------------------------------------------------------ network interfaces

    def nic_by_id(self, nic_id: str) -> NetworkInterface | None:
        return self.nics.get(canonical_id(nic_id).lower())

    def get_nic(self, sub: str, rg: str, name: str) -> NetworkInterface:
        nic: NetworkInterface = self._get(
            self.nics,
            sub,
            rg,
            "Microsoft.Network/networkInterfaces",
            f"Microsoft.Network/networkInterfaces/{name}",
            name,
        )
        return nic

    def list_nics(self, sub: str, rg: str | None) -> list[NetworkInterface]:
        if rg is not None:
            self.require_rg(sub, rg)
        return [
            n
            for n in self.nics.values()
            if n.subscription.lower() == sub.lower()
            and (rg is None or n.resource_group.lower() == rg.lower())
        ]

    def put_nic(self, ctx: RequestContext, sub: str, rg: str, name: str, body: dict[str, Any]) -> Reply:
        group = self.require_rg(sub, rg)
        nic_id = rid(group.subscription, group.name, f"Microsoft.Network/networkInterfaces/{name}")
        existing = self.nics.get(nic_id.lower())
        location = self._check_region(body.get("location"))
        if existing is not None and existing.location != location:
            raise ArmError(
                400,
                "InvalidResourceLocation",
                f"The resource '{name}' already exists in location '{existing.location}' in resource group "
                f"'{group.name}'. A resource with the same name cannot be created in location '{location}'. "
                "Please select a new resource name.",
            )
        configs = (body.get("properties") or {}).get("ipConfigurations")
        if not isinstance(configs, list) or not configs:
            raise invalid_parameter(
                f"Network interface {nic_id} must have one or more IP configurations.",
                "properties.ipConfigurations",
            )
        subnets = [self._checked_subnet(ctx, nic_id, location, c, i) for i, c in enumerate(configs)]
        names = [str(c.get("name") or f"ipconfig{i + 1}") for i, c in enumerate(configs)]
        if len({n.lower() for n in names}) != len(names):
            raise invalid_parameter("IP configuration names of a network interface must be unique.", "name")
        primaries = [bool((c.get("properties") or {}).get("primary")) for c in configs]
        if not any(primaries):
            primaries[0] = True
        nic = existing or NetworkInterface(group.subscription, group.name, name, location, [])
        for old in nic.ip_configurations:
            if old.subnet is not None:
                old.subnet.release(nic.ip_config_id(old.name))
        nic.ip_configurations = [
            self._ip_config(nic, n, s, p) for n, s, p in zip(names, subnets, primaries, strict=True)
        ]
        if "tags" in body or existing is None:
            nic.tags = dict(body.get("tags") or {})
        if existing is not None:
            nic.etag = new_guid()
        self.nics[nic.id.lower()] = nic
        # Network PUTs answer 201 on create and 200 on update, with the resource already Succeeded.
        return Reply(200 if existing is not None else 201, nic.to_arm())

    def _checked_subnet(
        self, ctx: RequestContext, nic_id: str, location: str, config: Any, index: int
    ) -> Subnet:
        props = (config if isinstance(config, dict) else {}).get("properties") or {}
        subnet_id = str((props.get("subnet") or {}).get("id") or "")
        if not subnet_id:
            raise invalid_parameter(
                f"Subnet is required on IP configuration {index} of network interface {nic_id}.",
                f"properties.ipConfigurations[{index}].properties.subnet",
            )
        subnet = self._subnet_by_id(subnet_id)
        if subnet is None or subnet.vnet.location != location:
            raise ArmError(
                400,
                "InvalidResourceReference",
                f"Resource {canonical_id(subnet_id)} referenced by resource {nic_id} was not found. Please make "
                "sure that the referenced resource exists, and that both resources are in the same region.",
            )
        ctx.authorize_linked(SUBNET_JOIN, subnet.id)
        return subnet

    def delete_nic(self, ctx: RequestContext, sub: str, rg: str, name: str) -> Reply:
        group = self.require_rg(sub, rg)
        nic = self.nics.get(
            rid(group.subscription, group.name, f"Microsoft.Network/networkInterfaces/{name}").lower()
        )
        if nic is None:
            return Reply(204, None)
        if nic.virtual_machine:
            raise nic_in_use(nic.id, nic.virtual_machine)
        self.remove_nic(nic)
        return Reply(200, None)

    def remove_nic(self, nic: NetworkInterface) -> None:
        for c in nic.ip_configurations:
            if c.subnet is not None:
                c.subnet.release(nic.ip_config_id(c.name))
        self.nics.pop(nic.id.lower(), None)

    def attach_nic(self, nic: NetworkInterface, vm_id: str, *, primary: bool) -> None:
        nic.virtual_machine = vm_id
        nic.primary = primary
        if not nic.mac_address:
            self._mac_seq += 1
            nic.mac_address = _mac(self._mac_seq)

    def detach_nic(self, nic: NetworkInterface) -> None:
        nic.virtual_machine = None
        nic.primary = None
        nic.mac_address = ""
