"""Old import path of the e2e stack, kept for tests written against it: everything lives in tests/support."""

from tests.support.http import http
from tests.support.policy import FAST_POLICY, QUEUE_SETTINGS, TERMINAL
from tests.support.stack import Stack, running_stack
from tests.support.worlds import REPO_ROOT, WORLD

__all__ = [
    "FAST_POLICY",
    "QUEUE_SETTINGS",
    "REPO_ROOT",
    "TERMINAL",
    "WORLD",
    "Stack",
    "http",
    "running_stack",
]
