"""The triggers' reads of Durable instances, each answered as a ``shared.instances.InstanceSnapshot``."""

from __future__ import annotations

import azure.durable_functions as df

from shared.instances import InstanceSnapshot, snapshot_of


async def read_instance(
    client: df.DurableOrchestrationClient, instance_id: str, *, with_input: bool = False
) -> InstanceSnapshot | None:
    """The instance's status (``None`` when there is no such instance); its input only when asked for."""
    if with_input:
        return snapshot_of(await client.get_status(instance_id, show_input=True))
    return snapshot_of(await client.get_status(instance_id))


async def is_active(client: df.DurableOrchestrationClient, instance_id: str) -> bool:
    """True while the instance is Pending, Running, ContinuedAsNew or Suspended."""
    snap = await read_instance(client, instance_id)
    return snap is not None and snap.active
