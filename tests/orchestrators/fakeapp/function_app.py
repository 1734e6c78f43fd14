"""The product's orchestrators and HTTP API (captures, cancel) with scripted fake activities registered under the real names.

Used by ``tests/orchestrators`` through devhost's virtual clock, so the production timing policy
(polls every 15-300 s, day-long copies, 30-minute stall windows) runs in seconds. The fakes are
driven by the ``FAKE_SCENARIO`` JSON setting and log every call to ``FAKE_CALLS`` (JSON lines).
"""

import azure.durable_functions as df
import azure.functions as func
from fake_activities import bp as fake_bp

from orchestrators import bp as orchestrators_bp
from triggers import http_bp
from triggers.http_cancel import cancel_bp

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(fake_bp)
app.register_functions(orchestrators_bp)
app.register_functions(http_bp)
app.register_functions(cancel_bp)
