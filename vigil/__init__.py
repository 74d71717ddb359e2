"""Vigil: outage management built on a model of how your infrastructure depends on itself."""

__version__ = "0.1.0"
