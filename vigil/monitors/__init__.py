"""Monitors: one check type per module, each turning a config into a :class:`~vigil.monitors.result.CheckResult`.

``schemas`` holds the configs, ``registry.run_check`` runs any of them. A check never raises: every failure,
its own bugs included, becomes a down result with a reason a person can act on.
"""
