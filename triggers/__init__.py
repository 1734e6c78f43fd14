"""Thin entry points: validate the request, start or look up the capture orchestration, answer.

``http_bp``: ``POST /api/captures`` and ``GET /api/captures/{id}`` (``http_captures``).
The queue, Event Grid, cancel and janitor triggers live beside it, each with its own blueprint; every
trigger that starts a capture does so through ``starting.start_capture``.
"""

from triggers.http_captures import http_bp

__all__ = ["http_bp"]
