"""Storage side of the local cloud: managed-disk bytes in Azurite and the blob front (copy simulation)."""
