"""Notifications (issue 4): channels and routes from the config, a persistent outbox of deliveries, a dispatcher."""
