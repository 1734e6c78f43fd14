"""Token-bucket throttling with Azure's published sizes: ARM per principal and per subscription, and
Compute RP (CRP) per-resource / per-subscription policies.

Sources (docs/azure-facts.md#throttling):
- ARM, per subscription per principal per operation type: reads 250 / 25 per s, writes 200 / 10 per s,
  deletes 200 / 10 per s; the global subscription limit is 15x that across principals.
- CRP (per region, refill per minute): Low Cost Get VM 12/36 per resource, 8,000/24,000 per
  subscription; Update VM and Delete VM (deallocate) 4/12 per resource, 500/1,500 per subscription;
  High Cost Get (list) 300/900 per subscription; Get Operation 15/45 per resource, 5,000/15,000 per
  subscription; disks/snapshots (observed headers) ~1,000 per 3 min per subscription.
Buckets refill in simulated time: with time scale s a bucket refills 1/s times faster in real time
(time scale 0 never throttles on rate, only never-refilling bursts could, and there are none).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from azsim.core.clock import Clock, utc_iso
from azsim.core.errors import ArmError
from azsim.core.lro import retry_headers


@dataclass
class TokenBucket:
    capacity: float
    refill_per_s: float  # Azure seconds
    tokens: float
    updated: float  # real time

    def _refill(self, now: float, time_scale: float) -> None:
        if time_scale <= 0:
            self.tokens = self.capacity
        else:
            elapsed_azure = max(0.0, now - self.updated) / time_scale
            self.tokens = min(self.capacity, self.tokens + elapsed_azure * self.refill_per_s)
        self.updated = max(self.updated, now)

    def take(self, now: float, time_scale: float) -> float | None:
        """Take a token; return None on success, else the Azure seconds until one is available."""
        self._refill(now, time_scale)
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.refill_per_s

    def remaining(self) -> int:
        return max(0, int(self.tokens + 1e-6))


ARM_LIMITS = {"reads": (250, 25.0), "writes": (200, 10.0), "deletes": (200, 10.0)}
GLOBAL_FACTOR = 15


@dataclass(frozen=True)
class CrpPolicy:
    """A Compute RP policy: per-resource bucket (optional) and per-subscription bucket, refill per minute."""

    name: str
    resource_refill_per_min: float | None
    resource_bucket: int | None
    subscription_refill_per_min: float
    subscription_bucket: int


CRP_POLICIES: dict[str, CrpPolicy] = {
    "LowCostGet": CrpPolicy("LowCostGet", 12, 36, 8000, 24000),
    "HighCostGet": CrpPolicy("HighCostGet", None, None, 300, 900),
    "PutVM": CrpPolicy("PutVM", 4, 12, 500, 1500),
    "UpdateVM": CrpPolicy("UpdateVM", 4, 12, 500, 1500),
    "DeleteVM": CrpPolicy("DeleteVM", 4, 12, 500, 1500),
    "GetOperation": CrpPolicy("GetOperation", 15, 45, 5000, 15000),
    # Observed headers only (CreateUpdateDisks3Min;999 / DeleteDisks3Min;999): ~1,000 per 3 min.
    "CreateUpdateDisks": CrpPolicy("CreateUpdateDisks", None, None, 1000 / 3, 1000),
    "DeleteDisks": CrpPolicy("DeleteDisks", None, None, 1000 / 3, 1000),
    "GetDisks": CrpPolicy("GetDisks", None, None, 8000 / 3, 8000),
}


class Throttler:
    def __init__(self, clock: Clock, time_scale: float, *, enabled: bool = True) -> None:
        self.clock = clock
        self.time_scale = time_scale
        self.enabled = enabled
        self._buckets: dict[tuple[str, ...], TokenBucket] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def _bucket(self, key: tuple[str, ...], capacity: float, refill_per_s: float) -> TokenBucket:
        b = self._buckets.get(key)
        if b is None:
            b = TokenBucket(capacity, refill_per_s, capacity, self.clock.now())
            self._buckets[key] = b
        return b

    def _retry_error(self, azure_wait: float, *, code: str, message: str) -> ArmError:
        headers = retry_headers(azure_wait * self.time_scale, require_retry_after=True)
        return ArmError(429, code, message, headers=headers)

    def check_arm(self, subscription: str, principal: str, kind: str) -> dict[str, str]:
        """Take ARM tokens for one request; raise 429 ``ArmError`` when a bucket is empty."""
        capacity, refill = ARM_LIMITS[kind]
        now = self.clock.now()
        with self._lock:
            mine = self._bucket(("arm", subscription, principal, kind), capacity, refill)
            glob = self._bucket(
                ("arm", subscription, "*", kind), capacity * GLOBAL_FACTOR, refill * GLOBAL_FACTOR
            )
            if not self.enabled:
                return {}
            wait = mine.take(now, self.time_scale)
            if wait is None:
                wait = glob.take(now, self.time_scale)
                if wait is not None:
                    mine.tokens += 1  # not charged: the request is refused
            headers = {
                f"x-ms-ratelimit-remaining-subscription-{kind}": str(mine.remaining()),
                f"x-ms-ratelimit-remaining-subscription-global-{kind}": str(glob.remaining()),
            }
        if wait is not None:
            secs = max(1, math.ceil(wait))
            err = self._retry_error(
                wait,
                code="SubscriptionRequestsThrottled",
                message=f"Number of '{kind[:-1]}' requests for subscription '{subscription}' actor '{principal}' "
                f"exceeded. Please try again after '{secs}' seconds after additional tokens are available. "
                "Refer to https://aka.ms/arm-throttling",
            )
            err.headers.update(headers)
            raise err
        return headers

    def check_crp(
        self, subscription: str, location: str, policy_name: str, resource_id: str
    ) -> dict[str, str]:
        """Take CRP tokens; raise 429 ``OperationNotAllowed``/``TooManyRequests`` as Compute does."""
        policy = CRP_POLICIES[policy_name]
        now = self.clock.now()
        with self._lock:
            sub_b = self._bucket(
                ("crp", subscription, location, policy.name),
                policy.subscription_bucket,
                policy.subscription_refill_per_min / 60,
            )
            res_b = None
            if policy.resource_bucket is not None and policy.resource_refill_per_min is not None:
                res_b = self._bucket(
                    ("crp", resource_id.lower(), policy.name),
                    policy.resource_bucket,
                    policy.resource_refill_per_min / 60,
                )
            if not self.enabled:
                return {}
            wait = None
            limited = ""
            allowed = 0
            if res_b is not None:
                wait = res_b.take(now, self.time_scale)
                limited, allowed = f"{policy.name}Resource", policy.resource_bucket or 0
            if wait is None:
                wait = sub_b.take(now, self.time_scale)
                if wait is not None:
                    limited, allowed = f"{policy.name}3Min", policy.subscription_bucket
                    if res_b is not None:
                        res_b.tokens += 1
            parts = [f"Microsoft.Compute/{policy.name}3Min;{sub_b.remaining()}"]
            if res_b is not None:
                parts.append(f"Microsoft.Compute/{policy.name}Resource;{res_b.remaining()}")
            headers = {"x-ms-ratelimit-remaining-resource": ",".join(parts), "x-ms-request-charge": "1"}
        if wait is not None:
            start = utc_iso()
            detail = (
                f'{{"operationGroup":"{limited}","startTime":"{start}","endTime":"{start}",'
                f'"allowedRequestCount":{allowed},"measuredRequestCount":{allowed + 1}}}'
            )
            err = self._retry_error(
                wait,
                code="OperationNotAllowed",
                message="The server rejected the request because too many requests have been received for this "
                "subscription.",
            )
            err.details = [{"code": "TooManyRequests", "target": limited, "message": detail}]
            err.innererror = {"internalErrorCode": "TooManyRequestsReceived"}
            err.headers.update(headers)
            raise err
        return headers
