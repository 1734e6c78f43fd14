"""Example requests of the OpenAPI document (``shared.openapi``): a capture, and two Event Grid deliveries.

The subscription is all zeros: the examples name no real resource. Schema-based testers start from
them (the schemathesis run against devhost sends them), so they must stay valid requests.
"""

from __future__ import annotations

from typing import Any

_EXAMPLE_VM = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-build"
    "/providers/Microsoft.Compute/virtualMachines/vm-web"
)
_DEALLOCATE = "Microsoft.Compute/virtualMachines/deallocate/action"
DELIVERY_EXAMPLES: dict[str, Any] = {
    "deallocation": {
        "summary": "A VM deallocation (aeg-event-type: Notification)",
        "value": [
            {
                "id": "5c8f0f5e-8a53-4f53-9d5c-0e0d8b0e1a01",
                "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-build",
                "subject": _EXAMPLE_VM,
                "eventType": "Microsoft.Resources.ResourceActionSuccess",
                "eventTime": "2026-05-01T10:00:00.0000000Z",
                "dataVersion": "2",
                "data": {
                    "authorization": {"scope": _EXAMPLE_VM, "action": _DEALLOCATE},
                    "resourceProvider": "Microsoft.Compute",
                    "resourceUri": _EXAMPLE_VM,
                    "operationName": _DEALLOCATE,
                    "status": "Succeeded",
                    "subscriptionId": "00000000-0000-0000-0000-000000000000",
                },
            }
        ],
    },
    "validation": {
        "summary": "The subscription validation handshake (aeg-event-type: SubscriptionValidation)",
        "value": [
            {
                "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
                "subject": "",
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "eventTime": "2026-05-01T10:00:00.0000000Z",
                "dataVersion": "1",
                "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
            }
        ],
    },
}

CAPTURE_EXAMPLE: dict[str, Any] = {
    "summary": "Capture vm-web (deprovisioned by the pipeline) into the next version of web-ubuntu",
    "value": {
        "sourceVmId": _EXAMPLE_VM,
        "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
        "imageDefinition": {"name": "web-ubuntu", "publisher": "contoso", "offer": "web", "sku": "ubuntu-22"},
        "version": "auto",
        "targetRegions": [{"name": "westeurope", "replicaCount": 2}, {"name": "eastus2"}],
        "prepare": "deprovision",
        "captureMode": "inPlace",
    },
}

SPECIALIZED_EXAMPLE: dict[str, Any] = {
    "summary": "Capture vm-web as it is (it keeps running; not generalized) into a specialized definition",
    "value": {
        "sourceVmId": _EXAMPLE_VM,
        "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
        "imageDefinition": {"name": "web-specialized", "publisher": "contoso", "offer": "web", "sku": "spec"},
        "captureMode": "specialized",
        "consistency": "crash",
    },
}

_EXAMPLE_IMAGE = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-legacy-images"
    "/providers/Microsoft.Compute/images/img-linux-gen2"
)

MANAGED_IMAGE_EXAMPLE: dict[str, Any] = {
    "summary": "Move the managed image img-linux-gen2 into a gallery (the definition follows the image)",
    "value": {
        "source": {"managedImageId": _EXAMPLE_IMAGE},
        "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
        "imageDefinition": {"name": "linux-gen2", "publisher": "contoso", "offer": "legacy", "sku": "gen2"},
        "targetRegions": [{"name": "westeurope"}, {"name": "eastus2"}],
    },
}
