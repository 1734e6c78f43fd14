"""Thin entry points: validate the request, start or look up the capture orchestration, answer.

``http_bp``: ``POST /api/captures`` and ``GET /api/captures/{id}`` (``http_captures``).
Queue and Event Grid triggers (issue 5) will live beside it and reuse ``starting.start_capture``.
"""

from triggers.http_captures import http_bp

__all__ = ["http_bp"]
