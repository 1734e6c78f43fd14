"""Non-durable triggers and bindings: storage-queue polling, Event Grid webhook, binding arguments."""
