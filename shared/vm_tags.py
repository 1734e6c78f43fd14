"""The VM tags that opt a VM into "capture on deallocation" (the Event Grid path), parsed into a CaptureRequest.

A VM opts in by carrying any ``image-pipeline:*`` tag below. The tags are turned into the same
``CaptureRequest`` as ``POST /api/captures`` (with ``prepare: none``: the owner deprovisioned the
guest before deallocating) and checked by the same ``validate_request``, so the rules are the same
on every path; only the error field names differ: each error names the tag to fix.

A capture on this path may generalize the VM, which can never start again, so it also needs an explicit
``image-pipeline:mode`` (``inPlace``, ``specialized`` or ``clone``): a VM deallocated by someone who only tagged its
gallery (or by a nightly cost-saving job) is not captured, and the error names the missing tag and what
it means.

| tag | value | request field |
|---|---|---|
| ``image-pipeline:mode`` (required) | ``inPlace``: generalize the VM itself (it can never start again; deprovision the guest before deallocating it); ``specialized``: capture the disks as they are (osState Specialized), the VM is not generalized and stays deallocated; ``clone``: a copy of the VM is deprovisioned, generalized and captured (osState Generalized), then deleted; the VM stays deallocated and unchanged | ``captureMode`` |
| ``image-pipeline:gallery`` (required) | ``<rg>/<gallery>``, ``<subscription>/<rg>/<gallery>`` or the gallery's ARM id | ``gallery`` (created if missing) |
| ``image-pipeline:definition`` (required) | image definition name | ``imageDefinition.name`` |
| ``image-pipeline:identifier`` | ``<publisher>/<offer>/<sku>``: the definition is created if missing; without it, it must exist | ``imageDefinition.publisher/offer/sku`` + ``createIfMissing`` |
| ``image-pipeline:regions`` | comma list of ``region[:replicas[:storageType]]``, e.g. ``westeurope:2:Standard_ZRS, eastus2`` | ``targetRegions`` (the VM's region is always added) |
| ``image-pipeline:version`` | ``auto`` (default) or ``Major.Minor.Patch`` | ``version`` |
| ``image-pipeline:export`` | ``https://<account>.blob.core.windows.net/<container>`` | ``vhdExport`` |
| ``image-pipeline:delete-snapshots`` | ``true`` (default) / ``false`` | ``deleteSnapshots`` |
| ``image-pipeline:end-of-life`` | ``YYYY-MM-DD`` | ``endOfLifeDate`` |
| ``image-pipeline:exclude-from-latest`` | ``true`` / ``false`` (default) | ``excludeFromLatest`` |
| ``image-pipeline:webhook`` | ``https://…`` completion-notice webhook without query string (tags are readable by every Reader: no secrets; a URL with ``?`` is refused) | ``notify.webhookUrl`` |
| ``image-pipeline:webhook-setting`` | name of an app setting ``NOTICE_WEBHOOK_<NAME>`` whose value is the webhook URL (for URLs that carry a key) | ``notify.webhookSetting`` |
| ``image-pipeline:enabled`` | ``true`` (default) / ``false``: keep the tags but pause capturing | — |

Tag names are case-insensitive (as in Azure); values are trimmed. An unknown ``image-pipeline:*`` tag is
an error (a typo such as ``image-pipeline:region`` must not silently drop the regions). The tags the
pipeline itself writes on what it creates (capture id, run id, source VM, triggering event) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.field_errors import FieldError
from shared.ids import TAG_CAPTURE_ID, TAG_RUN_ID, TAG_SOURCE_VM, ResourceId
from shared.request_rules import WEBHOOK_SETTING_PREFIX, webhook_url_problem
from shared.requests import CaptureRequest, validate_request

TAG_PREFIX = "image-pipeline:"
TAG_MODE = "image-pipeline:mode"
TAG_GALLERY = "image-pipeline:gallery"
TAG_DEFINITION = "image-pipeline:definition"
TAG_IDENTIFIER = "image-pipeline:identifier"
TAG_REGIONS = "image-pipeline:regions"
TAG_VERSION = "image-pipeline:version"
TAG_EXPORT = "image-pipeline:export"
TAG_DELETE_SNAPSHOTS = "image-pipeline:delete-snapshots"
TAG_END_OF_LIFE = "image-pipeline:end-of-life"
TAG_EXCLUDE_FROM_LATEST = "image-pipeline:exclude-from-latest"
TAG_WEBHOOK = "image-pipeline:webhook"
TAG_WEBHOOK_SETTING = "image-pipeline:webhook-setting"
TAG_ENABLED = "image-pipeline:enabled"

# Written by the pipeline into the request's tags (so onto the snapshots and the image version) when
# a capture is started by a deallocation event: which event, and when the VM was deallocated. The
# Event Grid trigger reads them back from the previous capture's input to skip duplicate deliveries.
TAG_EVENT_ID = "image-pipeline:event-id"
TAG_DEALLOCATED_AT = "image-pipeline:deallocated-at"

INPUT_TAGS: tuple[str, ...] = (
    TAG_MODE,
    TAG_GALLERY,
    TAG_DEFINITION,
    TAG_IDENTIFIER,
    TAG_REGIONS,
    TAG_VERSION,
    TAG_EXPORT,
    TAG_DELETE_SNAPSHOTS,
    TAG_END_OF_LIFE,
    TAG_EXCLUDE_FROM_LATEST,
    TAG_WEBHOOK,
    TAG_WEBHOOK_SETTING,
    TAG_ENABLED,
)
_PIPELINE_WRITTEN = {
    t.lower() for t in (TAG_CAPTURE_ID, TAG_RUN_ID, TAG_SOURCE_VM, TAG_EVENT_ID, TAG_DEALLOCATED_AT)
}
MODE_IN_PLACE = "inPlace"
MODE_SPECIALIZED = "specialized"
MODE_CLONE = "clone"
# Accepted values, matched case-insensitively.
MODES: dict[str, str] = {m.lower(): m for m in (MODE_IN_PLACE, MODE_SPECIALIZED, MODE_CLONE)}
IN_PLACE_MEANS = (
    "inPlace generalizes this VM in place: it can never start again, and its guest must have been "
    "deprovisioned (waagent -deprovision+user or sysprep) before the deallocation"
)
SPECIALIZED_MEANS = (
    "specialized captures the deallocated VM's disks as they are into an osState Specialized definition; "
    "the VM is not generalized and stays deallocated"
)
CLONE_MEANS = (
    "clone copies the deallocated VM's disks into the build resource group, deprovisions and generalizes a VM "
    "made of the copies and captures it (osState Generalized), then deletes the copy; this VM stays as it is"
)
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}

# Where a request field's error points back to: the first matching prefix of the JSON path wins.
_FIELD_TO_TAG: tuple[tuple[str, str], ...] = (
    ("captureMode", TAG_MODE),
    ("gallery", TAG_GALLERY),
    ("imageDefinition.name", TAG_DEFINITION),
    ("imageDefinition", TAG_IDENTIFIER),
    ("targetRegions", TAG_REGIONS),
    ("version", TAG_VERSION),
    ("vhdExport", TAG_EXPORT),
    ("deleteSnapshots", TAG_DELETE_SNAPSHOTS),
    ("endOfLifeDate", TAG_END_OF_LIFE),
    ("excludeFromLatest", TAG_EXCLUDE_FROM_LATEST),
    ("notify.webhookSetting", TAG_WEBHOOK_SETTING),
    ("notify", TAG_WEBHOOK),
    ("sourceVmId", "(the event's VM id)"),
)


@dataclass(frozen=True)
class TagParse:
    """What a VM's tags say: not opted in, paused, invalid (``errors``), or a ``request`` to capture."""

    opted_in: bool
    enabled: bool = True
    request: CaptureRequest | None = None
    errors: list[FieldError] = field(default_factory=list)

    def describe_errors(self) -> str:
        return "; ".join(f"{e.field}: {e.message}" for e in self.errors)


def opted_in(tags: dict[str, str] | None) -> bool:
    """True if the VM carries any ``image-pipeline:*`` tag other than the ones the pipeline writes."""
    return any(
        str(k).strip().lower().startswith(TAG_PREFIX) and str(k).strip().lower() not in _PIPELINE_WRITTEN
        for k in (tags or {})
    )


def _bool(value: str, tag: str, errors: list[FieldError]) -> bool | None:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    errors.append(FieldError(field=tag, message=f"must be true or false, not {value!r}"))
    return None


def parse_gallery(value: str) -> dict[str, Any]:
    """``<rg>/<gallery>``, ``<sub>/<rg>/<gallery>`` or a gallery ARM id → the request's ``gallery`` object."""
    v = value.strip()
    if v.startswith("/"):
        try:
            rid = ResourceId.parse(v)
        except ValueError:
            rid = None
        if rid is None or rid.type.lower() != "galleries" or rid.namespace.lower() != "microsoft.compute":
            raise ValueError(
                "an ARM id here must be a Microsoft.Compute/galleries id: "
                "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/galleries/<name>"
            )
        return {"subscriptionId": rid.subscription_id, "resourceGroup": rid.resource_group, "name": rid.name}
    parts = [p.strip() for p in v.split("/")]
    if len(parts) == 2 and all(parts):
        return {"resourceGroup": parts[0], "name": parts[1]}
    if len(parts) == 3 and all(parts):
        return {"subscriptionId": parts[0], "resourceGroup": parts[1], "name": parts[2]}
    raise ValueError(
        f"must be <resourceGroup>/<gallery>, <subscriptionId>/<resourceGroup>/<gallery> or the gallery's "
        f"ARM id, not {value!r}"
    )


def parse_regions(value: str) -> list[dict[str, Any]]:
    """``westeurope:2:Standard_ZRS, eastus2`` → the request's ``targetRegions`` list."""
    regions: list[dict[str, Any]] = []
    for item in (i.strip() for i in value.split(",")):
        if not item:
            continue
        parts = [p.strip() for p in item.split(":")]
        if len(parts) > 3 or not parts[0]:
            raise ValueError(
                f"{item!r} is not region[:replicas[:storageType]], e.g. westeurope:2:Standard_ZRS"
            )
        region: dict[str, Any] = {"name": parts[0]}
        if len(parts) >= 2 and parts[1]:
            if not parts[1].isdigit():
                raise ValueError(f"{item!r}: the replica count {parts[1]!r} must be a whole number")
            region["replicaCount"] = int(parts[1])
        if len(parts) == 3 and parts[2]:
            region["storageAccountType"] = parts[2]
        regions.append(region)
    return regions


def parse_export(value: str) -> dict[str, str]:
    """``https://<account>.blob.core.windows.net/<container>`` → the request's ``vhdExport`` object."""
    v = value.strip().rstrip("/")
    _scheme, sep, rest = v.partition("://")
    if not sep or "/" not in rest:
        raise ValueError(
            f"must be the blob endpoint followed by the container, e.g. "
            f"https://stexports.blob.core.windows.net/vhds, not {value!r}"
        )
    account, container = v.rsplit("/", 1)
    return {"accountUrl": account, "container": container}


def _mode(lowered: dict[str, str], errors: list[FieldError]) -> str | None:
    """The capture mode the tags ask for, or ``None`` with the error (missing or not an accepted value)."""
    value = lowered.get(TAG_MODE)
    if value is None:
        errors.append(
            FieldError(
                field=TAG_MODE,
                message=f"required on a VM captured on deallocation: tag it {TAG_MODE}={MODE_IN_PLACE} only if "
                f"that is what you want; {IN_PLACE_MEANS}",
            )
        )
        return None
    mode = MODES.get(value.lower())
    if mode is None:
        errors.append(
            FieldError(
                field=TAG_MODE,
                message=f"{value[:64]!r} is not a capture mode; the accepted values are {MODE_IN_PLACE} "
                f"({IN_PLACE_MEANS}), {MODE_SPECIALIZED} ({SPECIALIZED_MEANS}) and {MODE_CLONE} ({CLONE_MEANS})",
            )
        )
    return mode


def _tag_of(path: str) -> str:
    for prefix, tag in _FIELD_TO_TAG:
        if path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
            return tag
    return path


@dataclass
class _Body:
    """The request body being built from the (lower-cased) tags, and the errors found on the way."""

    lowered: dict[str, str]
    body: dict[str, Any]
    errors: list[FieldError] = field(default_factory=list)
    failed_tags: set[str] = field(default_factory=set)

    def fail(self, tag: str, message: str) -> None:
        self.errors.append(FieldError(field=tag, message=message))
        self.failed_tags.add(tag)

    def parse(self, tag: str, fn: Any) -> Any:
        try:
            return fn(self.lowered[tag])
        except ValueError as exc:
            self.fail(tag, str(exc))
            return None

    def boolean(self, tag: str, key: str) -> None:
        if tag in self.lowered:
            value = _bool(self.lowered[tag], tag, self.errors)
            if value is not None:
                self.body[key] = value

    def unknown_tags(self) -> None:
        for key in sorted(self.lowered):
            if key.startswith(TAG_PREFIX) and key not in INPUT_TAGS and key not in _PIPELINE_WRITTEN:
                self.errors.append(
                    FieldError(field=key, message=f"unknown tag; the known ones are {', '.join(INPUT_TAGS)}")
                )

    def target(self) -> None:
        """The gallery and the image definition (both required)."""
        lowered = self.lowered
        if TAG_GALLERY in lowered:
            gallery = self.parse(TAG_GALLERY, parse_gallery)
            if gallery is not None:
                self.body["gallery"] = {**gallery, "createIfMissing": True}
        else:
            self.fail(TAG_GALLERY, "required: <resourceGroup>/<gallery>")
        definition: dict[str, Any] = {"createIfMissing": False}
        if TAG_DEFINITION in lowered:
            definition["name"] = lowered[TAG_DEFINITION]
        else:
            self.fail(TAG_DEFINITION, "required: the image definition's name")
        if TAG_IDENTIFIER in lowered:
            parts = [p.strip() for p in lowered[TAG_IDENTIFIER].split("/")]
            if len(parts) != 3 or not all(parts):
                self.fail(
                    TAG_IDENTIFIER, f"must be <publisher>/<offer>/<sku>, not {lowered[TAG_IDENTIFIER]!r}"
                )
            else:
                definition.update(publisher=parts[0], offer=parts[1], sku=parts[2], createIfMissing=True)
        self.body["imageDefinition"] = definition

    def options(self) -> None:
        lowered, body = self.lowered, self.body
        if TAG_REGIONS in lowered:
            regions = self.parse(TAG_REGIONS, parse_regions)
            if regions is not None:
                body["targetRegions"] = regions
        if TAG_VERSION in lowered:
            body["version"] = lowered[TAG_VERSION]
        if TAG_EXPORT in lowered:
            export = self.parse(TAG_EXPORT, parse_export)
            if export is not None:
                body["vhdExport"] = export
        self.boolean(TAG_DELETE_SNAPSHOTS, "deleteSnapshots")
        self.boolean(TAG_EXCLUDE_FROM_LATEST, "excludeFromLatest")
        if TAG_END_OF_LIFE in lowered:
            body["endOfLifeDate"] = lowered[TAG_END_OF_LIFE]

    def notify(self) -> None:
        notify: dict[str, str] = {}
        if TAG_WEBHOOK in self.lowered:
            hook = self.lowered[TAG_WEBHOOK]
            if webhook_url_problem(hook) and ("?" in hook or "#" in hook or "@" in hook):
                # Named for the tag path (the request's message names notify.webhookSetting). The value is
                # not repeated: the error is logged, and it may hold a key.
                self.fail(
                    TAG_WEBHOOK,
                    "must not carry a query string, fragment or credentials (a key or signature in a "
                    "tag is readable by every Reader of the VM, and would be stored in the capture's history): "
                    f"put the whole URL in an app setting named {WEBHOOK_SETTING_PREFIX}<NAME> and tag the VM "
                    f"{TAG_WEBHOOK_SETTING}=<that name> instead",
                )
            else:
                notify["webhookUrl"] = hook
        if TAG_WEBHOOK_SETTING in self.lowered:
            notify["webhookSetting"] = self.lowered[TAG_WEBHOOK_SETTING]
        if notify:
            self.body["notify"] = notify


def request_from_tags(
    vm_id: str, tags: dict[str, str] | None, *, extra_tags: dict[str, str] | None = None
) -> TagParse:
    """Turn a VM's tags into a validated ``CaptureRequest`` (``prepare: none``), or say why not.

    ``extra_tags`` go into the request's ``tags`` (the event's id and time, see ``TAG_EVENT_ID``).
    """
    if not opted_in(tags):
        return TagParse(opted_in=False)
    # ARM tags are strings; str() keeps a caller's stray non-string value from raising here.
    lowered = {str(k).strip().lower(): str(v).strip() for k, v in (tags or {}).items()}
    b = _Body(lowered, {"sourceVmId": vm_id, "prepare": "none"})
    b.unknown_tags()
    enabled = True
    if TAG_ENABLED in lowered:
        enabled = _bool(lowered[TAG_ENABLED], TAG_ENABLED, b.errors) is not False
    b.failed_tags.add(TAG_MODE)
    mode = _mode(lowered, b.errors)
    if mode is not None:
        b.body["captureMode"] = mode
    if mode in (MODE_SPECIALIZED, MODE_CLONE):  # the VM was deallocated: its snapshots are of a stopped VM
        b.body["consistency"] = "stopped"
    if mode == MODE_CLONE:  # the owner keeps the VM as it is: the pipeline deprovisions the clone's guest
        b.body["prepare"] = "deprovision"
    b.target()
    b.options()
    b.notify()
    if extra_tags:
        b.body["tags"] = dict(extra_tags)

    request, validation = validate_request(b.body)
    for e in validation:
        tag = _tag_of(e.field)
        if tag in b.failed_tags:
            continue  # already reported with a more precise message
        b.errors.append(FieldError(field=tag, message=e.message))
    if b.errors:
        return TagParse(opted_in=True, enabled=enabled, errors=b.errors)
    return TagParse(opted_in=True, enabled=enabled, request=request)
