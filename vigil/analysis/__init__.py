"""Resilience analysis: blast radius, cut sets, availability. Pure Python: no database, no web."""
