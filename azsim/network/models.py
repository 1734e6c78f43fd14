"""Network resources (virtual networks, subnets, network interfaces) and their ARM JSON views.

Only what a VM created from attached disks needs: a NIC with one or more IP configurations on a
subnet, a dynamically allocated private address, no public IP. Shapes follow Microsoft.Network's
GET answers (id, name, type, etag, location, properties.provisioningState).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from azsim.compute.models import new_guid, rid


@dataclass
class Subnet:
    vnet: VirtualNetwork
    name: str
    address_prefix: str
    # IP configuration ids of the NICs on this subnet -> their private address.
    allocated: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.vnet.id}/subnets/{self.name}"

    def allocate(self, ip_config_id: str) -> str:
        """The next free address; Azure keeps the first four and the last of every subnet."""
        net = ipaddress.ip_network(self.address_prefix)
        used = set(self.allocated.values())
        hosts = list(net.hosts()) if net.num_addresses <= 65536 else []
        # hosts() already leaves out the network and broadcast addresses.
        for address in hosts[3:]:
            if str(address) not in used:
                self.allocated[ip_config_id.lower()] = str(address)
                return str(address)
        return ""

    def release(self, ip_config_id: str) -> None:
        self.allocated.pop(ip_config_id.lower(), None)

    def to_arm(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "provisioningState": "Succeeded",
            "addressPrefix": self.address_prefix,
            "privateEndpointNetworkPolicies": "Disabled",
            "privateLinkServiceNetworkPolicies": "Enabled",
        }
        if self.allocated:
            props["ipConfigurations"] = [{"id": ip_id} for ip_id in sorted(self.allocated)]
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Network/virtualNetworks/subnets",
            "etag": f'W/"{self.vnet.etag}"',
            "properties": props,
        }


@dataclass
class VirtualNetwork:
    subscription: str
    resource_group: str
    name: str
    location: str
    address_prefixes: list[str]
    subnets: dict[str, Subnet] = field(default_factory=dict)  # by lower-case name
    tags: dict[str, str] = field(default_factory=dict)
    resource_guid: str = field(default_factory=new_guid)
    etag: str = field(default_factory=new_guid)

    @property
    def id(self) -> str:
        return rid(self.subscription, self.resource_group, f"Microsoft.Network/virtualNetworks/{self.name}")

    def to_arm(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Network/virtualNetworks",
            "etag": f'W/"{self.etag}"',
            "location": self.location,
            "tags": self.tags,
            "properties": {
                "provisioningState": "Succeeded",
                "resourceGuid": self.resource_guid,
                "addressSpace": {"addressPrefixes": list(self.address_prefixes)},
                "subnets": [s.to_arm() for s in self.subnets.values()],
                "virtualNetworkPeerings": [],
                "enableDdosProtection": False,
            },
        }


@dataclass
class IpConfiguration:
    name: str
    subnet: Subnet | None  # None only for the NICs seeded for world VMs without a declared network
    private_ip: str
    primary: bool


@dataclass
class NetworkInterface:
    subscription: str
    resource_group: str
    name: str
    location: str
    ip_configurations: list[IpConfiguration]
    tags: dict[str, str] = field(default_factory=dict)
    # The VM this NIC is attached to (set by the VM PUT, cleared when the VM goes).
    virtual_machine: str | None = None
    primary: bool | None = None
    mac_address: str = ""
    resource_guid: str = field(default_factory=new_guid)
    etag: str = field(default_factory=new_guid)

    @property
    def id(self) -> str:
        return rid(self.subscription, self.resource_group, f"Microsoft.Network/networkInterfaces/{self.name}")

    def ip_config_id(self, name: str) -> str:
        return f"{self.id}/ipConfigurations/{name}"

    def to_arm(self) -> dict[str, Any]:
        configs = [
            {
                "id": self.ip_config_id(c.name),
                "name": c.name,
                "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                "etag": f'W/"{self.etag}"',
                "properties": {
                    "provisioningState": "Succeeded",
                    "privateIPAddress": c.private_ip,
                    "privateIPAllocationMethod": "Dynamic",
                    "privateIPAddressVersion": "IPv4",
                    "primary": c.primary,
                    **({"subnet": {"id": c.subnet.id}} if c.subnet is not None else {}),
                },
            }
            for c in self.ip_configurations
        ]
        props: dict[str, Any] = {
            "provisioningState": "Succeeded",
            "resourceGuid": self.resource_guid,
            "ipConfigurations": configs,
            "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
            "enableAcceleratedNetworking": False,
            "enableIPForwarding": False,
            "nicType": "Standard",
        }
        if self.virtual_machine:
            props["virtualMachine"] = {"id": self.virtual_machine}
            props["macAddress"] = self.mac_address
            if self.primary is not None:
                props["primary"] = self.primary
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Network/networkInterfaces",
            "etag": f'W/"{self.etag}"',
            "location": self.location,
            "tags": self.tags,
            "properties": props,
        }
