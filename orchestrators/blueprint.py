"""The Durable blueprint every orchestrator in this package registers on."""

from __future__ import annotations

import azure.durable_functions as df

bp = df.Blueprint()
