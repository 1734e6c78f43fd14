"""Region names: ARM short names ("westeurope"), the display names galleries echo ("West Europe"), and the
location objects of ``GET /subscriptions/{id}/locations``."""

from __future__ import annotations

import re
from typing import Any

_DISPLAY = {
    "westeurope": "West Europe",
    "northeurope": "North Europe",
    "uksouth": "UK South",
    "ukwest": "UK West",
    "eastus": "East US",
    "eastus2": "East US 2",
    "westus": "West US",
    "westus2": "West US 2",
    "westus3": "West US 3",
    "centralus": "Central US",
    "southcentralus": "South Central US",
    "northcentralus": "North Central US",
    "swedencentral": "Sweden Central",
    "germanywestcentral": "Germany West Central",
    "francecentral": "France Central",
    "switzerlandnorth": "Switzerland North",
    "norwayeast": "Norway East",
    "polandcentral": "Poland Central",
    "italynorth": "Italy North",
    "japaneast": "Japan East",
    "australiaeast": "Australia East",
    "southeastasia": "Southeast Asia",
    "eastasia": "East Asia",
    "canadacentral": "Canada Central",
    "brazilsouth": "Brazil South",
    "centralindia": "Central India",
}


def normalize(name: str) -> str:
    """'West Europe' / 'westeurope' / 'WestEurope' -> 'westeurope'."""
    return re.sub(r"\s+", "", name).lower()


def display(name: str) -> str:
    short = normalize(name)
    return _DISPLAY.get(short, name)


# (geographyGroup, geography, physicalLocation, paired region or None), as Subscriptions - List Locations
# reports them (learn.microsoft.com/rest/api/resources/subscriptions/list-locations; Azure region pairs in
# learn.microsoft.com/azure/reliability/cross-region-replication-azure). Latitude/longitude and zone
# mappings are left out rather than guessed.
_GEO: dict[str, tuple[str, str, str, str | None]] = {
    "westeurope": ("Europe", "Europe", "Netherlands", "northeurope"),
    "northeurope": ("Europe", "Europe", "Ireland", "westeurope"),
    "uksouth": ("UK", "United Kingdom", "London", "ukwest"),
    "ukwest": ("UK", "United Kingdom", "Cardiff", "uksouth"),
    "eastus": ("US", "United States", "Virginia", "westus"),
    "eastus2": ("US", "United States", "Virginia", "centralus"),
    "westus": ("US", "United States", "California", "eastus"),
    "westus2": ("US", "United States", "Washington", "westcentralus"),
    "westus3": ("US", "United States", "Phoenix", "eastus"),
    "centralus": ("US", "United States", "Iowa", "eastus2"),
    "southcentralus": ("US", "United States", "Texas", "northcentralus"),
    "northcentralus": ("US", "United States", "Illinois", "southcentralus"),
    "swedencentral": ("Europe", "Sweden", "Gävle", "swedensouth"),
    "germanywestcentral": ("Europe", "Germany", "Frankfurt", "germanynorth"),
    "francecentral": ("Europe", "France", "Paris", "francesouth"),
    "switzerlandnorth": ("Europe", "Switzerland", "Zurich", "switzerlandwest"),
    "norwayeast": ("Europe", "Norway", "Norway", "norwaywest"),
    "polandcentral": ("Europe", "Poland", "Warsaw", None),
    "italynorth": ("Europe", "Italy", "Milan", None),
    "japaneast": ("Asia Pacific", "Japan", "Tokyo, Saitama", "japanwest"),
    "australiaeast": ("Asia Pacific", "Australia", "New South Wales", "australiasoutheast"),
    "southeastasia": ("Asia Pacific", "Asia Pacific", "Singapore", "eastasia"),
    "eastasia": ("Asia Pacific", "Asia Pacific", "Hong Kong", "southeastasia"),
    "canadacentral": ("Canada", "Canada", "Toronto", "canadaeast"),
    "brazilsouth": ("South America", "Brazil", "Sao Paulo State", "southcentralus"),
    "centralindia": ("Asia Pacific", "India", "Pune", "southindia"),
}


def location(subscription_id: str, name: str) -> dict[str, Any]:
    """One entry of ``GET /subscriptions/{id}/locations`` for a region of the world."""
    short = normalize(name)
    shown = display(short)
    loc_id = f"/subscriptions/{subscription_id}/locations/{short}"
    geo = _GEO.get(short)
    metadata: dict[str, Any] = {"regionType": "Physical", "regionCategory": "Recommended" if geo else "Other"}
    regional = shown
    if geo is not None:
        group, geography, physical, paired = geo
        regional = f"({group}) {shown}"
        metadata.update({"geography": geography, "geographyGroup": group, "physicalLocation": physical})
        if paired:
            metadata["pairedRegion"] = [
                {"name": paired, "id": f"/subscriptions/{subscription_id}/locations/{paired}"}
            ]
    return {
        "id": loc_id,
        "name": short,
        "type": "Region",
        "displayName": shown,
        "regionalDisplayName": regional,
        "metadata": metadata,
    }
