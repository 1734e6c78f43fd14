"""Microsoft.Compute state models (VMs, disks, snapshots, galleries) with Azure's rules."""
