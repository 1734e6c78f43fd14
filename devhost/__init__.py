"""devhost: run a Python v2-model Durable Functions app locally and in CI without the Functions runtime.

It speaks to the unmodified ``azure-functions`` / ``azure-functions-durable`` SDKs the protocol that the
Functions host and the Durable Task extension speak: HTTP/queue/Event Grid triggers, the durable client
binding and management API (``devhost.http``, ``devhost.triggers``), and a SQLite-backed durable engine
(``devhost.engine``). Start it with ``python -m devhost start``; tests use ``devhost.testing``.
Production runs on Azure Functions with the Durable extension, not on devhost.
"""

__version__ = "0.1.0"
