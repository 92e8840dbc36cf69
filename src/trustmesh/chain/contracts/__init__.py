"""Vyper sources of the trustmesh contracts (package data)."""
