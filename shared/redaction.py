"""Keep secrets out of anything that is stored or logged.

Durable history, custom status and logs are plain text to anyone who can read the task hub,
so every URL that may carry a SAS goes through ``strip_query`` and every free text that
may quote one (an SDK exception message) through ``redact``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# A URL with a query string; SAS tokens always travel in the query.
_URL_WITH_QUERY = re.compile(r"(https?://[^\s?'\"<>]+)\?[^\s'\"<>]*", re.IGNORECASE)
# A bare SAS signature, in case a query string was split from its URL (e.g. in a header dump).
_SIG = re.compile(r"(?i)\b(sig|signature)=[^&\s'\"<>]+")
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9\-_.=]+")


def strip_query(url: str) -> str:
    """Return ``url`` without its query string and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def redact(text: str) -> str:
    """Remove query strings from every URL in ``text``, plus stray signatures and bearer tokens."""
    text = _URL_WITH_QUERY.sub(lambda m: m.group(1) + "?<redacted>", text)
    text = _SIG.sub(lambda m: m.group(1) + "=<redacted>", text)
    return _BEARER.sub("Bearer <redacted>", text)


def contains_secret(text: str) -> bool:
    """True if ``text`` looks like it carries a SAS signature or a bearer token (used by tests and guards)."""
    return bool(re.search(r"(?i)[?&]sig=[A-Za-z0-9%+/=]{10,}", text)) or bool(
        re.search(r"(?i)bearer\s+ey[A-Za-z0-9\-_]{20,}", text)
    )
