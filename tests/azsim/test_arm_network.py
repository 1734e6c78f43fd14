"""Microsoft.Network through the real azure-mgmt-network client: the world's virtual network and
subnet, network interfaces (PUT/GET/DELETE, dynamic private addresses, no public IP), and the
errors Azure gives for a missing subnet, a subnet in another region and a NIC still attached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from azsim.world import WorldError, load_world, parse_world
from tests.azsim.arm_fakes import READER_OID, SUB, WORLD_FILE, SimHandle, running_sim, vm_id

BUILD = "rg-image-build"
NIC_ONLY_OID = "6c1f0d53-7c3e-4b8e-9a59-2f6f0a7b9d11"
SUBNET = (
    f"/subscriptions/{SUB}/resourceGroups/{BUILD}/providers/Microsoft.Network/virtualNetworks/vnet-build"
    "/subnets/snet-clones"
)


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_sim(tmp_path_factory.mktemp("arm-network"), time_scale=0.0005) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _fresh(arm: SimHandle) -> None:
    arm.sim.reset()


def nic_body(subnet_id: str = SUBNET, location: str = "westeurope") -> dict[str, Any]:
    return {
        "location": location,
        "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet_id}}}]
        },
    }


def test_world_network__vnet_and_subnet_as_arm_shows_them(arm: SimHandle) -> None:
    vnet = arm.network().virtual_networks.get(BUILD, "vnet-build")
    assert vnet.location == "westeurope"
    assert vnet.address_space.address_prefixes == ["10.20.0.0/16"]
    assert [(s.name, s.address_prefix, s.id) for s in vnet.subnets] == [
        ("snet-clones", "10.20.1.0/24", SUBNET)
    ]
    assert [v.name for v in arm.network().virtual_networks.list(BUILD)] == [
        "vnet-build",
        *(f"vnet-boottest-{r}" for r in ("westeurope", "eastus2", "northeurope")),
    ]
    # A subnet has its own read action, which Reader holds and Virtual Machine Contributor does not.
    reader = arm.network(oid=READER_OID)
    assert reader.subnets.get(BUILD, "vnet-build", "snet-clones").address_prefix == "10.20.1.0/24"
    assert [s.name for s in reader.subnets.list(BUILD, "vnet-build")] == ["snet-clones"]
    with pytest.raises(HttpResponseError) as e:
        arm.network().subnets.get(BUILD, "vnet-build", "snet-clones")
    assert e.value.status_code == 403 and "Microsoft.Network/virtualNetworks/subnets/read" in str(e.value)
    with pytest.raises(ResourceNotFoundError) as nf:
        reader.virtual_networks.get(BUILD, "vnet-nope")
    assert nf.value.error.code == "ResourceNotFound"


def test_nic_put__subnet_only_gets_dynamic_addresses_in_order(arm: SimHandle) -> None:
    net = arm.network()
    first = net.network_interfaces.begin_create_or_update(BUILD, "nic-a", nic_body()).result()
    second = net.network_interfaces.begin_create_or_update(BUILD, "nic-b", nic_body()).result()
    assert first.provisioning_state == "Succeeded"
    config = first.ip_configurations[0]
    # Azure keeps .0-.3 of a subnet: the first NIC gets .4.
    assert (config.private_ip_address, second.ip_configurations[0].private_ip_address) == (
        "10.20.1.4",
        "10.20.1.5",
    )
    assert config.private_ip_allocation_method == "Dynamic" and config.public_ip_address is None
    assert config.subnet.id == SUBNET and config.primary is True
    assert first.virtual_machine is None
    got = net.network_interfaces.get(BUILD, "nic-a")
    assert got.id == first.id and got.ip_configurations[0].private_ip_address == "10.20.1.4"
    assert {n.name for n in net.network_interfaces.list(BUILD)} == {"nic-a", "nic-b"}
    # Update (tags) keeps its address; deleting frees it for the next NIC.
    again = net.network_interfaces.begin_create_or_update(
        BUILD, "nic-a", {**nic_body(), "tags": {"t": "1"}}
    ).result()
    assert again.tags == {"t": "1"} and again.ip_configurations[0].private_ip_address == "10.20.1.4"
    net.network_interfaces.begin_delete(BUILD, "nic-a").result()
    with pytest.raises(ResourceNotFoundError):
        net.network_interfaces.get(BUILD, "nic-a")
    third = net.network_interfaces.begin_create_or_update(BUILD, "nic-c", nic_body()).result()
    assert third.ip_configurations[0].private_ip_address == "10.20.1.4"
    net.network_interfaces.begin_delete(BUILD, "nic-a").result()  # already gone: 204, no error


def test_nic_put__missing_or_foreign_region_subnet_is_an_invalid_reference(arm: SimHandle) -> None:
    net = arm.network()
    nic = f"/subscriptions/{SUB}/resourceGroups/{BUILD}/providers/Microsoft.Network/networkInterfaces/nic-x"
    missing = SUBNET.replace("snet-clones", "snet-nope")
    with pytest.raises(HttpResponseError) as e:
        net.network_interfaces.begin_create_or_update(BUILD, "nic-x", nic_body(missing))
    assert e.value.status_code == 400 and e.value.error.code == "InvalidResourceReference"
    assert e.value.error.message == (
        f"Resource {missing} referenced by resource {nic} was not found. Please make sure that the referenced "
        "resource exists, and that both resources are in the same region."
    )
    with pytest.raises(HttpResponseError) as e:
        net.network_interfaces.begin_create_or_update(BUILD, "nic-x", nic_body(location="northeurope"))
    assert e.value.error.code == "InvalidResourceReference"
    with pytest.raises(HttpResponseError) as e:
        net.network_interfaces.begin_create_or_update(
            BUILD, "nic-x", {"location": "westeurope", "properties": {"ipConfigurations": []}}
        )
    assert e.value.status_code == 400 and e.value.error.code == "InvalidParameter"
    with pytest.raises(ResourceNotFoundError):
        net.network_interfaces.get(BUILD, "nic-x")


def test_nic_put__needs_write_rights(arm: SimHandle) -> None:
    with pytest.raises(HttpResponseError) as e:
        arm.network(oid=READER_OID).network_interfaces.begin_create_or_update(BUILD, "nic-r", nic_body())
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Network/networkInterfaces/write" in str(e.value)


def test_nic_delete__attached_to_a_vm_is_nic_in_use(arm: SimHandle) -> None:
    net = arm.network()
    nic = net.network_interfaces.get("rg-build", "vm-web-nic")
    assert nic.virtual_machine.id == vm_id("vm-web") and nic.mac_address
    with pytest.raises(HttpResponseError) as e:
        net.network_interfaces.begin_delete("rg-build", "vm-web-nic")
    assert e.value.status_code == 400 and e.value.error.code == "NicInUse"
    assert e.value.error.message == f"Network Interface {nic.id} is used by existing VM {vm_id('vm-web')}."
    assert net.network_interfaces.get("rg-build", "vm-web-nic").virtual_machine is not None


def test_world_file__subnet_outside_the_address_space_is_refused(tmp_path: Path) -> None:
    text = WORLD_FILE.read_text(encoding="utf-8").replace('"10.20.1.0/24"', '"10.99.1.0/24"')
    bad = tmp_path / "world.json"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(WorldError) as e:
        load_world(bad)
    assert "$.virtualNetworks[0].subnets[0].addressPrefix" in str(e.value)


def test_nic_put__needs_join_on_the_subnet(tmp_path: Path) -> None:
    """A caller that may write NICs but not join the subnet is refused on the linked scope."""
    data = json.loads(WORLD_FILE.read_text(encoding="utf-8"))
    data["principals"].append(
        {
            "objectId": NIC_ONLY_OID,
            "displayName": "nic-only",
            "clientId": NIC_ONLY_OID,
            "kind": "servicePrincipal",
        }
    )
    data["customRoles"].append({"name": "NIC Writer", "actions": ["Microsoft.Network/networkInterfaces/*"]})
    data["roleAssignments"].append(
        {
            "principal": "nic-only",
            "roleDefinitionName": "NIC Writer",
            "scope": f"/subscriptions/{SUB}/resourceGroups/{BUILD}",
        }
    )
    with running_sim(tmp_path, world=parse_world(data), time_scale=0) as handle:
        with pytest.raises(HttpResponseError) as e:
            handle.network(oid=NIC_ONLY_OID).network_interfaces.begin_create_or_update(
                BUILD, "nic-j", nic_body()
            )
        assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed"
        assert "Microsoft.Network/virtualNetworks/subnets/join/action" in str(e.value) and SUBNET in str(
            e.value
        )
        with pytest.raises(ResourceNotFoundError):
            handle.network().network_interfaces.get(BUILD, "nic-j")


def test_nic_list_all__subscription_wide_as_the_group_list(arm: SimHandle) -> None:
    """NetworkInterfaces_ListAll (GET /subscriptions/{id}/providers/Microsoft.Network/networkInterfaces)."""
    net = arm.network()
    made = net.network_interfaces.begin_create_or_update(BUILD, "nic-all", nic_body()).result()
    everywhere = {str(n.id).lower() for n in net.network_interfaces.list_all()}
    in_group = {str(n.id).lower() for n in net.network_interfaces.list(BUILD)}
    assert str(made.id).lower() in everywhere and in_group <= everywhere
