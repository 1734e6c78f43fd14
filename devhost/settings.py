"""Host configuration the way the Functions host and Core Tools read it.

- ``host.json`` in the app root: HTTP route prefix, Durable Task hub name and concurrency limits,
  storage-queue trigger options.
- ``local.settings.json`` (or the file given with ``--settings``): ``Values`` become environment
  variables of the app before it is imported. As in Core Tools, a variable that is already set in
  the process environment wins over the file. ``local.settings.sample.json`` is a template only
  and is never read automatically.
- ``--env-file``: ``KEY=VALUE`` lines laid over everything else (azsim writes such a file).

Every error names the file and the field and says what was expected.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devhost.engine.versioning import Versioning, parse_versioning


class SettingsError(Exception):
    """A configuration file is missing, unreadable or has a field of the wrong shape."""


_TIMESPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


def parse_timespan(value: Any, *, where: str) -> float:
    """Seconds from a host.json duration: a .NET TimeSpan string ``[d.]hh:mm:ss[.fff]`` or milliseconds."""
    if isinstance(value, bool):
        raise SettingsError(f"{where}: expected a TimeSpan like '00:00:02' or milliseconds, got {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1000.0
    if isinstance(value, str):
        m = _TIMESPAN.match(value.strip())
        if m:
            days = int(m.group("d") or 0)
            return days * 86400 + int(m.group("h")) * 3600 + int(m.group("m")) * 60 + float(m.group("s"))
    raise SettingsError(f"{where}: expected a TimeSpan like '00:00:02' or milliseconds, got {value!r}")


@dataclass
class QueueOptions:
    """``extensions.queues`` of host.json, with the host's defaults."""

    max_dequeue_count: int = 5
    max_polling_interval: float = 60.0
    min_polling_interval: float = 0.1
    visibility_timeout: float = 0.0
    batch_size: int = 16
    new_batch_threshold: int | None = None
    message_encoding: str = "base64"


OVERRIDABLE_STATES = ("NonRunningStates", "AnyState")
DEFAULT_HUB_NAME = "TestHubName"


@dataclass
class HostConfig:
    """What devhost uses from host.json."""

    route_prefix: str = "api"
    # As written in host.json; ``hub_name`` resolves a whole-value ``%SETTING%`` when read.
    hub_name_setting: str = DEFAULT_HUB_NAME
    max_concurrent_activities: int = 10
    max_concurrent_orchestrations: int = 10
    # durableTask.overridableExistingInstanceStates: may a start reuse the id of a running instance?
    overridable_existing_instance_states: str = "NonRunningStates"
    # defaultVersion / versionMatchStrategy / versionFailureStrategy (devhost.engine.versioning)
    versioning: Versioning = field(default_factory=Versioning)
    queues: QueueOptions = field(default_factory=QueueOptions)
    raw: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def hub_name(self) -> str:
        """The task hub name with ``%SETTING%`` resolved from the app settings (the process environment).

        The extension resolves hubName when it starts, after the app settings are loaded, and only when
        the whole value is one ``%NAME%`` reference (INameResolver.TryResolveWholeString); read this after
        the app settings are applied.
        """
        return resolve_hub_name(
            self.hub_name_setting, os.environ, where=f"{self.path}: extensions.durableTask"
        )

    @property
    def any_state_overridable(self) -> bool:
        return self.overridable_existing_instance_states == "AnyState"


def resolve_hub_name(value: str, environ: Mapping[str, str], *, where: str) -> str:
    m = re.fullmatch(r"%([^%]+)%", value.strip())
    if m is None:
        return value
    found = environ.get(m.group(1))
    if not found:
        raise SettingsError(
            f"{where}.hubName is {value!r}, but the app setting '{m.group(1)}' is not set; add it to "
            "local.settings.json Values or the environment (the task hub name cannot be empty)."
        )
    return found


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the file ({exc.strerror}).") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ""
        if exc.msg == "Extra data":
            hint = (
                " The file holds more than one JSON value (for example two objects back to back); "
                "merge them into one object."
            )
        raise SettingsError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}.{hint}"
        ) from exc


def _expect(obj: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise SettingsError(f"{where}.{key}: expected {_type_names(types)}, got {value!r}")
    if not isinstance(value, types):
        raise SettingsError(f"{where}.{key}: expected {_type_names(types)}, got {value!r}")
    return value


def _type_names(types: type | tuple[type, ...]) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    names = {"str": "a string", "int": "an integer", "dict": "an object", "float": "a number"}
    return " or ".join(names.get(t.__name__, t.__name__) for t in ts)


def load_host_config(app_dir: Path) -> HostConfig:
    """Read ``<app_dir>/host.json``; a missing file means all defaults (Core Tools would refuse to start)."""
    path = app_dir / "host.json"
    cfg = HostConfig()
    if not path.exists():
        return cfg
    data = _read_json(path)
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a JSON object at the top level.")
    cfg.raw = data
    cfg.path = path
    where = f"{path}: extensions"
    ext = _expect(data, "extensions", dict, f"{path}: ") or {}
    http = _expect(ext, "http", dict, where) or {}
    prefix = _expect(http, "routePrefix", str, f"{where}.http")
    if prefix is not None:
        cfg.route_prefix = prefix.strip("/")
    dt = _expect(ext, "durableTask", dict, where) or {}
    hub = _expect(dt, "hubName", str, f"{where}.durableTask")
    if hub:
        cfg.hub_name_setting = hub
    ois = _expect(dt, "overridableExistingInstanceStates", str, f"{where}.durableTask")
    if ois is not None:
        # bound like a .NET enum: names compare case-insensitively
        match = next((v for v in OVERRIDABLE_STATES if v.lower() == ois.strip().lower()), None)
        if match is None:
            raise SettingsError(
                f"{where}.durableTask.overridableExistingInstanceStates: expected one of "
                f"{', '.join(OVERRIDABLE_STATES)}, got {ois!r}"
            )
        cfg.overridable_existing_instance_states = match
    try:
        cfg.versioning = parse_versioning(dt, f"{where}.durableTask")
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    acts = _expect(dt, "maxConcurrentActivityFunctions", int, f"{where}.durableTask")
    if acts is not None:
        if acts < 1:
            raise SettingsError(
                f"{where}.durableTask.maxConcurrentActivityFunctions: expected >= 1, got {acts}"
            )
        cfg.max_concurrent_activities = acts
    orchs = _expect(dt, "maxConcurrentOrchestratorFunctions", int, f"{where}.durableTask")
    if orchs is not None:
        if orchs < 1:
            raise SettingsError(
                f"{where}.durableTask.maxConcurrentOrchestratorFunctions: expected >= 1, got {orchs}"
            )
        cfg.max_concurrent_orchestrations = orchs
    q = _expect(ext, "queues", dict, where) or {}
    qw = f"{where}.queues"
    qo = cfg.queues
    mdc = _expect(q, "maxDequeueCount", int, qw)
    if mdc is not None:
        if mdc < 1:
            raise SettingsError(f"{qw}.maxDequeueCount: expected >= 1, got {mdc}")
        qo.max_dequeue_count = mdc
    if q.get("maxPollingInterval") is not None:
        qo.max_polling_interval = parse_timespan(q["maxPollingInterval"], where=f"{qw}.maxPollingInterval")
        qo.max_polling_interval = max(qo.max_polling_interval, 0.01)
        qo.min_polling_interval = min(qo.min_polling_interval, qo.max_polling_interval)
    if q.get("visibilityTimeout") is not None:
        qo.visibility_timeout = parse_timespan(q["visibilityTimeout"], where=f"{qw}.visibilityTimeout")
    bs = _expect(q, "batchSize", int, qw)
    if bs is not None:
        if not 1 <= bs <= 32:
            raise SettingsError(f"{qw}.batchSize: expected 1..32, got {bs}")
        qo.batch_size = bs
    nbt = _expect(q, "newBatchThreshold", int, qw)
    if nbt is not None:
        qo.new_batch_threshold = nbt
    enc = _expect(q, "messageEncoding", str, qw)
    if enc is not None:
        if enc.lower() not in ("base64", "none"):
            raise SettingsError(f"{qw}.messageEncoding: expected 'base64' or 'none', got {enc!r}")
        qo.message_encoding = enc.lower()
    return cfg


def load_local_settings(path: Path) -> dict[str, str]:
    """``Values`` of a local.settings.json file, all strings."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a JSON object with a 'Values' object.")
    if data.get("IsEncrypted"):
        raise SettingsError(
            f"{path}: IsEncrypted is true; devhost cannot decrypt Core Tools' machine-bound encryption. "
            "Run 'func settings decrypt' or write the values in clear text for local runs."
        )
    values = data.get("Values", {})
    if not isinstance(values, dict):
        raise SettingsError(
            f"{path}: Values: expected an object of string settings, got {type(values).__name__}."
        )
    out: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(value, str):
            raise SettingsError(
                f"{path}: Values.{key}: expected a string (app settings are strings), got {value!r}. "
                f'Quote it, e.g. "{key}": "{json.dumps(value)}".'
            )
        out[key] = value
    return out


def load_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines and ``#`` comments are skipped, optional quotes are removed."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the env file ({exc.strerror}).") from exc
    out: dict[str, str] = {}
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not re.match(r"^[A-Za-z_][A-Za-z0-9_.:-]*$", key):
            raise SettingsError(f"{path}:{n}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out


@dataclass
class AppSettings:
    """The app settings (environment) devhost applies, and where each came from, for the startup log."""

    values: dict[str, str]
    skipped_from_file: list[str]


def resolve_app_settings(
    app_dir: Path,
    *,
    settings_file: Path | None,
    env_file: Path | None,
    environ: Mapping[str, str],
) -> AppSettings:
    """Compute the variables to set: local settings < process environment < env file."""
    file_values: dict[str, str] = {}
    path = settings_file if settings_file is not None else app_dir / "local.settings.json"
    if settings_file is not None and not settings_file.exists():
        raise SettingsError(f"{settings_file}: settings file given with --settings does not exist.")
    if path.exists():
        file_values = load_local_settings(path)
    values: dict[str, str] = {}
    skipped: list[str] = []
    for key, value in file_values.items():
        if key in environ:
            # Core Tools: "Skipping '<key>' from local settings as it's already defined in current
            # environment variables." The environment is how CI overrides a checked-in file.
            skipped.append(key)
            continue
        values[key] = value
    if env_file is not None:
        values.update(load_env_file(env_file))
    return AppSettings(values=values, skipped_from_file=skipped)


def apply_app_settings(settings: AppSettings) -> None:
    os.environ.update(settings.values)


_PERCENT = re.compile(r"%([^%]+)%")


def resolve_binding_value(value: str, *, function_name: str, field_name: str) -> str:
    """Replace ``%SETTING%`` references in a binding property with app settings, as the host does."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        found = os.environ.get(name)
        if found is None:
            raise SettingsError(
                f"function '{function_name}': binding property {field_name}={value!r} refers to app setting "
                f"'{name}', which is not set. Add it to local.settings.json Values or the environment."
            )
        return found

    return _PERCENT.sub(sub, value)
