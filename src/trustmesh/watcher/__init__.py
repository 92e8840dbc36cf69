"""Watchers: anyone can follow logs and catch the lies that cost stake.

:mod:`trustmesh.watcher.audit` holds the checks (split views, equivocation,
invalid entries) as pure state machines; the ``trustmesh watch`` process that
follows nodes and submits the fraud proofs is still to come.
"""
