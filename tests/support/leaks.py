"""The one definition of the end-to-end secret check: where does a SAS signature or a token appear?"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from shared.redaction import contains_secret


def secrets_in(workdir: Path, texts: Iterable[str], known: Iterable[str] = ()) -> list[str]:
    """Files under ``workdir`` (devhost's store and logs; its key file is a key store by design) and
    texts (status bodies, queue messages a test saw) that carry a SAS signature or bearer token, or one of
    the ``known`` secret values verbatim (a SAS signature an endpoint issued to the test)."""
    values = [k for k in known if k]

    def leaky(text: str) -> bool:
        return contains_secret(text) or any(v in text for v in values)

    leaks = [
        str(path)
        for path in sorted(workdir.rglob("*"))
        if path.is_file() and path.name != "keys.json" and leaky(path.read_bytes().decode("latin-1"))
    ]
    return leaks + [text[:200] for text in texts if leaky(text)]


def known_secrets_in(root: Path, known: Iterable[str]) -> list[str]:
    """Files under ``root`` holding one of the ``known`` secret values verbatim (no pattern search: the
    cloud's own stores hold the snapshot SAS of a copy source by design, as Azure's copy status does)."""
    values = [k.encode() for k in known if k]
    return [
        str(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and any(v in path.read_bytes() for v in values)
    ]


def sas_values(sas: str) -> list[str]:
    """The secret parts of a SAS (query or URL): its signature, raw and URL-encoded, to search for verbatim."""
    from urllib.parse import parse_qs, quote, urlsplit

    query = urlsplit(sas).query if "://" in sas else sas.lstrip("?")
    sigs = parse_qs(query).get("sig", [])
    return [v for s in sigs for v in (s, quote(s, safe=""))]


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
