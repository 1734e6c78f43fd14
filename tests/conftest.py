"""Top-level test configuration: the environment every test process shares, fresh settings per test,
and the ``stack`` marker (``make test-fast`` runs ``-m "not stack"``).

Helpers are imported by their package path (``tests.support``, ``tests.triggers.intake_support``): the
repository root is on ``sys.path`` under ``python -m pytest``, and mypy sees the same names."""

import os
from collections.abc import Iterator
from pathlib import Path

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
    from shared.settings import get_marketplace_settings, get_settings

    get_settings.cache_clear()
    get_marketplace_settings.cache_clear()
    yield
    get_settings.cache_clear()
    get_marketplace_settings.cache_clear()


# Folders whose every test starts a local cloud or a devhost process (the simulator's and the host's own
# suites); in tests/activities, the tests that use the ``cloud`` fixture (azsim + Azurite); elsewhere a
# test that starts a stack is marked ``e2e``.
_STACK_FOLDERS = {"azsim", "devhost"}
_TESTS = Path(__file__).resolve().parent


def _starts_a_stack(item: pytest.Item) -> bool:
    folder = Path(item.path).resolve().relative_to(_TESTS).parts[0]
    if folder in _STACK_FOLDERS or item.get_closest_marker("e2e") is not None:
        return True
    return folder == "activities" and "cloud" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``stack`` every test that starts azsim, Azurite or devhost on the real app."""
    for item in items:
        if _starts_a_stack(item):
            item.add_marker(pytest.mark.stack)
