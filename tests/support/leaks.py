"""The one definition of the end-to-end secret check: where does a SAS signature or a token appear?"""

from __future__ import annotations

from collections.abc import Iterable
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
