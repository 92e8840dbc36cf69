"""The transparency log: RFC 9162 Merkle trees, a persistent store, C2SP
checkpoints and signed receipts, shared by the node, the watcher and clients.

- :mod:`trustmesh.log.merkle`: the reference RFC 9162 functions (hashes, proofs, verifiers);
- :mod:`trustmesh.log.store`: the durable append-only store (SQLite or PostgreSQL);
- :mod:`trustmesh.log.checkpoint`: C2SP tlog-checkpoint bodies as C2SP signed notes;
- :mod:`trustmesh.log.receipt`: the log's signed promise to include an entry by a deadline.
"""
