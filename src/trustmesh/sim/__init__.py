"""A misbehaviour harness: logs that lie on purpose, watchers that catch them.

- :mod:`trustmesh._server`: an ASGI app served from a thread on a loopback port;
- :mod:`trustmesh.sim.lognode`: a log with the read API of a node, honest by
  default, that can be told to lie (invalid entries, split views, broken
  receipts, stalled anchors);
- :mod:`trustmesh.sim.attack`: one attack, start to finish, measured
  (``trustmesh sim attack``).
"""
