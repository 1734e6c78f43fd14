"""Microsoft.Network: virtual networks, subnets and network interfaces."""
