"""azsim: a local Azure for development and tests.

An HTTPS ARM simulator that the real Azure SDKs use unchanged, Azurite for storage (with a blob
front that makes async copies take simulated time), and the App Service managed-identity endpoint.
Start it with ``python -m azsim up --world examples/world.json``; use it from tests with
``azsim.testing.local_cloud``. It models Azure and knows nothing about any particular app.
"""
