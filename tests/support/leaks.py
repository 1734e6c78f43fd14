"""The one definition of the end-to-end secret check: where does a SAS signature or a token appear?"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from shared.redaction import contains_secret


def secrets_in(workdir: Path, texts: Iterable[str]) -> list[str]:
    """Files under ``workdir`` (devhost's store and logs; its key file is a key store by design) and
    texts (status bodies, queue messages a test saw) that carry a SAS signature or bearer token."""
    leaks = [
        str(path)
        for path in sorted(workdir.rglob("*"))
        if path.is_file()
        and path.name != "keys.json"
        and contains_secret(path.read_bytes().decode("latin-1"))
    ]
    return leaks + [text[:200] for text in texts if contains_secret(text)]


def secrets_in_named(named: Mapping[str, Iterable[str]], known: Iterable[str] = ()) -> list[str]:
    """Names of the sources (e.g. "janitor log", "webhook body #2") any of whose texts carries a SAS
    signature or bearer token, or one of the ``known`` secret values verbatim (keys, a SAS the test made)."""
    values = [k for k in known if k]
    leaks = []
    for name, texts in named.items():
        for text in texts:
            if contains_secret(text) or any(v in text for v in values):
                leaks.append(name)
                break
    return leaks


def janitor_output(log_text: str) -> list[str]:
    """The janitor's lines in a devhost log: its per-action lines, its summary, and its errors."""
    return [line for line in log_text.splitlines() if "janitor" in line.lower()]
