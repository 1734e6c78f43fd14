"""The Functions host's HTTP surface: HTTP triggers, Durable management API, webhooks."""
