"""``trustmesh up``: the whole network on one machine.

- :mod:`trustmesh.up.network`: the nodes (``trustmesh node run`` processes on
  one embedded chain, which the first node holds and serves at ``/rpc``) and a
  watcher, started in order and stopped in reverse; a rerun on the same data
  directory resumes (chain, logs, registrations);
- :mod:`trustmesh.up.fleet`: simulated devices with realistic sensors, some of
  which misbehave, sending through the device SDK.
"""
