"""The Marketplace hand-off's activities: the gallery subscription's tenant, and the exported VHDs' rules.

``check_marketplace`` (preflight of the gallery route) reads ``GET /subscriptions/{id}`` (its ``tenantId``)
with the app's identity and compares it with the publisher's tenant (the request's, else the setting's);
it also resolves the Partner Center principals. ``check_marketplace_vhds`` reads each exported blob's
type, length and last 512 bytes (a HEAD and one ranged GET through the checked export endpoint) and
applies ``shared.vhd_rules``. Neither creates, stores or returns a SAS.
"""

from __future__ import annotations

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.core.exceptions import ARMErrorFormat

from activities._common import activity, azure_call
from activities.exports import _blob
from shared import clients
from shared.activity_types import CHECK_MARKETPLACE, CHECK_MARKETPLACE_VHDS
from shared.marketplace_spec import (
    SETTING_PRINCIPALS,
    SETTING_TENANT,
    MarketplaceCheckInput,
    MarketplaceCheckResult,
    VhdCheck,
    VhdRulesInput,
    VhdRulesResult,
    VhdToCheck,
)
from shared.redaction import strip_query
from shared.settings import get_marketplace_settings
from shared.vhd_rules import FOOTER_SIZE, footer_problems, size_problems

# Microsoft.Resources Subscriptions - Get (the api-version azure-mgmt-resource's SubscriptionClient sends).
SUBSCRIPTIONS_API_VERSION = "2022-12-01"


def subscription_tenant(subscription_id: str) -> str | None:
    """The tenant (directory) the subscription is in, as ARM answers ``GET /subscriptions/{id}``."""
    request = HttpRequest(
        "GET", f"/subscriptions/{subscription_id}", params={"api-version": SUBSCRIPTIONS_API_VERSION}
    )
    with azure_call("read the gallery's subscription", f"/subscriptions/{subscription_id}"):
        response = clients.arm_send(subscription_id, request)
        if response.status_code != 200:
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        tenant = response.json().get("tenantId")
    return str(tenant).lower() if tenant else None


@activity(CHECK_MARKETPLACE)
def check_marketplace(inp: MarketplaceCheckInput) -> MarketplaceCheckResult:
    """The gallery route's preconditions, all read-only: the tenant matches, principals are known."""
    s = get_marketplace_settings()
    publisher = inp.publisher_tenant_id or s.publisher_tenant_id
    principals = list(inp.partner_center_principals or s.partner_center_principals)
    problems: list[str] = []
    if not principals:
        problems.append(
            "marketplace: no Partner Center principals to grant the gallery to; set "
            f"marketplace.partnerCenterPrincipals or the app setting {SETTING_PRINCIPALS} to the object ids "
            "of 'Microsoft Partner Center Resource Provider' and 'Compute Image Registry' in the publisher's "
            "tenant (they appear once Microsoft.PartnerCenterIngestion is registered on the subscription)"
        )
    tenant = subscription_tenant(inp.subscription_id)
    if not publisher:
        problems.append(
            f"marketplace: no publisher tenant; set marketplace.publisherTenantId or the app setting "
            f"{SETTING_TENANT} to the tenant of the Partner Center account"
        )
    elif tenant != publisher:
        problems.append(
            f"marketplace: the gallery's subscription {inp.subscription_id} is in tenant {tenant}, not in the "
            f"publisher's tenant {publisher}; Partner Center publishes only from a gallery in the "
            "publisher's own tenant: use a gallery in a subscription of that tenant, or the publisher "
            "account of this one"
        )
    return MarketplaceCheckResult(
        subscription_tenant_id=tenant, publisher_tenant_id=publisher, principals=principals, problems=problems
    )


def _check_one(vhd: VhdToCheck) -> VhdCheck:
    blob = _blob(vhd.blob_url)  # the export endpoint is verified again before the client exists
    where = strip_query(vhd.blob_url)
    with azure_call("read the exported VHD", where):
        props = blob.get_blob_properties()
        length = int(props.size or 0)
        footer = b""
        if length >= FOOTER_SIZE:
            footer = blob.download_blob(offset=length - FOOTER_SIZE, length=FOOTER_SIZE).readall()
    blob_type = str(getattr(props.blob_type, "value", props.blob_type))
    size, problems = footer_problems(blob_type, length, footer)
    problems += size_problems(vhd.os_disk, vhd.os_type, vhd.size_gb)
    return VhdCheck(
        disk_key=vhd.disk_key,
        disk_name=vhd.disk_name,
        blob_url=where,
        blob_type=blob_type,
        virtual_size=size,
        size_gb=vhd.size_gb,
        problems=problems,
    )


@activity(CHECK_MARKETPLACE_VHDS)
def check_marketplace_vhds(inp: VhdRulesInput) -> VhdRulesResult:
    """Each exported VHD against Marketplace's file rules (read-only; idempotent)."""
    return VhdRulesResult(checks=[_check_one(v) for v in inp.vhds])
