"""The HTTP side of ``vigil serve``: heartbeat pings, /healthz, /metrics and the read-only JSON API.

:func:`vigil.web.app.create_app` builds the app around a :class:`vigil.web.backend.Backend` (the engine's
runtime). Nothing outside this package imports it.
"""
