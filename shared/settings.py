"""Application settings, read once from the environment into a typed object.

Every setting is documented in ``local.settings.sample.json``. Public Azure is the
default; sovereign clouds and the local cloud (azsim) are selected by settings only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from shared.contracts import CapturePolicy
from shared.endpoints import (
    SETTING_ACCOUNTS,
    SETTING_ALLOW_LOOPBACK,
    SETTING_SUFFIX,
    SETTING_TEMPLATE,
    StorageEndpoints,
)
from shared.marketplace_spec import SETTING_PRINCIPALS, SETTING_TENANT, guid_problem
from shared.release_spec import ReleaseDefaults
from shared.verify_spec import BootTestDefaults


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"setting {name}={raw!r} must be a number") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise ValueError(f"setting {name}={raw!r} must be true or false")


def _policy(env: Mapping[str, str]) -> CapturePolicy:
    """The capture policy's timings and bounds (CAPTURE_* settings; defaults: ``CapturePolicy``)."""
    defaults = CapturePolicy()
    return CapturePolicy(
        poll_min_seconds=_float(env, "CAPTURE_POLL_MIN_SECONDS", defaults.poll_min_seconds),
        poll_max_seconds=_float(env, "CAPTURE_POLL_MAX_SECONDS", defaults.poll_max_seconds),
        guest_stop_timeout_seconds=_float(
            env, "CAPTURE_GUEST_STOP_TIMEOUT_SECONDS", defaults.guest_stop_timeout_seconds
        ),
        power_state_timeout_seconds=_float(
            env, "CAPTURE_POWER_STATE_TIMEOUT_SECONDS", defaults.power_state_timeout_seconds
        ),
        snapshot_timeout_seconds=_float(
            env, "CAPTURE_SNAPSHOT_TIMEOUT_SECONDS", defaults.snapshot_timeout_seconds
        ),
        copy_stall_seconds=_float(env, "CAPTURE_COPY_STALL_SECONDS", defaults.copy_stall_seconds),
        replication_timeout_seconds=_float(
            env, "CAPTURE_REPLICATION_TIMEOUT_SECONDS", defaults.replication_timeout_seconds
        ),
        expected_copy_mbps=_float(env, "CAPTURE_EXPECTED_COPY_MBPS", defaults.expected_copy_mbps),
        transient_retry_attempts=int(
            _float(env, "CAPTURE_TRANSIENT_RETRY_ATTEMPTS", defaults.transient_retry_attempts)
        ),
        transient_retry_first_seconds=_float(
            env, "CAPTURE_TRANSIENT_RETRY_FIRST_SECONDS", defaults.transient_retry_first_seconds
        ),
        max_polls_per_execution=int(
            _float(env, "CAPTURE_MAX_POLLS_PER_EXECUTION", defaults.max_polls_per_execution)
        ),
        sas_margin_seconds=int(_float(env, "CAPTURE_SAS_MARGIN_SECONDS", defaults.sas_margin_seconds)),
        principal_wait_seconds=_float(env, "SHARE_PRINCIPAL_WAIT_SECONDS", defaults.principal_wait_seconds),
        boot_test=BootTestDefaults.from_env(env),
    )


def _release_defaults(env: Mapping[str, str]) -> ReleaseDefaults:
    """Retention and sharing for requests without them (shared.release_spec)."""
    return ReleaseDefaults.parse(
        env.get("RETENTION_KEEP_LATEST"), env.get("RETENTION_END_OF_LIFE_DAYS"), env.get("SHARE_PRINCIPALS")
    )


SETTING_BUILD_GROUP = "CAPTURE_BUILD_RESOURCE_GROUP"
SETTING_BUILD_SUBNET = "CAPTURE_BUILD_SUBNET_ID"
SETTING_CLONE_VM_SIZE = "CAPTURE_CLONE_VM_SIZE"


def _positive_int(name: str, value: float) -> int:
    if value < 1 or value != int(value):
        raise ValueError(f"setting {name}={value!r} must be a whole number of at least 1")
    return int(value)


def _migration_settings(env: Mapping[str, str]) -> tuple[int, float]:
    """The migration's settings (``POST /api/migrations``): captures at once, spacing of the first ones."""
    parallel = _float(env, "MIGRATION_MAX_PARALLEL", 8)
    spacing = _float(env, "MIGRATION_START_SPACING_SECONDS", 1.0)
    return _positive_int("MIGRATION_MAX_PARALLEL", parallel), max(0.0, spacing)


@dataclass(frozen=True)
class Settings:
    arm_endpoint: str = "https://management.azure.com"
    arm_audience: str = "https://management.azure.com"
    storage_audience: str = "https://storage.azure.com"
    authority_host: str | None = None
    managed_identity_client_id: str | None = None
    capture_requests_queue: str = "capture-requests"
    capture_results_queue: str = "capture-results"
    arm_retry_total: int = 6
    arm_retry_backoff_seconds: float = 2.0
    arm_retry_backoff_max_seconds: float = 60.0
    lro_polling_interval_seconds: float = 5.0
    policy: CapturePolicy = field(default_factory=CapturePolicy)
    # Where the app may send its storage token and a snapshot SAS (shared.endpoints).
    storage_endpoints: StorageEndpoints = field(default_factory=StorageEndpoints)
    # Development only: webhooks on loopback (127.0.0.0/8, ::1, localhost), also over http.
    webhook_allow_loopback: bool = False
    # Retention and sharing for requests that leave them out (shared.release_spec.ReleaseDefaults).
    release: ReleaseDefaults = field(default_factory=ReleaseDefaults)
    # captureMode "clone" (orchestrators/capture/clone.py): where the copy of the VM is built, its subnet,
    # its size (None: the source VM's).
    build_resource_group: str | None = None
    build_subnet_id: str | None = None
    clone_vm_size: str | None = None
    # POST /api/migrations: how many image captures one migration runs at once (shared.migrations).
    migration_max_parallel: int = 8
    # ... and how far apart the first of them start (their preflight reads fit ARM's read refill).
    migration_start_spacing_seconds: float = 1.0

    @property
    def arm_scope(self) -> str:
        return self.arm_audience.rstrip("/") + "/.default"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        policy = _policy(env)
        migration = _migration_settings(env)
        return cls(
            arm_endpoint=env.get("AZURE_ARM_ENDPOINT", cls.arm_endpoint).rstrip("/"),
            arm_audience=env.get("AZURE_ARM_AUDIENCE", cls.arm_audience),
            storage_audience=env.get("AZURE_STORAGE_AUDIENCE", cls.storage_audience),
            authority_host=env.get("AZURE_AUTHORITY_HOST") or None,
            managed_identity_client_id=env.get("AZURE_CLIENT_ID") or None,
            capture_requests_queue=env.get("CAPTURE_REQUESTS_QUEUE", cls.capture_requests_queue),
            capture_results_queue=env.get("CAPTURE_RESULTS_QUEUE", cls.capture_results_queue),
            arm_retry_total=int(_float(env, "AZURE_ARM_RETRY_TOTAL", cls.arm_retry_total)),
            arm_retry_backoff_seconds=_float(
                env, "AZURE_ARM_RETRY_BACKOFF_SECONDS", cls.arm_retry_backoff_seconds
            ),
            arm_retry_backoff_max_seconds=_float(
                env, "AZURE_ARM_RETRY_BACKOFF_MAX_SECONDS", cls.arm_retry_backoff_max_seconds
            ),
            lro_polling_interval_seconds=_float(
                env, "AZURE_LRO_POLLING_INTERVAL_SECONDS", cls.lro_polling_interval_seconds
            ),
            policy=policy,
            storage_endpoints=StorageEndpoints.from_settings(
                env.get(SETTING_SUFFIX), env.get(SETTING_TEMPLATE), env.get(SETTING_ACCOUNTS)
            ),
            webhook_allow_loopback=_bool(env, SETTING_ALLOW_LOOPBACK, False),
            release=_release_defaults(env),
            build_resource_group=(env.get(SETTING_BUILD_GROUP) or "").strip() or None,
            build_subnet_id=(env.get(SETTING_BUILD_SUBNET) or "").strip() or None,
            clone_vm_size=(env.get(SETTING_CLONE_VM_SIZE) or "").strip() or None,
            migration_max_parallel=migration[0],
            migration_start_spacing_seconds=migration[1],
        )


def app_setting(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The value of the app setting ``name`` (``None`` if unset or empty), read now, not cached.

    For settings a request names (``notify.webhookSetting``): their values may be secrets, so only the
    activity that uses one reads it, and nothing returns or logs it.
    """
    value = (os.environ if env is None else env).get(name)
    return value or None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once (activities and triggers call this, never os.environ)."""
    return Settings.from_env()


# --- The janitor (triggers/janitor.py, docs/janitor.md): its own block, read once like Settings. ---

JANITOR_DEFAULT_SCHEDULE = "0 17 * * * *"


def _janitor_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise ValueError(f"setting {name}={raw!r} must be true or false")


def _janitor_scopes(raw: str) -> tuple[str, ...]:
    """``/subscriptions/<id>`` or ``/subscriptions/<id>/resourceGroups/<rg>``, separated by commas or spaces."""
    scopes = []
    for item in raw.replace(",", " ").split():
        parts = item.strip("/").split("/")
        ok = len(parts) in (2, 4) and parts[0].lower() == "subscriptions" and all(parts)
        if not ok or (len(parts) == 4 and parts[2].lower() != "resourcegroups"):
            raise ValueError(
                f"setting JANITOR_SCOPES has {item!r}: expected /subscriptions/<id> or "
                "/subscriptions/<id>/resourceGroups/<name>"
            )
        scopes.append("/" + "/".join(parts))
    return tuple(scopes)


@dataclass(frozen=True)
class JanitorSettings:
    schedule: str = JANITOR_DEFAULT_SCHEDULE
    grace_seconds: float = 7200.0
    stuck_creating_seconds: float = 86400.0
    dry_run: bool = False
    scopes: tuple[str, ...] = ()
    lookback_hours: float = 168.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JanitorSettings:
        env = os.environ if env is None else env
        grace = _float(env, "JANITOR_GRACE_SECONDS", cls.grace_seconds)
        stuck = _float(env, "JANITOR_STUCK_CREATING_SECONDS", cls.stuck_creating_seconds)
        lookback = _float(env, "JANITOR_LOOKBACK_HOURS", cls.lookback_hours)
        if grace < 0 or stuck < 0 or lookback <= 0:
            raise ValueError(
                "settings JANITOR_GRACE_SECONDS and JANITOR_STUCK_CREATING_SECONDS must be >= 0 "
                "and JANITOR_LOOKBACK_HOURS > 0"
            )
        return cls(
            schedule=(env.get("JANITOR_SCHEDULE") or "").strip() or JANITOR_DEFAULT_SCHEDULE,
            grace_seconds=grace,
            stuck_creating_seconds=stuck,
            dry_run=_janitor_bool(env, "JANITOR_DRY_RUN", cls.dry_run),
            scopes=_janitor_scopes(env.get("JANITOR_SCOPES") or ""),
            lookback_hours=lookback,
        )


@lru_cache(maxsize=1)
def get_janitor_settings() -> JanitorSettings:
    """The janitor's settings, read once per process."""
    return JanitorSettings.from_env()


def janitor_schedule(env: Mapping[str, str] | None = None) -> str:
    """The janitor's NCRONTAB schedule alone: read when ``function_app.py`` is indexed, so that a bad value
    of another janitor setting fails the janitor's run (with its message), not the app's import."""
    env = os.environ if env is None else env
    return (env.get("JANITOR_SCHEDULE") or "").strip() or JANITOR_DEFAULT_SCHEDULE


# --- The Marketplace hand-off (shared.marketplace_spec, docs/azure-facts.md): its own block, read once. ---


@dataclass(frozen=True)
class MarketplaceSettings:
    """Defaults of ``marketplace`` for the gallery route.

    ``MARKETPLACE_PUBLISHER_TENANT_ID``: the tenant of the publisher's Partner Center account (the gallery's
    subscription must be in it: "The Azure subscription containing the SIG must be under the same tenant as
    the publisher account"). ``MARKETPLACE_PARTNER_CENTER_PRINCIPALS``: comma list of the object ids, in that
    tenant, of the service principals "Microsoft Partner Center Resource Provider" and "Compute Image
    Registry" (created when Microsoft.PartnerCenterIngestion is registered on the subscription; their ids
    are tenant-specific, so there is no default: look them up in Entra ID, Enterprise applications).
    """

    publisher_tenant_id: str | None = None
    partner_center_principals: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MarketplaceSettings:
        env = os.environ if env is None else env
        tenant = (env.get(SETTING_TENANT) or "").strip().lower() or None
        if tenant and guid_problem(tenant):
            raise ValueError(f"setting {SETTING_TENANT}={tenant!r} must be a tenant id (a GUID)")
        ids = tuple(
            p.strip().lower()
            for p in (env.get(SETTING_PRINCIPALS) or "").replace(" ", ",").split(",")
            if p.strip()
        )
        bad = [p for p in ids if guid_problem(p)]
        if bad:
            raise ValueError(
                f"setting {SETTING_PRINCIPALS} has {bad[0]!r}: expected object ids (GUIDs), comma-separated"
            )
        return cls(publisher_tenant_id=tenant, partner_center_principals=tuple(dict.fromkeys(ids)))


@lru_cache(maxsize=1)
def get_marketplace_settings() -> MarketplaceSettings:
    """The hand-off's settings, read once per process."""
    return MarketplaceSettings.from_env()
