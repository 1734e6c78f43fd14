"""Function, master and system keys, kept in ``<workdir>/keys.json``.

Like Core Tools, devhost does not ask for keys unless started with ``--require-keys``. Then:

- ``authLevel: anonymous`` is always open;
- ``authLevel: function`` accepts a function (host) key or the master key;
- ``authLevel: admin`` accepts only the master key;
- extension webhooks (``/runtime/webhooks/durabletask``, ``/runtime/webhooks/eventgrid``) accept their
  system key (``durabletask_extension``, ``eventgrid_extension``) or the master key.

A key is presented as ``?code=<key>`` or in the ``x-functions-key`` header. The file is generated on first
start and reused, so a test can read it. Key values never go to the log: at start devhost names the file
and the keys in it (:func:`describe_keys`), and whoever needs a value reads the file.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

KEYS_FILE = "keys.json"
DURABLE_SYSTEM_KEY = "durabletask_extension"
EVENTGRID_SYSTEM_KEY = "eventgrid_extension"


def _new_key() -> str:
    return secrets.token_urlsafe(40)


@dataclass
class KeyStore:
    master_key: str
    function_keys: dict[str, str]
    system_keys: dict[str, str]
    path: Path

    @classmethod
    def load_or_create(cls, workdir: Path) -> KeyStore:
        path = workdir / KEYS_FILE
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                store = cls(
                    master_key=str(data["masterKey"]),
                    function_keys={str(k): str(v) for k, v in data["functionKeys"].items()},
                    system_keys={str(k): str(v) for k, v in data["systemKeys"].items()},
                    path=path,
                )
            except (ValueError, KeyError, AttributeError, TypeError) as exc:
                raise ValueError(
                    f"{path}: expected {{'masterKey', 'functionKeys', 'systemKeys'}}; the file is damaged "
                    f"({type(exc).__name__}: {exc}). Delete it and devhost writes a new one."
                ) from exc
            changed = False
            for name in (DURABLE_SYSTEM_KEY, EVENTGRID_SYSTEM_KEY):
                if name not in store.system_keys:
                    store.system_keys[name] = _new_key()
                    changed = True
            if not store.function_keys:
                store.function_keys["default"] = _new_key()
                changed = True
            if changed:
                store.save()
            return store
        store = cls(
            master_key=_new_key(),
            function_keys={"default": _new_key()},
            system_keys={DURABLE_SYSTEM_KEY: _new_key(), EVENTGRID_SYSTEM_KEY: _new_key()},
            path=path,
        )
        store.save()
        return store

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "masterKey": self.master_key,
                    "functionKeys": self.function_keys,
                    "systemKeys": self.system_keys,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    @property
    def default_function_key(self) -> str:
        return self.function_keys.get("default") or next(iter(self.function_keys.values()))

    def _matches(self, presented: str | None, candidates: list[str]) -> bool:
        if not presented:
            return False
        # constant-time compare: the key is a shared secret
        return any(hmac.compare_digest(presented.encode(), c.encode()) for c in candidates)

    def allows(self, auth_level: str, presented: str | None) -> bool:
        level = auth_level.lower()
        if level == "anonymous":
            return True
        if level == "admin":
            return self._matches(presented, [self.master_key])
        return self._matches(presented, [self.master_key, *self.function_keys.values()])

    def allows_system(self, system_key_name: str, presented: str | None) -> bool:
        candidates = [self.master_key]
        if system_key_name in self.system_keys:
            candidates.append(self.system_keys[system_key_name])
        return self._matches(presented, candidates)


def describe_keys(store: KeyStore) -> str:
    """Where the keys are and what they are called, without any key value (safe to log)."""
    return (
        f"file {store.path} (mode 600) holds masterKey, "
        f"functionKeys [{', '.join(sorted(store.function_keys))}], "
        f"systemKeys [{', '.join(sorted(store.system_keys))}]; read values from the file"
    )
