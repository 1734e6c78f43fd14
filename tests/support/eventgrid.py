"""Deallocation events as Event Grid delivers them (its own schema, or CloudEvents 1.0)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

DEALLOCATE = "Microsoft.Compute/virtualMachines/deallocate/action"
EVENTGRID_ROUTE = "/api/eventgrid/deallocations"


def deallocation_event(
    vm_id: str, *, tenant_id: str, event_id: str | None = None, at: datetime | None = None
) -> dict[str, Any]:
    """A ResourceActionSuccess event of a deallocation of ``vm_id``, as Azure Resource Manager sends it."""
    sub = vm_id.split("/")[2]
    return {
        "id": event_id or str(uuid.uuid4()),
        "topic": f"/subscriptions/{sub}/resourceGroups/rg-build",
        "subject": vm_id,
        "eventType": "Microsoft.Resources.ResourceActionSuccess",
        "eventTime": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
        "dataVersion": "2",
        "metadataVersion": "1",
        "data": {
            "authorization": {"scope": vm_id, "action": DEALLOCATE},
            "correlationId": str(uuid.uuid4()),
            "httpRequest": {"method": "POST", "url": f"https://management.azure.com{vm_id}/deallocate"},
            "resourceProvider": "Microsoft.Compute",
            "resourceUri": vm_id,
            "operationName": DEALLOCATE,
            "status": "Succeeded",
            "subscriptionId": sub,
            "tenantId": tenant_id,
        },
    }


def as_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    """The same event in the CloudEvents 1.0 schema."""
    return {
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "subject": event["subject"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "data": event["data"],
    }
