"""Incoming alerts (issue 4): Alertmanager and generic webhooks that move components through the outbox."""
