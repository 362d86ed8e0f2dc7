"""drip serve: the subscriber-facing web side (subscribe, confirm, unsubscribe, preferences, view, webhooks)."""
