"""Service-independent machinery of the ARM simulator: clock, errors, LROs, latency, throttling, faults, RBAC, request log."""
