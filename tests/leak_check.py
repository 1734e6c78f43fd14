"""Old import path of the secret scan, kept for tests written against it: it lives in tests/support/leaks.py."""

from tests.support.leaks import secrets_in

__all__ = ["secrets_in"]
