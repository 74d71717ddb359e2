"""Incidents: the domain of issue 4 (models, services, root-cause grouping, the outbox worker)."""
