"""The settings every test stack runs with: short, but real, timings (durable timers on the wall clock,
Azure durations scaled by azsim), the queue names, and what the tests treat as a finished capture."""

from __future__ import annotations

TERMINAL = frozenset({"Completed", "Failed", "Terminated", "Canceled"})

REQUESTS_QUEUE = "capture-requests"
RESULTS_QUEUE = "capture-results"
# The queue trigger's %CAPTURE_REQUESTS_QUEUE% must resolve, or devhost logs an ERROR at start
# (the names are local.settings.sample.json's).
QUEUE_SETTINGS = {"CAPTURE_REQUESTS_QUEUE": REQUESTS_QUEUE, "CAPTURE_RESULTS_QUEUE": RESULTS_QUEUE}

FAST_POLICY = {
    "CAPTURE_POLL_MIN_SECONDS": "0.2",
    "CAPTURE_POLL_MAX_SECONDS": "1",
    "CAPTURE_GUEST_STOP_TIMEOUT_SECONDS": "60",
    "CAPTURE_POWER_STATE_TIMEOUT_SECONDS": "60",
    "CAPTURE_SNAPSHOT_TIMEOUT_SECONDS": "60",
    "CAPTURE_COPY_STALL_SECONDS": "4",
    "CAPTURE_REPLICATION_TIMEOUT_SECONDS": "120",
    "CAPTURE_EXPECTED_COPY_MBPS": "5000",
    "CAPTURE_TRANSIENT_RETRY_ATTEMPTS": "5",
    "CAPTURE_TRANSIENT_RETRY_FIRST_SECONDS": "0.5",
    "AZURE_ARM_RETRY_TOTAL": "3",
    "AZURE_ARM_RETRY_BACKOFF_SECONDS": "0.05",
    "AZURE_ARM_RETRY_BACKOFF_MAX_SECONDS": "0.5",
    "AZURE_LRO_POLLING_INTERVAL_SECONDS": "0.1",
    **QUEUE_SETTINGS,
    # The world's export account, and the local webhook receivers on 127.0.0.1 (production refuses both
    # until an operator allows them).
    "CAPTURE_EXPORT_ACCOUNTS": "stexports",
    "NOTICE_ALLOW_LOOPBACK_WEBHOOKS": "true",
}

# The trigger stacks stall some export copies on purpose, so that a cancel or the janitor finds them
# running: a stall is declared only after 20 s there.
PATIENT_COPIES = {"CAPTURE_COPY_STALL_SECONDS": "20"}
