"""The capture request the ``capture`` command sends: a JSON file, then the flags over it.

The client does not judge the request: the API checks every field at intake and answers each invalid one
(exit code 3). Here the flags only become the request's camelCase fields.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from imagepipeline.api import UsageError


def add_request_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``capture``: one per field of the request (README, "Start a capture")."""
    p.add_argument("--file", "-f", help="a JSON capture request (- for stdin); the flags below override it")
    p.add_argument("--vm", dest="source_vm_id", help="sourceVmId: the full resource id of the VM")
    p.add_argument("--gallery", help="gallery as <resource group>/<name>")
    p.add_argument("--gallery-subscription", help="gallery.subscriptionId (default: the VM's)")
    p.add_argument("--definition", help="imageDefinition.name")
    p.add_argument("--publisher", help="imageDefinition.publisher (to create the definition)")
    p.add_argument("--offer", help="imageDefinition.offer")
    p.add_argument("--sku", help="imageDefinition.sku")
    p.add_argument("--description", help="imageDefinition.description")
    p.add_argument(
        "--no-create", action="store_true", help="createIfMissing: false for gallery and definition"
    )
    p.add_argument("--version", dest="image_version", help='Major.Minor.Patch or "auto" (the default)')
    p.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="NAME[:REPLICAS[:STORAGE]]",
        help="a target region (repeat it), e.g. westeurope:2:Standard_ZRS",
    )
    p.add_argument("--end-of-life", help="endOfLifeDate YYYY-MM-DD")
    p.add_argument("--exclude-from-latest", action="store_true", default=None)
    p.add_argument("--prepare", choices=["deprovision", "none"])
    p.add_argument("--capture-mode", choices=["inPlace", "specialized"])
    p.add_argument("--export-account", help="vhdExport.accountUrl (https://<account>.blob.core.windows.net)")
    p.add_argument("--export-container", help="vhdExport.container")
    p.add_argument("--keep-snapshots", action="store_true", help="deleteSnapshots: false")
    p.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag of the version (repeat it)"
    )
    p.add_argument("--notify-webhook", help="notify.webhookUrl")
    p.add_argument("--notify-setting", help="notify.webhookSetting")


def _read_file(name: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot read {name}: {exc.strerror}.") from None
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name} is not JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise UsageError(f"{name} must hold a JSON object (the capture request).")
    return body


def _region(text: str) -> dict[str, Any]:
    name, _, rest = text.partition(":")
    count, _, storage = rest.partition(":")
    region: dict[str, Any] = {"name": name}
    if count:
        if not count.isdigit():
            raise UsageError(f"--region {text}: the replica count must be a whole number.")
        region["replicaCount"] = int(count)
    if storage:
        region["storageAccountType"] = storage
    return region


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


def _tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag {pair}: expected KEY=VALUE.")
        tags[key] = value
    return tags


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    body = _read_file(args.file) if args.file else {}
    _set(body, "sourceVmId", args.source_vm_id)
    gallery = dict(body.get("gallery") or {})
    if args.gallery:
        rg, sep, name = args.gallery.partition("/")
        if not sep:
            raise UsageError(f"--gallery {args.gallery}: expected <resource group>/<gallery name>.")
        gallery.update(resourceGroup=rg, name=name)
    _set(gallery, "subscriptionId", args.gallery_subscription)
    definition = dict(body.get("imageDefinition") or {})
    for key in ("definition", "publisher", "offer", "sku", "description"):
        _set(definition, "name" if key == "definition" else key, getattr(args, key))
    if args.no_create:
        gallery["createIfMissing"] = definition["createIfMissing"] = False
    if gallery:
        body["gallery"] = gallery
    if definition:
        body["imageDefinition"] = definition
    _set(body, "version", args.image_version)
    if args.region:
        body["targetRegions"] = [_region(r) for r in args.region]
    _set(body, "endOfLifeDate", args.end_of_life)
    _set(body, "excludeFromLatest", args.exclude_from_latest)
    _set(body, "prepare", args.prepare)
    _set(body, "captureMode", args.capture_mode)
    if args.export_account or args.export_container:
        export = dict(body.get("vhdExport") or {})
        _set(export, "accountUrl", args.export_account)
        _set(export, "container", args.export_container)
        body["vhdExport"] = export
    if args.keep_snapshots:
        body["deleteSnapshots"] = False
    if args.tag:
        body["tags"] = {**(body.get("tags") or {}), **_tags(args.tag)}
    if args.notify_webhook or args.notify_setting:
        notify = dict(body.get("notify") or {})
        _set(notify, "webhookUrl", args.notify_webhook)
        _set(notify, "webhookSetting", args.notify_setting)
        body["notify"] = notify
    if not body:
        raise UsageError("No capture request: give --file or the request flags (at least --vm).")
    return body
