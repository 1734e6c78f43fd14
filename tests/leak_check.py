"""Old import path of the secret scan, kept for tests written against it: it lives in tests/support/leaks.py."""

from tests.support.leaks import janitor_output, secrets_in, secrets_in_named

__all__ = ["janitor_output", "secrets_in", "secrets_in_named"]
