"""Top-level test configuration: its folder (tests/) is on sys.path, so helpers shared by several
test folders (``leak_check``) import by name like each folder's own helpers."""

import os
from collections.abc import Iterator

import pytest

# The test processes (and the devhost apps they start, which inherit this environment) export to the
# world's account stexports and deliver notices to local receivers on 127.0.0.1. Production refuses both
# until an operator sets them (docs/security-endpoints.md); tests of those defaults override them.
os.environ.setdefault("CAPTURE_EXPORT_ACCOUNTS", "stexports")
os.environ.setdefault("NOTICE_ALLOW_LOOPBACK_WEBHOOKS", "true")


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are cached per process; a test (or a stack applying a local cloud's env) may change the
    environment, so every test reads them afresh."""
    from shared.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
