"""Region names: ARM short names ("westeurope") and the display names galleries echo ("West Europe")."""

from __future__ import annotations

import re

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
