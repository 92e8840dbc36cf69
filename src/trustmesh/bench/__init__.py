"""Benchmarks that ship with trustmesh (``trustmesh bench …``, ``benchmarks/*.py``).

Each returns one JSON-ready dict and measures a baseline in the same run, so
the figure that matters is a ratio that survives a noisy machine.
"""
