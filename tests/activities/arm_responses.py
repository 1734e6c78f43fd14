"""An HTTP response as azure-core's error classes read it, for tests of error translation."""

from __future__ import annotations

import json


class ArmResponse:
    """The minimum of an HTTP response that azure-core's HttpResponseError reads."""

    def __init__(self, status: int, body: dict, headers: dict | None = None) -> None:
        self.status_code = status
        self.reason = "Reason"
        self.headers = headers or {}
        self.content_type = "application/json"
        self.request = None
        self._body = json.dumps(body).encode()

    def text(self, encoding: str | None = None) -> str:
        return self._body.decode()

    def body(self) -> bytes:
        return self._body
